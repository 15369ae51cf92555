"""The rule language: YAML rule packs loaded and validated into a typed, immutable AST.

A pack is a YAML mapping with ``pack`` (a name), an optional ``params`` mapping (pack-wide
defaults such as ``reporting_threshold``) and ``rules``, a list of rules. One rule::

    - id: structuring
      title: Repeated deposits just below the reporting threshold
      intent: >
        Several deposits each a little below the threshold within a day ...
      reason_code: SUS_STRUCTURING        # from reference/reasons.toml
      action: hold                        # alert | hold (withdrawal hold) | freeze
      on: [deposit]                       # event types on which the rule is evaluated
      params: {near: 0.9}                 # rule parameters, usable as ${near} in features and `when`
      features:
        near_threshold_24h:               # a sliding window over the account's own events
          count: events                   # count | sum: ATTR | min: ATTR | max: ATTR | distinct: ATTR
          window: 24h                     # ms s m h d
          where: {type: deposit, value_usd: {gte: "${near} * ${reporting_threshold}", lt: "${reporting_threshold}"}}
      when: near_threshold_24h >= 3       # comparisons, + - *, and / or / not, literals like 24h
      dedup: 24h                          # optional; default: the rule's largest window (else 24h)

Feature kinds (the *features catalogue* is in :mod:`.features`):

* window — ``count|sum|min|max|distinct`` over ``window`` with a ``where`` filter. The window of an
  event at key k holds the account's events with key in (k - window, k], the event itself included.
* ``since: events`` with ``where`` and ``default`` — time since the account's last *earlier* event
  matching ``where``; ``default`` (a duration) when there is none.
* ``first_use: ATTR`` with ``where`` — true when the event matches ``where`` and its ``ATTR`` value
  never appeared on an earlier matching event of the account (e.g. a never-used address).
* ``baseline: ATTR`` with ``where`` and ``days`` — the account's own normal: the *lower median* of its
  daily sums of ``ATTR`` over matching events on the ``days`` UTC days before the event's day,
  days without activity counting as zero (so a new or sporadic account has baseline 0).

``where`` maps attribute or boolean-feature names to a value, a list (any of), or a mapping of
operators ``eq ne in not_in gt gte lt lte``; all entries must hold. There is no NULL: every value
is defined, so Python's two-valued logic and SQL's three-valued logic cannot diverge.

Everything is checked at load: a malformed file raises :class:`RuleError` naming the rule id and
the field; an unknown feature, attribute, reason code or a type error in ``when`` fails here, never
at run time.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from freezedesk.monitoring.rules.features import (
    AGGREGATES,
    ATTRIBUTES,
    BUILTINS,
    DURATION_UNITS,
    EVENT_TYPES,
    MONEY_SCALE,
    Kind,
)

Action = Literal["alert", "hold", "freeze"]
ACTIONS: tuple[Action, ...] = ("alert", "hold", "freeze")
FILTER_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte")


class RuleError(ValueError):
    """A rule pack is malformed: ``rule`` is the rule id (or ``-``), ``field`` the offending field."""

    def __init__(self, source: str, rule: str, field_name: str, problem: str) -> None:
        self.source, self.rule, self.field, self.problem = source, rule, field_name, problem
        super().__init__(f"{source}: rule {rule!r}, field {field_name!r}: {problem}")


# -- the typed AST ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal_:
    """A constant. Numbers are exact: ``value = code / 10**scale`` with an integer ``code``."""

    kind: Kind
    code: int | str | bool
    scale: int = 0


@dataclass(frozen=True, slots=True)
class Ref:
    """A name: an event attribute, a built-in or a declared feature (``feature`` is its key)."""

    name: str
    kind: Kind
    scale: int = 0
    feature: str | None = None  # the shared-state key of a declared feature, None for attributes


@dataclass(frozen=True, slots=True)
class Arith:
    op: Literal["+", "-", "*"]
    left: Expr
    right: Expr
    kind: Kind
    scale: int


@dataclass(frozen=True, slots=True)
class Compare:
    op: Literal["==", "!=", "<", "<=", ">", ">="]
    left: Expr
    right: Expr
    kind: Kind = "bool"
    scale: int = 0


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: Literal["and", "or"]
    items: tuple[Expr, ...]
    kind: Kind = "bool"
    scale: int = 0


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr
    kind: Kind = "bool"
    scale: int = 0


Expr = Literal_ | Ref | Arith | Compare | BoolOp | Not


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``where`` entry: ``attr op values`` (values already typed; ``in``/``not_in`` take several)."""

    attr: Ref
    op: str
    values: tuple[Literal_, ...]


