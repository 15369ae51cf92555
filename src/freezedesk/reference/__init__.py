"""Reference data shipped in the package: the reason catalogue and customer texts.

``load_catalogue()`` reads the shipped ``reasons.toml`` and the ``messages/*.toml`` texts, then
the operator's own file if ``FREEZEDESK_REASON_CATALOGUE`` (or ``override``) names one: its
entries replace shipped entries with the same code and add new ones. A bad file is rejected
with the file, the entry and the field named.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from freezedesk.domain.catalogue import CatalogueError, ReasonCatalogue, parse_catalogue

LOCALES = ("en", "ja")


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(source, "-", "-", f"is not valid TOML ({exc})") from None


def shipped_messages() -> dict[str, dict[str, str]]:
    base = resources.files(__package__) / "messages"
    return {
        locale: _read_toml((base / f"{locale}.toml").read_text("utf-8"), f"messages/{locale}.toml")
        for locale in LOCALES
    }


def load_catalogue(override: str | Path | None = None) -> ReasonCatalogue:
    shipped = resources.files(__package__) / "reasons.toml"
    documents = [("reasons.toml (shipped)", _read_toml(shipped.read_text("utf-8"), "reasons.toml"))]
    path = override or os.environ.get("FREEZEDESK_REASON_CATALOGUE")
    if path:
        file = Path(path)
        if not file.is_file():
            raise CatalogueError(str(file), "-", "-", "file not found")
        documents.append((str(file), _read_toml(file.read_text("utf-8"), str(file))))
    return parse_catalogue(documents, shipped_messages())
