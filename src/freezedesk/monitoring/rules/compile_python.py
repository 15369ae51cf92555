"""Compile a pack to Python source for the stream engine (generated once, then ``exec``-ed).

The generated ``process(ev)`` is straight-line code specialised to the pack: no AST is walked per
event. Per account it keeps one list ``st``: ``st[0]`` the last ts (ms), ``st[1]`` the tie counter
for that millisecond, ``st[2]`` the first ts seen (account age), then one slot per feature (None
until first used, so idle features cost 8 bytes) and one per rule (the key of the rule's last
true evaluation, for dedup). Window slots hold ``[deque of (k, value, event_id), aggregate]``
updated incrementally; they are evicted lazily when a rule reads them (and on append).
"""

from __future__ import annotations

from freezedesk.monitoring.rules import render
from freezedesk.monitoring.rules.features import ATTRIBUTES, DAY_MS, TIE_SLOTS
from freezedesk.monitoring.rules.language import Pack, Ref

HEADER = 3


def compile_python(pack: Pack) -> str:
    feats = pack.features()
    slot = {f.key: HEADER + i for i, f in enumerate(feats)}
    index = {f.key: i for i, f in enumerate(feats)}
    rule_slot = {r.id: HEADER + len(feats) + i for i, r in enumerate(pack.rules)}
    nslots = HEADER + len(feats) + len(pack.rules)
    used_attrs: set[str] = {"address"}

    def attr_value(ref: Ref) -> str:
        if ref.feature is not None:
            return f"f{index[ref.feature]}"
        if ref.name == "listed":
            return "listed_"
        used_attrs.add(ref.name)
        return f"a_{ref.name}"

    def expr_name(ref: Ref) -> str:
        if ref.feature is not None:
            f = feats[index[ref.feature]]
            i = index[ref.feature]
            if f.kind == "window":
                return f"_win_{f.agg}(st[{slot[f.key]}], k - {f.window_ms * TIE_SLOTS})"
            if f.kind == "baseline":
                return f"_baseline(st[{slot[f.key]}], ts // {DAY_MS}, {f.days})"
            return f"f{i}"
        if ref.name == "account_age":
            return "(ts - st[2])"
        if ref.name == "listed":
            return "listed_"
        used_attrs.add(ref.name)
        zero = {"str": "''", "bool": "False"}.get(ref.kind, "0")
        return f"(a_{ref.name} if a_{ref.name} is not None else {zero})"

    body: list[str] = []
    for f in feats:
        i, s = index[f.key], slot[f.key]
        match = render.where(f.where, "python", attr_value)
        if f.of is not None:
            match = f"(a_{f.of.name} is not None and {match})"
            used_attrs.add(f.of.name)
        if f.kind == "first_use":
            body += [f"if {match}:", f"    s = st[{s}]", "    if s is None:", f"        s = st[{s}] = set()",
                     f"    f{i} = a_{f.of.name} not in s" if f.of else "", f"    if f{i}:",
                     f"        s.add(a_{f.of.name})" if f.of else "", "else:", f"    f{i} = False"]
        elif f.kind == "since":
            body += [f"p = st[{s}]", f"f{i} = ts - p[0] if p is not None else {f.default_ms}",
                     # only the previous level is ever read (evidence): keep one, never a chain
                     f"if {match}:", f"    st[{s}] = (ts, k, eid, p[:3] if p is not None else None)"]
        elif f.kind == "window":
            v = f"a_{f.of.name}" if f.of else "1"
            body += [f"if {match}:", f"    _add_{f.agg}(st, {s}, k, {v}, eid, k - {f.window_ms * TIE_SLOTS})"]
        else:
            assert f.of is not None
            body += [f"if {match}:", f"    _add_baseline(st, {s}, ts // {DAY_MS}, a_{f.of.name}, {f.days})"]
    for rule in pack.rules:
        cond = render.expression(rule.when, "python", expr_name)
        on = ", ".join(repr(t) for t in rule.on)
        d = rule_slot[rule.id]
        evidence = [(slot[f.key], f.kind, f.window_ms * TIE_SLOTS) for f in rule.features
                    if f.kind in ("window", "since")]
        body += [f"if typ in ({on},) and {cond}:", f"    last = st[{d}]",
                 f"    if last is None or k - last >= {rule.dedup_ms * TIE_SLOTS}:",
                 f"        out.append(({rule.id!r}, {rule.reason_code!r}, ts, _evidence(st, k, eid, {evidence!r})))",
                 f"    st[{d}] = k"]
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
        f"        st = [ts, -1, ts] + [None] * {nslots - HEADER}",
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
        "    listed_ = a_address is not None and a_address in LISTED",
        *("    " + b for b in body if b),
        "    return out",
    ]
    return "\n".join(lines) + "\n"
