# pragma version 0.4.3
"""
@title liquidation
@license MIT
@notice Pure math of a partial liquidation: the health-scaled bonus and
        how much may be repaid and seized.

        Glossary (WAD = 1e18 = 1.0; values in USD WAD):
          rho      maintenance health ratio = C_m / D_m (< 1: liquidatable)
          b        liquidation bonus on the repaid value
          H_le     liquidation-end health (the target type, between
                   initial and maintenance: the midpoint weights, playing
                   the role of Mango v4's LiquidationEnd health type)
          P_r,P_s  unit prices of the repaid and the seized asset
          lw_r     liability weight of the repaid asset
          aw_s     asset weight of the seized asset

        Bonus (a Dutch auction on health; Euler v2's discount, Aave v4's
        health-scaled bonus):
          depth = 1 - rho
          b = b_min + (b_max - b_min) * min(depth, depth_full) / depth_full
        capped, for a solvent account (collateral value >= debt value), so
        that its maintenance ratio never falls (an insolvent account gets
        the uncapped bonus, so that it is still liquidated):
          rho' >= rho  <=>  (1 + b) * aw_m,s <= rho * lw_m,r
          b <= rho * lw_m,r / aw_m,s - 1
        for every repaid amount alike; a pair for which even b = 0 fails
        (rho * lw_m,r < aw_m,s, with rho rounded down) is refused
        (Plan.lowers_ratio). The lowest-weight collateral against the
        highest-weight debt always passes for a solvent account.
        The cap holds for exact values; in token units the share and value
        roundings could still lower the ratio by a few wei, so plan_for
        then clamps the seizure (or, when the whole deposit goes, raises the
        repay) until dC * D <= dD * C holds for bounds of the engine's
        roundings (dC collateral lost, dD debt removed, both
        maintenance-weighted): see plan_for and debt_removed.

        Repay to the target: repaying value v and seizing v * (1 + b)
        changes H_le by v * (lw_le,r - (1 + b) * aw_le,s) = v * g, so
          v_target = -H_le / g      (g > 0; else no cap below the debt)
        Dust (USD, per deployment): a repaid debt whose rest would be below
        dust is repaid in full; a seized deposit whose rest would be below
        dust is seized in full when the debt pays its full price; a request
        smaller than allowed (below the cap, or below that full price) that
        would leave dust on one side reverts (Plan.leaves_dust).

        Rounding, always against the liquidator: the repay cap and the seized
        amount round down; the repay needed for a capped seizure rounds up.
        So H_le ends at most one seized unit's liquidation-end value above
        0 (the account keeps the rounded-down remainder).
        A plan whose seizure equals the deposit (valued at the stored index)
        sets Plan.seize_all: the engine burns every deposit share.

        Liquidation word (one slot per asset, used for the seized asset):
          bits  0-15 minimum bonus (bp)
          bits 16-31 maximum bonus (bp)
          bits 32-47 depth of the maximum bonus, 1 - rho (bp)
          bits 48-63 share of the bonus paid to the insurance fund (bp)
@custom:security Pure; the engine supplies prices it has validated.
"""

from . import fixed_point
from . import margin

WAD: constant(uint256) = fixed_point.WAD
BPS_TO_WAD: constant(uint256) = 10**14
MASK16: constant(uint256) = 2**16 - 1
MASK128: constant(uint256) = 2**128 - 1


struct LiquidationParams:
    min_bonus: uint256  # WAD
    max_bonus: uint256  # WAD
    full_bonus_depth: uint256  # WAD of (1 - health ratio)
    insurance_share: uint256  # WAD share of the bonus


struct Plan:
    repay: uint256  # token units of the repaid asset
    seize: uint256  # token units of the seized asset taken from the account
    to_insurance: uint256  # part of `seize` kept as insurance fund
    bonus: uint256  # WAD
    leaves_dust: bool  # a request short of what the rules allow would leave dust
    seize_all: bool  # the whole deposit is seized: every deposit share is burned
    lowers_ratio: bool  # refused: a solvent account's maintenance ratio would fall


