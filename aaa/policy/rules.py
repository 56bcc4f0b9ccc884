"""The decision: one pure function of the request's facts, the view and `now`.

The daemon and `aaa explain` call the very same `decide`. Nothing here reads a clock,
touches a socket or writes to the database; what must be written (a learned MAC, the
auth log row) is returned in the Decision for the caller to queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from aaa.policy.mac import canonical_mac
from aaa.policy.vendors import OtherVendorRates, ReplyAttribute, render_speed
from aaa.policy.view import NasFacts, PlanFacts, ServiceFacts, SubscriberView

POOL_TOTAL = "POOL_SUSPENSAO_TOTAL"
POOL_PARTIAL = "POOL_SUSPENSAO_PARCIALMENTE"


class Verdict(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class PolicySettings:
    acct_interim_interval: int = 300
    session_timeout: int = 0
    partial_reduction_type: str = "relative"  # "relative" (percent off) or "absolute" (kbit/s)
    partial_reduction_value: int = 50
    debt_download_kbps: int = 256  # the trickle a subscriber in the blocked pool gets
    debt_upload_kbps: int = 256
    other_rates: OtherVendorRates = field(default_factory=OtherVendorRates)


class RequestFacts(NamedTuple):
    """What the request says, as the decision needs it (a tuple: built once per request)."""

    login: str
    nas: NasFacts
    authenticated: bool = True  # the password check's outcome (explain assumes it passed)
    mac: str | None = None  # Calling-Station-Id, normalised when it looked like a MAC
    port_id: str | None = None  # NAS-Port-Id
    open_sessions: int | None = None  # None: simultaneous use not enforced


class Decision(NamedTuple):
    """The verdict, the reply attributes and why (a tuple: built once per request)."""

    verdict: Verdict
    reply: tuple[ReplyAttribute, ...] = ()
    reasons: tuple[str, ...] = ()
    service_id: int | None = None
    effective_status: str | None = None
    mac_differs: bool = False
    interface_differs: bool = False
    learn_mac: str | None = None  # to store off the hot path (binding "learn", none known)
    pool: str | None = None
    ip: str | None = None
    download_kbps: int | None = None
    upload_kbps: int | None = None

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPT

    @property
    def flags(self) -> frozenset[str]:
        """The anomalies the auth log and `aaa explain` single out."""
        return frozenset(name for name, on in (("mac_differs", self.mac_differs),
                                                ("interface_differs", self.interface_differs)) if on)


# Strictness of a status when a service and its associated services are combined.
_RANK = {
    "enabled": 0,
    "suspended_partial": 1,
    "suspended_debt": 2,
}
_REJECT_MESSAGES = {
    "suspended_request": "service suspended at the customer's request",
    "cancelled": "service cancelled",
    "awaiting_install": "service awaiting installation",
    "awaiting_migration": "service awaiting migration",
}
_TRUST_UNLOCKABLE = frozenset({"suspended_debt", "suspended_partial"})


def _own_status(service: ServiceFacts, now: datetime) -> tuple[str, list[str]]:
    if (service.status in _TRUST_UNLOCKABLE and service.trust_unlock_until is not None
            and service.trust_unlock_until > now):
        return "enabled", [f"trust unlock in force until {service.trust_unlock_until.isoformat()}"
                           f" (status {service.status})"]
    return service.status, []


def _partner_ids(service: ServiceFacts, view: SubscriberView) -> tuple[int, ...]:
    """The services associated with `service`, either way round."""
    partners = view.associated_to.get(service.id, ())
    if service.associated_service_id is not None:
        partners = (*partners, service.associated_service_id)
    return partners


def effective_status(service: ServiceFacts, view: SubscriberView, now: datetime) -> tuple[str, list[str]]:
    """The service's status after trust unlock, combined with its associated services.

    Associated services pass on only debt suspensions: a cancelled or merely pending
    fixed-IP service must not block the browsing service it is tied to.
    """
    status, reasons = _own_status(service, now)
    if status not in _RANK:
        return status, reasons
    for partner_id in _partner_ids(service, view):
        partner = view.services_by_id.get(partner_id)
        if partner is None:
            continue
        partner_status, _ = _own_status(partner, now)
        if partner_status in _RANK and _RANK[partner_status] > _RANK[status]:
            status = partner_status
            reasons.append(f"associated service {partner.login} is {partner_status}")
    return status, reasons


def _speed(service: ServiceFacts, plan: PlanFacts, now: datetime) -> tuple[int, int, str]:
    if (service.nav_download_kbps and service.nav_upload_kbps
            and (service.nav_until is None or service.nav_until > now)):
        until = service.nav_until.isoformat() if service.nav_until else "no end date"
        return service.nav_download_kbps, service.nav_upload_kbps, f"custom navigation ({until})"
    return plan.download_kbps, plan.upload_kbps, f"plan {plan.name}"


def _fixed_ipv4(service: ServiceFacts, view: SubscriberView) -> str | None:
    """The service's fixed IP, or one of a live fixed-IP service associated to it."""
    if service.ipv4:
        return service.ipv4
    for partner_id in view.associated_to.get(service.id, ()):
        partner = view.services_by_id.get(partner_id)
        if partner is not None and partner.ipv4 and partner.status != "cancelled":
            return partner.ipv4
    return None


def reject(reason: str, service_id: int | None = None, status: str | None = None,
           mac_differs: bool = False, interface_differs: bool = False) -> Decision:
    return Decision(Verdict.REJECT, (("Reply-Message", reason),), (reason,), service_id, status,
                    mac_differs, interface_differs)


