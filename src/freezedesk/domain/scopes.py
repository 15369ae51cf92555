"""Scopes (what a restriction blocks), presets and causes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from freezedesk.domain.errors import UnknownScope


class Scope(StrEnum):
    LOGIN = "login"
    TRADE = "trade"
    WITHDRAW = "withdraw"
    DEPOSIT = "deposit"
    API = "api"
    P2P = "p2p"
    TRANSFER = "transfer"


class Cause(StrEnum):
    KYC = "kyc"
    SUSPICIOUS_ACTIVITY = "suspicious_activity"
    SECURITY = "security"
    REGULATORY = "regulatory"
    POLICY = "policy"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)

#: Close-only blocks everything new (opening trades, deposits, p2p, transfers) but lets the
#: customer reduce positions and withdraw, which is how an orderly offboarding starts.
PRESETS: dict[str, frozenset[Scope]] = {
    "full_freeze": ALL_SCOPES,
    "withdrawal_hold": frozenset({Scope.WITHDRAW}),
    "close_only": frozenset({Scope.TRADE, Scope.DEPOSIT, Scope.P2P, Scope.TRANSFER}),
    "login_lock": frozenset({Scope.LOGIN, Scope.API}),
}

SCOPE_AND_PRESET_NAMES: tuple[str, ...] = tuple(s.value for s in Scope) + tuple(PRESETS)


@dataclass(frozen=True, slots=True)
class ScopeSet:
    """The resolved scopes of a restriction.

    ``close_only`` is true when trading is blocked only for trades that open or increase a
    position: a ``reduce_only`` trade passes.
    """

    scopes: frozenset[Scope]
    close_only: bool = False

    def blocks(self, action: Scope, reduce_only: bool = False) -> bool:
        if action not in self.scopes:
            return False
        return not (action is Scope.TRADE and self.close_only and reduce_only)

    def sorted_names(self) -> list[str]:
        return sorted(s.value for s in self.scopes)


def resolve_scopes(names: Iterable[str]) -> ScopeSet:
    """Expand scope and preset names into a :class:`ScopeSet`.

    >>> resolve_scopes(["withdrawal_hold", "api"]).sorted_names()
    ['api', 'withdraw']

    An explicit ``trade`` (directly or through ``full_freeze``) beats ``close_only``: the
    stricter reading wins.
    """
    scopes: set[Scope] = set()
    close_only = False
    full_trade = False
    names = list(names)
    if not names:
        raise UnknownScope("at least one scope or preset is required")
    for name in names:
        if name in PRESETS:
            scopes |= PRESETS[name]
            if name == "close_only":
                close_only = True
            elif Scope.TRADE in PRESETS[name]:
                full_trade = True
            continue
        try:
            scope = Scope(name)
        except ValueError:
            raise UnknownScope(
                f"unknown scope or preset {name!r}; expected one of "
                + ", ".join(SCOPE_AND_PRESET_NAMES),
                scope=name,
            ) from None
        scopes.add(scope)
        if scope is Scope.TRADE:
            full_trade = True
    return ScopeSet(frozenset(scopes), close_only=close_only and not full_trade)


def parse_action(name: str) -> Scope:
    """The action a permission check asks about is one scope name."""
    try:
        return Scope(name)
    except ValueError:
        raise UnknownScope(
            f"unknown action {name!r}; expected one of " + ", ".join(s.value for s in Scope),
            scope=name,
        ) from None
