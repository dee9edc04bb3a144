# pragma version 0.4.3
"""
@title margin
@license MIT
@notice Margin weights of one asset: the haircuts of cross-margin health.

        Glossary (WAD = 1e18 = 1.0):
          aw_T    asset weight of health type T (a haircut, <= 1)
          lw_T    liability weight of health type T (>= 1)
          T       INITIAL (gates borrow/withdraw/transfer), MAINTENANCE
                  (below zero = liquidatable), LIQUIDATION_END (the target a
                  liquidation restores: the midpoint of initial and
                  maintenance weights; Mango v4's LiquidationEnd
                  health type plays the same role),
                  VALUE (unweighted, aw = lw = 1: solvency and dust)
          imf     size factor, per sqrt(whole token)
          s       position size in whole tokens, WAD-scaled

        Tiered (size-dependent) initial margin, from Drift v2's IMF margin
        (`calculate_size_premium_liability_weight` and
        `calculate_size_discount_asset_weight`):
          lw_init(s) = max(lw_init, 0.8 * lw_init + imf * sqrt(s))
          aw_init(s) = min(aw_init, 1.1 / (1 + imf * sqrt(s)))
        imf = 0 gives flat weights. Only the initial type is tiered.

        Maintenance ramp (Euler v2 LTV ramping): lowering aw_maint or
        raising lw_maint moves linearly from the old value to the new one
        between `start` and `end`, so no account becomes liquidatable at once.

        Risk word (one storage slot per asset):
          bits   0-15  aw_init, basis points (1 bp = 1e14 WAD)
          bits  16-31  aw_maint, bp
          bits  32-47  lw_init, bp
          bits  48-63  lw_maint, bp
          bits  64-87  max staleness of the price feed, seconds
          bits  88-111 imf, units of 1e-6
          bits 112-116 token decimals
          bits 117-121 feed decimals
          bits 122-127 flags (COLLATERAL, RAMPING)
          bits 128-191 min accepted feed answer / bound scale
          bits 192-255 max accepted feed answer / bound scale
        Bound scale = 10**(feed decimals - 8) for feeds with more than 8
        decimals, else 1: bounds are kept with at most 8 decimals, so an
        18-decimal feed can bound answers up to 1.8e11 (not 18.4).

        Ramp word: bits 0-15 aw_maint at ramp start (bp), 16-31 lw_maint at
        ramp start (bp), 32-71 ramp start (unix s), 72-111 ramp end (unix s).
@custom:security Pure. Rounding: asset weights round down and liability
        weights round up, so health is never overstated.
"""

from . import fixed_point

WAD: constant(uint256) = fixed_point.WAD
BPS_TO_WAD: constant(uint256) = 10**14
MASK16: constant(uint256) = 2**16 - 1
MASK24: constant(uint256) = 2**24 - 1
MASK40: constant(uint256) = 2**40 - 1
MASK64: constant(uint256) = 2**64 - 1
IMF_TO_WAD: constant(uint256) = 10**12

# Health types.
INITIAL: constant(uint256) = 0
MAINTENANCE: constant(uint256) = 1
LIQUIDATION_END: constant(uint256) = 2
VALUE: constant(uint256) = 3

# Risk-word flags (bits 122-127).
FLAG_COLLATERAL: constant(uint256) = 1
FLAG_RAMPING: constant(uint256) = 2

# Drift v2 constants of the size premium/discount.
SIZE_LIABILITY_FLOOR: constant(uint256) = 8 * 10**17  # 0.8
SIZE_ASSET_CEILING: constant(uint256) = 11 * 10**17  # 1.1


struct RiskParams:
    asset_weight_initial: uint256  # WAD, multiple of 1e14
    asset_weight_maintenance: uint256  # WAD, multiple of 1e14
    liability_weight_initial: uint256  # WAD, multiple of 1e14
    liability_weight_maintenance: uint256  # WAD, multiple of 1e14
    max_staleness: uint256  # seconds
    imf: uint256  # WAD per sqrt(whole token), multiple of 1e12
    min_answer: uint256  # feed decimals; a multiple of the bound scale
    max_answer: uint256  # feed decimals; a multiple of the bound scale


