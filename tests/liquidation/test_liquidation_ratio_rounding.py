"""A liquidation at exactly the solvency cap must not lower a solvent
account's maintenance ratio, by rounding either.

The bonus of a solvent account is capped at b <= rho * lw_m,r / aw_m,s - 1
(liquidation.bonus; docs/risk-model.md, "Solvency cap"). That cap holds for
exact values only. In token units the engine burns floor(repay * WAD / bi)
debt shares (the debt falls by up to 1 + bi / WAD units less than
`repay`), burns ceil(seize * WAD / di) deposit shares unless it takes the
whole deposit, and the health rounds each asset's collateral value down and
its debt value up. Here the whole 8-decimal WBTC deposit is seized (exact)
and the 6-decimal USDT debt, at a borrow index above 1.0 after three days
of interest, would fall by less than its value at the cap: before the fix
the ratio dropped from 0.793153387172405732 to 0.793153387141567874 (what
the invariant machine found, tests/invariants/test_regressions.py::
test_liquidation_at_the_solvency_cap_keeps_a_solvent_ratio). The plan now
raises the repay by the few units the roundings can cost (against the
liquidator).
"""

from __future__ import annotations

import boa
import pytest

from tests.liquidation.helpers import WAD, checked_liquidation, deploy_env, load_state, open_account, set_prices
from tests.liquidation.model import MAINTENANCE, weights
from tests.protocol import MAX_UINT

# The invariant machine's listing (tests/invariants/world.py on branch inv).
OVERRIDES = {
    "USDC": dict(
        asset_weight_initial=9 * 10**17,
        asset_weight_maintenance=95 * 10**16,
        liability_weight_initial=11 * 10**17,
        liability_weight_maintenance=105 * 10**16,
        min_bonus=10**16,
        max_bonus=5 * 10**16,
    ),
    "WBTC": dict(imf=5 * 10**14),
    "WETH": dict(price=3_000.0, min_bonus=0, max_bonus=8 * 10**16),
    "USDT": dict(decimals=6, price=1.0, token_kind="usdt"),
}


def solvent_account_at_the_cap():
    """WETH $9,000 + 0.15 WBTC collateral, 11,500 USDT + 300 USDC debt,
    three days of interest (indexes above 1.0), then USDT at $1.50."""
    env = deploy_env(
        symbols=("USDC", "WBTC", "WETH", "USDT"),
        rates=True,
        overrides=OVERRIDES,
        liquidity={"USDC": 1_000_000, "USDT": 1_000_000, "WETH": 0, "WBTC": 0},
    )
    owner = open_account(env, "owner", {"WETH": 3, "WBTC": 0.15}, {"USDT": 11_500, "USDC": 300})
    boa.env.time_travel(seconds=3 * 86_400)
    set_prices(env, USDT=1.5, USDC=1.0, WETH=3_000.0, WBTC=60_000.0)
    return env, owner


def test_liquidation_at_the_solvency_cap_does_not_lower_the_ratio():
    env, owner = solvent_account_at_the_cap()
    state = load_state(env, [owner])
    h = state.health(str(owner))
    assert h.maintenance < 0 and h.value >= 0  # liquidatable and solvent
    ratio_before = env.lens.health_ratio(owner)
    assert ratio_before == h.ratio == 793_153_387_172_405_732
    usdt, wbtc = state.markets[env.usdt.id], state.markets[env.wbtc.id]
    # USDT debt shares round at a borrow index above 1.0 (WBTC has no borrows: di = 1.0).
    assert (usdt.borrow_index_now(state.now), wbtc.di) == (1_000_004_726_246_093_560, WAD)
    expected, _, after = checked_liquidation(env, owner, "USDT", MAX_UINT, "WBTC")
    # The bonus sits exactly at the solvency cap rho * lw_m,r / aw_m,s - 1.
    aw_m = weights(wbtc.risk, wbtc.ramp, MAINTENANCE, state.now)[0]
    lw_m = weights(usdt.risk, usdt.ramp, MAINTENANCE, state.now)[1]
    assert expected.bonus == ratio_before * lw_m // aw_m - WAD
    # The whole 0.15 WBTC deposit is seized (the deposit runs out first):
    # 14,961,371 units to the liquidator, the rest to the insurance fund.
    # The repay at the exact cap would be 5,845,481,734 USDT units; the
    # token-unit rule raises it by 3 (k_r = 2 + bi // WAD and the value
    # roundings) so that the ratio cannot fall.
    assert expected.plan.seize_all
    assert (expected.repaid, expected.seized, expected.to_liquidator) == (5_845_481_737, 15_000_000, 14_961_371)
    ratio_after = env.lens.health_ratio(owner)
    assert ratio_after == after.health(str(owner)).ratio
    assert ratio_after >= ratio_before
