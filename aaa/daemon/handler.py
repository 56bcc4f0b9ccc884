"""The Access-Request pipeline, sans-IO: datagram and source in, reply octets (or None) out.

Fixed stages, as in FreeRADIUS: client check → decode → Message-Authenticator →
duplicate check → authorize (find the login) → authenticate (PAP/CHAP/MS-CHAP) →
decide (the pure policy) → encode. Nothing here waits on the database: the view is an
in-memory snapshot, and what must be written (auth log rows, learned MACs) is handed to
a bounded sink that a writer thread drains.

Two lanes lead into the same stages. The common request (PAP or CHAP, with a valid
Message-Authenticator) is checked and read in one step (`aaa.radius.fastlane`, compiled
when built); everything else, and everything refused, takes the general lane (decode,
verify, ...), which drops and counts with the precise reason. A decision is kept for the
next identical request until the view changes or `decision_expires` says it may change:
an ISP's NAS asks the same few questions again and again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aaa.daemon.metrics import Metrics
from aaa.db.authlog import AuthRecord
from aaa.log import log_event
from aaa.policy.mac import canonical_mac
from aaa.policy.rules import PolicySettings, RequestFacts, Verdict, decide, decision_expires
from aaa.policy.view import NasFacts, ServiceFacts, SubscriberView
from aaa.radius import (
    DuplicateCache,
    MalformedPacket,
    Packet,
    PacketCode,
    build_reply,
    cache_key,
    check_chap,
    check_mschap1,
    check_mschap2,
    check_pap,
    decode,
    encode_attributes,
    nt_password_hash,
    proxy_states,
    request_key,
    strip_domain,
    verify_message_authenticator,
)
from aaa.radius.dictionary import AttrKey, Dictionary
from aaa.radius.errors import EncodeError
from aaa.radius.fastlane import MAX_PROXY_STATES as MAX_PROXY_STATES
from aaa.radius.fastlane import AccessRequest, parse_access_request, sign_access_reply
from aaa.radius.hiding import unhide_password

AuthSink = Callable[[AuthRecord, str | None], None]  # the record, and a MAC to learn

_ACCESS_REQUEST = PacketCode.ACCESS_REQUEST
_STATUS_SERVER = PacketCode.STATUS_SERVER
_ACCEPT = PacketCode.ACCESS_ACCEPT
_REJECT = PacketCode.ACCESS_REJECT
_USER_NAME = 1
_USER_PASSWORD = 2
_CHAP_PASSWORD = 3
_NAS_PORT_ID = 87
_CALLING_STATION_ID = 31
_CHAP_CHALLENGE = 60
_MS = 311
_MS_CHAP_RESPONSE = (_MS, 1)
_MS_CHAP_CHALLENGE = (_MS, 11)
_MS_CHAP2_RESPONSE = (_MS, 25)
UNKNOWN_CLIENT_LOG_INTERVAL = 10.0  # seconds: at most one log line per interval
# Proxy-State limits: a request carrying more than MAX_PROXY_STATES Proxy-States is
# dropped, and so is one whose reply, which must echo them all, would exceed 4096 octets.
MAX_DECISIONS = 200_000  # decisions kept (per view); the key holds network text, so bounded
# A kept decision: (expires at, decided at: POSIX seconds; accepted; its reply attributes
# encoded; then what the auth log records of it: verdict, reasons joined, service id,
# mac_differs, interface_differs, IP, pool, download and upload kbit/s; the MAC to learn).
# It holds from the moment it was made until it expires (a clock set back falls outside
# and decides again). Only plain values: the cyclic collector stops tracking such a tuple
# the first time it sees it, so 10,000s of kept decisions add nothing to its full
# collections (a tuple holding the Decision and its Verdict stayed tracked: ~10 ms each).
_Kept = tuple[float, float, bool, bytes, str, str, int | None, bool, bool, str | None, str | None,
              int | None, int | None, str | None]


def too_many_proxy_states(packet: Packet) -> bool:
    """True when the request carries more than MAX_PROXY_STATES Proxy-State attributes."""
    return packet.proxy_state_count > MAX_PROXY_STATES


@dataclass(frozen=True, slots=True)
class HandlerSettings:
    strip_realm: bool = False
    policy: PolicySettings = field(default_factory=PolicySettings)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the authenticate stage concluded, plus MS-CHAPv2 extras for the Accept."""

    ok: bool
    method: str
    mschap2_success: bytes | None = None
    mppe_send: bytes | None = None
    mppe_recv: bytes | None = None


