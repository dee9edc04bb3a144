"""KeeperFlashLiquidator (contracts/, the keeper's flash mode) on titanoboa:
the keeper liquidates without holding the repay token, the seized
collateral is sold on MockDex inside the engine's callback, the keeper gets
the surplus, the contract keeps nothing and leaves no allowance behind; its
guards (keeper only, engine only, started here, minimum profit, swap short).
The anvil end-to-end run is tests/keeper/test_flash.py.
"""

import boa
import pytest

from tests.liquidation.helpers import (
    HERE,
    MAX_UINT,
    assert_identity,
    assert_matches_chain,
    deploy_env,
    load_state,
    one_event,
    open_account,
    set_prices,
)
from tests.protocol import ZERO_ADDRESS, deployer

WETH_USDC_RATE = 1400 * 10**6  # 1 WETH -> 1,400 USDC, the oracle price after the drop


@pytest.fixture
def env():
    """Alice (10 WETH / 13,000 USDC) is liquidatable and solvent at WETH
    $1,400; the keeper holds no tokens."""
    e = deploy_env()
    e.alice = open_account(e, "alice", {"WETH": 10}, {"USDC": 13_000})
    set_prices(e, WETH=1400)
    e.dex = boa.load_partial(str(HERE / "contracts" / "MockDex.vy")).deploy()
    e.dex.set_rate(e.weth.address, e.usdc.address, WETH_USDC_RATE)
    e.keeper = boa.env.generate_address("keeper")
    e.flash = deployer("KeeperFlashLiquidator.vy").deploy(e.engine.address, e.dex.address, e.keeper)
    return e


def flash_liquidate(env, min_profit=0, repay_amount=MAX_UINT, repay="usdc", seize="weth", caller=None):
    with boa.env.prank(caller or env.keeper):
        return env.flash.liquidate(
            env.alice, 0, getattr(env, repay).address, repay_amount, getattr(env, seize).address, 0, min_profit
        )


@pytest.mark.parametrize("which", [0, 1, 2])
def test_constructor_refuses_a_zero_address(env, which):
    args = [env.engine.address, env.dex.address, env.keeper]
    args[which] = ZERO_ADDRESS
    with boa.reverts("flash: zero address"):
        deployer("KeeperFlashLiquidator.vy").deploy(*args)


def test_flash_liquidation_sends_the_surplus_to_the_keeper_and_keeps_nothing(env):
    state = load_state(env, [env.alice])
    expected = state.liquidate(str(env.alice), 0, env.usdc.id, env.weth.id, MAX_UINT)
    assert env.usdc.token.balanceOf(env.keeper) == 0
    repaid, profit = flash_liquidate(env)
    ev = one_event(env.flash, "FlashLiquidation")
    swapped = expected.to_liquidator * WETH_USDC_RATE // 10**18
    assert (repaid, profit) == (expected.repaid, swapped - expected.repaid)
    assert profit > 0
    assert env.usdc.token.balanceOf(env.keeper) == profit
    # Nothing stays in the contract, and no allowance outlives the call.
    for a in (env.usdc, env.weth):
        assert a.token.balanceOf(env.flash.address) == 0
    assert env.weth.token.allowance(env.flash.address, env.dex.address) == 0
    assert env.usdc.token.allowance(env.flash.address, env.engine.address) == 0
    assert (ev.owner, ev.repay_asset, ev.seize_asset, ev.sub_id) == (
        env.alice,
        env.usdc.address,
        env.weth.address,
        0,
    )
    assert (ev.repaid, ev.seized, ev.profit) == (expected.repaid, expected.to_liquidator, profit)
    assert_matches_chain(env, state, [env.alice])
    assert_identity(env)


def test_profit_below_the_minimum_reverts_everything(env):
    before = load_state(env, [env.alice])
    expected = load_state(env, [env.alice]).liquidate(str(env.alice), 0, env.usdc.id, env.weth.id, MAX_UINT)
    profit = expected.to_liquidator * WETH_USDC_RATE // 10**18 - expected.repaid
    with boa.reverts("flash: profit below minimum"):
        flash_liquidate(env, min_profit=profit + 1)
    assert_matches_chain(env, before, [env.alice])
    # Exactly the minimum is accepted.
    assert flash_liquidate(env, min_profit=profit)[1] == profit


def test_a_swap_that_returns_less_than_the_repayment_reverts(env):
    """The DEX pays 1,000 USDC per WETH: the seized ~9.8 WETH cannot cover
    the ~11,900 USDC repaid."""
    env.dex.set_rate(env.weth.address, env.usdc.address, 1000 * 10**6)
    state = load_state(env, [env.alice])
    with boa.reverts("flash: swap short"):
        flash_liquidate(env)
    assert_matches_chain(env, state, [env.alice])


def test_only_the_keeper_starts_a_liquidation_or_sweeps(env):
    stranger = boa.env.generate_address("stranger")
    with boa.reverts("flash: caller is not the keeper"):
        flash_liquidate(env, caller=stranger)
    with boa.env.prank(stranger), boa.reverts("flash: caller is not the keeper"):
        env.flash.sweep(env.usdc.address, 0)


def test_the_callback_only_serves_the_engine_and_a_liquidation_started_here(env):
    args = (env.alice, 0, env.usdc.address, 1, env.weth.address, 1, b"\x01")
    with boa.reverts("flash: caller is not the engine"):
        env.flash.on_liquidation(*args)
    # The engine calling outside a liquidate() started here (the transient
    # flag is off) is refused too.
    with boa.env.prank(env.engine.address), boa.reverts("flash: not started here"):
        env.flash.on_liquidation(*args)


def test_same_asset_flash_liquidation_skips_the_swap(env):
    """Bob borrows WETH against WETH and USDC; seizing the WETH that repays
    his WETH debt needs no DEX: the seized WETH pays the repayment and the
    bonus is the keeper's."""
    set_prices(env, WETH=2000)
    bob = open_account(env, "bob", {"WETH": 5, "USDC": 20_000}, {"WETH": 8})
    # USDC at $0.45: maintenance 8,500 + 7,650 < 8 * 2,000 * 1.1 = 17,600,
    # still solvent (19,000 > 16,000).
    set_prices(env, USDC=0.45)
    env.alice = bob
    state = load_state(env, [bob])
    expected = state.liquidate(str(bob), 0, env.weth.id, env.weth.id, MAX_UINT, nets_same_asset=False)
    repaid, profit = flash_liquidate(env, repay="weth", seize="weth")
    assert (repaid, profit) == (expected.repaid, expected.to_liquidator - expected.repaid)
    assert profit > 0
    assert env.weth.token.balanceOf(env.keeper) == profit
    assert env.weth.token.balanceOf(env.dex.address) == 0  # no swap happened
    assert env.weth.token.balanceOf(env.flash.address) == 0
    assert_matches_chain(env, state, [bob])


def test_keeper_sweeps_tokens_sent_by_mistake(env):
    env.usdc.token.mint(env.flash.address, 123)
    with boa.env.prank(env.keeper):
        env.flash.sweep(env.usdc.address, 123)
    assert env.usdc.token.balanceOf(env.flash.address) == 0
    assert env.usdc.token.balanceOf(env.keeper) == 123
