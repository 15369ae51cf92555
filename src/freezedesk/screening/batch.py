"""In-memory batch screening (``freezedesk screen batch``): no database needed.

Input: JSON lines ``{"id", "name", "schema"?, "birth_date"?, "country"?}``. Output: JSON lines
``{"id", "matches": [{"entity_id", "score", "matched_name", "explanation"}], "elapsed_us"}`` with
only the matches at or above the threshold. A bad input line stops the run before anything is
written, naming the file, the line and the field.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from freezedesk.screening.matcher import NameIndex, Query

_SCHEMAS = frozenset({"person", "organisation", "vessel", "aircraft"})
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_FIELDS = frozenset({"id", "name", "schema", "birth_date", "country"})


class QueryFileError(ValueError):
    def __init__(self, file: str, line: int, field: str, problem: str) -> None:
        super().__init__(f"{file}:{line}: field {field!r}: {problem}")


@dataclass(frozen=True, slots=True)
class QueryLine:
    id: str
    query: Query


def read_queries(path: Path) -> list[QueryLine]:
    """Parse and validate every line first: all good, or an error naming file, line and field."""
    queries: list[QueryLine] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                raise QueryFileError(str(path), number, "-", f"not valid JSON ({exc.msg})") from None
            if not isinstance(raw, dict):
                raise QueryFileError(str(path), number, "-", "each line must be a JSON object")
            queries.append(_parse(raw, str(path), number, seen))
    return queries


def _parse(raw: dict[str, object], file: str, number: int, seen: set[str]) -> QueryLine:
    unknown = set(raw) - _FIELDS
    if unknown:
        raise QueryFileError(file, number, sorted(unknown)[0], "is not a known field")
    qid, name = raw.get("id"), raw.get("name")
    if not isinstance(qid, str | int) or isinstance(qid, bool) or str(qid) == "":
        raise QueryFileError(file, number, "id", "is required (string or number)")
    if str(qid) in seen:
        raise QueryFileError(file, number, "id", f"{qid!r} appears twice")
    seen.add(str(qid))
    if not isinstance(name, str) or not name.strip():
        raise QueryFileError(file, number, "name", "is required and must be a non-empty string")
    schema, birth, country = raw.get("schema"), raw.get("birth_date"), raw.get("country")
    if schema is not None and schema not in _SCHEMAS:
        raise QueryFileError(file, number, "schema", f"must be one of {', '.join(sorted(_SCHEMAS))}")
    if birth is not None and (not isinstance(birth, str) or not _DATE.match(birth)):
        raise QueryFileError(file, number, "birth_date", "must be YYYY, YYYY-MM or YYYY-MM-DD")
    if country is not None and (not isinstance(country, str) or len(country) != 2 or not country.isalpha()):
        raise QueryFileError(file, number, "country", "must be an ISO 3166 alpha-2 code")
    return QueryLine(str(qid), Query(name=name, schema=schema if isinstance(schema, str) else None,
                                     birth_date=birth if isinstance(birth, str) else None,
                                     country=country.upper() if isinstance(country, str) else None))


def screen(index: NameIndex, queries: list[QueryLine], threshold: float) -> Iterator[dict[str, object]]:
    for line in queries:
        started = time.perf_counter_ns()
        matches = index.search(line.query, threshold=threshold)
        yield {
            "id": line.id,
            "matches": [{"entity_id": m.entity_id, "score": round(m.score, 4), "matched_name": m.matched_name,
                         "explanation": m.explanation} for m in matches],
            "elapsed_us": (time.perf_counter_ns() - started) // 1000,
        }


def write_atomically(path: Path, lines: Iterator[dict[str, object]]) -> int:
    """Write JSON lines to a temporary file and rename it: a failed run leaves no partial output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    count = 0
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for item in lines:
                out.write(json.dumps(item, ensure_ascii=False) + "\n")
                count += 1
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return count
