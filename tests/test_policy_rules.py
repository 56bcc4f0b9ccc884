"""The pure decision function: every status, speeds per vendor, MAC/interface, association."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aaa.policy.rules import Decision, PolicySettings, RequestFacts, decide, decision_expires
from aaa.policy.vendors import OtherVendorRates, mikrotik_rate_limit
from aaa.policy.view import NasFacts, PlanFacts, ServiceFacts, SubscriberView

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
MK = NasFacts(1, "mk1", "10.0.0.1", "mikrotik", b"s")
HW = NasFacts(2, "hw1", "10.0.0.2", "huawei", b"s")
OTHER = NasFacts(3, "cisco", "10.0.0.3", "other", b"s")
PLAN = PlanFacts(1, "FIBRA-100", 100_000, 50_000, "pool-fibra")
IPPLAN = PlanFacts(2, "IP-FIXO", 1_000, 1_000, None)
SETTINGS = PolicySettings(acct_interim_interval=300, session_timeout=0)


def view(*services: ServiceFacts, variables: dict[str, str] | None = None) -> SubscriberView:
    return SubscriberView.build(services, [PLAN, IPPLAN], [MK, HW, OTHER], variables or {}, 1)


def svc(login: str = "ana", status: str = "enabled", id: int = 1, **kw: object) -> ServiceFacts:
    return ServiceFacts(id=id, login=login, password="pw", status=status, plan_id=1, **kw)  # type: ignore[arg-type]


def run(v: SubscriberView, login: str = "ana", nas: NasFacts = MK, **kw: object) -> Decision:
    return decide(RequestFacts(login=login, nas=nas, **kw), v, NOW, SETTINGS)  # type: ignore[arg-type]


def test_mikrotik_rate_limit_is_upload_then_download() -> None:
    """RouterOS reads rx/tx from the router's side: rx (first) is the subscriber's upload."""
    assert mikrotik_rate_limit(download_kbps=100_000, upload_kbps=50_000) == "50000k/100000k"


def test_enabled_mikrotik_gets_plan_speed_and_pool() -> None:
    """An enabled service gets its plan's pool and speed, and the interim interval."""
    d = run(view(svc()))
    assert d.accepted and d.reply == (
        ("Framed-Pool", "pool-fibra"), ("Mikrotik-Rate-Limit", "50000k/100000k"),
        ("Acct-Interim-Interval", 300))


def test_enabled_huawei_gets_rates_in_bits() -> None:
    """Huawei gets input (upload) and output (download) average and peak rates in bit/s."""
    d = run(view(svc()), nas=HW)
    assert dict(d.reply) == {
        "Framed-Pool": "pool-fibra", "Huawei-Input-Average-Rate": 50_000_000,
        "Huawei-Input-Peak-Rate": 50_000_000, "Huawei-Output-Average-Rate": 100_000_000,
        "Huawei-Output-Peak-Rate": 100_000_000, "Acct-Interim-Interval": 300}


def test_other_vendor_uses_configured_attributes() -> None:
    """Vendor `other` renders speeds only into the configured attribute names."""
    settings = replace(SETTINGS, other_rates=OtherVendorRates("WISPr-Bandwidth-Max-Down",
                                                              "WISPr-Bandwidth-Max-Up"))
    d = decide(RequestFacts("ana", OTHER), view(svc()), NOW, settings)
    assert ("WISPr-Bandwidth-Max-Down", 100_000_000) in d.reply
    assert not any(name.startswith("Mikrotik") for name, _ in d.reply)


def test_fixed_ip_and_ipv6_prefix() -> None:
    """A fixed IPv4 replaces the pool; a delegated IPv6 prefix is sent."""
    d = run(view(svc(ipv4="200.200.0.2", ipv6_prefix="2001:db8:1::/56")))
    names = dict(d.reply)
    assert names["Framed-IP-Address"] == "200.200.0.2" and "Framed-Pool" not in names
    assert names["Delegated-IPv6-Prefix"] == "2001:db8:1::/56"


