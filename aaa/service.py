"""The daemon's composition root: builds every part from the configuration, wires them to
the reactor, and owns start, reload (SIGHUP) and graceful stop (SIGTERM).

This is the one place that reads the real clock and receives the real reactor.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from sqlalchemy.exc import OperationalError
from twisted.internet.error import CannotListenError
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from aaa.accounting.committer import GroupCommitter
from aaa.accounting.handler import AcctHandler
from aaa.accounting.index import OpenSessionIndex
from aaa.accounting.journal import Journal, JournalInUse
from aaa.config import Config, ConfigError, load_config
from aaa.daemon.authlog import AuthLogWriter
from aaa.daemon.authlog_process import AuthLogProcess
from aaa.daemon.handler import AuthHandler, HandlerSettings
from aaa.daemon.metrics import Metrics
from aaa.daemon.refresher import ViewRefresher
from aaa.daemon.snapshot import SealingKey, SnapshotError, ViewSnapshot, load_snapshot
from aaa.daemon.spread import spread_by_authenticator
from aaa.db.accounting import open_index_rows
from aaa.db.engine import make_engine, session_factory
from aaa.db.views import load_view
from aaa.log import log_event
from aaa.policy.rules import PolicySettings
from aaa.policy.vendors import OtherVendorRates
from aaa.policy.view import SubscriberView
from aaa.radius import DuplicateCache, load_dictionary
from aaa.radius.dictionary import Dictionary
from aaa.radius.errors import DictionaryError
from aaa.radius.transport import RadiusProtocol, ThreadedRadiusPort, adopt_radius_port
from management import subscriber_passwords
from management.equipment_passwords import SecretsKeyError, current_key
from management.errors import RuleViolation

WORKER_ENV = "AAA_WORKER_INDEX"
WORKER_AUTH_PORT_ENV = "AAA_WORKER_AUTH_PORT"  # the ports worker 0 bound, for the others
WORKER_ACCT_PORT_ENV = "AAA_WORKER_ACCT_PORT"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    bind: str
    auth_port: int
    acct_port: int
    metrics_port: int
    workers: int = 1
    worker_index: int = 0
    portal_port: int | None = None  # None: portal.enabled decides


def handler_settings(config: Config) -> HandlerSettings:
    p = config.policy
    return HandlerSettings(
        strip_realm=config.radius.strip_realm,
        policy=PolicySettings(
            acct_interim_interval=config.radius.acct_interim_interval,
            session_timeout=config.radius.session_timeout,
            partial_reduction_type=p.partial_reduction,
            partial_reduction_value=p.partial_reduction_value,
            debt_download_kbps=p.debt_download_kbps, debt_upload_kbps=p.debt_upload_kbps,
            other_rates=OtherVendorRates(p.other_download_attribute, p.other_upload_attribute,
                                         p.other_rate_unit),
        ),
    )


def dictionary_for(config: Config) -> Dictionary:
    try:
        return load_dictionary(*config.radius.extra_dictionaries)
    except DictionaryError as exc:
        raise ConfigError(f"radius.extra_dictionaries: {exc}") from None


class MetricsPage(Resource):
    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; version=0.0.4; charset=utf-8")  # type: ignore[no-untyped-call]
        return generate_latest(self.metrics.registry)


# Every statement the daemon runs is bounded: a lock held by a forgotten transaction
# sends accounting to the journal after this long instead of holding it indefinitely.
DAEMON_STATEMENT_TIMEOUT = 10.0
ACCT_RECEIVE_BUFFER = 4 * 1024 * 1024  # accounting waits on the database, not the CPU


def udp_socket(bind: str, port: int, reuse_port: bool,
               receive_buffer: int = ACCT_RECEIVE_BUFFER) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind((bind, port))
    sock.setblocking(False)
    return sock


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class RadiusDaemon:
    def __init__(self, config: Config, config_path: str | None, reactor: Any,
                 options: ServeOptions) -> None:
        self.config = config
        self.config_path = config_path
        self.reactor = reactor
        self.options = options
        self.metrics = Metrics()
        self.engine = make_engine(config.database_url, config.database.echo, DAEMON_STATEMENT_TIMEOUT)
        self.sessions = session_factory(self.engine)
        self.open_password = subscriber_passwords.opener(config.secrets)
        self.ports: list[Any] = []  # twisted IListeningPort
        self.children: list[subprocess.Popen[bytes]] = []

    def _submit_acct(self, pending: Any) -> bool:
        return self.committer.submit(pending)

    def _reconcile_index(self, rows: Iterable[tuple[str, int | None, int | None]]) -> None:
        """On the committer's thread: diff the index against the database's open sessions
        here, so the reactor only applies the changes (a full pass over 100,000 sessions
        on the reactor stalled it ~100 ms every reload)."""
        changes = self.index.changes(rows)
        if changes.closed or changes.opened:
            self.reactor.callFromThread(self.index.apply_changes, changes)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), UTC)

    def _snapshot_key(self) -> SealingKey | None:
        secrets = self.config.secrets
        if not (secrets.key or secrets.key_file):
            return None
        key = current_key(secrets)
        return SealingKey(key.key, key.key_id)

    def _load_view(self) -> tuple[SubscriberView, ViewSnapshot | None, bool]:
        """The view from the database (and a fresh snapshot of it), or — the database
        unreachable — from the snapshot; the snapshot writer (worker 0 only) and whether
        the view came from the snapshot."""
        database = self.engine.url.render_as_string(hide_password=True)
        enabled, key = self.config.radius.view_snapshot, None
        if enabled:
            try:
                key = self._snapshot_key()
            except SecretsKeyError as exc:
                log_event("view_snapshot_disabled", reason=str(exc))
                enabled = False
        path = Path(self.config.data_dir) / "view.snapshot" if enabled else None
        writer = ViewSnapshot(path, database, key) if path and self.options.worker_index == 0 else None
        try:
            with self.sessions() as session, session.begin():
                view = load_view(session, self.open_password)
        except OperationalError as exc:
            if path is None:
                raise
            try:
                view = load_snapshot(path, database, key)
            except SnapshotError as why:
                log_event("view_snapshot_unusable", reason=str(why))
                raise exc from None
            log_event("view_from_snapshot", path=str(path), seq=view.seq,
                      services=len(view.services_by_id),
                      taken=datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds"),
                      database_error=type(exc.orig).__name__)
            return view, writer, True
        if writer is not None:
            try:
                writer.write_base(view)
            except OSError as exc:
                self.metrics.view_snapshot_errors.inc()
                log_event("view_snapshot_failed", path=str(path), error=exc.strerror or type(exc).__name__)
                writer.close()
        return view, writer, False

    def _bind_udp(self, what: str, port: int, receive_buffer: int = ACCT_RECEIVE_BUFFER) -> socket.socket:
        bind = self.options.bind
        try:
            return udp_socket(bind, port, reuse_port=self.options.workers > 1, receive_buffer=receive_buffer)
        except OSError as exc:
            raise RuleViolation("serve.cannot_listen", f"cannot listen on {bind} port {port}/udp "
                                f"({what}): {exc.strerror or exc}") from None

    def _listen_tcp(self, what: str, port: int, site: Site, interface: str) -> Any:
        try:
            return self.reactor.listenTCP(port, site, interface=interface)
        except CannotListenError as exc:
            reason = getattr(exc.socketError, "strerror", None) or exc.socketError
            raise RuleViolation("serve.cannot_listen", f"cannot listen on {interface} port {port}/tcp "
                                f"({what}): {reason}") from None

    def _adopt_orphaned_journals(self) -> None:
        """Worker 0, at start: the journal of a worker that no longer exists (the daemon
        restarted with fewer --workers) may still hold acknowledged records. They are
        appended to this worker's journal (fsync'd) and that one emptied, so the replay
        stores them; a crash in between only makes the replay see them twice (idempotent)."""
        if self.options.worker_index != 0:
            return
        for path in sorted(self.config.journal_dir.glob("accounting-*.jnl")):
            index = path.stem.removeprefix("accounting-")
            if not index.isdigit() or int(index) < self.options.workers:
                continue
            try:
                orphan = Journal(path, self.journal.max_bytes)
            except JournalInUse:
                continue  # a live process holds it
            try:
                moved = 0
                for chunk in orphan.chunks(5_000):
                    self.journal.append(chunk)
                    moved += len(chunk)
                if moved:
                    orphan.clear()
                    log_event("accounting_journal_adopted", journal=str(path), records=moved)
            finally:
                orphan.close()

    def start(self) -> None:
        opts = self.options
        # What another process could hold comes first, before anything starts: a second
        # daemon on the same data directory or ports fails here with one line, nothing to undo.
        dictionary = dictionary_for(self.config)
        journal = self.config.journal_dir / f"accounting-{opts.worker_index}.jnl"
        try:
            self.journal = Journal(journal, self.config.accounting.journal_max_mb * 1024 * 1024)
        except JournalInUse as exc:
            raise RuleViolation("serve.journal_in_use",
                                f"{exc}: stop that one, or give this one another data_dir") from None
        except OSError as exc:
            raise RuleViolation("serve.data_dir", f"cannot open the accounting journal {journal}: "
                                f"{exc.strerror or exc} (check data_dir / accounting.journal_dir)") from None
        self._adopt_orphaned_journals()
        # A small receive buffer on the authentication port: under overload a request
        # waits there at most a fraction of a second; more is dropped by the kernel (the
        # NAS retries) rather than answered after the NAS stopped waiting.
        auth_sock = self._bind_udp("authentication", opts.auth_port,
                                   self.config.radius.receive_buffer_kb * 1024)
        acct_sock = self._bind_udp("accounting", opts.acct_port)
        metrics_port = 0
        if opts.metrics_port:
            site = Site(MetricsPage(self.metrics))  # type: ignore[no-untyped-call]
            listening = self._listen_tcp("metrics", opts.metrics_port + opts.worker_index, site, opts.bind)
            self.ports.append(listening)
            metrics_port = listening.getHost().port
        self._start_portal()
        view, snapshot, from_snapshot = self._load_view()
        self.metrics.view_services.set(len(view.services_by_id))
        self.metrics.view_seq.set(view.seq)
        self.metrics.view_from_snapshot.set(int(from_snapshot))
        self.index = OpenSessionIndex()
        try:
            self.index.load(open_index_rows(self.engine))
        except OperationalError as exc:
            # Database away: the index starts from the journal alone and is filled by the
            # committer's reload once the database answers (simultaneous use is under-
            # counted meanwhile, never over-counted).
            log_event("accounting_index_unavailable", error=type(exc.orig).__name__)
        for chunk in self.journal.chunks(5_000):  # acknowledged, not yet in the database
            for event in chunk:
                self.index.apply(event)
        self.writer: AuthLogWriter | AuthLogProcess
        if self.config.radius.auth_log_process:
            self.writer = AuthLogProcess(self.engine.url.render_as_string(hide_password=False),
                                         self.metrics)
        else:
            self.writer = AuthLogWriter(self.engine, self.sessions, self.metrics, self.now)
        self.handler = AuthHandler(dictionary, view, handler_settings(self.config),
                                   self.metrics, self.writer.submit,
                                   DuplicateCache(window=5.0, max_entries=65536),
                                   open_sessions=self.index.count)
        self.acct = AcctHandler(dictionary, lambda: self.handler.view, self._submit_acct, self.index,
                                self.metrics, strip_realm=self.config.radius.strip_realm)
        self.committer = GroupCommitter(
            self.sessions, self.journal, self.metrics,
            lambda group, ok: self.reactor.callFromThread(self.acct.finish, group, ok,
                                                          self.reactor.seconds()),
            open_sessions=self._reconcile_index,
            commit_interval=self.config.accounting.commit_interval_ms / 1000)
        self.refresher = ViewRefresher(
            self.engine, self.sessions, lambda: self.handler.view,
            lambda fresh: self.reactor.callFromThread(self._view_changed, fresh), self.metrics,
            open_password=self.open_password, snapshot=snapshot, from_snapshot=from_snapshot)
        self.writer.start()
        self.refresher.start()
        self.committer.start()
        self._start_coa()
        protocol = RadiusProtocol(self.handler.handle, self.reactor, self.metrics.latency.observer("auth"),
                                  lambda: self.metrics.drop("internal_error", "any"))
        # Workers share the port; each request goes to the one its authenticator names
        # (even load whatever the NAS count, retransmissions to the same worker).
        spread = opts.workers > 1 and spread_by_authenticator(auth_sock, opts.workers)
        self.metrics.receive_drops.sockets["auth"] = os.fstat(auth_sock.fileno()).st_ino
        auth_port = auth_sock.getsockname()[1]
        # Read by a thread of its own (see ThreadedRadiusPort), from when the reactor runs;
        # the port keeps the socket and closes it at stop.
        auth_reader = ThreadedRadiusPort(auth_sock, protocol)
        self.reactor.callWhenRunning(auth_reader.startListening)
        self.ports.append(auth_reader)
        acct_protocol = RadiusProtocol(self.acct.handle, self.reactor,
                                       self.metrics.latency.observer("acct"),
                                       lambda: self.metrics.drop("internal_error", "any"))
        acct_port = adopt_radius_port(self.reactor, acct_sock, acct_protocol)
        self.metrics.receive_drops.sockets["acct"] = os.fstat(acct_sock.fileno()).st_ino
        self.ports.append(acct_port)
        self.acct.send = acct_protocol.send
        acct_port_number = acct_sock.getsockname()[1]
        acct_sock.close()
        self.reactor.addSystemEventTrigger("before", "shutdown", self.stop)
        signal.signal(signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reload))
        if opts.workers > 1 and opts.worker_index == 0:
            self._spawn_workers(auth_port, acct_port_number)
        # The view just loaded lives as long as the daemon: out of the cyclic collector's
        # sight, its full collections stop walking a million services (pauses of 100s of
        # ms at that size). Refcounting still frees an old view once it is swapped out.
        gc.freeze()
        log_event("start", worker=opts.worker_index, bind=opts.bind, auth_port=auth_port,
                  acct_port=acct_port_number, metrics_port=metrics_port,
                  auth_spread="authenticator" if spread else "source-hash",
                  open_sessions=len(self.index), journal_records=self.journal.records,
                  services=len(view.services_by_id),
                  nas=len(view.nas_by_ip), seq=view.seq, database=self.engine.dialect.name,
                  view_source="snapshot" if from_snapshot else "database")

    def _view_changed(self, fresh: Any) -> None:
        self.handler.swap_view(fresh)
        if self.dispatcher is not None:
            self.dispatcher.wake()  # the change may have queued CoA jobs

    def _start_coa(self) -> None:
        """The CoA/Disconnect dispatcher lives in worker 0 only."""
        from twisted.internet.threads import deferToThreadPool

        from aaa.coa.dispatcher import CoaDispatcher

        self.dispatcher: Any = None
        if self.options.worker_index != 0:
            return
        pool = self.reactor.getThreadPool()
        self.dispatcher = CoaDispatcher(
            self.sessions, self.reactor, lambda f, *args: deferToThreadPool(self.reactor, pool, f, *args),
            lambda: self.handler.view, lambda: self.handler.settings.policy,
            lambda: self.handler.dictionary, self.config.coa, self.metrics.coa,
            claimer=f"{socket.gethostname()}:{os.getpid()}")
        self.dispatcher.release_dead_claims(process_alive)
        self.dispatcher.start(lambda protocol: self.reactor.listenUDP(0, protocol,
                                                                      interface=self.options.bind))

    def _start_portal(self) -> None:
        """The subscriber-portal API: worker 0 only (its logins live in memory); on when
        `--portal-port` is given or portal.enabled is set."""
        portal = self.config.portal
        port = self.options.portal_port
        if self.options.worker_index != 0 or (port is None and not portal.enabled):
            return
        from twisted.internet.threads import deferToThreadPool

        from aaa.portal.api import PortalSettings, portal_site

        pool = self.reactor.getThreadPool()
        site = portal_site(self.sessions, PortalSettings.from_config(portal), self.reactor.seconds,
                           lambda f: deferToThreadPool(self.reactor, pool, f), self.config.zone,
                           self.reactor, self.open_password)
        listening = self._listen_tcp("subscriber portal", portal.port if port is None else port, site,
                                     portal.bind)
        self.ports.append(listening)
        log_event("portal", bind=portal.bind, port=listening.getHost().port,
                  self_service_tickets=portal.allow_self_service_tickets)

    def _spawn_workers(self, auth_port: int, acct_port: int) -> None:
        # The workers start with SIGHUP ignored (an ignored signal survives exec) until they
        # install their own handler: a reload forwarded while one is still starting must
        # not kill it, which is what SIGHUP does by default.
        handler = signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            for index in range(1, self.options.workers):
                env = {**os.environ, WORKER_ENV: str(index), WORKER_AUTH_PORT_ENV: str(auth_port),
                       WORKER_ACCT_PORT_ENV: str(acct_port)}
                self.children.append(subprocess.Popen([sys.executable, "-m", "aaa.cli", *sys.argv[1:]],
                                                      env=env))
        finally:
            signal.signal(signal.SIGHUP, handler)

    def reload(self) -> None:
        """SIGHUP: re-read the configuration and dictionaries and apply what can be applied
        live (policy, RADIUS reply settings, realm stripping, dictionaries, CoA); the view
        stays. Worker 0 passes the signal on to the other workers. A setting that needs a
        restart (a port, the database, ...) is named in the log line, not silently ignored."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGHUP)
        try:
            config = load_config(self.config_path)
            settings = handler_settings(config)
            dictionary = dictionary_for(config)
        except Exception as exc:
            log_event("reload_failed", worker=self.options.worker_index, error=str(exc)[:200])
            return
        pending = restart_needed(self.config, config)
        self.config = config
        self.handler.reconfigure(settings, dictionary)
        self.acct.reconfigure(dictionary, config.radius.strip_realm)
        if self.dispatcher is not None:
            self.dispatcher.reconfigure(config.coa)
        log_event("reload", worker=self.options.worker_index, source=config.source,
                  restart_needed=",".join(pending) or "none")

    def stop(self) -> None:
        for port in self.ports:
            port.stopListening()
        for child in self.children:
            child.terminate()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.refresher.stop()
        self.committer.stop()
        self.writer.stop()
        self.journal.close()
        for child in self.children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        self.engine.dispose()
        log_event("stop", worker=self.options.worker_index)


