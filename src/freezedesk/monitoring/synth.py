"""Synthetic exchange activity: busy-but-normal customers, planted typologies and decoys.

The rule pack of issue 4 has to be measured — recall on what it should catch, silence on what
merely looks odd — and the two engines have to be compared on the same, large, realistic input.
Real customer data cannot be shared, so this module makes some:

* **normal** customers: retail traders who log in from their home country on their usual device,
  trade now and then, deposit (mostly from their own wallets) and withdraw occasionally to
  addresses they reuse, change a security setting once in a while, some paid a salary-like fiat
  deposit each month; accounts opening (``account_opened`` then ``kyc_update``) during the period;
* **decoys** (label ``decoy_<kind>``) that a careless rule would flag: market makers with huge
  trade volume every day, travellers logging in abroad, a regular *large* salary, and a single
  large legitimate deposit that is then traded rather than withdrawn;
* one planted **typology** per future rule family (label = :class:`Typology` value), each on top
  of the account's normal background: rapid volume against the account's own baseline,
  structuring below the reporting threshold, pass-through, dormant reactivation (a funded
  history of one to four weeks, then at least :data:`DORMANT_DAYS` without any event when the run
  is long enough), account takeover, fan-in, fan-out, and a deposit from / withdrawal to a listed
  address.

Output is streamed: events are generated one day at a time, sorted by time within the day and
written before the next day starts, so memory holds one day — 10 M events are fine. The run is
deterministic: one :class:`random.Random` seeded by ``seed`` is consumed in a fixed order (day,
then account), so the same arguments produce the same bytes. Event ids are assigned after the
sort (``ev0000000001`` …), so they ascend through the file.

Money is exact: sizes are *sampled* as floats (log-normal draws) but turned into integer cents
and integer minor units at once; every amount in the output is formatted from integers, and
every event passes :func:`freezedesk.monitoring.events.parse_event`.
"""

from __future__ import annotations

import csv
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Final

import orjson

DAY: Final = 86_400
REPORTING_THRESHOLD_CENTS: Final = 10_000_00  # 10,000 USD: what structuring stays just below


class Typology(StrEnum):
    """The planted patterns, one per rule family of the standard pack (and their labels)."""

    RAPID_VOLUME = "rapid_volume"
    STRUCTURING = "structuring"
    PASS_THROUGH = "pass_through"  # noqa: S105 (a label, not a password)
    DORMANT_REACTIVATION = "dormant_reactivation"
    ACCOUNT_TAKEOVER = "account_takeover"
    FAN_IN = "fan_in"
    FAN_OUT = "fan_out"
    LISTED_ADDRESS = "listed_address"


class Decoy(StrEnum):
    """Busy-but-legitimate behaviour that default parameters must leave quiet."""

    MARKET_MAKER = "market_maker"
    TRAVELLER = "traveller"
    SALARY = "salary"  # a regular *large* salary
    LARGE_DEPOSIT_TRADED = "large_deposit_traded"

    @property
    def label(self) -> str:
        return f"decoy_{self.value}"


NORMAL: Final = "normal"

# Share of accounts given each planted behaviour (at least one account each when there is room).
TYPOLOGY_SHARE: Final = 0.01
DECOY_SHARE: Final[dict[Decoy, float]] = {Decoy.MARKET_MAKER: 0.003, Decoy.TRAVELLER: 0.02,
                                          Decoy.SALARY: 0.01, Decoy.LARGE_DEPOSIT_TRADED: 0.01}
MIN_DAYS: Final = 14  # below this there is no baseline for "own baseline" or "dormant" to mean anything
# A dormant account is one without any money movement for six months (the usual definition of
# dormancy; the standard pack's rule says 180 days). The generator gives every dormant_reactivation
# account a funded history first, then at least this much silence, whenever the run is long enough
# (DORMANT_DAYS + 3 days or more; the history shrinks to fit). A shorter run cannot hold a dormant
# account: its reactivation then follows the longest silence the run allows, and no 180-day rule
# can find it.
DORMANT_DAYS: Final = 183
# Share of a retail customer's crypto deposits sent from its own wallets (the addresses it also
# withdraws to); the rest come from elsewhere — another exchange, a payer — a new address each time.
OWN_WALLET_DEPOSIT: Final = 0.6


