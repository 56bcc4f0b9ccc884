"""Plain-dict views of the models for `--format json|csv|table` (snake_case, ISO 8601)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aaa.db.models import Customer, HistoryEntry, Nas, Operator, Plan, Pop, ScheduledTask, Service, Subnet


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value


def customer(c: Customer) -> dict[str, Any]:
    return {
        "id": c.id, "person_type": c.person_type, "name": c.name, "document": c.document,
        "email": c.email, "phones": c.phones, "city": c.city, "state": c.state,
        "address": c.address, "group": c.group_name, "origin": c.origin, "active": c.active,
        "created_at": _value(c.created_at),
    }


def plan(p: Plan) -> dict[str, Any]:
    return {
        "id": p.id, "name": p.name, "download_kbps": p.download_kbps,
        "upload_kbps": p.upload_kbps, "price": _value(p.price), "technology": p.technology,
        "pool": p.pool, "allows_association": p.allows_association,
    }


def nas(n: Nas) -> dict[str, Any]:
    # The RADIUS secret is never part of a listing.
    return {
        "id": n.id, "name": n.name, "ip": n.ip, "vendor": n.vendor, "model": n.model,
        "pop": n.pop.name if n.pop else None, "coa_port": n.coa_port,
        "require_message_authenticator": n.require_message_authenticator,
        "enabled": n.enabled,
    }


def pop(p: Pop) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "city": p.city}


def subnet(s: Subnet) -> dict[str, Any]:
    return {"id": s.id, "folder": s.folder.name, "cidr": s.cidr, "description": s.description}


def service(s: Service, with_password: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": s.id, "login": s.login, "customer_id": s.customer_id,
        "customer": s.customer.name, "plan": s.plan.name, "status": s.status,
        "mac": s.mac, "mac_binding": s.mac_binding, "interface": s.interface,
        "nas": s.nas.name if s.nas else None, "ipv4": s.ipv4, "ipv6_prefix": s.ipv6_prefix,
        "navigation_download_kbps": s.nav_download_kbps,
        "navigation_upload_kbps": s.nav_upload_kbps,
        "navigation_until": _value(s.nav_until),
        "associated_login": s.associated_service.login if s.associated_service else None,
        "simultaneous_use": s.simultaneous_use,
        "trust_unlock_until": _value(s.trust_unlock_until),
        "price": _value(s.price_override if s.price_override is not None else s.plan.price),
        "note": s.note, "created_at": _value(s.created_at), "updated_at": _value(s.updated_at),
    }
    if with_password:
        data["password"] = s.password
    return data


def operator(o: Operator) -> dict[str, Any]:
    return {
        "id": o.id, "login": o.login, "name": o.name, "active": o.active,
        "is_admin": o.is_admin, "permissions": [p.permission for p in o.permissions],
    }


def history(h: HistoryEntry) -> dict[str, Any]:
    return {
        "id": h.id, "at": _value(h.at), "operator": h.operator_login,
        "object_type": h.object_type, "object_id": h.object_id,
        "customer_id": h.customer_id, "action": h.action, "changes": h.changes, "note": h.note,
    }


def task(t: ScheduledTask) -> dict[str, Any]:
    return {
        "id": t.id, "service_id": t.service_id, "kind": t.kind,
        "target_status": t.target_status, "run_on": _value(t.run_on), "note": t.note,
        "created_by": t.created_by, "done_at": _value(t.done_at),
    }
