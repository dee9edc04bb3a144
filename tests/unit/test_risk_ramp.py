"""Maintenance-weight ramping (Euler v2 LTV ramping).

A lower aw_maint or a higher lw_maint moves linearly from the weight in
force to the target over configurator.maintenance_ramp_duration():
  aw(t) = aw_start - ceil((aw_start - aw_target) * elapsed / duration)
  lw(t) = lw_start + ceil((lw_target - lw_start) * elapsed / duration)
(so asset weights round down and liability weights up). Loosening and
initial weights apply at once.
"""

from types import SimpleNamespace

import boa
import pytest

from tests.protocol import WAD, AssetSpec, Protocol

BP = 10**14
DAY = 86400
USDC = 10**6
STALE_OK = 7 * DAY


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def now() -> int:
    return boa.env.evm.patch.timestamp


def risk(aw_i, aw_m, lw_i, lw_m, staleness=STALE_OK, imf=0, lo=1, hi=2**64 - 1):
    return (aw_i, aw_m, lw_i, lw_m, staleness, imf, lo, hi)


def aw_ramp(start, target, elapsed, duration):
    if elapsed >= duration:
        return target
    return start - ceil_div((start - target) * elapsed, duration)


def lw_ramp(start, target, elapsed, duration):
    if elapsed >= duration:
        return target
    return start + ceil_div((target - start) * elapsed, duration)


def events(contract, name):
    return [e for e in contract.get_logs() if type(e).__name__ == name]


@pytest.fixture
def env():
    p = Protocol.deploy(ramp_duration=DAY)
    eth = p.list_asset(AssetSpec("ETH", price=2000, max_staleness=STALE_OK))
    usdc = p.list_asset(AssetSpec("USDC", decimals=6, max_staleness=STALE_OK, slope_low=0, slope_high=0))
    alice = boa.env.generate_address("alice")
    lender = boa.env.generate_address("lender")
    p.fund(lender, usdc, 100_000 * USDC)
    p.fund(alice, eth, 10**18)
    with boa.env.prank(lender):
        p.engine.deposit(usdc.address, 100_000 * USDC)
    with boa.env.prank(alice):
        p.engine.deposit(eth.address, 10**18)
        p.engine.borrow(usdc.address, 1_300 * USDC)
    # initial 2000 * 0.8 - 1300 * 1.2 = 40; maintenance 2000 * 0.85 - 1300 * 1.1 = 270
    assert p.engine.health(alice) == (40 * WAD, 270 * WAD, True)
    return SimpleNamespace(p=p, eth=eth, usdc=usdc, alice=alice)


def set_risk(e, asset, params):
    with boa.env.prank(e.p.owner):
        e.p.configurator.set_risk_params(asset.address, params)
    return events(e.p.configurator, "RiskParamsSet")


def maint(e):
    return e.p.engine.health(e.alice)[1]


def test_ramp_duration_getter(env):
    assert env.p.configurator.maintenance_ramp_duration() == DAY