@internal
@pure
def pack_risk(p: RiskParams, token_decimals: uint256, feed_decimals: uint256, flags: uint256) -> uint256:
    """
    @notice Packs validated parameters; the caller has checked every bound.
    """
    return (
        (p.asset_weight_initial // BPS_TO_WAD)
        | (p.asset_weight_maintenance // BPS_TO_WAD) << 16
        | (p.liability_weight_initial // BPS_TO_WAD) << 32
        | (p.liability_weight_maintenance // BPS_TO_WAD) << 48
        | p.max_staleness << 64
        | (p.imf // IMF_TO_WAD) << 88
        | token_decimals << 112
        | feed_decimals << 117
        | flags << 122
        | (p.min_answer // self.bound_scale(feed_decimals)) << 128
        | (p.max_answer // self.bound_scale(feed_decimals)) << 192
    )


@internal
@pure
def unpack_risk(word: uint256) -> RiskParams:
    """
    @notice The risk word as WAD values (target weights, before any ramp).
    """
    scale: uint256 = self.bound_scale(self.feed_decimals(word))
    return RiskParams(
        asset_weight_initial=(word & MASK16) * BPS_TO_WAD,
        asset_weight_maintenance=((word >> 16) & MASK16) * BPS_TO_WAD,
        liability_weight_initial=((word >> 32) & MASK16) * BPS_TO_WAD,
        liability_weight_maintenance=((word >> 48) & MASK16) * BPS_TO_WAD,
        max_staleness=(word >> 64) & MASK24,
        imf=((word >> 88) & MASK24) * IMF_TO_WAD,
        min_answer=((word >> 128) & MASK64) * scale,
        max_answer=(word >> 192) * scale,
    )


@internal
@pure
def token_decimals(word: uint256) -> uint256:
    return (word >> 112) & 31


@internal
@pure
def feed_decimals(word: uint256) -> uint256:
    return (word >> 117) & 31


@internal
@pure
def flags(word: uint256) -> uint256:
    return (word >> 122) & 63


@internal
@pure
def max_staleness(word: uint256) -> uint256:
    return (word >> 64) & MASK24


@internal
@pure
def answer_bounds(word: uint256) -> (uint256, uint256):
    """
    @notice (min, max) accepted feed answer, in feed decimals.
    """
    scale: uint256 = self.bound_scale(self.feed_decimals(word))
    return ((word >> 128) & MASK64) * scale, (word >> 192) * scale


@internal
@pure
def bound_scale(feed_decimals: uint256) -> uint256:
    """
    @notice 10**(feed decimals - 8) above 8 decimals, else 1.
    """
    if feed_decimals > 8:
        return 10 ** (feed_decimals - 8)
    return 1


@internal
@pure
def pack_ramp(aw_start_bps: uint256, lw_start_bps: uint256, start: uint256, end: uint256) -> uint256:
    return aw_start_bps | lw_start_bps << 16 | start << 32 | end << 72


@internal
@pure
def ramp_end(ramp: uint256) -> uint256:
    return (ramp >> 72) & MASK40


@internal
@view
def maintenance_weights(risk: uint256, ramp: uint256) -> (uint256, uint256):
    """
    @notice (aw_maint, lw_maint) in WAD at the current block time.
    @param risk Risk word.
    @param ramp Ramp word; read by the caller only when FLAG_RAMPING is set,
           pass 0 otherwise.
    @dev During a ramp the asset weight rounds down and the liability
         weight rounds up (health never overstated).
    """
    aw: uint256 = ((risk >> 16) & MASK16) * BPS_TO_WAD
    lw: uint256 = ((risk >> 48) & MASK16) * BPS_TO_WAD
    if ramp == 0:
        return aw, lw
    end: uint256 = (ramp >> 72) & MASK40
    if block.timestamp >= end:
        return aw, lw
    start: uint256 = (ramp >> 32) & MASK40
    aw_start: uint256 = (ramp & MASK16) * BPS_TO_WAD
    lw_start: uint256 = ((ramp >> 16) & MASK16) * BPS_TO_WAD
    # end > block.timestamp >= start, so duration > 0 and elapsed < duration.
    duration: uint256 = end - start
    elapsed: uint256 = block.timestamp - start
    if aw_start > aw:
        aw = aw_start - fixed_point.mul_div_up(aw_start - aw, elapsed, duration)
    if lw_start < lw:
        lw = lw_start + fixed_point.mul_div_up(lw - lw_start, elapsed, duration)
    return aw, lw


@internal
@view
def weights(risk: uint256, ramp: uint256, kind: uint256) -> (uint256, uint256):
    """
    @notice Flat (aw, lw) in WAD of health type `kind` at the current time.
    @dev The initial asset weight is 0 when the asset's collateral flag is
         off: it then supports no new borrowing, while its maintenance
         weight keeps protecting existing positions.
    """
    if kind == INITIAL:
        aw: uint256 = 0
        if (risk >> 122) & FLAG_COLLATERAL != 0:
            aw = (risk & MASK16) * BPS_TO_WAD
        return aw, ((risk >> 32) & MASK16) * BPS_TO_WAD
    if kind == VALUE:
        return WAD, WAD
    aw_m: uint256 = 0
    lw_m: uint256 = 0
    aw_m, lw_m = self.maintenance_weights(risk, ramp)
    if kind == MAINTENANCE:
        return aw_m, lw_m
    return self.liquidation_end_weights(risk, aw_m, lw_m)


@internal
@pure
def liquidation_end_weights(risk: uint256, aw_m: uint256, lw_m: uint256) -> (uint256, uint256):
    """
    @notice (aw, lw) in WAD of LIQUIDATION_END: the midpoint of the flat
            initial weights and the maintenance weights `aw_m`, `lw_m` (as
            `maintenance_weights` gives them); aw rounds down, lw up.
    """
    aw_i: uint256 = (risk & MASK16) * BPS_TO_WAD
    lw_i: uint256 = ((risk >> 32) & MASK16) * BPS_TO_WAD
    return (aw_i + aw_m) // 2, (lw_i + lw_m + 1) // 2


@internal
@pure
def size_wad(amount: uint256, token_decimals: uint256) -> uint256:
    """
    @notice A token amount (token decimals) as whole tokens in WAD.
    """
    return amount * 10 ** (18 - token_decimals)


@internal
@pure
def imf(risk: uint256) -> uint256:
    return ((risk >> 88) & MASK24) * IMF_TO_WAD


@internal
@pure
def tiered_asset_weight(aw: uint256, imf_wad: uint256, size: uint256) -> uint256:
    """
    @notice min(aw, 1.1 / (1 + imf * sqrt(s))), rounded down. Drift v2 IMF.
    @param aw Flat initial asset weight, WAD.
    @param imf_wad Size factor, WAD per sqrt(whole token).
    @param size Position size in whole tokens, WAD.
    """
    if imf_wad == 0 or size == 0:
        return aw
    # sqrt(size / WAD) in WAD = isqrt(size * WAD); the premium rounds up
    # (isqrt floors, +1 bounds it above), so the weight rounds down.
    premium: uint256 = fixed_point.mul_div_up(imf_wad, isqrt(size * WAD) + 1, WAD)
    discounted: uint256 = SIZE_ASSET_CEILING * WAD // (WAD + premium)
    return min(aw, discounted)


@internal
@pure
def tiered_liability_weight(lw: uint256, imf_wad: uint256, size: uint256) -> uint256:
    """
    @notice max(lw, 0.8 * lw + imf * sqrt(s)), rounded up. Drift v2 IMF.
    @param lw Flat initial liability weight, WAD.
    @param imf_wad Size factor, WAD per sqrt(whole token).
    @param size Position size in whole tokens, WAD.
    """
    if imf_wad == 0 or size == 0:
        return lw
    # isqrt rounds down; add one to round the premium up.
    premium: uint256 = fixed_point.mul_div_up(imf_wad, isqrt(size * WAD) + 1, WAD)
    premium_weight: uint256 = fixed_point.mul_div_up(lw, SIZE_LIABILITY_FLOOR, WAD) + premium
    return max(lw, premium_weight)


@internal
@view
def health_weights(risk: uint256, ramp: uint256, kind: uint256, deposit_amount: uint256, debt_amount: uint256) -> (uint256, uint256):
    """
    @notice (aw, lw) in WAD that `contribution` applies for health type
            `kind` to these position sizes: `weights`, and for INITIAL the
            size-tiered weights (the asset weight only when it applies).
    @param deposit_amount Token units.
    @param debt_amount Token units.
    """
    if kind != INITIAL:
        return self.weights(risk, ramp, kind)
    aw: uint256 = 0
    if (risk >> 122) & FLAG_COLLATERAL != 0:
        aw = (risk & MASK16) * BPS_TO_WAD
    lw: uint256 = ((risk >> 32) & MASK16) * BPS_TO_WAD
    imf_wad: uint256 = ((risk >> 88) & MASK24) * IMF_TO_WAD
    if imf_wad != 0:
        decimals: uint256 = (risk >> 112) & 31
        if deposit_amount != 0 and aw != 0:
            aw = self.tiered_asset_weight(aw, imf_wad, self.size_wad(deposit_amount, decimals))
        if debt_amount != 0:
            lw = self.tiered_liability_weight(lw, imf_wad, self.size_wad(debt_amount, decimals))
    return aw, lw


@internal
@view
def contribution(
    risk: uint256,
    ramp: uint256,
    price: uint256,
    deposit_amount: uint256,
    debt_amount: uint256,
    kind: uint256,
) -> (uint256, uint256):
    """
    @notice Weighted (collateral, liability) of one asset for health type
            `kind`, in USD WAD: collateral rounds down, liability rounds up.
    @param risk Risk word of the asset.
    @param ramp Ramp word (0 when FLAG_RAMPING is not set).
    @param price Unit price (oracle module): USD WAD per token unit * 1e18.
    @param deposit_amount Token units.
    @param debt_amount Token units.
    @param kind INITIAL, MAINTENANCE, LIQUIDATION_END or VALUE.
    """
    aw: uint256 = 0
    lw: uint256 = 0
    aw, lw = self.health_weights(risk, ramp, kind, deposit_amount, debt_amount)
    collateral: uint256 = 0
    liability: uint256 = 0
    if deposit_amount != 0 and aw != 0:
        collateral = fixed_point.mul_div_down(fixed_point.mul_div_down(deposit_amount, price, WAD), aw, WAD)
    if debt_amount != 0:
        liability = fixed_point.mul_div_up(fixed_point.mul_div_up(debt_amount, price, WAD), lw, WAD)
    return collateral, liability


@internal
@pure
def unit_price_exponent(risk: uint256) -> uint256:
    """
    @notice 36 - feed decimals - token decimals (see the oracle module).
    """
    return 36 - self.feed_decimals(risk) - self.token_decimals(risk)
