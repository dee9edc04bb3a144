# pragma version 0.4.3
"""
@title fixed_point
@license MIT
@notice WAD (1e18 = 1.0) fixed-point helpers. Every rounding direction is an
        explicit choice of the caller: `_down` floors, `_up` ceils. Callers
        pick the direction that favours the protocol and say why at the call
        site.
@custom:security Pure functions; products are checked (Vyper reverts on
        overflow), so a caller never gets a silently wrapped result.
"""

# WAD = 1e18 = 100%. Weights, indexes, rates and USD values use this scale.
WAD: constant(uint256) = 10**18


@internal
@pure
def mul_div_down(x: uint256, y: uint256, d: uint256) -> uint256:
    """
    @notice floor(x * y / d).
    @dev Reverts on overflow of x * y or on d == 0.
    """
    return x * y // d


@internal
@pure
def mul_div_up(x: uint256, y: uint256, d: uint256) -> uint256:
    """
    @notice ceil(x * y / d).
    @dev Reverts on overflow of x * y or on d == 0.
    """
    p: uint256 = x * y
    q: uint256 = p // d
    # unsafe_mul: q * d <= p, so it cannot overflow.
    if unsafe_mul(q, d) != p:
        # unsafe_add: q <= p // d < 2**256 - 1 whenever d >= 2 (d == 1 never leaves a remainder).
        q = unsafe_add(q, 1)
    return q
