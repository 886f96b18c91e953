"""The renewal history of a certification: versioned entries, validated on write and on read.

Reading never fails on old or foreign data: an entry of an unknown `schema_version` (or one that
no longer validates) is kept as an opaque `UnknownEntry` and reported, never dropped or raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

# A history longer than this is logged and counted: a sign of a loop renewing by mistake, and a
# jsonb value that makes every read of the row slower.
SIZE_GUARD = 500
CURRENT_VERSION = 1


class RenewalEntry(BaseModel):
    """Version 1: who moved the expiry date, when, from what to what."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    schema_version: Literal[1] = 1
    renewed_at: AwareDatetime
    previous_expires_on: date
    new_expires_on: date
    renewed_by: Annotated[str, Field(min_length=1, max_length=200)]

    @model_validator(mode="after")
    def _moves_later(self) -> RenewalEntry:
        if self.new_expires_on <= self.previous_expires_on:
            raise ValueError("a renewal must move the expiry date later")
        return self

    def to_json(self) -> dict[str, Any]:
        """The stored shape: ISO strings, as the database trigger writes it."""
        return self.model_dump(mode="json")


class UnknownEntry(BaseModel):
    """An entry this version cannot read; kept whole so that nothing is lost on a rewrite."""

    model_config = ConfigDict(frozen=True)

    schema_version: Any = None
    raw: Any = None

    @classmethod
    def of(cls, raw: Any) -> UnknownEntry:
        """Wrap a stored value as it is."""
        version = raw.get("schema_version") if isinstance(raw, dict) else None
        return cls(schema_version=version, raw=raw)


def _wrap_unknown(raw: Any) -> Any:
    return UnknownEntry.of(raw)


def _version_tag(value: Any) -> str:
    version = value.get("schema_version") if isinstance(value, dict) else None
    # bool is an int in Python; `true` is not version 1.
    return "v1" if type(version) is int and version == CURRENT_VERSION else "unknown"


Entry = Annotated[
    Annotated[RenewalEntry, Tag("v1")]
    | Annotated[UnknownEntry, BeforeValidator(_wrap_unknown), Tag("unknown")],
    Discriminator(_version_tag),
]
_ENTRY: TypeAdapter[RenewalEntry | UnknownEntry] = TypeAdapter(Entry)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one entry was kept opaque: `unknown_version` or `invalid` (with the first error)."""

    index: int
    kind: Literal["unknown_version", "invalid"]
    detail: str


def parse_entry(raw: Any) -> RenewalEntry | UnknownEntry:
    """One entry by its version; raises ValidationError for a malformed known version."""
    return _ENTRY.validate_python(raw)


def parse_history(items: list[Any]) -> tuple[list[RenewalEntry | UnknownEntry], list[Problem]]:
    """Every entry, in order; unreadable ones kept as UnknownEntry and listed as problems."""
    entries: list[RenewalEntry | UnknownEntry] = []
    problems: list[Problem] = []
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            entries.append(UnknownEntry.of(raw))
            problems.append(Problem(index, "invalid", f"not an object: {type(raw).__name__}"))
            continue
        try:
            entry = parse_entry(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()) if part != "v1")
            detail = f"{where}: {first['msg']}" if where else str(first["msg"])
            entries.append(UnknownEntry.of(raw))
            problems.append(Problem(index, "invalid", detail))
            continue
        if isinstance(entry, UnknownEntry):
            problems.append(
                Problem(index, "unknown_version", f"schema_version {entry.schema_version!r}")
            )
        entries.append(entry)
    return entries, problems


def exceeds_size_guard(length: int) -> bool:
    """True when a history is longer than the guard allows."""
    return length > SIZE_GUARD
