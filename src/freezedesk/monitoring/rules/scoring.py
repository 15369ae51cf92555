"""Scoring a backtest against labelled accounts: alerts, accounts, precision and recall per rule.

Labels come from a CSV ``account_id,label`` (what ``freezedesk synth --labels`` writes, or an
investigator's dispositions). A label is ``normal``, ``decoy_<kind>`` (looks suspicious, is not) or
the name of a typology. Which labels a rule is *meant to find* is decided by :data:`TRUE_LABELS`;
a few rules are also *right* on another typology whose planted episode meets the rule's intent
just as well (:data:`ALSO_RIGHT`) — right there, but not expected to find every such account:

=====================  ==============================  ===========================
rule_id                labels it is meant to find      also right on
=====================  ==============================  ===========================
high_volume            rapid_volume                    fan_out
(any other rule)       the label equal to the rule id  —
=====================  ==============================  ===========================

So ``structuring`` is right on an account labelled ``structuring`` and wrong on every other label —
a decoy *or* another typology (an alert on a fan-out account from the structuring rule is still
the wrong reason). ``high_volume`` on a fan-out account is not the wrong reason: a planted fan-out
sends about 10,000 to 30,000 USD to 15-40 fresh addresses in a day, and when that is over the
rule's floor it *is* an outflow far above the account's own normal (the same money: a second true
reason on the same case).
Everything is counted per **account**, not per alert, because one account is one case for an
investigator:

* precision = alerted accounts whose label is a true or also-right label / alerted accounts;
* recall    = accounts with a true label that were alerted / accounts with a true label
  (also-right labels are neither in the numerator nor the denominator).

``RuleScore.strict_precision`` is precision counting also-right labels as wrong, for comparison.

A rule whose true labels do not occur in the file has no recall (shown as ``-``), and a rule that
alerted nobody has no precision.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from freezedesk.monitoring.rules.engine import Alert
from freezedesk.monitoring.rules.language import Pack

#: rule_id → labels that count as true positives; a rule not listed here matches its own id.
TRUE_LABELS: dict[str, frozenset[str]] = {
    "high_volume": frozenset({"rapid_volume"}),
}

#: rule_id → labels (besides the true ones) on which an alert is right for precision; see above.
ALSO_RIGHT: dict[str, frozenset[str]] = {
    "high_volume": frozenset({"fan_out"}),
}


class LabelsError(ValueError):
    """The labels file is malformed (the message names the file and line)."""


def true_labels(rule_id: str) -> frozenset[str]:
    return TRUE_LABELS.get(rule_id, frozenset({rule_id}))


def load_labels(path: str | Path) -> dict[str, str]:
    """``account_id,label`` CSV (a header row ``account_id,label`` is optional) → mapping."""
    out: dict[str, str] = {}
    with Path(path).open(encoding="utf-8", newline="") as fh:
        for number, row in enumerate(csv.reader(fh), start=1):
            if not row or (number == 1 and row[:2] == ["account_id", "label"]):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise LabelsError(f"{path}:{number}: expected two columns account_id,label, got {row!r}")
            out[row[0].strip()] = row[1].strip()
    return out


@dataclass(frozen=True, slots=True)
class RuleScore:
    rule_id: str
    alerts: int
    accounts: int
    true_positives: int | None = None  # alerted accounts with a true label (None without labels)
    positives: int | None = None  # labelled accounts with a true label
    also_right: int = 0  # alerted accounts with an also-right label

    @property
    def precision(self) -> float | None:
        if self.true_positives is None or not self.accounts:
            return None
        return (self.true_positives + self.also_right) / self.accounts

    @property
    def strict_precision(self) -> float | None:
        if self.true_positives is None or not self.accounts:
            return None
        return self.true_positives / self.accounts

    @property
    def recall(self) -> float | None:
        if self.true_positives is None or not self.positives:
            return None
        return self.true_positives / self.positives


def score(pack: Pack, alerts: Iterable[Alert], labels: Mapping[str, str] | None = None) -> list[RuleScore]:
    """One :class:`RuleScore` per rule of the pack, in pack order (rules that never fired included)."""
    counts = {r.id: 0 for r in pack.rules}
    accounts: dict[str, set[str]] = {r.id: set() for r in pack.rules}
    for alert in alerts:
        counts[alert.rule_id] = counts.get(alert.rule_id, 0) + 1
        accounts.setdefault(alert.rule_id, set()).add(alert.account_id)
    out = []
    for rule_id, n in counts.items():
        hit = accounts[rule_id]
        if labels is None:
            out.append(RuleScore(rule_id, n, len(hit)))
            continue
        wanted = true_labels(rule_id)
        also = ALSO_RIGHT.get(rule_id, frozenset()) - wanted
        out.append(RuleScore(rule_id, n, len(hit), sum(1 for a in hit if labels.get(a) in wanted),
                             sum(1 for label in labels.values() if label in wanted),
                             sum(1 for a in hit if labels.get(a) in also)))
    return out


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
