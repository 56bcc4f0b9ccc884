"""Pure rules: a service's invoices and payment method, today → the status it should have.

Only the debt-managed statuses move: `enabled`, `suspended_partial`, `suspended_debt`.
A service suspended at the customer's request, cancelled or awaiting something is left
alone, and so is one under a trust unlock in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

ENABLED, PARTIAL, DEBT = "enabled", "suspended_partial", "suspended_debt"
MANAGED = frozenset({ENABLED, PARTIAL, DEBT})
RANK = {ENABLED: 0, PARTIAL: 1, DEBT: 2}


@dataclass(frozen=True, slots=True)
class MethodRule:
    """The suspension part of a payment method (Forma de Cobrança)."""

    name: str
    allows_partial: bool
    partial_after_days: int | None
    allows_total: bool
    total_after_days: int | None
    min_open_amount: Decimal


@dataclass(frozen=True, slots=True)
class Debt:
    """What is overdue on a service today: the oldest due date and the open amount."""

    oldest_due: date | None
    open_amount: Decimal

    @classmethod
    def none(cls) -> Debt:
        return cls(None, Decimal("0.00"))


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str
    reason: str


def debt_status(debt: Debt, method: MethodRule | None, today: date) -> Verdict:
    """The status the debt alone calls for (the stricter threshold that applies)."""
    if debt.oldest_due is None or debt.oldest_due >= today or debt.open_amount <= 0:
        return Verdict(ENABLED, "nothing overdue")
    days = (today - debt.oldest_due).days
    if method is None:
        return Verdict(ENABLED, f"{days} days overdue but no payment method to judge by")
    if debt.open_amount < method.min_open_amount:
        return Verdict(ENABLED, f"open {debt.open_amount} below the minimum {method.min_open_amount}"
                                f" of {method.name}")
    if method.allows_total and method.total_after_days is not None and days >= method.total_after_days:
        return Verdict(DEBT, f"{days} days overdue (total suspension after {method.total_after_days},"
                             f" {method.name}), open {debt.open_amount}")
    if (method.allows_partial and method.partial_after_days is not None
            and days >= method.partial_after_days):
        return Verdict(PARTIAL, f"{days} days overdue (partial suspension after "
                                f"{method.partial_after_days}, {method.name}), open {debt.open_amount}")
    return Verdict(ENABLED, f"{days} days overdue, within the tolerance of {method.name}")


def stricter(a: Verdict, b: Verdict) -> Verdict:
    return b if RANK[b.status] > RANK[a.status] else a


@dataclass(frozen=True, slots=True)
class ServiceDebt:
    service_id: int
    login: str
    status: str
    associated_service_id: int | None
    trust_in_force: bool
    verdict: Verdict  # debt_status of the service alone


@dataclass(frozen=True, slots=True)
class Change:
    service_id: int
    login: str
    from_status: str
    to_status: str
    reason: str


def targets(services: Iterable[ServiceDebt]) -> list[Change]:
    """The status changes to make: each managed service takes the stricter verdict of itself
    and the services associated with it (either way); unmanaged ones stay as they are, and
    so do those under a trust unlock unless their debt is settled (then they are enabled,
    which ends the trust)."""
    by_id: Mapping[int, ServiceDebt] = {s.service_id: s for s in services}
    partners: dict[int, list[int]] = {}
    for s in by_id.values():
        if s.associated_service_id is not None and s.associated_service_id in by_id:
            partners.setdefault(s.service_id, []).append(s.associated_service_id)
            partners.setdefault(s.associated_service_id, []).append(s.service_id)
    changes = []
    for s in by_id.values():
        if s.status not in MANAGED:
            continue
        verdict = s.verdict
        for partner_id in partners.get(s.service_id, ()):
            partner = by_id[partner_id]
            if partner.verdict.status != ENABLED:
                candidate = Verdict(partner.verdict.status,
                                    f"associated service {partner.login}: {partner.verdict.reason}")
                verdict = stricter(verdict, candidate)
        if s.trust_in_force and verdict.status != ENABLED:
            continue  # the trust holds; only a debt settled meanwhile ends it early
        if verdict.status != s.status:
            changes.append(Change(s.service_id, s.login, s.status, verdict.status, verdict.reason))
    return changes
