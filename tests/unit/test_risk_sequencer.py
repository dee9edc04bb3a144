"""L2 sequencer uptime: borrow / withdraw with debt / transfer with debt need
the sequencer up for longer than the grace period, measured from the
feed's startedAt (the last status change), never from updatedAt (which
heartbeats refresh: the Aave v3 PriceOracleSentinel bug)."""

from types import SimpleNamespace

import boa
import pytest

from tests.protocol import MAX_UINT, WAD, AssetSpec, Protocol, load_mock

GRACE = 3600
ETH_UNIT = 10**18
USDC_UNIT = 10**6


def now() -> int:
    return boa.env.evm.patch.timestamp


@pytest.fixture
def env():
    p = Protocol.deploy_with_sequencer(grace_period=GRACE)
    eth = p.list_asset(AssetSpec("ETH", price=2000, max_staleness=7 * 86400))
    usdc = p.list_asset(AssetSpec("USDC", decimals=6, max_staleness=7 * 86400, slope_low=0, slope_high=0))
    alice = boa.env.generate_address("alice")
    lender = boa.env.generate_address("lender")
    p.fund(lender, usdc, 100_000 * USDC_UNIT)
    p.fund(alice, eth, 100 * ETH_UNIT)
    p.fund(alice, usdc, 10_000 * USDC_UNIT)
    with boa.env.prank(lender):
        p.engine.deposit(usdc.address, 100_000 * USDC_UNIT)
    with boa.env.prank(alice):
        p.engine.deposit(eth.address, 10 * ETH_UNIT)
        p.engine.borrow(usdc.address, 1_000 * USDC_UNIT)  # sequencer up past grace at deployment
    return SimpleNamespace(p=p, eth=eth, usdc=usdc, alice=alice, lender=lender, seq=p.sequencer)


def borrow(e, amount=1):
    with boa.env.prank(e.alice):
        return e.p.engine.borrow(e.usdc.address, amount)


def risky_actions(e):
    return [
        lambda: e.p.engine.borrow(e.usdc.address, 1),
        lambda: e.p.engine.withdraw(e.eth.address, 1),
        lambda: e.p.engine.transfer_collateral(e.eth.address, 1, 0, 1),
    ]


def assert_all_blocked(e, reason):
    with boa.env.prank(e.alice):
        for act in risky_actions(e):
            with boa.reverts(reason):
                act()


def test_deployment_state(env):
    assert env.p.engine.SEQUENCER_FEED() == env.seq.address
    assert env.p.engine.SEQUENCER_GRACE_PERIOD() == GRACE
    assert env.p.engine.sequencer_ok()
    _, answer, started_at, _, _ = env.seq.latestRoundData()
    assert answer == 0 and now() - started_at == GRACE + 1


def test_sequencer_down_blocks_risky_actions(env):
    env.seq.set_status(True)
    assert not env.p.engine.sequencer_ok()
    assert_all_blocked(env, "oracle: sequencer down")
    # lens max views are 0 while down (alice has debt)
    assert env.p.lens.max_borrow(env.alice, 0, env.usdc.address) == 0
    assert env.p.lens.max_withdraw(env.alice, 0, env.eth.address) == 0
    # health views are unaffected: 16000 - 1200, 17000 - 1100
    assert env.p.engine.health(env.alice) == (14_800 * WAD, 15_900 * WAD, True)
    # staying down for a long time does not help
    boa.env.time_travel(seconds=10 * GRACE)
    env.p.refresh_prices()
    env.seq.set_status(True)  # heartbeat while down
    assert_all_blocked(env, "oracle: sequencer down")


def test_deposit_repay_and_debt_free_withdraw_work_while_down(env):
    env.seq.set_status(True)
    with boa.env.prank(env.alice):
        env.p.engine.deposit(env.eth.address, 5 * ETH_UNIT)
        assert env.p.engine.repay(env.usdc.address, 400 * USDC_UNIT) == 400 * USDC_UNIT
        assert env.p.engine.position(env.alice, 0, env.usdc.address) == (0, 600 * USDC_UNIT)
        assert env.p.engine.repay(env.usdc.address, MAX_UINT) == 600 * USDC_UNIT
        # no debt left: withdraw needs neither prices nor the sequencer
        assert env.p.engine.withdraw(env.eth.address, MAX_UINT) == 15 * ETH_UNIT
    with boa.env.prank(env.lender):
        assert env.p.engine.withdraw(env.usdc.address, 50_000 * USDC_UNIT) == 50_000 * USDC_UNIT
    assert env.eth.token.balanceOf(env.alice) == 100 * ETH_UNIT
    assert env.p.lens.max_withdraw(env.lender, 0, env.usdc.address) == 50_000 * USDC_UNIT