@dataclass(frozen=True, slots=True)
class Feature:
    """A declared feature. ``key`` identifies its state: equal specs in two rules share it."""

    name: str
    kind: Literal["window", "since", "first_use", "baseline"]
    where: tuple[Condition, ...]
    agg: str = ""  # window aggregate
    of: Ref | None = None  # the aggregated / remembered attribute
    window_ms: int = 0
    days: int = 0
    default_ms: int = 0
    key: str = ""

    @property
    def result_kind(self) -> Kind:
        if self.kind == "since":
            return "duration"
        if self.kind == "first_use":
            return "bool"
        if self.agg in ("count", "distinct"):
            return "count"
        assert self.of is not None
        return self.of.kind


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    intent: str
    reason_code: str
    action: Action
    on: tuple[str, ...]
    features: tuple[Feature, ...]
    when: Expr
    when_text: str
    dedup_ms: int
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pack:
    name: str
    rules: tuple[Rule, ...]
    source: str = "<pack>"

    def features(self) -> tuple[Feature, ...]:
        """Every distinct feature (by key) in the pack, in first-use order; first_use ones first
        because window filters may read them."""
        seen: dict[str, Feature] = {}
        for rule in self.rules:
            for feat in rule.features:
                seen.setdefault(feat.key, feat)
        feats = list(seen.values())
        return tuple(sorted(feats, key=lambda f: f.kind != "first_use"))


# -- loading --------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_DURATION_IN_EXPR = re.compile(r"\b(\d+)(ms|s|m|h|d)\b")
_PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_RULE_KEYS = {"id", "title", "intent", "reason_code", "action", "on", "params", "features", "when", "dedup"}
_FEATURE_KEYS = {"where", "window", "default", "days", *AGGREGATES, "since", "first_use", "baseline"}


def default_pack_path() -> Path:
    return Path(str(resources.files("freezedesk.monitoring") / "packs" / "standard.yaml"))


def reason_codes() -> frozenset[str]:
    """The catalogue's codes (shipped plus operator override), which ``reason_code`` must name."""
    from freezedesk.reference import load_catalogue

    return frozenset(reason.code for reason in load_catalogue())


def load_pack(path: str | Path | None = None, *, known_reasons: frozenset[str] | None = None) -> Pack:
    """Load and validate a pack file (the shipped standard pack when ``path`` is None)."""
    file = Path(path) if path is not None else default_pack_path()
    return parse_pack(file.read_text("utf-8"), str(file), known_reasons=known_reasons)


def parse_pack(text: str, source: str = "<pack>", *, known_reasons: frozenset[str] | None = None) -> Pack:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(source, "-", "-", f"is not valid YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise RuleError(source, "-", "-", "a pack must be a mapping with 'pack' and 'rules'")
    unknown = set(doc) - {"pack", "params", "rules"}
    if unknown:
        raise RuleError(source, "-", sorted(unknown)[0], "is not a pack field (pack, params, rules)")
    name = doc.get("pack")
    if not isinstance(name, str) or not name:
        raise RuleError(source, "-", "pack", "must be a non-empty name")
    pack_params = _params(doc.get("params", {}), source, "-")
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleError(source, "-", "rules", "must be a non-empty list of rules")
    reasons = known_reasons if known_reasons is not None else reason_codes()
    rules: list[Rule] = []
    ids: set[str] = set()
    for index, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, source, index, pack_params, reasons)
        if rule.id in ids:
            raise RuleError(source, rule.id, "id", "is used by two rules")
        ids.add(rule.id)
        rules.append(rule)
    return Pack(name=name, rules=tuple(rules), source=source)