def test_custom_navigation_until_end_date() -> None:
    """Custom navigation speed applies before its end, the plan's after it."""
    s = svc(nav_download_kbps=300_000, nav_upload_kbps=150_000, nav_until=NOW + timedelta(hours=1))
    assert ("Mikrotik-Rate-Limit", "150000k/300000k") in run(view(s)).reply
    expired = replace(s, nav_until=NOW - timedelta(seconds=1))
    assert ("Mikrotik-Rate-Limit", "50000k/100000k") in run(view(expired)).reply


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("relative", 70, "15000k/30000k"),
    ("absolute", 2_000, "2000k/2000k"),
])
def test_partial_suspension_reduces_speed(kind: str, value: int, expected: str) -> None:
    """Partial suspension: relative (percent off the plan) or absolute kbit/s; partial pool when set."""
    settings = replace(SETTINGS, partial_reduction_type=kind, partial_reduction_value=value)
    v = view(svc(status="suspended_partial"), variables={"POOL_SUSPENSAO_PARCIALMENTE": "reduzidos"})
    d = decide(RequestFacts("ana", MK), v, NOW, settings)
    assert d.accepted and ("Mikrotik-Rate-Limit", expected) in d.reply
    assert ("Framed-Pool", "reduzidos") in d.reply


def test_debt_suspension_goes_to_blocked_pool_or_is_rejected() -> None:
    """Total suspension: Accept into POOL_SUSPENSAO_TOTAL at minimal speed; Reject when unset."""
    s = svc(status="suspended_debt", ipv4="200.200.0.2")
    d = run(view(s, variables={"POOL_SUSPENSAO_TOTAL": "bloqueados"}))
    assert d.accepted and ("Framed-Pool", "bloqueados") in d.reply
    assert "Framed-IP-Address" not in dict(d.reply)
    assert ("Mikrotik-Rate-Limit", "256k/256k") in d.reply
    rejected = run(view(s))
    assert not rejected.accepted and rejected.reasons == ("service suspended for debt",)


@pytest.mark.parametrize("status", ["suspended_request", "cancelled", "awaiting_install",
                                    "awaiting_migration"])
def test_rejecting_statuses(status: str) -> None:
    """These statuses reject with a Reply-Message giving the reason."""
    d = run(view(svc(status=status)))
    assert not d.accepted and d.reply[0][0] == "Reply-Message" and d.effective_status == status


def test_unknown_login_and_wrong_password() -> None:
    """Unknown logins and wrong passwords are rejected with their reason."""
    assert run(view(svc()), login="nobody").reasons == ("unknown login",)
    assert run(view(svc()), authenticated=False).reasons == ("wrong password",)


def test_trust_unlock_treated_as_enabled_until_it_ends() -> None:
    """A trust unlock in force makes a debt suspension act as enabled; after it, the pool again."""
    s = svc(status="suspended_debt", trust_unlock_until=NOW + timedelta(days=1))
    v = {"POOL_SUSPENSAO_TOTAL": "bloqueados"}
    assert ("Framed-Pool", "pool-fibra") in run(view(s, variables=v)).reply
    ended = replace(s, trust_unlock_until=NOW)
    assert ("Framed-Pool", "bloqueados") in run(view(ended, variables=v)).reply


def test_associated_service_passes_on_debt_suspension_and_fixed_ip() -> None:
    """The browsing service takes the stricter status of its fixed-IP partner, and its IP."""
    browsing = svc("ana", id=1)
    fixed = ServiceFacts(2, "ana-ip", "pw", "suspended_debt", 2, ipv4="200.200.0.9",
                         associated_service_id=1)
    d = run(view(browsing, fixed, variables={"POOL_SUSPENSAO_TOTAL": "bloqueados"}))
    assert d.effective_status == "suspended_debt" and ("Framed-Pool", "bloqueados") in d.reply
    paid = replace(fixed, status="enabled")
    d2 = run(view(browsing, paid))
    assert d2.effective_status == "enabled" and ("Framed-IP-Address", "200.200.0.9") in d2.reply
    cancelled = replace(fixed, status="cancelled")
    d3 = run(view(browsing, cancelled))
    assert d3.accepted and ("Framed-Pool", "pool-fibra") in d3.reply


def test_mac_checks() -> None:
    """A different MAC is flagged; enforce rejects it; learn asks to store the first MAC seen."""
    registered = svc(mac="AA:BB:CC:DD:EE:FF")
    flagged = run(view(registered), mac="11:22:33:44:55:66")
    assert flagged.accepted and flagged.mac_differs and "mac_differs" in flagged.flags
    enforced = run(view(replace(registered, mac_binding="enforce")), mac="11:22:33:44:55:66")
    assert not enforced.accepted and enforced.mac_differs
    learning = run(view(svc(mac_binding="learn")), mac="11:22:33:44:55:66")
    assert learning.accepted and learning.learn_mac == "11:22:33:44:55:66"
    same = run(view(registered), mac="AA:BB:CC:DD:EE:FF")
    assert not same.mac_differs and same.learn_mac is None


