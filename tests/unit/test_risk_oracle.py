"""Oracle validation: actions that need initial health (borrow, withdraw with
debt, transfer with debt) revert with the oracle's reason; views flag the
price instead of reverting; deposit and repay are never blocked.

Set-up (`env`): ETH (18 decimals, 8-decimal feed, $2000, max staleness 1 h,
answers accepted in [$100, $100000]); USDC (6 decimals, $1, max staleness
1 day). Alice holds 10 ETH and owes 1000 USDC:
  initial     = 10 * 2000 * 0.80 - 1000 * 1.2 = 14800
  maintenance = 10 * 2000 * 0.85 - 1000 * 1.1 = 15900
"""

from types import SimpleNamespace

import boa
import pytest

from tests.protocol import MAX_UINT, WAD, AssetSpec, Protocol, load_mock

ETH_ANSWER = 2000 * 10**8
MIN_ANSWER = 100 * 10**8
MAX_ANSWER = 100_000 * 10**8
ETH_UNIT = 10**18
USDC_UNIT = 10**6


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def now() -> int:
    return boa.env.evm.patch.timestamp


@pytest.fixture
def env():
    p = Protocol.deploy()
    eth = p.list_asset(
        AssetSpec("ETH", price=2000, max_staleness=3600, min_answer=MIN_ANSWER, max_answer=MAX_ANSWER)
    )
    usdc = p.list_asset(AssetSpec("USDC", decimals=6, max_staleness=86400, slope_low=0, slope_high=0))
    alice = boa.env.generate_address("alice")
    lender = boa.env.generate_address("lender")
    p.fund(lender, usdc, 100_000 * USDC_UNIT)
    p.fund(alice, eth, 100 * ETH_UNIT)
    p.fund(alice, usdc, 100_000 * USDC_UNIT)  # to repay with
    with boa.env.prank(lender):
        p.engine.deposit(usdc.address, 100_000 * USDC_UNIT)
    with boa.env.prank(alice):
        p.engine.deposit(eth.address, 10 * ETH_UNIT)
        p.engine.borrow(usdc.address, 1_000 * USDC_UNIT)
    assert p.engine.health(alice) == (14_800 * WAD, 15_900 * WAD, True)
    return SimpleNamespace(p=p, eth=eth, usdc=usdc, alice=alice, lender=lender)


# Each bad round: (name, how to publish it on a feed, expected reason, answer the views still use or None)
def stale(feed, answer):
    t = now() - 3601
    feed.set_round(answer, t, t)


def zero(feed, answer):
    feed.set_answer(0)


def negative(feed, answer):
    feed.set_answer(-answer)


def below_min(feed, answer):
    feed.set_answer(MIN_ANSWER - 1)


def above_max(feed, answer):
    feed.set_answer(MAX_ANSWER + 1)


def incomplete(feed, answer):
    feed.set_round(answer, now(), 0)


BAD_ROUNDS = {
    "stale": (stale, "oracle: stale price", ETH_ANSWER),
    "zero": (zero, "oracle: non-positive price", None),
    "negative": (negative, "oracle: non-positive price", None),
    "below_min": (below_min, "oracle: price out of bounds", MIN_ANSWER - 1),
    "above_max": (above_max, "oracle: price out of bounds", MAX_ANSWER + 1),
    "incomplete": (incomplete, "oracle: incomplete round", ETH_ANSWER),
}


def do_borrow(e):
    e.p.engine.borrow(e.usdc.address, 1)


def do_withdraw(e):
    e.p.engine.withdraw(e.eth.address, 1)


def do_transfer(e):
    e.p.engine.transfer_collateral(e.eth.address, 1, 0, 1)


ACTIONS = {"borrow": do_borrow, "withdraw": do_withdraw, "transfer": do_transfer}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("bad", list(BAD_ROUNDS))
def test_bad_collateral_price_blocks_risky_actions(env, bad, action):
    publish, reason, _ = BAD_ROUNDS[bad]
    publish(env.eth.feed, ETH_ANSWER)
    before = env.p.engine.position(env.alice, 0, env.eth.address), env.p.engine.position(env.alice, 0, env.usdc.address)
    with boa.env.prank(env.alice), boa.reverts(reason):
        ACTIONS[action](env)
    after = env.p.engine.position(env.alice, 0, env.eth.address), env.p.engine.position(env.alice, 0, env.usdc.address)
    assert before == after == ((10 * ETH_UNIT, 0), (0, 1_000 * USDC_UNIT))


