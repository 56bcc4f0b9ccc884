"""The SubscriberView: an immutable snapshot the hot path reads without any I/O.

A refresher builds a new view from the old one plus the changed rows and swaps the
reference; readers holding the old one finish with it undisturbed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from aaa.policy import layered


@dataclass(frozen=True, slots=True)
class PlanFacts:
    id: int
    name: str
    download_kbps: int
    upload_kbps: int
    pool: str | None


@dataclass(frozen=True, slots=True)
class ServiceFacts:
    id: int
    login: str
    password: str
    status: str
    plan_id: int
    mac: str | None = None
    mac_binding: str = "off"
    interface: str | None = None
    nas_id: int | None = None
    ipv4: str | None = None
    ipv6_prefix: str | None = None
    nav_download_kbps: int | None = None
    nav_upload_kbps: int | None = None
    nav_until: datetime | None = None
    associated_service_id: int | None = None
    simultaneous_use: int = 1
    trust_unlock_until: datetime | None = None
    # The payment method's partial-suspension rule; None: the configured default.
    reduction_type: str | None = None
    reduction_value: int | None = None


@dataclass(frozen=True, slots=True)
class NasFacts:
    id: int
    name: str
    ip: str
    vendor: str
    secret: bytes
    require_message_authenticator: bool = True
    enabled: bool = True
    coa_port: int = 3799


@dataclass(frozen=True, slots=True)
class SubscriberView:
    """Everything a decision reads. `seq` is the last change-feed row applied and
    `feed_mark` that row itself (how the refresher notices a database that is no longer
    the one the view was read from: restored from an older backup, the feed pruned)."""

    services_by_login: Mapping[str, ServiceFacts] = field(default_factory=dict)
    services_by_id: Mapping[int, ServiceFacts] = field(default_factory=dict)
    associated_to: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    plans: Mapping[int, PlanFacts] = field(default_factory=dict)
    nas_by_ip: Mapping[str, NasFacts] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    seq: int = 0
    feed_mark: tuple[Any, ...] = ()

    @classmethod
    def build(cls, services: Iterable[ServiceFacts], plans: Iterable[PlanFacts],
              nas: Iterable[NasFacts], variables: Mapping[str, str], seq: int,
              feed_mark: tuple[Any, ...] = ()) -> SubscriberView:
        by_id = {s.id: s for s in services}
        return cls(
            services_by_login=_live_by_login(by_id.values()), services_by_id=by_id,
            associated_to=_reverse_associations(by_id.values()),
            plans={p.id: p for p in plans}, nas_by_ip={n.ip: n for n in nas},
            variables=dict(variables), seq=seq, feed_mark=feed_mark,
        )

    def with_changes(
        self, *, services: Iterable[ServiceFacts] = (), removed_services: Iterable[int] = (),
        plans: Iterable[PlanFacts] | None = None, nas: Iterable[NasFacts] | None = None,
        variables: Mapping[str, str] | None = None, seq: int, feed_mark: tuple[Any, ...] = (),
    ) -> SubscriberView:
        """A new view with some services replaced/removed, and optionally new plans/NAS/variables.

        Only what changed is copied (`aaa.policy.layered`): a refresh of a few services in a
        view of a million costs microseconds, not a copy of the million."""
        changed = {s.id: s for s in services}
        gone = set(removed_services) - changed.keys()
        by_id, by_login, associated = self.services_by_id, self.services_by_login, self.associated_to
        login_updates: dict[str, ServiceFacts] = {}
        login_removals: set[str] = set()

        def login_present(login: str) -> bool:
            return login in login_updates or (login not in login_removals and login in by_login)

        touched = gone | changed.keys()
        for service_id in touched:  # a login that named a touched service is unmapped first
            old = by_id.get(service_id)
            if old is not None and by_login.get(old.login) is old:
                login_removals.add(old.login)
        for service in changed.values():
            if service.status != "cancelled" or not login_present(service.login):
                # a cancelled one only when the login has no other: "cancelled", not "unknown"
                login_updates[service.login] = service
                login_removals.discard(service.login)
        association_changed = any(s.associated_service_id for s in changed.values()) or any(
            (old := by_id.get(i)) is not None and old.associated_service_id for i in touched)
        if association_changed:
            reverse = {key: [i for i in value if i not in touched] for key, value in associated.items()}
            for service in changed.values():
                if service.associated_service_id is not None:
                    reverse.setdefault(service.associated_service_id, []).append(service.id)
            associated = {key: tuple(value) for key, value in reverse.items() if value}
        return replace(
            self, services_by_login=layered.with_changes(by_login, login_updates, login_removals),
            services_by_id=layered.with_changes(by_id, changed, gone),
            associated_to=associated,
            plans={p.id: p for p in plans} if plans is not None else self.plans,
            nas_by_ip={n.ip: n for n in nas} if nas is not None else self.nas_by_ip,
            variables=dict(variables) if variables is not None else self.variables,
            seq=seq, feed_mark=feed_mark,
        )


class ViewChanges(NamedTuple):
    """What one refresh read from the change feed: the arguments of `SubscriberView.with_changes`."""

    services: list[ServiceFacts]
    removed_services: set[int]
    plans: list[PlanFacts] | None
    nas: list[NasFacts] | None
    variables: dict[str, str] | None
    seq: int
    feed_mark: tuple[Any, ...] = ()


def apply_changes(view: SubscriberView, changes: ViewChanges) -> SubscriberView:
    return view.with_changes(services=changes.services, removed_services=changes.removed_services,
                             plans=changes.plans, nas=changes.nas, variables=changes.variables,
                             seq=changes.seq, feed_mark=changes.feed_mark)


def _live_by_login(services: Iterable[ServiceFacts]) -> dict[str, ServiceFacts]:
    """login → the live service; a login only held by cancelled services maps to one of them."""
    result: dict[str, ServiceFacts] = {}
    for service in services:
        current = result.get(service.login)
        if current is None or (current.status == "cancelled" and service.status != "cancelled"):
            result[service.login] = service
    return result


def _reverse_associations(services: Iterable[ServiceFacts]) -> dict[int, tuple[int, ...]]:
    reverse: dict[int, list[int]] = {}
    for service in services:
        if service.associated_service_id is not None:
            reverse.setdefault(service.associated_service_id, []).append(service.id)
    return {key: tuple(value) for key, value in reverse.items()}