_new_record = tuple.__new__
_PAP_OK, _PAP_FAILED = Credentials(True, "pap"), Credentials(False, "pap")
_CHAP_OK, _CHAP_FAILED = Credentials(True, "chap"), Credentials(False, "chap")
_NO_METHOD = Credentials(False, "none")


def _pap(given: bytes, service: ServiceFacts | None) -> Credentials:
    """The unhidden User-Password against the service's password."""
    ok = service is not None and check_pap(given, service.password.encode())
    return _PAP_OK if ok else _PAP_FAILED


def _chap(chap: bytes, challenge: bytes, service: ServiceFacts | None) -> Credentials:
    """A CHAP-Password (identifier + 16-octet response) against the service's password."""
    ok = service is not None and len(chap) == 17 and check_chap(chap, challenge, service.password.encode())
    return _CHAP_OK if ok else _CHAP_FAILED


class AuthHandler:
    """Answers Access-Request and Status-Server datagrams from the current view."""

    def __init__(self, dictionary: Dictionary, view: SubscriberView, settings: HandlerSettings,
                 metrics: Metrics, sink: AuthSink, dedup: DuplicateCache | None = None,
                 open_sessions: Callable[[int], int] | None = None) -> None:
        self.dictionary = dictionary
        self.view = view
        self.settings = settings
        self.metrics = metrics
        self.sink = sink
        self.dedup = dedup or DuplicateCache(window=5.0, max_entries=65536)
        self.open_sessions = open_sessions  # the accounting index; None: not enforced
        # The caches below belong to the thread that answers: it alone fills and empties
        # them, when it sees the view, the settings or the dictionary replaced.
        # Reply attribute blobs by the decision's attribute tuple: most subscribers share
        # a handful of plan/pool combinations, so encoding is done once per combination.
        self._encoded: dict[tuple[tuple[str, str | int], ...], bytes] = {}
        self._encoded_dictionary: Dictionary | None = dictionary
        # Decisions by (login, NAS id, password ok, MAC, NAS-Port-Id, open sessions), for
        # `_decisions_view` and `_decisions_settings` only: new ones start afresh.
        self._decisions: dict[tuple[object, ...], _Kept] = {}
        self._decisions_view: SubscriberView | None = None
        self._decisions_settings: HandlerSettings | None = None
        # Calling-Station-Id text -> canonical MAC: canonical_mac is pure and costs ~6 us
        # (regexes); a NAS sends the same few spellings per subscriber again and again.
        self._macs: dict[str, str] = {}
        self._unknown_logged_at: float | None = None
        self._unknown_suppressed = 0

    def swap_view(self, view: SubscriberView) -> None:
        self.view = view

    def reconfigure(self, settings: HandlerSettings, dictionary: Dictionary) -> None:
        """New settings (SIGHUP), from the reactor thread: only swapped in here; the thread
        that answers sees them change and empties its caches itself (`_answer`)."""
        self.settings = settings
        self.dictionary = dictionary

    # --- the pipeline -------------------------------------------------------------------

    def handle(self, data: bytes, host: str, port: int, now: float) -> bytes | None:
        """The reply to send back to (host, port), or None to stay silent."""
        nas = self.view.nas_by_ip.get(host)
        if nas is None or not nas.enabled:
            self.metrics.drop("unknown_client", host)
            self._log_unknown(host, now)
            return None
        request = parse_access_request(data, nas.secret)
        if request is not None:
            return self._common(request, host, port, nas, now)
        try:
            packet = decode(data, self.dictionary)
        except MalformedPacket:
            self.metrics.drop("malformed", nas.name)
            return None
        code = packet.code
        if code != _ACCESS_REQUEST and code != _STATUS_SERVER:
            self.metrics.drop("unexpected_code", nas.name)
            return None
        if packet.has_message_authenticator:
            if not verify_message_authenticator(packet, nas.secret):
                self.metrics.drop("bad_authenticator", nas.name)
                return None
        elif nas.require_message_authenticator or code == _STATUS_SERVER:
            self.metrics.drop("missing_message_authenticator", nas.name)
            return None
        if too_many_proxy_states(packet):
            self.metrics.drop("proxy_state_limit", nas.name)
            return None
        key = request_key(host, port, packet)
        cached = self.dedup.get(key, now)
        if isinstance(cached, bytes):
            self.metrics.duplicate(nas.name)
            return cached
        if code == _STATUS_SERVER:
            self.metrics.request(nas.name, "status_server", "accept")
            return build_reply(packet, _ACCEPT, nas.secret)
        try:
            answer = self._access(packet, nas, now)
        except MalformedPacket:
            self.metrics.drop("malformed", nas.name)
            return None
        except EncodeError:
            # The reply (our attributes plus the echoed Proxy-States) would exceed 4096
            # octets: no valid answer exists, so stay silent and count it.
            self.metrics.drop("proxy_state_limit", nas.name)
            return None
        if answer is not None:
            self.dedup.store(key, answer, now)
        return answer

    def _log_unknown(self, host: str, now: float) -> None:
        """Log an unknown source at a bounded rate; the rest are only counted."""
        last = self._unknown_logged_at
        if last is not None and now - last < UNKNOWN_CLIENT_LOG_INTERVAL:
            self._unknown_suppressed += 1
            return
        log_event("unknown_client", source=host, suppressed=self._unknown_suppressed)
        self._unknown_logged_at = now
        self._unknown_suppressed = 0

    def _common(self, request: AccessRequest, host: str, port: int, nas: NasFacts,
                now: float) -> bytes | None:
        """The fast lane: a PAP or CHAP request whose framing and Message-Authenticator
        `parse_access_request` has checked."""
        identifier, authenticator, raw_name, password, chap, challenge, calling, port_raw, proxies = request
        key = cache_key(host, port, identifier, authenticator)
        dedup = self.dedup
        cached = dedup.get(key, now)
        if isinstance(cached, bytes):
            self.metrics.duplicate(nas.name)
            return cached
        login, service = self._find_service(raw_name)
        if password is not None:
            credentials = _pap(password, service)
        else:
            assert chap is not None  # parse_access_request returns PAP or CHAP
            credentials = _chap(chap, challenge or authenticator, service)
        try:
            answer = self._answer(login, service, credentials, calling, port_raw, nas, now,
                                  identifier, authenticator, proxies)
        except EncodeError:
            self.metrics.drop("proxy_state_limit", nas.name)
            return None
        dedup.store(key, answer, now)
        return answer

    def _access(self, packet: Packet, nas: NasFacts, now: float) -> bytes | None:
        """The general lane's Access-Request, after its checks and the duplicate cache."""
        fields = packet.first_values()
        raw_name = fields.get(_USER_NAME)
        if not raw_name:
            self.metrics.drop("no_user_name", nas.name)
            return None
        login, service = self._find_service(raw_name)
        credentials = self._authenticate(packet, fields, nas, service, raw_name)
        if credentials is None:
            self.metrics.drop("bad_authenticator", nas.name)  # undecodable hidden password
            return None
        echoed = proxy_states(packet) if packet.proxy_state_count else b""
        return self._answer(login, service, credentials, fields.get(_CALLING_STATION_ID),
                            fields.get(_NAS_PORT_ID), nas, now, packet.identifier,
                            packet.authenticator, echoed)

    def _find_service(self, raw_name: bytes) -> tuple[str, ServiceFacts | None]:
        """The login (its @realm stripped when configured) and its service, if any."""
        login = raw_name.decode("utf-8", "replace")
        if self.settings.strip_realm and "@" in login:
            login = login.split("@", 1)[0]
        return login, self.view.services_by_login.get(login)

    def _answer(self, login: str, service: ServiceFacts | None, credentials: Credentials,
                calling: bytes | None, port_raw: bytes | None, nas: NasFacts, now: float,
                identifier: int, authenticator: bytes, echoed: bytes) -> bytes:
        """Decide (or reuse the decision), sign the reply, count it and log it."""
        mac_text = calling.decode("ascii", "replace") if calling else None
        mac = self._canonical_mac(mac_text) if mac_text else None
        port_id = port_raw.decode("utf-8", "replace") if port_raw is not None else None
        open_sessions = self.open_sessions(service.id) if self.open_sessions and service else None
        view, settings, dictionary = self.view, self.settings, self.dictionary
        if self._decisions_view is not view or self._decisions_settings is not settings:
            self._decisions.clear()
            self._decisions_view, self._decisions_settings = view, settings
        if self._encoded_dictionary is not dictionary:
            self._encoded.clear()
            self._encoded_dictionary = dictionary
        key = (login, nas.id, credentials.ok, mac, port_id, open_sessions)
        kept = self._decisions.get(key)
        if kept is None or not kept[1] <= now < kept[0]:
            facts = RequestFacts(login, nas, credentials.ok, mac, port_id, open_sessions)
            kept = self._decide(facts, view, now, settings.policy, dictionary)
            if len(self._decisions) >= MAX_DECISIONS:
                self._decisions.clear()
            self._decisions[key] = kept
        (_, _, accepted, attributes, verdict, reason, service_id, mac_differs, interface_differs, ip, pool,
         download_kbps, upload_kbps, learn_mac) = kept
        if accepted and credentials.mschap2_success is not None:
            attributes += self._mschap2_attributes(authenticator, nas, credentials)
        reply = sign_access_reply(_ACCEPT if accepted else _REJECT, identifier, authenticator,
                                  attributes, echoed, nas.secret)
        self.metrics.requests.inc(nas.name, credentials.method, verdict)
        # AuthRecord's fields in order, straight into the tuple (its constructor costs more).
        self.sink(_new_record(AuthRecord, (
            now, login, service_id, nas.id, nas.ip, verdict, reason, mac_text, mac_differs, port_id,
            interface_differs, ip, pool, download_kbps, upload_kbps)), learn_mac)
        return reply

    def _decide(self, facts: RequestFacts, view: SubscriberView, now: float, policy: PolicySettings,
                dictionary: Dictionary) -> _Kept:
        """The decision, how long it holds, its attributes encoded and its reasons joined."""
        moment = datetime.fromtimestamp(now, UTC)
        decision = decide(facts, view, moment, policy)
        expires = decision_expires(facts, view, moment)
        attributes = self._encoded.get(decision.reply)
        if attributes is None:
            attributes = encode_attributes(dictionary, decision.reply)
            if len(self._encoded) > 100_000:  # bounded: free-text Reply-Messages vary
                self._encoded.clear()
            self._encoded[decision.reply] = attributes
        reasons = decision.reasons
        reason = reasons[0] if len(reasons) == 1 else "; ".join(reasons)
        return (expires.timestamp() if expires is not None else math.inf, now,
                decision.verdict is Verdict.ACCEPT, attributes, decision.verdict.value, reason,
                decision.service_id, decision.mac_differs, decision.interface_differs, decision.ip,
                decision.pool, decision.download_kbps, decision.upload_kbps, decision.learn_mac)

    def _canonical_mac(self, text: str) -> str:
        mac = self._macs.get(text)
        if mac is None:
            mac = canonical_mac(text) or text
            if len(self._macs) >= 200_000:  # bounded: the text comes from the network
                self._macs.clear()
            self._macs[text] = mac
        return mac

    def _authenticate(self, packet: Packet, fields: dict[AttrKey, bytes], nas: NasFacts,
                      service: ServiceFacts | None, raw_name: bytes) -> Credentials | None:
        """Check the password by whichever method the request carries; None if undecodable.

        RFC 2865 forbids more than one method in a request; should one carry several,
        the first present of PAP, CHAP, MS-CHAPv2, MS-CHAPv1 is the one checked.
        """
        hidden = fields.get(_USER_PASSWORD)
        if hidden is not None:
            try:
                given = unhide_password(hidden, nas.secret, packet.authenticator)
            except MalformedPacket:
                return None
            return _pap(given, service)
        chap = fields.get(_CHAP_PASSWORD)
        if chap is not None:
            return _chap(chap, fields.get(_CHAP_CHALLENGE) or packet.authenticator, service)
        response = fields.get(_MS_CHAP2_RESPONSE)
        if response is not None:
            return self._mschap2(fields, service, response, raw_name)
        response = fields.get(_MS_CHAP_RESPONSE)
        if response is not None:
            v1_challenge = fields.get(_MS_CHAP_CHALLENGE)
            ok = (service is not None and v1_challenge is not None
                  and check_mschap1(v1_challenge, response, nt_password_hash(service.password)))
            return Credentials(bool(ok), "mschap")
        return _NO_METHOD

    def _mschap2(self, fields: dict[AttrKey, bytes], service: ServiceFacts | None, response: bytes,
                 raw_name: bytes) -> Credentials:
        challenge = fields.get(_MS_CHAP_CHALLENGE)
        if service is None or challenge is None:
            return Credentials(False, "mschapv2")
        result = check_mschap2(challenge, response, strip_domain(raw_name),
                               nt_password_hash(service.password))
        if result is None:
            return Credentials(False, "mschapv2")
        return Credentials(True, "mschapv2", result.success, result.send_key, result.recv_key)

    def _mschap2_attributes(self, authenticator: bytes, nas: NasFacts, credentials: Credentials) -> bytes:
        # The MPPE keys are salt-encrypted against this request's authenticator (RFC 2548).
        return encode_attributes(self.dictionary, [
            ("MS-CHAP2-Success", credentials.mschap2_success),
            ("MS-MPPE-Send-Key", credentials.mppe_send),
            ("MS-MPPE-Recv-Key", credentials.mppe_recv),
            ("MS-MPPE-Encryption-Policy", 1), ("MS-MPPE-Encryption-Types", 6),
        ], secret=nas.secret, authenticator=authenticator)
