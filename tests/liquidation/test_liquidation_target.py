"""How far a liquidation goes: to the liquidation-end (LE) target and no
further, the liquidator's request, the maintenance ratio of a solvent
account, and the dust rules (a rest below the dust threshold is closed or
seized in full; a partial request that would leave dust reverts).

Weights (AssetSpec defaults): aw_i 0.80, aw_m 0.85, lw_i 1.20, lw_m 1.10, so
aw_le = 0.825 and lw_le = 1.15; dust threshold $10 (Protocol default).
Expected values: written out here, or from tests/liquidation/model.py.
"""

from fractions import Fraction

import boa
import pytest

from tests.liquidation.helpers import (
    MAX_UINT,
    PRICES,
    WAD,
    checked_liquidation,
    deploy_env,
    lens_preview,
    liquidate,
    load_state,
    mdd,
    mdu,
    open_account,
    set_prices,
)
from tests.liquidation.model import repay_for, seize_for

AW_LE = (8 * 10**17 + 85 * 10**16) // 2  # 0.825
LW_LE = (12 * 10**17 + 11 * 10**17 + 1) // 2  # 1.15
DUST = 10 * WAD

PAIRS = [("USDC", "WETH"), ("WETH", "WBTC"), ("WBTC", "USDC")]
PAIR_IDS = ["usdc6-weth18", "weth18-wbtc8", "wbtc8-usdc6"]
SOLVENT_DEPTHS = {"shallow": 0.99, "mid": 0.95, "deep": 0.88}


def open_pair(env, repay_sym, seize_sym, rho):
    """$20,000 of collateral, $13,000 of debt, one price moved so that the
    maintenance ratio is about rho (see test_liquidation_amounts)."""
    owner = open_account(env, "owner", {seize_sym: 20_000 / PRICES[seize_sym]}, {repay_sym: 13_000 / PRICES[repay_sym]})
    factor = rho * 14_300 / 17_000
    if seize_sym == "USDC":
        set_prices(env, **{repay_sym: PRICES[repay_sym] / factor})
    else:
        set_prices(env, **{seize_sym: PRICES[seize_sym] * factor})
    return owner


def le_health(env, owner, sub=0):
    return env.lens.healths([(owner, sub)])[0].liquidation_end


@pytest.mark.parametrize("depth", list(SOLVENT_DEPTHS))
@pytest.mark.parametrize("repay_sym,seize_sym", PAIRS, ids=PAIR_IDS)
def test_stops_at_liquidation_end_target(repay_sym, seize_sym, depth):
    env = deploy_env()
    owner = open_pair(env, repay_sym, seize_sym, SOLVENT_DEPTHS[depth])
    le_before = le_health(env, owner)
    assert le_before < 0 and env.engine.health(owner)[1] < 0
    expected, before, after = checked_liquidation(env, owner, repay_sym, MAX_UINT, seize_sym)
    r, s = before.markets[env.p[repay_sym].id], before.markets[env.p[seize_sym].id]
    debt = before.debt_amount(str(owner), 0, r.id)
    assert expected.repaid < debt  # a partial liquidation

    # The repaid value is the exact target -H_le / (lw_le - aw_le (1 + b)),
    # rounded down: never above it, and below it by less than one repay
    # unit plus the relative 1 / (g * 1e18) of plan()'s rounded-down
    # aw_le * (1 + b).
    b = expected.bonus
    g = Fraction(LW_LE, WAD) - Fraction(AW_LE, WAD) * Fraction(WAD + b, WAD)
    exact_target = Fraction(-le_before) / g
    repaid_value = Fraction(expected.repaid * r.price, WAD)
    assert repaid_value <= exact_target
    assert exact_target - repaid_value < Fraction(r.price, WAD) + exact_target * 2 / (g * WAD) + 1

    # Health after: LE back to zero within rounding, maintenance positive.
    le_after = le_health(env, owner)
    # USD WAD values (unit price / 1e18) of one unit at the LE weights.
    one_repay_unit = r.price * LW_LE // WAD // WAD + 1  # value of the repay floor
    one_seize_unit = s.price * AW_LE // WAD // WAD + 1  # value of the seize floor (account keeps it)
    assert -(one_repay_unit + 10**6) <= le_after <= one_seize_unit
    if seize_sym != "WBTC":
        # Fine seize units (USDC, WETH): strictly not beyond the target.
        assert le_after <= 0
    assert env.engine.health(owner)[1] > 0

    # Nothing more to do: the account is healthy again.
    with boa.reverts("liquidation: account is healthy"):
        liquidate(env, env.liquidator, owner, repay_sym, MAX_UINT, seize_sym)


