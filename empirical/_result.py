"""The result type of every ``empirical`` run: a JSON payload and its wall time."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Dict

__all__ = ["RunResult"]


@dataclass
class RunResult:
    """``payload`` is exactly the run's ``results.json`` (:meth:`to_dict`, :meth:`to_json`);
    ``seconds`` the wall time, kept out of the payload so that a fixed seed gives an
    identical file. Subclasses add ``save``."""

    payload: Dict
    seconds: float = 0.0

    def to_dict(self) -> Dict:
        return copy.deepcopy(self.payload)

    def to_json(self) -> str:
        return json.dumps(self.payload, indent=1) + "\n"
