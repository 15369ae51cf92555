"""Compile a pack to Python source for the stream engine (generated once, then ``exec``-ed).

The generated ``process(ev)`` is straight-line code specialised to the pack: no AST is walked per
event. Per account it keeps one list ``st`` (layout ``slots(pack)``):

* ``st[0]`` the last ts (ms), ``st[1]`` the tie counter for that millisecond, ``st[2]`` the first ts
  seen (account age);
* ``st[FIRST_USE]`` — every ``first_use`` feature of the pack shares one container of keyed 64-bit
  hashes of (feature, value) (``None`` until the first value; see ``engine._first_use``);
* ``st[LOG]`` — one window log shared by every window feature: a flat list with ``stride`` items
  per event that matched at least one window filter: ``k << NB | mask`` (``mask`` bit j = the event
  is in window feature j), the event id, then the values of the attributes windows aggregate.
  Aggregates are computed on read by a backward scan that stops at the window's lower bound, so the
  log is the only window state; every event of the account cuts it to the pack's longest window
  (``None`` when nothing is left); a tuple while it holds a few events, a list beyond;
* ``st[AGG]`` — ``None`` unless the log is long (``engine._AGG_MIN`` events): then running window
  aggregates over it, so that a busy account's reads stay O(1) amortised instead of O(log);
* ``st[DEDUP]`` — ``None`` until a rule is first true, then a list with one item per rule: the key
  of the rule's last true evaluation (for dedup);
* one slot per ``since`` feature (``(ts, tie, event_id, None)`` of the last match: its key is
  ``ts * 65536 + tie``; the 4th item is always None, kept for the snapshot shape) and per
  ``baseline`` feature (a flat ``array('q')`` of ``day, sum`` pairs). Idle slots are ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from freezedesk.monitoring.rules import render
from freezedesk.monitoring.rules.features import ATTRIBUTES, DAY_MS, TIE_SLOTS
from freezedesk.monitoring.rules.language import Feature, Pack, Ref

HEADER = 3
FIRST_USE = 3
LOG = 4
DEDUP = 5
AGG = 6


@dataclass(frozen=True)
class Layout:
    """Where each feature lives in an account's state list."""

    slot: dict[str, int]  # since / baseline feature key → slot
    bit: dict[str, int]  # window feature key → bit index in the log mask
    attrs: tuple[str, ...]  # attributes stored in log entries (positions 2..)
    stride: int
    mask_bits: int
    max_window: int  # in key units
    rule_slot: dict[str, int]  # rule id → index in ``st[DEDUP]``
    nslots: int


def layout(pack: Pack) -> Layout:
    feats = pack.features()
    windows = [f for f in feats if f.kind == "window"]
    attrs = tuple(dict.fromkeys(f.of.name for f in windows if f.of is not None))
    slot: dict[str, int] = {}
    n = AGG + 1
    for f in feats:
        if f.kind in ("since", "baseline"):
            slot[f.key] = n
            n += 1
    rule_slot = {r.id: i for i, r in enumerate(pack.rules)}  # index in the st[DEDUP] list
    return Layout(slot, {f.key: j for j, f in enumerate(windows)}, attrs, 2 + len(attrs), max(1, len(windows)),
                  max((f.window_ms for f in windows), default=0) * TIE_SLOTS, rule_slot, n)


