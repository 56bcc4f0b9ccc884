"""The subscriber view on local disk, so the daemon can start while the database is down.

Without it a daemon restarted during a PostgreSQL outage (a deploy, a crash, a host
reboot) could not load its view: every PPPoE login refused and every accounting record
unanswered until the database came back. With it the daemon starts from the view it last
knew, answers from memory and journals accounting as in any outage, and catches up from
the change feed once the database answers.

One file: a header naming the database it was taken from (a snapshot of another database
is never used) and the key that seals it, then frames. A base (plans, NAS, variables and
the services in slices, each pickled separately so the interpreter lock is let go between
them) is written to a temporary file, fsync'd and renamed over the old one; each set of
changes the refresher applies afterwards is appended as one more frame. A torn last frame
(a crash mid-append) is detected by its CRC and ignored. When the appended changes
outgrow the base, the next append rewrites the base instead.

The view holds subscribers' clear passwords and the NAS secrets: the file is created
0600 and, when a `[secrets]` key is configured, every frame is sealed with AES-256-GCM
under it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import secrets
import struct
import zlib
from collections.abc import Iterator
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import IO, Any, NamedTuple

from Crypto.Cipher import AES

from aaa.policy.view import NasFacts, PlanFacts, ServiceFacts, SubscriberView, ViewChanges

MAGIC = b"AAAVIEW1"
_FRAME = struct.Struct(">II")  # payload length, CRC-32 of the payload as stored
_NONCE, _TAG = 12, 16
_SLICE = 1_000  # services per frame of a base: ~1 ms of pickling under the interpreter lock
_SERVICE_ROW = attrgetter(*(f.name for f in fields(ServiceFacts)))
_ASSOCIATED = b"aaa view snapshot"
# The layout of what the frames hold: a snapshot written by a version whose facts differ
# is refused up front (and the daemon starts as it would without one).
SCHEMA = hashlib.sha256(repr([(cls.__name__, [f.name for f in fields(cls)])
                              for cls in (ServiceFacts, PlanFacts, NasFacts)]).encode()).hexdigest()[:16]
MIN_REWRITE_BYTES = 4 * 1024 * 1024


class SnapshotError(Exception):
    """No usable snapshot: missing, from another database, sealed with another key, or damaged."""


class SealingKey(NamedTuple):
    key: bytes
    key_id: str


class _Codec:
    def __init__(self, key: SealingKey | None) -> None:
        self._key = key

    def header_fields(self, database: str) -> tuple[str, str, str]:
        return database, self._key.key_id if self._key is not None else "", SCHEMA

    def header(self, database: str) -> bytes:
        text = "\n".join(self.header_fields(database)).encode()
        return MAGIC + struct.pack(">I", len(text)) + text

    def seal(self, payload: bytes) -> bytes:
        if self._key is None:
            return payload
        nonce = secrets.token_bytes(_NONCE)
        cipher = AES.new(self._key.key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG)
        cipher.update(_ASSOCIATED)
        ciphertext, tag = cipher.encrypt_and_digest(payload)
        return nonce + ciphertext + tag

    def open(self, stored: bytes) -> bytes:
        if self._key is None:
            return stored
        cipher = AES.new(self._key.key, AES.MODE_GCM, nonce=stored[:_NONCE], mac_len=_TAG)
        cipher.update(_ASSOCIATED)
        try:
            return cipher.decrypt_and_verify(stored[_NONCE:-_TAG], stored[-_TAG:])
        except ValueError:
            raise SnapshotError("a frame does not verify under the configured key") from None

    def frame(self, record: tuple[Any, ...]) -> bytes:
        stored = self.seal(pickle.dumps(record, pickle.HIGHEST_PROTOCOL))
        return _FRAME.pack(len(stored), zlib.crc32(stored)) + stored


class ViewSnapshot:
    """The writer: `write_base` after a load from the database, `append` after each refresh.

    Used from one thread at a time (start-up, then the refresher's thread)."""

    def __init__(self, path: Path, database: str, key: SealingKey | None = None) -> None:
        self.path = path
        self._database = database
        self._codec = _Codec(key)
        self._file: IO[bytes] | None = None
        self._base_bytes = 0
        self._change_bytes = 0

    def write_base(self, view: SubscriberView) -> None:
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(self._codec.header(self._database))
            services = list(view.services_by_id.values())
            out.write(self._codec.frame(("base", list(view.plans.values()), list(view.nas_by_ip.values()),
                                         dict(view.variables), view.seq, len(services), view.feed_mark)))
            for start in range(0, len(services), _SLICE):
                # Plain tuples: pickling a slotted dataclass goes through a Python-level
                # __getstate__ (8 us a service); attrgetter makes the tuple in C.
                rows = list(map(_SERVICE_ROW, services[start:start + _SLICE]))
                out.write(self._codec.frame(("services", rows)))
            out.flush()
            os.fsync(out.fileno())
            self._base_bytes = out.tell()
        os.replace(temporary, self.path)
        _fsync_directory(self.path.parent)
        self._change_bytes = 0
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the appends

    def append(self, changes: ViewChanges, view: SubscriberView) -> None:
        """Record one refresh; `view` is the view after it (a new base when changes outgrew the old)."""
        if self._file is None or self._change_bytes > max(self._base_bytes, MIN_REWRITE_BYTES):
            self.write_base(view)
            return
        frame = self._codec.frame(("changes", changes))
        self._file.write(frame)
        self._file.flush()  # a cache, not a journal: no fsync per refresh
        self._change_bytes += len(frame)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def load_snapshot(path: Path, database: str, key: SealingKey | None = None) -> SubscriberView:
    """The view the snapshot at `path` holds (base plus every complete change frame)."""
    codec = _Codec(key)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"no view snapshot at {path}") from None
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror}") from None
    expected = codec.header(database)
    if not data.startswith(MAGIC):
        raise SnapshotError(f"{path} is not a view snapshot")
    if not data.startswith(expected):
        raise SnapshotError(f"{path} {_mismatch(data, codec.header_fields(database))}")
    try:
        return _assemble(path, _records(data, len(expected), codec))
    except SnapshotError:
        raise
    except Exception as exc:  # a frame this version cannot make sense of
        raise SnapshotError(f"{path} cannot be read ({type(exc).__name__}: {str(exc)[:100]})") from None


