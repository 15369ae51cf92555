"""The rule language rejects a malformed pack at load, naming the rule id and the field.

Each case starts from one valid rule, breaks one thing, and checks the :class:`RuleError`'s
``rule`` and ``field`` (and a word of the message), so an analyst's typo is never discovered at
run time — or, worse, silently evaluated as false.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from freezedesk.monitoring.rules import RuleError, load_pack
from freezedesk.monitoring.rules.language import parse_pack

REASONS = frozenset({"SUS_STRUCTURING", "SUS_HIGH_VOLUME"})


def _rule(**changes: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": "near_threshold",
        "title": "Deposits just below the threshold",
        "intent": "Splitting deposits.",
        "reason_code": "SUS_STRUCTURING",
        "action": "hold",
        "on": ["deposit"],
        "params": {"near": 0.9, "min_count": 3},
        "features": {"near_24h": {"count": "events", "window": "24h",
                                  "where": {"type": "deposit", "value_usd": {"gte": "${near} * 10000"}}}},
        "when": "near_24h >= ${min_count}",
    }
    for key, value in changes.items():
        if value is None:
            rule.pop(key, None)
        else:
            rule[key] = value
    return rule


def _load(*rules: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
    doc: dict[str, Any] = {"pack": "t", "rules": list(rules)}
    if params is not None:
        doc["params"] = params
    return parse_pack(yaml.safe_dump(doc), "t.yaml", known_reasons=REASONS)


def _feature(**spec: Any) -> dict[str, Any]:
    return {"features": {"f": spec}, "when": "f >= 1"}


def test_the_base_rule_and_the_standard_pack_load() -> None:
    pack = _load(_rule())
    assert pack.rules[0].id == "near_threshold"
    assert [r.id for r in load_pack(None).rules] == [
        "high_volume", "structuring", "pass_through", "dormant_reactivation", "account_takeover", "fan_in",
        "fan_out", "listed_address"]


CASES: list[tuple[dict[str, Any], str, str]] = [
    # (changes to the base rule, field named, a word of the message)
    ({"when": "near_7d >= 3"}, "when", "near_7d"),  # unknown feature in when
    ({"when": "near_24h >= 3 and colour == 'red'"}, "when", "colour"),
    ({"features": {"n": {"count": "events", "window": "24h", "where": {"colour": "red"}}}, "when": "n >= 1"},
     "features.n.where.colour", "unknown attribute"),  # unknown attribute in where
    ({"features": {"n": {"count": "events", "window": "24h", "where": {"value_usd": {"about": 5}}}},
      "when": "n >= 1"}, "features.n.where.value_usd.about", "operator"),
    ({"features": {"n": {"count": "events", "window": "24 hours"}}, "when": "n >= 1"},
     "features.n.window", "duration"),  # bad duration
    ({"features": {"n": {"count": "events", "window": "5w"}}, "when": "n >= 1"}, "features.n.window", "duration"),
    ({"features": {"n": {"count": "events"}}, "when": "n >= 1"}, "features.n.window", "required"),
    ({"dedup": "soon"}, "dedup", "duration"),
    ({"reason_code": "SUS_MADE_UP"}, "reason_code", "catalogue"),  # unknown reason code
    ({"action": "block"}, "action", "alert"),  # unknown action
    ({"when": "near_24h >= ${max_count}"}, "when", "max_count"),  # bad param reference
    ({"features": {"n": {"count": "events", "window": "${span}"}}, "when": "n >= 1"}, "features.n.window", "span"),
    ({"when": "value_usd > 24h"}, "when", "money with duration"),  # type error: money vs duration
    ({"when": "near_24h >= 3 and address > 5"}, "when", "cannot compare"),
    ({"when": "near_24h + 1"}, "when", "condition"),  # a number, not a condition
    ({"when": "near_24h >= 3 and 'x'"}, "when", "conditions"),
    ({"when": "near_24h >= 3 or"}, "when", "not a valid condition"),
    ({"when": "near_24h >= 3 and len(address) > 1"}, "when", "not allowed"),
    ({"when": "1 < near_24h < 3"}, "when", "one comparison"),
    ({"when": None}, "when", "required"),  # missing fields
    ({"title": None}, "title", "required"),
    ({"intent": ""}, "intent", "required"),
    ({"reason_code": None}, "reason_code", "required"),
    ({"on": ["deposit", "refund"]}, "on", "event types"),
    ({"on": []}, "on", "event types"),
    ({"colour": "red"}, "colour", "not a rule field"),
    ({"features": ["n"]}, "features", "mapping"),
    (_feature(sum="value_usd", window="1h", max="value_usd"), "features.f", "exactly one"),
    (_feature(sum="address", window="1h"), "features.f.sum", "money"),  # sum of text
    (_feature(distinct="value_usd", window="1h"), "features.f.distinct", "str"),
    (_feature(sum="wealth", window="1h"), "features.f.sum", "wealth"),
    (_feature(count="deposits", window="1h"), "features.f.count", "events"),
    (_feature(since="events"), "features.f.default", "required"),
    (_feature(baseline="value_usd", days=0), "features.f.days", "1 to 366"),
    (_feature(first_use="address", where={"fresh": True}), "features.f.where.fresh", "unknown"),
    (_feature(count="events", window="1h", where={"type": "refund"}), "features.f.where.type", "event type"),
    (_feature(count="events", window="1h", where={"success": "yes"}), "features.f.where.success.eq", "true or false"),
    (_feature(count="events", window="1h", where={"value_usd": {"gte": "lots"}}),
     "features.f.where.value_usd.gte", "not a number"),
    (_feature(count="events", window="1h", where={"value_usd": {"gte": "0.000000001"}}),
     "features.f.where.value_usd.gte", "decimal places"),
    (_feature(count="events", window="1h", where={"address": {"gt": "a"}}),
     "features.f.where.address.gt", "not a number"),
    (_feature(count="events", window="1h", whom={"type": "deposit"}), "features.f.whom", "not a feature field"),
    ({"features": {"value_usd": {"count": "events", "window": "1h"}}, "when": "value_usd >= 1"},
     "features.value_usd", "new"),  # a feature may not shadow an attribute
    ({"params": {"near": [0.9]}}, "params.near", "number"),
]


@pytest.mark.parametrize(("changes", "field", "word"), CASES, ids=[c[1] + ":" + c[2] for c in CASES])
def test_a_malformed_rule_is_rejected_naming_rule_and_field(changes: dict[str, Any], field: str, word: str) -> None:
    with pytest.raises(RuleError) as info:
        _load(_rule(**changes))
    assert info.value.rule == "near_threshold"
    assert info.value.field == field
    assert word.lower() in info.value.problem.lower(), info.value.problem
    assert "t.yaml" in str(info.value) and "'near_threshold'" in str(info.value)


def test_pack_level_errors() -> None:
    with pytest.raises(RuleError, match="not valid YAML"):
        parse_pack("pack: t\nrules: [\n  - id: x", "t.yaml", known_reasons=REASONS)
    with pytest.raises(RuleError) as info:
        parse_pack("- just a list", "t.yaml", known_reasons=REASONS)
    assert info.value.rule == "-"
    with pytest.raises(RuleError) as info:
        parse_pack("pack: t\nrules: []\n", "t.yaml", known_reasons=REASONS)
    assert info.value.field == "rules"
    with pytest.raises(RuleError) as info:
        _load(_rule(), _rule())
    assert (info.value.rule, info.value.field) == ("near_threshold", "id")
    with pytest.raises(RuleError) as info:
        _load(_rule(id="Bad Id"))
    assert (info.value.rule, info.value.field) == ("#1", "id")
    with pytest.raises(RuleError) as info:
        _load(_rule(), _rule(id="second", when="nope"))
    assert info.value.rule == "second"  # the offending rule, not the first


def test_pack_params_are_defaults_that_rules_may_override() -> None:
    pack = _load(_rule(params={"near": 0.9}, when="near_24h >= ${min_count}"), params={"min_count": 4})
    assert pack.rules[0].params["min_count"] == "4"
    with pytest.raises(RuleError) as info:
        _load(_rule(params={}), params={"min_count": 4})  # ${near} in the feature filter is now unknown
    assert info.value.field == "features.near_24h.where.value_usd.gte"


def test_a_rule_file_on_disk_is_rejected_with_its_path(tmp_path: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"pack": "t", "rules": [_rule(action="ban")]}))
    with pytest.raises(RuleError, match=r"bad\.yaml: rule 'near_threshold', field 'action'"):
        load_pack(path, known_reasons=REASONS)
