"""The RFC 5080 duplicate-reply cache."""

from __future__ import annotations

import gc

import pytest

from aaa.radius import IN_PROGRESS, DuplicateCache, build_request, decode, load_dictionary
from aaa.radius.dedup import EXPIRED_PER_INSERT, cache_key, request_key

KEY = cache_key("10.0.0.1", 40000, 7, bytes(16))


def test_hit_within_window_miss_after() -> None:
    """A reply stored at t=0 is returned until the window ends, then forgotten."""
    cache = DuplicateCache(window=5.0, max_entries=10)
    assert cache.lookup(KEY, now=0.0) is None
    assert cache.lookup(KEY, now=0.1) is IN_PROGRESS
    cache.store(KEY, b"reply", now=0.2)
    assert cache.lookup(KEY, now=5.1) == b"reply"
    assert cache.get(KEY, now=5.1) == b"reply"
    assert cache.get(KEY, now=5.2) is None
    assert cache.lookup(KEY, now=5.3) is None  # a new request, not a retransmission


def test_key_includes_authenticator_port_and_identifier() -> None:
    """A new request reusing the Identifier (new authenticator) is not a duplicate."""
    cache = DuplicateCache()
    cache.lookup(KEY, 0.0)
    cache.store(KEY, b"r", 0.0)
    for other in (
        cache_key("10.0.0.1", 40000, 7, b"\x01" * 16),
        cache_key("10.0.0.1", 40001, 7, bytes(16)),
        cache_key("10.0.0.1", 40000, 8, bytes(16)),
        cache_key("10.0.0.2", 40000, 7, bytes(16)),
        cache_key("10.0.0.10", 40000, 7, bytes(16)),
    ):
        assert cache.get(other, 0.0) is None
    packet = decode(build_request(1, 7, b"", b"s", authenticator=bytes(16)), load_dictionary())
    assert request_key("10.0.0.1", 40000, packet) == KEY


def test_bounded_size_evicts_oldest() -> None:
    """At max_entries the oldest entry makes room, and expired ones go first."""
    cache = DuplicateCache(window=10.0, max_entries=3)
    keys = [cache_key("nas", 1, i, bytes(16)) for i in range(5)]
    for i, key in enumerate(keys):
        cache.lookup(key, now=float(i))
        cache.store(key, bytes((i,)), now=float(i))
        assert len(cache) <= 3
    assert cache.get(keys[0], 4.0) is None and cache.get(keys[1], 4.0) is None
    assert cache.get(keys[4], 4.0) == b"\x04"
    cache.lookup(cache_key("nas", 1, 99, bytes(16)), now=100.0)
    assert len(cache) == 1
    cache.forget(cache_key("nas", 1, 99, bytes(16)))
    assert len(cache) == 0
    with pytest.raises(ValueError):
        DuplicateCache(window=0)


def test_stale_order_items_stay_bounded_when_one_key_is_stored_over_and_over() -> None:
    """Re-storing the same key leaves stale expiry items behind; they are bounded by
    twice max_entries, and the live entry survives their cleanup."""
    cache = DuplicateCache(window=5.0, max_entries=10)
    for step in range(1000):
        cache.store(KEY, b"reply", now=step * 0.001)
    assert len(cache._order_times) == len(cache._order_keys) <= 20
    assert cache.get(KEY, now=1.0) == b"reply"
    assert len(cache) == 1


def test_expired_entries_go_a_few_per_insert_never_all_at_once() -> None:
    """After a burst and a quiet moment, one insert forgets at most EXPIRED_PER_INSERT
    expired entries (dropping tens of thousands at once held a request 30-50 ms); the rest
    are already invisible and go with the following inserts."""
    cache = DuplicateCache(window=5.0, max_entries=20_000)
    burst = [cache_key("nas", 1000 + i, i & 255, bytes(16)) for i in range(10_000)]
    for i, key in enumerate(burst):
        cache.store(key, b"old", now=i * 0.0001)
    later = 100.0
    cache.store(KEY, b"new", now=later)
    assert len(cache) == 10_000 - EXPIRED_PER_INSERT + 1
    assert all(cache.get(key, later) is None for key in burst)
    assert cache.get(KEY, later) == b"new"
    for n in range(10_000 // EXPIRED_PER_INSERT):
        cache.store(cache_key("nas", 9, n & 255, n.to_bytes(16, "big")), b"r", now=later)
    assert len(cache) == 1 + 10_000 // EXPIRED_PER_INSERT


def test_the_cache_stays_out_of_the_cyclic_collectors_sight() -> None:
    """Keys and stored values are bytes and floats: however many are stored, the cache's
    dicts are never tracked (a dict of tuples was tracked again at every insert after a
    full collection, and the young collection that walked its 65,536 entries held the
    daemon's reader 30-47 ms)."""
    cache = DuplicateCache(window=5.0, max_entries=1000)
    for n in range(3000):
        key = cache_key("10.0.0.1", 1024 + n, n & 255, n.to_bytes(16, "big"))
        if cache.lookup(key, now=n * 0.01) is None:
            cache.store(key, b"reply %d" % n, now=n * 0.01)
        if n % 500 == 0:
            gc.collect()
    assert not gc.is_tracked(cache._replies) and not gc.is_tracked(cache._expires)
    assert cache.get(key, now=29.99) == b"reply 2999"


def test_storing_makes_nothing_for_the_collector_to_count() -> None:
    """An insert allocates no tracked object (no tuple per entry): such objects lived the
    window out as young ones, and with the expired ones freed beside them keeping the
    collector's count level, young collections came seldom and found ~20,000 of them."""
    cache = DuplicateCache(window=5.0, max_entries=100_000)
    keys = [cache_key("10.0.0.1", 1024 + n, n & 255, n.to_bytes(16, "big")) for n in range(20_000)]
    gc.collect()
    young_before = len(gc.get_objects(0))
    for n, key in enumerate(keys):
        cache.store(key, b"reply", now=n * 0.0001)
    assert len(gc.get_objects(0)) - young_before < 100
