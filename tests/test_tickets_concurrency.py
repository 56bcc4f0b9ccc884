"""Protocol numbers under concurrent openings, on committed databases: threads and
processes opening at once get distinct, gap-free numbers; a second opening waits for the
first's transaction instead of reading the same counter."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from aaa.db.engine import make_engine
from aaa.db.models_tickets import Ticket
from management import tickets
from management.context import Context, load_actor
from tests import factories
from tests.conftest import NOW, ZONE

THREADS = 6
PER_WORKER = 8


def _ctx(session: Session, now: datetime = NOW) -> Context:
    return Context(session=session, actor=load_actor(session, "admin"), now=now, zone=ZONE)


def _prepare(url: str) -> Engine:
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        ctx = _ctx(session)
        factories.plan(ctx)
        factories.service(ctx, "ana")
        tickets.create_type(ctx, "Técnico")
    return engine


def _open_many(engine: Engine, count: int, start: threading.Barrier | None = None) -> list[str]:
    if start is not None:
        start.wait(30)
    opened = []
    for _ in range(count):
        with Session(engine) as session, session.begin():
            opened.append(tickets.open_ticket(_ctx(session), "ana", "Técnico", "concorrente").protocol)
    return opened


def _process_worker(url: str, count: int, start: multiprocessing.synchronize.Event,  # type: ignore[name-defined]
                    results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    engine = make_engine(url)
    start.wait(30)
    try:
        results.put(_open_many(engine, count))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(repr(exc))
    finally:
        engine.dispose()


def _check(engine: Engine, protocols: list[str], expected: int) -> None:
    assert len(protocols) == expected
    assert len(set(protocols)) == expected, "a protocol was handed out twice"
    assert sorted(int(p[8:]) for p in protocols) == list(range(1, expected + 1))  # no gaps, no repeats
    with Session(engine) as session:
        assert session.scalar(select(func.count(func.distinct(Ticket.protocol)))) == expected


def test_concurrent_openings_from_threads(fresh_db_url: str) -> None:
    engine = _prepare(fresh_db_url)
    try:
        start = threading.Barrier(THREADS)
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(_open_many, engine, PER_WORKER, start) for _ in range(THREADS)]
            protocols = [p for f in futures for p in f.result(timeout=120)]
        _check(engine, protocols, THREADS * PER_WORKER)
    finally:
        engine.dispose()


def test_concurrent_openings_from_processes(fresh_db_url: str) -> None:
    engine = _prepare(fresh_db_url)
    engine.dispose()
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Event(), spawn.Queue()
    workers = [spawn.Process(target=_process_worker, args=(fresh_db_url, PER_WORKER, start, results))
               for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        start.set()
        collected: list[str] = []
        for _ in workers:
            got = results.get(timeout=120)
            assert isinstance(got, list), got
            collected.extend(got)
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
    _check(engine, collected, 3 * PER_WORKER)
    engine.dispose()


def test_second_opening_waits_for_the_first_transaction(fresh_db_url: str) -> None:
    """While one opening's transaction is uncommitted, another blocks on the counter row
    and then takes the following number (it never reads the same value)."""
    engine = _prepare(fresh_db_url)
    try:
        first_session = Session(engine)
        first_session.begin()
        first = tickets.open_ticket(_ctx(first_session), "ana", "Técnico", "primeiro").protocol
        got: list[str] = []
        second = threading.Thread(target=lambda: got.extend(_open_many(engine, 1)))
        second.start()
        second.join(1.0)
        assert second.is_alive(), "the second opening did not wait for the first transaction"
        first_session.commit()
        first_session.close()
        second.join(60)
        assert got == [first[:8] + "000002"] and first.endswith("000001")
    finally:
        engine.dispose()


def test_rolled_back_opening_does_not_burn_or_duplicate(fresh_db_url: str) -> None:
    engine = _prepare(fresh_db_url)
    try:
        with Session(engine) as session:
            session.begin()
            tickets.open_ticket(_ctx(session), "ana", "Técnico", "desistiu")
            session.rollback()
        assert _open_many(engine, 1) == ["20261123000001"]
        assert _open_many(engine, 1) == ["20261123000002"]
    finally:
        engine.dispose()
