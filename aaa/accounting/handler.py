"""The Accounting-Request pipeline: client check → decode → authenticators → duplicate
check → event → group commit. The Accounting-Response is sent only when the committer
reports the event durable (RFC 2866 §2: answer only what is recorded).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aaa.accounting.committer import Pending
from aaa.accounting.events import event_from_packet
from aaa.accounting.index import OpenSessionIndex
from aaa.daemon.handler import too_many_proxy_states
from aaa.daemon.metrics import Metrics
from aaa.policy.view import SubscriberView
from aaa.radius import (
    IN_PROGRESS,
    DuplicateCache,
    MalformedPacket,
    PacketCode,
    build_reply,
    decode,
    request_key,
    verify_message_authenticator,
    verify_request_authenticator,
)
from aaa.radius.dedup import CacheKey
from aaa.radius.dictionary import Dictionary

Send = Callable[[bytes, tuple[str, int]], None]
Token = tuple[CacheKey, bytes, tuple[str, int]]


class AcctHandler:
    def __init__(self, dictionary: Dictionary, view: Callable[[], SubscriberView],
                 submit: Callable[[Pending], bool], index: OpenSessionIndex, metrics: Metrics,
                 strip_realm: bool = False, dedup: DuplicateCache | None = None) -> None:
        self.dictionary = dictionary
        self.view = view
        self.submit = submit
        self.index = index
        self.metrics = metrics
        self.strip_realm = strip_realm
        self.dedup = dedup or DuplicateCache(window=30.0, max_entries=200_000)
        self.send: Send = lambda reply, addr: None  # bound to the UDP port by the daemon

    def reconfigure(self, dictionary: Dictionary, strip_realm: bool) -> None:
        self.dictionary = dictionary
        self.strip_realm = strip_realm

    def handle(self, data: bytes, host: str, port: int, now: float) -> bytes | None:
        view = self.view()
        nas = view.nas_by_ip.get(host)
        if nas is None or not nas.enabled:
            self.metrics.drop("unknown_client", host)
            return None
        try:
            packet = decode(data, self.dictionary)
        except MalformedPacket:
            self.metrics.drop("malformed", nas.name)
            return None
        if packet.code != PacketCode.ACCOUNTING_REQUEST:
            self.metrics.drop("unexpected_code", nas.name)
            return None
        if not verify_request_authenticator(packet, nas.secret) or (
                packet.has_message_authenticator and not verify_message_authenticator(packet, nas.secret)):
            self.metrics.drop("bad_authenticator", nas.name)
            return None
        if too_many_proxy_states(packet):  # the same limit as for Access-Requests
            self.metrics.drop("proxy_state_limit", nas.name)
            return None
        key = request_key(host, port, packet)
        cached = self.dedup.lookup(key, now)
        if cached is IN_PROGRESS:
            self.metrics.duplicate(nas.name)  # still being stored: the reply follows
            return None
        if isinstance(cached, bytes):
            self.metrics.duplicate(nas.name)
            return cached
        raw_name = packet.get_raw(1) or b""
        login = raw_name.decode("utf-8", "replace")
        if self.strip_realm and "@" in login:
            login = login.split("@", 1)[0]
        service = view.services_by_login.get(login)
        try:
            event = event_from_packet(packet, nas, host, datetime.fromtimestamp(now, UTC),
                                      service.id if service else None, login)
        except MalformedPacket:
            self.dedup.forget(key)
            self.metrics.drop("malformed", nas.name)
            return None
        reply = build_reply(packet, PacketCode.ACCOUNTING_RESPONSE, nas.secret)
        token: Token = (key, reply, (host, port))
        if not self.submit(Pending(event, token)):
            self.dedup.forget(key)
            self.metrics.drop("queue_full", nas.name)
            return None
        self.metrics.acct_requests.inc(nas.name, event.kind)
        return None

    def finish(self, group: list[Pending], durable: bool, now: float) -> None:
        """On the reactor thread: answer what is durable; forget what is not (NAS retries)."""
        for pending in group:
            token: Token = pending.token  # type: ignore[assignment]
            key, reply, addr = token
            if durable:
                self.index.apply(pending.event)
                self.dedup.store(key, reply, now)
                self.send(reply, addr)
            else:
                self.dedup.forget(key)
