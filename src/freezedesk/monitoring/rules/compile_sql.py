# ruff: noqa: S608 — this module *generates* SQL; every identifier comes from a validated rule pack
# (lower_snake_case ids, catalogue attribute names) and every value is a typed literal.
"""Compile a pack to one DuckDB query for backtests (the same semantics as :mod:`.engine`).

:func:`backtest_sql` reads the JSON Lines file once and does everything in a single statement;
its intermediate results are *materialised CTEs* (in-memory column collections: writing 10 M
rows to a temporary table costs seconds of compression, a materialised CTE next to nothing):

* ``ev`` — each event typed (ts as epoch ms; money as HUGEINT 1e-8 units, exactly DECIMAL(38,8)'s,
  with an integer fast path), only the attributes the pack reads, plus ``bad``: the row would be
  refused by the Python parser (:func:`row_problems_sql`). ``chk`` counts bad rows and repeated
  ids; the caller refuses the file when either is non-zero.
* ``keyed`` — the key ``k`` (same-ms ties of an account ranked by event_id, computed only for the
  rows that share a millisecond), ``acct_no`` (a dense integer per account: cheaper to hash and
  sort) and ``first_ts``; ``feats`` adds the first_use flags (hash aggregates) and ``listed``.
* ``u`` — only the rows a rule is evaluated on or a window / baseline feature matches; window and
  baseline features over ``u``; ``since`` features by ASOF join to the last matching event;
  each rule's condition; dedup (the previous true key of the same account and rule).
* evidence — the ids of the events that made each alert: window rows from ``u``, since targets
  carried from their ASOF joins.

Windows are ``RANGE BETWEEN W·65536 - 1 PRECEDING AND CURRENT ROW`` on k, i.e. keys in
(k - W·65536, k], exactly the stream engine's log; an aggregate with ``FILTER (WHERE match)`` over
such a frame depends only on the matching rows, which is why dropping the other rows changes no value.
"""

from __future__ import annotations

from freezedesk.monitoring.events import _DECIMAL, _ID, _RFC3339, EVENT_CLASSES
from freezedesk.monitoring.rules import render
from freezedesk.monitoring.rules.features import ATTRIBUTES, DAY_MS, MONEY_SCALE, TIE_SLOTS
from freezedesk.monitoring.rules.language import Feature, Pack, Ref

_SQL_TYPES = {"str": "VARCHAR", "bool": "BOOLEAN", "count": "BIGINT", "money": "VARCHAR"}
_MONEY = tuple(name for name, kind in ATTRIBUTES.items() if kind == "money")

#: Columns of the :func:`backtest_sql` result, in order.
RESULT_COLUMNS = ("bad_rows", "duplicate_ids", "account_id", "rule_id", "reason_code", "ts_ms", "event_ids")


def read_events_sql(path_param: str = "$events") -> str:
    cols = ", ".join(f"'{n}': '{_SQL_TYPES[k]}'" for n, k in ATTRIBUTES.items())
    return (f"read_json({path_param}, format='newline_delimited', "
            f"columns={{'event_id': 'VARCHAR', 'ts': 'VARCHAR', 'account_id': 'VARCHAR', {cols}}})")


def _sql_regex(pattern: str) -> str:
    # Python's fullmatch patterns are RE2-compatible here; anchor them for regexp_full_match.
    return "'" + pattern.replace("'", "''") + "'"


#: RFC 3339 as the Python parser accepts it: the same pattern with the offset made mandatory.
_RFC3339_WITH_OFFSET = _RFC3339.pattern.removesuffix("?")
assert _RFC3339.pattern != _RFC3339_WITH_OFFSET, "events._RFC3339 changed shape: update the SQL check"


def account_problem_sql(column: str = "account_id") -> str:
    """True for an account id the Python parser would refuse (checked once per distinct account)."""
    return f"({column} IS NULL OR NOT regexp_full_match({column}, {_sql_regex(_ID.pattern)}))"


