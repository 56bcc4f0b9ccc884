"""The open-session index: which sessions each service (and NAS) has open, in memory.

Fed by every acknowledged accounting event on the reactor thread; rebuilt from the
database at start. The simultaneous-use check and CoA targeting read it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

from aaa.accounting.events import NAS_EVENTS, STOP, AcctEvent

_RECENTLY_STOPPED = 100_000


class Changes(NamedTuple):
    """The difference between the index and the database's open sessions."""

    closed: frozenset[str]
    opened: dict[str, tuple[int | None, int | None]]


class OpenSessionIndex:
    def __init__(self) -> None:
        self._sessions: dict[str, tuple[int | None, int | None]] = {}
        self._by_service: dict[int, set[str]] = {}
        self._by_nas: dict[int, set[str]] = {}
        # An Interim arriving after its Stop must not reopen the session.
        self._stopped: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def count(self, service_id: int) -> int:
        return len(self._by_service.get(service_id, ()))

    def of_service(self, service_id: int) -> frozenset[str]:
        return frozenset(self._by_service.get(service_id, ()))

    def load(self, rows: Iterable[tuple[str, int | None, int | None]]) -> None:
        self._sessions.clear()
        self._by_service.clear()
        self._by_nas.clear()
        for unique_id, service_id, nas_id in rows:
            self._open(unique_id, service_id, nas_id)

    def changes(self, rows: Iterable[tuple[str, int | None, int | None]]) -> Changes:
        """How the index differs from the database's open sessions, computed without
        touching it: the committer's thread runs this over all of them (100,000 cost ~100
        ms of Python), the reactor then applies only the few changes.

        Safe beside the reactor: the only read of the index is one `set()` of its keys,
        a single C call under the interpreter lock."""
        open_now = {unique_id: (service_id, nas_id) for unique_id, service_id, nas_id in rows}
        known = set(self._sessions)
        closed = known - open_now.keys()
        opened = {unique_id: open_now[unique_id] for unique_id in open_now.keys() - known}
        return Changes(frozenset(closed), opened)

    def apply_changes(self, changes: Changes) -> None:
        """On the reactor thread: close what was closed elsewhere (stale sessions, another
        worker), open what another worker opened."""
        for unique_id in changes.closed:
            self._close(unique_id)
        for unique_id, (service_id, nas_id) in changes.opened.items():
            self._open(unique_id, service_id, nas_id)

    def _open(self, unique_id: str, service_id: int | None, nas_id: int | None) -> None:
        if unique_id in self._sessions or unique_id in self._stopped:
            return
        self._sessions[unique_id] = (service_id, nas_id)
        if service_id is not None:
            self._by_service.setdefault(service_id, set()).add(unique_id)
        if nas_id is not None:
            self._by_nas.setdefault(nas_id, set()).add(unique_id)

    def _close(self, unique_id: str) -> None:
        self._stopped[unique_id] = None
        if len(self._stopped) > _RECENTLY_STOPPED:
            self._stopped.popitem(last=False)
        owner = self._sessions.pop(unique_id, None)
        if owner is None:
            return
        service_id, nas_id = owner
        for table, key in ((self._by_service, service_id), (self._by_nas, nas_id)):
            if key is not None and key in table:
                table[key].discard(unique_id)
                if not table[key]:
                    del table[key]

    def apply(self, event: AcctEvent) -> None:
        if event.kind in NAS_EVENTS:
            for unique_id in list(self._by_nas.get(event.nas_id, ())):
                self._close(unique_id)
        elif event.kind == STOP:
            self._close(event.unique_id)
        else:
            self._open(event.unique_id, event.service_id, event.nas_id)
