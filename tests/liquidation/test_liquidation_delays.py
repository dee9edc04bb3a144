"""Delays before a liquidation: the grace period after a stale price feed,
L2 sequencer downtime and its grace period (measured from startedAt), and
the guardian's liquidation pause (at most 4 hours, then 4 hours of cool-down,
ended early by the owner through the configurator)."""

import boa
import pytest

from tests.liquidation.helpers import (
    MAX_UINT,
    WAD,
    checked_liquidation,
    deploy_env,
    deposit,
    liquidate,
    now,
    open_account,
    set_prices,
)
from tests.liquidation.test_bad_debt import checked_settle, insolvent_after_liquidation

GRACE = 3600
STALENESS = 3600  # AssetSpec default max_staleness
FOUR_HOURS = 4 * 3600


def alice_on_the_edge(env):
    """10 WETH against 13,000 USDC: liquidatable at WETH $1,500."""
    return open_account(env, "alice", {"WETH": 10}, {"USDC": 13_000})


def fresh_round_each(env, weth_price=1500):
    """Exactly one new round per feed, now (WETH at `weth_price`)."""
    for sym, a in env.p.assets.items():
        if sym == "WETH":
            a.set_price(weth_price)
        else:
            a.feed.set_answer(a.feed.latestAnswer())


def go_stale_then_fresh(env, weth_price=1500):
    """No update for 2 hours (every feed stale), then one fresh round for
    each feed, now. Returns the time of those rounds."""
    boa.env.time_travel(seconds=2 * 3600)
    fresh_round_each(env, weth_price)
    return now()


# ---------------------------------------------------------------------------
# Grace period after a stale feed
# ---------------------------------------------------------------------------