def _mismatch(data: bytes, wanted: tuple[str, str, str]) -> str:
    (length,) = struct.unpack_from(">I", data, len(MAGIC)) if len(data) >= len(MAGIC) + 4 else (0,)
    found = data[len(MAGIC) + 4:len(MAGIC) + 4 + length].decode("utf-8", "replace").split("\n")
    found += [""] * (3 - len(found))
    if found[0] != wanted[0]:
        return "was taken from another database"
    if found[1] != wanted[1]:
        return "is sealed with another key (or none)"
    return "was written by another version of the daemon"


def _assemble(path: Path, records: Iterator[tuple[Any, ...]]) -> SubscriberView:
    first = next(records, None)
    if first is None or first[0] != "base":
        raise SnapshotError(f"{path} has no complete base")
    _, plans, nas, variables, seq, count, mark = first
    services: dict[int, ServiceFacts] = {}
    base_complete = count == 0
    for record in records:
        if record[0] == "services" and not base_complete:
            services.update((row[0], ServiceFacts(*row)) for row in record[1])
            base_complete = len(services) >= count
        elif record[0] == "changes" and base_complete:
            changes: ViewChanges = record[1]
            for service_id in changes.removed_services:
                services.pop(service_id, None)
            services.update((s.id, s) for s in changes.services)
            plans = changes.plans if changes.plans is not None else plans
            nas = changes.nas if changes.nas is not None else nas
            variables = changes.variables if changes.variables is not None else variables
            seq, mark = changes.seq, changes.feed_mark
        else:
            raise SnapshotError(f"{path}: a {record[0]!r} frame out of place")
    if not base_complete:
        raise SnapshotError(f"{path}: base incomplete ({len(services)} of {count} services)")
    return SubscriberView.build(services.values(), plans, nas, variables, seq, mark)


def _records(data: bytes, offset: int, codec: _Codec) -> Iterator[tuple[Any, ...]]:
    """The complete frames from `offset`; stops at a torn or damaged one (a crash mid-append)."""
    end = len(data)
    while offset + _FRAME.size <= end:
        length, crc = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        stored = data[start:start + length]
        if len(stored) < length or zlib.crc32(stored) != crc:
            return
        yield pickle.loads(codec.open(stored))
        offset = start + length


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
