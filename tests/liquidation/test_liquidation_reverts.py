"""Every revert reason of MarginEngine.liquidate, each in its own test and
each next to the smallest change that makes the same call succeed (so the
revert is proven to come from that one condition)."""

import boa
import pytest

from tests.liquidation.helpers import (
    MAX_UINT,
    WAD,
    checked_liquidation,
    deploy_env,
    deposit,
    liquidate,
    load_state,
    next_block,
    open_account,
    set_prices,
)
from tests.protocol import load_mock


@pytest.fixture
def env():
    """Alice: 10 WETH against 13,000 USDC; WETH at $1,500 makes her
    liquidatable (maintenance 12,750 - 14,300 < 0)."""
    e = deploy_env()
    e.alice = open_account(e, "alice", {"WETH": 10}, {"USDC": 13_000})
    set_prices(e, WETH=1500)
    assert e.engine.health(e.alice)[1] < 0
    e.p.fund(e.liquidator, e.usdc, 10**12)
    return e


def test_self_liquidation(env):
    env.p.fund(env.alice, env.usdc, 10**12)
    with boa.reverts("liquidation: self-liquidation"):
        liquidate(env, env.alice, env.alice, "USDC", MAX_UINT, "WETH", fund=False)
    # Also for another sub-account of the same owner.
    deposit(env, env.alice, "WETH", 10**18, sub=1)
    with boa.env.prank(env.alice):
        env.engine.borrow(env.usdc.address, 1_000 * 10**6, 1)
    next_block()
    set_prices(env, WETH=100)
    with boa.reverts("liquidation: self-liquidation"):
        liquidate(env, env.alice, env.alice, "USDC", MAX_UINT, "WETH", sub=1, fund=False)


def test_zero_repay_amount(env):
    with boa.reverts("liquidation: zero repay amount"):
        liquidate(env, env.liquidator, env.alice, "USDC", 0, "WETH", fund=False)
    # Alice is solvent: a one-unit repay is worth less than the rounding
    # margin of the solvency cap in token units (a few units of each
    # asset), so nothing is left to seize; one USDC is enough.
    with boa.reverts("liquidation: nothing to seize"):
        liquidate(env, env.liquidator, env.alice, "USDC", 1, "WETH")
    checked_liquidation(env, env.alice, "USDC", 10**6, "WETH")


def test_no_debt_in_repay_asset(env):
    with boa.reverts("liquidation: no debt in repay asset"):
        liquidate(env, env.liquidator, env.alice, "WBTC", MAX_UINT, "WETH")
    with boa.reverts("liquidation: no debt in repay asset"):
        liquidate(env, env.liquidator, env.alice, "WETH", MAX_UINT, "WETH")


def test_no_deposit_in_seize_asset(env):
    with boa.reverts("liquidation: no deposit in seize asset"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "WBTC", fund=False)
    with boa.reverts("liquidation: no deposit in seize asset"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "USDC", fund=False)


def test_asset_not_listed(env):
    stray = load_mock("MockERC20", "X", "X", 18)
    with boa.env.prank(env.liquidator):
        with boa.reverts("asset: not listed"):
            env.engine.liquidate(env.alice, 0, stray.address, MAX_UINT, env.weth.address, 0)
        with boa.reverts("asset: not listed"):
            env.engine.liquidate(env.alice, 0, env.usdc.address, MAX_UINT, stray.address, 0)


@pytest.mark.parametrize("action", ["borrow", "withdraw", "transfer", "batch-borrow"])
def test_cool_off_after_a_health_lowering_action(action):
    """The account's own borrow / withdraw / transfer (with debt) stamps the
    block; a liquidation in that block reverts, in the next one it works."""
    env = deploy_env()
    bob = open_account(env, "bob", {"WETH": 10}, {"USDC": 10_000})
    with boa.env.prank(bob):
        if action == "borrow":
            env.engine.borrow(env.usdc.address, 1_000 * 10**6)
        elif action == "withdraw":
            env.engine.withdraw(env.weth.address, 10**18)
        elif action == "transfer":
            env.engine.transfer_collateral(env.weth.address, 10**18, 0, 1)
        else:
            env.engine.batch([(2, env.usdc.address, 1_000 * 10**6, bob, 0)])
    assert env.engine.account_header(bob, 0)[2] == boa.env.evm.patch.block_number
    set_prices(env, WETH=1000)  # same block: the price crashes
    assert env.engine.health(bob)[1] < 0
    with boa.reverts("liquidation: cool-off (same block as a health-lowering action)"):
        liquidate(env, env.liquidator, bob, "USDC", MAX_UINT, "WETH")
    next_block()
    checked_liquidation(env, bob, "USDC", MAX_UINT, "WETH")


