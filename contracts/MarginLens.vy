# pragma version 0.4.3
# pragma optimize gas
"""
@title MarginLens
@license MIT
@notice Read-only views of a MarginEngine for front-ends and keepers:
        balances with interest accrued to now, health of many accounts in
        one call, health ratio, max borrowable and max withdrawable per
        asset, market state (totals, utilisation, rates, indexes, insurance
        fund) and every parameter of an asset. It holds no state and uses
        the same math modules as the engine, so its numbers are the
        engine's numbers.
@custom:security Views only. They never revert on a rejected price: they
        report it (`prices_valid` / `price_valid` false) instead. Calling
        them from inside an engine action (a token hook) reverts, because
        the engine's views are non-reentrant.
"""

from ethereum.ercs import IERC20

from .modules import fixed_point
from .modules import interest_rate
from .modules import liquidation
from .modules import margin
from .modules import oracle


struct AssetState:
    asset: address
    info: uint256
    market_a: uint256
    market_b: uint256
    totals: uint256
    rate_model: uint256
    risk: uint256
    ramp: uint256
    liquidation: uint256


struct Health:
    collateral: uint256[4]
    debt: uint256[4]
    prices_valid: bool


interface IMarginEngine:
    def asset_count() -> uint256: view
    def asset_id(asset: address) -> uint256: view
    def asset_state(id: uint256) -> AssetState: view
    def account_header(owner: address, sub_id: uint8) -> (uint256, uint256, uint256): view
    def position(owner: address, sub_id: uint8, asset: address) -> (uint256, uint256): view
    def weighted_health(owner: address, sub_id: uint8, asset_mask: uint256, kinds: uint256) -> Health: view
    def sequencer_ok() -> bool: view
    def liquidation_settings() -> (uint256, uint256, uint256): view


# ---------------------------------------------------------------------------
# Constants and immutables
# ---------------------------------------------------------------------------

WAD: constant(uint256) = fixed_point.WAD
MAX_ASSETS: constant(uint256) = 64
MAX_HEALTH_QUERIES: constant(uint256) = 256
MASK60: constant(uint256) = 2**60 - 1
MASK96: constant(uint256) = 2**96 - 1
MASK120: constant(uint256) = 2**120 - 1
MASK128: constant(uint256) = 2**128 - 1
LISTED: constant(uint256) = 1
PAUSE_WITHDRAW: constant(uint256) = 4
PAUSE_BORROW: constant(uint256) = 8
BORROWABLE: constant(uint256) = 32
PAUSABLE: constant(uint256) = 2 | 4 | 8 | 16

# The engine read here.
ENGINE: public(immutable(IMarginEngine))


# ---------------------------------------------------------------------------
# Structs
# ---------------------------------------------------------------------------

struct Candidate:
    rest: Health  # the account without this asset
    risk: uint256
    ramp: uint256
    price: uint256
    price_error: uint256  # oracle module error code of this asset's price
    deposit_shares: uint256
    borrow_shares: uint256
    deposit: uint256  # token units at the index accrued to now


struct AccountRef:
    owner: address
    sub_id: uint8


struct HealthView:
    initial: int256  # USD WAD
    maintenance: int256  # USD WAD
    liquidation_end: int256  # USD WAD
    ratio: uint256  # maintenance collateral / maintenance debt, WAD; max uint256 without debt
    prices_valid: bool


struct Balance:
    asset: address
    deposit: uint256  # token units, interest accrued to now
    borrow: uint256  # token units, interest accrued to now
    deposit_shares: uint256
    borrow_shares: uint256


struct MarketView:
    asset: address
    asset_id: uint256
    total_deposits: uint256  # token units, accrued to now
    total_borrows: uint256  # token units, accrued to now
    deposit_shares: uint256
    borrow_shares: uint256
    deposit_index: uint256  # WAD, accrued to now
    borrow_index: uint256  # WAD, accrued to now
    utilisation: uint256  # WAD
    borrow_rate: uint256  # WAD per second
    supply_rate: uint256  # WAD per second
    insurance_fund: int256  # token units
    last_update: uint256  # unix seconds of the last stored accrual
    price: uint256  # unit price: USD WAD of one token unit * 1e18
    price_valid: bool