@pytest.mark.parametrize("bad", list(BAD_ROUNDS))
def test_bad_debt_price_blocks_borrow(env, bad):
    """The borrowed asset's own price is checked too (here USDC, bounds [1, 2**64 - 1])."""
    publish, reason, _ = BAD_ROUNDS[bad]
    if bad in ("below_min", "above_max"):
        # USDC's bounds are the default [1, 2**64 - 1]: tighten them to [0.99, 1.01]
        with boa.env.prank(env.p.owner):
            env.p.configurator.set_risk_params(
                env.usdc.address, (8 * 10**17, 85 * 10**16, 12 * 10**17, 11 * 10**17, 86400, 0, 99_000_000, 101_000_000)
            )
        env.usdc.feed.set_answer(98_999_999 if bad == "below_min" else 101_000_001)
    elif bad == "stale":
        t = now() - 86401
        env.usdc.feed.set_round(10**8, t, t)
    else:
        publish(env.usdc.feed, 10**8)
    with boa.env.prank(env.alice), boa.reverts(reason):
        env.p.engine.borrow(env.usdc.address, 1)


def test_feed_call_failed(env):
    """A feed whose latestRoundData() reverts (here a contract without it: an
    ERC-20 that has decimals() so it can be listed) makes the price invalid."""
    not_a_feed = load_mock("MockERC20", "NotAFeed", "NAF", 8)
    bad = env.p.list_asset(AssetSpec("BAD", feed_decimals=8), feed=not_a_feed)
    env.p.fund(env.alice, bad, 5 * ETH_UNIT)
    with boa.env.prank(env.alice):
        env.p.engine.deposit(bad.address, 5 * ETH_UNIT)  # deposit never reads the price
    # views: the asset counts at price 0, flagged
    assert env.p.engine.health(env.alice) == (14_800 * WAD, 15_900 * WAD, False)
    m = env.p.lens.market(bad.address)
    assert (m.price, m.price_valid) == (0, False)
    with boa.env.prank(env.alice):
        with boa.reverts("oracle: feed call failed"):
            env.p.engine.borrow(env.usdc.address, 1)
        with boa.reverts("oracle: feed call failed"):
            env.p.engine.withdraw(env.eth.address, 1)
        with boa.reverts("oracle: feed call failed"):
            env.p.engine.transfer_collateral(bad.address, 1, 0, 1)
        # repay and withdraw without debt still work
        env.p.engine.repay(env.usdc.address, MAX_UINT)
        assert env.p.engine.withdraw(bad.address, MAX_UINT) == 5 * ETH_UNIT
    assert env.p.engine.health(env.alice) == (16_000 * WAD, 17_000 * WAD, True)


def test_reason_precedence(env):
    """Checks run in order: non-positive, bounds, completeness, staleness."""
    old = now() - 10_000
    env.eth.feed.set_round(0, old, old)  # non-positive and stale
    with boa.env.prank(env.alice), boa.reverts("oracle: non-positive price"):
        env.p.engine.borrow(env.usdc.address, 1)
    env.eth.feed.set_round(MAX_ANSWER + 1, old, 0)  # out of bounds, incomplete, stale
    with boa.env.prank(env.alice), boa.reverts("oracle: price out of bounds"):
        env.p.engine.borrow(env.usdc.address, 1)
    env.eth.feed.set_round(ETH_ANSWER, old, 0)  # incomplete (updatedAt 0) beats stale
    with boa.env.prank(env.alice), boa.reverts("oracle: incomplete round"):
        env.p.engine.borrow(env.usdc.address, 1)