@dataclass(frozen=True, slots=True)
class Asset:
    code: str
    chain: str
    decimals: int
    price_cents: int  # starting price in USD cents; drifts day by day


ASSETS: Final = (Asset("BTC", "BTC", 8, 60_000_00), Asset("ETH", "ETH", 8, 3_000_00),
                 Asset("USDT", "TRON", 6, 1_00))
FIAT_ASSET: Final = Asset("USD", "FIAT", 2, 1_00)
HOME_COUNTRIES: Final = ("JP", "JP", "JP", "US", "GB", "DE", "SG", "KR", "FR", "AU", "CA", "BR")
ABROAD: Final = ("TH", "US", "FR", "IT", "ES", "GB", "SG", "KR", "AU", "TW", "VN", "MX")
ATO_COUNTRIES: Final = ("NG", "RU", "VN", "ID", "UA", "RO", "BR")
_B32: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_HEX: Final = "0123456789abcdef"
_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class ListedAddress:
    asset: str
    chain: str
    address: str


@dataclass(frozen=True, slots=True)
class SynthConfig:
    accounts: int
    days: int
    seed: int
    start: date = date(2025, 1, 1)
    listed: tuple[ListedAddress, ...] = ()

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise ValueError("--accounts must be at least 1")
        if self.days < MIN_DAYS:
            raise ValueError(f"--days must be at least {MIN_DAYS}: typologies need a baseline to stand out from")
        if not self.listed:
            raise ValueError("no listed addresses: give an address list (the listed_address typology needs some)")


@dataclass(frozen=True, slots=True)
class SynthResult:
    events: int
    accounts: int
    labels: dict[str, str]
    listed: tuple[ListedAddress, ...]


@dataclass(slots=True)
class _Account:
    """What the generator remembers about one account between days (kept small: 10 M events)."""

    id: str
    label: str
    home: str
    ip: str
    device: str
    scale: float  # typical trade size in USD
    activity: float  # chance of a session on a given day
    addresses: list[tuple[Asset, str]] = field(default_factory=list)  # own withdrawal addresses
    bank: str = ""
    opened_day: int = -1  # >= 0: opened during the period (nothing happens before)
    plant_day: int = -1  # the day the typology or decoy episode happens
    quiet: tuple[int, int] = (-1, -1)  # dormant accounts: first and last day of the silence
    trip: tuple[int, int, str] = (-1, -1, "")  # travellers: first day, last day, country
    salary_day: int = 0  # day of month a salary arrives (0: no salary)
    salary_cents: int = 0


# -- small deterministic helpers ------------------------------------------------------------------


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _crypto_address(rng: random.Random, asset: Asset) -> str:
    if asset.chain == "BTC":
        return "bc1q" + _chars(rng, _B32, 38)
    if asset.chain == "TRON":
        return "T" + _chars(rng, _B58, 33)
    return "0x" + _chars(rng, _HEX, 40)


def _ip(rng: random.Random) -> str:
    # Public-looking IPv4 (first octet avoids 0, 10, 127 and the multicast/reserved ranges).
    return f"{rng.choice((23, 31, 45, 58, 61, 81, 92, 103, 126, 133, 176, 185, 203))}." \
           f"{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _cents(usd: float) -> int:
    return max(1, round(usd * 100))