def compile_python(pack: Pack) -> str:
    feats = pack.features()
    lay = layout(pack)
    index = {f.key: i for i, f in enumerate(feats)}
    nb, stride = lay.mask_bits, lay.stride
    used_attrs: set[str] = {"address", *lay.attrs}

    def attr_value(ref: Ref) -> str:
        if ref.feature is not None:
            return f"f{index[ref.feature]}"
        if ref.name == "listed":
            return "listed_"
        used_attrs.add(ref.name)
        return f"a_{ref.name}"

    def window_read(f: Feature) -> str:
        pos = 2 + lay.attrs.index(f.of.name) if f.of is not None else 0
        lo_m = f"((k - {f.window_ms * TIE_SLOTS} + 1) << {nb})"
        return f"_win_{f.agg}(st, {lo_m}, {lay.bit[f.key]}, {pos}, {stride})"

    def expr_name(ref: Ref) -> str:
        if ref.feature is not None:
            f = feats[index[ref.feature]]
            if f.kind == "window":
                return window_read(f)
            if f.kind == "baseline":
                return f"_baseline(st[{lay.slot[f.key]}], ts // {DAY_MS}, {f.days})"
            return f"f{index[ref.feature]}"
        if ref.name == "account_age":
            return "(ts - st[2])"
        if ref.name == "listed":
            return "listed_"
        used_attrs.add(ref.name)
        zero = {"str": "''", "bool": "False"}.get(ref.kind, "0")
        return f"(a_{ref.name} if a_{ref.name} is not None else {zero})"

    body: list[str] = []
    has_windows = False
    for f in feats:
        i = index[f.key]
        match = render.where(f.where, "python", attr_value)
        if f.of is not None:
            match = f"(a_{f.of.name} is not None and {match})"
            used_attrs.add(f.of.name)
        if f.kind == "first_use":
            assert f.of is not None
            body += [f"if {match}:", f"    f{i} = _first_use(st, _fu_hash(a_{f.of.name}, {i}))", "else:",
                     f"    f{i} = False"]
        elif f.kind == "since":
            s = lay.slot[f.key]
            # p{i}: the match before this event, which is what evidence cites (kept in a local only)
            body += [f"p{i} = st[{s}]", f"f{i} = ts - p{i}[0] if p{i} is not None else {f.default_ms}",
                     f"if {match}:", f"    st[{s}] = (ts, st[1], eid, None)"]
        elif f.kind == "window":
            if not has_windows:
                body.append("m_ = 0")
                has_windows = True
            body += [f"if {match}:", f"    m_ |= {1 << lay.bit[f.key]}"]
        else:
            assert f.of is not None
            body += [f"if {match}:",
                     f"    _add_baseline(st, {lay.slot[f.key]}, ts // {DAY_MS}, a_{f.of.name}, {f.days})"]
    if has_windows:
        values = "".join(f", a_{a}" for a in lay.attrs)
        body += ["if m_:", f"    _log_add(st, ((k << {nb}) | m_, eid{values}))"]
        # every event (not only window events) cuts what no window can read again: the account's
        # key never decreases, so entries at or below k - longest window are dead for good
        body[:0] = [f"lg_ = st[{LOG}]", f"if lg_ is not None and lg_[0] < ((k - {lay.max_window} + 1) << {nb}):",
                    f"    _log_cut(st, lg_, (k - {lay.max_window} + 1) << {nb}, {stride})"]
    for rule in pack.rules:
        cond = render.expression(rule.when, "python", expr_name)
        on = ", ".join(repr(t) for t in rule.on)
        d = lay.rule_slot[rule.id]
        wins = tuple((1 << lay.bit[f.key], f.window_ms * TIE_SLOTS) for f in rule.features if f.kind == "window")
        sinces = "".join(f"p{index[f.key]}, " for f in rule.features if f.kind == "since")
        body += [f"if typ in ({on},) and {cond}:", f"    dd = st[{DEDUP}]",
                 "    if dd is None:", f"        dd = st[{DEDUP}] = [None] * {len(pack.rules)}",
                 f"    last = dd[{d}]",
                 f"    if last is None or k - last >= {rule.dedup_ms * TIE_SLOTS}:",
                 f"        out.append(({rule.id!r}, {rule.reason_code!r}, ts, "
                 f"_evidence(st[{LOG}], k, eid, {wins!r}, ({sinces}), {nb}, {stride})))",
                 f"    dd[{d}] = k"]
    getters = [f"a_{name} = _conv_{ATTRIBUTES[name]}(getattr(ev, {name!r}, None))" for name in sorted(used_attrs)]
    lines = [
        "def process(ev):",
        "    out = []",
        "    acct = ev.account_id",
        "    eid = ev.event_id",
        "    typ = ev.type",
        "    ts = (ev.ts - _EPOCH) // _MS",
        "    st = STATES.get(acct)",
        "    if st is None:",
        f"        st = [ts, -1, ts] + [None] * {lay.nslots - HEADER}",
        "        STATES[acct] = st",
        "    if ts > st[0]:",
        "        st[0] = ts",
        "        st[1] = 0",
        "    else:",
        "        ts = st[0]  # same millisecond, or late: processed at the account's current time",
        "        st[1] += 1",
        f"        if st[1] >= {TIE_SLOTS}:",
        "            raise ValueError(f'more than 65536 events of {acct} in one millisecond')",
        f"    k = ts * {TIE_SLOTS} + st[1]",
        *("    " + g for g in getters),
        # EVM addresses also lower-cased (LISTED holds them folded too: engine.fold_listed)
        "    listed_ = a_address is not None and (a_address in LISTED or (a_address[:2] in ('0x', '0X')"
        " and a_address.lower() in LISTED))",
        *("    " + b for b in body if b),
        "    return out",
    ]
    return "\n".join(lines) + "\n"
