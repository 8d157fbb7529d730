"""The base of every ``empirical`` run's result: typed records whose :meth:`~RunResult.to_dict`
is exactly the run's ``results.json`` (docs/method.md §5, §6: JSON only at the file
boundary)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Dict

__all__ = ["RunResult", "TypedResult"]


class RunResult(ABC):
    """A run's result. :meth:`to_dict` is exactly its ``results.json`` (a new dictionary),
    :meth:`to_json` that file's text; ``seconds`` is the wall time, kept out of the file so
    that a fixed seed gives an identical file. Subclasses (dataclasses of records) declare
    ``seconds`` and add ``save``."""

    #: Wall time of the run in seconds (never in ``results.json``).
    seconds: float

    @abstractmethod
    def to_dict(self) -> Dict:
        """``results.json`` as a new dictionary."""

    def to_json(self) -> str:
        """``results.json``'s text: :meth:`to_dict`, indented by one, with a newline."""
        return json.dumps(self.to_dict(), indent=1) + "\n"


class TypedResult(RunResult):
    """The file boundary of a run's typed result (a dataclass of records): ``results.json``
    is :meth:`to_dict` with ``"schema": SCHEMA`` first, read back by :meth:`from_dict`.
    A subclass sets :attr:`SCHEMA` and :attr:`COMMAND` and defines ``to_dict`` and
    ``_from_payload`` (the records from a dictionary whose schema was checked)."""

    #: ``results.json["schema"]``, the version this code writes.
    SCHEMA = ""
    #: Older schemas it still reads (their missing keys derived, docs/results_schema.md).
    READS: tuple = ()
    #: The command that writes it (named in a refusal).
    COMMAND = ""

    @classmethod
    def from_dict(cls, payload: Dict):
        """The records of a ``results.json`` dictionary; ``ValueError`` when it is not one
        of this kind."""
        if not isinstance(payload, dict) or payload.get("schema") not in (cls.SCHEMA, *cls.READS):
            raise ValueError(f"not the results of empirical {cls.COMMAND} (schema "
                             f"{cls.SCHEMA!r} expected)")
        try:
            return cls._from_payload(payload)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not the results of empirical {cls.COMMAND} ({exc})") from None

    @classmethod
    def _from_payload(cls, payload: Dict):
        raise NotImplementedError
