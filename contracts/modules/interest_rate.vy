# pragma version 0.4.3
"""
@title interest_rate
@license MIT
@notice Kinked (two-slope) interest-rate model and per-second index accrual.

        Glossary (all WAD-scaled unless said otherwise):
          U      utilisation = total_borrow / total_deposit, capped at 1
          k      kink utilisation, 0 < k < 1
          r(U)   borrow rate per second:
                   U <= k: base + slope1 * U / k
                   U >  k: base + slope1 + slope2 * (U - k) / (1 - k)
          dt     seconds since the last accrual
          bi     borrow index;  bi' = bi + ceil(bi * r * dt / WAD)
          I      interest = ceil(B_shares * bi' / WAD) - ceil(B_shares * bi / WAD)
          rf     reserve factor: the share of I kept as insurance fund
          di     deposit index; di' = di + floor(I * (1 - rf) / D_shares)

        The model is simple (non-compounding within one accrual) interest,
        as Compound III; it compounds across accruals, and every touch of an
        asset accrues it.

        Rate-model word (one storage slot per asset):
          bits   0-63  base rate per second (WAD)
          bits  64-127 slope below the kink per second (WAD)
          bits 128-191 slope above the kink per second (WAD)
          bits 192-255 kink utilisation (WAD)

        Invariants kept: bi' >= bi and di' >= di (indexes never fall here);
        depositors never receive more than I - reserve, so the insurance
        fund (token balance - deposits + borrows) never falls by accrual.
@custom:security Pure; the caller stores results and checks they fit.
"""

from . import fixed_point

WAD: constant(uint256) = fixed_point.WAD
MASK64: constant(uint256) = 2**64 - 1


@internal
@pure
def pack(base_rate: uint256, slope_low: uint256, slope_high: uint256, kink: uint256) -> uint256:
    """
    @notice Packs the rate model into one word. Inputs are WAD per second
            (rates) and WAD (kink); the caller validates their bounds.
    """
    return base_rate | (slope_low << 64) | (slope_high << 128) | (kink << 192)


@internal
@pure
def unpack(word: uint256) -> (uint256, uint256, uint256, uint256):
    """
    @return (base rate, slope below kink, slope above kink, kink), WAD.
    """
    return word & MASK64, (word >> 64) & MASK64, (word >> 128) & MASK64, word >> 192


@internal
@pure
def utilisation(total_deposit: uint256, total_borrow: uint256) -> uint256:
    """
    @notice total_borrow / total_deposit in WAD, rounded down, capped at WAD.
    @param total_deposit Token units of the asset.
    @param total_borrow Token units of the asset.
    """
    if total_borrow == 0:
        return 0
    if total_borrow >= total_deposit:
        return WAD
    return fixed_point.mul_div_down(total_borrow, WAD, total_deposit)


@internal
@pure
def borrow_rate(word: uint256, u: uint256) -> uint256:
    """
    @notice Borrow rate per second (WAD) at utilisation `u` (WAD).
    @dev Rounded down: the rate itself is a parameter, and index growth is
         rounded up in `accrue`, which is where the protocol takes the dust.
    """
    # The word decoded in place (as `unpack`): one internal call less per accrual.
    kink: uint256 = word >> 192
    if u <= kink:
        return (word & MASK64) + ((word >> 64) & MASK64) * u // kink
    # kink < WAD is enforced when the model is set, so WAD - kink > 0.
    return (word & MASK64) + ((word >> 64) & MASK64) + ((word >> 128) & MASK64) * (u - kink) // (WAD - kink)


@internal
@pure
def supply_rate(borrow_rate_per_second: uint256, u: uint256, reserve_factor: uint256) -> uint256:
    """
    @notice Deposit rate per second (WAD): r * U * (1 - rf), rounded down.
    """
    return borrow_rate_per_second * u // WAD * (WAD - reserve_factor) // WAD


@internal
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
    """
    @notice New (deposit index, borrow index) after `dt` seconds.
    @param word Packed rate model.
    @param reserve_factor WAD share of interest kept as insurance fund.
    @param deposit_index WAD.
    @param borrow_index WAD.
    @param deposit_shares Total deposit shares of the asset.
    @param borrow_shares Total borrow shares of the asset.
    @param dt Seconds since the last accrual.
    """
    if borrow_shares == 0 or dt == 0:
        return deposit_index, borrow_index
    # fixed_point's mul_div_down / mul_div_up written in place on this hot
    # path (every accruing action; ~170 gas per internal call saved):
    # floor(p / WAD), and ceil as the floor plus one when a remainder is left
    # (unsafe_add: the floor of p / WAD is < 2**197, it cannot overflow).
    total_deposit: uint256 = deposit_shares * deposit_index // WAD
    p: uint256 = borrow_shares * borrow_index
    total_borrow: uint256 = unsafe_add(p // WAD, convert(p % WAD != 0, uint256))
    rate: uint256 = self.borrow_rate(word, self.utilisation(total_deposit, total_borrow))
    # Round up: borrowers owe at least the exact interest (favours the protocol).
    p = borrow_index * (rate * dt)
    new_borrow_index: uint256 = borrow_index + unsafe_add(p // WAD, convert(p % WAD != 0, uint256))
    p = borrow_shares * new_borrow_index
    interest: uint256 = unsafe_add(p // WAD, convert(p % WAD != 0, uint256)) - total_borrow
    new_deposit_index: uint256 = deposit_index
    if deposit_shares != 0:
        # Round down twice: depositors get at most their share of the interest;
        # the remainder (reserve + dust) stays as insurance fund.
        to_depositors: uint256 = interest * (WAD - reserve_factor) // WAD
        new_deposit_index += to_depositors * WAD // deposit_shares
    return new_deposit_index, new_borrow_index


# Market words of the engine (layouts documented in MarginEngine's storage):
#   market_a: deposit index (bits 0-95) | price feed (96-255)
#   market_b: borrow index (0-95) | last accrual (96-135) | reserve factor (136-195)
#   totals:   deposit shares (0-127) | borrow shares (128-255)
MASK40: constant(uint256) = 2**40 - 1
MASK60: constant(uint256) = 2**60 - 1
MASK96: constant(uint256) = 2**96 - 1
MASK128: constant(uint256) = 2**128 - 1


@internal
@view
def indexes_now(market_a: uint256, market_b: uint256, totals: uint256, word: uint256) -> (uint256, uint256):
    """
    @notice (deposit index, borrow index) of an asset accrued to the current
            block time, from its packed market words, without storing.
    """
    last: uint256 = (market_b >> 96) & MASK40
    deposit_index: uint256 = market_a & MASK96
    borrow_index: uint256 = market_b & MASK96
    if totals >> 128 == 0 or last >= block.timestamp:
        return deposit_index, borrow_index
    return self.accrue(
        word,
        (market_b >> 136) & MASK60,
        deposit_index,
        borrow_index,
        totals & MASK128,
        totals >> 128,
        block.timestamp - last,
    )