def row_problems_sql() -> str:
    """True for a row of :func:`read_events_sql` that the Python parser would refuse, except for
    its account id (:func:`account_problem_sql`, checked per account, not per event).

    The per-type required fields come from the event model itself (``EVENT_CLASSES``), so a field
    added there is checked here without anyone remembering to.
    """
    common = {"event_id", "ts", "account_id", "type"}
    per_type = []
    for kind, cls in EVENT_CLASSES.items():
        own = [f for f in cls.__dataclass_fields__ if f not in common]
        missing = " OR ".join(f"{f} IS NULL" for f in own) or "FALSE"
        foreign = " OR ".join(f"{f} IS NOT NULL" for f in ATTRIBUTES if f not in own and f != "type") or "FALSE"
        per_type.append(f"WHEN '{kind.value}' THEN ({missing}) OR ({foreign})")
    money = " OR ".join(f"({m} IS NOT NULL AND NOT regexp_full_match({m}, {_sql_regex(_DECIMAL.pattern)}))"
                        for m in _MONEY)
    ident = _sql_regex(_ID.pattern)
    return (f"event_id IS NULL OR ts IS NULL OR type IS NULL OR NOT regexp_full_match(event_id, {ident}) "
            f"OR NOT regexp_full_match(ts, {_sql_regex(_RFC3339_WITH_OFFSET)}) "
            f"OR TRY_CAST(ts AS TIMESTAMPTZ) IS NULL OR ({money}) "
            f"OR CASE type {' '.join(per_type)} ELSE TRUE END")


def money_sql(name: str) -> str:
    """The exact 1e-8 integer of a decimal string (``\\d+(\\.\\d+)?``), as HUGEINT; NULL if not one.

    A string→DECIMAL(38,8) cast is the dearest step of reading, so values that fit in a BIGINT
    exactly (≤ 10 integer and ≤ 8 fraction digits: no rounding involved) are parsed as integers;
    the rest (more fraction digits to round half away from zero, or very large values) take the
    DECIMAL(38,8) cast, which defines the semantics, and keep its digits (multiplying it by 1e8
    would overflow DECIMAL(38) for the 24 integer digits an event may carry)."""
    dot = f"strpos({name}, '.')"
    slow = f"TRY_CAST(replace(CAST(TRY_CAST({name} AS DECIMAL(38,{MONEY_SCALE})) AS VARCHAR), '.', '') AS HUGEINT)"
    return (f"CASE WHEN {dot} = 0 AND length({name}) <= 10 THEN TRY_CAST({name} AS BIGINT) * {10 ** MONEY_SCALE} "
            f"WHEN {dot} BETWEEN 2 AND 11 AND length({name}) - {dot} BETWEEN 1 AND {MONEY_SCALE} "
            f"THEN TRY_CAST(replace({name}, '.', '') AS BIGINT) * "
            f"CAST(10 ** ({MONEY_SCALE} - length({name}) + {dot}) AS BIGINT) "
            f"ELSE {slow} END::HUGEINT")


def listed_sql(column: str = "address") -> str:
    """The ``listed`` built-in: the address is in ``listed_addresses`` (EVM addresses — ``0x…`` —
    compared case-insensitively: EIP-55 mixed case is a checksum, not part of the address; the
    table holds listed EVM addresses in lower case too, see ``engine.fold_listed``)."""
    return (f"COALESCE({column} IN (SELECT address FROM listed_addresses) OR "
            f"(lower({column}[:2]) = '0x' AND lower({column}) IN (SELECT address FROM listed_addresses)), FALSE)")


class _Names:
    """How the features of a pack are named and matched in SQL."""

    def __init__(self, pack: Pack) -> None:
        self.feats = pack.features()
        self.index = {f.key: i for i, f in enumerate(self.feats)}

    def col(self, ref: Ref) -> str:
        return f"f{self.index[ref.feature]}" if ref.feature is not None else ref.name

    def match(self, f: Feature, prefix: str = "", *, attributes_only: bool = False) -> str:
        """The feature's ``where`` (and ``of`` present) on a row, columns prefixed by ``prefix``.

        ``attributes_only`` drops the conditions on other features (first_use flags): a weaker
        test that needs only the event's own columns, true wherever the full one is."""
        conds = tuple(c for c in f.where if not (attributes_only and c.attr.feature is not None))
        cond = render.where(conds, "sql", lambda ref: prefix + self.col(ref))
        return f"({prefix}{f.of.name} IS NOT NULL AND {cond})" if f.of is not None else cond


def _needs_flags(f: Feature) -> bool:
    return any(c.attr.feature is not None for c in f.where)


