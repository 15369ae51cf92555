"""List loaders: each official format in its own module, all producing :class:`~..model.Entity`.

A *source spec* names a format and a file: ``ofac-csv:DIR``, ``ofac-xml:FILE`` (advanced or
enhanced), ``un-xml:FILE``, ``eu-xml:FILE``, ``uk-xml:FILE``, ``ftm:FILE`` or
``ftm@PREFIX:FILE`` (ids ``PREFIX-<id>``, to load two FollowTheMoney datasets side by side).
Every loader fails loudly — :class:`~..model.ListFormatError` naming the file and, where known,
the line — on a malformed file or one without entities, so a bad download never replaces a
good list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from freezedesk.screening.lists import eu, ftm, ofac_csv, ofac_xml, uk, un_xml
from freezedesk.screening.model import Entity, ListFormatError, ListSnapshot

#: kind → (source name, loader). The source name is also every entity id's prefix.
LOADERS: dict[str, tuple[str, Callable[[Path], list[Entity]]]] = {
    "ofac-csv": ("ofac", ofac_csv.load),
    "ofac-xml": ("ofac", ofac_xml.load),
    "un-xml": ("un", un_xml.load),
    "eu-xml": ("eu", eu.load),
    "uk-xml": ("uk", uk.load),
}


def load_source(spec: str) -> tuple[str, list[Entity]]:
    """(source name, entities) for one ``kind:path`` spec."""
    kind, sep, location = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or not location.strip():
        raise ListFormatError(spec, "a source is written KIND:PATH, e.g. ofac-csv:data/ofac or un-xml:consolidated.xml")
    path = Path(location.strip()).expanduser()
    if kind == "ftm" or kind.startswith("ftm@"):
        prefix = kind.partition("@")[2] or ftm.DEFAULT_PREFIX
        return prefix, ftm.load(path, prefix=prefix)
    if kind not in LOADERS:
        known = ", ".join([*LOADERS, "ftm", "ftm@PREFIX"])
        raise ListFormatError(spec, f"unknown list kind {kind!r} (known: {known})")
    source, loader = LOADERS[kind]
    if not path.exists():
        raise ListFormatError(str(path), "file not found")
    return source, loader(path)


def load_snapshot(specs: Iterable[str]) -> ListSnapshot:
    """Load every source, all or nothing: the first bad file raises and nothing is returned."""
    entities: list[Entity] = []
    sources: list[str] = []
    for spec in specs:
        source, loaded = load_source(spec)
        entities.extend(loaded)
        if source not in sources:
            sources.append(source)
    if not sources:
        raise ListFormatError("(no source)", "give at least one list source")
    return ListSnapshot.of(entities, sources)


__all__ = ["LOADERS", "load_snapshot", "load_source"]