struct AssetConfig:
    asset: address
    asset_id: uint256
    feed: address
    token_decimals: uint256
    feed_decimals: uint256
    risk: margin.RiskParams  # target weights (WAD)
    asset_weight_maintenance_now: uint256  # WAD, ramp applied
    liability_weight_maintenance_now: uint256  # WAD, ramp applied
    ramp_end: uint256  # unix seconds; 0 if no ramp
    supply_cap: uint256  # token units; 0 = no cap
    borrow_cap: uint256  # token units; 0 = no cap
    base_rate: uint256  # WAD per second
    slope_low: uint256  # WAD per second
    slope_high: uint256  # WAD per second
    kink: uint256  # WAD
    reserve_factor: uint256  # WAD
    collateral: bool
    borrowable: bool
    paused: uint256  # PAUSE_* flags
    liquidation: liquidation.LiquidationParams  # bonus when seized (WAD)


# ---------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------

@deploy
def __init__(engine: IMarginEngine):
    ENGINE = engine


# ---------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------

@view
@external
def healths(accounts: DynArray[AccountRef, MAX_HEALTH_QUERIES]) -> DynArray[HealthView, MAX_HEALTH_QUERIES]:
    """
    @notice Health of up to 256 sub-accounts in one call (keepers,
            dashboards): the three health types in USD WAD and the ratio.
    """
    out: DynArray[HealthView, MAX_HEALTH_QUERIES] = []
    for ref: AccountRef in accounts:
        h: Health = staticcall ENGINE.weighted_health(ref.owner, ref.sub_id, 2**64 - 1, 7)
        out.append(
            HealthView(
                initial=convert(h.collateral[0], int256) - convert(h.debt[0], int256),
                maintenance=convert(h.collateral[1], int256) - convert(h.debt[1], int256),
                liquidation_end=convert(h.collateral[2], int256) - convert(h.debt[2], int256),
                ratio=self._ratio(h.collateral[1], h.debt[1]),
                prices_valid=h.prices_valid,
            )
        )
    return out


@view
@external
def health_ratio(owner: address, sub_id: uint8 = 0) -> uint256:
    """
    @notice Maintenance-weighted collateral / maintenance-weighted debt, WAD,
            rounded down: below 1e18 the account is liquidatable. Max uint256
            without debt.
    """
    h: Health = staticcall ENGINE.weighted_health(owner, sub_id, 2**64 - 1, 2)
    return self._ratio(h.collateral[1], h.debt[1])


@view
@external
def balances(owner: address, sub_id: uint8 = 0) -> DynArray[Balance, MAX_ASSETS]:
    """
    @notice Every asset a sub-account holds, amounts accrued to now (token
            units; deposits round down, debts round up).
    """
    deposits: uint256 = 0
    debts: uint256 = 0
    last_block: uint256 = 0
    deposits, debts, last_block = staticcall ENGINE.account_header(owner, sub_id)
    held: uint256 = deposits | debts
    out: DynArray[Balance, MAX_ASSETS] = []
    for id: uint256 in range(MAX_ASSETS):
        if held >> id == 0:
            break
        if (held >> id) & 1 == 0:
            continue
        s: AssetState = staticcall ENGINE.asset_state(id)
        deposit_shares: uint256 = 0
        borrow_shares: uint256 = 0
        deposit_shares, borrow_shares = staticcall ENGINE.position(owner, sub_id, s.asset)
        di: uint256 = 0
        bi: uint256 = 0
        di, bi = interest_rate.indexes_now(s.market_a, s.market_b, s.totals, s.rate_model)
        out.append(
            Balance(
                asset=s.asset,
                deposit=fixed_point.mul_div_down(deposit_shares, di, WAD),
                borrow=fixed_point.mul_div_up(borrow_shares, bi, WAD),
                deposit_shares=deposit_shares,
                borrow_shares=borrow_shares,
            )
        )
    return out


