# ruff: noqa: S608 — this module *generates* SQL; every identifier comes from a validated rule pack
# (lower_snake_case ids, catalogue attribute names) and every value is a typed literal.
"""Compile a pack to DuckDB SQL for backtests (the same semantics as :mod:`.engine`).

``prepare`` (table ``feats``): ``raw`` (the JSONL read as text) → ``ev`` (typed: money as HUGEINT
1e-8 units, exactly DECIMAL(38,8)'s, with an integer fast path; ts as epoch ms; only the attributes
the pack reads) → ``keyed`` (the key k, same-ms ties ranked by event_id; ``acct_no``, a dense
integer per account, and ``first_ts``) → first_use flags (hash aggregates) and ``listed``.

``detect``: ``u`` (only the rows a rule is evaluated on or a window / baseline feature matches) →
``ft`` (window and baseline features over ``u``) → since features (ASOF join to the last matching
event) → ``cond`` (each rule's condition, kept only where some rule is true) → dedup (the previous
true key of the same account and rule). Windows are ``RANGE BETWEEN W·65536 - 1 PRECEDING AND
CURRENT ROW`` on k, i.e. keys in (k - W·65536, k], exactly the stream engine's deque; an aggregate
with ``FILTER (WHERE match)`` over such a frame depends only on the matching rows, which is why
dropping the other rows changes no value.
"""

from __future__ import annotations

from freezedesk.monitoring.rules import render
from freezedesk.monitoring.rules.features import ATTRIBUTES, DAY_MS, MONEY_SCALE, TIE_SLOTS
from freezedesk.monitoring.rules.language import Pack, Ref

_SQL_TYPES = {"str": "VARCHAR", "bool": "BOOLEAN", "count": "BIGINT", "money": "VARCHAR"}


def read_events_sql(path_param: str = "$events") -> str:
    cols = ", ".join(f"'{n}': '{_SQL_TYPES[k]}'" for n, k in ATTRIBUTES.items())
    return (f"read_json({path_param}, format='newline_delimited', "
            f"columns={{'event_id': 'VARCHAR', 'ts': 'VARCHAR', 'account_id': 'VARCHAR', {cols}}})")


def money_sql(name: str) -> str:
    """The exact 1e-8 integer of a validated decimal string (``\\d+(\\.\\d+)?``), as HUGEINT.

    A string→DECIMAL(38,8) cast is the dearest step of the whole backtest, so values that fit in
    a BIGINT exactly (≤ 10 integer and ≤ 8 fraction digits: no rounding involved) are parsed as
    integers; the rest (more fraction digits to round half away from zero, or very large values)
    still take the DECIMAL(38,8) cast, which defines the semantics."""
    dot = f"strpos({name}, '.')"
    slow = f"CAST(CAST({name} AS DECIMAL(38,{MONEY_SCALE})) * {10 ** MONEY_SCALE} AS HUGEINT)"
    return (f"CASE WHEN {dot} = 0 AND length({name}) <= 10 THEN CAST({name} AS BIGINT) * {10 ** MONEY_SCALE} "
            f"WHEN {dot} BETWEEN 2 AND 11 AND length({name}) - {dot} BETWEEN 1 AND {MONEY_SCALE} "
            f"THEN CAST(replace({name}, '.', '') AS BIGINT) * "
            f"CAST(10 ** ({MONEY_SCALE} - length({name}) + {dot}) AS BIGINT) "
            f"ELSE {slow} END::HUGEINT")