# Rounding bound, by design (docs/risk-model.md, "Liquidation-end target"):
# the repay is capped at or below the exact target, then the seized amount
# rounds DOWN (seize_for, in the protocol's favour), so the account keeps
# less than one more unit of the seized asset than the exact target assumes
# and may end with LE health slightly above 0 - at most that unit's value
# times aw_le. Stopping exactly at 0 would need a seizure rounded up (a gift
# to the liquidator) or a cap lowered by that unit's worth (the account
# repaid less than the target). With WBTC (1 sat ~ $0.0005) the overshoot
# here is $0.0000628.
def test_liquidation_end_overshoot_is_below_one_seized_unit_with_8_decimal_collateral():
    env = deploy_env()
    owner = open_pair(env, "WETH", "WBTC", SOLVENT_DEPTHS["shallow"])
    le_before = le_health(env, owner)
    expected, before, after = checked_liquidation(env, owner, "WETH", MAX_UINT, "WBTC", check_preview=False)
    p_r, p_s = before.markets[env.weth.id].price, before.markets[env.wbtc.id].price
    b = expected.bonus
    # The seizure rounds down: the exact (1 + b) * repaid value, in sats, is
    # at least the seized amount and less than one sat above it.
    exact_seize = Fraction(expected.repaid * p_r, WAD) * Fraction(WAD + b, WAD) / Fraction(p_s, WAD)
    assert expected.seized <= exact_seize < expected.seized + 1
    # The repaid value never exceeds the exact target.
    g = Fraction(LW_LE, WAD) - Fraction(AW_LE, WAD) * Fraction(WAD + b, WAD)
    assert Fraction(expected.repaid * p_r, WAD) <= Fraction(-le_before) / g
    # LE health after: exactly the model's, above 0 by less than one sat's
    # liquidation-end value.
    le_after = le_health(env, owner)
    assert le_after == after.health(str(owner)).liquidation_end == 62_847_824_940_750
    one_sat_le_value = p_s * AW_LE // WAD // WAD  # USD WAD: 1 sat (WBTC at ~$49,967) * 0.825
    assert one_sat_le_value == 412_218_529_411_755
    assert 0 < le_after < one_sat_le_value


def test_repay_cap_never_above_the_exact_target():
    """Regression: plan() once rounded aw_le * (1 + b) UP, which shrank
    g = lw_le - loss and raised the cap a few wei of WETH above the exact
    target (in the liquidator's favour). An 18-decimal repay asset shows it."""
    env = deploy_env()
    owner = open_pair(env, "WETH", "WBTC", SOLVENT_DEPTHS["shallow"])
    le_before = le_health(env, owner)
    expected, before, _ = checked_liquidation(env, owner, "WETH", MAX_UINT, "WBTC", check_preview=False)
    g = Fraction(LW_LE, WAD) - Fraction(AW_LE, WAD) * Fraction(WAD + expected.bonus, WAD)
    repaid_value = Fraction(expected.repaid * before.markets[env.weth.id].price, WAD)
    assert repaid_value <= Fraction(-le_before) / g


def test_request_above_the_cap_repays_only_the_cap():
    env = deploy_env()
    owner = open_pair(env, "USDC", "WETH", 0.95)
    state = load_state(env, [owner])
    cap = state.copy().liquidate(str(owner), 0, env.usdc.id, env.weth.id, MAX_UINT).repaid
    request = cap + 1_000 * 10**6
    expected, _, _ = checked_liquidation(env, owner, "USDC", request, "WETH")
    assert expected.repaid == cap
    # The liquidator was funded with `request` and paid only the cap.
    assert env.usdc.token.balanceOf(env.liquidator) == request - cap


