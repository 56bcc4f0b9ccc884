"""The subscriber-portal API over real HTTP on 127.0.0.1, on both databases: logins,
services, tickets and messages, the self-service setting, rate limits, session expiry,
trust unlock, and every answer checked against the OpenAPI document.

The site runs on a private reactor in a thread (the global one stays untouched) with an
injected clock; one test runs it inside `aaa serve --portal-port` as a process."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.threads import deferToThreadPool

from aaa.db.engine import make_engine, session_factory
from aaa.portal.api import PortalSettings, portal_site
from management import tickets
from management.context import Context, load_actor
from tests import factories
from tests.conftest import NOW, ZONE
from tests.daemon_process import free_tcp_port, running_daemon

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "aaa" / "portal" / "openapi.json"
OPENAPI: dict[str, Any] = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


class FakeClock:
    """The portal's injected clock (seconds), starting at the tests' NOW."""

    def __init__(self) -> None:
        self.value = NOW.timestamp()

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


# --- a small OpenAPI 3.1 / JSON Schema checker (the subset the document uses) ------------

def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = OPENAPI
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
          "object": dict, "null": type(None)}


def check_schema(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Every way `value` breaks `schema` (empty when it conforms)."""
    schema = _resolve(schema)
    problems: list[str] = []
    if "type" in schema:
        allowed = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(isinstance(value, _TYPES[t]) and not (t in ("integer", "number") and isinstance(value, bool))
                 for t in allowed)
        if not ok:
            return [f"{where}: {value!r} is not of type {allowed}"]
    if value is None:
        return problems
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if schema.get("format") == "date-time":
            try:
                if datetime.fromisoformat(value).tzinfo is None:
                    problems.append(f"{where}: {value!r} has no offset")
            except ValueError:
                problems.append(f"{where}: {value!r} is not a date-time")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += check_schema(item, schema["items"], f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: missing {name}")
        for name, item in value.items():
            if name in properties:
                problems += check_schema(item, properties[name], f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: unexpected property {name}")
    return problems


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The documented (template, operation) that `path` matches, if any."""
    for template, item in OPENAPI["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    return None


def check_response(method: str, path: str, status: int, headers: dict[str, str], body: Any) -> list[str]:
    found = operation_for(method, path)
    if found is None:
        return [f"{method} {path} is not documented"]
    template, operation = found
    response = operation["responses"].get(str(status))
    if response is None:
        return [f"{method} {template}: status {status} is not documented"]
    problems = []
    for header in response.get("headers", {}):
        if header.lower() not in {h.lower() for h in headers}:
            problems.append(f"{method} {template} {status}: header {header} missing")
    content = response.get("content")
    if content is None:
        unexpected = body not in (None, b"", "")
        return problems + ([f"{method} {template} {status}: unexpected body"] if unexpected else [])
    if not headers.get("Content-Type", "").startswith("application/json"):
        problems.append(f"{method} {template} {status}: content type {headers.get('Content-Type')}")
    return problems + check_schema(body, content["application/json"]["schema"],
                                   f"{method} {template} {status}")


# --- the client --------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class PortalClient:
    base: str
    checked: list[tuple[str, str, int]] = field(default_factory=list)

    def call(self, method: str, path: str, payload: Any = None, token: str | None = None,
             raw: bytes | None = None, validate: bool = True) -> Reply:
        data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                status, headers, content = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, headers, content = error.code, dict(error.headers), error.read()
        body = json.loads(content) if content else None
        if validate:
            problems = check_response(method, path.split("?")[0], status, headers, body)
            assert not problems, problems
            self.checked.append((method, path, status))
        return Reply(status, headers, body)

    def login(self, document: str, password: str) -> str:
        reply = self.call("POST", "/api/login", {"document": document, "password": password})
        assert reply.status == 200, reply.body
        return str(reply.body["token"])


@contextmanager
def running_portal(engine: Engine, settings: PortalSettings, clock: FakeClock) -> Iterator[PortalClient]:
    """The portal site on 127.0.0.1 (ephemeral port) on a private reactor in a thread."""
    reactor = EPollReactor()  # type: ignore[no-untyped-call]
    sessions = session_factory(engine)
    pool = reactor.getThreadPool()
    site = portal_site(sessions, settings, clock, lambda f: deferToThreadPool(reactor, pool, f), ZONE,
                       reactor)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
    thread.start()
    try:
        yield PortalClient(f"http://127.0.0.1:{port.getHost().port}")
    finally:
        reactor.callFromThread(port.stopListening)
        reactor.callFromThread(reactor.stop)
        thread.join(20)


# --- fixtures ----------------------------------------------------------------------------

@dataclass
class World:
    engine: Engine
    clock: FakeClock
    document: str
    customer_id: int
    other_document: str


@pytest.fixture
def world(fresh_db_url: str) -> Iterator[World]:
    """A committed database: Ana (two services, one suspended for debt) and Bruno."""
    engine = make_engine(fresh_db_url)
    with Session(engine) as session, session.begin():
        ctx = Context(session=session, actor=load_actor(session, "admin"), now=NOW, zone=ZONE)
        factories.plan(ctx)
        ana = factories.customer(ctx, name="Ana")
        factories.service(ctx, "ana", owner=ana, password="ana-pw")
        factories.service(ctx, "ana-loja", owner=ana, password="loja-pw", status="suspended_debt")
        bruno = factories.customer(ctx, name="Bruno")
        factories.service(ctx, "bruno", owner=bruno, password="bruno-pw")
        world = World(engine, FakeClock(), ana.document, ana.id, bruno.document)
    yield world
    engine.dispose()


def portal(world: World, **settings: Any) -> Any:
    return running_portal(world.engine, PortalSettings(**settings), world.clock)


def formatted(document: str) -> str:
    return f"{document[:3]}.{document[3:6]}.{document[6:9]}-{document[9:]}"


# --- tests -------------------------------------------------------------------------------

def test_openapi_document_is_served_and_consistent(world: World) -> None:
    with portal(world) as api:
        reply = api.call("GET", "/api/openapi.json")
    assert reply.status == 200 and reply.body == OPENAPI
    assert OPENAPI["openapi"].startswith("3.")
    text = json.dumps(OPENAPI)
    for ref in set(re.findall(r'"\$ref": "([^"]+)"', text)):
        _resolve({"$ref": ref})  # every reference resolves
    for item in OPENAPI["paths"].values():
        for operation in item.values():
            assert operation["responses"] and operation["operationId"]


def test_login_open_ticket_and_add_message(world: World) -> None:
    with portal(world) as api:
        token = api.login(formatted(world.document), "loja-pw")  # any of his services' passwords
        services = api.call("GET", "/api/services", token=token).body
        assert {(s["login"], s["status"]) for s in services} == {
            ("ana", "enabled"), ("ana-loja", "suspended_debt")}
        opened = api.call("POST", "/api/tickets", {"login": "ana", "description": "Internet caindo à noite"},
                          token=token)
        assert opened.status == 201
        ticket = opened.body
        assert re.fullmatch(r"20261123\d{6}", ticket["protocol"])
        assert (ticket["type"], ticket["attendant"], ticket["origin"], ticket["status"]) == (
            "SAC", "SAC (Atendimento)", "portal", "awaiting_analysis")
        protocol = ticket["protocol"]
        added = api.call("POST", f"/api/tickets/{protocol}/messages", {"body": "Hoje de novo"}, token=token)
        assert added.status == 201 and added.body["author_kind"] == "subscriber"

        with Session(world.engine) as session, session.begin():  # the support team answers
            ctx = Context(session=session, actor=load_actor(session, "admin"), now=NOW, zone=ZONE)
            [row] = tickets.list_tickets(session, operator="sac", type_name="SAC")
            assert row.protocol == protocol and row.origin == "portal"
            assert json.loads(row.diagnostics)["service"]["login"] == "ana"
            tickets.add_message(ctx, protocol, "Vamos verificar")
            draft = tickets.open_ticket(ctx, "ana").protocol  # operators' drafts stay hidden

        shown = api.call("GET", f"/api/tickets/{protocol}", token=token).body
        assert [(m["author_kind"], m["body"]) for m in shown["messages"]] == [
            ("subscriber", "Hoje de novo"), ("operator", "Vamos verificar")]
        listed = api.call("GET", "/api/tickets", token=token).body
        assert [t["protocol"] for t in listed] == [protocol]
        assert api.call("GET", f"/api/tickets/{draft}", token=token).status == 404
        second = api.call("POST", "/api/tickets", {"login": "ana-loja", "description": "x"}, token=token)
        assert second.body["protocol"] == protocol[:8] + "000003"


def test_refused_when_the_setting_is_off(world: World) -> None:
    with portal(world, allow_self_service_tickets=False) as api:
        token = api.login(world.document, "ana-pw")
        reply = api.call("POST", "/api/tickets", {"login": "ana", "description": "sem sinal"}, token=token)
        assert reply.status == 403 and reply.body["error"] == "ticket.self_service_disabled"
        assert api.call("GET", "/api/tickets", token=token).body == []
    with Session(world.engine) as session:
        assert tickets.list_tickets(session) == []


def test_refused_with_a_wrong_password_or_no_session(world: World) -> None:
    with portal(world) as api:
        for document, password in ((world.document, "wrong"), (world.document, "bruno-pw"),
                                   ("11111111111", "ana-pw"), ("not a document", "ana-pw")):
            reply = api.call("POST", "/api/login", {"document": document, "password": password})
            assert reply.status == 401 and reply.body["error"] == "portal.login_failed", document
        assert api.call("POST", "/api/login", {"document": world.document}).status == 400
        assert api.call("POST", "/api/login", raw=b"{nope").status == 400
        assert api.call("POST", "/api/login", raw=b"[1]").status == 400
        assert api.call("GET", "/api/services").status == 401
        assert api.call("GET", "/api/services", token="forged-token").status == 401
        assert api.call("POST", "/api/tickets", {"login": "ana", "description": "x"}).status == 401
        token = api.login(world.document, "ana-pw")
        bad = api.call("POST", "/api/tickets", {"login": "ana", "description": "  "}, token=token)
        assert bad.status == 422 and bad.body["error"] == "ticket.description_required"
        theirs = api.call("POST", "/api/tickets", {"login": "bruno", "description": "x"}, token=token)
        assert theirs.status == 404
        assert api.call("GET", "/api/nowhere", token=token, validate=False).status == 404
        wrong_method = api.call("DELETE", "/api/tickets", token=token, validate=False)
        assert wrong_method.status == 405 and wrong_method.headers["Allow"] == "GET, POST"
        too_big = api.call("POST", "/api/tickets", raw=b"{" + b" " * 70_000 + b"}", token=token,
                           validate=False)
        assert too_big.status == 413


def test_rate_limit_per_document_and_per_address(world: World) -> None:
    with portal(world, login_attempts=3, login_attempts_per_ip=5, login_window=600) as api:
        for _ in range(3):
            assert api.call("POST", "/api/login", {"document": world.document, "password": "x"}).status == 401
        blocked = api.call("POST", "/api/login", {"document": world.document, "password": "ana-pw"})
        assert blocked.status == 429 and blocked.body["error"] == "portal.too_many_attempts"
        assert 1 <= int(blocked.headers["Retry-After"]) <= 600
        assert api.login(world.other_document, "bruno-pw")  # another document: still fine
        world.clock.advance(601)
        assert api.login(world.document, "ana-pw")  # the window passed
        # Per address: failures on different documents add up.
        for document in (world.other_document, world.document, world.other_document,
                         world.document, world.other_document):
            assert api.call("POST", "/api/login", {"document": document, "password": "x"}).status == 401
        right = api.call("POST", "/api/login", {"document": world.document, "password": "ana-pw"})
        assert right.status == 429


def test_sessions_expire_and_log_out(world: World) -> None:
    with portal(world, session_ttl=60) as api:
        reply = api.call("POST", "/api/login", {"document": world.document, "password": "ana-pw"})
        token = reply.body["token"]
        assert datetime.fromisoformat(reply.body["expires_at"]) == NOW + timedelta(seconds=60)
        assert len(token) >= 40
        world.clock.advance(59)
        assert api.call("GET", "/api/services", token=token).status == 200
        world.clock.advance(2)
        assert api.call("GET", "/api/services", token=token).status == 401
        fresh = api.login(world.document, "ana-pw")
        assert fresh != token
        assert api.call("POST", "/api/logout", token=fresh).status == 204
        assert api.call("GET", "/api/services", token=fresh).status == 401


def test_sees_only_his_own_tickets(world: World) -> None:
    with portal(world) as api:
        bruno = api.login(world.other_document, "bruno-pw")
        protocol = api.call("POST", "/api/tickets", {"login": "bruno", "description": "x"}, token=bruno).body[
            "protocol"]
        ana = api.login(world.document, "ana-pw")
        assert api.call("GET", f"/api/tickets/{protocol}", token=ana).status == 404
        assert api.call("POST", f"/api/tickets/{protocol}/messages", {"body": "oi"}, token=ana).status == 404
        assert api.call("GET", "/api/tickets", token=ana).body == []
        assert api.call("POST", "/api/services/bruno/trust-unlock", token=ana).status == 404


def test_trust_unlock_follows_the_billing_rule(world: World) -> None:
    with portal(world) as api:
        token = api.login(world.document, "ana-pw")
        unlocked = api.call("POST", "/api/services/ana-loja/trust-unlock", token=token)
        assert unlocked.status == 200
        assert datetime.fromisoformat(unlocked.body["until"]) == NOW + timedelta(days=1)
        again = api.call("POST", "/api/services/ana-loja/trust-unlock", token=token)
        assert again.status == 422 and again.body["error"] == "trust.monthly_limit"
        enabled = api.call("POST", "/api/services/ana/trust-unlock", token=token)
        assert enabled.status == 422 and enabled.body["error"] == "trust.not_suspended"
        services = {s["login"]: s for s in api.call("GET", "/api/services", token=token).body}
        assert services["ana-loja"]["trust_unlock_until"] is not None


def test_portal_inside_aaa_serve(fresh_db_url: str, tmp_path: Path) -> None:
    """`aaa serve --portal-port N` serves the API; without it (config default) it is off."""
    engine = make_engine(fresh_db_url)
    with Session(engine) as session, session.begin():
        ctx = Context(session=session, actor=load_actor(session, "admin"), now=NOW, zone=ZONE)
        factories.plan(ctx)
        document = factories.service(ctx, "ana", password="ana-pw").customer.document
    engine.dispose()
    with running_daemon(fresh_db_url, tmp_path) as daemon:
        assert daemon.events("portal") == []
    port = free_tcp_port()
    with running_daemon(fresh_db_url, tmp_path, ("--portal-port", str(port))) as daemon:
        [event] = daemon.events("portal")
        assert int(event["port"]) == port
        api = PortalClient(f"http://127.0.0.1:{port}")
        token = api.login(document, "ana-pw")
        opened = api.call("POST", "/api/tickets", {"login": "ana", "description": "via daemon"}, token=token)
        assert opened.status == 201 and opened.body["attendant"] == "SAC (Atendimento)"
    (tmp_path / "aaa.toml").write_text(
        f"[portal]\nenabled = true\nport = {port}\nallow_self_service_tickets = false\n")
    with running_daemon(fresh_db_url, tmp_path) as daemon:
        assert daemon.events("portal")
        token = api.login(document, "ana-pw")
        refused = api.call("POST", "/api/tickets", {"login": "ana", "description": "x"}, token=token)
        assert refused.status == 403
