"""Liquidating a debt and a deposit in the same asset.

The engine moves only the net amount when the repaid and the seized asset
are the same, the receiver is the liquidator and there is no callback, so
a pool lent out almost to its last unit can still be liquidated: the
repayment funds the seizure. (Found by a random differential run: the
engine sent the seized tokens before pulling the repayment, and the token
transfer failed though the net flow fit the pool's liquidity.)
"""

from __future__ import annotations

import boa
import pytest

from tests.liquidation.helpers import (
    checked_liquidation,
    deploy_env,
    deposit,
    load_state,
    next_block,
    open_account,
    set_prices,
)
from tests.liquidation.model import ModelRevert


def nearly_lent_out_weth_pool():
    """Alice: 10 WETH + 1 WBTC deposited, 20 WETH borrowed; Bob borrows the
    WETH pool down to 0.1 WETH of liquidity; WBTC then falls to $25,000:
    Alice is liquidatable (maintenance 38,250 < 44,000) and still solvent."""
    env = deploy_env(liquidity={"WETH": 20, "WBTC": 50, "USDC": 1_000_000})
    alice = open_account(env, "alice", {"WETH": 10, "WBTC": 1}, {"WETH": 20})
    open_account(env, "bob", {"USDC": 100_000}, {"WETH": 9.9})
    set_prices(env, WBTC=25_000.0)
    return env, alice


def weth_balance(env, who) -> int:
    return env.weth.token.balanceOf(who)


def test_same_asset_liquidation_moves_only_the_net_flow():
    env, alice = nearly_lent_out_weth_pool()
    pool = weth_balance(env, env.engine.address)
    assert pool == env.weth.units(0.1)
    # One WETH repaid buys ~1.05 WETH: more than the pool holds, but the net
    # outflow (the bonus) fits.
    expected, _, _ = checked_liquidation(env, alice, "WETH", env.weth.units(1), "WETH", check_preview=False)
    assert expected.to_liquidator > pool > expected.to_liquidator - expected.repaid > 0
    assert weth_balance(env, env.engine.address) == pool - (expected.to_liquidator - expected.repaid)


def test_same_asset_liquidation_needs_no_inventory_when_it_nets_out():
    env, alice = nearly_lent_out_weth_pool()
    assert weth_balance(env, env.liquidator) == 0
    expected, _, _ = checked_liquidation(
        env, alice, "WETH", env.weth.units(1), "WETH", check_preview=False, fund=False
    )
    assert weth_balance(env, env.liquidator) == expected.to_liquidator - expected.repaid > 0


def test_same_asset_liquidation_to_another_receiver_moves_both_legs():
    """With another receiver both legs move: the seizure first, which this
    pool cannot pay before the repayment arrives. The engine refuses it by
    its own liquidity check (counting the repaid debt as still lent out),
    not by the token's transfer failing; the reference model predicts it."""
    env, alice = nearly_lent_out_weth_pool()
    receiver = boa.env.generate_address("receiver")
    env.p.fund(env.liquidator, env.weth, env.weth.units(1))
    state = load_state(env, [alice])
    with pytest.raises(ModelRevert, match="market: insufficient liquidity"):
        state.copy().liquidate(str(alice), 0, env.weth.id, env.weth.id, env.weth.units(1), nets_same_asset=False)
    # The netting call of the same request lands (the test above).
    state.copy().liquidate(str(alice), 0, env.weth.id, env.weth.id, env.weth.units(1))
    with boa.env.prank(env.liquidator):
        with boa.reverts("market: insufficient liquidity"):
            env.engine.liquidate(alice, 0, env.weth.address, env.weth.units(1), env.weth.address, 0, receiver)


def test_same_asset_liquidation_to_another_receiver_lands_when_the_pool_pays_first():
    """The same two-leg liquidation lands once the pool holds the seizure
    before the repayment: a lender adds 5 WETH."""
    env, alice = nearly_lent_out_weth_pool()
    deposit(env, env.lender, "WETH", env.weth.units(5))
    next_block()
    receiver = boa.env.generate_address("receiver")
    state = load_state(env, [alice])
    expected = state.liquidate(str(alice), 0, env.weth.id, env.weth.id, env.weth.units(1), nets_same_asset=False)
    env.p.fund(env.liquidator, env.weth, env.weth.units(1))
    with boa.env.prank(env.liquidator):
        got = env.engine.liquidate(alice, 0, env.weth.address, env.weth.units(1), env.weth.address, 0, receiver)
    assert tuple(got) == (expected.repaid, expected.to_liquidator)
    assert weth_balance(env, receiver) == expected.to_liquidator
    assert weth_balance(env, env.liquidator) == 0