@pytest.mark.parametrize("fraction", [3, 10])
def test_smaller_request_repays_exactly_that(fraction):
    env = deploy_env()
    owner = open_pair(env, "USDC", "WETH", 0.95)
    state = load_state(env, [owner])
    cap = state.copy().liquidate(str(owner), 0, env.usdc.id, env.weth.id, MAX_UINT).repaid
    request = cap // fraction
    le_before = le_health(env, owner)
    expected, before, _ = checked_liquidation(env, owner, "USDC", request, "WETH")
    assert expected.repaid == request
    p_r, p_s = before.markets[env.usdc.id].price, before.markets[env.weth.id].price
    b = expected.bonus
    assert expected.seized == request * p_r // WAD * (WAD + b) // WAD * WAD // p_s
    # Part of the way to the target.
    assert le_before < le_health(env, owner) < 0
    # A second liquidation takes the rest, to the target (the bonus is
    # recomputed from the better ratio).
    second, _, _ = checked_liquidation(env, owner, "USDC", MAX_UINT, "WETH")
    assert second.bonus < b
    assert -(10**13) < le_health(env, owner) <= 0


SOLVENT_SCENARIOS = {
    # name: (deposits, borrows, prices after, repay, seize, request or None)
    "shallow": ({"WETH": 10}, {"USDC": 13_000}, {"WETH": 1665.53}, "USDC", "WETH", None),
    "deep": ({"WETH": 10}, {"USDC": 13_000}, {"WETH": 1480}, "USDC", "WETH", None),
    "cap-binding": ({"WETH": 10}, {"USDC": 13_000}, {"WETH": 1346}, "USDC", "WETH", None),
    "partial-request": ({"WETH": 10}, {"USDC": 13_000}, {"WETH": 1500}, "USDC", "WETH", 1_000 * 10**6),
    "cross-asset": ({"WETH": 10, "WBTC": 0.2}, {"USDC": 15_000, "WBTC": 0.1}, {"WETH": 1500}, "WBTC", "WETH", None),
    "cross-seize-btc": ({"WETH": 10, "WBTC": 0.2}, {"USDC": 15_000, "WBTC": 0.1}, {"WETH": 1500}, "USDC", "WBTC", None),
}


@pytest.mark.parametrize("name", list(SOLVENT_SCENARIOS))
def test_solvent_liquidation_never_lowers_the_maintenance_ratio(name):
    deposits, borrows, prices, repay_sym, seize_sym, request = SOLVENT_SCENARIOS[name]
    env = deploy_env()
    owner = open_account(env, "owner", deposits, borrows)
    set_prices(env, **prices)
    state = load_state(env, [owner])
    h = state.health(str(owner))
    assert h.maintenance < 0 and h.value >= 0  # liquidatable and solvent
    ratio_before = env.lens.health_ratio(owner)
    assert ratio_before == h.ratio
    expected, _, after = checked_liquidation(env, owner, repay_sym, request or MAX_UINT, seize_sym)
    ratio_after = env.lens.health_ratio(owner)
    assert ratio_after == after.health(str(owner)).ratio
    assert ratio_after >= ratio_before
    if name == "cap-binding":
        # The bonus is the solvency cap rho * lw_m / aw_m - 1 (< the Dutch 10%).
        assert expected.bonus == ratio_before * 11 * 10**17 // (85 * 10**16) - WAD < 10**17


# Regression: the solvency cap did not protect the ratio when it was <= 0.
# For a solvent account whose seized asset has a higher maintenance weight
# than rho * lw_m,r (here WBTC aw_m 0.95 vs rho 0.92 * lw_m 1.0), bonus()
# returned 0 and the liquidation went ahead at par, lowering the ratio from
# 0.92 to 0.80. rho' >= rho <=> (1 + b) * aw_m,s <= rho * lw_m,r, which no
# b >= 0 meets here: the pair is refused. A solvent account always has a
# pair that passes (the lowest-weight collateral against the highest-weight
# debt: min aw <= rho * max lw because value >= debt), here WETH.
def zero_bonus_env():
    env = deploy_env(
        overrides={
            "WBTC": dict(asset_weight_initial=9 * 10**17, asset_weight_maintenance=95 * 10**16),
            "WETH": dict(asset_weight_initial=4 * 10**17, asset_weight_maintenance=5 * 10**17),
            "USDC": dict(liability_weight_initial=10**18, liability_weight_maintenance=10**18),
        }
    )
    owner = open_account(env, "owner", {"WBTC": 1, "WETH": 30}, {"USDC": 75_000})
    set_prices(env, WETH=800)
    return env, owner


