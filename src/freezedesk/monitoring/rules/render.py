"""Render a typed condition (:mod:`.language`) as Python or DuckDB SQL source text.

Both compilers share this one renderer so the arithmetic is the same by construction: every
number is an integer ``code`` at a decimal ``scale`` (value = code / 10**scale), and before two
numbers are added or compared the one with the smaller scale is multiplied by a power of ten.
Nothing is ever divided or rounded, so ``withdrawn >= 0.8 * deposited`` is decided on exact
integers in Python (unbounded ints) and in DuckDB (HUGEINT, 128 bits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from freezedesk.monitoring.rules.language import Arith, BoolOp, Compare, Condition, Expr, Literal_, Not, Ref

Dialect = Literal["python", "sql"]


def _quote(value: str, dialect: Dialect) -> str:
    if dialect == "python":
        return repr(value)
    return "'" + value.replace("'", "''") + "'"


def literal(lit: Literal_, dialect: Dialect) -> str:
    if lit.kind == "str":
        return _quote(str(lit.code), dialect)
    if lit.kind == "bool":
        return ("True" if lit.code else "False") if dialect == "python" else ("TRUE" if lit.code else "FALSE")
    return str(lit.code) if dialect == "python" else f"{lit.code}::HUGEINT"


def _scaled(code: str, by: int, dialect: Dialect) -> str:
    if by == 0:
        return code
    return f"({code} * {10 ** by})" if dialect == "python" else f"({code} * {10 ** by}::HUGEINT)"


def expression(expr: Expr, dialect: Dialect, name: Callable[[Ref], str]) -> str:
    """Source text of ``expr``; ``name`` renders a reference (attribute or feature)."""

    def go(e: Expr) -> str:
        if isinstance(e, Literal_):
            return literal(e, dialect)
        if isinstance(e, Ref):
            return name(e)
        if isinstance(e, Not):
            return f"(not {go(e.item)})" if dialect == "python" else f"(NOT {go(e.item)})"
        if isinstance(e, BoolOp):
            joiner = f" {e.op} " if dialect == "python" else f" {e.op.upper()} "
            return "(" + joiner.join(go(i) for i in e.items) + ")"
        if isinstance(e, Arith) and e.op == "*":
            return f"({go(e.left)} * {go(e.right)})"
        assert isinstance(e, Arith | Compare)
        left, right = go(e.left), go(e.right)
        if e.left.kind not in ("str", "bool"):
            scale = max(e.left.scale, e.right.scale)
            left = _scaled(left, scale - e.left.scale, dialect)
            right = _scaled(right, scale - e.right.scale, dialect)
        op = "=" if (e.op == "==" and dialect == "sql") else ("<>" if e.op == "!=" and dialect == "sql" else e.op)
        return f"({left} {op} {right})"

    return go(expr)


def condition(cond: Condition, dialect: Dialect, value: str) -> str:
    """One ``where`` entry on the rendered value ``value``. An absent value (None / NULL) never
    matches — in Python by an explicit guard, in SQL because NULL comparisons are not true."""
    lits = [literal(v, dialect) for v in cond.values]
    op = cond.op
    if op in ("in", "not_in"):
        if dialect == "python":
            body = f"{value} {'in' if op == 'in' else 'not in'} ({', '.join(lits)},)"
        else:
            body = f"{value} {'IN' if op == 'in' else 'NOT IN'} ({', '.join(lits)})"
    else:
        sym = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        if dialect == "sql":
            sym = {"==": "=", "!=": "<>"}.get(sym, sym)
        body = f"{value} {sym} {lits[0]}"
    if dialect == "python":
        return f"({value} is not None and {body})"
    return f"COALESCE({body}, FALSE)"


def where(conds: tuple[Condition, ...], dialect: Dialect, value: Callable[[Ref], str]) -> str:
    if not conds:
        return "True" if dialect == "python" else "TRUE"
    joiner = " and " if dialect == "python" else " AND "
    return "(" + joiner.join(condition(c, dialect, value(c.attr)) for c in conds) + ")"