def _usd(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _minor(amount: int, decimals: int) -> str:
    scale = 10 ** decimals
    return f"{amount // scale}.{amount % scale:0{decimals}d}"


def _lognormal(rng: random.Random, median: float, sigma: float = 0.8) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


# -- the generator --------------------------------------------------------------------------------


class _Day:
    """Collects one day's events as (second, order, account, type, fields) and writes them sorted."""

    __slots__ = ("base", "prices", "rows")

    def __init__(self, base: int, prices: dict[str, int]) -> None:
        self.base = base  # Unix time of 00:00 UTC of this day
        self.prices = prices
        self.rows: list[tuple[int, int, str, str, dict[str, Any]]] = []

    def add(self, second: int, account: str, kind: str, fields: dict[str, Any]) -> None:
        # Episodes near midnight may run past it; keep them on this day's last second rather than
        # write an event into a day that has already been flushed (the file stays sorted).
        self.rows.append((min(max(second, 0), DAY - 1), len(self.rows), account, kind, fields))

    def money(self, account: str, second: int, kind: str, asset: Asset, cents: int, address: str) -> None:
        price = self.prices[asset.code]
        amount = cents * 10 ** asset.decimals // price
        self.add(second, account, kind, {"asset": asset.code, "amount": _minor(amount, asset.decimals),
                                         "value_usd": _usd(cents), "chain": asset.chain, "address": address})

    def trade(self, account: str, second: int, asset: Asset, cents: int, side: str) -> None:
        price = self.prices[asset.code]
        amount = cents * 10 ** asset.decimals // price
        self.add(second, account, "trade", {"symbol": f"{asset.code}-USD", "side": side,
                                            "amount": _minor(amount, asset.decimals), "price": _usd(price),
                                            "value_usd": _usd(cents)})

    def login(self, account: str, second: int, ip: str, country: str, device: str, success: bool = True) -> None:
        self.add(second, account, "login", {"ip": ip, "country": country, "device_id": device, "success": success})


class Generator:
    """Deterministic synthetic activity; see the module docstring. Iterate :meth:`lines`."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.accounts = self._make_accounts()
        self.start_ts = int(datetime(config.start.year, config.start.month, config.start.day, tzinfo=UTC).timestamp())
        self.prices = {a.code: a.price_cents for a in ASSETS} | {FIAT_ASSET.code: FIAT_ASSET.price_cents}
        self.events = 0

    # -- population ------------------------------------------------------------------------------
    def _make_accounts(self) -> list[_Account]:
        cfg, rng = self.config, self.rng
        n = cfg.accounts
        labels: list[str] = []
        for typology in Typology:
            labels += [typology.value] * max(1, round(n * TYPOLOGY_SHARE))
        for decoy, share in DECOY_SHARE.items():
            labels += [decoy.label] * max(1, round(n * share))
        labels = labels[:n] + [NORMAL] * max(0, n - len(labels))
        rng.shuffle(labels)
        width = max(6, len(str(n)))
        accounts = []
        for i, label in enumerate(labels, start=1):
            acct = _Account(id=f"acct-{i:0{width}d}", label=label, home=rng.choice(HOME_COUNTRIES), ip=_ip(rng),
                            device=f"dev-{_chars(rng, _HEX, 12)}", scale=_lognormal(rng, 300.0, 0.9),
                            activity=min(0.9, _lognormal(rng, 0.25, 0.6)), bank=f"bank-{rng.randrange(10**10):010d}")
            acct.addresses = [(asset, _crypto_address(rng, asset)) for asset in rng.sample(ASSETS, k=2)]
            if rng.random() < 0.15:  # opened during the period, in its first half
                acct.opened_day = rng.randrange(cfg.days // 2)
            if rng.random() < 0.3:  # a modest, salary-like monthly fiat deposit
                acct.salary_day, acct.salary_cents = rng.randrange(1, 29), _cents(_lognormal(rng, 3000, 0.3))
            self._plan(acct)
            accounts.append(acct)
        return accounts

    def _plan(self, acct: _Account) -> None:
        """Fix the day of the account's planted episode and the profile its label needs."""
        rng, days = self.rng, self.config.days
        # Late enough that a baseline exists, and at least a few days before the end.
        acct.plant_day = rng.randrange(max(days * 2 // 3, 7), days - 1)
        if acct.label == Typology.DORMANT_REACTIVATION:
            # An established account (no opening in the period) with a few weeks of ordinary use,
            # then nothing at all — no income either — until the reactivation.
            acct.opened_day, acct.salary_day = -1, 0
            last = days - 2  # the reactivation leaves a day or more after it
            # Days 0 .. history-1 are the account's ordinary life: one to four weeks, shorter when
            # the run has no room for both that and six months of silence.
            history = max(1, min(rng.randrange(7, 29), last - DORMANT_DAYS))
            if last - history >= DORMANT_DAYS:
                acct.plant_day = rng.randrange(history + DORMANT_DAYS, last + 1)
            else:  # too short a run for six months of silence: the longest silence it allows
                acct.plant_day = last
            acct.quiet = (history, acct.plant_day - 1)
        if acct.label == Decoy.MARKET_MAKER.label:
            acct.activity, acct.scale, acct.opened_day = 1.0, _lognormal(rng, 8000, 0.4), -1
        elif acct.label == Decoy.SALARY.label:
            acct.salary_day, acct.salary_cents = rng.randrange(1, 29), _cents(_lognormal(rng, 25_000, 0.25))
            acct.opened_day = -1
        elif acct.label == Decoy.TRAVELLER.label:
            first = rng.randrange(1, days - 3)
            acct.trip = (first, min(days - 1, first + rng.randrange(3, 12)), rng.choice(ABROAD))
        elif acct.label in Typology.__members__.values() or acct.label == Decoy.LARGE_DEPOSIT_TRADED.label:
            acct.opened_day = min(acct.opened_day, days // 4) if acct.opened_day >= 0 else -1

    # -- one day ---------------------------------------------------------------------------------
    def _prices_for(self, day: int) -> dict[str, int]:
        for code in ("BTC", "ETH"):  # a gentle random walk; stablecoins and fiat stay at 1 USD
            self.prices[code] = max(100, round(self.prices[code] * math.exp(self.rng.gauss(0.0, 0.02))))
        return dict(self.prices)

    def day(self, day: int) -> _Day:
        d = _Day(self.start_ts + day * DAY, self._prices_for(day))
        today = self.config.start + timedelta(days=day)
        for acct in self.accounts:
            if 0 <= day < acct.opened_day:
                continue
            if day == acct.opened_day:
                self._onboarding(d, acct)
                continue
            if acct.label == Decoy.MARKET_MAKER.label:
                self._market_maker(d, acct)
            elif 0 < acct.quiet[0] <= day <= acct.quiet[1] + 1:
                pass  # dormant: nothing at all until the reactivation, which is that day's first act
            else:
                self._retail(d, acct, day)
            if acct.salary_day == today.day:
                d.money(acct.id, self.rng.randrange(3 * 3600, 9 * 3600), "deposit", FIAT_ASSET, acct.salary_cents,
                        acct.bank)
            if day == acct.plant_day:
                self._episode(d, acct, day)
        return d

    def _onboarding(self, d: _Day, acct: _Account) -> None:
        rng = self.rng
        t = rng.randrange(6 * 3600, 20 * 3600)
        d.add(t, acct.id, "account_opened", {"country": acct.home, "kyc_level": 0})
        d.login(acct.id, t + 30, acct.ip, acct.home, acct.device)
        d.add(t + rng.randrange(600, 3 * 3600), acct.id, "kyc_update", {"kyc_level": 1, "status": "pending"})
        d.add(t + rng.randrange(3 * 3600, 4 * 3600), acct.id, "kyc_update",
              {"kyc_level": 1, "status": rng.choice(("approved", "approved", "approved", "rejected"))})

    def _session(self, d: _Day, acct: _Account, country: str, ip: str, device: str) -> int:
        rng = self.rng
        t = rng.randrange(0, DAY - 3600)
        if rng.random() < 0.03:  # a mistyped password first
            d.login(acct.id, t - 20, ip, country, device, success=False)
        d.login(acct.id, t, ip, country, device)
        return t

    def _retail(self, d: _Day, acct: _Account, day: int) -> None:
        rng = self.rng
        # A dormant account's first day is a funding session: the money it will later withdraw
        # arrives then (from its own wallet) and is partly traded, so its history is money movement.
        funding = day == 0 and acct.quiet[0] > 0
        if rng.random() >= acct.activity and not funding:
            return
        first, last, abroad = acct.trip
        country, ip = (abroad, _ip(rng)) if first <= day <= last else (acct.home, acct.ip)
        t = self._session(d, acct, country, ip, acct.device)
        if funding:
            asset, address = acct.addresses[0]
            d.money(acct.id, t + rng.randrange(60, 600), "deposit", asset, _cents(_lognormal(rng, 30_000, 0.3)),
                    address)
            t += 600
        if rng.random() < 0.6 or funding:
            for _ in range(rng.randrange(1, 5)):
                t += rng.randrange(20, 900)
                d.trade(acct.id, t, rng.choice(ASSETS[:2]), _cents(_lognormal(rng, acct.scale)),
                        rng.choice(("buy", "sell")))
        if rng.random() < 0.06:
            asset, address = rng.choice(acct.addresses)  # mostly from its own wallet, see OWN_WALLET_DEPOSIT
            if rng.random() >= OWN_WALLET_DEPOSIT:
                address = _crypto_address(rng, asset)
            d.money(acct.id, t + rng.randrange(60, 1800), "deposit", asset, _cents(_lognormal(rng, acct.scale * 3)),
                    address)
        if rng.random() < 0.04:
            asset, address = rng.choice(acct.addresses)
            if rng.random() < 0.1:  # now and then a new address, registered first like exchanges require
                address = _crypto_address(rng, asset)
                acct.addresses.append((asset, address))
                d.add(t + 100, acct.id, "security_change", {"change": "withdraw_address_added"})
            d.money(acct.id, t + rng.randrange(300, 3600), "withdrawal", asset,
                    _cents(_lognormal(rng, acct.scale * 2)), address)
        if rng.random() < 0.004:
            d.add(t + rng.randrange(60, 600), acct.id, "security_change",
                  {"change": rng.choice(("password", "2fa_enabled", "phone", "api_key_created"))})
        if rng.random() < 0.01:  # an internal transfer to a friend's account
            other = self.accounts[rng.randrange(len(self.accounts))]
            # Only to accounts that exist by now, and never into a dormant account's silence.
            if other.id != acct.id and other.opened_day < day and other.label != Typology.DORMANT_REACTIVATION:
                cents = _cents(_lognormal(rng, 150))
                at = t + rng.randrange(60, 900)
                fields = {"asset": "USDT", "amount": _minor(cents * 10_000, 6), "value_usd": _usd(cents)}
                d.add(at, acct.id, "transfer_out", {**fields, "counterparty_account_id": other.id})
                d.add(at, other.id, "transfer_in", {**fields, "counterparty_account_id": acct.id})

    def _market_maker(self, d: _Day, acct: _Account) -> None:
        rng = self.rng
        d.login(acct.id, rng.randrange(0, 600), acct.ip, acct.home, acct.device)
        for _ in range(rng.randrange(300, 1200)):
            d.trade(acct.id, rng.randrange(600, DAY), ASSETS[rng.randrange(2)],
                    _cents(_lognormal(rng, acct.scale, 0.5)), "buy" if rng.random() < 0.5 else "sell")
        if rng.random() < 0.3:  # inventory rebalancing, always between its own known addresses
            usdt = ASSETS[2]
            kind = "deposit" if rng.random() < 0.5 else "withdrawal"
            desk = acct.addresses[0][1] if kind == "withdrawal" else f"T{acct.id[-6:]}mmdesk{acct.ip.replace('.', '')}"
            d.money(acct.id, rng.randrange(3600, DAY), kind, usdt, _cents(_lognormal(rng, 400_000, 0.5)), desk)

    # -- planted episodes ------------------------------------------------------------------------
    def _episode(self, d: _Day, acct: _Account, day: int) -> None:
        rng, label = self.rng, acct.label
        t = rng.randrange(2 * 3600, 18 * 3600)
        btc, eth, usdt = ASSETS
        if label == Typology.RAPID_VOLUME:
            d.login(acct.id, t, acct.ip, acct.home, acct.device)
            cents = _cents(_lognormal(rng, 80_000, 0.3))
            d.money(acct.id, t + 120, "deposit", usdt, cents, _crypto_address(rng, usdt))
            for _ in range(rng.randrange(40, 100)):
                t += rng.randrange(20, 120)
                d.trade(acct.id, t, rng.choice((btc, eth)), _cents(_lognormal(rng, 3000, 0.5)),
                        rng.choice(("buy", "sell")))
            # ... then the money leaves again within hours, in several withdrawals to its usual
            # addresses: far above the account's own normal outflow (the high_volume rule).
            parts = rng.randrange(3, 7)
            for _ in range(parts):
                t += rng.randrange(300, 3600)
                asset, address = rng.choice(acct.addresses)
                d.money(acct.id, t, "withdrawal", asset, cents * rng.randrange(85, 99) // (100 * parts), address)
        elif label == Typology.STRUCTURING:
            for _ in range(rng.randrange(4, 8)):  # several deposits each just under 10,000 USD, within hours
                t += rng.randrange(600, 3 * 3600)
                cents = REPORTING_THRESHOLD_CENTS - rng.randrange(1_00, 900_00)
                d.money(acct.id, t, "deposit", FIAT_ASSET, cents, f"bank-{rng.randrange(10**10):010d}")
        elif label == Typology.PASS_THROUGH:
            cents = _cents(_lognormal(rng, 20_000, 0.5))
            d.money(acct.id, t, "deposit", usdt, cents, _crypto_address(rng, usdt))
            d.money(acct.id, t + rng.randrange(120, 1500), "withdrawal", usdt, cents * rng.randrange(85, 99) // 100,
                    _crypto_address(rng, usdt))  # a never-used address
        elif label == Typology.DORMANT_REACTIVATION:
            d.login(acct.id, t, acct.ip, acct.home, acct.device)
            asset, address = acct.addresses[0]
            d.money(acct.id, t + rng.randrange(120, 1800), "withdrawal", asset, _cents(_lognormal(rng, 30_000, 0.3)),
                    address)
        elif label == Typology.ACCOUNT_TAKEOVER:
            device, country = f"dev-{_chars(rng, _HEX, 12)}", rng.choice(ATO_COUNTRIES)
            d.login(acct.id, t, _ip(rng), country, device)
            for change in rng.sample(("password", "email", "2fa_disabled"), k=rng.randrange(1, 4)):
                t += rng.randrange(30, 300)
                d.add(t, acct.id, "security_change", {"change": change})
            asset = rng.choice((btc, usdt))
            t += rng.randrange(30, 300)
            d.add(t, acct.id, "security_change", {"change": "withdraw_address_added"})
            d.money(acct.id, t + rng.randrange(60, 1800), "withdrawal", asset, _cents(_lognormal(rng, 8000, 0.5)),
                    _crypto_address(rng, asset))
        elif label == Typology.FAN_IN:
            for _ in range(rng.randrange(15, 40)):  # many distinct senders, small amounts
                t += rng.randrange(60, 1200)
                d.money(acct.id, t, "deposit", usdt, _cents(_lognormal(rng, 600, 0.5)), _crypto_address(rng, usdt))
        elif label == Typology.FAN_OUT:
            d.login(acct.id, t, acct.ip, acct.home, acct.device)
            for _ in range(rng.randrange(15, 40)):  # many destinations the account never used
                t += rng.randrange(60, 1200)
                d.money(acct.id, t, "withdrawal", usdt, _cents(_lognormal(rng, 600, 0.5)), _crypto_address(rng, usdt))
        elif label == Typology.LISTED_ADDRESS:
            listed = rng.choice(self.config.listed)
            asset = next((a for a in ASSETS if a.code == listed.asset), Asset(listed.asset, listed.chain, 8, 100_00))
            self.prices.setdefault(asset.code, asset.price_cents)
            d.prices.setdefault(asset.code, asset.price_cents)
            d.money(acct.id, t, rng.choice(("deposit", "withdrawal")), asset, _cents(_lognormal(rng, 2000, 0.7)),
                    listed.address)
        elif label == Decoy.LARGE_DEPOSIT_TRADED.label:
            d.money(acct.id, t, "deposit", FIAT_ASSET, _cents(_lognormal(rng, 80_000, 0.4)), acct.bank)
            for _ in range(rng.randrange(3, 10)):  # then traded, not withdrawn
                t += rng.randrange(300, 7200)
                d.trade(acct.id, t, rng.choice((btc, eth)), _cents(_lognormal(rng, 8000, 0.4)), "buy")

    # -- output ----------------------------------------------------------------------------------
    def lines(self) -> Iterator[bytes]:
        """Every event as one JSON line (bytes, with the newline), day by day, sorted by time."""
        number = 0
        for day in range(self.config.days):
            d = self.day(day)
            d.rows.sort(key=_by_time)
            stamp = _stamps(d.base)
            for second, _order, account, kind, fields in d.rows:
                number += 1
                yield orjson.dumps({"event_id": f"ev{number:010d}", "ts": stamp(second), "account_id": account,
                                    "type": kind, **fields}) + b"\n"
        self.events = number

    def labels(self) -> dict[str, str]:
        return {a.id: a.label for a in self.accounts}


def _by_time(row: tuple[int, int, str, str, dict[str, Any]]) -> tuple[int, int]:
    return row[0], row[1]


def _stamps(base: int) -> Callable[[int], str]:
    prefix = datetime.fromtimestamp(base, UTC).strftime("%Y-%m-%dT")

    def stamp(second: int) -> str:
        hours, rest = divmod(second, 3600)
        return f"{prefix}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"

    return stamp


# -- listed addresses -----------------------------------------------------------------------------


def default_ofac_dir() -> Path:
    """The shared OFAC CSV set beside the checkout (``../shared/data/sanctions/ofac``)."""
    return Path(__file__).resolve().parents[4] / "shared" / "data" / "sanctions" / "ofac"


def chain_of(address: str, currency: str = "") -> tuple[str, str]:
    """(asset, chain) of a listed address, from its shape first and the list's currency second."""
    if address.startswith("0x") and len(address) == 42:
        return "ETH", "ETH"
    if address.startswith("T") and len(address) == 34:
        return "USDT", "TRON"
    if currency.upper() in ("XBT", "BTC") or address.startswith(("bc1", "1", "3")):
        return "BTC", "BTC"
    code = "".join(ch for ch in currency.upper() if ch.isalnum())[:16] or "BTC"
    return code, code if len(code) >= 2 else "BTC"


def listed_from_ofac(ofac_dir: Path, limit: int = 12) -> tuple[ListedAddress, ...]:
    """A few real listed BTC/ETH addresses from the OFAC CSV set (sorted, so stable across runs)."""
    from freezedesk.screening.lists import load_snapshot

    snapshot = load_snapshot([f"ofac-csv:{ofac_dir}"])
    found = sorted({(a.currency, a.address) for e in snapshot.entities.values() for a in e.addresses
                    if a.currency in ("XBT", "ETH")})
    # Spread the pick over the sorted list so both chains appear.
    step = max(1, len(found) // limit)
    return tuple(ListedAddress(*chain_of(addr, cur), addr) for cur, addr in found[::step][:limit])


def listed_from_file(path: Path) -> tuple[ListedAddress, ...]:
    """One address per line; ``#`` starts a comment (the format ``backtest --address-list`` reads)."""
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        address = raw.split("#", 1)[0].strip()
        if address:
            out.append(ListedAddress(*chain_of(address), address))
    return tuple(out)


# -- files ----------------------------------------------------------------------------------------


def addresses_path(labels: Path) -> Path:
    """``labels.csv`` → ``labels.addresses.txt``: the listed addresses the run may have used."""
    return labels.with_name(labels.stem + ".addresses.txt")


def _atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        write(handle)
    os.replace(tmp, path)  # readers never see half a file


def generate(config: SynthConfig, out: Path, labels: Path,
             progress: Callable[[int], None] | None = None) -> SynthResult:
    """Write the events (JSON Lines), the labels CSV and the listed-address file; return counts."""
    gen = Generator(config)

    def write_events(handle: IO[bytes]) -> None:
        buffer: list[bytes] = []
        for line in gen.lines():
            buffer.append(line)
            if len(buffer) >= 8192:  # batch small writes: one syscall per few hundred KB
                handle.write(b"".join(buffer))
                buffer.clear()
                if progress is not None:
                    progress(8192)
        handle.write(b"".join(buffer))

    _atomic(out, write_events)
    by_account = gen.labels()

    def write_labels(handle: IO[bytes]) -> None:
        handle.write(_csv([("account_id", "label"), *sorted(by_account.items())]))

    _atomic(labels, write_labels)
    _atomic(addresses_path(labels), lambda h: h.write(
        ("# listed addresses used by freezedesk synth (one per line)\n"
         + "".join(f"{a.address}\n" for a in config.listed)).encode()))
    return SynthResult(gen.events, len(by_account), by_account, config.listed)


def _csv(rows: Iterable[Sequence[str]]) -> bytes:
    import io

    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode()