def test_pair_that_would_lower_a_solvent_accounts_ratio_is_refused():
    env, owner = zero_bonus_env()
    state = load_state(env, [owner])
    h = state.health(str(owner))
    # C_m = 60,000 * 0.95 + 24,000 * 0.5 = 69,000; D_m = 75,000: rho = 0.92;
    # value 84,000 >= 75,000: solvent. rho * lw_m,r = 0.92 < aw_m,s = 0.95.
    assert (h.collateral[1], h.debt[1], h.ratio) == (69_000 * WAD, 75_000 * WAD, 92 * 10**16)
    assert h.value == 9_000 * WAD
    plan, ratio, solvent = state.plan_for(str(owner), 0, env.usdc.id, env.wbtc.id, MAX_UINT)
    assert (plan.lowers_ratio, plan.repay, plan.seize, ratio, solvent) == (True, 0, 0, 92 * 10**16, True)
    env.p.fund(env.liquidator, env.usdc, 10**12)
    for request in (MAX_UINT, 1_000 * 10**6, 1):
        with boa.reverts("liquidation: seizing this asset lowers the health ratio"):
            liquidate(env, env.liquidator, owner, "USDC", request, "WBTC", fund=False)
    # The lens shows nothing to do with this pair.
    assert tuple(lens_preview(env, owner, 0, "USDC", "WBTC")) == (0, 0, 0)
    assert env.engine.position(owner, 0, env.wbtc.address)[0] == 10**8


def test_the_lower_weight_collateral_of_the_same_account_can_be_seized():
    env, owner = zero_bonus_env()
    ratio_before = env.lens.health_ratio(owner)
    expected, _, after = checked_liquidation(env, owner, "USDC", MAX_UINT, "WETH")
    # Dutch bonus at depth 1 - 0.92: 2% + (10% - 2%) * 0.08 / 0.10 = 8.4%,
    # below the solvency cap 0.92 * 1.0 / 0.5 - 1 = 84%.
    assert expected.bonus == 84 * 10**15
    assert not expected.plan.lowers_ratio
    assert env.lens.health_ratio(owner) == after.health(str(owner)).ratio > ratio_before


# ---------------------------------------------------------------------------
# Dust
# ---------------------------------------------------------------------------


def debt_dust_account(env):
    """2 WETH against 1,000 USDC + 0.02 WBTC; at WETH $1,364 the LE target
    of (USDC, WETH) repays 994.66 USDC, leaving $5.34 (< $10 dust)."""
    owner = open_account(env, "owner", {"WETH": 2}, {"USDC": 1_000, "WBTC": 0.02})
    set_prices(env, WETH=1364)
    return owner


def test_debt_rest_below_dust_is_closed_in_full():
    env = deploy_env()
    owner = debt_dust_account(env)
    state = load_state(env, [owner])
    plan, _, _ = state.plan_for(str(owner), 0, env.usdc.id, env.weth.id, MAX_UINT)
    debt = 1_000 * 10**6
    p_usdc = state.markets[env.usdc.id].price
    # Written out: the target cap leaves less than the dust threshold ...
    assert plan.target_cap < debt and mdu(debt - plan.target_cap, p_usdc, WAD) < DUST
    # ... so the whole USDC debt is repaid.
    expected, _, _ = checked_liquidation(env, owner, "USDC", MAX_UINT, "WETH")
    assert expected.repaid == debt and expected.repaid_shares == debt
    deposit_bits, debt_bits, _ = env.engine.account_header(owner, 0)
    assert debt_bits == 1 << env.wbtc.id  # USDC debt closed, WBTC debt left
    assert env.engine.position(owner, 0, env.usdc.address) == (0, 0)