@view
@external
def max_borrow(owner: address, sub_id: uint8, asset: address) -> uint256:
    """
    @notice Largest amount of `asset` (token units) the sub-account can
            borrow now: the engine's own checks (initial health with tiered
            margin, liquidity, borrow cap) evaluated with its rounding, by
            bisection. 0 when a price is rejected, the asset is not
            borrowable or borrowing is paused.
    """
    id: uint256 = staticcall ENGINE.asset_id(asset)
    s: AssetState = staticcall ENGINE.asset_state(id)
    if (s.info >> 8) & (BORROWABLE | PAUSE_BORROW) != BORROWABLE:
        return 0
    full: Health = staticcall ENGINE.weighted_health(owner, sub_id, 2**64 - 1, 1)
    if not full.prices_valid or not staticcall ENGINE.sequencer_ok():
        return 0
    di: uint256 = 0
    bi: uint256 = 0
    di, bi = interest_rate.indexes_now(s.market_a, s.market_b, s.totals, s.rate_model)
    c: Candidate = self._candidate(owner, sub_id, id, s, di, bi)
    if c.price_error != oracle.ERR_NONE:
        return 0  # the borrowed asset's own price is rejected (held or not)
    total_deposit: uint256 = fixed_point.mul_div_down(s.totals & MASK128, di, WAD)
    cap: uint256 = (s.info >> 136) & MASK120
    lo: uint256 = 0
    hi: uint256 = total_deposit
    for i: uint256 in range(256):
        if lo >= hi:
            break
        mid: uint256 = hi - (hi - lo) // 2
        # As MarginEngine.borrow: shares round up, totals and debts round up.
        shares: uint256 = fixed_point.mul_div_up(mid, WAD, bi)
        total_borrow: uint256 = fixed_point.mul_div_up((s.totals >> 128) + shares, bi, WAD)
        ok: bool = total_borrow <= total_deposit and (cap == 0 or total_borrow <= cap)
        if ok:
            ok = self._healthy(c, c.deposit, fixed_point.mul_div_up(c.borrow_shares + shares, bi, WAD))
        if ok:
            lo = mid
        else:
            hi = mid - 1
    return lo


@view
@external
def max_withdraw(owner: address, sub_id: uint8, asset: address) -> uint256:
    """
    @notice Largest amount of `asset` (token units) the sub-account can
            withdraw now: the engine's own checks (deposit, liquidity and,
            with debt, initial health) evaluated with its rounding, by
            bisection. 0 when a needed price is rejected or withdrawals are
            paused.
    """
    id: uint256 = staticcall ENGINE.asset_id(asset)
    s: AssetState = staticcall ENGINE.asset_state(id)
    if (s.info >> 8) & PAUSE_WITHDRAW != 0:
        return 0
    deposits: uint256 = 0
    debts: uint256 = 0
    last_block: uint256 = 0
    deposits, debts, last_block = staticcall ENGINE.account_header(owner, sub_id)
    if debts != 0:
        full: Health = staticcall ENGINE.weighted_health(owner, sub_id, 2**64 - 1, 1)
        if not full.prices_valid or not staticcall ENGINE.sequencer_ok():
            return 0
    di: uint256 = 0
    bi: uint256 = 0
    di, bi = interest_rate.indexes_now(s.market_a, s.market_b, s.totals, s.rate_model)
    c: Candidate = self._candidate(owner, sub_id, id, s, di, bi)
    total_borrow: uint256 = fixed_point.mul_div_up(s.totals >> 128, bi, WAD)
    debt: uint256 = fixed_point.mul_div_up(c.borrow_shares, bi, WAD)
    lo: uint256 = 0
    hi: uint256 = fixed_point.mul_div_down(c.deposit_shares, di, WAD)
    for i: uint256 in range(256):
        if lo >= hi:
            break
        mid: uint256 = hi - (hi - lo) // 2
        # As MarginEngine.withdraw: shares burned round up.
        shares: uint256 = fixed_point.mul_div_up(mid, WAD, di)
        ok: bool = shares <= c.deposit_shares
        if ok and s.totals >> 128 != 0:
            ok = fixed_point.mul_div_down((s.totals & MASK128) - shares, di, WAD) >= total_borrow
        if ok and debts != 0:
            ok = self._healthy(c, fixed_point.mul_div_down(c.deposit_shares - shares, di, WAD), debt)
        if ok:
            lo = mid
        else:
            hi = mid - 1
    return lo


