# pragma version 0.4.3
"""
@title ModulesHarness
@notice Test-only: exposes the internal functions of the math modules
        (contracts/modules/*.vy) as external functions, so the Python
        reference model (keeper/risk_model.py) can be compared with them.
@dev How this compiles under titanoboa 0.2.8: load it from its file path
     (`boa.load_partial(path)` / `boa.load(path)`). Vyper resolves the
     relative import below against the file's own directory
     (tests/differential/harness/ -> four levels up is the repository root),
     so no compiler search path has to be set. (Absolute imports such as
     `from contracts.modules import margin` fail with ModuleNotFound unless
     the repo root is added with `boa.interpret.set_search_paths`, a global
     setting we avoid; `boa.loads(src)` without a filename cannot use the
     relative form either.) The modules hold no state, so they are imported
     without `initializes`.
"""

from ....contracts.modules import fixed_point
from ....contracts.modules import interest_rate
from ....contracts.modules import liquidation
from ....contracts.modules import margin
from ....contracts.modules import oracle


# --- fixed_point ---------------------------------------------------------

@external
@pure
def mul_div_down(x: uint256, y: uint256, d: uint256) -> uint256:
    return fixed_point.mul_div_down(x, y, d)


@external
@pure
def mul_div_up(x: uint256, y: uint256, d: uint256) -> uint256:
    return fixed_point.mul_div_up(x, y, d)


# --- interest_rate -------------------------------------------------------

@external
@pure
def rate_pack(base_rate: uint256, slope_low: uint256, slope_high: uint256, kink: uint256) -> uint256:
    return interest_rate.pack(base_rate, slope_low, slope_high, kink)


@external
@pure
def rate_unpack(word: uint256) -> (uint256, uint256, uint256, uint256):
    return interest_rate.unpack(word)


@external
@pure
def utilisation(total_deposit: uint256, total_borrow: uint256) -> uint256:
    return interest_rate.utilisation(total_deposit, total_borrow)


@external
@pure
def borrow_rate(word: uint256, u: uint256) -> uint256:
    return interest_rate.borrow_rate(word, u)


@external
@pure
def supply_rate(rate: uint256, u: uint256, reserve_factor: uint256) -> uint256:
    return interest_rate.supply_rate(rate, u, reserve_factor)


@external
@pure
def accrue(
    word: uint256,
    reserve_factor: uint256,
    deposit_index: uint256,
    borrow_index: uint256,
    deposit_shares: uint256,
    borrow_shares: uint256,
    dt: uint256,
) -> (uint256, uint256):
    return interest_rate.accrue(word, reserve_factor, deposit_index, borrow_index, deposit_shares, borrow_shares, dt)


@external
@view
def indexes_now(market_a: uint256, market_b: uint256, totals: uint256, word: uint256) -> (uint256, uint256):
    return interest_rate.indexes_now(market_a, market_b, totals, word)


# --- margin ----------------------------------------------------------------

@external
@pure
def pack_risk(p: margin.RiskParams, token_decimals: uint256, feed_decimals: uint256, flags: uint256) -> uint256:
    return margin.pack_risk(p, token_decimals, feed_decimals, flags)


@external
@pure
def unpack_risk(word: uint256) -> margin.RiskParams:
    return margin.unpack_risk(word)


@external
@pure
def risk_fields(word: uint256) -> (uint256, uint256, uint256, uint256, uint256, uint256, uint256, uint256):
    lo: uint256 = 0
    hi: uint256 = 0
    lo, hi = margin.answer_bounds(word)
    return (
        margin.token_decimals(word),
        margin.feed_decimals(word),
        margin.flags(word),
        margin.max_staleness(word),
        lo,
        hi,
        margin.imf(word),
        margin.unit_price_exponent(word),
    )


@external
@pure
def pack_ramp(aw_start_bps: uint256, lw_start_bps: uint256, start: uint256, end: uint256) -> uint256:
    return margin.pack_ramp(aw_start_bps, lw_start_bps, start, end)


@external
@pure
def ramp_end(ramp: uint256) -> uint256:
    return margin.ramp_end(ramp)


@external
@view
def maintenance_weights(risk: uint256, ramp: uint256) -> (uint256, uint256):
    return margin.maintenance_weights(risk, ramp)


@external
@view
def weights(risk: uint256, ramp: uint256, kind: uint256) -> (uint256, uint256):
    return margin.weights(risk, ramp, kind)


@external
@pure
def size_wad(amount: uint256, token_decimals: uint256) -> uint256:
    return margin.size_wad(amount, token_decimals)


@external
@pure
def tiered_asset_weight(aw: uint256, imf_wad: uint256, size: uint256) -> uint256:
    return margin.tiered_asset_weight(aw, imf_wad, size)


@external
@pure
def tiered_liability_weight(lw: uint256, imf_wad: uint256, size: uint256) -> uint256:
    return margin.tiered_liability_weight(lw, imf_wad, size)


@external
@view
def contribution(
    risk: uint256, ramp: uint256, price: uint256, deposit_amount: uint256, debt_amount: uint256, kind: uint256
) -> (uint256, uint256):
    return margin.contribution(risk, ramp, price, deposit_amount, debt_amount, kind)


# --- oracle ----------------------------------------------------------------

@external
@view
def unit_price(
    feed: address, min_answer: uint256, max_answer: uint256, max_staleness: uint256, exponent: uint256
) -> (uint256, uint256):
    return oracle.unit_price(feed, min_answer, max_answer, max_staleness, exponent)


@external
@view
def sequencer_status(feed: address, grace_period: uint256) -> (bool, bool):
    return oracle.sequencer_status(feed, grace_period)


@external
@view
def recently_stale(feed: address, max_staleness: uint256, grace_period: uint256) -> bool:
    return oracle.recently_stale(feed, max_staleness, grace_period)


# --- liquidation -----------------------------------------------------------

@external
@pure
def liq_pack(p: liquidation.LiquidationParams) -> uint256:
    return liquidation.pack(p)


@external
@pure
def liq_unpack(word: uint256) -> liquidation.LiquidationParams:
    return liquidation.unpack(word)


@external
@pure
def liq_bonus(ratio: uint256, p: liquidation.LiquidationParams, aw_seize: uint256, lw_repay: uint256) -> uint256:
    return liquidation.bonus(ratio, p, aw_seize, lw_repay)


@external
@pure
def seize_for(repay: uint256, price_repay: uint256, price_seize: uint256, b: uint256) -> uint256:
    return liquidation.seize_for(repay, price_repay, price_seize, b)


@external
@pure
def repay_for(seize: uint256, price_repay: uint256, price_seize: uint256, b: uint256) -> uint256:
    return liquidation.repay_for(seize, price_repay, price_seize, b)


@external
@pure
def liq_plan(
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
) -> liquidation.Plan:
    return liquidation.plan(
        le_health, debt, deposit, price_repay, price_seize, lw_le_repay, aw_le_seize, b, insurance_share, dust, requested
    )


@external
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
) -> liquidation.Plan:
    return liquidation.plan_for(
        collateral_maintenance,
        debt_maintenance,
        le_health,
        risk_repay,
        ramp_repay,
        risk_seize,
        ramp_seize,
        liquidation_word,
        price_repay,
        price_seize,
        debt,
        deposit,
        dust,
        requested,
        solvent,
        indexes,
    )
