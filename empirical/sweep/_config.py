"""A sweep's configuration (docs/method.md §2.11): the TOML file, checked, its globs
expanded, as a typed :class:`SweepConfig`.

The file (every key but ``groups`` optional; paths are relative to the file)::

    out = "runs/sweep-aspirin"         # output directory (CLI --out overrides)
    store = "runs/sweep-aspirin.store" # task store (default: OUT + ".store")
    datasets = ["aspirin"]             # dataset sources, as for `empirical diagnose --data`
    marked = [[0, 1]]                  # marked atom pairs (default: each dataset's bond)
    degrees = [1, 2, 3]
    lmax = 7
    seeds = [0]
    frames = 5000                      # CLI --frames overrides
    chunk = 200                        # configurations per feature-extraction task
    paired = false                     # true: every group shares the seed's draws (CLI
                                       # --paired); false: each group's own (its name's)
    # and diagnose's options, same names and defaults: n_boot, k, k_sweep, reduction,
    # spn, test_fraction, eps, folds, rotations_per_config, device ("cpu", "cuda"),
    # capacity ("auto" or "fixed")

    [[groups]]
    name = "shipped"                   # optional
    backbones = ["aspirin_L2_seed0", "runs/a/epoch_*.pt", "sevenn:7net-0"]
    pool = true                        # true: one pooled group (as diagnose); false: one
                                       # group per backbone (a zoo, a training run)

A row of the sweep is one (group, dataset, marked pair, seed, d). Each group's plan
seed is drawn from the seed and the group's name (:func:`empirical.survey.model_seed`):
groups never share rotations, split or signal, and adding a group changes no other row;
``paired = true`` gives every group the seed itself (shared draws, for contrasts).

A file cannot grant trust: third-party (pickled) checkpoints load only when the caller
says so (``empirical sweep --trust-checkpoints``, ``sweep(..., trust_checkpoints=True)``),
and a key that names trust (``trust_checkpoints``, any spelling, at any level) is refused.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .. import adapters
from ..checks import check_int, is_int
from ..diagnostic import validate_options
from ..survey import check_paired, draws_of

__all__ = ["SweepConfig", "Group", "load_config", "parse_config", "OPTIONS", "epoch_of",
           "MAX_TASKS"]

#: diagnose's options a sweep passes on, with diagnose's defaults.
OPTIONS = {"n_boot": 2000, "k": None, "k_sweep": (1, 2, 3, 4), "reduction": "irrep",
           "spn": "ridge", "test_fraction": 0.2, "eps": None, "folds": 3,
           "rotations_per_config": 1, "device": None, "capacity": "auto"}

#: Keys of the file besides :data:`OPTIONS`.
_KEYS = {"out", "store", "datasets", "marked", "degrees", "lmax", "seeds", "frames", "chunk",
         "groups", "paired"}

#: The one-line refusal of a key that would grant trust from a file.
_TRUST_REFUSED = ("a sweep configuration cannot grant trust: third-party checkpoints are "
                  "trusted only by the command line's --trust-checkpoints (Python: "
                  "sweep(..., trust_checkpoints=True))")
_GROUP_KEYS = {"name", "backbones", "pool"}

#: Default configurations per feature-extraction task.
DEFAULT_CHUNK = 200

#: Most rows (group x dataset x pair x seed x d) one sweep may ask for: a bound on the
#: cost of a request, checked before any work.
MAX_TASKS = 100_000

_EPOCH = re.compile(r"epoch_(\d+)\.pt$")


def epoch_of(spec: str) -> Optional[int]:
    """The epoch of a checkpoint kept by ``empirical train --save-every``
    (``.../epoch_0040.pt`` -> 40), else ``None``."""
    m = _EPOCH.search(str(spec))
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Group:
    """Backbones pooled into one diagnosis (one backbone when the file says ``pool =
    false``). ``epoch`` is set for a single checkpoint of a training run."""

    name: str
    backbones: Tuple[str, ...]
    epoch: Optional[int] = None


@dataclass(frozen=True)
class SweepConfig:
    """The checked configuration; :meth:`to_dict` is recorded in results.json, with every
    path relative to the configuration file (:meth:`recorded`). ``groups`` and
    ``datasets`` hold the paths to load from (globs expanded, relative to :attr:`base`
    resolved)."""

    groups: Tuple[Group, ...]
    datasets: Tuple[str, ...] = ("aspirin",)
    marked: Optional[Tuple[Tuple[int, int], ...]] = None
    degrees: Tuple[int, ...] = (1, 2, 3)
    lmax: int = 7
    seeds: Tuple[int, ...] = (0,)
    frames: Optional[int] = None
    chunk: int = DEFAULT_CHUNK
    #: True: every group's plan uses the run seed (shared draws); False: each group's own
    #: (:func:`empirical.survey.model_seed` of the seed and the group's name).
    paired: bool = False
    #: Set only by the caller (``sweep(..., trust_checkpoints=True)``, the CLI flag);
    #: :func:`parse_config` never sets it, whatever the file says.
    trust_checkpoints: bool = False
    options: Dict = field(default_factory=lambda: dict(OPTIONS))
    out: Optional[Path] = None
    store: Optional[Path] = None
    source: Optional[str] = None
    #: The directory the file's paths are relative to (the file's own); results record
    #: every path relative to it (:meth:`recorded`).
    base: Path = Path(".")

    def with_frames(self, frames: Optional[int]) -> "SweepConfig":
        """The same sweep on a seeded subset of ``frames`` configurations (CLI --frames)."""
        if frames is None:
            return self
        check_int("frames", frames, 2)
        return replace(self, frames=int(frames))

    def with_paired(self, paired: bool) -> "SweepConfig":
        """The same sweep with shared draws (``True``, CLI --paired) or the file's design
        (``False``: unchanged)."""
        return replace(self, paired=True) if check_paired(paired) else self

    def recorded(self, spec: str) -> str:
        """``spec`` as results record it: a file's path relative to :attr:`base` (after
        its adapter prefix, if any), never absolute; a name or a relative spec as it is.

        >>> SweepConfig(groups=(), base=Path("/a/b")).recorded("mace:/a/runs/x.model")
        'mace:../runs/x.model'
        """
        prefix, rest = "", spec
        if adapters.is_spec(spec):
            prefix, rest = spec.split(":", 1)
            prefix += ":"
        if not os.path.isabs(rest):
            return spec
        return prefix + os.path.relpath(rest, os.path.abspath(self.base))

    @property
    def pairs(self) -> Tuple[Optional[Tuple[int, int]], ...]:
        return self.marked if self.marked is not None else (None,)

    def n_rows(self) -> int:
        return (len(self.groups) * len(self.datasets) * len(self.pairs) * len(self.seeds)
                * len(self.degrees))

    def to_dict(self) -> Dict:
        return {"source": self.source,
                "groups": [{"name": g.name, "backbones": [self.recorded(s) for s in g.backbones],
                            "epoch": g.epoch} for g in self.groups],
                "datasets": [self.recorded(d) for d in self.datasets],
                "marked": None if self.marked is None else [list(p) for p in self.marked],
                "degrees": list(self.degrees), "lmax": self.lmax, "seeds": list(self.seeds),
                "frames": self.frames, "chunk": self.chunk, "draws": draws_of(self.paired),
                "trust_checkpoints": self.trust_checkpoints,
                "options": {k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in sorted(self.options.items())}}


def _int_list(key: str, value, low: int) -> Tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key} must be a non-empty list of integers, got {value!r}")
    out = tuple(check_int(f"{key} entry", v, low) for v in value)
    if len(set(out)) != len(out):
        raise ValueError(f"{key} repeats a value: {list(out)}")
    return out


def _expand(item: str, base: Path) -> List[str]:
    """A backbone entry -> specs: shipped names and adapter specs as they are; a path
    relative to ``base``; a glob (``*``, ``?``, ``[``) to its matches, sorted, and an
    error when it matches nothing (also after an adapter prefix: ``mace:runs/*.model``)."""
    prefix = ""
    rest = item
    if adapters.is_spec(item):
        prefix, rest = item.split(":", 1)
        prefix += ":"
    if any(c in rest for c in "*?["):
        pattern = os.path.normpath(rest if Path(rest).is_absolute() else str(base / rest))
        found = sorted(glob.glob(pattern))
        if not found:
            raise ValueError(f"backbone pattern {item!r} matches no file (looked for {pattern})")
        return [prefix + f for f in found]
    looks_like_path = "/" in rest or rest.endswith((".pt", ".pth", ".ckpt", ".model",
                                                    ".nequip.zip", ".xz"))
    if looks_like_path and not Path(rest).is_absolute():
        candidate = Path(os.path.normpath(base / rest))
        if candidate.exists():
            return [prefix + str(candidate)]
    return [item]


def _display_name(spec: str) -> str:
    """A group name for a single backbone: a checkpoint's stem under its directory's
    name (``train-ceiling/epoch_0004``), or the spec itself."""
    rest = spec.split(":", 1)[1] if adapters.is_spec(spec) else spec
    path = Path(rest)
    if path.suffix or "/" in rest:
        return f"{path.parent.name}/{path.name.split('.')[0]}" if path.parent.name else path.stem
    return spec


def _stem(spec: str) -> str:
    """A file spec's name without suffixes (``.../epoch_0004.pt`` -> ``epoch_0004``)."""
    rest = spec.split(":", 1)[1] if adapters.is_spec(spec) else spec
    return Path(rest).name.split(".")[0] or rest


def _refuse_trust_keys(raw: Dict) -> None:
    """A key anywhere in the parsed file (top level, ``[[groups]]``, any nested table or
    array of tables) that names trust (``trust_checkpoints``, ``Trust-Checkpoints``,
    ``trusted``, ...): refused (see the module docstring). Walked without recursion."""
    stack: List[Tuple[str, object]] = [("", raw)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if "trust" in str(key).lower():
                    raise ValueError(f"key {where + str(key)!r}: {_TRUST_REFUSED}")
                stack.append((f"{where}{key}.", item))
        elif isinstance(value, list):
            stack.extend((f"{where[:-1]}[{i}].", item) for i, item in enumerate(value))


def _parse_groups(groups_raw, base: Path) -> List[Group]:
    """``[[groups]]`` checked, globs expanded, ``pool = false`` groups split per backbone
    (the caller checks that the names are distinct)."""
    if not isinstance(groups_raw, list) or not groups_raw:
        raise ValueError("the sweep configuration needs [[groups]] with backbones")
    groups: List[Group] = []
    for i, g in enumerate(groups_raw):
        if not isinstance(g, dict):
            raise ValueError(f"groups[{i}] must be a table")
        bad = sorted(set(g) - _GROUP_KEYS)
        if bad:
            raise ValueError(f"groups[{i}]: unknown key(s) {bad}; known: {sorted(_GROUP_KEYS)}")
        items = g.get("backbones")
        if (not isinstance(items, list) or not items
                or not all(isinstance(x, str) and x for x in items)):
            raise ValueError(f"groups[{i}].backbones must be a non-empty list of names, paths "
                             "or specs")
        pool = g.get("pool", True)
        if not isinstance(pool, bool):
            raise ValueError(f"groups[{i}].pool must be true or false, got {pool!r}")
        specs = [s for item in items for s in _expand(item, base)]
        if len(set(specs)) != len(specs):
            raise ValueError(f"groups[{i}] names a backbone twice")
        name = g.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValueError(f"groups[{i}].name must be a non-empty string")
        if pool:
            epoch = epoch_of(specs[0]) if len(specs) == 1 else None
            groups.append(Group(name or (_display_name(specs[0]) if len(specs) == 1
                                         else f"group{i}"), tuple(specs), epoch))
        else:
            groups += [Group(f"{name}/{_stem(s)}" if name else _display_name(s), (s,),
                             epoch_of(s)) for s in specs]
    return groups


def parse_config(raw: Dict, base: Path = Path("."), source: Optional[str] = None) -> SweepConfig:
    """Check a configuration (the parsed TOML) and expand its backbone globs; every
    problem is a ``ValueError`` naming the key."""
    if not isinstance(raw, dict):
        raise ValueError("a sweep configuration is a table of keys")
    _refuse_trust_keys(raw)
    unknown = sorted(set(raw) - _KEYS - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in the sweep configuration; known: "
                         f"{sorted(_KEYS | set(OPTIONS))}")
    groups = _parse_groups(raw.get("groups"), base)
    names = [g.name for g in groups]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"two groups are named {dup[0]!r}: give distinct names")
    datasets = raw.get("datasets", ["aspirin"])
    if (not isinstance(datasets, list) or not datasets
            or not all(isinstance(x, str) and x for x in datasets)):
        raise ValueError(f"datasets must be a non-empty list of sources, got {datasets!r}")
    datasets = [d if d == "aspirin" or Path(d).is_absolute() or not (base / d).exists()
                else str(base / d) for d in datasets]
    marked = raw.get("marked")
    if marked is not None:
        if (not isinstance(marked, list) or not marked
                or not all(isinstance(p, list) and len(p) == 2 and all(is_int(x) and x >= 0
                                                                      for x in p)
                           for p in marked)):
            raise ValueError(f"marked must be a list of atom pairs [[a, b], ...], got {marked!r}")
        marked = tuple((int(a), int(b)) for a, b in marked)
    degrees = _int_list("degrees", raw.get("degrees", [1, 2, 3]), 1)
    seeds = _int_list("seeds", raw.get("seeds", [0]), 0)
    lmax = raw.get("lmax", 7)
    frames = raw.get("frames")
    if frames is not None:
        check_int("frames", frames, 2)
    chunk = check_int("chunk", raw.get("chunk", DEFAULT_CHUNK), 1)
    paired = check_paired(raw.get("paired", False))
    options = dict(OPTIONS)
    for key in OPTIONS:
        if key in raw:
            value = raw[key]
            options[key] = tuple(value) if isinstance(value, list) else value
    validate_options(degrees, lmax, seeds[0], options["n_boot"], options["test_fraction"],
                     options["folds"], options["k"], options["reduction"], options["spn"],
                     options["eps"], options["rotations_per_config"], options["k_sweep"],
                     capacity=options["capacity"])
    paths = {}
    for key in ("out", "store"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{key} must be a path, got {value!r}")
        paths[key] = None if value is None else (base / value if not Path(value).is_absolute()
                                                 else Path(value))
    config = SweepConfig(groups=tuple(groups), datasets=tuple(datasets), marked=marked,
                         degrees=tuple(sorted(degrees)), lmax=int(lmax), seeds=seeds,
                         frames=frames, chunk=chunk, paired=paired, options=options,
                         out=paths["out"], store=paths["store"], source=source,
                         base=Path(base))
    if config.n_rows() > MAX_TASKS:
        raise ValueError(f"the sweep asks for {config.n_rows()} rows, above the limit of "
                         f"{MAX_TASKS}: split it")
    return config


def load_config(path) -> SweepConfig:
    """Read and check a sweep TOML file (``ValueError`` naming the problem)."""
    try:
        import tomllib
    except ImportError:            # Python 3.10: the [sweep] extra brings tomli
        import tomli as tomllib

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep configuration {path} is not a file")
    if path.stat().st_size > 1024 * 1024:
        raise ValueError(f"sweep configuration {path} is larger than 1 MiB")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(raw, base=path.resolve().parent, source=str(path))


def specs_of(config: SweepConfig) -> Sequence[str]:
    """Every distinct backbone spec of the sweep, in first-seen order."""
    seen: Dict[str, None] = {}
    for g in config.groups:
        for s in g.backbones:
            seen.setdefault(s, None)
    return list(seen)
