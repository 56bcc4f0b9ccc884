"""The named permissions an operator can hold."""

from __future__ import annotations

PERMISSIONS: dict[str, str] = {
    "customers.edit": "create and edit customers",
    "customers.inactivate": "inactivate customers",
    "plans.edit": "create, clone and mass-change plans",
    "nas.edit": "register and edit NAS",
    "network.edit": "POPs, subnet folders and subnets",
    "variables.edit": "set system variables",
    "services.create": "create services and import them in bulk",
    "services.edit": "edit services: plan, MAC, IPs, navigation, association",
    "services.suspend": "suspend services",
    "services.enable": "enable services",
    "services.cancel": "cancel services",
    "services.migrate": "migrate services to another plan or customer",
    "services.trust_unlock": "unlock a suspended service in trust until a date",
    "services.schedule": "schedule status changes",
    "billing.edit": "payment methods, invoices and payments (the billing contract by hand)",
    "routines.manage": "add and remove routines (scheduled suspension, enable, expiries)",
    "coa.send": "send Disconnect/CoA to live sessions by hand",
    "sessions.manage": "close stale sessions and run connection alarms",
    "operators.manage": "create operators, grant permissions, limit them to cities",
    "inventory.edit": "OLTs and their PON ports",
    "addresses.edit": "service and customer addresses, grouping neighbourhoods",
    "passwords.view": "see equipment passwords",
    "passwords.edit": "add, change and delete equipment passwords",
    "tickets.open": "open and edit support tickets, add messages to them",
    "tickets.finish": "finish support tickets",
    "tickets.configure": "ticket types and service-order closing reasons",
    "orders.open": "open service orders from tickets",
    "orders.close": "close service orders with a closing reason",
}


def is_known(name: str) -> bool:
    return name in PERMISSIONS
