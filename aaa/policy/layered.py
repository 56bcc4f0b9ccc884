"""An immutable mapping made of a shared base dict and a small dict of changes on top.

A refresh that changes a few services must not copy the maps of all of them: `dict(d)` of
a million entries is one C call holding the interpreter lock for ~50 ms, during which the
reactor answers nobody (two maps: ~100 ms per refresh). Here a new version copies only
the top; when the top grows past a fraction of the base the two are merged in slices (the
lock is let go between them) and the result is a plain dict again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

_GONE: Any = object()  # in the top: the key was removed from the base
_MISS: Any = object()
MIN_TOP = 4096  # changes kept on top before merging, whatever the base's size
MERGE_FRACTION = 32  # ... or 1/32 of the base
_MERGE_SLICE = 50_000


class LayeredMap(Mapping[K, V]):
    __slots__ = ("_base", "_len", "_top")

    def __init__(self, base: Mapping[K, V], top: dict[K, Any], length: int) -> None:
        self._base = base
        self._top = top
        self._len = length

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, default: D, /) -> V | D: ...

    def get(self, key: K, default: Any = None) -> Any:
        value = self._top.get(key, _MISS)
        if value is _MISS:
            return self._base.get(key, default)
        return default if value is _GONE else value

    def __getitem__(self, key: K) -> V:
        value = self.get(key, _MISS)
        if value is _MISS:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key, _MISS) is not _MISS  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[K]:
        top = self._top
        for key, value in top.items():
            if value is not _GONE:
                yield key
        for key in self._base:
            if key not in top:
                yield key

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"LayeredMap({len(self)} entries, {len(self._top)} on top)"


def with_changes(current: Mapping[K, V], updates: Mapping[K, V],
                 removals: Iterable[K] = ()) -> Mapping[K, V]:
    """`current` with `updates` set and `removals` gone, without copying `current` (unless
    it is small, or the changes on top have grown enough to be merged)."""
    if isinstance(current, LayeredMap):
        base, top, length = current._base, dict(current._top), current._len
    else:
        base, top, length = current, {}, len(current)
    for key in removals:
        if key in updates:
            continue
        if _present(base, top, key):
            length -= 1
        if key in base:
            top[key] = _GONE
        else:
            top.pop(key, None)
    for key, value in updates.items():
        if not _present(base, top, key):
            length += 1
        top[key] = value
    if len(base) <= MIN_TOP or len(top) > max(MIN_TOP, len(base) // MERGE_FRACTION):
        return _merged(base, top)
    return LayeredMap(base, top, length)


def _present(base: Mapping[Any, Any], top: dict[Any, Any], key: Any) -> bool:
    value = top.get(key, _MISS)
    if value is _MISS:
        return key in base
    return value is not _GONE


def _merged(base: Mapping[K, V], top: dict[K, Any]) -> dict[K, V]:
    merged: dict[K, V] = {}
    items = iter(base.items())
    while chunk := list(islice(items, _MERGE_SLICE)):
        merged.update(chunk)
    for key, value in top.items():
        if value is _GONE:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