def test_deposit_and_repay_do_not_start_a_cool_off(env):
    """Deposit and repay never lower health: they leave the stamp alone."""
    stamp = env.engine.account_header(env.alice, 0)[2]
    env.p.fund(env.alice, env.usdc, 10**6)
    env.p.fund(env.alice, env.weth, 10**15)
    with boa.env.prank(env.alice):
        env.engine.repay(env.usdc.address, 10**6)
        env.engine.deposit(env.weth.address, 10**15)
    assert env.engine.account_header(env.alice, 0)[2] == stamp
    checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH")


def test_cool_off_of_one_sub_account_does_not_cover_another(env):
    deposit(env, env.alice, "WETH", 10**18, sub=1)
    with boa.env.prank(env.alice):
        env.engine.borrow(env.usdc.address, 10**6, 1)  # stamps sub-account 1 only
    checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH")


def test_account_is_healthy(env):
    set_prices(env, WETH=1700)  # 14,450 >= 14,300
    assert env.engine.health(env.alice)[1] >= 0
    with boa.reverts("liquidation: account is healthy"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "WETH", fund=False)
    # An account without any debt.
    with boa.reverts("liquidation: no debt in repay asset"):
        liquidate(env, env.liquidator, env.lender, "USDC", MAX_UINT, "WETH", fund=False)
    set_prices(env, WETH=1682)  # 14,297 < 14,300
    checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH")


def test_seized_amount_below_minimum(env):
    expected = load_state(env, [env.alice]).liquidate(str(env.alice), 0, env.usdc.id, env.weth.id, MAX_UINT)
    with boa.reverts("liquidation: seized amount below minimum"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "WETH", min_seize=expected.to_liquidator + 1)
    result, _, _ = checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH", min_seize=expected.to_liquidator)
    assert result.to_liquidator == expected.to_liquidator


def test_nothing_to_seize(env):
    """1 USDC unit ($0.000001) buys less than one satoshi: nothing to seize."""
    bob = open_account(env, "bob", {"WBTC": 1}, {"USDC": 40_000})
    set_prices(env, WBTC=45_000)
    with boa.reverts("liquidation: nothing to seize"):
        liquidate(env, env.liquidator, bob, "USDC", 1, "WBTC", fund=False)
    checked_liquidation(env, bob, "USDC", 10**6, "WBTC")


def test_repay_below_one_share():
    """With the USDC borrow index above 1.0 (interest on), repaying one
    unit burns 1e18 // index = 0 borrow shares: refused. (Alice is
    insolvent at $1,200: no solvency-cap margin, one unit buys WETH.)"""
    env = deploy_env(rates=True)
    alice = open_account(env, "alice", {"WETH": 10}, {"USDC": 13_000})
    boa.env.time_travel(seconds=30 * 86400)
    env.p.refresh_prices()
    set_prices(env, WETH=1200)
    state = load_state(env, [alice])
    assert state.markets[env.usdc.id].borrow_index_now(state.now) > WAD
    with boa.reverts("liquidation: repay below one share"):
        liquidate(env, env.liquidator, alice, "USDC", 1, "WETH")
    checked_liquidation(env, alice, "USDC", 2, "WETH")


def test_paused(env):
    with boa.env.prank(env.p.guardian):
        env.engine.pause_liquidations(3600)
    with boa.reverts("liquidation: paused"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "WETH", fund=False)
    with boa.env.prank(env.p.owner):
        env.p.configurator.unpause_liquidations()
    checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH")


