"""Loading the policy's SubscriberView from the database, and keeping it fresh.

The view is loaded once with a streaming query; afterwards only the rows named by the
change feed since the view's `seq` are read again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from aaa.db.models import ChangeFeedEntry, Nas, PaymentMethod, Plan, Service, Variable
from aaa.policy.view import NasFacts, PlanFacts, ServiceFacts, SubscriberView, ViewChanges, apply_changes

_SERVICE_COLUMNS = (
    Service.id, Service.login, Service.password, Service.status, Service.plan_id, Service.mac,
    Service.mac_binding, Service.interface, Service.nas_id, Service.ipv4, Service.ipv6_prefix,
    Service.nav_download_kbps, Service.nav_upload_kbps, Service.nav_until,
    Service.associated_service_id, Service.simultaneous_use, Service.trust_unlock_until,
    PaymentMethod.reduction_type, PaymentMethod.reduction_value,
)
_BATCH = 10_000


PasswordOpener = Callable[[str], str]


def _as_stored(stored: str) -> str:
    return stored


def _services(session: Session, ids: Iterable[int] | None = None,
              open_password: PasswordOpener = _as_stored) -> Iterator[ServiceFacts]:
    query = select(*_SERVICE_COLUMNS).outerjoin(PaymentMethod,
                                                PaymentMethod.id == Service.payment_method_id)
    if ids is not None:
        query = query.where(Service.id.in_(list(ids)))
    result = session.execute(query.execution_options(yield_per=_BATCH))
    for row in result:
        # Sealed passwords (subscriber_passwords) are opened once here, never per request.
        yield ServiceFacts(row[0], row[1], open_password(row[2]), *row[3:])


def _plans(session: Session) -> list[PlanFacts]:
    return [PlanFacts(*row) for row in session.execute(
        select(Plan.id, Plan.name, Plan.download_kbps, Plan.upload_kbps, Plan.pool))]


def _nas(session: Session) -> list[NasFacts]:
    return [
        NasFacts(n.id, n.name, n.ip, n.vendor, n.secret.encode(), n.require_message_authenticator,
                 n.enabled, n.coa_port)
        for n in session.scalars(select(Nas))
    ]


def _variables(session: Session) -> dict[str, str]:
    return {key: value for key, value in session.execute(select(Variable.key, Variable.value))}


_FEED_ROW = (ChangeFeedEntry.seq, ChangeFeedEntry.object_type, ChangeFeedEntry.object_id, ChangeFeedEntry.at)


class FeedDiverged(Exception):
    """The change-feed row a view was last brought to is gone or different: the database
    was restored from an older backup (the feed's numbers are being reused) or the feed was
    pruned past it. Reading "after seq" would miss changes: load the view whole."""


def _last_feed_row(session: Session) -> tuple[Any, ...]:
    row = session.execute(select(*_FEED_ROW).order_by(ChangeFeedEntry.seq.desc()).limit(1)).first()
    return tuple(row) if row is not None else ()


def load_view(session: Session, open_password: PasswordOpener = _as_stored) -> SubscriberView:
    """The whole view, read inside one transaction so that `seq` matches the rows."""
    mark = _last_feed_row(session)
    return SubscriberView.build(_services(session, None, open_password), _plans(session), _nas(session),
                                _variables(session), mark[0] if mark else 0, mark)


def read_changes(session: Session, view: SubscriberView,
                 open_password: PasswordOpener = _as_stored) -> ViewChanges | None:
    """The change-feed rows after `view.seq`, read into the changes they make; None if none.

    The row at `view.seq` is read too and must be the view's `feed_mark`, else
    FeedDiverged (a view without a mark, seq 0 or built by hand, is not checked)."""
    first = view.seq if view.feed_mark else view.seq + 1
    rows = session.execute(
        select(*_FEED_ROW).where(ChangeFeedEntry.seq >= first).order_by(ChangeFeedEntry.seq)).all()
    if view.feed_mark:
        if not rows or tuple(rows[0]) != view.feed_mark:
            raise FeedDiverged(f"change-feed row {view.seq} is not the one the view was read at")
        rows = rows[1:]
    if not rows:
        return None
    entries = [(seq, kind, object_id) for seq, kind, object_id, _ in rows]
    kinds = {kind for _, kind, _ in entries}
    service_ids = {int(object_id) for _, kind, object_id in entries if kind == "service"}
    if "payment_method" in kinds:  # a method's reduction changed: re-read its services
        method_ids = [int(object_id) for _, kind, object_id in entries if kind == "payment_method"]
        service_ids.update(session.scalars(select(Service.id).where(
            Service.payment_method_id.in_(method_ids))))
    changed = list(_services(session, service_ids, open_password)) if service_ids else []
    return ViewChanges(
        services=changed, removed_services=service_ids - {s.id for s in changed},
        plans=_plans(session) if "plan" in kinds else None,
        nas=_nas(session) if "nas" in kinds else None,
        variables=_variables(session) if "variable" in kinds else None,
        seq=entries[-1][0], feed_mark=tuple(rows[-1]),
    )


class CatchUp(NamedTuple):
    view: SubscriberView  # the view itself when nothing changed
    changes: ViewChanges | None  # what was applied; None when nothing was, or when reloaded
    reloaded: bool  # the feed no longer continued from the view: loaded whole


def catch_up(session: Session, view: SubscriberView,
             open_password: PasswordOpener = _as_stored) -> CatchUp:
    """Bring `view` up to the change feed: its rows after `view.seq` applied, or the view
    loaded whole when the feed no longer continues from it (FeedDiverged)."""
    try:
        changes = read_changes(session, view, open_password)
    except FeedDiverged:
        return CatchUp(load_view(session, open_password), None, True)
    return CatchUp(view if changes is None else apply_changes(view, changes), changes, False)


def refresh_view(session: Session, view: SubscriberView,
                 open_password: PasswordOpener = _as_stored) -> SubscriberView:
    """`catch_up`'s view: `view` itself when nothing changed."""
    return catch_up(session, view, open_password).view