def compile_sql(pack: Pack, events_relation: str = "raw",
                events_rowid: str = "row_number() OVER ()") -> tuple[str, str]:
    """``(prepare, detect)``: ``prepare`` materialises the typed, keyed events with first_use flags as
    the table ``feats`` (the evidence query reads it too); ``detect`` returns the fired alerts.
    ``events_rowid`` is any unique integer per event row (``rowid`` when the events are a table)."""
    feats = pack.features()
    index = {f.key: i for i, f in enumerate(feats)}

    def col(ref: Ref) -> str:
        if ref.feature is not None:
            return f"f{index[ref.feature]}"
        return ref.name

    def expr_name(ref: Ref) -> str:
        if ref.feature is not None:
            return f"f{index[ref.feature]}"
        if ref.name == "account_age":
            return "(ts_ms - first_ts)"
        if ref.name == "listed":
            return "listed"
        zero = {"str": "''", "bool": "FALSE"}.get(ref.kind, "0")
        return f"COALESCE({ref.name}, {zero})"

    # Exact money costs a DECIMAL(38,8) parse per value (the dearest step of the whole query), so
    # only the money attributes the pack reads are parsed; the others become typed NULLs.
    used: set[str] = set()
    for f in feats:
        used.update(c.attr.name for c in f.where)
        if f.of is not None:
            used.add(f.of.name)

    def note(ref: Ref) -> str:
        used.add(ref.name)
        return "x"

    for r in pack.rules:
        render.expression(r.when, "sql", note)
    # Only the attributes the pack reads (and ``address``, for ``listed``) are carried: every later
    # stage moves narrower rows.
    used.add("address")
    typed = []
    for name, kind in ATTRIBUTES.items():
        if name == "type" or name not in used:
            continue
        typed.append(f"{money_sql(name)} AS {name}" if kind == "money" else name)
    # Windows partition by ``acct_no`` (a dense integer per account): cheaper to hash and sort.
    part = "PARTITION BY acct_no ORDER BY k"
    # Rules are only ever true on their ``on`` types, so features are evaluated on those rows only
    # (``evals``); a window / baseline / since aggregate reads only the rows its ``where`` matches.
    # Each feature is therefore computed over (matching rows ∪ evaluated rows) — a subset of the
    # events that yields the very same value at every evaluated row (RANGE frames are on k, the
    # since frame is "every earlier row"), and that is ~10x smaller than the table on real data.
    evals = sorted({t for r in pack.rules for t in r.on})
    types = ", ".join(f"'{t}'" for t in evals)
    at_eval = f"type IN ({types})" if evals else "FALSE"
    fu_cols, ft_cols, joins, ctes, u_preds, since_joins = [], [], [], [], [at_eval], []
    fu_ctes: list[str] = []
    since_cols: list[str] = []
    fu_joins: list[str] = []
    for f in feats:
        i = index[f.key]
        match = render.where(f.where, "sql", col)
        if f.of is not None:
            match = f"({f.of.name} IS NOT NULL AND {match})"
        if f.kind == "first_use":
            assert f.of is not None
            # The first matching event per (account, value): a hash aggregate over the matching rows
            # (k is unique per account), joined back — no sort of the whole table.
            fu_ctes.append(f"fu{i} AS (SELECT acct_no AS fu{i}_acct, min(k) AS fu{i}_k FROM keyed "
                           f"WHERE {match} GROUP BY acct_no, {f.of.name}), ")
            fu_joins.append(f"LEFT JOIN fu{i} ON fu{i}_acct = keyed.acct_no AND fu{i}_k = keyed.k")
            fu_cols.append(f"fu{i}_k IS NOT NULL AS f{i}")
        elif f.kind == "since":
            # The last matching event strictly before k (its time is the max, as k grows with ts).
            ctes.append(f"s{i} AS (SELECT acct_no AS s{i}_acct, k AS s{i}_k, ts_ms AS s{i}_ts FROM feats "
                        f"WHERE {match}), ")
            since_joins.append(f"ASOF LEFT JOIN s{i} ON s{i}_acct = ft.acct_no AND ft.k > s{i}_k")
            since_cols.append(f"COALESCE(ts_ms - s{i}_ts, {f.default_ms}) AS f{i}")
        elif f.kind == "window":
            u_preds.append(match)
            frame = f"({part} RANGE BETWEEN {f.window_ms * TIE_SLOTS - 1} PRECEDING AND CURRENT ROW)"
            agg = {"count": "count(*)", "sum": f"sum({f.of.name if f.of else ''})",
                   "min": f"min({f.of.name if f.of else ''})", "max": f"max({f.of.name if f.of else ''})",
                   "distinct": f"count(DISTINCT {f.of.name if f.of else ''})"}[f.agg]
            ft_cols.append(f"COALESCE({agg} FILTER (WHERE {match}) OVER {frame}, 0) AS f{i}")
        else:
            assert f.of is not None
            u_preds.append(match)
            m = (f.days + 1) // 2
            ctes.append(
                f"b{i}_d AS (SELECT acct_no, ts_ms // {DAY_MS} AS day, "
                f"sum({f.of.name}) FILTER (WHERE {match}) AS s FROM u GROUP BY ALL), "
                f"b{i} AS (SELECT acct_no AS b{i}_acct, day AS b{i}_day, list(s) FILTER (WHERE s IS NOT NULL) "
                f"OVER (PARTITION BY acct_no ORDER BY day RANGE BETWEEN {f.days} PRECEDING AND 1 PRECEDING) "
                f"AS b{i}_l FROM b{i}_d), ")
            joins.append(f"LEFT JOIN b{i} ON b{i}_acct = u.acct_no AND b{i}_day = u.ts_ms // {DAY_MS}")
            n = f"COALESCE(len(b{i}_l), 0)"
            ft_cols.append(f"CASE WHEN {m} <= {f.days} - {n} THEN 0::HUGEINT "
                           f"ELSE list_sort(b{i}_l)[{m} - ({f.days} - {n})] END AS f{i}")
    # Window functions in ft must see only the event rows, not the joined baseline columns.
    conds = []
    for r in pack.rules:
        on = ", ".join(f"'{t}'" for t in r.on)
        conds.append(f"COALESCE(type IN ({on}) AND {render.expression(r.when, 'sql', expr_name)}, FALSE) AS c_{r.id}")
    # Dedup reads only the rows where a rule is true: the latest earlier true key of the same
    # account and rule (lag) suppresses the alert when it lies within (k - dedup, k).
    hits = " UNION ALL ".join(
        f"SELECT account_id, acct_no, '{r.id}' AS rule_id, '{r.reason_code}' AS reason_code, ts_ms, k, event_id, "
        f"{r.dedup_ms * TIE_SLOTS} AS dedup FROM cond WHERE c_{r.id}" for r in pack.rules)
    any_true = " OR ".join(f"c_{r.id}" for r in pack.rules) or "FALSE"
    fu_extra = (", " + ", ".join(fu_cols)) if fu_cols else ""
    ft_extra = (", " + ", ".join(ft_cols)) if ft_cols else ""
    since_extra = (", " + ", ".join(since_cols)) if since_cols else ""
    # Ties (several events of an account in one millisecond) are rare: only candidate rows are
    # ranked. Candidates share a hash of (account, ms) with another row — a collision only adds a
    # row that then ranks 0 — and the rank is joined back on an integer row number.
    prepare = f"""CREATE OR REPLACE TEMP TABLE feats AS WITH ev AS MATERIALIZED (
  SELECT event_id, account_id, type, epoch_us(CAST(ts AS TIMESTAMPTZ)) // 1000 AS ts_ms, {', '.join(typed)},
         {events_rowid} AS rid
  FROM {events_relation}),
acct AS (SELECT account_id AS a_acct, min(ts_ms) AS first_ts, row_number() OVER () AS acct_no
  FROM ev GROUP BY account_id),
dup AS (SELECT hash(account_id, ts_ms) AS d_h FROM ev GROUP BY d_h HAVING count(*) > 1),
ties AS (SELECT rid AS t_rid, row_number() OVER (PARTITION BY account_id, ts_ms ORDER BY event_id) - 1 AS tie
  FROM ev SEMI JOIN dup ON d_h = hash(account_id, ts_ms)),
keyed AS MATERIALIZED (
  SELECT ev.* EXCLUDE (rid), ts_ms * {TIE_SLOTS} + COALESCE(tie, 0) AS k, first_ts, acct_no
  FROM ev JOIN acct ON a_acct = account_id LEFT JOIN ties ON t_rid = rid),
{''.join(fu_ctes)}done AS (
  SELECT keyed.*, COALESCE(address IN (SELECT address FROM listed_addresses), FALSE) AS listed{fu_extra}
  FROM keyed {' '.join(fu_joins)})
SELECT * FROM done"""
    detect = f"""WITH u AS (SELECT * FROM feats WHERE {' OR '.join(f'({p})' for p in u_preds)}),
{''.join(ctes)}ft AS (SELECT u.*{ft_extra} FROM u {' '.join(joins)}),
ev_at AS (SELECT ft.*{since_extra} FROM ft {' '.join(since_joins)} WHERE {at_eval}),
cond AS MATERIALIZED (SELECT * FROM (SELECT *, {', '.join(conds)} FROM ev_at)
  WHERE {any_true}),
hits AS ({hits})
SELECT account_id, rule_id, reason_code, ts_ms, k, event_id FROM (
  SELECT *, lag(k) OVER (PARTITION BY acct_no, rule_id ORDER BY k) AS prev FROM hits)
WHERE prev IS NULL OR prev <= k - dedup"""
    return prepare, detect