def test_debt_rest_of_exactly_the_dust_threshold_is_not_closed():
    """Found by the mutation table (`dust-threshold-off-by-one` survived
    every test): a rest worth exactly the threshold is no dust, so the
    liquidation stops at the LE target; one unit of USD WAD more threshold
    and the whole debt is repaid. The threshold is set to the rest the
    target leaves (about $5.34), measured on a first deployment."""
    probe = deploy_env()
    owner = debt_dust_account(probe)
    state = load_state(probe, [owner])
    plan, _, _ = state.plan_for(str(owner), 0, probe.usdc.id, probe.weth.id, MAX_UINT)
    debt = 1_000 * 10**6
    rest = mdu(debt - plan.target_cap, state.markets[probe.usdc.id].price, WAD)
    assert 5 * WAD < rest < 6 * WAD

    env = deploy_env(dust_threshold=rest)
    owner = debt_dust_account(env)
    expected, _, _ = checked_liquidation(env, owner, "USDC", MAX_UINT, "WETH")
    assert expected.repaid == plan.target_cap < debt

    env = deploy_env(dust_threshold=rest + 1)
    owner = debt_dust_account(env)
    expected, _, _ = checked_liquidation(env, owner, "USDC", MAX_UINT, "WETH")
    assert expected.repaid == debt


def test_partial_request_leaving_debt_dust_reverts():
    env = deploy_env()
    owner = debt_dust_account(env)
    env.p.fund(env.liquidator, env.usdc, 10**12)
    for request in (1_000 * 10**6 - 1, 990_000_001):  # rests $0.000001 and $9.999999
        with boa.reverts("liquidation: leaves dust"):
            liquidate(env, env.liquidator, owner, "USDC", request, "WETH", fund=False)
    # A rest of exactly the threshold is not dust.
    expected, _, _ = checked_liquidation(env, owner, "USDC", 990 * 10**6, "WETH")
    assert expected.repaid == 990 * 10**6
    assert env.engine.position(owner, 0, env.usdc.address)[1] == 10 * 10**6


def deposit_dust_account(env):
    """0.1 WETH + 0.01 WBTC against 530 USDC; at WBTC $47,292 the LE target
    of (USDC, WETH) repays 183.57 USDC and would seize 0.09500 WETH, leaving
    0.005 WETH = $9.985 (< $10 dust)."""
    owner = open_account(env, "owner", {"WETH": 0.1, "WBTC": 0.01}, {"USDC": 530})
    set_prices(env, WBTC=47_292)
    return owner


def test_deposit_rest_below_dust_is_seized_in_full():
    env = deploy_env()
    owner = deposit_dust_account(env)
    state = load_state(env, [owner])
    plan, _, _ = state.plan_for(str(owner), 0, env.usdc.id, env.weth.id, MAX_UINT)
    deposit = 10**17
    p_usdc, p_weth = state.markets[env.usdc.id].price, state.markets[env.weth.id].price
    b = plan.bonus
    target_seize = seize_for(plan.target_cap, p_usdc, p_weth, b)
    assert target_seize < deposit and mdd(deposit - target_seize, p_weth, WAD) < DUST
    expected, _, _ = checked_liquidation(env, owner, "USDC", MAX_UINT, "WETH")
    # The whole deposit, paid for: repay = value of 0.1 WETH / (1 + b), rounded up.
    assert expected.seized == deposit
    assert expected.repaid == mdu(mdu(mdu(deposit, p_weth, WAD), WAD, WAD + b), WAD, p_usdc)
    assert expected.repaid > plan.target_cap  # beyond the LE target, by the dust rule
    assert env.engine.position(owner, 0, env.weth.address) == (0, 0)
    deposit_bits, _, _ = env.engine.account_header(owner, 0)
    assert deposit_bits == 1 << env.wbtc.id