@view
@external
def preview_liquidation(owner: address, sub_id: uint8, repay_asset: address, seize_asset: address) -> (uint256, uint256, uint256):
    """
    @notice What MarginEngine.liquidate with an unlimited repay amount would
            do now: the same plan (liquidation module) on the same inputs.
    @return (max repay in repay_asset token units, seize_asset token units
            to the liquidator, bonus WAD); zeros when the account is not
            liquidatable with this pair or a price is rejected. Delay rules
            (cool-off, grace periods, pause) are not applied here.
    """
    id_r: uint256 = staticcall ENGINE.asset_id(repay_asset)
    id_s: uint256 = staticcall ENGINE.asset_id(seize_asset)
    deposits: uint256 = 0
    debts: uint256 = 0
    last_block: uint256 = 0
    deposits, debts, last_block = staticcall ENGINE.account_header(owner, sub_id)
    if (debts >> id_r) & 1 == 0 or (deposits >> id_s) & 1 == 0:
        return 0, 0, 0
    h: Health = staticcall ENGINE.weighted_health(owner, sub_id, 2**64 - 1, 14)
    if h.collateral[1] >= h.debt[1] or not h.prices_valid:
        return 0, 0, 0
    r: AssetState = staticcall ENGINE.asset_state(id_r)
    s: AssetState = staticcall ENGINE.asset_state(id_s)
    price_r: uint256 = 0
    price_s: uint256 = 0
    err: uint256 = 0
    price_r, err = self._price(r)
    price_s, err = self._price(s)
    di: uint256 = 0
    bi: uint256 = 0
    di, bi = interest_rate.indexes_now(r.market_a, r.market_b, r.totals, r.rate_model)
    borrow_shares: uint256 = 0
    deposit_shares: uint256 = 0
    unused: uint256 = 0
    unused, borrow_shares = staticcall ENGINE.position(owner, sub_id, repay_asset)
    deposit_shares, unused = staticcall ENGINE.position(owner, sub_id, seize_asset)
    dust: uint256 = 0
    grace: uint256 = 0
    paused_until: uint256 = 0
    dust, grace, paused_until = staticcall ENGINE.liquidation_settings()
    p: liquidation.Plan = liquidation.plan_for(
        h.collateral[1],
        h.debt[1],
        convert(h.collateral[2], int256) - convert(h.debt[2], int256),
        r.risk,
        self._ramp(r),
        s.risk,
        self._ramp(s),
        s.liquidation,
        price_r,
        price_s,
        fixed_point.mul_div_up(borrow_shares, bi, WAD),
        fixed_point.mul_div_down(deposit_shares, s.market_a & MASK96, WAD),
        dust,
        max_value(uint256),
        h.collateral[3] >= h.debt[3],
        (s.market_a & MASK96) << 128 | bi,
    )
    return p.repay, p.seize - p.to_insurance, p.bonus


@view
@external
def market(asset: address) -> MarketView:
    """
    @notice Market state of `asset` accrued to the current second.
    """
    id: uint256 = staticcall ENGINE.asset_id(asset)
    s: AssetState = staticcall ENGINE.asset_state(id)
    di: uint256 = 0
    bi: uint256 = 0
    di, bi = interest_rate.indexes_now(s.market_a, s.market_b, s.totals, s.rate_model)
    total_deposit: uint256 = fixed_point.mul_div_down(s.totals & MASK128, di, WAD)
    total_borrow: uint256 = fixed_point.mul_div_up(s.totals >> 128, bi, WAD)
    u: uint256 = interest_rate.utilisation(total_deposit, total_borrow)
    rate: uint256 = interest_rate.borrow_rate(s.rate_model, u)
    price: uint256 = 0
    err: uint256 = 0
    price, err = self._price(s)
    balance: uint256 = staticcall IERC20(asset).balanceOf(ENGINE.address)
    return MarketView(
        asset=asset,
        asset_id=id,
        total_deposits=total_deposit,
        total_borrows=total_borrow,
        deposit_shares=s.totals & MASK128,
        borrow_shares=s.totals >> 128,
        deposit_index=di,
        borrow_index=bi,
        utilisation=u,
        borrow_rate=rate,
        supply_rate=interest_rate.supply_rate(rate, u, (s.market_b >> 136) & MASK60),
        insurance_fund=convert(balance + total_borrow, int256) - convert(total_deposit, int256),
        last_update=(s.market_b >> 96) & (2**40 - 1),
        price=price,
        price_valid=err == oracle.ERR_NONE,
    )