# Settings a running daemon takes in on SIGHUP; every other one it reads only at start.
LIVE_SETTINGS = frozenset({
    "radius.acct_interim_interval", "radius.session_timeout", "radius.strip_realm",
    "radius.extra_dictionaries", "policy", "coa",
    # not the daemon's: read by the commands and routines that use them, at each run
    "radius.auth_log_retention_days", "accounting.stale_after_intervals", "secrets.password_length",
    "source",
})


def restart_needed(old: Config, new: Config) -> list[str]:
    """The changed settings (`section.name`) that only take effect at the next start."""
    changed: list[str] = []
    for section in fields(Config):
        before, after = getattr(old, section.name), getattr(new, section.name)
        if before == after or section.name in LIVE_SETTINGS:
            continue
        if not is_dataclass(before):
            changed.append(section.name)
            continue
        changed.extend(f"{section.name}.{item.name}" for item in fields(before)
                       if getattr(before, item.name) != getattr(after, item.name)
                       and f"{section.name}.{item.name}" not in LIVE_SETTINGS)
    return changed


def serve(config: Config, config_path: str | None, options: ServeOptions) -> None:
    from twisted.internet import reactor

    # The reactor thread answers; writer threads only batch. A short switch interval makes
    # a busy writer hand the interpreter back within 0.5 ms instead of the default 5 ms,
    # which otherwise shows up as latency on every reply sent while it runs.
    sys.setswitchinterval(0.0005)
    daemon = RadiusDaemon(config, config_path, reactor, options)
    daemon.start()
    reactor.run()  # type: ignore[misc]
