"""The CoA/Disconnect dispatcher: sends the queued jobs to the NAS and records every try.

One process owns it (`aaa serve` worker 0); several daemons on one PostgreSQL share the
queue safely, since a claim skips the rows another daemon holds. Twisted style: a
LoopingCall every `poll_interval` seconds and `wake()` (called when the view changed or a
NOTIFY came) start a run; database work runs in the thread pool, the socket and the
timers on the reactor thread, which never waits on the database.

A run claims the due jobs and, in the same transaction, reads each job's open sessions
(the accounting index) and a view refreshed from the change feed, so the change that
queued the job is in it. Each open session gets its request:

- kind "disconnect": a Disconnect-Request;
- kind "coa": the very decision an Access-Request would get now. Accepted and enabled
  or partially suspended: a CoA-Request with the vendor's speed attributes. Anything
  else (blocked pool, rejected): a Disconnect-Request, since only a new session changes
  the pool. A NAK'd CoA falls back to a Disconnect when the job and the configuration
  allow it.

Each request is re-sent unchanged after each of `timeouts` (backoff). Every
transmission is one coa_attempts row (the PoD/CoD history): one "timeout" row per
unanswered try, "ack"/"nak" (with Error-Cause) for the answered one, "error" when the
request could not be sent (no NAS known for the session). A job is done when every
session got an ACK or a NAK 503 (Session Context Not Found: already gone), failed
otherwise, its result saying why. Jobs do not wait for each other: a silent NAS delays
only its own jobs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall

from aaa.coa.client import CoaClient, Scheduler
from aaa.coa.errors import describe
from aaa.coa.requests import (
    COA,
    DISCONNECT,
    Answer,
    BadAnswer,
    SessionRef,
    build,
    read_answer,
    speed_attributes,
)
from aaa.config import CoaConfig
from aaa.daemon.metrics import CoaMetrics
from aaa.db import coa as jobs_db
from aaa.db.models import AcctSession, CoaJob
from aaa.db.views import refresh_view
from aaa.log import Repeating, log_event
from aaa.policy.rules import PolicySettings, RequestFacts, decide
from aaa.policy.view import NasFacts, SubscriberView
from aaa.radius.dictionary import Dictionary

DeferToThread = Callable[..., "Deferred[Any]"]

SESSION_GONE = 503  # Session Context Not Found: the subscriber is not there any more
SPEED_STATUSES = frozenset({"enabled", "suspended_partial"})
MAX_IN_FLIGHT = 2000  # jobs being sent at once; more wait in the queue


@dataclass(frozen=True, slots=True)
class Target:
    """One open session of a job and what to send it."""

    ref: SessionRef
    nas: NasFacts | None
    request: str  # coa | disconnect
    extra: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class Work:
    """A claimed job, read out of the database: plain values for the reactor thread."""

    job_id: int
    service_id: int
    login: str
    kind: str
    reason: str
    operator: str
    fallback_disconnect: bool
    targets: tuple[Target, ...]


def plan_targets(kind: str, service_id: int, sessions: Sequence[AcctSession], view: SubscriberView,
                 now: datetime, settings: PolicySettings) -> list[Target]:
    """What each open session gets (pure: the sessions, the view and `now`)."""
    nas_by_id = {nas.id: nas for nas in view.nas_by_ip.values()}
    service = view.services_by_id.get(service_id)
    targets = []
    for row in sessions:
        nas = (nas_by_id.get(row.nas_id) if row.nas_id is not None else None) \
            or view.nas_by_ip.get(row.nas_ip)
        ref = SessionRef(row.login, row.acct_session_id, row.framed_ip, row.nas_ip)
        if kind == COA and nas is not None and service is not None:
            # MAC and interface are left out: the session passed those checks at login, and
            # a CoA only changes what the service is entitled to.
            decision = decide(RequestFacts(service.login, nas), view, now, settings)
            speeds = speed_attributes(decision.reply)
            if decision.accepted and decision.effective_status in SPEED_STATUSES and speeds:
                targets.append(Target(ref, nas, COA, tuple(speeds)))
                continue
        targets.append(Target(ref, nas, DISCONNECT))
    return targets


class CoaDispatcher:
    def __init__(self, sessions: sessionmaker[Session], clock: Scheduler,
                 defer_to_thread: DeferToThread, view: Callable[[], SubscriberView],
                 settings: Callable[[], PolicySettings], dictionary: Callable[[], Dictionary],
                 config: CoaConfig, metrics: CoaMetrics, claimer: str) -> None:
        self._sessions = sessions
        self._clock = clock
        self._defer = defer_to_thread  # (f, *args) -> Deferred of f's result, run in a thread
        self._view = view
        self._settings = settings
        self._dictionary = dictionary
        self.config = config
        self.metrics = metrics
        self.claimer = claimer
        self.client = CoaClient(clock, on_rejected=metrics.rejected.inc)
        self._port: Any = None
        self._loop: LoopingCall | None = None
        self._run_failures = Repeating("coa_run_failed")
        self._running = False
        self._again = False
        self._stopped = False
        self._in_flight: dict[int, Deferred[None]] = {}  # job id -> its completion
        self._waiters: dict[tuple[str, int], deque[Deferred[None]]] = {}
        self._nas_names: dict[str, str] = {}

    # --- life cycle ---------------------------------------------------------------------

    def start(self, listen: Callable[[DatagramProtocol], Any]) -> None:
        """Open the client's UDP port with `listen(protocol)` and start polling."""
        self._port = listen(self.client)
        self._loop = LoopingCall(self.wake)
        self._loop.clock = self._clock  # type: ignore[assignment]
        self._loop.start(self.config.poll_interval, now=True)

    def reconfigure(self, config: CoaConfig) -> None:
        """SIGHUP: new timeouts apply to the next jobs; a new poll interval restarts the poll."""
        interval_changed = config.poll_interval != self.config.poll_interval
        self.config = config
        if interval_changed and self._loop is not None and self._loop.running:
            self._loop.stop()
            self._loop.start(config.poll_interval, now=False)

    def release_dead_claims(self, alive: Callable[[int], bool]) -> None:
        """At start, before the first claim: jobs that a dead daemon of this host was
        sending (it was killed between claim and record) go back to the queue at once.
        A job whose answer was recorded is done and stays so; one answered but not yet
        recorded when the process died is sent again (CoA and Disconnect are idempotent)."""
        host = self.claimer.rpartition(":")[0]
        try:
            with self._sessions() as session, session.begin():
                released = jobs_db.release_dead_claims(session, host, alive)
        except Exception as exc:  # the claims then expire by themselves
            log_event("coa_release_failed", error=type(exc).__name__)
            return
        if released:
            log_event("coa_released", jobs=len(released), reason="claimer process gone")

    def stop(self) -> None:
        """Stop polling and close the port; jobs still in flight go back to the queue."""
        self._stopped = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._port is not None and hasattr(self._port, "stopListening"):
            self._port.stopListening()
        if self._in_flight:
            try:
                with self._sessions() as session, session.begin():
                    session.execute(update(CoaJob).where(
                        CoaJob.id.in_(list(self._in_flight)), CoaJob.status == jobs_db.SENDING,
                        CoaJob.claimed_by == self.claimer,
                    ).values(status=jobs_db.PENDING, claimed_by=None, claimed_at=None))
            except Exception as exc:  # the database is away: the claims expire by themselves
                log_event("coa_release_failed", error=type(exc).__name__)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), UTC)

    @property
    def busy(self) -> bool:
        """A run or a job is under way (tests wait for this to clear)."""
        return self._running or bool(self._in_flight)

    def idle(self) -> Deferred[None]:
        """Fires when every job in flight right now has been recorded."""
        done: Deferred[list[None]] = gatherResults(list(self._in_flight.values()))
        return done.addCallback(lambda _: None)

    # --- a run: claim, then send each job -----------------------------------------------

    def wake(self) -> None:
        """Look at the queue now (again right after the current run, if one is under way)."""
        if self._stopped:
            return
        if self._running:
            self._again = True
            return
        limit = MAX_IN_FLIGHT - len(self._in_flight)
        if limit <= 0:
            return
        self._running = True
        claimed = self._defer(self._claim, self.now(), self._view(), self._settings(), limit)
        claimed.addCallback(self._start_jobs)
        claimed.addErrback(self._run_failed)
        claimed.addBoth(self._run_over)

    def _claim(self, now: datetime, view: SubscriberView, settings: PolicySettings,
               limit: int) -> tuple[list[Work], int]:
        """(In a thread.) Claim due jobs, plan their requests, settle those with no session."""
        work = []
        with self._sessions() as session, session.begin():
            claimed = jobs_db.claim(session, self.claimer, now, limit)
            if claimed:
                fresh = refresh_view(session, view)
                for job in claimed:
                    rows = jobs_db.open_sessions_of(session, job.service_id)
                    if not rows:
                        jobs_db.finish(session, job.id, jobs_db.DONE, "no open session", now, [])
                        continue
                    targets = plan_targets(job.kind, job.service_id, rows, fresh, now, settings)
                    work.append(Work(job.id, job.service_id, job.login, job.kind, job.reason,
                                     job.operator_login, job.fallback_disconnect, tuple(targets)))
            depth = jobs_db.pending_count(session)
        return work, depth

    def _start_jobs(self, result: tuple[list[Work], int]) -> None:
        self._run_failures.succeeded()
        work, depth = result
        self.metrics.queue.set(depth)
        for item in work:
            running = Deferred.fromCoroutine(self._job(item))
            if not running.called:  # (a job can finish at once when nothing waits)
                self._in_flight[item.job_id] = running

    def _run_failed(self, failure: Any) -> None:
        self._run_failures.failed(error=failure.type.__name__ if failure.type else "?")

    def _run_over(self, _: object) -> None:
        self._running = False
        if self._again:
            self._again = False
            self.wake()

    # --- one job ------------------------------------------------------------------------

    async def _job(self, work: Work) -> None:
        attempts: list[dict[str, Any]] = []
        try:
            outcomes = await gatherResults([Deferred.fromCoroutine(self._target(work, t, attempts))
                                            for t in work.targets], consumeErrors=True)
        except Exception as exc:
            outcomes = [(False, f"internal error: {type(exc).__name__}")]
        failures = [text for ok, text in outcomes if not ok]
        status = jobs_db.FAILED if failures else jobs_db.DONE
        result = "; ".join(failures or [text for _, text in outcomes])
        try:
            await self._defer(self._store, work.job_id, status, result, self.now(), attempts)
        except Exception as exc:  # the claim expires and the job is sent again
            log_event("coa_store_failed", job=work.job_id, error=type(exc).__name__)
        else:
            log_event("coa_job", job=work.job_id, login=work.login, kind=work.kind, status=status,
                      result=result[:300])
        finally:
            self._in_flight.pop(work.job_id, None)

    def _store(self, job_id: int, status: str, result: str, now: datetime,
               attempts: list[dict[str, Any]]) -> None:
        with self._sessions() as session, session.begin():
            jobs_db.finish(session, job_id, status, result, now, attempts)

    async def _target(self, work: Work, target: Target,
                      attempts: list[dict[str, Any]]) -> tuple[bool, str]:
        """(ok, what happened) for one session of the job."""
        who = f"{target.ref.login} session {target.ref.acct_session_id or '?'} at {target.ref.nas_ip}"
        nas = target.nas
        if nas is None or not nas.secret:
            attempts.append(self._row(work, target, target.request, 1, "error", self.now()))
            self.metrics.requests.labels("unknown", target.request, "error").inc()
            return False, f"{who}: no NAS with a secret known for {target.ref.nas_ip}"
        try:
            answer = await self._send(work, target, target.request, target.extra, attempts)
            if target.request == COA and answer is not None and answer.result == "nak" \
                    and answer.error_cause != SESSION_GONE \
                    and work.fallback_disconnect and self.config.fallback_disconnect:
                first = _outcome(COA, answer, len(self.config.timeouts))
                answer = await self._send(work, target, DISCONNECT, (), attempts)
                ok, text = _outcome(DISCONNECT, answer, len(self.config.timeouts))
                return ok, f"{who}: {first[1]}, fallback {text}"
        except Exception as exc:  # e.g. an attribute the dictionary cannot encode
            attempts.append(self._row(work, target, target.request, 1, "error", self.now()))
            self.metrics.requests.labels(nas.name, target.request, "error").inc()
            return False, f"{who}: {target.request} not sent: {type(exc).__name__}: {exc}"
        ok, text = _outcome(target.request, answer, len(self.config.timeouts))
        return ok, f"{who}: {text}"

    async def _send(self, work: Work, target: Target, request: str,
                    extra: Sequence[tuple[str, object]], attempts: list[dict[str, Any]]) -> Answer | None:
        """Send one request (with its retransmissions); one history row per transmission."""
        nas = target.nas
        assert nas is not None
        dictionary = self._dictionary()
        host, port = nas.ip, nas.coa_port
        identifier = await self._identifier(host, port)
        try:
            packet = build(request, target.ref, identifier, nas.secret, dictionary, extra)
        except Exception:
            self._release(host, port)
            raise

        def accept(data: bytes) -> bool:
            try:
                read_answer(data, packet, nas.secret, dictionary)
            except BadAnswer:
                return False
            return True

        try:
            exchange = await self.client.exchange(packet, host, port, self.config.timeouts, accept)
        finally:
            self._release(host, port)
        answer = read_answer(exchange.answer, packet, nas.secret, dictionary) \
            if exchange.answer is not None else None
        for number, sent in enumerate(exchange.sent_at, start=1):
            at = datetime.fromtimestamp(sent, UTC)
            if answer is not None and number == len(exchange.sent_at):
                latency = max(0.0, (exchange.answered_at or sent) - sent)
                attempts.append(self._row(work, target, request, number, answer.result, at,
                                          answer.error_cause, latency * 1000.0))
                self.metrics.requests.labels(nas.name, request, answer.result).inc()
                self.metrics.latency.labels(request).observe(latency)
                if answer.error_cause is not None:
                    self.metrics.error_causes.labels(nas.name, str(answer.error_cause)).inc()
            else:
                attempts.append(self._row(work, target, request, number, "timeout", at))
                self.metrics.requests.labels(nas.name, request, "timeout").inc()
        return answer

    def _row(self, work: Work, target: Target, request: str, attempt: int, result: str,
             at: datetime, error_cause: int | None = None,
             latency_ms: float | None = None) -> dict[str, Any]:
        return {
            "job_id": work.job_id, "at": at, "service_id": work.service_id,
            "login": target.ref.login, "nas_id": target.nas.id if target.nas else None,
            "nas_ip": target.nas.ip if target.nas else target.ref.nas_ip,
            "acct_session_id": target.ref.acct_session_id, "request_type": request,
            "attempt": attempt, "result": result, "error_cause": error_cause,
            "latency_ms": round(latency_ms, 3) if latency_ms is not None else None,
            "operator_login": work.operator, "reason": work.reason,
        }

    # --- identifiers: at most 256 requests in flight per NAS ------------------------------

    async def _identifier(self, host: str, port: int) -> int:
        while (identifier := self.client.identifier(host, port)) is None:
            waiter: Deferred[None] = Deferred()
            self._waiters.setdefault((host, port), deque()).append(waiter)
            await waiter
        return identifier

    def _release(self, host: str, port: int) -> None:
        waiting = self._waiters.get((host, port))
        if waiting:
            waiting.popleft().callback(None)
            if not waiting:
                del self._waiters[(host, port)]


def _outcome(request: str, answer: Answer | None, tries: int) -> tuple[bool, str]:
    if answer is None:
        return False, f"{request} unanswered after {tries} tries"
    if answer.result == "ack":
        return True, f"{request} ack"
    cause = describe(answer.error_cause)
    named = f"{cause.code} {cause.name}" if cause else "no Error-Cause"
    if answer.error_cause == SESSION_GONE:
        return True, f"{request} nak {named} (already gone)"
    return False, f"{request} nak {named}"