def backtest_sql(pack: Pack, source: str) -> str:
    """The whole backtest as one query over ``source`` (a :func:`read_events_sql` relation).

    Result columns :data:`RESULT_COLUMNS`: every row carries ``bad_rows`` and ``duplicate_ids``
    (if either is non-zero the alerts mean nothing and the file must be refused); then one row per
    alert, ordered by (ts, account, rule) — or a single row of NULLs when nothing fired. The
    table ``listed_addresses (address VARCHAR)`` must exist.
    """
    names = _Names(pack)
    feats, index = names.feats, names.index

    def expr_name(ref: Ref) -> str:
        if ref.feature is not None:
            return f"f{index[ref.feature]}"
        if ref.name == "account_age":
            return "(ts_ms - first_ts)"
        if ref.name == "listed":
            return "listed"
        zero = {"str": "''", "bool": "FALSE"}.get(ref.kind, "0")
        return f"COALESCE({ref.name}, {zero})"

    # Exact money costs a parse per value, so only the attributes the pack reads are typed and
    # carried (``address`` always, for ``listed``): every later stage moves narrower rows.
    used: set[str] = {"address"}
    for f in feats:
        used.update(c.attr.name for c in f.where)
        if f.of is not None:
            used.add(f.of.name)

    def note(ref: Ref) -> str:
        used.add(ref.name)
        return "x"

    for r in pack.rules:
        render.expression(r.when, "sql", note)
    carried = [n for n in ATTRIBUTES if n != "type" and n in used]
    typed = ", ".join(f"{money_sql(n)} AS {n}" if ATTRIBUTES[n] == "money" else n for n in carried)
    attrs = ", ".join(carried)
    # Windows partition by ``acct_no`` (a dense integer per account): cheaper to hash and sort.
    part = "PARTITION BY acct_no ORDER BY k"
    # Rules are only ever true on their ``on`` types, so features are evaluated on those rows only;
    # a window / baseline / since aggregate reads only the rows its ``where`` matches. Each feature
    # is therefore computed over (matching rows ∪ evaluated rows) — a subset of the events that
    # yields the very same value at every evaluated row (RANGE frames are on k, the since frame is
    # "every earlier row"), and that is ~10x smaller than the events on real data. ``u`` is cut in
    # two steps: first on the event's own columns (``loose``), then — once the first_use flags are
    # joined to those rows only — exactly.
    evals = sorted({t for r in pack.rules for t in r.on})
    at_eval = f"type IN ({', '.join(repr(t) for t in evals)})" if evals else "FALSE"
    # (CTE text, its rows' filter): "@KEYED@" / "@FLAGGED@" become the keyed rows of that filter.
    fu_ctes: list[tuple[str, str]] = []
    ctes: list[tuple[str, str]] = []
    fu_joins, fu_cols, joins, ft_cols = [], [], [], []
    loose, exact = [at_eval], [at_eval]
    since_joins, since_cols, since_carry = [], [], []
    for f in feats:
        i = index[f.key]
        match = names.match(f)
        if f.kind == "first_use":
            assert f.of is not None
            # The first matching event per (account, value): a hash aggregate over the matching rows
            # (k is unique per account), joined back — no sort of the events.
            fu_ctes.append((f"fu{i} AS (SELECT acct_no AS fu{i}_acct, min(k) AS fu{i}_k FROM @KEYED@ "
                            f"GROUP BY acct_no, {f.of.name}),\n", match))
            fu_joins.append(f"LEFT JOIN fu{i} ON fu{i}_acct = acct_no AND fu{i}_k = k")
            fu_cols.append(f", fu{i}_k IS NOT NULL AS f{i}")
        elif f.kind == "since":
            # The last matching event strictly before k (its time is the max, as k grows with ts).
            # Read from the keyed events unless the filter needs first_use flags.
            source_rows = f"(SELECT * FROM @FLAGGED@ WHERE {match})" if _needs_flags(f) else "@KEYED@"
            ctes.append((f"s{i} AS (SELECT acct_no AS s{i}_acct, k AS s{i}_k, ts_ms AS s{i}_ts, event_id AS s{i}_eid "
                          f"FROM {source_rows}),\n",
                         names.match(f, attributes_only=True)))
            since_joins.append(f"ASOF LEFT JOIN s{i} ON s{i}_acct = ft.acct_no AND ft.k > s{i}_k")
            # the matched event is also evidence: its id and key ride along to the alert
            since_cols.append(f", COALESCE(ts_ms - s{i}_ts, {f.default_ms}) AS f{i}, s{i}_eid, s{i}_k")
            since_carry.append(f", s{i}_eid, s{i}_k")
        elif f.kind == "window":
            loose.append(names.match(f, attributes_only=True))
            exact.append(match)
            frame = f"({part} RANGE BETWEEN {f.window_ms * TIE_SLOTS - 1} PRECEDING AND CURRENT ROW)"
            of = f.of.name if f.of is not None else ""
            agg = {"count": "count(*)", "sum": f"sum({of})", "min": f"min({of})", "max": f"max({of})",
                   "distinct": f"count(DISTINCT {of})"}[f.agg]
            ft_cols.append(f", COALESCE({agg} FILTER (WHERE {match}) OVER {frame}, 0) AS f{i}")
        else:
            assert f.of is not None
            loose.append(names.match(f, attributes_only=True))
            exact.append(match)
            m = (f.days + 1) // 2
            ctes.append((
                f"b{i}_d AS (SELECT acct_no, ts_ms // {DAY_MS} AS day, "
                f"sum({f.of.name}) FILTER (WHERE {match}) AS s FROM u GROUP BY ALL),\n"
                f"b{i} AS (SELECT acct_no AS b{i}_acct, day AS b{i}_day, list(s) FILTER (WHERE s IS NOT NULL) "
                f"OVER (PARTITION BY acct_no ORDER BY day RANGE BETWEEN {f.days} PRECEDING AND 1 PRECEDING) "
                f"AS b{i}_l FROM b{i}_d),\n", ""))
            joins.append(f"LEFT JOIN b{i} ON b{i}_acct = u.acct_no AND b{i}_day = u.ts_ms // {DAY_MS}")
            n = f"COALESCE(len(b{i}_l), 0)"
            ft_cols.append(f", CASE WHEN {m} <= {f.days} - {n} THEN 0::HUGEINT "
                           f"ELSE list_sort(b{i}_l)[{m} - ({f.days} - {n})] END AS f{i}")
    conds = ", ".join(
        f"COALESCE(type IN ({', '.join(repr(t) for t in r.on)}) AND "
        f"{render.expression(r.when, 'sql', expr_name)}, FALSE) AS c_{r.id}" for r in pack.rules)
    any_true = " OR ".join(f"c_{r.id}" for r in pack.rules) or "FALSE"
    # Dedup reads only the rows where a rule is true: the latest earlier true key of the same
    # account and rule (lag) suppresses the alert when it lies within (k - dedup, k).
    hits = " UNION ALL ".join(
        f"SELECT acct_no, '{r.id}' AS rule_id, '{r.reason_code}' AS reason_code, ts_ms, k, event_id, "
        f"{r.dedup_ms * TIE_SLOTS} AS dedup{''.join(since_carry)} FROM cond WHERE c_{r.id}" for r in pack.rules)
    # Ties (several events of an account in one millisecond) are rare: only the rows that share a
    # hash of (account, ms) with another row are ranked — once, over all of them (``tied``); every
    # reader takes the other rows with tie 0 (a hash collision only adds a row that ranks 0).
    tie_key = "hash(acct_no, ts_ms)"
    cols = f"event_id, acct_no, type, ts_ms, {attrs}"

    def keyed(where: str) -> str:
        """The keyed events (``k`` = ts_ms·65536 + tie) that satisfy ``where`` (event columns only)."""
        return (f"(SELECT {cols}, ts_ms * {TIE_SLOTS} AS k FROM ev ANTI JOIN dup ON d_h = {tie_key} "
                f"WHERE {where}\n   UNION ALL SELECT {cols}, k FROM tied WHERE {where})")

    def flagged(where: str) -> str:
        """:func:`keyed` plus ``listed`` and the first_use flags."""
        return (f"(SELECT k1.*, {listed_sql()} AS listed{''.join(fu_cols)}\n"
                f"   FROM {keyed(where)} k1 {' '.join(fu_joins)})")

    fu_sql = "".join(fu.replace("@KEYED@", keyed(match)) for fu, match in fu_ctes)
    since_sql = "".join(c.replace("@KEYED@", keyed(m)).replace("@FLAGGED@", flagged(m)) for c, m in ctes)

    def ors(preds: list[str]) -> str:
        return " OR ".join(f"({p})" for p in preds)

    # An account is numbered by the 64-bit hash of its id (no join to a numbering table on every
    # event); two accounts with one hash are counted as ``duplicate_ids`` like two equal event ids,
    # and the caller then falls back to the exact path.
    return f"""WITH ev AS MATERIALIZED (
  SELECT event_id, account_id, hash(account_id) AS acct_no, type,
         epoch_us(TRY_CAST(ts AS TIMESTAMPTZ)) // 1000 AS ts_ms, {typed}, ({row_problems_sql()}) AS bad
  FROM {source}),
acct AS MATERIALIZED (SELECT account_id AS a_acct, any_value(acct_no) AS acct_no, min(ts_ms) AS first_ts
  FROM ev GROUP BY account_id),
chk AS MATERIALIZED (
  SELECT count(*) FILTER (WHERE bad) + (SELECT count(*) FROM acct WHERE {account_problem_sql('a_acct')}) AS bad_rows,
         count(*) - count(DISTINCT hash(event_id)) + (SELECT count(*) - count(DISTINCT acct_no) FROM acct) AS dupes
  FROM ev),
dup AS MATERIALIZED (SELECT {tie_key} AS d_h FROM ev GROUP BY d_h HAVING count(*) > 1),
tied AS MATERIALIZED (
  SELECT {cols}, ts_ms * {TIE_SLOTS} + row_number() OVER (PARTITION BY acct_no, ts_ms ORDER BY event_id) - 1 AS k
  FROM ev SEMI JOIN dup ON d_h = {tie_key}),
{fu_sql}u AS MATERIALIZED (SELECT * FROM {flagged(ors(loose))} WHERE {ors(exact)}),
{since_sql}ft AS (SELECT u.*{''.join(ft_cols)} FROM u {' '.join(joins)}),
ev_at AS (SELECT ft.*{''.join(since_cols)}, acct.first_ts FROM ft {' '.join(since_joins)}
  JOIN acct ON acct.acct_no = ft.acct_no WHERE {at_eval}),
cond AS MATERIALIZED (SELECT * FROM (SELECT *, {conds} FROM ev_at) WHERE {any_true}),
hits AS ({hits}),
alerts AS MATERIALIZED (
  SELECT * EXCLUDE (prev, dedup) FROM (
    SELECT *, lag(k) OVER (PARTITION BY acct_no, rule_id ORDER BY k) AS prev FROM hits)
  WHERE prev IS NULL OR prev <= k - dedup),
{_evidence_ctes(pack, names)}
found AS (
  SELECT a_acct AS account_id, a.rule_id, a.reason_code, a.ts_ms, list(i.event_id ORDER BY i.k, i.event_id) AS event_ids
  FROM ids i JOIN alerts a ON i.acct_no = a.acct_no AND i.rule_id = a.rule_id AND i.ak = a.k
  JOIN acct ON acct.acct_no = a.acct_no GROUP BY ALL)
SELECT chk.bad_rows, chk.dupes, found.* FROM chk LEFT JOIN found ON TRUE
ORDER BY found.ts_ms, found.account_id, found.rule_id"""