def test_partial_request_leaving_deposit_dust_reverts():
    env = deploy_env()
    owner = deposit_dust_account(env)
    state = load_state(env, [owner])
    plan, _, _ = state.plan_for(str(owner), 0, env.usdc.id, env.weth.id, MAX_UINT)
    p_usdc, p_weth = state.markets[env.usdc.id].price, state.markets[env.weth.id].price
    full = repay_for(10**17, p_usdc, p_weth, plan.bonus)
    env.p.fund(env.liquidator, env.usdc, 10**12)
    # Short of the LE target cap, leaving less than $10 of WETH: reverts.
    request = plan.target_cap - 1
    assert mdd(10**17 - seize_for(request, p_usdc, p_weth, plan.bonus), p_weth, WAD) < DUST
    with boa.reverts("liquidation: leaves dust"):
        liquidate(env, env.liquidator, owner, "USDC", request, "WETH", fund=False)
    # Enough to buy the whole deposit: it is seized in full.
    expected, _, _ = checked_liquidation(env, owner, "USDC", full, "WETH")
    assert (expected.repaid, expected.seized) == (full, 10**17)


# BUG: (minor) a request from the LE cap up to one unit below the deposit's
# full price leaves a deposit below the dust threshold behind, without
# reverting. plan() only checks `leaves_dust` when `requested < cap`, but the
# dust rule allows up to `full` = repay_for(deposit) here: the request is
# "smaller than allowed", and liquidation.vy's glossary says such a request
# "that would leave dust on one side reverts". Here $9.985 of WETH stays.
@pytest.mark.parametrize("at", ["cap", "full-1"])
def test_request_between_cap_and_full_price_does_not_leave_deposit_dust(at):
    env = deploy_env()
    owner = deposit_dust_account(env)
    state = load_state(env, [owner])
    plan, _, _ = state.plan_for(str(owner), 0, env.usdc.id, env.weth.id, MAX_UINT)
    p_usdc, p_weth = state.markets[env.usdc.id].price, state.markets[env.weth.id].price
    full = repay_for(10**17, p_usdc, p_weth, plan.bonus)
    request = plan.target_cap if at == "cap" else full - 1
    assert plan.target_cap <= request < full
    env.p.fund(env.liquidator, env.usdc, 10**12)
    with boa.reverts("liquidation: leaves dust"):
        liquidate(env, env.liquidator, owner, "USDC", request, "WETH", fund=False)


def test_dust_threshold_is_per_deployment():
    """With a $1 threshold the same $9.985 rest is no dust: the liquidation
    stops at the LE target."""
    env = deploy_env(dust_threshold=WAD)
    owner = deposit_dust_account(env)
    state = load_state(env, [owner])
    plan, _, _ = state.plan_for(str(owner), 0, env.usdc.id, env.weth.id, MAX_UINT)
    expected, _, _ = checked_liquidation(env, owner, "USDC", MAX_UINT, "WETH")
    assert expected.repaid == plan.target_cap and expected.seized < 10**17
    assert env.engine.position(owner, 0, env.weth.address)[0] == 10**17 - expected.seized


def test_preview_of_a_healthy_account_below_its_liquidation_end_target_is_empty():
    """Found by the mutation table (`lens-preview-skips-health-gate`
    survived every test): at WETH $1,750 an account with 10 WETH and 13,000
    USDC of debt is healthy at maintenance (8.5 * 1,750 - 1.1 * 13,000 =
    +575) but below its liquidation-end target (8.25 * 1,750 - 1.15 *
    13,000 = -512.5), so the liquidation plan alone is not empty. The
    engine refuses the liquidation, and the lens preview must answer
    (0, 0, 0) rather than quote that plan."""
    env = deploy_env()
    alice = open_account(env, "alice", {"WETH": 10}, {"USDC": 13_000})
    set_prices(env, WETH=1750)
    _initial, maintenance, valid = env.engine.health(alice, 0)
    assert valid and maintenance == 575 * WAD
    h = env.engine.weighted_health(alice, 0, 2**64 - 1, 14)  # maintenance, liquidation end, value
    assert (h.collateral[2], h.debt[2]) == (17_500 * AW_LE, 13_000 * LW_LE)
    assert h.collateral[2] < h.debt[2]  # below the target: a gate-less preview would quote a plan
    assert tuple(lens_preview(env, alice, 0, "USDC", "WETH")) == (0, 0, 0)
    with boa.reverts("liquidation: account is healthy"):
        liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