def test_grace_period_after_recovery(env):
    env.seq.set_status(True)
    boa.env.time_travel(seconds=600)
    env.seq.set_status(False)  # back up at t_up
    t_up = now()
    boa.env.time_travel(seconds=1)
    env.p.refresh_prices()
    assert not env.p.engine.sequencer_ok()
    assert_all_blocked(env, "oracle: sequencer grace period")
    boa.env.time_travel(seconds=GRACE - 1)
    env.p.refresh_prices()
    assert now() - t_up == GRACE  # exactly the grace period: still closed
    assert_all_blocked(env, "oracle: sequencer grace period")
    assert env.p.lens.max_borrow(env.alice, 0, env.usdc.address) == 0
    boa.env.time_travel(seconds=1)
    env.p.refresh_prices()
    assert env.p.engine.sequencer_ok()
    assert borrow(env, 1_000 * USDC_UNIT) == 1_000 * USDC_UNIT  # borrow shares at index 1
    with boa.env.prank(env.alice):
        assert env.p.engine.withdraw(env.eth.address, ETH_UNIT) == ETH_UNIT
        env.p.engine.transfer_collateral(env.eth.address, ETH_UNIT, 0, 1)
    # 8 ETH * 2000 * 0.8 - 2000 * 1.2
    assert env.p.engine.health(env.alice) == (12_800 * WAD - 2_400 * WAD, 13_600 * WAD - 2_200 * WAD, True)


# Regression: in the very second the sequencer comes back up (startedAt == now) the
# engine once reported "oracle: sequencer down"; the grace period applies.
def test_grace_period_reason_in_the_second_of_recovery(env):
    env.seq.set_status(True)
    boa.env.time_travel(seconds=600)
    env.p.refresh_prices()
    env.seq.set_status(False)  # up again, startedAt = now
    assert env.seq.latestRoundData()[1] == 0
    with boa.env.prank(env.alice), boa.reverts("oracle: sequencer grace period"):
        env.p.engine.borrow(env.usdc.address, 1)


def test_heartbeat_does_not_restart_grace_period(env):
    """A heartbeat (set_status(False) while already up) refreshes updatedAt only."""
    _, _, started_before, updated_before, _ = env.seq.latestRoundData()
    boa.env.time_travel(seconds=100)
    env.seq.set_status(False)  # heartbeat
    _, answer, started_after, updated_after, _ = env.seq.latestRoundData()
    assert answer == 0
    assert started_after == started_before
    assert updated_before == started_before  # the feed's first round
    assert updated_after == now() and updated_after - started_after == GRACE + 1 + 100
    # Measured from updatedAt, the grace period would now run again (0 s < 3600 s).
    assert env.p.engine.sequencer_ok()
    assert borrow(env) == 1


def test_heartbeat_during_grace_does_not_extend_it(env):
    env.seq.set_status(True)
    boa.env.time_travel(seconds=60)
    env.seq.set_status(False)
    t_up = now()
    boa.env.time_travel(seconds=1800)
    env.seq.set_status(False)  # heartbeat half-way through the grace period
    boa.env.time_travel(seconds=GRACE + 1 - 1800)
    env.p.refresh_prices()
    assert now() - t_up == GRACE + 1
    # Measured from the heartbeat's updatedAt only 1801 s would have passed.
    assert env.seq.latestRoundData()[3] == t_up + 1800
    assert env.p.engine.sequencer_ok()
    assert borrow(env) == 1


def test_started_at_in_future_or_zero_fails_closed(env):
    env.seq.set_status_at(False, now() + 100)
    assert not env.p.engine.sequencer_ok()
    assert_all_blocked(env, "oracle: sequencer down")
    env.seq.set_status_at(False, 0)
    assert_all_blocked(env, "oracle: sequencer down")
    env.seq.set_status_at(False, now() - GRACE - 1)
    assert env.p.engine.sequencer_ok()
    assert borrow(env) == 1


def test_no_sequencer_feed_on_l1():
    p = Protocol.deploy()
    assert p.engine.sequencer_ok()
    assert p.engine.SEQUENCER_FEED() == "0x" + "00" * 20


def test_grace_period_above_one_day_rejected():
    seq = load_mock("MockSequencerFeed", False)
    with boa.reverts("config: sequencer grace period too long"):
        Protocol.deploy(sequencer_feed=seq.address, sequencer_grace_period=86401)
    p = Protocol.deploy(sequencer_feed=seq.address, sequencer_grace_period=86400)
    assert p.engine.SEQUENCER_GRACE_PERIOD() == 86400
