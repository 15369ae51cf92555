"""Scopes, presets, close-only and parse_action."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from freezedesk.domain.errors import UnknownScope
from freezedesk.domain.scopes import (
    ALL_SCOPES,
    PRESETS,
    SCOPE_AND_PRESET_NAMES,
    Scope,
    ScopeSet,
    parse_action,
    resolve_scopes,
)

S = Scope


def test_the_seven_scopes_and_four_presets_of_the_design() -> None:
    assert {s.value for s in Scope} == {"login", "trade", "withdraw", "deposit", "api", "p2p", "transfer"}
    assert set(PRESETS) == {"full_freeze", "withdrawal_hold", "close_only", "login_lock"}
    assert set(SCOPE_AND_PRESET_NAMES) == {s.value for s in Scope} | set(PRESETS)


@pytest.mark.parametrize(
    ("preset", "expected", "close_only"),
    [
        ("full_freeze", set(Scope), False),
        ("withdrawal_hold", {S.WITHDRAW}, False),
        ("close_only", {S.TRADE, S.DEPOSIT, S.P2P, S.TRANSFER}, True),
        ("login_lock", {S.LOGIN, S.API}, False),
    ],
)
def test_presets_expand_as_documented(preset: str, expected: set[Scope], close_only: bool) -> None:
    resolved = resolve_scopes([preset])
    assert resolved.scopes == expected
    assert resolved.close_only is close_only


def test_full_freeze_blocks_every_action_even_reduce_only_trades() -> None:
    resolved = resolve_scopes(["full_freeze"])
    for action in Scope:
        assert resolved.blocks(action)
    assert resolved.blocks(S.TRADE, reduce_only=True)


def test_close_only_lets_reduce_only_trades_and_withdrawals_through() -> None:
    resolved = resolve_scopes(["close_only"])
    assert not resolved.blocks(S.TRADE, reduce_only=True)
    assert resolved.blocks(S.TRADE)  # opening or increasing a position
    assert not resolved.blocks(S.WITHDRAW)
    assert not resolved.blocks(S.LOGIN)
    assert not resolved.blocks(S.API)
    for action in (S.DEPOSIT, S.P2P, S.TRANSFER):
        assert resolved.blocks(action)
        assert resolved.blocks(action, reduce_only=True)  # reduce_only only matters for trades


@pytest.mark.parametrize(
    "names",
    [
        ["close_only", "trade"],
        ["trade", "close_only"],
        ["close_only", "full_freeze"],
        ["full_freeze", "close_only"],
        ["close_only", "trade", "close_only"],
    ],
)
def test_explicit_trade_or_full_freeze_beats_close_only(names: list[str]) -> None:
    resolved = resolve_scopes(names)
    assert resolved.close_only is False
    assert resolved.blocks(S.TRADE, reduce_only=True)
    assert resolved.blocks(S.TRADE)


def test_close_only_survives_presets_without_trade() -> None:
    resolved = resolve_scopes(["close_only", "withdrawal_hold", "login_lock"])
    assert resolved.close_only is True
    assert not resolved.blocks(S.TRADE, reduce_only=True)
    assert resolved.blocks(S.WITHDRAW)
    assert resolved.blocks(S.LOGIN)


def test_scopes_and_presets_combine_and_repeat() -> None:
    assert resolve_scopes(["withdrawal_hold", "api"]).sorted_names() == ["api", "withdraw"]
    assert resolve_scopes(["withdraw", "withdraw", "withdrawal_hold"]).scopes == {S.WITHDRAW}
    assert resolve_scopes(iter(["p2p", "transfer"])).scopes == {S.P2P, S.TRANSFER}
    assert resolve_scopes(("deposit",)).sorted_names() == ["deposit"]


def test_sorted_names_are_sorted_values() -> None:
    assert ScopeSet(ALL_SCOPES).sorted_names() == sorted(s.value for s in Scope)


name_lists = st.lists(st.sampled_from(SCOPE_AND_PRESET_NAMES), min_size=1, max_size=8)


@given(name_lists)
def test_resolution_is_the_union_and_close_only_follows_the_rule(names: list[str]) -> None:
    resolved = resolve_scopes(names)
    expected: set[Scope] = set()
    for name in names:
        expected |= PRESETS[name] if name in PRESETS else {Scope(name)}
    assert resolved.scopes == expected
    full_trade = any(n == "trade" or (n in PRESETS and n != "close_only" and S.TRADE in PRESETS[n]) for n in names)
    assert resolved.close_only == ("close_only" in names and not full_trade)
    # Order never matters.
    assert resolve_scopes(list(reversed(names))) == resolved
    # A reduce-only trade is blocked exactly when trade is in scope and close-only does not apply.
    assert resolved.blocks(S.TRADE, reduce_only=True) == (S.TRADE in expected and not resolved.close_only)
    for action in Scope:
        assert resolved.blocks(action) == (action in expected)


@pytest.mark.parametrize("bad", ["teleport", "Trade", "withdrawals", "", "full freeze", "close-only"])
def test_unknown_scope_is_named(bad: str) -> None:
    with pytest.raises(UnknownScope) as info:
        resolve_scopes(["withdraw", bad])
    assert repr(bad) in info.value.detail
    assert info.value.extra["scope"] == bad
    assert info.value.type == "unknown-scope"
    assert "withdrawal_hold" in info.value.detail  # lists what is expected


def test_empty_scope_list_is_rejected() -> None:
    with pytest.raises(UnknownScope, match="at least one"):
        resolve_scopes([])
    with pytest.raises(UnknownScope):
        resolve_scopes(iter(()))


@pytest.mark.parametrize("scope", list(Scope))
def test_parse_action_accepts_every_scope(scope: Scope) -> None:
    assert parse_action(scope.value) is scope


@pytest.mark.parametrize("bad", ["full_freeze", "close_only", "WITHDRAW", "fly", ""])
def test_parse_action_rejects_presets_and_unknown_names(bad: str) -> None:
    with pytest.raises(UnknownScope) as info:
        parse_action(bad)
    assert repr(bad) in info.value.detail
    assert info.value.extra["scope"] == bad