def test_lower_asset_weight_ramps(env):
    e = env
    t0 = now()
    (ev,) = set_risk(e, e.eth, risk(7000 * BP, 7500 * BP, 12 * 10**17, 11 * 10**17))
    assert ev.ramp_end == t0 + DAY
    assert (ev.asset_weight_initial, ev.asset_weight_maintenance) == (7000 * BP, 7500 * BP)
    debt_m = 1_430 * WAD

    # t0: the old weight; the initial weight 0.7 applies at once
    assert e.p.engine.health(e.alice) == (1_400 * WAD - 1_560 * WAD, 1_700 * WAD - debt_m, True)
    cfg = e.p.lens.asset_config(e.eth.address)
    assert (cfg.asset_weight_maintenance_now, cfg.ramp_end) == (85 * 10**16, t0 + DAY)
    assert (cfg.risk.asset_weight_initial, cfg.risk.asset_weight_maintenance) == (7 * 10**17, 75 * 10**16)

    checkpoints = [1, 2, 12_345, DAY // 2, DAY - 1]
    for elapsed in checkpoints:
        boa.env.time_travel(seconds=elapsed - (now() - t0))
        aw = aw_ramp(85 * 10**16, 75 * 10**16, elapsed, DAY)
        assert e.p.lens.asset_config(e.eth.address).asset_weight_maintenance_now == aw
        assert maint(e) == 2_000 * aw - debt_m
    # written out: after 1 s, 0.85 - ceil(0.1 / 86400); half-way exactly 0.80
    assert aw_ramp(85 * 10**16, 75 * 10**16, 1, DAY) == 85 * 10**16 - 1_157_407_407_408
    assert aw_ramp(85 * 10**16, 75 * 10**16, DAY // 2, DAY) == 80 * 10**16
    assert aw_ramp(85 * 10**16, 75 * 10**16, DAY - 1, DAY) == 75 * 10**16 + 1_157_407_407_407

    boa.env.time_travel(seconds=1)  # the end
    assert now() - t0 == DAY
    assert maint(e) == 1_500 * WAD - debt_m
    assert e.p.lens.asset_config(e.eth.address).asset_weight_maintenance_now == 75 * 10**16
    boa.env.time_travel(seconds=10 * DAY)
    e.p.refresh_prices()
    assert maint(e) == 1_500 * WAD - debt_m


def test_raise_liability_weight_ramps(env):
    e = env
    t0 = now()
    (ev,) = set_risk(e, e.usdc, risk(8 * 10**17, 85 * 10**16, 13 * 10**17, 1_2345 * BP))
    assert ev.ramp_end == t0 + DAY
    # initial lw 1.3 at once; maintenance lw still 1.1
    assert e.p.engine.health(e.alice) == (1_600 * WAD - 1_690 * WAD, 270 * WAD, True)
    for elapsed in (1, 3, 7_777, DAY // 2, DAY - 1):
        boa.env.time_travel(seconds=elapsed - (now() - t0))
        lw = lw_ramp(11 * 10**17, 12345 * BP, elapsed, DAY)
        assert e.p.lens.asset_config(e.usdc.address).liability_weight_maintenance_now == lw
        assert maint(e) == 1_700 * WAD - ceil_div(1_300 * WAD * lw, WAD)
    # half-way: 1.1 + ceil(0.1345 / 2) = 1.16725 exactly
    assert lw_ramp(11 * 10**17, 12345 * BP, DAY // 2, DAY) == 116725 * 10**13
    # after 1 s: 1.1 + ceil(0.1345 / 86400) = 1.1 + 1556712962963 wei
    assert lw_ramp(11 * 10**17, 12345 * BP, 1, DAY) == 11 * 10**17 + 1_556_712_962_963
    boa.env.time_travel(seconds=1)
    assert maint(e) == 1_700 * WAD - 1_300 * 12345 * BP


def test_loosening_applies_at_once(env):
    e = env
    (ev,) = set_risk(e, e.eth, risk(8 * 10**17, 9 * 10**17, 12 * 10**17, 11 * 10**17))
    assert ev.ramp_end == 0
    assert maint(e) == 1_800 * WAD - 1_430 * WAD
    (ev,) = set_risk(e, e.usdc, risk(8 * 10**17, 85 * 10**16, 12 * 10**17, 105 * 10**16))
    assert ev.ramp_end == 0
    assert maint(e) == 1_800 * WAD - 1_365 * WAD
    for asset in (e.eth, e.usdc):
        assert e.p.lens.asset_config(asset.address).ramp_end == 0
    assert e.p.lens.asset_config(e.usdc.address).liability_weight_maintenance_now == 105 * 10**16


def test_unchanged_maintenance_has_no_ramp(env):
    e = env
    (ev,) = set_risk(e, e.eth, risk(8 * 10**17, 85 * 10**16, 12 * 10**17, 11 * 10**17, staleness=2 * DAY))
    assert ev.ramp_end == 0
    assert e.p.lens.asset_config(e.eth.address).risk.max_staleness == 2 * DAY


def test_mixed_change_ramps_only_the_tightened_side(env):
    """On one asset: aw_maint down (ramps), lw_maint down (applies at once)."""
    e = env
    t0 = now()
    (ev,) = set_risk(e, e.usdc, risk(7 * 10**17, 75 * 10**16, 12 * 10**17, 10 * 10**17))
    assert ev.ramp_end == t0 + DAY
    cfg = e.p.lens.asset_config(e.usdc.address)
    assert (cfg.asset_weight_maintenance_now, cfg.liability_weight_maintenance_now) == (85 * 10**16, WAD)
    assert maint(e) == 1_700 * WAD - 1_300 * WAD
    boa.env.time_travel(seconds=DAY // 4)
    cfg = e.p.lens.asset_config(e.usdc.address)
    assert (cfg.asset_weight_maintenance_now, cfg.liability_weight_maintenance_now) == (825 * 10**15, WAD)


def test_initial_weights_apply_at_once(env):
    e = env
    set_risk(e, e.eth, risk(6 * 10**17, 85 * 10**16, 12 * 10**17, 11 * 10**17))
    assert e.p.engine.health(e.alice)[0] == 1_200 * WAD - 1_560 * WAD
    set_risk(e, e.usdc, risk(8 * 10**17, 85 * 10**16, 15 * 10**17, 11 * 10**17))
    assert e.p.engine.health(e.alice) == (1_200 * WAD - 1_950 * WAD, 270 * WAD, True)
    with boa.env.prank(e.alice), boa.reverts("health: below initial margin"):
        e.p.engine.borrow(e.usdc.address, 1)


def test_account_not_liquidatable_at_once(env):
    """Under the new maintenance weights alice would be at 2000 * 0.6 - 1300 * 1.25
    = -425 at once; the ramp keeps her at +270 right after the change."""
    e = env
    t0 = now()
    set_risk(e, e.eth, risk(5 * 10**17, 6 * 10**17, 12 * 10**17, 11 * 10**17))
    set_risk(e, e.usdc, risk(8 * 10**17, 85 * 10**16, 13 * 10**17, 125 * 10**16))
    assert e.p.engine.health(e.alice) == (1_000 * WAD - 1_690 * WAD, 270 * WAD, True)
    assert e.p.lens.health_ratio(e.alice) == 1_700 * WAD * WAD // (1_430 * WAD)
    assert e.p.lens.health_ratio(e.alice) > WAD
    boa.env.time_travel(seconds=DAY // 2)
    # 2000 * 0.725 - 1300 * 1.175
    assert maint(e) == 1_450 * WAD - 1_527_5 * 10**17
    boa.env.time_travel(seconds=DAY // 2)
    assert now() - t0 == DAY
    assert maint(e) == 1_200 * WAD - 1_625 * WAD
    assert e.p.lens.health_ratio(e.alice) == 1_200 * WAD * WAD // (1_625 * WAD)


def test_retightening_mid_ramp_starts_from_weight_in_force(env):
    e = env
    t0 = now()
    set_risk(e, e.eth, risk(7 * 10**17, 75 * 10**16, 12 * 10**17, 11 * 10**17))
    boa.env.time_travel(seconds=DAY // 4)
    aw_now = aw_ramp(85 * 10**16, 75 * 10**16, DAY // 4, DAY)
    assert aw_now == 825 * 10**15
    t1 = now()
    (ev,) = set_risk(e, e.eth, risk(6 * 10**17, 65 * 10**16, 12 * 10**17, 11 * 10**17))
    assert ev.ramp_end == t1 + DAY
    # the new ramp starts at 0.825 (not back at 0.85, not at the old target)
    assert e.p.lens.asset_config(e.eth.address).asset_weight_maintenance_now == aw_now
    boa.env.time_travel(seconds=DAY // 2)
    assert e.p.lens.asset_config(e.eth.address).asset_weight_maintenance_now == 7375 * 10**14  # (0.825 + 0.65) / 2
    assert now() - t0 == DAY * 3 // 4


def test_retightening_start_rounds_down_to_a_basis_point(env):
    """Weights are stored in bp: a ramp restarted from a weight in force that is
    not a bp multiple starts at floor(aw_now / 1 bp) (never looser)."""
    e = env
    set_risk(e, e.eth, risk(7 * 10**17, 75 * 10**16, 12 * 10**17, 11 * 10**17))
    boa.env.time_travel(seconds=1)
    aw_now = 85 * 10**16 - 1_157_407_407_408  # 0.849998842592592592
    assert e.p.lens.asset_config(e.eth.address).asset_weight_maintenance_now == aw_now
    set_risk(e, e.eth, risk(7 * 10**17, 7 * 10**17, 12 * 10**17, 11 * 10**17))
    assert e.p.lens.asset_config(e.eth.address).asset_weight_maintenance_now == 8499 * BP
    assert maint(e) == 2_000 * 8499 * BP - 1_430 * WAD


def test_unrelated_change_mid_ramp_keeps_the_ramp(env):
    """Changing, say, only the staleness during a ramp leaves the ramp as it
    was: same end, and the target is reached on time."""
    e = env
    t0 = now()
    set_risk(e, e.eth, risk(7 * 10**17, 75 * 10**16, 12 * 10**17, 11 * 10**17))
    boa.env.time_travel(seconds=DAY // 2)
    (ev,) = set_risk(e, e.eth, risk(7 * 10**17, 75 * 10**16, 12 * 10**17, 11 * 10**17, staleness=DAY))
    assert ev.ramp_end == t0 + DAY
    assert e.p.lens.asset_config(e.eth.address).asset_weight_maintenance_now == 800 * 10**15
    boa.env.time_travel(seconds=DAY // 2)  # the ramp's end
    assert e.p.lens.asset_config(e.eth.address).asset_weight_maintenance_now == 750 * 10**15


def test_ramp_uses_the_configured_duration(env):
    e = env
    with boa.env.prank(e.p.owner):
        e.p.configurator.set_maintenance_ramp_duration(3600)
    (ev,) = events(e.p.configurator, "MaintenanceRampDurationSet")
    assert ev.duration == 3600
    assert e.p.configurator.maintenance_ramp_duration() == 3600
    t0 = now()
    (ev,) = set_risk(e, e.eth, risk(7 * 10**17, 75 * 10**16, 12 * 10**17, 11 * 10**17))
    assert ev.ramp_end == t0 + 3600
    boa.env.time_travel(seconds=900)
    assert e.p.lens.asset_config(e.eth.address).asset_weight_maintenance_now == 825 * 10**15


@pytest.mark.parametrize("duration,ok", [(3599, False), (3600, True), (90 * DAY, True), (90 * DAY + 1, False)])
def test_ramp_duration_bounds(env, duration, ok):
    with boa.env.prank(env.p.owner):
        if ok:
            env.p.configurator.set_maintenance_ramp_duration(duration)
            assert env.p.configurator.maintenance_ramp_duration() == duration
        else:
            with boa.reverts("config: ramp duration out of range"):
                env.p.configurator.set_maintenance_ramp_duration(duration)


def test_ramp_keeps_running_across_set_flags(env):
    e = env
    t0 = now()
    set_risk(e, e.eth, risk(7 * 10**17, 75 * 10**16, 12 * 10**17, 11 * 10**17))
    with boa.env.prank(e.p.owner):
        e.p.configurator.set_flags(e.eth.address, False, True)
    boa.env.time_travel(seconds=DAY // 2)
    cfg = e.p.lens.asset_config(e.eth.address)
    assert (cfg.asset_weight_maintenance_now, cfg.ramp_end, cfg.collateral) == (80 * 10**16, t0 + DAY, False)
    assert e.p.engine.health(e.alice) == (-1_560 * WAD, 1_600 * WAD - 1_430 * WAD, True)
