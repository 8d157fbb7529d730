"""Each model's own random draws (docs/method.md §2.9-§2.11).

A survey, a profile or a sweep diagnoses many models (sweep: groups). By default each one
gets its own plan seed, drawn from the run seed and the model's *name*::

    model_seed(seed, name) = stream(seed, STREAMS["model"], name_key(name))

so its frame subset, split, rotations, cross-validation folds, bootstrap and injected
signal are its own: two entries never share rotations (the same weights under two names
included), the rows are independent replicates, and adding or removing a model changes
no other row. ``paired=True`` (CLI ``--paired``, sweep TOML ``paired = true``) gives
every model the run seed itself: the shared draws of a paired design, for
model-versus-model contrasts (the design before issue 23).
"""

from __future__ import annotations

import hashlib

from ..runtime import STREAMS, stream

__all__ = ["DRAWS", "name_key", "model_seed", "draws_of", "check_paired", "draws_sentence"]

#: ``config.draws`` of a survey, profile or sweep: its two designs.
DRAWS = ("independent", "paired")


def name_key(name: str) -> int:
    """A stable integer of a model's name: the first 8 bytes of the SHA-256 of its UTF-8
    text, big-endian (the same on every machine and Python; not ``hash()``).

    >>> name_key("aspirin_L2_seed0") == name_key("aspirin_L2_seed0") != name_key("x")
    True
    """
    return int.from_bytes(hashlib.sha256(str(name).encode("utf-8")).digest()[:8], "big")


def model_seed(seed: int, name: str, paired: bool = False) -> int:
    """The plan seed of the model (or sweep group) ``name`` in a run of seed ``seed``:
    ``seed`` itself when ``paired``, else ``stream(seed, STREAMS["model"], name_key(name))``.

    >>> model_seed(0, "a", paired=True)
    0
    >>> model_seed(0, "a") != model_seed(0, "b")
    True
    """
    if paired:
        return int(seed)
    return stream(int(seed), STREAMS["model"], name_key(name))


def check_paired(paired) -> bool:
    """``paired`` if it is ``True`` or ``False``; ``ValueError`` naming the value otherwise
    (a string such as ``"false"`` would read as true)."""
    if paired is not True and paired is not False:
        raise ValueError(f"paired must be true or false, got {paired!r}")
    return paired


def draws_of(paired: bool) -> str:
    """``config.draws``: ``"paired"`` or ``"independent"``."""
    return DRAWS[1] if paired else DRAWS[0]


def draws_sentence(config: dict, unit: str = "model") -> str:
    """The report's sentence on the design of ``config`` (a survey's, profile's or sweep's
    results.json config); a result recorded before per-model draws (no ``draws`` key) used
    the shared ones."""
    draws = config.get("draws")
    if draws == "independent":
        return (f"Draws: independent: each {unit} has its own plan seed, drawn from the run "
                f"seed and the {unit}'s name (`config.{unit}_seeds`), so its frames, split, "
                f"rotations and injected signal are its own; the rows are independent "
                f"replicates, and adding a {unit} changes no other row.")
    shared = (f"Draws: paired: every {unit} shares the run seed's frames, split, rotations "
              "and injected signal, for contrasts between them; the rows are not "
              "independent replicates")
    if draws == "paired":
        return shared + " (`--paired`)."
    return shared + " (recorded before per-model draws existed)."
