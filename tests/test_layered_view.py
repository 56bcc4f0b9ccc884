"""The view's maps changed in place of copied (aaa.policy.layered, SubscriberView.with_changes).

Hypothesis drives random refresh sequences and compares with plain dicts / with the
full-copy `with_changes` this replaced (kept below as the reference).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aaa.policy import layered
from aaa.policy.layered import LayeredMap
from aaa.policy.view import ServiceFacts, SubscriberView, _reverse_associations

KEYS = st.integers(0, 40)


@pytest.fixture(autouse=True)
def small_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Layers from 8 entries on, merged past 12 on top: small examples cover both paths."""
    monkeypatch.setattr(layered, "MIN_TOP", 8)
    monkeypatch.setattr(layered, "MERGE_FRACTION", 3)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, st.integers()),
       st.lists(st.tuples(st.dictionaries(KEYS, st.integers(), max_size=5), st.sets(KEYS, max_size=5)),
                max_size=30))
def test_layered_map_behaves_as_the_dict_it_stands_for(start: dict[int, int],
                                                       steps: list[tuple[dict[int, int], set[int]]]) -> None:
    """After any sequence of (updates, removals) — an update winning over a removal of the
    same key — get, [], in, iteration and len agree with a dict changed the same way."""
    current: object = start
    model = dict(start)
    for updates, removals in steps:
        current = layered.with_changes(current, updates, removals)  # type: ignore[arg-type]
        for key in removals - updates.keys():
            model.pop(key, None)
        model.update(updates)
        assert dict(current.items()) == model  # type: ignore[attr-defined]
        assert len(current) == len(model)  # type: ignore[arg-type]
        for key in range(-1, 42):
            assert current.get(key) == model.get(key)  # type: ignore[attr-defined]
            assert (key in current) == (key in model)  # type: ignore[operator]
        assert sorted(current) == sorted(model)  # type: ignore[call-overload]
        missing = 99
        with pytest.raises(KeyError):
            current[missing]  # type: ignore[index]


def test_a_small_change_to_a_large_map_copies_only_the_change() -> None:
    """Past MIN_TOP entries a change is a new top over the same base (no copy of the base);
    when the top outgrows base/MERGE_FRACTION the result is a merged plain dict."""
    base = {n: n for n in range(30)}
    once = layered.with_changes(base, {1: -1}, {2})
    assert isinstance(once, LayeredMap) and once._base is base
    assert once.get(1) == -1 and 2 not in once and len(once) == 29
    twice = layered.with_changes(once, {3: -3}, ())
    assert isinstance(twice, LayeredMap) and twice._base is base and once.get(3) == 3
    merged = layered.with_changes(twice, {n: 0 for n in range(100, 120)}, ())
    assert type(merged) is dict and len(merged) == 49 and merged[1] == -1 and 2 not in merged


# --- SubscriberView.with_changes against the full-copy version it replaced ------------------------


def reference_with_changes(view: SubscriberView, services: Iterable[ServiceFacts],
                           removed: Iterable[int]) -> SubscriberView:
    """The previous implementation: copy both maps, change them, rebuild associations."""
    changed = list(services)
    gone = set(removed)
    by_id = dict(view.services_by_id)
    by_login = dict(view.services_by_login)
    for service_id in gone | {s.id for s in changed}:
        old = by_id.pop(service_id, None)
        if old is not None and by_login.get(old.login) is old:
            del by_login[old.login]
    for service in changed:
        by_id[service.id] = service
        if service.status != "cancelled" or service.login not in by_login:
            by_login[service.login] = service
    return replace(view, services_by_login=by_login, services_by_id=by_id,
                   associated_to=_reverse_associations(by_id.values()))


SERVICES = st.builds(
    ServiceFacts, id=st.integers(1, 25), login=st.sampled_from(["ana", "bia", "caio", "duda", "eva"]),
    password=st.just("x"), status=st.sampled_from(["enabled", "cancelled", "suspended_debt"]),
    plan_id=st.just(1), associated_service_id=st.none() | st.integers(1, 25))


@settings(max_examples=300, deadline=None)
@given(st.lists(SERVICES, max_size=20),
       st.lists(st.tuples(st.lists(SERVICES, max_size=4), st.sets(st.integers(1, 25), max_size=3)),
                max_size=12))
def test_view_changes_match_the_full_copy_version(start: list[ServiceFacts],
                                                  steps: list[tuple[list[ServiceFacts], set[int]]]) -> None:
    """Logins (live over cancelled, a cancelled login kept rather than unknown), ids and
    associations come out exactly as the copying implementation made them, step by step."""
    view = reference = SubscriberView.build(start, [], [], {}, 0)
    for seq, (services, removed) in enumerate(steps, 1):
        unique = list({s.id: s for s in services}.values())  # one row per id, as the feed reads them
        view = view.with_changes(services=unique, removed_services=removed, seq=seq)
        reference = reference_with_changes(reference, unique, removed)
        assert dict(view.services_by_id.items()) == reference.services_by_id
        assert dict(view.services_by_login.items()) == reference.services_by_login
        assert {k: sorted(v) for k, v in view.associated_to.items()} == \
            {k: sorted(v) for k, v in reference.associated_to.items()}