def test_bounds_are_inclusive(env):
    env.eth.feed.set_answer(MAX_ANSWER)
    with boa.env.prank(env.alice):
        env.p.engine.borrow(env.usdc.address, 1)
    assert env.p.lens.market(env.eth.address).price_valid
    # at $100 the price is accepted, and the account is simply under water:
    # 10 * 100 * 0.8 = 800 < (1000 + 1e-6) * 1.2
    env.eth.feed.set_answer(MIN_ANSWER)
    assert env.p.engine.health(env.alice) == (800 * WAD - 1_200_000_001_200 * 10**9, 850 * WAD - 1_100_000_001_100 * 10**9, True)
    with boa.env.prank(env.alice), boa.reverts("health: below initial margin"):
        env.p.engine.borrow(env.usdc.address, 1)


# ---------------------------------------------------------------------------
# Staleness boundary
# ---------------------------------------------------------------------------


def test_staleness_boundary_by_time_travel(env):
    env.eth.feed.set_answer(ETH_ANSWER)  # a round at t0
    t0 = now()
    boa.env.time_travel(seconds=3600)
    assert now() - t0 == 3600  # exactly max_staleness old: accepted
    assert env.p.engine.health(env.alice)[2] is True
    assert env.p.lens.market(env.eth.address).price_valid
    with boa.env.prank(env.alice):
        env.p.engine.borrow(env.usdc.address, 1)
        env.p.engine.withdraw(env.eth.address, 1)
        env.p.engine.transfer_collateral(env.eth.address, 1, 0, 1)
    boa.env.time_travel(seconds=1)  # 3601 s old: rejected
    assert env.p.engine.health(env.alice)[2] is False
    assert not env.p.lens.market(env.eth.address).price_valid
    with boa.env.prank(env.alice):
        for action in ACTIONS.values():
            with boa.reverts("oracle: stale price"):
                action(env)


def test_staleness_boundary_by_round_timestamp(env):
    t = now() - 3600
    env.eth.feed.set_round(ETH_ANSWER, t, t)
    with boa.env.prank(env.alice):
        env.p.engine.borrow(env.usdc.address, 1)
    env.eth.feed.set_round(ETH_ANSWER, t - 1, t - 1)
    with boa.env.prank(env.alice), boa.reverts("oracle: stale price"):
        env.p.engine.borrow(env.usdc.address, 1)


def test_staleness_uses_updated_at_not_started_at(env):
    """A round started long ago but updated now is fresh."""
    env.eth.feed.set_round(ETH_ANSWER, now() - 100_000, now())
    with boa.env.prank(env.alice):
        env.p.engine.borrow(env.usdc.address, 1)


def test_bad_price_of_an_asset_not_held_does_not_block(env):
    wbtc = env.p.list_asset(AssetSpec("WBTC", decimals=8, price=60000))
    zero(wbtc.feed, 0)
    with boa.env.prank(env.alice):
        env.p.engine.borrow(env.usdc.address, 1_000 * USDC_UNIT)
    assert env.p.engine.health(env.alice) == (16_000 * WAD - 2_400 * WAD, 17_000 * WAD - 2_200 * WAD, True)