def test_price_grace_period():
    env = deploy_env(liquidation_grace_period=3600)
    alice = open_account(env, "alice", {"WETH": 10}, {"USDC": 13_000})
    boa.env.time_travel(seconds=2 * 3600)  # every feed goes stale
    set_prices(env, WETH=1500, USDC=1.0)  # first fresh rounds after the gap
    with boa.reverts("liquidation: price grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    boa.env.time_travel(seconds=3600)
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


def test_stale_price(env):
    boa.env.time_travel(seconds=3601)
    with boa.reverts("oracle: stale price"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "WETH", fund=False)
    # The USDC feed alone stale is enough (every asset of the account is priced).
    env.weth.set_price(1500)
    with boa.reverts("oracle: stale price"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "WETH", fund=False)
    env.usdc.set_price(1.0)
    checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH")


def test_other_oracle_rejections(env):
    feed = env.weth.feed
    feed.set_answer(0)
    with boa.reverts("oracle: non-positive price"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "WETH", fund=False)
    feed.set_round(1500 * 10**8, boa.env.evm.patch.timestamp, 0)
    with boa.reverts("oracle: incomplete round"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "WETH", fund=False)
    feed.set_answer(2**64)  # above the AssetSpec max_answer (2**64 - 1)
    with boa.reverts("oracle: price out of bounds"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "WETH", fund=False)
    env.weth.set_price(1500)
    checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH")


def test_sequencer_down_and_grace_period():
    env = deploy_env(sequencer=True, sequencer_grace=3600)
    alice = open_account(env, "alice", {"WETH": 10}, {"USDC": 13_000})
    set_prices(env, WETH=1500)
    env.p.sequencer.set_status(True)
    with boa.reverts("oracle: sequencer down"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    boa.env.time_travel(seconds=60)
    env.p.sequencer.set_status(False)
    env.p.refresh_prices()
    with boa.reverts("oracle: sequencer grace period"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    boa.env.time_travel(seconds=3601)
    env.p.refresh_prices()
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")


def test_insufficient_liquidity_when_the_seized_asset_is_borrowed_out(env):
    """Bob borrows every WETH deposited (alice's 10 + the lender's 1,000):
    seizing alice's WETH would leave borrows above deposits."""
    bob = open_account(env, "bob", {"USDC": 20_000_000}, {})
    total_weth = env.lens.market(env.weth.address).total_deposits
    assert total_weth == 1_010 * 10**18
    with boa.env.prank(bob):
        env.engine.borrow(env.weth.address, total_weth)
    next_block()
    set_prices(env, USDC=1.0, WETH=1500)
    with boa.reverts("market: insufficient liquidity"):
        liquidate(env, env.liquidator, env.alice, "USDC", MAX_UINT, "WETH", fund=False)
    # Once Bob returns some WETH the seizure goes through.
    env.p.fund(bob, env.weth, 10 * WAD)
    with boa.env.prank(bob):
        env.engine.repay(env.weth.address, 10 * WAD)
    checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH")


def test_repay_tokens_missing(env):
    """Without a callback the engine pulls the repayment at the end: a
    liquidator without tokens or allowance reverts."""
    poor = boa.env.generate_address("poor")
    with boa.env.prank(poor):
        with boa.reverts("ERC20: insufficient allowance"):
            env.engine.liquidate(env.alice, 0, env.usdc.address, MAX_UINT, env.weth.address, 0)
        env.usdc.token.approve(env.engine.address, MAX_UINT)
        with boa.reverts("ERC20: insufficient balance"):
            env.engine.liquidate(env.alice, 0, env.usdc.address, MAX_UINT, env.weth.address, 0)


def test_zero_receiver(env):
    with boa.env.prank(env.liquidator):
        with boa.reverts("token: zero receiver"):
            env.engine.liquidate(
                env.alice, 0, env.usdc.address, MAX_UINT, env.weth.address, 0, "0x" + "00" * 20
            )


def test_asset_pauses_do_not_block_liquidation(env):
    """The guardian's per-asset pauses (deposit, withdraw, borrow, transfer)
    stop users, not liquidations: only pause_liquidations does."""
    with boa.env.prank(env.p.guardian):
        env.engine.pause(env.weth.address, 2 | 4 | 8 | 16)
        env.engine.pause(env.usdc.address, 2 | 4 | 8 | 16)
    with boa.env.prank(env.alice):
        with boa.reverts("pause: withdraw paused"):
            env.engine.withdraw(env.weth.address, 1)
    checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH")
