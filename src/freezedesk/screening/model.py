"""The screening data model: what every list loader produces and the matcher consumes.

Pure Python, no I/O. An :class:`Entity` is one listed person, organisation, vessel or aircraft,
with the id ``<source>-<native id>`` (``ofac-306``, ``un-6907993``) that stays stable across
list updates, so a decision such as "not this person" can refer to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

Schema = Literal["person", "organisation", "vessel", "aircraft"]
SCHEMAS: tuple[Schema, ...] = ("person", "organisation", "vessel", "aircraft")
NameStrength = Literal["primary", "strong", "weak"]


@dataclass(frozen=True, slots=True)
class EntityName:
    """One name of an entity. ``strong`` aliases (a.k.a.) count like the primary name; ``weak``
    ones (f.k.a., low-quality a.k.a.) can only support a match. ``script`` is set for names in
    their original script (``"arabic"``, ``"cyrillic"``, ``"han"``, …); ``None`` means Latin."""

    text: str
    strength: NameStrength = "strong"
    script: str | None = None


@dataclass(frozen=True, slots=True)
class DigitalAddress:
    """A listed digital-currency address; ``currency`` as the list writes it (XBT, ETH, USDT…)."""

    currency: str
    address: str


@dataclass(frozen=True, slots=True)
class Entity:
    id: str
    source: str
    schema: Schema
    name: str
    aliases: tuple[EntityName, ...] = ()
    birth_dates: tuple[str, ...] = ()  # ISO 8601, possibly partial: "1970", "1970-01", "1970-01-31"
    nationalities: tuple[str, ...] = ()  # ISO 3166-1 alpha-2, upper case, where the list allows
    identifiers: tuple[tuple[str, str], ...] = ()  # (kind, value): passport, national id, IMO, …
    programmes: tuple[str, ...] = ()
    addresses: tuple[DigitalAddress, ...] = ()
    remarks: str | None = None

    def names(self) -> list[EntityName]:
        """The primary name first, then every alias."""
        return [EntityName(self.name, "primary"), *self.aliases]

    def fingerprint(self) -> str:
        """A hash of the content: a list update that changes it makes the entity "changed"."""
        content = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ListDiff:
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def touched(self) -> tuple[str, ...]:
        """Entities a re-screen must look at: new or changed ones."""
        return self.added + self.changed


def diff(old: Mapping[str, Entity], new: Mapping[str, Entity]) -> ListDiff:
    added = tuple(sorted(k for k in new if k not in old))
    removed = tuple(sorted(k for k in old if k not in new))
    changed = tuple(sorted(k for k in new if k in old and new[k].fingerprint() != old[k].fingerprint()))
    return ListDiff(added, changed, removed)


class ListFormatError(ValueError):
    """A list file is malformed or yields no entities. Names the file and, where known, the line."""

    def __init__(self, file: str, problem: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.line = line


@dataclass(frozen=True)
class ListSnapshot:
    """The entities of one or more sources as loaded at one moment."""

    entities: Mapping[str, Entity] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    @classmethod
    def of(cls, entities: Iterable[Entity], sources: Iterable[str]) -> ListSnapshot:
        by_id: dict[str, Entity] = {}
        for entity in entities:
            by_id[entity.id] = entity
        return cls(by_id, tuple(sources))