def test_learn_stores_only_a_mac() -> None:
    """In learn mode a Calling-Station-Id that is no MAC (some NAS send a port or circuit
    text there) is not learned, and the reasons say so; one in another spelling is learned
    in the canonical one. (Learning the text used to fail the writer's batch over and over.)"""
    learner = view(svc(mac_binding="learn"))
    odd = run(learner, mac="pppoe-vlan100-port3")
    assert odd.accepted and odd.learn_mac is None
    assert "Calling-Station-Id 'pppoe-vlan100-port3' is not a MAC: nothing learned" in odd.reasons
    assert run(learner, mac="aabb.ccdd.eeff").learn_mac == "AA:BB:CC:DD:EE:FF"


def test_interface_checks() -> None:
    """NAS-Port-Id and NAS against the registered interface: differences are flagged, not refused."""
    s = svc(interface="vlan100", nas_id=1)
    assert not run(view(s), port_id="vlan100").interface_differs
    assert run(view(s), port_id="vlan200").interface_differs
    assert run(view(s), nas=HW, port_id="vlan100").interface_differs
    huawei = svc(interface="slot=2;subslot=0;port=1;vlanid=100")
    assert not run(view(huawei), nas=HW, port_id="slot=2;subslot=0;port=1;vlanid=100").interface_differs


def test_simultaneous_use() -> None:
    """With the open-session count known, the limit is enforced; unknown means not enforced."""
    s = svc(simultaneous_use=1)
    assert not run(view(s), open_sessions=1).accepted
    assert run(view(s), open_sessions=0).accepted
    assert run(view(s), open_sessions=None).accepted


def test_view_with_changes_swaps_services() -> None:
    """Applying changes replaces a service by id, moves logins, keeps the old view intact."""
    old = view(svc("ana", id=1), svc("bia", id=2))
    new = old.with_changes(services=[svc("ana2", id=1, status="suspended_debt")],
                           removed_services=[2], seq=5)
    assert set(new.services_by_login) == {"ana2"} and new.seq == 5
    assert set(old.services_by_login) == {"ana", "bia"}


# --- how long a decision holds ----------------------------------------------------------------

_limit = st.one_of(st.none(), st.integers(-3, 3).map(lambda hours: NOW + timedelta(hours=hours, minutes=7)))
_status = st.sampled_from(["enabled", "suspended_partial", "suspended_debt", "cancelled"])


@settings(max_examples=300, deadline=None)
@given(_status, _limit, _limit, st.booleans(), _status, _limit, st.booleans(),
       st.integers(0, 5 * 3600))
def test_a_decision_holds_until_it_expires(status: str, unlock: datetime | None, nav_until: datetime | None,
                                           partner_tied: bool, partner_status: str,
                                           partner_unlock: datetime | None, partner_is_parent: bool,
                                           seconds: int) -> None:
    """decide gives the same Decision at every moment from `now` up to decision_expires (the
    daemon keeps it that long), for a service with trust unlock, custom speed and an
    associated service (either way round) whose own trust unlock ends; at the expiry moment
    itself something the decision reads has changed."""
    main = svc(status=status, trust_unlock_until=unlock, nav_until=nav_until,
               nav_download_kbps=7_000 if nav_until else None, nav_upload_kbps=3_000 if nav_until else None,
               associated_service_id=2 if partner_tied and not partner_is_parent else None)
    partner = ServiceFacts(2, "ana-ip", "pw", partner_status, 2, trust_unlock_until=partner_unlock,
                           associated_service_id=1 if partner_tied and partner_is_parent else None)
    v = view(main, partner, variables={"POOL_SUSPENSAO_TOTAL": "bloqueados"})
    facts = RequestFacts("ana", MK)
    now = NOW + timedelta(seconds=seconds)
    first = decide(facts, v, now, SETTINGS)
    expires = decision_expires(facts, v, now)
    end = expires if expires is not None else now + timedelta(days=2)
    assert end > now
    moment = now
    while moment < end:
        assert decide(facts, v, moment, SETTINGS) == first, moment
        moment += timedelta(minutes=13)
    assert decide(facts, v, end - timedelta(microseconds=1), SETTINGS) == first
    if expires is not None:
        limits = {unlock, nav_until, partner_unlock if partner_tied else None}
        assert expires in limits


def test_an_unknown_login_never_expires() -> None:
    """No service: "unknown login" until the view changes."""
    assert decision_expires(RequestFacts("nobody", MK), view(svc()), NOW) is None