def _params(raw: object, source: str, rule: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise RuleError(source, rule, "params", "must be a mapping of name: value")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise RuleError(source, rule, f"params.{key}", "is not a valid parameter name")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RuleError(source, rule, f"params.{key}", "must be a number, a duration or a string")
        # YAML reads 0.9 as a float; its shortest repr is the decimal the analyst wrote.
        out[key] = repr(value) if isinstance(value, float) else str(value)
    return out


def _substitute(text: str, params: Mapping[str, str], source: str, rule: str, where: str) -> str:
    def repl(match: re.Match[str]) -> str:
        if match.group(1) not in params:
            raise RuleError(source, rule, where, f"uses the unknown parameter ${{{match.group(1)}}}")
        return params[match.group(1)]

    return _PARAM.sub(repl, text)


def _parse_rule(raw: object, source: str, index: int, pack_params: Mapping[str, str],
                reasons: frozenset[str]) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError(source, f"#{index + 1}", "-", "a rule must be a mapping")
    # YAML 1.1 reads a bare `on:` key as the boolean true; the analyst meant the word.
    raw = {("on" if key is True else key): value for key, value in raw.items()}
    rid = raw.get("id")
    if not isinstance(rid, str) or not _ID.match(rid):
        raise RuleError(source, f"#{index + 1}", "id", "must be lower_snake_case, 1-64 characters")
    for key in raw:
        if key not in _RULE_KEYS:
            raise RuleError(source, rid, str(key), f"is not a rule field ({', '.join(sorted(_RULE_KEYS))})")

    def text(name: str) -> str:
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise RuleError(source, rid, name, "is required and must be text")
        return value.strip()

    title, intent, reason = text("title"), text("intent"), text("reason_code")
    if reason not in reasons:
        raise RuleError(source, rid, "reason_code", f"{reason!r} is not in the reason catalogue")
    action = raw.get("action")
    if action not in ACTIONS:
        raise RuleError(source, rid, "action", f"must be one of {', '.join(ACTIONS)}")
    on = raw.get("on")
    if isinstance(on, str):
        on = [on]
    if not isinstance(on, list) or not on or any(t not in EVENT_TYPES for t in on):
        raise RuleError(source, rid, "on", f"must list event types among {', '.join(sorted(EVENT_TYPES))}")
    params = {**pack_params, **_params(raw.get("params", {}), source, rid)}
    raw_features = raw.get("features", {})
    if not isinstance(raw_features, dict):
        raise RuleError(source, rid, "features", "must be a mapping of name: definition")
    scope: dict[str, Ref] = {
        name: Ref(name, kind, MONEY_SCALE if kind == "money" else 0) for name, kind in ATTRIBUTES.items()
    }
    scope.update({name: Ref(name, kind) for name, kind in BUILTINS.items()})
    features: list[Feature] = []
    for fname, fraw in raw_features.items():
        if not isinstance(fname, str) or not _ID.match(fname) or fname in scope:
            raise RuleError(source, rid, f"features.{fname}", "must be a new lower_snake_case name")
        feat = _parse_feature(fname, fraw, source, rid, params, scope)
        features.append(feat)
        scope[fname] = Ref(fname, feat.result_kind, MONEY_SCALE if feat.result_kind == "money" else 0, feat.key)
    when_raw = raw.get("when")
    if isinstance(when_raw, bool):
        when_raw = "true" if when_raw else "false"
    if not isinstance(when_raw, str) or not when_raw.strip():
        raise RuleError(source, rid, "when", "is required: a condition such as 'sum_24h >= 50000'")
    when_text = _substitute(when_raw, params, source, rid, "when")
    when = parse_expression(when_text, scope, source, rid)
    if when.kind != "bool":
        raise RuleError(source, rid, "when", "must be a condition (true/false), not a number")
    windows = [f.window_ms for f in features if f.kind == "window"]
    dedup_raw = raw.get("dedup")
    dedup = (_duration(_substitute(str(dedup_raw), params, source, rid, "dedup"), source, rid, "dedup")
             if dedup_raw is not None else max(windows, default=DURATION_UNITS["d"]))
    if dedup <= 0:
        raise RuleError(source, rid, "dedup", "must be a positive duration")
    return Rule(id=rid, title=title, intent=intent, reason_code=reason, action=action, on=tuple(on),
                features=tuple(features), when=when, when_text=when_raw.strip(), dedup_ms=dedup, params=params)


def _duration(text: str, source: str, rule: str, field_name: str) -> int:
    match = _DURATION.match(text)
    if not match:
        raise RuleError(source, rule, field_name, f"{text!r} is not a duration such as 90m, 24h or 30d")
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def _parse_feature(name: str, raw: object, source: str, rid: str, params: Mapping[str, str],
                   scope: Mapping[str, Ref]) -> Feature:
    where_field = f"features.{name}"
    if not isinstance(raw, dict):
        raise RuleError(source, rid, where_field, "must be a mapping")
    for key in raw:
        if key not in _FEATURE_KEYS:
            raise RuleError(source, rid, f"{where_field}.{key}", "is not a feature field")
    kinds = [k for k in (*sorted(AGGREGATES), "since", "first_use", "baseline") if k in raw]
    if len(kinds) != 1:
        raise RuleError(source, rid, where_field,
                        "must have exactly one of count, sum, min, max, distinct, since, first_use, baseline")
    head = kinds[0]
    where = _parse_where(raw.get("where", {}), source, rid, f"{where_field}.where", params, scope)

    def attr(value: object, allowed: tuple[Kind, ...]) -> Ref:
        ref = scope.get(value) if isinstance(value, str) else None
        if ref is None or ref.feature is not None or ref.name in BUILTINS or ref.kind not in allowed:
            raise RuleError(source, rid, f"{where_field}.{head}",
                            f"{value!r} is not an event attribute of kind {'/'.join(allowed)}")
        return ref

    def dur(key: str) -> int:
        if key not in raw:
            raise RuleError(source, rid, f"{where_field}.{key}", "is required")
        return _duration(_substitute(str(raw[key]), params, source, rid, f"{where_field}.{key}"),
                         source, rid, f"{where_field}.{key}")

    wkey = repr(where)
    if head in AGGREGATES:
        if head == "count":
            of = None
            if raw["count"] != "events":
                raise RuleError(source, rid, f"{where_field}.count", "must be 'events'")
        else:
            kinds_ok: tuple[Kind, ...] = ("money", "count") if head != "distinct" else ("str",)
            of = attr(raw[head], kinds_ok)
        window = dur("window")
        return Feature(name, "window", where, agg=head, of=of, window_ms=window,
                       key=f"window|{head}|{of.name if of else ''}|{window}|{wkey}")
    if head == "since":
        if raw["since"] != "events":
            raise RuleError(source, rid, f"{where_field}.since", "must be 'events'")
        default = dur("default")
        return Feature(name, "since", where, default_ms=default, key=f"since|{default}|{wkey}")
    if head == "first_use":
        of = attr(raw["first_use"], ("str",))
        if any(c.attr.feature is not None for c in where):
            # first_use flags are computed in one pass before everything else (both engines).
            raise RuleError(source, rid, f"{where_field}.where", "a first_use filter may use event attributes only")
        return Feature(name, "first_use", where, of=of, key=f"first_use|{of.name}|{wkey}")
    of = attr(raw["baseline"], ("money", "count"))
    days = raw.get("days")
    if isinstance(days, str):
        days = int(_substitute(days, params, source, rid, f"{where_field}.days"))
    if not isinstance(days, int) or not 1 <= days <= 366:
        raise RuleError(source, rid, f"{where_field}.days", "must be a number of days from 1 to 366")
    return Feature(name, "baseline", where, of=of, days=days, key=f"baseline|{of.name}|{days}|{wkey}")


def _parse_where(raw: object, source: str, rid: str, field_name: str, params: Mapping[str, str],
                 scope: Mapping[str, Ref]) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise RuleError(source, rid, field_name, "must be a mapping of attribute: value")
    out: list[Condition] = []
    for name, spec in raw.items():
        fname = f"{field_name}.{name}"
        ref = scope.get(name) if isinstance(name, str) else None
        if ref is None or (ref.feature is not None and not ref.feature.startswith("first_use|")) \
                or name == "account_age":
            raise RuleError(source, rid, fname, f"unknown attribute or feature {name!r}")
        ops: dict[str, object]
        if isinstance(spec, dict):
            ops = {str(k): v for k, v in spec.items()}
        elif isinstance(spec, list):
            ops = {"in": spec}
        else:
            ops = {"eq": spec}
        for op, value in ops.items():
            if op not in FILTER_OPS:
                raise RuleError(source, rid, f"{fname}.{op}", f"unknown operator (use {', '.join(FILTER_OPS)})")
            values = value if op in ("in", "not_in") else [value]
            if not isinstance(values, list) or not values:
                raise RuleError(source, rid, f"{fname}.{op}", "needs a non-empty list")
            if op in ("gt", "gte", "lt", "lte") and ref.kind not in ("money", "count", "duration"):
                raise RuleError(source, rid, f"{fname}.{op}", f"{name} is not a number")
            lits = tuple(_literal(v, ref, source, rid, f"{fname}.{op}", params) for v in values)
            if name == "type" and any(lit.code not in EVENT_TYPES for lit in lits):
                raise RuleError(source, rid, fname, "names an unknown event type")
            out.append(Condition(ref, op, lits))
    return tuple(out)


def _literal(value: object, ref: Ref, source: str, rid: str, field_name: str, params: Mapping[str, str]) -> Literal_:
    if ref.kind == "bool":
        if not isinstance(value, bool):
            raise RuleError(source, rid, field_name, "must be true or false")
        return Literal_("bool", value)
    if ref.kind == "str":
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise RuleError(source, rid, field_name, "must be text")
        return Literal_("str", str(value))
    text = _substitute(value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value),
                       params, source, rid, field_name)
    # A filter bound may be a small product such as "0.9 * 10000": evaluate it exactly here.
    try:
        number = Decimal(1)
        for part in text.split("*"):
            number *= Decimal(part.strip())
    except (InvalidOperation, ValueError):
        raise RuleError(source, rid, field_name, f"{text!r} is not a number") from None
    scaled = number.scaleb(ref.scale)
    if scaled != scaled.to_integral_value():
        raise RuleError(source, rid, field_name, f"{text} has more than {ref.scale} decimal places")
    return Literal_(ref.kind, int(scaled), 0)