# ---------------------------------------------------------------------------
# Views never revert
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", list(BAD_ROUNDS))
def test_views_flag_bad_prices(env, bad):
    publish, _, used_answer = BAD_ROUNDS[bad]
    publish(env.eth.feed, ETH_ANSWER)
    if used_answer is None:  # non-positive: the asset counts at price 0
        expected_price = 0
        coll_i = coll_m = coll_le = 0
    else:  # otherwise the rejected price is still used, flagged
        expected_price = used_answer * 10**10  # 36 - 8 - 18
        value = 10 * ETH_UNIT * expected_price // WAD
        coll_i, coll_m, coll_le = value * 80 // 100, value * 85 // 100, value * 825 // 1000
    debt_i, debt_m, debt_le = 1_200 * WAD, 1_100 * WAD, 1_150 * WAD

    assert env.p.engine.health(env.alice) == (coll_i - debt_i, coll_m - debt_m, False)
    m = env.p.lens.market(env.eth.address)
    assert (m.price, m.price_valid) == (expected_price, False)
    assert env.p.lens.market(env.usdc.address).price_valid  # the other feed is fine
    h = env.p.lens.healths([(env.alice, 0), (env.lender, 0)])
    assert (h[0].initial, h[0].maintenance, h[0].liquidation_end, h[0].prices_valid) == (
        coll_i - debt_i,
        coll_m - debt_m,
        coll_le - debt_le,
        False,
    )
    assert h[0].ratio == coll_m * WAD // debt_m
    assert env.p.lens.health_ratio(env.alice) == coll_m * WAD // debt_m
    # the lender holds no ETH: its health stays valid
    assert (h[1].initial, h[1].prices_valid) == (80_000 * WAD, True)
    # max views report 0 rather than reverting
    assert env.p.lens.max_borrow(env.alice, 0, env.usdc.address) == 0
    assert env.p.lens.max_withdraw(env.alice, 0, env.eth.address) == 0
    # an account without debt may still withdraw all (no price needed)
    assert env.p.lens.max_withdraw(env.lender, 0, env.usdc.address) == 99_000 * USDC_UNIT


# ---------------------------------------------------------------------------
# Deposit and repay are never blocked
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", list(BAD_ROUNDS))
def test_deposit_and_repay_with_bad_prices(env, bad):
    publish, _, _ = BAD_ROUNDS[bad]
    publish(env.eth.feed, ETH_ANSWER)
    if bad in ("stale", "zero", "negative", "incomplete"):
        publish(env.usdc.feed, 10**8)  # both feeds bad
    e, a = env, env.alice
    with boa.env.prank(a):
        e.p.engine.deposit(e.eth.address, 2 * ETH_UNIT)
        e.p.engine.deposit(e.usdc.address, 50 * USDC_UNIT)
        assert e.p.engine.repay(e.usdc.address, 400 * USDC_UNIT) == 400 * USDC_UNIT
    assert e.p.engine.position(a, 0, e.eth.address) == (12 * ETH_UNIT, 0)
    assert e.p.engine.position(a, 0, e.usdc.address) == (50 * USDC_UNIT, 600 * USDC_UNIT)
    # a third party repays the rest (anyone may repay)
    e.p.fund(e.lender, e.usdc, 600 * USDC_UNIT)
    with boa.env.prank(e.lender):
        assert e.p.engine.repay(e.usdc.address, MAX_UINT, 0, a) == 600 * USDC_UNIT
    assert e.p.engine.position(a, 0, e.usdc.address) == (50 * USDC_UNIT, 0)
    assert e.p.engine.account_header(a, 0)[1] == 0  # no debt left
    # without debt, withdraw needs no price
    with boa.env.prank(a):
        assert e.p.engine.withdraw(e.eth.address, MAX_UINT) == 12 * ETH_UNIT
    assert e.eth.token.balanceOf(a) == 100 * ETH_UNIT


def test_18_decimal_feed_bounds_are_kept_with_8_decimals():
    """Answer bounds are stored with at most 8 decimals (bound scale 1e10 for an
    18-decimal feed): a $2000 answer can be bounded, and a bound that is not a
    multiple of the scale is refused."""
    p = Protocol.deploy()
    with boa.reverts("config: answer bounds invalid"):
        p.list_asset(AssetSpec("ETH18", feed_decimals=18, price=2000, max_answer=10**6 * 10**18 + 1))
    eth18 = p.list_asset(
        AssetSpec("ETH18", feed_decimals=18, price=2000, min_answer=100 * 10**18, max_answer=10**6 * 10**18)
    )
    m = p.lens.market(eth18.address)
    assert (m.price, m.price_valid) == (2000 * 10**18, True)  # 36 - 18 - 18 = 0
    assert p.lens.asset_config(eth18.address).risk.max_answer == 10**6 * 10**18
    eth18.feed.set_answer(10**6 * 10**18 + 1)  # one wei above the bound
    assert not p.lens.market(eth18.address).price_valid
    eth18.feed.set_answer(100 * 10**18 - 1)  # one wei below the lower bound
    assert not p.lens.market(eth18.address).price_valid