# The speed attributes are a pure function of few values shared by most subscribers:
# rendered once per (vendor, speeds, settings) rather than formatted per request.
_speed_attributes = lru_cache(maxsize=4096)(render_speed)


def decide(request: RequestFacts, view: SubscriberView, now: datetime,
           settings: PolicySettings) -> Decision:
    """The verdict for `request` at `now` (see `decision_expires` for how long it holds)."""
    service = view.services_by_login.get(request.login)
    if service is None:
        return reject("unknown login")
    if not request.authenticated:
        return reject("wrong password", service.id)

    reasons: list[str] = []
    mac = request.mac
    mac_differs = bool(service.mac and mac and mac != service.mac)
    learn = None
    if mac_differs:
        reasons.append(f"MAC {mac} differs from registered {service.mac}")
        if service.mac_binding == "enforce":
            return reject("MAC address not allowed", service.id, mac_differs=True)
    elif service.mac is None and mac and service.mac_binding == "learn":
        learn = canonical_mac(mac)  # a NAS may send other text there: only a MAC is learned
        if learn is not None:
            reasons.append(f"learning MAC {learn}")
        else:
            reasons.append(f"Calling-Station-Id {mac!r} is not a MAC: nothing learned")
    interface_differs = _interface_differs(service, request)
    if interface_differs:
        reasons.append(f"interface {request.port_id!r} differs from registered {service.interface!r}")

    if (service.associated_service_id is None and service.trust_unlock_until is None
            and service.id not in view.associated_to):
        status = service.status  # the common case: nothing else to weigh
    else:
        status, status_reasons = effective_status(service, view, now)
        reasons.extend(status_reasons)
    if status not in _RANK:
        message = _REJECT_MESSAGES.get(status) or f"service status {status}"
        return reject(message, service.id, status, mac_differs, interface_differs)
    if request.open_sessions is not None and request.open_sessions >= service.simultaneous_use:
        return reject(f"simultaneous use limit {service.simultaneous_use} reached", service.id, status,
                      mac_differs, interface_differs)

    plan = view.plans[service.plan_id]
    download, upload, speed_reason = _speed(service, plan, now)
    pool: str | None = None
    ip: str | None = None
    if status == "suspended_debt":
        pool = view.variables.get(POOL_TOTAL) or None
        if pool is None:
            return reject("service suspended for debt", service.id, status, mac_differs,
                          interface_differs)
        download, upload = settings.debt_download_kbps, settings.debt_upload_kbps
        reasons.append(f"suspended for debt: pool {pool}")
    else:
        if status == "suspended_partial":
            kind = service.reduction_type or settings.partial_reduction_type
            value = (service.reduction_value if service.reduction_value is not None
                     else settings.partial_reduction_value)
            download, upload = _reduced(download, upload, kind, value)
            reasons.append(f"partially suspended: {kind} reduction {value} of {speed_reason}")
            pool = view.variables.get(POOL_PARTIAL) or None
        else:
            reasons.append(f"speed from {speed_reason}")
        if pool is None:
            ip = _fixed_ipv4(service, view)
            pool = None if ip else plan.pool
    if ip:
        reply: tuple[ReplyAttribute, ...] = (("Framed-IP-Address", ip),)
    elif pool:
        reply = (("Framed-Pool", pool),)
    else:
        reply = ()
    if service.ipv6_prefix and status != "suspended_debt":
        reply += (("Delegated-IPv6-Prefix", service.ipv6_prefix),)
    reply += _speed_attributes(request.nas.vendor, download, upload, settings.other_rates)
    if settings.session_timeout:
        reply += (("Session-Timeout", settings.session_timeout),)
    if settings.acct_interim_interval:
        reply += (("Acct-Interim-Interval", settings.acct_interim_interval),)
    return Decision(Verdict.ACCEPT, reply, tuple(reasons), service.id, status, mac_differs,
                    interface_differs, learn, pool, ip, download, upload)


def decision_expires(request: RequestFacts, view: SubscriberView, now: datetime) -> datetime | None:
    """The first moment after `now` at which `decide` could answer `request` otherwise, the
    view unchanged; None: never. `decide` compares `now` only with a service's trust-unlock
    end (its own and its associated services') and its custom speed's end date, so its
    answer holds until the next of those still ahead; the daemon keeps the answer that long.
    (A new comparison with `now` in `decide` must be added here; tests/test_policy_rules.py
    holds the two together.)"""
    service = view.services_by_login.get(request.login)
    if service is None:
        return None
    limits = [service.trust_unlock_until, service.nav_until]
    for partner_id in _partner_ids(service, view):
        partner = view.services_by_id.get(partner_id)
        if partner is not None:
            limits.append(partner.trust_unlock_until)
    ahead = [limit for limit in limits if limit is not None and limit > now]
    return min(ahead) if ahead else None


def _reduced(download: int, upload: int, kind: str, value: int) -> tuple[int, int]:
    if kind == "absolute":
        return min(download, value), min(upload, value)
    keep = max(0, 100 - value)
    return max(1, download * keep // 100), max(1, upload * keep // 100)


def _interface_differs(service: ServiceFacts, request: RequestFacts) -> bool:
    if service.nas_id is not None and service.nas_id != request.nas.id:
        return True
    if not service.interface or request.port_id is None:
        return False
    return request.port_id.strip().lower() != service.interface.strip().lower()
