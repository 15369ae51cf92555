# ruff: noqa: S608 — this module *generates* SQL; every identifier comes from a validated rule pack
# (lower_snake_case ids, catalogue attribute names) and every value is a typed literal.
"""Compile a pack to one DuckDB query for backtests (the same semantics as :mod:`.engine`).

Stages (CTEs): ``raw`` (the JSONL read as text) → ``ev`` (typed: money as HUGEINT 1e-8 units via
DECIMAL(38,8), ts as epoch ms) → ``keyed`` (the key k, with ties ranked by event_id) → ``fu``
(first_use flags and ``listed``) → ``ft`` (window, since and baseline features, one window
function each) → ``cond`` (each rule's condition) → ``fired`` (dedup: no true evaluation of the
rule in the preceding ``dedup``). Windows are ``RANGE BETWEEN W·65536 - 1 PRECEDING AND CURRENT
ROW`` on k, i.e. keys in (k - W·65536, k], exactly the stream engine's deque.
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


def compile_sql(pack: Pack, events_relation: str = "raw") -> tuple[str, str]:
    """``(prepare, detect)``: ``prepare`` materialises the typed, keyed events with first_use flags as
    the table ``feats`` (the evidence query reads it too); ``detect`` returns the fired alerts."""
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
    typed = []
    for name, kind in ATTRIBUTES.items():
        if kind == "money" and name not in used:
            typed.append(f"NULL::HUGEINT AS {name}")
        elif kind == "money":
            typed.append(f"CAST(CAST({name} AS DECIMAL(38,{MONEY_SCALE})) * {10 ** MONEY_SCALE} AS HUGEINT) AS {name}")
        elif name != "type":
            typed.append(name)
    part = "PARTITION BY account_id ORDER BY k"
    fu_cols, ft_cols, joins, ctes = [], [], [], []
    for f in feats:
        i = index[f.key]
        match = render.where(f.where, "sql", col)
        if f.of is not None:
            match = f"({f.of.name} IS NOT NULL AND {match})"
        if f.kind == "first_use":
            assert f.of is not None
            fu_cols.append(f"COALESCE({match} AND row_number() OVER (PARTITION BY account_id, {f.of.name}, {match} "
                           f"ORDER BY k) = 1, FALSE) AS f{i}")
        elif f.kind == "since":
            prior = f"({part} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
            ft_cols.append(f"COALESCE(ts_ms - max(CASE WHEN {match} THEN ts_ms END) OVER {prior}, {f.default_ms}) "
                           f"AS f{i}")
        elif f.kind == "window":
            frame = f"({part} RANGE BETWEEN {f.window_ms * TIE_SLOTS - 1} PRECEDING AND CURRENT ROW)"
            agg = {"count": "count(*)", "sum": f"sum({f.of.name if f.of else ''})",
                   "min": f"min({f.of.name if f.of else ''})", "max": f"max({f.of.name if f.of else ''})",
                   "distinct": f"count(DISTINCT {f.of.name if f.of else ''})"}[f.agg]
            ft_cols.append(f"COALESCE({agg} FILTER (WHERE {match}) OVER {frame}, 0) AS f{i}")
        else:
            assert f.of is not None
            m = (f.days + 1) // 2
            ctes.append(
                f"b{i}_d AS (SELECT account_id, ts_ms // {DAY_MS} AS day, "
                f"sum({f.of.name}) FILTER (WHERE {match}) AS s FROM fu GROUP BY ALL), "
                f"b{i} AS (SELECT account_id AS b{i}_acct, day AS b{i}_day, list(s) FILTER (WHERE s IS NOT NULL) "
                f"OVER (PARTITION BY account_id ORDER BY day RANGE BETWEEN {f.days} PRECEDING AND 1 PRECEDING) "
                f"AS b{i}_l FROM b{i}_d)")
            joins.append(f"LEFT JOIN b{i} ON b{i}_acct = fu.account_id AND b{i}_day = fu.ts_ms // {DAY_MS}")
            n = f"COALESCE(len(b{i}_l), 0)"
            ft_cols.append(f"CASE WHEN {m} <= {f.days} - {n} THEN 0::HUGEINT "
                           f"ELSE list_sort(b{i}_l)[{m} - ({f.days} - {n})] END AS f{i}")
    # Window functions in ft must see only the event rows, not the joined baseline columns.
    conds = []
    for r in pack.rules:
        on = ", ".join(f"'{t}'" for t in r.on)
        conds.append(f"COALESCE(type IN ({on}) AND {render.expression(r.when, 'sql', expr_name)}, FALSE) AS c_{r.id}")
    fired = " UNION ALL ".join(
        f"SELECT account_id, '{r.id}' AS rule_id, '{r.reason_code}' AS reason_code, ts_ms, k, event_id FROM ("
        f"SELECT *, max(CASE WHEN c_{r.id} THEN k END) OVER ({part} RANGE BETWEEN "
        f"{r.dedup_ms * TIE_SLOTS - 1} PRECEDING AND 1 PRECEDING) AS prev FROM cond) "
        f"WHERE c_{r.id} AND prev IS NULL" for r in pack.rules)
    fu_extra = (", " + ", ".join(fu_cols)) if fu_cols else ""
    ft_extra = (", " + ", ".join(ft_cols)) if ft_cols else ""
    prepare = f"""CREATE OR REPLACE TEMP TABLE feats AS WITH ev AS (
  SELECT event_id, account_id, type, epoch_us(CAST(ts AS TIMESTAMPTZ)) // 1000 AS ts_ms, {', '.join(typed)}
  FROM {events_relation}),
keyed AS (
  SELECT *, ts_ms * {TIE_SLOTS} + row_number() OVER (PARTITION BY account_id, ts_ms ORDER BY event_id) - 1 AS k,
         min(ts_ms) OVER (PARTITION BY account_id) AS first_ts
  FROM ev)
SELECT *, COALESCE(address IN (SELECT address FROM listed_addresses), FALSE) AS listed{fu_extra} FROM keyed"""
    detect = f"""WITH fu AS (SELECT * FROM feats),
{''.join(c + ', ' for c in ctes)}ft AS (SELECT fu.*{ft_extra} FROM fu {' '.join(joins)}),
cond AS (SELECT *, {', '.join(conds)} FROM ft)
{fired}"""
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