# -- expressions ----------------------------------------------------------------------------------

_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}


def parse_expression(text: str, scope: Mapping[str, Ref], source: str = "<pack>", rid: str = "-") -> Expr:
    """Parse ``when``: Python-like syntax restricted to names, numbers, durations (``24h``), strings,
    ``true``/``false``, ``+ - *``, comparisons and ``and or not``. Every number stays exact."""
    durations: list[int] = []

    def keep(match: re.Match[str]) -> str:
        durations.append(int(match.group(1)) * DURATION_UNITS[match.group(2)])
        return f"__duration_{len(durations) - 1}"

    prepared = _DURATION_IN_EXPR.sub(keep, text.strip().replace("\n", " "))
    try:
        tree = ast.parse(prepared, mode="eval").body
    except SyntaxError as exc:
        raise RuleError(source, rid, "when", f"is not a valid condition ({exc.msg})") from None

    def fail(problem: str) -> RuleError:
        return RuleError(source, rid, "when", problem)

    def walk(node: ast.expr) -> Expr:
        if isinstance(node, ast.BoolOp):
            items = tuple(walk(v) for v in node.values)
            if any(i.kind != "bool" for i in items):
                raise fail("'and'/'or' need conditions on both sides")
            return BoolOp("and" if isinstance(node.op, ast.And) else "or", items)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            item = walk(node.operand)
            if item.kind != "bool":
                raise fail("'not' needs a condition")
            return Not(item)
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1 or type(node.ops[0]) not in _CMP:
                raise fail("write one comparison at a time, joined with 'and'")
            left, right = walk(node.left), walk(node.comparators[0])
            _check_comparable(left, right, fail)
            op = _CMP[type(node.ops[0])]
            if left.kind in ("str", "bool") and op not in ("==", "!="):
                raise fail(f"{left.kind} values can only be compared with == or !=")
            return Compare(op, left, right)  # type: ignore[arg-type]
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            left, right = walk(node.left), walk(node.right)
            op = _ARITH[type(node.op)]
            if left.kind not in _NUMERIC or right.kind not in _NUMERIC:
                raise fail(f"'{op}' needs numbers")
            if op == "*":
                if left.kind != "num" and right.kind != "num":
                    raise fail("multiply a value by a plain number only (e.g. 5 * baseline)")
                kind = right.kind if left.kind == "num" else left.kind
                return Arith("*", left, right, kind, left.scale + right.scale)
            _check_comparable(left, right, fail)
            kind = left.kind if left.kind != "num" else right.kind
            return Arith(op, left, right, kind, max(left.scale, right.scale))  # type: ignore[arg-type]
        if isinstance(node, ast.Name):
            if node.id.startswith("__duration_"):
                return Literal_("duration", durations[int(node.id.removeprefix("__duration_"))])
            if node.id in ("true", "false"):
                return Literal_("bool", node.id == "true")
            ref = scope.get(node.id)
            if ref is None:
                raise fail(f"unknown feature or attribute {node.id!r}")
            return ref
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                return Literal_("str", node.value)
            if isinstance(node.value, int | float) and not isinstance(node.value, bool):
                # The source text, not the float ast made of it: 0.1 must stay exactly 0.1.
                literal = ast.get_source_segment(prepared, node) or str(node.value)
                number = Decimal(literal.replace("_", ""))
                exponent = number.as_tuple().exponent
                scale = max(0, -exponent) if isinstance(exponent, int) else 0
                return Literal_("num", int(number.scaleb(scale)), scale)
        raise fail(f"{ast.unparse(node)!r} is not allowed in a condition")

    return walk(tree)


_NUMERIC = ("money", "count", "duration", "num")


def _check_comparable(left: Expr, right: Expr, fail: Any) -> None:
    if left.kind == right.kind or (left.kind in _NUMERIC and right.kind == "num") or (
            right.kind in _NUMERIC and left.kind == "num"):
        return
    if {left.kind, right.kind} <= {"count", "num"}:
        return
    raise fail(f"cannot compare {left.kind} with {right.kind}")


def rule_windows(rule: Rule) -> Sequence[Feature]:
    return [f for f in rule.features if f.kind == "window"]
