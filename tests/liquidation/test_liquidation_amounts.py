"""Liquidation amounts: bonus, seized amount, insurance share and health
after, at several depths below maintenance and for token decimals 6, 8 and
18 (the repaid and the seized asset always of different decimals).

Every expected number is computed in Python from the formulas of
modules/liquidation.vy and margin.vy: written out inline for the bonus
(Dutch auction on the maintenance ratio and the solvency cap) and the
seized amount, and through tests/liquidation/model.py (an independent
integer re-implementation) for everything else, which
`checked_liquidation` compares with the chain: return values, the
Liquidation event, the same-block lens preview, token balances, insurance
funds, every storage word written and the health after.
"""

import boa
import pytest

from tests.liquidation.helpers import (
    MAX_UINT,
    PRICES,
    WAD,
    checked_liquidation,
    deploy_env,
    deposit,
    lens_preview,
    load_state,
    mdd,
    mdu,
    next_block,
    open_account,
    set_prices,
)

COLLATERAL_USD = 20_000
DEBT_USD = 13_000
AW_I, AW_M, LW_I, LW_M = 8 * 10**17, 85 * 10**16, 12 * 10**17, 11 * 10**17  # AssetSpec defaults
MIN_BONUS, MAX_BONUS, FULL_DEPTH = 2 * 10**16, 10 * 10**16, 10 * 10**16
INSURANCE_SHARE = 10 * 10**16

# (repay asset, seize asset): 6 -> 18, 18 -> 8 and 8 -> 6 decimals.
PAIRS = [("USDC", "WETH"), ("WETH", "WBTC"), ("WBTC", "USDC")]
# Target maintenance ratios rho = C_m / D_m.
DEPTHS = {"shallow": 0.99, "mid": 0.95, "deep": 0.88, "capped": 0.80, "insolvent": 0.70}


def open_pair(env, repay_sym, seize_sym, rho):
    """An owner with $20,000 of `seize_sym` and $13,000 of `repay_sym` debt
    (initial health >= 0), then one price moved so that the maintenance
    ratio is about `rho`: 0.85 * 20,000 * f / (1.1 * 13,000) = rho."""
    owner = open_account(
        env,
        "owner",
        {seize_sym: COLLATERAL_USD / PRICES[seize_sym]},
        {repay_sym: DEBT_USD / PRICES[repay_sym]},
    )
    factor = rho * (DEBT_USD * 1.1) / (COLLATERAL_USD * 0.85)
    if seize_sym == "USDC":
        set_prices(env, **{repay_sym: PRICES[repay_sym] / factor})  # the debt's price rises
    else:
        set_prices(env, **{seize_sym: PRICES[seize_sym] * factor})  # the collateral's price falls
    return owner


def unit_price(env, sym):
    """answer * 10**(36 - feed decimals - token decimals), from the feed."""
    a = env.p[sym]
    return a.feed.latestAnswer() * 10 ** (36 - a.spec.feed_decimals - a.spec.decimals)