@view
@external
def asset_config(asset: address) -> AssetConfig:
    """
    @notice Every parameter of a listed asset, WAD-scaled.
    """
    id: uint256 = staticcall ENGINE.asset_id(asset)
    s: AssetState = staticcall ENGINE.asset_state(id)
    ramp: uint256 = self._ramp(s)
    aw_m: uint256 = 0
    lw_m: uint256 = 0
    aw_m, lw_m = margin.maintenance_weights(s.risk, ramp)
    base: uint256 = 0
    slope_low: uint256 = 0
    slope_high: uint256 = 0
    kink: uint256 = 0
    base, slope_low, slope_high, kink = interest_rate.unpack(s.rate_model)
    return AssetConfig(
        asset=asset,
        asset_id=id,
        feed=convert(s.market_a >> 96, address),
        token_decimals=margin.token_decimals(s.risk),
        feed_decimals=margin.feed_decimals(s.risk),
        risk=margin.unpack_risk(s.risk),
        asset_weight_maintenance_now=aw_m,
        liability_weight_maintenance_now=lw_m,
        ramp_end=margin.ramp_end(ramp),
        supply_cap=(s.info >> 16) & MASK120,
        borrow_cap=(s.info >> 136) & MASK120,
        base_rate=base,
        slope_low=slope_low,
        slope_high=slope_high,
        kink=kink,
        reserve_factor=(s.market_b >> 136) & MASK60,
        collateral=(margin.flags(s.risk) & margin.FLAG_COLLATERAL) != 0,
        borrowable=(s.info >> 8) & BORROWABLE != 0,
        paused=(s.info >> 8) & PAUSABLE,
        liquidation=liquidation.unpack(s.liquidation),
    )


# ---------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------

@internal
@view
def _price(s: AssetState) -> (uint256, uint256):
    lo: uint256 = 0
    hi: uint256 = 0
    lo, hi = margin.answer_bounds(s.risk)
    return oracle.unit_price(
        convert(s.market_a >> 96, address), lo, hi, margin.max_staleness(s.risk), margin.unit_price_exponent(s.risk)
    )


@internal
@pure
def _ramp(s: AssetState) -> uint256:
    if margin.flags(s.risk) & margin.FLAG_RAMPING != 0:
        return s.ramp
    return 0



@internal
@view
def _candidate(owner: address, sub_id: uint8, id: uint256, s: AssetState, di: uint256, bi: uint256) -> Candidate:
    """
    @notice What a bisection over one asset needs: the rest of the account's
            initial health (fixed), and this asset's words, price and shares.
            The action accrues the asset first, so its deposit counts at the
            index accrued to now (`di`).
    """
    c: Candidate = empty(Candidate)
    c.rest = staticcall ENGINE.weighted_health(owner, sub_id, (2**64 - 1) ^ (1 << id), 1)
    c.risk = s.risk
    c.ramp = self._ramp(s)
    c.price, c.price_error = self._price(s)
    c.deposit_shares, c.borrow_shares = staticcall ENGINE.position(owner, sub_id, s.asset)
    c.deposit = fixed_point.mul_div_down(c.deposit_shares, di, WAD)
    return c


@internal
@view
def _healthy(c: Candidate, deposit: uint256, debt: uint256) -> bool:
    """
    @notice Initial health >= 0 with this asset at (deposit, debt) token units.
    """
    coll: uint256 = 0
    liab: uint256 = 0
    coll, liab = margin.contribution(c.risk, c.ramp, c.price, deposit, debt, margin.INITIAL)
    return c.rest.collateral[0] + coll >= c.rest.debt[0] + liab


@internal
@pure
def _ratio(collateral: uint256, debt: uint256) -> uint256:
    if debt == 0:
        return max_value(uint256)
    return collateral * WAD // debt
