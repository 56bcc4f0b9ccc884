"""The decision: one pure function of the request's facts, the view and `now`.

The daemon and `aaa explain` call the very same `decide`. Nothing here reads a clock,
touches a socket or writes to the database; what must be written (a learned MAC, the
auth log row) is returned in the Decision for the caller to queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from aaa.policy.vendors import OtherVendorRates, ReplyAttribute, render_speed
from aaa.policy.view import NasFacts, ServiceFacts, SubscriberView

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


@dataclass(frozen=True, slots=True)
class RequestFacts:
    login: str
    nas: NasFacts
    authenticated: bool = True  # the password check's outcome (explain assumes it passed)
    mac: str | None = None  # Calling-Station-Id, normalised when it looked like a MAC
    port_id: str | None = None  # NAS-Port-Id
    open_sessions: int | None = None  # None: simultaneous use not enforced


@dataclass(frozen=True, slots=True)
class Decision:
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
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPT


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


def effective_status(service: ServiceFacts, view: SubscriberView, now: datetime) -> tuple[str, list[str]]:
    """The service's status after trust unlock, combined with its associated services.

    Associated services pass on only debt suspensions: a cancelled or merely pending
    fixed-IP service must not block the browsing service it is tied to.
    """
    status, reasons = _own_status(service, now)
    if status not in _RANK:
        return status, reasons
    partners = list(view.associated_to.get(service.id, ()))
    if service.associated_service_id is not None:
        partners.append(service.associated_service_id)
    for partner_id in partners:
        partner = view.services_by_id.get(partner_id)
        if partner is None:
            continue
        partner_status, _ = _own_status(partner, now)
        if partner_status in _RANK and _RANK[partner_status] > _RANK[status]:
            status = partner_status
            reasons.append(f"associated service {partner.login} is {partner_status}")
    return status, reasons


def _speed(service: ServiceFacts, view: SubscriberView, now: datetime) -> tuple[int, int, str]:
    plan = view.plans[service.plan_id]
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


def reject(reason: str, **extra: object) -> Decision:
    return Decision(Verdict.REJECT, (("Reply-Message", reason),), (reason,), **extra)  # type: ignore[arg-type]


def decide(request: RequestFacts, view: SubscriberView, now: datetime,
           settings: PolicySettings) -> Decision:
    service = view.services_by_login.get(request.login)
    if service is None:
        return reject("unknown login")
    if not request.authenticated:
        return reject("wrong password", service_id=service.id)

    reasons: list[str] = []
    flags: set[str] = set()
    mac_differs = bool(service.mac and request.mac and request.mac != service.mac)
    learn = None
    if mac_differs:
        flags.add("mac_differs")
        reasons.append(f"MAC {request.mac} differs from registered {service.mac}")
        if service.mac_binding == "enforce":
            return reject("MAC address not allowed", service_id=service.id, mac_differs=True,
                          flags=frozenset(flags))
    elif service.mac is None and request.mac and service.mac_binding == "learn":
        learn = request.mac
        reasons.append(f"learning MAC {request.mac}")
    interface_differs = _interface_differs(service, request)
    if interface_differs:
        flags.add("interface_differs")
        reasons.append(f"interface {request.port_id!r} differs from registered {service.interface!r}")

    status, status_reasons = effective_status(service, view, now)
    reasons.extend(status_reasons)
    common = {"service_id": service.id, "effective_status": status, "mac_differs": mac_differs,
              "interface_differs": interface_differs, "flags": frozenset(flags)}
    if status in _REJECT_MESSAGES:
        return reject(_REJECT_MESSAGES[status], **common)
    if status not in _RANK:
        return reject(f"service status {status}", **common)
    if request.open_sessions is not None and request.open_sessions >= service.simultaneous_use:
        return reject(f"simultaneous use limit {service.simultaneous_use} reached", **common)

    download, upload, speed_reason = _speed(service, view, now)
    plan = view.plans[service.plan_id]
    pool: str | None = None
    ip: str | None = None
    if status == "suspended_debt":
        pool = view.variables.get(POOL_TOTAL) or None
        if pool is None:
            return reject("service suspended for debt", **common)
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
    reply: list[ReplyAttribute] = []
    if ip:
        reply.append(("Framed-IP-Address", ip))
    elif pool:
        reply.append(("Framed-Pool", pool))
    if service.ipv6_prefix and status != "suspended_debt":
        reply.append(("Delegated-IPv6-Prefix", service.ipv6_prefix))
    reply.extend(render_speed(request.nas.vendor, download, upload, settings.other_rates))
    if settings.session_timeout:
        reply.append(("Session-Timeout", settings.session_timeout))
    if settings.acct_interim_interval:
        reply.append(("Acct-Interim-Interval", settings.acct_interim_interval))
    return Decision(Verdict.ACCEPT, tuple(reply), tuple(reasons), learn_mac=learn, pool=pool, ip=ip,
                    download_kbps=download, upload_kbps=upload, **common)  # type: ignore[arg-type]


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