def evidence_sql(pack: Pack) -> str:
    """For the fired alerts (table ``alerts``), the ids of the events that made them — the same set
    as the stream engine's: the trigger, the window features' matching events, the since targets."""
    feats = pack.features()
    index = {f.key: i for i, f in enumerate(feats)}

    def col(ref: Ref) -> str:
        return f"f{index[ref.feature]}" if ref.feature is not None else ref.name

    parts = ["SELECT a.account_id, a.rule_id, a.k AS ak, a.event_id, a.k FROM alerts a"]
    for r in pack.rules:
        for f in r.features:
            match = render.where(f.where, "sql", lambda ref: "e." + col(ref))
            if f.of is not None:
                match = f"(e.{f.of.name} IS NOT NULL AND {match})"
            if f.kind == "window":
                parts.append(f"SELECT a.account_id, a.rule_id, a.k, e.event_id, e.k FROM alerts a JOIN feats e "
                             f"ON e.account_id = a.account_id AND e.k <= a.k AND e.k > a.k - {f.window_ms * TIE_SLOTS} "
                             f"WHERE a.rule_id = '{r.id}' AND {match}")
            elif f.kind == "since":
                parts.append(f"SELECT a.account_id, a.rule_id, a.k, arg_max(e.event_id, e.k), max(e.k) FROM alerts a "
                             f"JOIN feats e ON e.account_id = a.account_id AND e.k < a.k "
                             f"WHERE a.rule_id = '{r.id}' AND {match} GROUP BY ALL")
    return " UNION ".join(parts)
