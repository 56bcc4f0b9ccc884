"""Loading the policy's SubscriberView from the database, and keeping it fresh.

The view is loaded once with a streaming query; afterwards only the rows named by the
change feed since the view's `seq` are read again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import func, select
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


def current_seq(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(ChangeFeedEntry.seq), 0))) or 0


def load_view(session: Session, open_password: PasswordOpener = _as_stored) -> SubscriberView:
    """The whole view, read inside one transaction so that `seq` matches the rows."""
    seq = current_seq(session)
    return SubscriberView.build(_services(session, None, open_password), _plans(session), _nas(session),
                                _variables(session), seq)


def read_changes(session: Session, view: SubscriberView,
                 open_password: PasswordOpener = _as_stored) -> ViewChanges | None:
    """The change-feed rows after `view.seq`, read into the changes they make; None if none."""
    entries = session.execute(
        select(ChangeFeedEntry.seq, ChangeFeedEntry.object_type, ChangeFeedEntry.object_id)
        .where(ChangeFeedEntry.seq > view.seq).order_by(ChangeFeedEntry.seq)
    ).all()
    if not entries:
        return None
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
        seq=entries[-1][0],
    )


def refresh_view(session: Session, view: SubscriberView,
                 open_password: PasswordOpener = _as_stored) -> SubscriberView:
    """Apply the change-feed rows after `view.seq`; returns `view` itself when nothing changed."""
    changes = read_changes(session, view, open_password)
    return view if changes is None else apply_changes(view, changes)


def feed_continues(session: Session, seq: int) -> bool:
    """Whether the change feed still holds everything after `seq`, so reading from there
    catches a view up: false when `seq` is 0, when the rows up to it were pruned, or when
    the feed is behind it (a database restored from an older backup)."""
    first, last = session.execute(
        select(func.min(ChangeFeedEntry.seq), func.max(ChangeFeedEntry.seq))).one()
    return seq > 0 and first is not None and first <= seq <= last