def written_out_bonus(deposit, p_s, debt, p_r):
    """The bonus of a one-collateral, one-debt account, written out:
    rho = C_m / D_m (collateral rounds down, debt up), depth = 1 - rho,
    b = b_min + (b_max - b_min) * min(depth, depth_full) / depth_full, capped
    for a solvent account at rho * lw_m,r / aw_m,s - 1 (0 when <= 0).
    Returns (rho, dutch bonus, cap or None, bonus, solvent)."""
    c_value = deposit * p_s // WAD
    d_value = -(-debt * p_r // WAD)
    c_m = c_value * AW_M // WAD
    d_m = -(-d_value * LW_M // WAD)
    rho = c_m * WAD // d_m
    depth = WAD - rho
    dutch = MIN_BONUS + (MAX_BONUS - MIN_BONUS) * min(depth, FULL_DEPTH) // FULL_DEPTH
    solvent = c_value >= d_value
    if not solvent:
        return rho, dutch, None, dutch, solvent
    cap = rho * LW_M // AW_M
    b = 0 if cap <= WAD else min(dutch, cap - WAD)
    return rho, dutch, cap - WAD, b, solvent


@pytest.mark.parametrize("depth", list(DEPTHS))
@pytest.mark.parametrize("repay_sym,seize_sym", PAIRS, ids=["usdc6-weth18", "weth18-wbtc8", "wbtc8-usdc6"])
def test_amounts_by_depth_and_decimals(repay_sym, seize_sym, depth):
    env = deploy_env()
    owner = open_pair(env, repay_sym, seize_sym, DEPTHS[depth])
    r, s = env.p[repay_sym], env.p[seize_sym]
    deposit = env.engine.position(owner, 0, s.address)[0]  # shares == units (indexes 1.0)
    debt = env.engine.position(owner, 0, r.address)[1]
    p_r, p_s = unit_price(env, repay_sym), unit_price(env, seize_sym)
    rho, dutch, cap, b, solvent = written_out_bonus(deposit, p_s, debt, p_r)
    assert env.lens.health_ratio(owner) == rho

    expected, before, after = checked_liquidation(env, owner, repay_sym, MAX_UINT, seize_sym)
    assert expected.bonus == b

    if depth == "shallow":
        assert rho > 98 * 10**16 and MIN_BONUS < b < 3 * 10**16 and b == dutch
    elif depth == "mid":
        assert b == dutch and 55 * 10**15 < b < 65 * 10**15
    elif depth == "deep":
        assert b == MAX_BONUS == dutch and cap > MAX_BONUS
    elif depth == "capped":
        assert solvent and cap < dutch == MAX_BONUS and b == cap
    else:
        # Insolvent: the full (uncapped) maximum bonus, though the solvency
        # cap would be negative; the whole deposit goes.
        assert not solvent and b == MAX_BONUS and rho * LW_M // AW_M < WAD
        assert expected.seized == deposit
        assert env.engine.position(owner, 0, s.address) == (0, 0)
        assert env.engine.position(owner, 0, r.address) == (0, debt - expected.repaid_shares)

    # The seized amount written out: repay value * (1 + b) in seize units.
    if expected.seized < deposit:
        value = expected.repaid * p_r // WAD
        exact = value * (WAD + b) // WAD * WAD // p_s
        if depth == "capped":
            # At the solvency cap the seizure gives up the few units the
            # engine's share and value roundings could cost the ratio
            # (liquidation.plan_for): k_s = 2 + di // WAD = 3 units at
            # di = 1.0, plus what the repaid side's roundings (k_r = 3
            # units of it and a few wei) are worth: at most 2 more units
            # (none when the seize asset's units are worth far less).
            assert exact - 5 <= expected.seized <= exact
        else:
            assert expected.seized == exact
    else:
        # The deposit ran out: the repay is what buys it, rounded up (at
        # most the debt).
        assert expected.repaid == min(debt, mdu(mdu(mdu(deposit, p_s, WAD), WAD, WAD + b), WAD, p_r))
    base = mdd(mdd(expected.repaid, p_r, WAD), WAD, p_s)
    assert expected.to_insurance == (expected.seized - base) * INSURANCE_SHARE // WAD

    if solvent and expected.seized < deposit:
        # Back to the liquidation-end target, maintenance > 0. The repay is
        # capped below the exact target, so the health can only end above 0
        # through the seized amount's rounding down (< 1 seize-asset unit,
        # in the account's favour; see test_liquidation_target.py).
        h = after.health(str(owner))
        assert h.maintenance > 0
        aw_le, lw_le = (AW_I + AW_M) // 2, (LW_I + LW_M + 1) // 2
        assert -(p_r * lw_le // WAD + 10**6) <= h.liquidation_end <= p_s * aw_le // WAD
        assert env.engine.health(owner)[1] > 0


def test_seize_amount_written_out_usdc_for_weth():
    """The shallow USDC -> WETH case in full: 10 WETH at $1,665.53 against
    13,000 USDC; every step of the bonus and the target written out."""
    env = deploy_env()
    owner = open_account(env, "owner", {"WETH": 10}, {"USDC": 13_000})
    set_prices(env, WETH=1665.53)
    p_weth = 166553000000 * 10 ** (36 - 8 - 18)
    p_usdc = 100000000 * 10 ** (36 - 8 - 6)
    c_m = 10 * 10**18 * p_weth // WAD * AW_M // WAD  # 14,157.005
    d_m = 13_000 * 10**18 * LW_M // WAD  # 14,300
    assert (c_m, d_m) == (14_157_005 * 10**15, 14_300 * 10**18)
    rho = c_m * WAD // d_m
    b = MIN_BONUS + (MAX_BONUS - MIN_BONUS) * (WAD - rho) // FULL_DEPTH
    assert b == 27999720279720280  # 2.8%: the depth is 0.99
    # Liquidation-end health and the repay that brings it to zero.
    aw_le, lw_le = (AW_I + AW_M) // 2, (LW_I + LW_M + 1) // 2
    le = 10 * 10**18 * p_weth // WAD * aw_le // WAD - 13_000 * 10**18 * lw_le // WAD
    g = lw_le - mdd(aw_le, WAD + b, WAD)  # loss per unit rounded down: a smaller cap
    v = -le * WAD // g
    repay = v * WAD // p_usdc
    seize = repay * p_usdc // WAD * (WAD + b) // WAD * WAD // p_weth
    to_insurance = (seize - repay * p_usdc // WAD * WAD // p_weth) * INSURANCE_SHARE // WAD
    assert lens_preview(env, owner, 0, "USDC", "WETH") == (
        repay, seize - to_insurance, b
    )
    env.p.fund(env.liquidator, env.usdc, repay)
    with boa.env.prank(env.liquidator):
        out = env.engine.liquidate(owner, 0, env.usdc.address, MAX_UINT, env.weth.address, 0)
    assert out == (repay, seize - to_insurance)
    assert (repay, seize, to_insurance) == (4005884649, 2472515234576876703, 6734411847569569)
    assert env.usdc.token.balanceOf(env.liquidator) == 0
    assert env.weth.token.balanceOf(env.liquidator) == seize - to_insurance
    # Health after, written out: 10 WETH - seize, 13,000 USDC - repay.
    left_weth, left_usdc = 10 * 10**18 - seize, 13_000 * 10**6 - repay
    coll_value = left_weth * p_weth // WAD
    debt_value = left_usdc * p_usdc // WAD
    h_i = coll_value * AW_I // WAD - debt_value * LW_I // WAD
    h_m = coll_value * AW_M // WAD - debt_value * LW_M // WAD
    h_le = coll_value * aw_le // WAD - debt_value * lw_le // WAD
    assert env.engine.health(owner) == (h_i, h_m, True)
    assert env.lens.healths([(owner, 0)])[0].liquidation_end == h_le
    assert -(10**13) < h_le <= 0  # within a fraction of a cent of the target
    assert h_m > 0


@pytest.mark.parametrize("share_bp", [0, 2_500, 10_000])
def test_insurance_share_of_the_bonus(share_bp):
    """to_insurance = (seized - repay value in seize units) * share; the
    seize asset's insurance fund (lens.market) grows by exactly that, the
    repay asset's does not move (indexes 1.0: no rounding)."""
    share = share_bp * 10**14
    env = deploy_env(overrides={"WETH": dict(insurance_share=share)})
    owner = open_account(env, "owner", {"WETH": 10}, {"USDC": 13_000})
    set_prices(env, WETH=1500)
    fund_weth = env.lens.market(env.weth.address).insurance_fund
    fund_usdc = env.lens.market(env.usdc.address).insurance_fund
    expected, _, _ = checked_liquidation(env, owner, "USDC", MAX_UINT, "WETH")
    ev = expected.event
    p_weth, p_usdc = 1500 * 10**8 * 10**10, 10**8 * 10**22
    base = ev.repaid * p_usdc // WAD * WAD // p_weth
    assert ev.to_insurance == (ev.seized - base) * share // WAD
    assert env.lens.market(env.weth.address).insurance_fund == fund_weth + ev.to_insurance
    assert env.lens.market(env.usdc.address).insurance_fund == fund_usdc
    assert env.weth.token.balanceOf(env.liquidator) == ev.seized - ev.to_insurance
    if share_bp == 10_000:
        # The whole bonus to the fund: the liquidator gets the repaid value only.
        assert ev.seized - ev.to_insurance == base
    if share_bp == 0:
        assert ev.to_insurance == 0
    assert ev.to_insurance == expected.to_insurance


@pytest.mark.parametrize("repay_sym,seize_sym", PAIRS, ids=["usdc6-weth18", "weth18-wbtc8", "wbtc8-usdc6"])
def test_amounts_with_accrued_interest(repay_sym, seize_sym):
    """Interest on (default kinked rates), 60 days later: indexes are no
    longer 1.0, so shares burned round (repay down, seize up) and the
    liquidation accrues both markets. The model predicts every word; the
    same-block preview equals the liquidation; the seize asset's fund grows
    by to_insurance plus the seized-shares rounding (at most one index unit)."""
    env = deploy_env(rates=True)
    # Borrowers of every asset so that each has a moving index.
    open_account(env, "other", {"USDC": 400_000}, {"WETH": 50, "WBTC": 2})
    open_account(env, "other2", {"WETH": 200}, {"USDC": 150_000})
    owner = open_pair(env, repay_sym, seize_sym, 1.05)
    boa.env.time_travel(seconds=60 * 86400)
    env.p.refresh_prices()
    # Debt interest has pushed the ratio down; push it below maintenance.
    factor = 0.9
    if seize_sym == "USDC":
        set_prices(env, **{repay_sym: env.p[repay_sym].feed.latestAnswer() / 10**8 / factor})
    else:
        set_prices(env, **{seize_sym: env.p[seize_sym].feed.latestAnswer() / 10**8 * factor})
    state = load_state(env, [owner])
    m_r, m_s = state.markets[env.p[repay_sym].id], state.markets[env.p[seize_sym].id]
    assert m_r.borrow_index_now(state.now) > WAD and m_s.indexes_now(state.now)[0] > WAD
    fund_s = env.lens.market(env.p[seize_sym].address).insurance_fund
    expected, before, after = checked_liquidation(env, owner, repay_sym, MAX_UINT, seize_sym)
    growth = env.lens.market(env.p[seize_sym].address).insurance_fund - fund_s
    di = expected.deposit_index
    assert expected.to_insurance <= growth <= expected.to_insurance + di // WAD + 1
    assert expected.repaid_shares == min(expected.repaid * WAD // expected.borrow_index, before.pos(str(owner), 0, m_r.id)[1])
    assert expected.seized_shares == mdu(expected.seized, WAD, di)


def test_preview_equals_liquidation_in_the_same_block():
    """Cross-margin account (two collaterals, two debts): for every pair
    lens.preview_liquidation equals what liquidate then does."""
    env = deploy_env()
    owner = open_account(env, "owner", {"WETH": 10, "WBTC": 0.5}, {"USDC": 20_000, "WETH": 3})
    set_prices(env, WETH=1800, WBTC=25_000)
    assert env.engine.health(owner)[1] < 0
    snapshot = load_state(env, [owner])
    for repay_sym in ("USDC", "WETH"):
        for seize_sym in ("WETH", "WBTC"):
            with boa.env.anchor():
                preview = lens_preview(env, owner, 0, repay_sym, seize_sym)
                model = snapshot.copy().liquidate(str(owner), 0, env.p[repay_sym].id, env.p[seize_sym].id, MAX_UINT)
                assert tuple(preview) == (model.repaid, model.to_liquidator, model.bonus)
                expected, _, _ = checked_liquidation(env, owner, repay_sym, MAX_UINT, seize_sym)
                assert (expected.repaid, expected.to_liquidator, expected.bonus) == tuple(preview)
    next_block()


def test_same_asset_repaid_and_seized():
    """WETH debt repaid with WETH collateral (the account also holds WBTC,
    whose fall makes it liquidatable): both sides on one market."""
    env = deploy_env()
    owner = open_account(env, "owner", {"WETH": 5, "WBTC": 0.5}, {"WETH": 12})
    set_prices(env, WBTC=30_000)
    assert env.engine.health(owner)[1] < 0
    ratio_before = env.lens.health_ratio(owner)
    expected, before, after = checked_liquidation(env, owner, "WETH", MAX_UINT, "WETH")
    # Solvent: b is the solvency cap rho * 1.1 / 0.85 - 1 (< 10%), and the
    # whole WETH deposit goes, paid at that bonus.
    assert expected.bonus == ratio_before * LW_M // AW_M - WAD
    assert expected.seized == 5 * WAD
    assert expected.repaid == mdu(mdu(mdu(5 * WAD, 2000 * 10**28, WAD), WAD, WAD + expected.bonus), WAD, 2000 * 10**28)
    assert env.engine.position(owner, 0, env.weth.address) == (0, 12 * WAD - expected.repaid_shares)
    assert env.lens.health_ratio(owner) >= ratio_before


def test_sub_account_is_liquidated_alone():
    """Sub-account 3 is liquidatable, sub-account 0 of the same owner is not
    touched (isolated margin)."""
    env = deploy_env()
    owner = open_account(env, "owner", {"WETH": 10}, {"USDC": 1_000})  # sub 0: safe
    deposit(env, owner, "WETH", 10 * WAD, sub=3)
    with boa.env.prank(owner):
        env.engine.borrow(env.usdc.address, 13_000 * 10**6, 3)
    next_block()
    set_prices(env, WETH=1500)
    assert env.engine.health(owner, 0)[1] > 0 and env.engine.health(owner, 3)[1] < 0
    with boa.reverts("liquidation: account is healthy"):
        env.p.fund(env.liquidator, env.usdc, 10**12)
        with boa.env.prank(env.liquidator):
            env.engine.liquidate(owner, 0, env.usdc.address, MAX_UINT, env.weth.address, 0)
    sub0 = load_state(env, [owner]).positions[(str(owner), 0)]
    expected, _, _ = checked_liquidation(env, owner, "USDC", MAX_UINT, "WETH", sub=3)
    assert expected.event.sub_id == 3
    assert load_state(env, [owner]).positions[(str(owner), 0)] == sub0


def test_liquidation_during_a_maintenance_ramp():
    """The owner lowers WETH's maintenance asset weight 0.85 -> 0.80; it
    ramps in over a day. Half-way (aw_m 0.825) the account is liquidatable
    at a ramped weight: the bonus cap and the LE midpoint use it."""
    env = deploy_env()
    owner = open_account(env, "owner", {"WETH": 10}, {"USDC": 13_000})
    sp = env.weth.spec
    with boa.env.prank(env.p.owner):
        env.p.configurator.set_risk_params(
            env.weth.address,
            (AW_I, 80 * 10**16, LW_I, LW_M, sp.max_staleness, 0, sp.bound_scale, (2**64 - 1) * sp.bound_scale),
        )
    boa.env.time_travel(seconds=43_200)
    env.p.refresh_prices()
    set_prices(env, WETH=1700)
    assert env.lens.asset_config(env.weth.address).asset_weight_maintenance_now == 825 * 10**15
    # 10 * 1,700 * 0.825 = 14,025 < 14,300; at the old 0.85 it would be healthy.
    assert env.engine.health(owner)[1] == 14_025 * WAD - 14_300 * WAD
    expected, _, _ = checked_liquidation(env, owner, "USDC", MAX_UINT, "WETH")
    rho = 14_025 * WAD * WAD // (14_300 * WAD)
    dutch = MIN_BONUS + (MAX_BONUS - MIN_BONUS) * (WAD - rho) // FULL_DEPTH
    assert expected.bonus == min(dutch, rho * LW_M // (825 * 10**15) - WAD)


def test_preview_is_zero_when_not_liquidatable_and_ignores_delays():
    env = deploy_env(liquidation_grace_period=3600)
    owner = open_account(env, "owner", {"WETH": 10}, {"USDC": 13_000})
    assert lens_preview(env, owner, 0, "USDC", "WETH") == (0, 0, 0)  # healthy
    set_prices(env, WETH=1500)
    assert lens_preview(env, owner, 0, "WBTC", "WETH") == (0, 0, 0)  # no WBTC debt
    assert lens_preview(env, owner, 0, "USDC", "WBTC") == (0, 0, 0)  # no WBTC deposit
    live = lens_preview(env, owner, 0, "USDC", "WETH")
    assert live[0] > 0
    # Delay rules are not applied by the preview: a guardian pause ...
    with boa.env.prank(env.p.guardian):
        env.engine.pause_liquidations(600)
    assert lens_preview(env, owner, 0, "USDC", "WETH") == live
    boa.env.time_travel(seconds=2 * 3600)
    # ... but a rejected (stale) price zeroes it.
    assert lens_preview(env, owner, 0, "USDC", "WETH") == (0, 0, 0)
    env.weth.set_price(1500)
    env.usdc.set_price(1.0)
    # Fresh again, inside the post-staleness grace period: a preview, no liquidation.
    assert lens_preview(env, owner, 0, "USDC", "WETH") == live
    env.p.fund(env.liquidator, env.usdc, 10**12)
    with boa.env.prank(env.liquidator):
        with boa.reverts("liquidation: price grace period"):
            env.engine.liquidate(owner, 0, env.usdc.address, MAX_UINT, env.weth.address, 0)
