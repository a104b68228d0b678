"""JsonRecord: to_json/from_json for the frozen dataclasses stored as JSON (serving record, verdict, evaluation,
monitoring)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Self


class JsonRecord:
    """Mixed into a dataclass: ``to_json`` is its fields; ``from_json`` ignores keys it does not know (files of other
    versions)."""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Self:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