def _evidence_ctes(pack: Pack, names: _Names) -> str:
    """``ids``: for each fired alert, the ids of the events that made it — the same set as the
    stream engine's: the trigger, the window features' matching events (all of them are rows of
    ``u``) and the event each since feature matched (carried along from its ASOF join)."""
    parts = ["SELECT a.acct_no, a.rule_id, a.k AS ak, a.event_id, a.k FROM alerts a"]
    for r in pack.rules:
        for f in r.features:
            i = names.index[f.key]
            if f.kind == "window":
                parts.append(f"SELECT a.acct_no, a.rule_id, a.k, e.event_id, e.k FROM u e JOIN alerts a "
                             f"ON e.acct_no = a.acct_no AND e.k <= a.k AND e.k > a.k - {f.window_ms * TIE_SLOTS} "
                             f"WHERE a.rule_id = '{r.id}' AND {names.match(f, 'e.')}")
            elif f.kind == "since":
                parts.append(f"SELECT acct_no, rule_id, k, s{i}_eid, s{i}_k FROM alerts "
                             f"WHERE rule_id = '{r.id}' AND s{i}_eid IS NOT NULL")
    union = "\n  UNION ".join(parts)
    return f"ids AS ({union}),"


__all__ = ["RESULT_COLUMNS", "backtest_sql", "listed_sql", "money_sql", "read_events_sql", "row_problems_sql"]
