"""The portal's HTTP resources: JSON in, JSON out, database work on a thread pool.

Routes (all under /api, described in openapi.json):
  GET  /api/openapi.json
  POST /api/login                               {document, password} -> token
  POST /api/logout
  GET  /api/services
  POST /api/services/{login}/trust-unlock
  GET  /api/tickets
  POST /api/tickets                             {login, description}
  GET  /api/tickets/{protocol}
  POST /api/tickets/{protocol}/messages         {body}

Parsing, the session check and the rate limits run in the reactor thread (memory only);
everything that touches the database runs in `defer(function)` (a thread pool in the
daemon) so the RADIUS hot path never waits on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from aaa.config import PortalConfig
from aaa.db.models import Service
from aaa.log import log_event
from aaa.portal.auth import RateLimiter, SessionStore
from billing_bridge import trust
from management import tickets
from management.context import Context
from management.errors import NotFound, RuleViolation

MAX_BODY = 64 * 1024
Defer = Callable[[Callable[[], Any]], "Deferred[Any]"]


def openapi_document() -> bytes:
    return resources.files("aaa.portal").joinpath("openapi.json").read_bytes()


@dataclass(frozen=True, slots=True)
class PortalSettings:
    session_ttl: float = 1800
    login_attempts: int = 5
    login_attempts_per_ip: int = 20
    login_window: float = 900
    allow_self_service_tickets: bool = True

    @classmethod
    def from_config(cls, config: PortalConfig) -> PortalSettings:
        return cls(session_ttl=config.session_ttl, login_attempts=config.login_attempts,
                   login_attempts_per_ip=config.login_attempts_per_ip,
                   login_window=config.login_window,
                   allow_self_service_tickets=config.allow_self_service_tickets)


class HttpError(Exception):
    def __init__(self, status: int, error: str, message: str,
                 headers: dict[bytes, bytes] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.headers = headers or {}


def _bearer(request: Request) -> str:
    header = (request.getHeader(b"authorization") or b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _status_for(rule: RuleViolation) -> int:
    if isinstance(rule, NotFound):
        return 404
    if rule.rule == "ticket.self_service_disabled":
        return 403
    return 422


def _service(s: Service) -> dict[str, Any]:
    plan = s.plan
    return {
        "login": s.login, "status": s.status, "plan": plan.name,
        "download_kbps": s.nav_download_kbps or plan.download_kbps,
        "upload_kbps": s.nav_upload_kbps or plan.upload_kbps,
        "trust_unlock_until": s.trust_unlock_until.isoformat() if s.trust_unlock_until else None,
    }


_TICKET_FIELDS = ("protocol", "status", "type", "origin", "login", "opening_description",
                  "closing_description", "created_at", "updated_at", "finished_at")


def _ticket(session: Session, ticket: Any, with_messages: bool) -> dict[str, Any]:
    full = tickets.ticket_dict(session, ticket, full=with_messages)
    data = {key: full[key] for key in _TICKET_FIELDS}
    data["attendant"] = full["opened_by_name"]
    if with_messages:
        data["messages"] = [
            {"id": m["id"], "author": m["author"], "author_kind": m["author_kind"], "body": m["body"],
             "created_at": m["created_at"], "edited_at": m["edited_at"]}
            for m in full["messages"]]
    return data


class PortalApi(Resource):
    """Everything under /api."""

    isLeaf = True

    def __init__(self, sessions: sessionmaker[Session], settings: PortalSettings,
                 clock: Callable[[], float], defer: Defer, zone: ZoneInfo) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.defer = defer
        self.zone = zone
        self.logins = SessionStore(settings.session_ttl, clock)
        self.by_document = RateLimiter(settings.login_attempts, settings.login_window, clock)
        self.by_address = RateLimiter(settings.login_attempts_per_ip, settings.login_window, clock)
        self.openapi = openapi_document()
        self.open_password: Callable[[str], str] = lambda stored: stored

    # --- plumbing ------------------------------------------------------------------------

    def render(self, request: Request) -> bytes | int:
        path = [unquote(p.decode("utf-8", "replace")) for p in request.postpath or []]
        while path and path[-1] == "":
            path.pop()
        method = (request.method or b"GET").decode("ascii", "replace")
        try:
            result = self._route(request, method, path)
        except HttpError as exc:
            return self._error(request, exc)
        except RuleViolation as exc:
            return self._error(request, HttpError(_status_for(exc), exc.rule, exc.message))
        if isinstance(result, bytes):
            return result
        result.addCallbacks(lambda reply: self._finish(request, *reply),
                            lambda failure: self._failed(request, failure))
        return NOT_DONE_YET

    def _send(self, request: Request, status: int, body: Any,
              headers: dict[bytes, bytes] | None = None) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")  # type: ignore[no-untyped-call]
        request.setHeader(b"Cache-Control", b"no-store")  # type: ignore[no-untyped-call]
        for name, value in (headers or {}).items():
            request.setHeader(name, value)  # type: ignore[no-untyped-call]
        if status == 204:
            return b""
        return json.dumps(body, ensure_ascii=False).encode()

    def _error(self, request: Request, exc: HttpError) -> bytes:
        return self._send(request, exc.status, {"error": exc.error, "message": exc.message}, exc.headers)

    def _finish(self, request: Request, status: int, body: Any) -> None:
        if request.finished or request._disconnected:
            return
        request.write(self._send(request, status, body))  # type: ignore[no-untyped-call]
        request.finish()  # type: ignore[no-untyped-call]

    def _failed(self, request: Request, failure: Failure) -> None:
        exc = failure.value
        if isinstance(exc, HttpError):
            reply = exc
        elif isinstance(exc, RuleViolation):
            reply = HttpError(_status_for(exc), exc.rule, exc.message)
        else:
            log_event("portal_error", error=type(exc).__name__, detail=str(exc)[:200])
            reply = HttpError(500, "internal", "internal error")
        if request.finished or request._disconnected:
            return
        request.write(self._error(request, reply))  # type: ignore[no-untyped-call]
        request.finish()  # type: ignore[no-untyped-call]

    def _json(self, request: Request) -> dict[str, Any]:
        content = request.content
        raw = content.read(MAX_BODY + 1) if content is not None else b""
        if len(raw) > MAX_BODY:
            raise HttpError(413, "request.too_large", f"the body is larger than {MAX_BODY} bytes")
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise HttpError(400, "request.invalid_json", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "request.invalid_json", "the body must be a JSON object")
        return data

    @staticmethod
    def _string(data: dict[str, Any], name: str, required: bool = True) -> str:
        value = data.get(name)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise HttpError(400, "request.field_required", f"{name} is required (a string)")
        return value

    def _customer(self, request: Request) -> int:
        token = _bearer(request)
        session = self.logins.get(token) if token else None
        if session is None:
            raise HttpError(401, "portal.unauthenticated", "log in first (or again: the session expired)",
                            {b"WWW-Authenticate": b'Bearer realm="portal"'})
        return session.customer_id

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _in_transaction(self, work: Callable[[Context], tuple[int, Any]]) -> Deferred[Any]:
        """Run `work` in one transaction acting as the SAC operator, off the reactor thread."""
        now, zone, sessions = self._now(), self.zone, self.sessions

        def run() -> tuple[int, Any]:
            with sessions() as session, session.begin():
                ctx = Context(session=session, actor=tickets.portal_actor(session, now), now=now, zone=zone)
                return work(ctx)

        return self.defer(run)

    # --- routes --------------------------------------------------------------------------

    def _route(self, request: Request, method: str, path: list[str]) -> bytes | Deferred[Any]:
        allowed: str
        match path:
            case ["openapi.json"]:
                allowed = "GET"
                if method == "GET":
                    request.setHeader(b"Content-Type", b"application/json")  # type: ignore[no-untyped-call]
                    return self.openapi
            case ["login"]:
                allowed = "POST"
                if method == "POST":
                    return self._login(request)
            case ["logout"]:
                allowed = "POST"
                if method == "POST":
                    return self._logout(request)
            case ["services"]:
                allowed = "GET"
                if method == "GET":
                    return self._services(self._customer(request))
            case ["services", login, "trust-unlock"]:
                allowed = "POST"
                if method == "POST":
                    return self._trust_unlock(self._customer(request), login)
            case ["tickets"]:
                allowed = "GET, POST"
                if method == "GET":
                    return self._tickets(self._customer(request))
                if method == "POST":
                    customer_id = self._customer(request)
                    return self._open_ticket(customer_id, self._json(request))
            case ["tickets", protocol]:
                allowed = "GET"
                if method == "GET":
                    return self._ticket(self._customer(request), protocol)
            case ["tickets", protocol, "messages"]:
                allowed = "POST"
                if method == "POST":
                    customer_id = self._customer(request)
                    return self._message(customer_id, protocol, self._json(request))
            case _:
                raise HttpError(404, "request.not_found", "no such resource")
        raise HttpError(405, "request.method_not_allowed", f"use {allowed}", {b"Allow": allowed.encode()})

    def _login(self, request: Request) -> Deferred[Any]:
        data = self._json(request)
        document = self._string(data, "document")
        password = self._string(data, "password")
        document_key = "".join(c for c in document if c.isalnum()).upper()
        address = request.getClientAddress()  # type: ignore[no-untyped-call]
        address_key = getattr(address, "host", None) or str(address)
        waits = [w for w in (self.by_document.retry_after(document_key),
                             self.by_address.retry_after(address_key)) if w is not None]
        if waits:
            seconds = max(1, int(max(waits) + 0.999))
            raise HttpError(429, "portal.too_many_attempts",
                            f"too many failed logins; try again in {seconds} s",
                            {b"Retry-After": str(seconds).encode()})
        sessions, open_password = self.sessions, self.open_password

        def check() -> int | None:
            with sessions() as session:
                customer = tickets.authenticate_subscriber(session, document, password, open_password)
                return customer.id if customer is not None else None

        def decided(customer_id: int | None) -> tuple[int, Any]:
            if customer_id is None:
                self.by_document.failure(document_key)
                self.by_address.failure(address_key)
                raise HttpError(401, "portal.login_failed", "wrong CPF/CNPJ or password")
            self.by_document.reset(document_key)
            login = self.logins.create(customer_id)
            expires = datetime.fromtimestamp(login.expires_at, UTC)
            return 200, {"token": login.token, "expires_at": expires.isoformat()}

        return self.defer(check).addCallback(decided)

    def _logout(self, request: Request) -> bytes:
        token = _bearer(request)
        if token:
            self.logins.drop(token)
        return self._send(request, 204, None)

    def _services(self, customer_id: int) -> Deferred[Any]:
        return self._in_transaction(lambda ctx: (200, [
            _service(s) for s in tickets.customer_services(ctx.session, customer_id)]))

    def _trust_unlock(self, customer_id: int, login: str) -> Deferred[Any]:
        def work(ctx: Context) -> tuple[int, Any]:
            service = tickets.customer_service(ctx.session, customer_id, login)
            unlock = trust.self_service_unlock(ctx, service.login)
            return 200, {"login": service.login, "until": unlock.until.isoformat()}

        return self._in_transaction(work)

    def _tickets(self, customer_id: int) -> Deferred[Any]:
        return self._in_transaction(lambda ctx: (200, [
            _ticket(ctx.session, t, with_messages=True)
            for t in tickets.customer_tickets(ctx.session, customer_id)]))

    def _ticket(self, customer_id: int, protocol: str) -> Deferred[Any]:
        return self._in_transaction(lambda ctx: (200, _ticket(
            ctx.session, tickets.customer_ticket(ctx.session, customer_id, protocol), True)))

    def _open_ticket(self, customer_id: int, data: dict[str, Any]) -> Deferred[Any]:
        login = self._string(data, "login", required=False)
        description = self._string(data, "description", required=False)
        allowed = self.settings.allow_self_service_tickets

        def work(ctx: Context) -> tuple[int, Any]:
            ticket = tickets.open_self_service_ticket(ctx, customer_id, login, description, allowed)
            return 201, _ticket(ctx.session, ticket, with_messages=True)

        return self._in_transaction(work)

    def _message(self, customer_id: int, protocol: str, data: dict[str, Any]) -> Deferred[Any]:
        body = self._string(data, "body", required=False)

        def work(ctx: Context) -> tuple[int, Any]:
            message = tickets.add_subscriber_message(ctx, customer_id, protocol, body)
            return 201, {"id": message.id, "author": message.author_login,
                         "author_kind": message.author_kind, "body": message.body,
                         "created_at": message.created_at.isoformat(), "edited_at": None}

        return self._in_transaction(work)


def portal_site(sessions: sessionmaker[Session], settings: PortalSettings, clock: Callable[[], float],
                defer: Defer, zone: ZoneInfo, reactor: Any = None,
                open_password: Callable[[str], str] = lambda stored: stored) -> Site:
    """The twisted.web Site: /api/... and nothing else (`reactor`: the one it runs on)."""
    root = Resource()  # type: ignore[no-untyped-call]
    api = PortalApi(sessions, settings, clock, defer, zone)
    api.open_password = open_password  # sealed subscriber passwords (management.subscriber_passwords)
    root.putChild(b"api", api)  # type: ignore[arg-type]
    site = Site(root, reactor=reactor) if reactor is not None else Site(root)  # type: ignore[no-untyped-call]
    site.noisy = False
    site.displayTracebacks = False
    return site