@internal
@pure
def pack(p: LiquidationParams) -> uint256:
    return (
        p.min_bonus // BPS_TO_WAD
        | (p.max_bonus // BPS_TO_WAD) << 16
        | (p.full_bonus_depth // BPS_TO_WAD) << 32
        | (p.insurance_share // BPS_TO_WAD) << 48
    )


@internal
@pure
def unpack(word: uint256) -> LiquidationParams:
    return LiquidationParams(
        min_bonus=(word & MASK16) * BPS_TO_WAD,
        max_bonus=((word >> 16) & MASK16) * BPS_TO_WAD,
        full_bonus_depth=((word >> 32) & MASK16) * BPS_TO_WAD,
        insurance_share=((word >> 48) & MASK16) * BPS_TO_WAD,
    )


@internal
@pure
def bonus(ratio: uint256, p: LiquidationParams, aw_seize: uint256, lw_repay: uint256) -> uint256:
    """
    @notice Health-scaled bonus (WAD), rounded down.
    @param ratio Maintenance health ratio C_m / D_m (WAD), < 1.
    @param p Parameters of the seized asset.
    @param aw_seize Maintenance asset weight of the seized asset (WAD).
    @param lw_repay Maintenance liability weight of the repaid asset (WAD).
    """
    depth: uint256 = WAD - min(ratio, WAD)
    b: uint256 = p.min_bonus
    if p.max_bonus > p.min_bonus:
        if depth >= p.full_bonus_depth:
            b = p.max_bonus
        else:
            b += (p.max_bonus - p.min_bonus) * depth // p.full_bonus_depth
    if aw_seize != 0:
        cap: uint256 = ratio * lw_repay // aw_seize
        if cap <= WAD:
            return 0
        b = min(b, cap - WAD)
    return b


@internal
@pure
def seize_for(repay: uint256, price_repay: uint256, price_seize: uint256, b: uint256) -> uint256:
    """
    @notice Token units of the seized asset worth `repay` * (1 + b), rounded down.
    """
    value: uint256 = fixed_point.mul_div_down(repay, price_repay, WAD)
    return fixed_point.mul_div_down(fixed_point.mul_div_down(value, WAD + b, WAD), WAD, price_seize)


@internal
@pure
def repay_for(seize: uint256, price_repay: uint256, price_seize: uint256, b: uint256) -> uint256:
    """
    @notice Token units of the repaid asset whose value * (1 + b) buys
            `seize`, rounded up.
    """
    value: uint256 = fixed_point.mul_div_up(seize, price_seize, WAD)
    return fixed_point.mul_div_up(fixed_point.mul_div_up(value, WAD, WAD + b), WAD, price_repay)


@internal
@pure
def plan(
    le_health: int256,
    debt: uint256,
    deposit: uint256,
    price_repay: uint256,
    price_seize: uint256,
    lw_le_repay: uint256,
    aw_le_seize: uint256,
    b: uint256,
    insurance_share: uint256,
    dust: uint256,
    requested: uint256,
) -> Plan:
    """
    @notice Amounts of a liquidation.
    @param le_health Liquidation-end health before (USD WAD, may be >= 0
           only by rounding; then nothing may be repaid but dust).
    @param debt Account debt in the repaid asset (token units).
    @param deposit Account deposit in the seized asset (token units).
    @param price_repay Unit price of the repaid asset.
    @param price_seize Unit price of the seized asset.
    @param lw_le_repay Liquidation-end liability weight of the repaid asset.
    @param aw_le_seize Liquidation-end asset weight of the seized asset.
    @param b Bonus (WAD).
    @param insurance_share WAD share of the bonus to the insurance fund.
    @param dust USD WAD below which a remainder counts as dust.
    @param requested The liquidator's maximum repay (token units).
    """
    # Repay needed to bring H_le to zero, rounded down (never beyond the target).
    cap: uint256 = debt
    gain: uint256 = lw_le_repay
    # Round the loss per unit down: a larger denominator, a smaller cap.
    loss: uint256 = fixed_point.mul_div_down(aw_le_seize, WAD + b, WAD)
    if le_health >= 0:
        cap = 0
    elif gain > loss:
        value: uint256 = convert(-le_health, uint256) * WAD // (gain - loss)
        cap = min(debt, value * WAD // price_repay)
    # Dust rule on the debt side: a rest below dust may be repaid in full.
    if fixed_point.mul_div_up(debt - cap, price_repay, WAD) < dust:
        cap = debt
    repay: uint256 = min(cap, requested)
    leaves_dust: bool = False
    seize: uint256 = self.seize_for(repay, price_repay, price_seize, b)
    if seize >= deposit:
        # The deposit runs out first: take all of it, paying only for it.
        seize = deposit
        repay = min(repay, self.repay_for(seize, price_repay, price_seize, b))
    elif fixed_point.mul_div_down(deposit - seize, price_seize, WAD) < dust:
        # Dust rule on the collateral side: seize the rest when the debt can
        # pay its full price (never a discount beyond the bonus) and the
        # liquidator's request covers it.
        full: uint256 = self.repay_for(deposit, price_repay, price_seize, b)
        if full <= debt:
            if full <= requested:
                seize = deposit
                repay = max(repay, full)
            else:
                # The rules allow up to `full`: a shorter request would
                # leave the dust rest behind.
                leaves_dust = True
    # A request short of what the rules allow must not leave dust behind.
    if requested < cap:
        rest_debt: uint256 = fixed_point.mul_div_up(debt - repay, price_repay, WAD)
        rest_deposit: uint256 = fixed_point.mul_div_down(deposit - seize, price_seize, WAD)
        leaves_dust = leaves_dust or (repay < debt and rest_debt < dust) or (seize < deposit and rest_deposit < dust)
    base: uint256 = fixed_point.mul_div_down(fixed_point.mul_div_down(repay, price_repay, WAD), WAD, price_seize)
    to_insurance: uint256 = 0
    if seize > base:
        to_insurance = (seize - base) * insurance_share // WAD
    return Plan(
        repay=repay,
        seize=seize,
        to_insurance=to_insurance,
        bonus=b,
        leaves_dust=leaves_dust,
        seize_all=seize == deposit,
        lowers_ratio=False,
    )


@internal
@view
def plan_for(
    collateral_maintenance: uint256,
    debt_maintenance: uint256,
    le_health: int256,
    risk_repay: uint256,
    ramp_repay: uint256,
    risk_seize: uint256,
    ramp_seize: uint256,
    liquidation_word: uint256,
    price_repay: uint256,
    price_seize: uint256,
    debt: uint256,
    deposit: uint256,
    dust: uint256,
    requested: uint256,
    solvent: bool,
    indexes: uint256,
) -> Plan:
    """
    @notice The plan of a liquidation from the account's health and the two
            assets' words: the bonus from the maintenance ratio, then the
            amounts to the liquidation-end target. Shared by the engine and
            the lens so that a preview equals the liquidation.
    @param collateral_maintenance Maintenance-weighted collateral, USD WAD.
    @param debt_maintenance Maintenance-weighted debt, USD WAD (> collateral).
    @param le_health Liquidation-end health, USD WAD.
    @param debt Debt in the repaid asset, token units, accrued to now.
    @param deposit Deposit in the seized asset, token units, stored index.
    @param dust USD WAD.
    @param requested Most token units the liquidator repays.
    @param solvent Unweighted collateral value >= debt value.
    @param indexes Stored deposit index of the seized asset << 128 | borrow
           index of the repaid asset accrued to now (WAD each), for the
           share roundings of the solvency cap in token units.
    """
    # Maintenance weights once per asset; the liquidation-end ones from them.
    aw: uint256 = 0
    lw: uint256 = 0
    lw_seize: uint256 = 0
    aw_repay: uint256 = 0
    aw, lw_seize = margin.maintenance_weights(risk_seize, ramp_seize)
    aw_repay, lw = margin.maintenance_weights(risk_repay, ramp_repay)
    aw_le: uint256 = 0
    lw_le: uint256 = 0
    unused: uint256 = 0
    aw_le, unused = margin.liquidation_end_weights(risk_seize, aw, lw_seize)
    unused, lw_le = margin.liquidation_end_weights(risk_repay, aw_repay, lw)
    params: LiquidationParams = self.unpack(liquidation_word)
    if not solvent:
        aw = 0  # no ratio cap: see the glossary
    ratio: uint256 = collateral_maintenance * WAD // debt_maintenance
    if ratio * lw < aw * WAD:
        # Even at a zero bonus, seizing this asset for this debt lowers the
        # ratio of a solvent account (aw_m,s > rho * lw_m,r): refused.
        return Plan(repay=0, seize=0, to_insurance=0, bonus=0, leaves_dust=False, seize_all=False, lowers_ratio=True)
    b: uint256 = self.bonus(ratio, params, aw, lw)
    p: Plan = self.plan(
        le_health, debt, deposit, price_repay, price_seize, lw_le, aw_le, b, params.insurance_share, dust, requested
    )
    if aw != 0 and p.repay != 0:
        # The solvency cap in token units. The engine's maintenance ratio
        # C / D does not fall iff dC * D <= dD * C (dC: weighted collateral
        # the account loses, dD: weighted debt removed), whatever the share
        # and value roundings; dD is bounded below by debt_removed and dC
        # above (docs/risk-model.md, "Solvency cap in token units").
        bi: uint256 = indexes & MASK128
        removed: uint256 = self.debt_removed(p.repay, debt, price_repay, lw, bi)
        if p.seize_all:
            # The whole deposit: dC is exactly its contribution. If the repay
            # falls short it rises (against the liquidator) to the least
            # amount that passes, or to the whole debt when the rest would be
            # dust; past the debt or the request the pair is refused.
            lost: uint256 = fixed_point.mul_div_down(fixed_point.mul_div_down(deposit, price_seize, WAD), aw, WAD)
            if lost * debt_maintenance > removed * collateral_maintenance:
                # debt_removed(repay) >= ceil(lost * D / C) needs
                # floor(floor((repay - k_r) * P_r / WAD) * lw / WAD) >= need:
                need: uint256 = fixed_point.mul_div_up(lost, debt_maintenance, collateral_maintenance) + lw // WAD + 2
                repay: uint256 = 2 + bi // WAD + fixed_point.mul_div_up(fixed_point.mul_div_up(need, WAD, lw), WAD, price_repay)
                if repay >= debt or fixed_point.mul_div_up(debt - repay, price_repay, WAD) < dust:
                    repay = debt
                p.repay = repay
                p.lowers_ratio = repay > requested or lost * debt_maintenance > self.debt_removed(
                    repay, debt, price_repay, lw, bi
                ) * collateral_maintenance
        else:
            # Partial seizure: the engine burns ceil(seize * WAD / di') deposit
            # shares (di' >= di, the stored index) and the rest is valued
            # down, so dC < (seize + k_s) * P_s * aw / WAD^2 + 2 with
            # k_s = 2 + di // WAD. The seizure is clamped to keep that below
            # floor(dD_lo * C / D). A lower seizure only grows the deposit
            # rest: no dust appears.
            removed = removed * collateral_maintenance // debt_maintenance
            most: uint256 = 0
            if removed > 2:
                most = fixed_point.mul_div_down(fixed_point.mul_div_down(removed - 2, WAD, aw), WAD, price_seize)
            removed = 2 + (indexes >> 128) // WAD
            p.seize = min(p.seize, most - min(most, removed))
        # The insurance share of the bonus of the adjusted amounts (as plan).
        base: uint256 = fixed_point.mul_div_down(fixed_point.mul_div_down(p.repay, price_repay, WAD), WAD, price_seize)
        p.to_insurance = 0
        if p.seize > base:
            p.to_insurance = (p.seize - base) * params.insurance_share // WAD
    return p


@internal
@pure
def debt_removed(repay: uint256, debt: uint256, price_repay: uint256, lw: uint256, borrow_index: uint256) -> uint256:
    """
    @notice Lower bound (USD WAD) of the fall of the repaid asset's
            maintenance-weighted debt when `repay` of `debt` (token units,
            accrued at `borrow_index`, WAD) is repaid. Exact for a full
            repay. Else the engine burns floor(repay * WAD / bi) shares, so
            the debt amount falls by more than repay - bi / WAD and, after
            the health's ceil of the rest, by at least repay - k_r units
            with k_r = 2 + bi // WAD; the value roundings (ceil, ceil) cost
            less than lw / WAD + 1 more wei.
    """
    if repay >= debt:
        return fixed_point.mul_div_up(fixed_point.mul_div_up(debt, price_repay, WAD), lw, WAD)
    k: uint256 = 2 + borrow_index // WAD
    if repay <= k:
        return 0
    v: uint256 = fixed_point.mul_div_down(fixed_point.mul_div_down(repay - k, price_repay, WAD), lw, WAD)
    k = lw // WAD + 2
    if v <= k:
        return 0
    return v - k