def test_grace_after_a_stale_feed_blocks_liquidation_until_it_passes():
    env = deploy_env(liquidation_grace_period=GRACE)
    alice = alice_on_the_edge(env)
    assert env.engine.liquidation_settings() == (10 * WAD, GRACE, 0)
    boa.env.time_travel(seconds=2 * 3600)
    with boa.reverts("oracle: stale price"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    fresh_round_each(env)
    fresh_at = now()
    assert env.engine.health(alice)[1] < 0
    with boa.reverts("liquidation: price grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")

    # Meanwhile the account can be cured: deposit and repay work.
    deposit(env, alice, "WETH", 10**17)
    env.p.fund(alice, env.usdc, 100 * 10**6)
    with boa.env.prank(alice):
        env.engine.repay(env.usdc.address, 100 * 10**6)
    # ... others may repay for it too.
    env.p.fund(env.lender, env.usdc, 50 * 10**6)
    with boa.env.prank(env.lender):
        env.engine.repay(env.usdc.address, 50 * 10**6, 0, alice)
    assert env.engine.position(alice, 0, env.usdc.address)[1] == 12_850 * 10**6

    boa.env.time_travel(seconds=1800)  # feeds still fresh (1,800 s old)
    with boa.reverts("liquidation: price grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    boa.env.time_travel(seconds=fresh_at + GRACE - 1 - now())
    with boa.reverts("liquidation: price grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    boa.env.time_travel(seconds=1)  # now == fresh_at + GRACE: over (and the feed not yet stale)
    assert env.engine.health(alice)[2]  # prices valid
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


def test_a_cured_account_is_healthy_after_the_grace():
    env = deploy_env(liquidation_grace_period=GRACE)
    alice = alice_on_the_edge(env)
    go_stale_then_fresh(env)
    deposit(env, alice, "WETH", 2 * 10**18)  # 12 WETH: 15,300 >= 14,300
    boa.env.time_travel(seconds=GRACE)
    with boa.reverts("liquidation: account is healthy"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")


def test_a_feed_that_was_never_stale_imposes_no_wait():
    env = deploy_env(liquidation_grace_period=GRACE)
    alice = alice_on_the_edge(env)
    for _ in range(6):  # three hours of half-hourly rounds
        boa.env.time_travel(seconds=1800)
        env.p.refresh_prices()
    env.weth.set_price(1500)
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


@pytest.mark.parametrize("gap,waits", [(STALENESS, False), (STALENESS + 1, True)])
def test_stale_means_a_gap_longer_than_max_staleness(gap, waits):
    """A round exactly max_staleness after the previous one: the feed was
    never stale (age <= max staleness), no wait; one second more: wait."""
    env = deploy_env(liquidation_grace_period=GRACE)
    alice = alice_on_the_edge(env)
    last = max(a.feed.latestTimestamp() for a in env.p.assets.values())
    assert all(a.feed.latestTimestamp() == last for a in env.p.assets.values())
    boa.env.time_travel(seconds=last + gap - now())
    fresh_round_each(env)
    if waits:
        with boa.reverts("liquidation: price grace period"):
            liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    else:
        checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


def test_grace_applies_only_to_the_feeds_of_the_account():
    """Only WBTC's feed went stale: alice (WETH/USDC) can be liquidated at
    once, bob (WBTC/USDC) only after the grace."""
    env = deploy_env(liquidation_grace_period=GRACE)
    alice = alice_on_the_edge(env)
    bob = open_account(env, "bob", {"WBTC": 1}, {"USDC": 40_000})
    for _ in range(4):  # WETH and USDC stay fresh, WBTC does not
        boa.env.time_travel(seconds=1800)
        env.weth.set_price(2000)
        env.usdc.set_price(1.0)
    set_prices(env, WETH=1500, WBTC=45_000)
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")
    with boa.reverts("liquidation: price grace period"):
        liquidate(env, env.liquidator, bob, "USDC", MAX_UINT, "WBTC")
    boa.env.time_travel(seconds=GRACE)
    checked_liquidation(env, bob, "USDC", MAX_UINT, "WBTC")


def test_grace_period_zero_disables_the_check():
    env = deploy_env(liquidation_grace_period=0)
    alice = alice_on_the_edge(env)
    go_stale_then_fresh(env)
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


def test_grace_period_is_set_by_the_configurator():
    env = deploy_env()
    alice = alice_on_the_edge(env)
    with boa.env.prank(env.p.owner):
        env.p.configurator.set_liquidation_settings(10 * WAD, GRACE)
        with boa.reverts("config: liquidation grace period above 1 day"):
            env.p.configurator.set_liquidation_settings(10 * WAD, 86401)
    assert env.engine.liquidation_settings() == (10 * WAD, GRACE, 0)
    go_stale_then_fresh(env)
    with boa.reverts("liquidation: price grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")


# Regression: the grace period ended as soon as a SECOND round was
# published: oracle.recently_stale only compared the latest round with the
# one before it, so a round one minute after the first fresh round reopened
# liquidations 60 s after a 2-hour outage instead of after the configured
# 3,600 s (Chainlink publishes on every 0.5% deviation). It now walks back
# over the rounds inside the grace window (up to MAX_GRACE_ROUNDS = 16).
def test_grace_survives_a_second_round_inside_it():
    env = deploy_env(liquidation_grace_period=GRACE)
    alice = alice_on_the_edge(env)
    go_stale_then_fresh(env)
    with boa.reverts("liquidation: price grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    boa.env.time_travel(seconds=60)
    fresh_round_each(env, weth_price=1499)  # the next deviation rounds
    with boa.reverts("liquidation: price grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")


# ---------------------------------------------------------------------------
# L2 sequencer
# ---------------------------------------------------------------------------


def test_sequencer_downtime_then_grace_measured_from_started_at():
    env = deploy_env(sequencer=True, sequencer_grace=GRACE)
    seq = env.p.sequencer
    alice = alice_on_the_edge(env)
    set_prices(env, WETH=1500)
    seq.set_status(True)
    with boa.reverts("oracle: sequencer down"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    # Deposit and repay work while it is down.
    deposit(env, alice, "WETH", 10**16)
    env.p.fund(alice, env.usdc, 10**6)
    with boa.env.prank(alice):
        env.engine.repay(env.usdc.address, 10**6)
    boa.env.time_travel(seconds=2 * 3600)
    env.p.refresh_prices()
    seq.set_status(True)  # heartbeat while down: still down
    with boa.reverts("oracle: sequencer down"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")

    seq.set_status(False)  # back up: startedAt = now
    up_at = now()
    assert seq.latestRoundData()[2] == up_at
    with boa.reverts("oracle: sequencer grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    # Heartbeats refresh updatedAt, not startedAt: they do not restart the grace.
    for _ in range(3):
        boa.env.time_travel(seconds=1200)
        env.p.refresh_prices()
        seq.set_status(False)
        assert seq.latestRoundData()[2] == up_at and seq.latestRoundData()[3] == now()
    assert now() == up_at + GRACE
    with boa.reverts("oracle: sequencer grace period"):  # grace ends strictly after GRACE s
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    boa.env.time_travel(seconds=1)
    seq.set_status(False)  # a heartbeat one second ago would not matter either
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


def test_sequencer_last_change_inside_the_grace_period():
    env = deploy_env(sequencer=True, sequencer_grace=GRACE)
    alice = alice_on_the_edge(env)
    set_prices(env, WETH=1500)
    env.p.sequencer.set_status_at(False, now() - 100)  # came up 100 s ago
    with boa.reverts("oracle: sequencer grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    env.p.sequencer.set_status_at(False, now() - GRACE - 1)
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


# ---------------------------------------------------------------------------
# Guardian pause
# ---------------------------------------------------------------------------


def pause(env, duration, who=None):
    with boa.env.prank(who or env.p.guardian):
        env.engine.pause_liquidations(duration)


def test_pause_blocks_and_expires_by_itself():
    env = deploy_env()
    alice = alice_on_the_edge(env)
    set_prices(env, WETH=1500)
    t0 = now()
    pause(env, 3600)
    assert env.engine.liquidation_settings() == (10 * WAD, 0, t0 + 3600)
    with boa.reverts("liquidation: paused"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    with boa.reverts("liquidation: paused"):
        env.engine.settle_bad_debt(alice, 0)
    boa.env.time_travel(seconds=3599)
    env.p.refresh_prices()
    with boa.reverts("liquidation: paused"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    boa.env.time_travel(seconds=1)  # now == paused_until: open again
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


@pytest.mark.parametrize("duration", [0, FOUR_HOURS + 1, 86400])
def test_pause_duration_above_4_hours(duration):
    env = deploy_env()
    with boa.reverts("pause: zero duration" if duration == 0 else "pause: duration above 4 hours"):
        pause(env, duration)
    pause(env, FOUR_HOURS)
    assert env.engine.liquidation_settings()[2] == now() + FOUR_HOURS


def test_second_pause_only_4_hours_after_the_last_ended():
    env = deploy_env()
    t0 = now()
    pause(env, 3600)
    with boa.reverts("pause: cooling down from the last pause"):
        pause(env, 60)  # during the pause: no extension
    boa.env.time_travel(seconds=t0 + 3600 + FOUR_HOURS - 1 - now())
    with boa.reverts("pause: cooling down from the last pause"):
        pause(env, 60)
    boa.env.time_travel(seconds=1)
    pause(env, 60)
    assert env.engine.liquidation_settings()[2] == t0 + 3600 + FOUR_HOURS + 60


def test_only_the_guardian_pauses():
    env = deploy_env()
    for who in (env.p.owner, env.liquidator, env.lender, env.p.configurator.address):
        with boa.reverts("pause: caller is not guardian"):
            pause(env, 60, who)
    # A new guardian set by the owner can.
    new_guardian = boa.env.generate_address("new guardian")
    with boa.env.prank(env.p.owner):
        env.p.configurator.set_guardian(new_guardian)
    with boa.reverts("pause: caller is not guardian"):
        pause(env, 60, env.p.guardian)
    pause(env, 60, new_guardian)


def test_configurator_unpause_ends_it_early():
    env = deploy_env()
    alice = alice_on_the_edge(env)
    set_prices(env, WETH=1500)
    pause(env, FOUR_HOURS)
    boa.env.time_travel(seconds=600)
    env.p.refresh_prices()
    with boa.reverts("liquidation: paused"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    with boa.env.prank(env.liquidator):
        with boa.reverts("ownable: caller is not the owner"):
            env.p.configurator.unpause_liquidations()
    with boa.env.prank(env.p.guardian):
        with boa.reverts("ownable: caller is not the owner"):
            env.p.configurator.unpause_liquidations()
    ended = now()
    with boa.env.prank(env.p.owner):
        env.p.configurator.unpause_liquidations()
    assert env.engine.liquidation_settings() == (10 * WAD, 0, ended)
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")
    # The cool-down counts from the early end.
    boa.env.time_travel(seconds=FOUR_HOURS - 1)
    with boa.reverts("pause: cooling down from the last pause"):
        pause(env, 60)
    boa.env.time_travel(seconds=1)
    pause(env, 60)


def test_settings_change_keeps_a_running_pause():
    env = deploy_env()
    pause(env, 3600)
    until = env.engine.liquidation_settings()[2]
    with boa.env.prank(env.p.owner):
        env.p.configurator.set_liquidation_settings(5 * WAD, 600)
    assert env.engine.liquidation_settings() == (5 * WAD, 600, until)


MAX_GRACE_ROUNDS = 16  # oracle.MAX_GRACE_ROUNDS


def test_grace_lasts_its_full_length_through_many_rounds():
    """A round every 5 minutes after the outage (11 rounds inside the
    window): liquidations wait until exactly fresh_at + GRACE."""
    env = deploy_env(liquidation_grace_period=GRACE)
    alice = alice_on_the_edge(env)
    fresh_at = go_stale_then_fresh(env)
    first_fresh = env.weth.feed.latestRound()
    while now() + 300 < fresh_at + GRACE:
        boa.env.time_travel(seconds=300)
        fresh_round_each(env, weth_price=1500)
        with boa.reverts("liquidation: price grace period"):
            liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    assert env.weth.feed.latestRound() - first_fresh == 11
    boa.env.time_travel(seconds=fresh_at + GRACE - 1 - now())
    with boa.reverts("liquidation: price grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    boa.env.time_travel(seconds=1)
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


@pytest.mark.parametrize("rounds_after,waits", [(MAX_GRACE_ROUNDS - 1, True), (MAX_GRACE_ROUNDS, False)])
def test_grace_walk_is_bounded(rounds_after, waits):
    """The walk reads at most 16 rounds before the latest: the stale gap is
    found while at most 15 rounds follow the first fresh round; with 16 it
    is out of reach and the grace ends early (fail open, documented in
    docs/risk-model.md)."""
    env = deploy_env(liquidation_grace_period=GRACE)
    alice = alice_on_the_edge(env)
    go_stale_then_fresh(env)
    first_fresh = env.weth.feed.latestRound()
    for _ in range(rounds_after):
        boa.env.time_travel(seconds=60)
        fresh_round_each(env, weth_price=1500)
    assert env.weth.feed.latestRound() - first_fresh == rounds_after
    assert now() < first_fresh_time(env, first_fresh) + GRACE
    if waits:
        with boa.reverts("liquidation: price grace period"):
            liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    else:
        checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


def first_fresh_time(env, round_id):
    return env.weth.feed.getRoundData(round_id)[3]


def test_grace_walk_reaching_the_first_round_imposes_no_wait():
    """Every round of the feeds is inside the grace window and none came
    after a gap: the walk reads back to the first round of the phase
    (id 2**64 + 1, which has no previous round) and finds nothing."""
    env = deploy_env(liquidation_grace_period=GRACE)
    alice = alice_on_the_edge(env)
    set_prices(env, WETH=1500)
    first = env.weth.feed.getRoundData(2**64 + 1)
    assert now() < first[3] + GRACE
    assert env.weth.feed.latestRound() - 2**64 <= MAX_GRACE_ROUNDS  # the whole history is within reach
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


# ---------------------------------------------------------------------------
# Bad-debt settlement waits like a liquidation
# ---------------------------------------------------------------------------


def test_settlement_waits_for_the_price_grace_period():
    env = deploy_env(liquidation_grace_period=GRACE)
    alice = insolvent_after_liquidation(env)
    boa.env.time_travel(seconds=2 * 3600)
    with boa.reverts("oracle: stale price"):
        env.engine.settle_bad_debt(alice, 0)
    fresh_at = go_stale_then_fresh(env, weth_price=1000)
    with boa.reverts("liquidation: price grace period"):
        env.engine.settle_bad_debt(alice, 0)
    boa.env.time_travel(seconds=fresh_at + GRACE - 1 - now())
    with boa.reverts("liquidation: price grace period"):
        env.engine.settle_bad_debt(alice, 0)
    boa.env.time_travel(seconds=1)
    exp, _ = checked_settle(env, alice, others=[env.lender])
    assert exp["BadDebtSettled"].values == {"debt": 3_909_090_909, "shares": 3_909_090_909, "borrow_index": WAD}


def test_settlement_waits_for_the_sequencer_and_its_grace_period():
    env = deploy_env(sequencer=True, sequencer_grace=GRACE)
    seq = env.p.sequencer
    alice = insolvent_after_liquidation(env)
    seq.set_status(True)
    with boa.reverts("oracle: sequencer down"):
        env.engine.settle_bad_debt(alice, 0)
    boa.env.time_travel(seconds=600)
    env.p.refresh_prices()
    seq.set_status(False)
    up_at = now()
    with boa.reverts("oracle: sequencer grace period"):
        env.engine.settle_bad_debt(alice, 0)
    boa.env.time_travel(seconds=up_at + GRACE - now())
    env.p.refresh_prices()
    with boa.reverts("oracle: sequencer grace period"):  # ends strictly after GRACE s
        env.engine.settle_bad_debt(alice, 0)
    boa.env.time_travel(seconds=1)
    exp, _ = checked_settle(env, alice, others=[env.lender])
    assert exp["BadDebtSettled"].values == {"debt": 3_909_090_909, "shares": 3_909_090_909, "borrow_index": WAD}
