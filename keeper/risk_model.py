"""Bit-exact Python reference model of xmargin's risk math.

This module mirrors, integer for integer, the Vyper 0.4.3 code of

  * ``contracts/modules/fixed_point.vy``   -- WAD mul-div with explicit rounding
  * ``contracts/modules/interest_rate.vy`` -- kinked rate model, index accrual
  * ``contracts/modules/margin.vy``        -- weights, maintenance ramp,
    liquidation-end midpoint, Drift v2 IMF tiering, per-asset contribution
  * ``contracts/modules/oracle.vy``        -- Chainlink round validation and
    unit-price normalisation
  * ``contracts/MarginEngine.vy``          -- storage word layouts, ``_accrue``,
    ``_health`` (debt at the borrow index accrued to now) and the share
    rounding of deposit / withdraw / borrow / repay / transfer_collateral
  * ``contracts/MarginLens.vy``            -- ``market``, ``balances``,
    ``healths`` (ratio) views

It is pure Python (3.11), integer math only (no floats), and has no web3 or
titanoboa dependency: callers feed it the raw words the engine exposes
(``asset_state(id)``, ``position(owner, sub, asset)``,
``account_header(owner, sub)``, a feed's ``latestRoundData()``) or the engine's
events, and get back the numbers the engine computes. It is used by the
differential tests (``tests/differential``) and is meant to be the
liquidation keeper's off-chain health replica.

Units and scales used throughout (same as the contracts):

  * WAD = 1e18 = 1.0. Weights, indexes, rates (per second), utilisation,
    reserve factor and USD values are WAD-scaled.
  * "token units": an asset's smallest unit (token decimals).
  * unit price: the USD value (WAD) of one token unit, times 1e18, so that
    ``usd_wad = amount * unit_price // 1e18`` for any token decimals.
  * time: unix seconds (block timestamps); "blocks": block numbers.

Reverts: wherever the Vyper code would revert (checked uint256 overflow or
underflow, division by zero, a failed ``assert`` with a reason, an ABI decode
bound check) the model raises :class:`VyperRevert` (``reason`` is the engine's
revert string when there is one, else a short description). Values the
contracts hold as ``uint256`` must be ``0 <= x < 2**256``; the model checks
every intermediate result the EVM would check.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, TypeVar

__all__ = [
    # constants
    "WAD", "MAX_UINT256", "MAX_INT256", "MAX_ASSETS", "BPS_TO_WAD", "IMF_TO_WAD",
    "INITIAL", "MAINTENANCE", "LIQUIDATION_END", "VALUE", "HEALTH_TYPES", "ALL_KINDS",
    "FLAG_COLLATERAL", "FLAG_RAMPING", "SIZE_LIABILITY_FLOOR", "SIZE_ASSET_CEILING",
    "ERR_NONE", "ERR_CALL", "ERR_NOT_POSITIVE", "ERR_BOUNDS", "ERR_INCOMPLETE", "ERR_STALE",
    "ORACLE_REVERT_REASONS",
    "LISTED", "PAUSE_DEPOSIT", "PAUSE_WITHDRAW", "PAUSE_BORROW", "PAUSE_TRANSFER", "BORROWABLE", "PAUSABLE",
    "VyperRevert",
    # fixed point
    "mul_div_down", "mul_div_up",
    # interest
    "RateModel", "pack_rate_model", "unpack_rate_model", "utilisation", "borrow_rate", "supply_rate",
    "accrue", "indexes_now",
    # margin
    "RiskParams", "Ramp", "pack_risk", "unpack_risk", "token_decimals", "feed_decimals", "risk_flags",
    "max_staleness", "answer_bounds", "bound_scale", "imf", "pack_ramp", "ramp_end", "maintenance_weights", "weights",
    "size_wad", "tiered_asset_weight", "tiered_liability_weight", "contribution", "unit_price_exponent",
    # oracle
    "RoundData", "PriceQuote", "unit_price", "asset_price", "sequencer_status", "recently_stale",
    # liquidation
    "LiquidationParams", "Plan", "pack_liquidation", "unpack_liquidation", "liquidation_bonus", "seize_for",
    "repay_for", "liquidation_plan", "plan_for",
    # engine words
    "AssetState", "AssetConfig", "MarketState", "Position", "AccountHeader", "account_key", "position_key",
    "decode_info",
    # health and views
    "Health", "account_health", "health_ratio", "Balance", "MarketView", "balances", "market_view",
    # replicas
    "MarketReplica", "AccountReplica", "ProtocolReplica", "ReplicaDesync",
]

# ---------------------------------------------------------------------------
# Constants (names and values as in the contracts)
# ---------------------------------------------------------------------------

WAD = 10**18
MAX_UINT256 = 2**256 - 1
MAX_INT256 = 2**255 - 1
MAX_ASSETS = 64

MASK16 = 2**16 - 1
MASK24 = 2**24 - 1
MASK40 = 2**40 - 1
MASK60 = 2**60 - 1
MASK64 = 2**64 - 1
MASK80 = 2**80 - 1
MASK96 = 2**96 - 1
MASK120 = 2**120 - 1
MASK128 = 2**128 - 1

BPS_TO_WAD = 10**14  # margin.vy: 1 basis point in WAD
IMF_TO_WAD = 10**12  # margin.vy: imf is stored in units of 1e-6

# Health types (margin.vy) and the `kinds` bitmask of ledger._health.
INITIAL = 0
MAINTENANCE = 1
LIQUIDATION_END = 2
VALUE = 3  # unweighted (aw = lw = 1): solvency and dust
HEALTH_TYPES = (INITIAL, MAINTENANCE, LIQUIDATION_END, VALUE)
ALL_KINDS = 15

# Risk-word flags (margin.vy, bits 122-127).
FLAG_COLLATERAL = 1
FLAG_RAMPING = 2

# Drift v2 IMF constants (margin.vy).
SIZE_LIABILITY_FLOOR = 8 * 10**17
SIZE_ASSET_CEILING = 11 * 10**17

# Oracle error codes (oracle.vy).
ERR_NONE = 0
ERR_CALL = 1
ERR_NOT_POSITIVE = 2
ERR_BOUNDS = 3
ERR_INCOMPLETE = 4
ERR_STALE = 5

# MarginEngine._revert_oracle: the revert string of each error code.
ORACLE_REVERT_REASONS = {
    ERR_CALL: "oracle: feed call failed",
    ERR_NOT_POSITIVE: "oracle: non-positive price",
    ERR_BOUNDS: "oracle: price out of bounds",
    ERR_INCOMPLETE: "oracle: incomplete round",
    ERR_STALE: "oracle: stale price",
}

# Engine info-word flags (bits 8-15 of the per-token info word).
LISTED = 1
PAUSE_DEPOSIT = 2
PAUSE_WITHDRAW = 4
PAUSE_BORROW = 8
PAUSE_TRANSFER = 16
BORROWABLE = 32
PAUSABLE = PAUSE_DEPOSIT | PAUSE_WITHDRAW | PAUSE_BORROW | PAUSE_TRANSFER


class VyperRevert(Exception):
    """Raised where the contract code would revert.

    ``reason`` is the contract's revert string for an ``assert``/``raise``
    (e.g. ``"health: below initial margin"``), or a short description for a
    checked-arithmetic or ABI-decode revert (``"overflow"``, ``"underflow"``,
    ``"division by zero"``, ``"abi_decode"``).
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------
# Checked uint256 arithmetic (Vyper semantics)
# ---------------------------------------------------------------------------


def _u(x: int) -> int:
    """A uint256 result: reverts (like Vyper) on overflow or underflow."""
    if x > MAX_UINT256:
        raise VyperRevert("overflow")
    if x < 0:
        raise VyperRevert("underflow")
    return x


def _div(x: int, d: int) -> int:
    """Vyper ``x // d`` on uint256: reverts on d == 0."""
    if d == 0:
        raise VyperRevert("division by zero")
    return x // d


def _mul(x: int, y: int) -> int:
    return _u(x * y)


def _add(x: int, y: int) -> int:
    return _u(x + y)


def _sub(x: int, y: int) -> int:
    return _u(x - y)


def _check_uint(*values: int) -> None:
    for v in values:
        if not isinstance(v, int) or v < 0 or v > MAX_UINT256:
            raise ValueError(f"not a uint256: {v!r}")


# ---------------------------------------------------------------------------
# fixed_point.vy
# ---------------------------------------------------------------------------


def mul_div_down(x: int, y: int, d: int) -> int:
    """floor(x * y / d) -- ``fixed_point.mul_div_down``.

    Any scale (the caller's): e.g. ``mul_div_down(shares, index_wad, WAD)``
    gives token units. Reverts (VyperRevert) when ``x * y`` overflows uint256
    or ``d == 0``.
    """
    return _div(_mul(x, y), d)


def mul_div_up(x: int, y: int, d: int) -> int:
    """ceil(x * y / d) -- ``fixed_point.mul_div_up``.

    Same reverts as :func:`mul_div_down`.
    """
    p = _mul(x, y)
    q = _div(p, d)
    if q * d != p:
        q += 1
    return q


# ---------------------------------------------------------------------------
# interest_rate.vy
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RateModel:
    """Kinked rate model (``interest_rate.vy`` rate-model word).

    base_rate, slope_low, slope_high: borrow rate per second, WAD (64 bits each).
    kink: utilisation of the kink, WAD (bits 192-255).
    """

    base_rate: int
    slope_low: int
    slope_high: int
    kink: int

    @classmethod
    def from_word(cls, word: int) -> "RateModel":
        """Decodes the packed rate-model word (``interest_rate.unpack``)."""
        return cls(*unpack_rate_model(word))

    def to_word(self) -> int:
        """Packs into the engine's rate-model word (``interest_rate.pack``)."""
        return pack_rate_model(self.base_rate, self.slope_low, self.slope_high, self.kink)


def pack_rate_model(base_rate: int, slope_low: int, slope_high: int, kink: int) -> int:
    """``interest_rate.pack``: base | slope_low << 64 | slope_high << 128 | kink << 192.

    Inputs are WAD per second (rates) and WAD (kink). Like the contract, bits
    shifted past bit 255 are dropped and nothing is masked (the configurator
    validates bounds).
    """
    return (base_rate | (slope_low << 64) | (slope_high << 128) | (kink << 192)) & MAX_UINT256


def unpack_rate_model(word: int) -> tuple[int, int, int, int]:
    """``interest_rate.unpack`` -> (base rate, slope below kink, slope above kink, kink), WAD."""
    return word & MASK64, (word >> 64) & MASK64, (word >> 128) & MASK64, word >> 192


def utilisation(total_deposit: int, total_borrow: int) -> int:
    """``interest_rate.utilisation``: total_borrow / total_deposit in WAD,
    rounded down, capped at WAD (1.0). Inputs in token units."""
    if total_borrow == 0:
        return 0
    if total_borrow >= total_deposit:
        return WAD
    return mul_div_down(total_borrow, WAD, total_deposit)


def borrow_rate(word: int, u: int) -> int:
    """``interest_rate.borrow_rate``: borrow rate per second (WAD) at
    utilisation ``u`` (WAD), rounded down.

    u <= kink: base + slope_low * u // kink
    u >  kink: base + slope_low + slope_high * (u - kink) // (WAD - kink)
    (reverts on kink == 0 at u == 0 -- division by zero -- as the contract).
    """
    base, slope_low, slope_high, kink = unpack_rate_model(word)
    if u <= kink:
        return _add(base, _div(_mul(slope_low, u), kink))
    return _add(_add(base, slope_low), _div(_mul(slope_high, _sub(u, kink)), _sub(WAD, kink)))


def supply_rate(borrow_rate_per_second: int, u: int, reserve_factor: int) -> int:
    """``interest_rate.supply_rate``: deposit rate per second (WAD),
    ``r * u // WAD * (WAD - rf) // WAD`` (left to right, rounded down twice)."""
    return _div(_mul(_div(_mul(borrow_rate_per_second, u), WAD), _sub(WAD, reserve_factor)), WAD)


def accrue(
    word: int,
    reserve_factor: int,
    deposit_index: int,
    borrow_index: int,
    deposit_shares: int,
    borrow_shares: int,
    dt: int,
) -> tuple[int, int]:
    """``interest_rate.accrue``: new (deposit index, borrow index), WAD, after
    ``dt`` seconds of simple interest.

      total_deposit = floor(D * di / WAD), total_borrow = ceil(B * bi / WAD)
      r   = borrow_rate(word, utilisation(total_deposit, total_borrow))
      bi' = bi + ceil(bi * r * dt / WAD)
      I   = ceil(B * bi' / WAD) - total_borrow
      di' = di + floor(floor(I * (WAD - rf) / WAD) * WAD / D)   (if D != 0)

    Unchanged when B == 0 or dt == 0. ``reserve_factor`` WAD, shares raw.
    """
    if borrow_shares == 0 or dt == 0:
        return deposit_index, borrow_index
    total_deposit = mul_div_down(deposit_shares, deposit_index, WAD)
    total_borrow = mul_div_up(borrow_shares, borrow_index, WAD)
    rate = borrow_rate(word, utilisation(total_deposit, total_borrow))
    new_borrow_index = _add(borrow_index, mul_div_up(borrow_index, _mul(rate, dt), WAD))
    interest = _sub(mul_div_up(borrow_shares, new_borrow_index, WAD), total_borrow)
    new_deposit_index = deposit_index
    if deposit_shares != 0:
        to_depositors = _div(_mul(interest, _sub(WAD, reserve_factor)), WAD)
        new_deposit_index = _add(new_deposit_index, _div(_mul(to_depositors, WAD), deposit_shares))
    return new_deposit_index, new_borrow_index


def indexes_now(market_a: int, market_b: int, totals: int, word: int, now: int) -> tuple[int, int]:
    """``interest_rate.indexes_now``: (deposit index, borrow index), WAD, of an
    asset accrued to block time ``now`` (unix s) from its packed words,
    without storing.

    market_a: deposit index (bits 0-95) | feed (96-255)
    market_b: borrow index (0-95) | last accrual (96-135) | reserve factor (136-195)
    totals:   deposit shares (0-127) | borrow shares (128-255)
    word:     rate-model word.
    Stored indexes are returned when there are no borrow shares or
    ``last >= now``. ``interest_rate.indexes_now``, which the engine's
    ``_health`` and the lens use, gives the same numbers.
    """
    last = (market_b >> 96) & MASK40
    deposit_index = market_a & MASK96
    borrow_index = market_b & MASK96
    if totals >> 128 == 0 or last >= now:
        return deposit_index, borrow_index
    return accrue(
        word,
        (market_b >> 136) & MASK60,
        deposit_index,
        borrow_index,
        totals & MASK128,
        totals >> 128,
        now - last,
    )


# ---------------------------------------------------------------------------
# margin.vy
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskParams:
    """``margin.RiskParams``: the risk word as WAD values (target weights,
    before any ramp).

    asset_weight_initial / _maintenance, liability_weight_initial /
    _maintenance: WAD (multiples of 1e14); max_staleness: seconds; imf: WAD
    per sqrt(whole token) (multiple of 1e12); min_answer / max_answer: feed
    decimals (stored divided by :func:`bound_scale`, so multiples of it).
    """

    asset_weight_initial: int
    asset_weight_maintenance: int
    liability_weight_initial: int
    liability_weight_maintenance: int
    max_staleness: int
    imf: int
    min_answer: int
    max_answer: int


@dataclass(frozen=True)
class Ramp:
    """Maintenance-weight ramp word (margin.vy): bits 0-15 aw_maint at ramp
    start (bp), 16-31 lw_maint at ramp start (bp), 32-71 start (unix s),
    72-111 end (unix s). Here the weights are WAD."""

    asset_weight_start: int
    liability_weight_start: int
    start: int
    end: int

    @classmethod
    def from_word(cls, word: int) -> "Ramp":
        """Decodes a ramp word."""
        return cls(
            asset_weight_start=(word & MASK16) * BPS_TO_WAD,
            liability_weight_start=((word >> 16) & MASK16) * BPS_TO_WAD,
            start=(word >> 32) & MASK40,
            end=(word >> 72) & MASK40,
        )

    def to_word(self) -> int:
        """Packs (``margin.pack_ramp``); weights are floored to basis points."""
        return pack_ramp(
            self.asset_weight_start // BPS_TO_WAD, self.liability_weight_start // BPS_TO_WAD, self.start, self.end
        )


def pack_risk(p: RiskParams, token_decimals_: int, feed_decimals_: int, flags: int) -> int:
    """``margin.pack_risk``: packs validated parameters into the risk word
    (weights floored to bp, imf to 1e-6, answer bounds divided by
    :func:`bound_scale`; no masking, as the contract)."""
    scale = bound_scale(feed_decimals_)
    return (
        (p.asset_weight_initial // BPS_TO_WAD)
        | (p.asset_weight_maintenance // BPS_TO_WAD) << 16
        | (p.liability_weight_initial // BPS_TO_WAD) << 32
        | (p.liability_weight_maintenance // BPS_TO_WAD) << 48
        | p.max_staleness << 64
        | (p.imf // IMF_TO_WAD) << 88
        | token_decimals_ << 112
        | feed_decimals_ << 117
        | flags << 122
        | (p.min_answer // scale) << 128
        | (p.max_answer // scale) << 192
    ) & MAX_UINT256


def unpack_risk(word: int) -> RiskParams:
    """``margin.unpack_risk``: the risk word as :class:`RiskParams` (WAD;
    answer bounds in feed decimals)."""
    scale = bound_scale(feed_decimals(word))
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


def token_decimals(risk: int) -> int:
    """``margin.token_decimals``: bits 112-116 of the risk word."""
    return (risk >> 112) & 31


def feed_decimals(risk: int) -> int:
    """``margin.feed_decimals``: bits 117-121 of the risk word."""
    return (risk >> 117) & 31


def risk_flags(risk: int) -> int:
    """``margin.flags``: bits 122-127 (FLAG_COLLATERAL = 1, FLAG_RAMPING = 2)."""
    return (risk >> 122) & 63


def max_staleness(risk: int) -> int:
    """``margin.max_staleness``: seconds a price round may age (bits 64-87)."""
    return (risk >> 64) & MASK24


def answer_bounds(risk: int) -> tuple[int, int]:
    """``margin.answer_bounds``: (min answer, max answer) in feed decimals:
    the stored 64-bit fields (bits 128-191, 192-255) times :func:`bound_scale`."""
    scale = bound_scale(feed_decimals(risk))
    return ((risk >> 128) & MASK64) * scale, (risk >> 192) * scale


def bound_scale(feed_decimals_: int) -> int:
    """``margin.bound_scale``: 10**(feed decimals - 8) above 8 decimals,
    else 1 (answer bounds are stored with at most 8 decimals)."""
    if feed_decimals_ > 8:
        return 10 ** (feed_decimals_ - 8)
    return 1


def imf(risk: int) -> int:
    """``margin.imf``: size factor, WAD per sqrt(whole token)."""
    return ((risk >> 88) & MASK24) * IMF_TO_WAD


def pack_ramp(aw_start_bps: int, lw_start_bps: int, start: int, end: int) -> int:
    """``margin.pack_ramp``: aw_start (bp) | lw_start (bp) << 16 | start << 32 | end << 72."""
    return (aw_start_bps | lw_start_bps << 16 | start << 32 | end << 72) & MAX_UINT256


def ramp_end(ramp: int) -> int:
    """``margin.ramp_end``: end of the ramp, unix seconds."""
    return (ramp >> 72) & MASK40


def maintenance_weights(risk: int, ramp: int, now: int) -> tuple[int, int]:
    """``margin.maintenance_weights``: (aw_maint, lw_maint), WAD, at block
    time ``now`` (unix s).

    ``ramp`` is the ramp word when FLAG_RAMPING is set, else 0 (the engine's
    ``_ramp_of``). During a ramp (start <= now < end) each weight that is
    being tightened moves linearly from its start value:
      aw = aw_start - ceil((aw_start - aw) * elapsed / duration)
      lw = lw_start + ceil((lw - lw_start) * elapsed / duration)
    (asset weight rounds down, liability weight up). ``now < start`` reverts
    (underflow), as in the contract.
    """
    aw = ((risk >> 16) & MASK16) * BPS_TO_WAD
    lw = ((risk >> 48) & MASK16) * BPS_TO_WAD
    if ramp == 0:
        return aw, lw
    end = (ramp >> 72) & MASK40
    if now >= end:
        return aw, lw
    start = (ramp >> 32) & MASK40
    aw_start = (ramp & MASK16) * BPS_TO_WAD
    lw_start = ((ramp >> 16) & MASK16) * BPS_TO_WAD
    duration = _sub(end, start)
    elapsed = _sub(now, start)
    if aw_start > aw:
        aw = _sub(aw_start, mul_div_up(aw_start - aw, elapsed, duration))
    if lw_start < lw:
        lw = _add(lw_start, mul_div_up(lw - lw_start, elapsed, duration))
    return aw, lw


def weights(risk: int, ramp: int, kind: int, now: int) -> tuple[int, int]:
    """``margin.weights``: flat (aw, lw), WAD, of health type ``kind`` at
    block time ``now``.

    INITIAL: (aw_init if FLAG_COLLATERAL else 0, lw_init)
    VALUE: (WAD, WAD) -- unweighted
    MAINTENANCE: :func:`maintenance_weights` (ramp applied)
    LIQUIDATION_END (any other kind): midpoint of initial and maintenance,
      ((aw_init + aw_m) // 2, (lw_init + lw_m + 1) // 2) -- note aw_init here
      is the raw weight, the collateral flag is not applied.
    """
    if kind == INITIAL:
        aw = 0
        if (risk >> 122) & FLAG_COLLATERAL != 0:
            aw = (risk & MASK16) * BPS_TO_WAD
        return aw, ((risk >> 32) & MASK16) * BPS_TO_WAD
    if kind == VALUE:
        return WAD, WAD
    aw_m, lw_m = maintenance_weights(risk, ramp, now)
    if kind == MAINTENANCE:
        return aw_m, lw_m
    aw_i = (risk & MASK16) * BPS_TO_WAD
    lw_i = ((risk >> 32) & MASK16) * BPS_TO_WAD
    return (aw_i + aw_m) // 2, (lw_i + lw_m + 1) // 2


def size_wad(amount: int, token_decimals_: int) -> int:
    """``margin.size_wad``: a token amount (token units) as whole tokens, WAD
    (``amount * 10**(18 - decimals)``; reverts for decimals > 18)."""
    return _mul(amount, 10 ** _sub(18, token_decimals_))


def tiered_asset_weight(aw: int, imf_wad: int, size: int) -> int:
    """``margin.tiered_asset_weight`` (Drift v2 size discount):
    min(aw, 1.1 / (1 + imf * sqrt(s))) in WAD, rounded down:
      premium = ceil(imf * (isqrt(size * WAD) + 1) / WAD)
      min(aw, floor(1.1e18 * WAD / (WAD + premium)))

    aw: flat initial asset weight, WAD; imf_wad: WAD per sqrt(whole token);
    size: whole tokens, WAD. sqrt(s) in WAD is ``math.isqrt(size * WAD)``
    (Vyper's ``isqrt`` floors; the +1 bounds it above).
    """
    if imf_wad == 0 or size == 0:
        return aw
    premium = mul_div_up(imf_wad, _add(math.isqrt(_mul(size, WAD)), 1), WAD)
    discounted = SIZE_ASSET_CEILING * WAD // _add(WAD, premium)
    return min(aw, discounted)


def tiered_liability_weight(lw: int, imf_wad: int, size: int) -> int:
    """``margin.tiered_liability_weight`` (Drift v2 size premium):
    max(lw, 0.8 * lw + imf * sqrt(s)) in WAD, rounded up:
      premium = ceil(imf * (isqrt(size * WAD) + 1) / WAD)
      max(lw, ceil(lw * 0.8) + premium)
    """
    if imf_wad == 0 or size == 0:
        return lw
    premium = mul_div_up(imf_wad, _add(math.isqrt(_mul(size, WAD)), 1), WAD)
    premium_weight = _add(mul_div_up(lw, SIZE_LIABILITY_FLOOR, WAD), premium)
    return max(lw, premium_weight)


def contribution(
    risk: int,
    ramp: int,
    price: int,
    deposit_amount: int,
    debt_amount: int,
    kind: int,
    now: int,
) -> tuple[int, int]:
    """``margin.contribution``: weighted (collateral, liability), USD WAD, of
    one asset for health type ``kind`` at block time ``now``.

    price: unit price (USD WAD per token unit * 1e18); amounts: token units.
      collateral = floor(floor(deposit * price / WAD) * aw / WAD)  (only if
                   deposit != 0 and aw != 0)
      liability  = ceil(ceil(debt * price / WAD) * lw / WAD)
    For INITIAL the weights are tiered by position size (imf != 0).
    """
    aw, lw = weights(risk, ramp, kind, now)
    imf_wad = 0
    decimals = 0
    if kind == INITIAL:
        imf_wad = imf(risk)
        decimals = token_decimals(risk)
    collateral = 0
    liability = 0
    if deposit_amount != 0 and aw != 0:
        if imf_wad != 0:
            aw = tiered_asset_weight(aw, imf_wad, size_wad(deposit_amount, decimals))
        collateral = mul_div_down(mul_div_down(deposit_amount, price, WAD), aw, WAD)
    if debt_amount != 0:
        if imf_wad != 0:
            lw = tiered_liability_weight(lw, imf_wad, size_wad(debt_amount, decimals))
        liability = mul_div_up(mul_div_up(debt_amount, price, WAD), lw, WAD)
    return collateral, liability


def unit_price_exponent(risk: int) -> int:
    """``margin.unit_price_exponent``: 36 - feed decimals - token decimals
    (reverts if negative)."""
    return _sub(_sub(36, feed_decimals(risk)), token_decimals(risk))


# ---------------------------------------------------------------------------
# oracle.vy
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundData:
    """A Chainlink ``latestRoundData()`` answer:
    (roundId, answer, startedAt, updatedAt, answeredInRound).

    answer in feed decimals (int256); timestamps unix seconds. The oracle
    module decodes every field as a full word (roundId and answeredInRound as
    uint256, not uint80), so an out-of-range id only fails the completeness
    check.
    """

    round_id: int
    answer: int
    started_at: int
    updated_at: int
    answered_in_round: int

    @classmethod
    def from_tuple(cls, t: Iterable[int]) -> "RoundData":
        """From the 5-tuple returned by ``feed.latestRoundData()``."""
        return cls(*(int(x) for x in t))


@dataclass(frozen=True)
class PriceQuote:
    """(unit price, oracle error code) of an asset, as ``oracle.unit_price``
    returns it. price: USD WAD per token unit * 1e18."""

    price: int
    error: int = ERR_NONE

    @property
    def valid(self) -> bool:
        """True when the round was accepted (error == ERR_NONE)."""
        return self.error == ERR_NONE


def _check_round(r: RoundData) -> None:
    # oracle.unit_price / latest_round: abi_decode(data, (uint256, int256, uint256, uint256, uint256))
    # -- round ids are read as uint256 (no uint80 clamp: views never revert).
    if not (-(2**255) <= r.answer <= MAX_INT256):
        raise ValueError(f"answer is not an int256: {r.answer}")
    for v in (r.round_id, r.started_at, r.updated_at, r.answered_in_round):
        if not 0 <= v <= MAX_UINT256:
            raise ValueError(f"round field is not a uint256: {v}")


def unit_price(
    round_data: RoundData | None,
    min_answer: int,
    max_answer: int,
    max_staleness_: int,
    exponent: int,
    now: int,
) -> tuple[int, int]:
    """``oracle.unit_price``: validated unit price -> (price, error code).

    round_data: the feed's latest round, or None when the call reverted or
      returned short data (-> (0, ERR_CALL)).
    min_answer / max_answer: accepted answer range, feed decimals.
    max_staleness_: seconds; exponent: 36 - feed decimals - token decimals;
    now: block time, unix s.

    Checks in order: answer <= 0 -> (0, ERR_NOT_POSITIVE); otherwise the
    price ``min(answer, 2**128) * 10**exponent`` is returned *also when the
    round is rejected*: ERR_BOUNDS (answer outside [min, max]),
    ERR_INCOMPLETE (updatedAt == 0 or answeredInRound < roundId), ERR_STALE
    (now > updatedAt + max staleness).
    """
    if round_data is None:
        return 0, ERR_CALL
    _check_round(round_data)
    answer = round_data.answer
    if answer <= 0:
        return 0, ERR_NOT_POSITIVE
    raw = answer
    price = _mul(min(raw, 2**128), 10**exponent)
    if raw < min_answer or raw > max_answer:
        return price, ERR_BOUNDS
    if round_data.updated_at == 0 or round_data.answered_in_round < round_data.round_id:
        return price, ERR_INCOMPLETE
    if now > _add(round_data.updated_at, max_staleness_):
        return price, ERR_STALE
    return price, ERR_NONE


def asset_price(risk: int, round_data: RoundData | None, now: int) -> PriceQuote:
    """``MarginEngine._price`` / ``MarginLens._price``: the asset's
    :class:`PriceQuote` from its risk word (bounds, staleness, decimals) and
    its feed's latest round (None = the call failed) at block time ``now``."""
    lo, hi = answer_bounds(risk)
    price, err = unit_price(round_data, lo, hi, max_staleness(risk), unit_price_exponent(risk), now)
    return PriceQuote(price, err)


def sequencer_status(round_data: RoundData | None, grace_period: int, now: int, has_feed: bool = True) -> tuple[bool, bool]:
    """``oracle.sequencer_status``: (up and past its grace period, down).

    has_feed=False models an L1 deployment (empty feed): (True, False).
    round_data None = the call failed. A "down" answer (!= 0), startedAt ==
    0 or startedAt > now -> (False, True) (fail closed). Otherwise
    (now - startedAt > grace_period, False). grace_period and now: seconds.
    """
    if not has_feed:
        return True, False
    if round_data is None:
        return False, True
    _check_round(round_data)
    if round_data.answer != 0 or round_data.started_at == 0 or round_data.started_at > now:
        return False, True
    return now - round_data.started_at > grace_period, False


MAX_GRACE_ROUNDS = 16  # oracle.MAX_GRACE_ROUNDS: most previous rounds recently_stale reads


def recently_stale(
    latest: RoundData | None,
    round_data: Callable[[int], RoundData | None],
    max_staleness_: int,
    grace_period: int,
    now: int,
) -> bool:
    """``oracle.recently_stale``: True while the feed is inside the grace
    period after a stale stretch -- some round younger than ``grace_period``
    (seconds) came more than ``max_staleness_`` (seconds) after the round
    before it; liquidations then wait (``liquidation: price grace period``).

    latest: ``latestRoundData()`` (None = call failed -> False);
    round_data: ``getRoundData(id)`` for an id (None = the call reverted or
    returned short data); called only as the walk needs it, newest first.
    The walk stands on the latest round and, while that round is younger
    than the grace period, reads the round before it: a gap longer than
    max staleness -> True; the first round of a phase (roundId & (2**64-1)
    <= 1), a latest roundId >= 2**80 or a failed read -> False. At most
    :data:`MAX_GRACE_ROUNDS` previous rounds are read (then False: fail
    open, see docs/risk-model.md). now: block time, unix s.
    """
    if latest is None:
        return False
    _check_round(latest)
    round_id, updated_at = latest.round_id, latest.updated_at
    if round_id >= 2**80:
        return False
    for _ in range(MAX_GRACE_ROUNDS):
        if now >= _add(updated_at, grace_period) or round_id & MASK64 <= 1:
            return False
        round_id -= 1
        previous = round_data(round_id)
        if previous is None:
            return False
        _check_round(previous)
        if updated_at > _add(previous.updated_at, max_staleness_):
            return True
        updated_at = previous.updated_at
    return False


# ---------------------------------------------------------------------------
# liquidation.vy
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LiquidationParams:
    """``liquidation.LiquidationParams`` of an asset when seized, WAD:
    min_bonus, max_bonus, full_bonus_depth (of 1 - health ratio),
    insurance_share (of the bonus). Word: four 16-bit bp fields."""

    min_bonus: int
    max_bonus: int
    full_bonus_depth: int
    insurance_share: int

    @classmethod
    def from_word(cls, word: int) -> "LiquidationParams":
        """``liquidation.unpack``."""
        return unpack_liquidation(word)

    def to_word(self) -> int:
        """``liquidation.pack``."""
        return pack_liquidation(self)


@dataclass(frozen=True)
class Plan:
    """``liquidation.Plan``: repay (token units of the repaid asset), seize
    (token units of the seized asset taken from the account), to_insurance
    (part of seize kept as insurance fund), bonus (WAD), leaves_dust (a
    request short of what the rules allow would leave dust: the engine
    reverts), seize_all (the whole deposit at the stored index is seized:
    the engine burns every deposit share), lowers_ratio (refused: even a
    zero bonus would lower a solvent account's maintenance ratio)."""

    repay: int
    seize: int
    to_insurance: int
    bonus: int
    leaves_dust: bool
    seize_all: bool = False
    lowers_ratio: bool = False


def pack_liquidation(p: LiquidationParams) -> int:
    """``liquidation.pack``: min | max << 16 | depth << 32 | share << 48 (bp)."""
    return (
        p.min_bonus // BPS_TO_WAD
        | (p.max_bonus // BPS_TO_WAD) << 16
        | (p.full_bonus_depth // BPS_TO_WAD) << 32
        | (p.insurance_share // BPS_TO_WAD) << 48
    ) & MAX_UINT256


def unpack_liquidation(word: int) -> LiquidationParams:
    """``liquidation.unpack``: the liquidation word as WAD values."""
    return LiquidationParams(
        (word & MASK16) * BPS_TO_WAD,
        ((word >> 16) & MASK16) * BPS_TO_WAD,
        ((word >> 32) & MASK16) * BPS_TO_WAD,
        ((word >> 48) & MASK16) * BPS_TO_WAD,
    )


def liquidation_bonus(ratio: int, p: LiquidationParams, aw_seize: int, lw_repay: int) -> int:
    """``liquidation.bonus``: health-scaled bonus, WAD, rounded down.

      depth = 1 - min(ratio, 1)
      b = min_bonus + (max_bonus - min_bonus) * min(depth, full_depth) / full_depth
      (b = max_bonus once depth >= full_depth; b = min_bonus if max <= min)
      if aw_seize != 0: cap = ratio * lw_repay // aw_seize;
                        cap <= 1 -> 0, else b = min(b, cap - 1)
    ratio: maintenance C/D (WAD); aw_seize / lw_repay: maintenance weights.
    """
    depth = WAD - min(ratio, WAD)
    b = p.min_bonus
    if p.max_bonus > p.min_bonus:
        if depth >= p.full_bonus_depth:
            b = p.max_bonus
        else:
            b = _add(b, _div(_mul(p.max_bonus - p.min_bonus, depth), p.full_bonus_depth))
    if aw_seize != 0:
        cap = _div(_mul(ratio, lw_repay), aw_seize)
        if cap <= WAD:
            return 0
        b = min(b, cap - WAD)
    return b


def seize_for(repay: int, price_repay: int, price_seize: int, b: int) -> int:
    """``liquidation.seize_for``: token units of the seized asset worth
    ``repay`` * (1 + b), rounded down. Prices are unit prices."""
    value = mul_div_down(repay, price_repay, WAD)
    return mul_div_down(mul_div_down(value, _add(WAD, b), WAD), WAD, price_seize)


def repay_for(seize: int, price_repay: int, price_seize: int, b: int) -> int:
    """``liquidation.repay_for``: token units of the repaid asset whose
    value * (1 + b) buys ``seize``, rounded up."""
    value = mul_div_up(seize, price_seize, WAD)
    return mul_div_up(mul_div_up(value, WAD, _add(WAD, b)), WAD, price_repay)


def liquidation_plan(
    le_health: int,
    debt: int,
    deposit: int,
    price_repay: int,
    price_seize: int,
    lw_le_repay: int,
    aw_le_seize: int,
    b: int,
    insurance_share: int,
    dust: int,
    requested: int,
) -> Plan:
    """``liquidation.plan``: amounts of a liquidation.

    le_health: liquidation-end health, USD WAD (int256); debt: account debt
    in the repaid asset (token units, accrued); deposit: account deposit in
    the seized asset (token units, stored index); prices: unit prices;
    lw_le_repay / aw_le_seize: liquidation-end weights (WAD); b: bonus
    (WAD); insurance_share: WAD; dust: USD WAD; requested: token units.

    Repay cap to the target: floor(floor(-H_le * WAD / (lw - floor(aw * (1 + b))))
    * WAD / price_repay), then the dust rules (see liquidation.vy), seize =
    :func:`seize_for`, to_insurance = (seize - floor value of repay in the
    seized asset) * insurance_share // WAD; leaves_dust for a request
    below the cap leaving a rest below dust on either side, or below the
    full price of a deposit whose rest would be dust; seize_all when
    seize == deposit.
    """
    cap = debt
    gain = lw_le_repay
    loss = mul_div_down(aw_le_seize, _add(WAD, b), WAD)
    if le_health >= 0:
        cap = 0
    elif gain > loss:
        if le_health == -(2**255):
            raise VyperRevert("overflow")
        value = _div(_mul(-le_health, WAD), gain - loss)
        cap = min(debt, _div(_mul(value, WAD), price_repay))
    if mul_div_up(_sub(debt, cap), price_repay, WAD) < dust:
        cap = debt
    repay = min(cap, requested)
    leaves_dust = False
    seize = seize_for(repay, price_repay, price_seize, b)
    if seize >= deposit:
        seize = deposit
        repay = min(repay, repay_for(seize, price_repay, price_seize, b))
    elif mul_div_down(deposit - seize, price_seize, WAD) < dust:
        full = repay_for(deposit, price_repay, price_seize, b)
        if full <= debt:
            if full <= requested:
                seize = deposit
                repay = max(repay, full)
            else:
                leaves_dust = True  # short of the full price: the dust rest would stay
    if requested < cap:
        rest_debt = mul_div_up(_sub(debt, repay), price_repay, WAD)
        rest_deposit = mul_div_down(_sub(deposit, seize), price_seize, WAD)
        leaves_dust = leaves_dust or (repay < debt and rest_debt < dust) or (seize < deposit and rest_deposit < dust)
    base = mul_div_down(mul_div_down(repay, price_repay, WAD), WAD, price_seize)
    to_insurance = 0
    if seize > base:
        to_insurance = _div(_mul(seize - base, insurance_share), WAD)
    return Plan(repay, seize, to_insurance, b, leaves_dust, seize == deposit, False)


def plan_for(
    collateral_maintenance: int,
    debt_maintenance: int,
    le_health: int,
    risk_repay: int,
    ramp_repay: int,
    risk_seize: int,
    ramp_seize: int,
    liquidation_word: int,
    price_repay: int,
    price_seize: int,
    debt: int,
    deposit: int,
    dust: int,
    requested: int,
    solvent: bool,
    indexes: int,
    now: int,
) -> Plan:
    """``liquidation.plan_for`` at block time ``now``: the bonus from the
    maintenance ratio C_m * WAD // D_m (aw of the seized asset taken as 0
    for an insolvent account: no ratio cap), then :func:`liquidation_plan`
    with the liquidation-end weights, then (solvent account) the solvency
    cap in token units: the seizure is clamped, or for a whole deposit the
    repay raised, so that dC * D <= dD * C holds for bounds of the engine's
    share and value roundings (:func:`debt_removed`). Values USD WAD,
    amounts token units; ``indexes`` = stored deposit index of the seized
    asset << 128 | borrow index of the repaid asset accrued to now (WAD).
    """
    aw = weights(risk_seize, ramp_seize, MAINTENANCE, now)[0]
    lw = weights(risk_repay, ramp_repay, MAINTENANCE, now)[1]
    params = unpack_liquidation(liquidation_word)
    if not solvent:
        aw = 0
    ratio = _div(_mul(collateral_maintenance, WAD), debt_maintenance)
    if _mul(ratio, lw) < aw * WAD:
        # (1 + b) * aw_m,s <= rho * lw_m,r fails even at b = 0: refused.
        return Plan(0, 0, 0, 0, False, False, True)
    b = liquidation_bonus(ratio, params, aw, lw)
    aw_le = weights(risk_seize, ramp_seize, LIQUIDATION_END, now)[0]
    lw_le = weights(risk_repay, ramp_repay, LIQUIDATION_END, now)[1]
    p = liquidation_plan(
        le_health, debt, deposit, price_repay, price_seize, lw_le, aw_le, b, params.insurance_share, dust, requested
    )
    if aw == 0 or p.repay == 0:
        return p
    repay, seize, lowers_ratio = p.repay, p.seize, False
    bi = indexes & MASK128
    removed = debt_removed(repay, debt, price_repay, lw, bi)
    if p.seize_all:
        lost = mul_div_down(mul_div_down(deposit, price_seize, WAD), aw, WAD)
        if _mul(lost, debt_maintenance) > _mul(removed, collateral_maintenance):
            need = _add(_add(mul_div_up(lost, debt_maintenance, collateral_maintenance), lw // WAD), 2)
            repay = _add(2 + bi // WAD, mul_div_up(mul_div_up(need, WAD, lw), WAD, price_repay))
            if repay >= debt or mul_div_up(debt - repay, price_repay, WAD) < dust:
                repay = debt
            lowers_ratio = repay > requested or _mul(lost, debt_maintenance) > _mul(
                debt_removed(repay, debt, price_repay, lw, bi), collateral_maintenance
            )
    else:
        removed = _div(_mul(removed, collateral_maintenance), debt_maintenance)
        most = mul_div_down(mul_div_down(removed - 2, WAD, aw), WAD, price_seize) if removed > 2 else 0
        seize = min(seize, most - min(most, 2 + (indexes >> 128) // WAD))
    base = mul_div_down(mul_div_down(repay, price_repay, WAD), WAD, price_seize)
    to_insurance = _div(_mul(seize - base, params.insurance_share), WAD) if seize > base else 0
    return Plan(repay, seize, to_insurance, b, p.leaves_dust, p.seize_all, lowers_ratio)


def debt_removed(repay: int, debt: int, price_repay: int, lw: int, borrow_index: int) -> int:
    """``liquidation.debt_removed``: a lower bound (USD WAD) of the fall of
    the repaid asset's maintenance-weighted debt when ``repay`` of ``debt``
    (token units, accrued at ``borrow_index``) is repaid: exact for a full
    repay, else floor(floor((repay - k_r) * P / WAD) * lw / WAD) - (lw // WAD + 2)
    with k_r = 2 + bi // WAD (the engine's floor of the burned shares and
    the health's ceils), 0 when that is not positive."""
    if repay >= debt:
        return mul_div_up(mul_div_up(debt, price_repay, WAD), lw, WAD)
    k = 2 + borrow_index // WAD
    if repay <= k:
        return 0
    v = mul_div_down(mul_div_down(repay - k, price_repay, WAD), lw, WAD)
    k = lw // WAD + 2
    return v - k if v > k else 0


# ---------------------------------------------------------------------------
# Engine storage words
# ---------------------------------------------------------------------------


def account_key(owner: str | int, sub_id: int) -> int:
    """``MarginEngine._account_key``: owner << 8 | sub_id."""
    o = int(owner, 16) if isinstance(owner, str) else int(owner)
    return o << 8 | sub_id


def position_key(key: int, asset_id: int) -> int:
    """Storage key of a position: account key << 8 | asset id."""
    return key << 8 | asset_id


def _addr(word: int) -> str:
    return "0x" + format(word & (2**160 - 1), "040x")


def decode_info(info: int) -> dict[str, int | bool]:
    """Decodes an info word: id (bits 0-7) | flags (8-15) | supply cap
    (16-135, token units) | borrow cap (136-255, token units); 0 cap = none."""
    flags = (info >> 8) & 255
    return {
        "asset_id": info & 255,
        "listed": flags & LISTED != 0,
        "borrowable": flags & BORROWABLE != 0,
        "paused": flags & PAUSABLE,
        "supply_cap": (info >> 16) & MASK120,
        "borrow_cap": (info >> 136) & MASK120,
    }


@dataclass(frozen=True)
class MarketState:
    """Decoded market words of one asset (engine storage).

    deposit_index, borrow_index: WAD (stored, not accrued); last_accrual:
    unix s; reserve_factor: WAD; deposit_shares / borrow_shares: totals.
    """

    deposit_index: int
    borrow_index: int
    last_accrual: int
    reserve_factor: int
    deposit_shares: int
    borrow_shares: int


@dataclass(frozen=True)
class AssetConfig:
    """Every parameter of a listed asset, decoded from its words (the
    model's equivalent of ``MarginLens.asset_config`` without the
    time-dependent ramped weights; use :func:`maintenance_weights` for those).

    Weights WAD, rates WAD per second, caps token units (0 = none), feed
    address hex, ramp None unless FLAG_RAMPING is set.
    """

    asset: str
    asset_id: int
    listed: bool
    feed: str
    token_decimals: int
    feed_decimals: int
    risk: RiskParams
    collateral: bool
    ramping: bool
    ramp: Ramp | None
    supply_cap: int
    borrow_cap: int
    borrowable: bool
    paused: int
    rate_model: RateModel
    reserve_factor: int
    liquidation: "LiquidationParams"


class _MarketWords:
    """Decoders of the engine's packed market words, shared by every class
    that holds them (``market_a``, ``market_b``, ``totals`` attributes)."""

    market_a: int
    market_b: int
    totals: int

    @property
    def deposit_index(self) -> int:
        """Stored deposit index, WAD (market_a bits 0-95)."""
        return self.market_a & MASK96

    @property
    def borrow_index(self) -> int:
        """Stored borrow index, WAD (market_b bits 0-95)."""
        return self.market_b & MASK96

    @property
    def last_accrual(self) -> int:
        """Time of the last stored accrual, unix s (market_b bits 96-135)."""
        return (self.market_b >> 96) & MASK40

    @property
    def deposit_shares(self) -> int:
        """Total deposit shares (totals bits 0-127)."""
        return self.totals & MASK128

    @property
    def borrow_shares(self) -> int:
        """Total borrow shares (totals bits 128-255)."""
        return self.totals >> 128


@dataclass(frozen=True)
class AssetState(_MarketWords):
    """The raw words of one asset, as ``MarginEngine.asset_state(id)``
    returns them (asset, info, market_a, market_b, totals, rate_model, risk,
    ramp, liquidation). Layouts: see the Storage section of
    contracts/modules/ledger.vy and the margin / interest_rate / liquidation
    modules; the properties decode them."""

    asset: str
    info: int
    market_a: int
    market_b: int
    totals: int
    rate_model: int
    risk: int
    ramp: int
    liquidation: int = 0

    @classmethod
    def from_tuple(cls, t: Any) -> "AssetState":
        """From the engine's ``asset_state(id)`` struct/tuple (9 fields; an
        8-field tuple without the liquidation word is accepted too)."""
        asset, *words = tuple(t)
        return cls(str(asset), *(int(w) for w in words))

    def to_tuple(self) -> tuple:
        """The 9 fields in the engine's order (asset_state layout)."""
        return (
            self.asset, self.info, self.market_a, self.market_b, self.totals, self.rate_model, self.risk, self.ramp,
            self.liquidation,
        )

    # -- decoded fields --------------------------------------------------
    @property
    def asset_id(self) -> int:
        """Asset id (info bits 0-7)."""
        return self.info & 255

    @property
    def feed(self) -> str:
        """Price feed address (market_a bits 96-255)."""
        return _addr(self.market_a >> 96)

    @property
    def reserve_factor(self) -> int:
        """Reserve factor, WAD (market_b bits 136-195)."""
        return (self.market_b >> 136) & MASK60

    @property
    def effective_ramp(self) -> int:
        """The ramp word the engine passes to margin (``_ramp_of``): the
        stored ramp if FLAG_RAMPING is set, else 0."""
        return self.ramp if risk_flags(self.risk) & FLAG_RAMPING != 0 else 0

    def market(self) -> MarketState:
        """Decoded market words (stored values)."""
        return MarketState(
            self.deposit_index, self.borrow_index, self.last_accrual, self.reserve_factor,
            self.deposit_shares, self.borrow_shares,
        )

    def config(self) -> AssetConfig:
        """Decoded configuration (:class:`AssetConfig`)."""
        info = decode_info(self.info)
        flags = risk_flags(self.risk)
        return AssetConfig(
            asset=self.asset,
            asset_id=self.asset_id,
            listed=bool(info["listed"]),
            feed=self.feed,
            token_decimals=token_decimals(self.risk),
            feed_decimals=feed_decimals(self.risk),
            risk=unpack_risk(self.risk),
            collateral=flags & FLAG_COLLATERAL != 0,
            ramping=flags & FLAG_RAMPING != 0,
            ramp=Ramp.from_word(self.ramp) if flags & FLAG_RAMPING else None,
            supply_cap=int(info["supply_cap"]),
            borrow_cap=int(info["borrow_cap"]),
            borrowable=bool(info["borrowable"]),
            paused=int(info["paused"]),
            rate_model=RateModel.from_word(self.rate_model),
            reserve_factor=self.reserve_factor,
            liquidation=LiquidationParams.from_word(self.liquidation),
        )

    def indexes_now(self, now: int) -> tuple[int, int]:
        """(deposit index, borrow index), WAD, accrued to ``now`` (unix s)."""
        return indexes_now(self.market_a, self.market_b, self.totals, self.rate_model, now)

    def price(self, round_data: RoundData | None, now: int) -> PriceQuote:
        """The asset's :class:`PriceQuote` from its feed's round (None = call failed)."""
        return asset_price(self.risk, round_data, now)


@dataclass(frozen=True)
class Position:
    """One (account, asset) storage word: deposit shares (bits 0-127) |
    borrow shares (bits 128-255)."""

    deposit_shares: int = 0
    borrow_shares: int = 0

    @classmethod
    def from_word(cls, word: int) -> "Position":
        """Decodes a position word."""
        return cls(word & MASK128, word >> 128)

    @classmethod
    def from_tuple(cls, t: Iterable[int]) -> "Position":
        """From ``MarginEngine.position(owner, sub, asset)`` -> (deposit shares, borrow shares)."""
        d, b = (int(x) for x in t)
        return cls(d, b)

    def to_word(self) -> int:
        """The storage word: deposit shares | borrow shares << 128."""
        return self.deposit_shares | self.borrow_shares << 128

    @property
    def is_empty(self) -> bool:
        """No deposit and no borrow shares."""
        return self.deposit_shares == 0 and self.borrow_shares == 0


@dataclass(frozen=True)
class AccountHeader:
    """An account header word: deposit bitmap (bits 0-63) | debt bitmap
    (64-127) | block number of the last health-lowering action (128-191).
    Bit i of a bitmap stands for asset id i."""

    deposit_bitmap: int = 0
    debt_bitmap: int = 0
    last_risk_block: int = 0

    @classmethod
    def from_word(cls, word: int) -> "AccountHeader":
        """Decodes a header word."""
        return cls(word & MASK64, (word >> 64) & MASK64, (word >> 128) & MASK64)

    @classmethod
    def from_tuple(cls, t: Iterable[int]) -> "AccountHeader":
        """From ``MarginEngine.account_header(owner, sub)`` (3 values)."""
        d, b, blk = (int(x) for x in t)
        return cls(d, b, blk)

    def to_word(self) -> int:
        """The header word: deposit bitmap | debt bitmap << 64 | block << 128."""
        return self.deposit_bitmap | self.debt_bitmap << 64 | self.last_risk_block << 128

    @property
    def held_bitmap(self) -> int:
        """Assets with a deposit or a debt: (header | header >> 64) & MASK64."""
        return (self.deposit_bitmap | self.debt_bitmap) & MASK64

    def held_ids(self) -> list[int]:
        """Held asset ids in ascending order (the engine's health loop order)."""
        held = self.held_bitmap
        return [i for i in range(MAX_ASSETS) if (held >> i) & 1]

    @property
    def has_debt(self) -> bool:
        """Any debt bit set (withdraw/transfer then check initial health)."""
        return self.debt_bitmap != 0


# ---------------------------------------------------------------------------
# Health (MarginEngine._health) and lens views
# ---------------------------------------------------------------------------


def _to_int256(x: int) -> int:
    if x > MAX_INT256:
        raise VyperRevert("int256 conversion")
    return x


@dataclass(frozen=True)
class Health:
    """``ledger.Health``: weighted collateral and debt per health type
    (index INITIAL=0, MAINTENANCE=1, LIQUIDATION_END=2, VALUE=3), USD WAD,
    and whether every price read was accepted. Types not requested in
    ``kinds`` are 0."""

    collateral: tuple[int, int, int, int]
    debt: tuple[int, int, int, int]
    prices_valid: bool

    def health(self, kind: int) -> int:
        """collateral - debt of health type ``kind``, USD WAD (int256, as the
        engine's ``convert(.., int256)`` differences)."""
        return _to_int256(self.collateral[kind]) - _to_int256(self.debt[kind])

    @property
    def initial(self) -> int:
        """Initial health, USD WAD (``engine.health(..)[0]``)."""
        return self.health(INITIAL)

    @property
    def maintenance(self) -> int:
        """Maintenance health, USD WAD (``engine.health(..)[1]``); < 0 = liquidatable."""
        return self.health(MAINTENANCE)

    @property
    def liquidation_end(self) -> int:
        """Liquidation-end health, USD WAD (``lens.healths(..)[i].liquidation_end``)."""
        return self.health(LIQUIDATION_END)

    @property
    def ratio(self) -> int:
        """``MarginLens._ratio``: maintenance collateral * WAD // debt, WAD;
        2**256 - 1 without debt."""
        return health_ratio(self.collateral[MAINTENANCE], self.debt[MAINTENANCE])

    @property
    def liquidatable(self) -> bool:
        """Maintenance health below zero."""
        return self.collateral[MAINTENANCE] < self.debt[MAINTENANCE]

    @property
    def solvent(self) -> bool:
        """Unweighted collateral value >= debt value (needs VALUE in kinds)."""
        return self.collateral[VALUE] >= self.debt[VALUE]


def health_ratio(collateral: int, debt: int) -> int:
    """``MarginLens._ratio``: collateral * WAD // debt (WAD); max uint256 when debt == 0."""
    if debt == 0:
        return MAX_UINT256
    return _div(_mul(collateral, WAD), debt)


def _as_position(p: Any) -> Position:
    if isinstance(p, Position):
        return p
    if isinstance(p, int):
        return Position.from_word(p)
    return Position.from_tuple(p)


def _as_state(a: Any) -> AssetState:
    if isinstance(a, AssetState):
        return a
    if isinstance(a, MarketReplica):
        return a.to_asset_state()
    return AssetState.from_tuple(a)


def _as_quote(q: Any) -> PriceQuote:
    if isinstance(q, PriceQuote):
        return q
    price, err = q
    return PriceQuote(int(price), int(err))


def account_health(
    positions: Mapping[int, Any],
    assets: Mapping[int, Any],
    prices: Mapping[int, Any],
    now: int,
    *,
    header: AccountHeader | int | None = None,
    kinds: int = ALL_KINDS,
    asset_mask: int = MASK64,
    strict: bool = False,
    recently_stale_ids: Iterable[int] = (),
) -> Health:
    """``ledger._health`` (``engine.health``/``weighted_health``) of one
    account at block time ``now`` (unix s).

    positions: asset id -> :class:`Position` (or a position word, or a
      (deposit shares, borrow shares) tuple). Missing ids count as empty.
    assets: asset id -> :class:`AssetState` (or :class:`MarketReplica`, or
      the engine's asset_state tuple).
    prices: asset id -> :class:`PriceQuote` (or (price, error) tuple);
      see :func:`asset_price`.
    header: the account header; when given, the engine's held bitmap decides
      which assets are visited (exactly as the engine), otherwise every
      position with non-zero shares is visited.
    kinds: bitmask of health types (bit 0 INITIAL, 1 MAINTENANCE, 2
      LIQUIDATION_END, 3 VALUE); asset_mask: bitmask of asset ids
      (weighted_health).
    strict: raise VyperRevert with the oracle reason at the first rejected
      price in id order (the engine's action path) instead of flagging.
    recently_stale_ids: ids whose feed is inside the liquidation price
      grace period (:func:`recently_stale`); the first one visited raises
      VyperRevert("liquidation: price grace period"), as ``_health``'s
      ``grace`` argument (liquidations only; pass () otherwise).

    Conventions (engine): deposits count at the STORED deposit index
    (floor(shares * di / WAD): deposit interest not yet accrued is left out),
    debts at the borrow index accrued to ``now`` (ceil(shares * bi_now /
    WAD)); weighted collateral rounds down, weighted debt rounds up (see
    :func:`contribution`). A rejected but positive price is still used and
    ``prices_valid`` is False.
    """
    if header is None:
        held = 0
        for i, p in positions.items():
            if not _as_position(p).is_empty:
                held |= 1 << i
    else:
        h = AccountHeader.from_word(header) if isinstance(header, int) else header
        held = h.held_bitmap
    held &= asset_mask & MASK64
    grace_ids = set(recently_stale_ids)
    collateral = [0, 0, 0, 0]
    debt = [0, 0, 0, 0]
    prices_valid = True
    for i in range(MAX_ASSETS):
        if (held >> i) & 1 == 0:
            continue
        pos = _as_position(positions.get(i, Position()))
        state = _as_state(assets[i])
        quote = _as_quote(prices[i])
        if quote.error != ERR_NONE:
            if strict:
                raise VyperRevert(ORACLE_REVERT_REASONS[quote.error])
            prices_valid = False
        if i in grace_ids:
            raise VyperRevert("liquidation: price grace period")
        deposit_amount = 0
        debt_amount = 0
        if pos.deposit_shares != 0:
            deposit_amount = mul_div_down(pos.deposit_shares, state.deposit_index, WAD)
        if pos.borrow_shares != 0:
            debt_amount = mul_div_up(pos.borrow_shares, state.indexes_now(now)[1], WAD)
        ramp = state.effective_ramp
        for kind in HEALTH_TYPES:
            if (kinds >> kind) & 1 == 0:
                continue
            c, d = contribution(state.risk, ramp, quote.price, deposit_amount, debt_amount, kind, now)
            collateral[kind] = _add(collateral[kind], c)
            debt[kind] = _add(debt[kind], d)
    return Health(tuple(collateral), tuple(debt), prices_valid)


@dataclass(frozen=True)
class Balance:
    """``MarginLens.Balance``: one asset of an account, accrued to now.
    deposit: token units (accrued deposit index, rounded down); borrow: token
    units (rounded up); shares raw."""

    asset: str
    deposit: int
    borrow: int
    deposit_shares: int
    borrow_shares: int


def balances(
    positions: Mapping[int, Any], assets: Mapping[int, Any], now: int, *, header: AccountHeader | int | None = None
) -> list[Balance]:
    """``MarginLens.balances``: every held asset (ascending id) with amounts
    accrued to ``now``. Unlike health, deposits use the deposit index
    accrued to now (``indexes_now``). ``header`` as in :func:`account_health`."""
    if header is None:
        held_ids = sorted(i for i, p in positions.items() if not _as_position(p).is_empty)
    else:
        h = AccountHeader.from_word(header) if isinstance(header, int) else header
        held_ids = h.held_ids()
    out = []
    for i in held_ids:
        state = _as_state(assets[i])
        pos = _as_position(positions.get(i, Position()))
        di, bi = state.indexes_now(now)
        out.append(
            Balance(
                asset=state.asset,
                deposit=mul_div_down(pos.deposit_shares, di, WAD),
                borrow=mul_div_up(pos.borrow_shares, bi, WAD),
                deposit_shares=pos.deposit_shares,
                borrow_shares=pos.borrow_shares,
            )
        )
    return out


@dataclass(frozen=True)
class MarketView:
    """``MarginLens.MarketView``: market state accrued to now.

    total_deposits / total_borrows: token units; indexes WAD; utilisation
    WAD; rates WAD per second; insurance_fund token units (needs the engine's
    token balance, None if not given); last_update unix s; price unit price.
    """

    asset: str
    asset_id: int
    total_deposits: int
    total_borrows: int
    deposit_shares: int
    borrow_shares: int
    deposit_index: int
    borrow_index: int
    utilisation: int
    borrow_rate: int
    supply_rate: int
    insurance_fund: int | None
    last_update: int
    price: int
    price_valid: bool


def market_view(asset: Any, quote: Any, now: int, token_balance: int | None = None) -> MarketView:
    """``MarginLens.market``: an asset's :class:`MarketView` at ``now``.

    asset: :class:`AssetState` / :class:`MarketReplica` / asset_state tuple;
    quote: its :class:`PriceQuote`; token_balance: the engine's balance of
    the token (token units), for insurance_fund = balance + borrows - deposits.
    """
    s = _as_state(asset)
    q = _as_quote(quote)
    di, bi = s.indexes_now(now)
    total_deposit = mul_div_down(s.deposit_shares, di, WAD)
    total_borrow = mul_div_up(s.borrow_shares, bi, WAD)
    u = utilisation(total_deposit, total_borrow)
    rate = borrow_rate(s.rate_model, u)
    fund = None
    if token_balance is not None:
        fund = _to_int256(_add(token_balance, total_borrow)) - _to_int256(total_deposit)
    return MarketView(
        asset=s.asset,
        asset_id=s.asset_id,
        total_deposits=total_deposit,
        total_borrows=total_borrow,
        deposit_shares=s.deposit_shares,
        borrow_shares=s.borrow_shares,
        deposit_index=di,
        borrow_index=bi,
        utilisation=u,
        borrow_rate=rate,
        supply_rate=supply_rate(rate, u, s.reserve_factor),
        insurance_fund=fund,
        last_update=s.last_accrual,
        price=q.price,
        price_valid=q.valid,
    )


# ---------------------------------------------------------------------------
# Replicas: state that follows the engine's writes
# ---------------------------------------------------------------------------


class ReplicaDesync(Exception):
    """An event disagrees with the replica: an index in an event differs
    from the replica's accrued index (an accrual the replica did not see, an
    event missed, a rate model not updated with :meth:`ProtocolReplica.set_rate_model`)."""


@dataclass
class MarketReplica(_MarketWords):
    """Mutable replica of one asset's engine words.

    Fields mirror the storage words: ``market_a`` (deposit index | feed),
    ``market_b`` (borrow index | last accrual | reserve factor), ``totals``
    (deposit shares | borrow shares), plus the configuration words. Indexes
    WAD, time unix s, shares raw.
    """

    asset: str
    info: int
    market_a: int
    market_b: int
    totals: int
    rate_model: int
    risk: int
    ramp: int
    liquidation: int = 0

    @classmethod
    def from_asset_state(cls, state: Any) -> "MarketReplica":
        """From an :class:`AssetState` or the engine's ``asset_state(id)`` tuple."""
        s = _as_state(state)
        return cls(*s.to_tuple())

    def to_asset_state(self) -> AssetState:
        """The current words as an immutable :class:`AssetState`."""
        return AssetState(
            self.asset, self.info, self.market_a, self.market_b, self.totals, self.rate_model, self.risk, self.ramp,
            self.liquidation,
        )

    # -- decoded accessors ----------------------------------------------
    @property
    def asset_id(self) -> int:
        """Asset id (info bits 0-7)."""
        return self.info & 255

    def indexes_now(self, now: int) -> tuple[int, int]:
        """(deposit index, borrow index), WAD, accrued to ``now`` without storing."""
        return indexes_now(self.market_a, self.market_b, self.totals, self.rate_model, now)

    def accrue(self, now: int, need_borrow_index: bool = False) -> tuple[int, int]:
        """``MarginEngine._accrue``: accrues to ``now`` (unix s) and stores.

        Without borrow shares nothing is written unless
        ``need_borrow_index`` (borrow/repay/``accrue()``/set_rate_model),
        which restarts the clock (last accrual = now) without changing
        indexes. Raises VyperRevert("market: index overflow") when an index
        would exceed 96 bits. Returns (deposit index, borrow index) after.
        """
        di = self.market_a & MASK96
        bs = self.totals >> 128
        if bs == 0 and not need_borrow_index:
            return di, self.market_b & MASK96
        b = self.market_b
        bi = b & MASK96
        last = (b >> 96) & MASK40
        if last == now:
            return di, bi
        if bs != 0:
            new_di, new_bi = accrue(
                self.rate_model, (b >> 136) & MASK60, di, bi, self.totals & MASK128, bs, _sub(now, last)
            )
            if not (new_di <= MASK96 and new_bi <= MASK96):
                raise VyperRevert("market: index overflow")
            if new_di != di:
                self.market_a = (self.market_a & ~MASK96 & MAX_UINT256) | new_di
                di = new_di
            bi = new_bi
        self.market_b = ((b & ~(MASK96 | MASK40 << 96)) | bi | now << 96) & MAX_UINT256
        return di, bi

    def _set_totals(self, deposit_shares: int, borrow_shares: int) -> None:
        self.totals = deposit_shares | borrow_shares << 128

    def view(self, quote: Any, now: int, token_balance: int | None = None) -> MarketView:
        """:func:`market_view` of this market."""
        return market_view(self, quote, now, token_balance)


@dataclass
class AccountReplica:
    """Mutable replica of one sub-account: its header word and its
    positions (asset id -> :class:`Position`)."""

    owner: str
    sub_id: int
    header: AccountHeader = field(default_factory=AccountHeader)
    positions: dict[int, Position] = field(default_factory=dict)

    @property
    def key(self) -> int:
        """Account key (owner << 8 | sub id)."""
        return account_key(self.owner, self.sub_id)

    def position(self, asset_id: int) -> Position:
        """The account's position in ``asset_id`` (empty if none)."""
        return self.positions.get(asset_id, Position())

    def _set(self, asset_id: int, pos: Position) -> None:
        if pos.is_empty:
            self.positions.pop(asset_id, None)
        else:
            self.positions[asset_id] = pos

    def health(
        self,
        markets: Mapping[int, Any],
        prices: Mapping[int, Any],
        now: int,
        *,
        kinds: int = ALL_KINDS,
        strict: bool = False,
        recently_stale_ids: Iterable[int] = (),
    ) -> Health:
        """:func:`account_health` of this account (header-driven, as the engine)."""
        return account_health(
            self.positions, markets, prices, now, header=self.header, kinds=kinds, strict=strict,
            recently_stale_ids=recently_stale_ids,
        )

    def balances(self, markets: Mapping[int, Any], now: int) -> list[Balance]:
        """:func:`balances` of this account (``MarginLens.balances``)."""
        return balances(self.positions, markets, now, header=self.header)


def _norm(addr: Any) -> str:
    return str(addr).lower()


_F = TypeVar("_F", bound=Callable[..., Any])


def _transactional(fn: _F) -> _F:
    """Runs a ProtocolReplica method like an EVM transaction: on any
    exception (a modelled revert) every market and account is restored."""

    @functools.wraps(fn)
    def wrapper(self: "ProtocolReplica", *args: Any, **kwargs: Any) -> Any:
        saved = copy.deepcopy((self.markets, self.accounts))
        try:
            return fn(self, *args, **kwargs)
        except BaseException:
            self.markets, self.accounts = saved
            raise

    return wrapper  # type: ignore[return-value]


class ProtocolReplica:
    """Replica of an engine's markets and accounts that follows its writes.

    Two ways to drive it, both mirroring the engine's code paths exactly
    (accrual on every touch, share rounding, bitmaps, risk block):

    * ``apply_event(name, args, timestamp, block_number)`` replays engine
      events (see HANDLED_EVENTS): share deltas come from the event, accrual
      is recomputed at the event's block time and cross-checked against the
      index the event carries (:class:`ReplicaDesync` on mismatch when
      ``strict``).
    * ``deposit/withdraw/borrow/repay/transfer/liquidate/accrue(...)``
      simulate an action from its token amount (like the engine's external
      functions, including their asserts and, with ``prices``, the
      initial-health check), returning what the engine returns. A modelled
      revert raises :class:`VyperRevert` and leaves the replica unchanged
      (markets and accounts are restored, as the EVM rolls back).

    Markets must be seeded (``add_market``) from ``asset_state`` reads;
    accounts start empty (or are seeded with ``set_account``).
    """

    HANDLED_EVENTS = (
        "Deposit", "Withdraw", "Borrow", "Repay", "TransferCollateral", "InterestAccrued",
        "Liquidation", "CollateralForfeited", "LossSocialised", "BadDebtSettled",
    )

    def __init__(self, markets: Iterable[Any] = ()):
        self.markets: dict[int, MarketReplica] = {}
        self._ids: dict[str, int] = {}
        self.accounts: dict[tuple[str, int], AccountReplica] = {}
        for m in markets:
            self.add_market(m)

    # -- set-up ------------------------------------------------------------
    def add_market(self, state: Any) -> MarketReplica:
        """Seeds (or replaces) a market from an :class:`AssetState` / tuple."""
        m = state if isinstance(state, MarketReplica) else MarketReplica.from_asset_state(state)
        self.markets[m.asset_id] = m
        self._ids[_norm(m.asset)] = m.asset_id
        return m

    def asset_id(self, asset: Any) -> int:
        """Id of a listed asset by token address (or pass an int id through)."""
        if isinstance(asset, int):
            return asset
        try:
            return self._ids[_norm(asset)]
        except KeyError:
            raise VyperRevert("asset: not listed") from None

    def account(self, owner: Any, sub_id: int) -> AccountReplica:
        """The (created on first use) replica of sub-account (owner, sub_id)."""
        k = (_norm(owner), int(sub_id))
        acc = self.accounts.get(k)
        if acc is None:
            acc = self.accounts[k] = AccountReplica(_norm(owner), int(sub_id))
        return acc

    def set_account(self, owner: Any, sub_id: int, header: AccountHeader, positions: Mapping[int, Position]) -> AccountReplica:
        """Seeds an account from ``account_header`` / ``position`` reads."""
        acc = self.account(owner, sub_id)
        acc.header = header
        acc.positions = {i: p for i, p in positions.items() if not p.is_empty}
        return acc

    # -- health --------------------------------------------------------------
    def health(self, owner: Any, sub_id: int, prices: Mapping[int, Any], now: int, *, kinds: int = ALL_KINDS, strict: bool = False) -> Health:
        """``MarginEngine._health`` of an account from the replica's state."""
        return self.account(owner, sub_id).health(self.markets, prices, now, kinds=kinds, strict=strict)

    def require_initial_health(self, owner: Any, sub_id: int, prices: Mapping[int, Any], now: int) -> None:
        """``MarginEngine._require_initial_health`` without a sequencer feed:
        oracle reasons first (strict prices), then
        VyperRevert("health: below initial margin")."""
        h = self.health(owner, sub_id, prices, now, kinds=1, strict=True)
        if h.collateral[INITIAL] < h.debt[INITIAL]:
            raise VyperRevert("health: below initial margin")

    # -- share-level state changes (shared by events and simulations) -----------
    def _add_deposit(self, acc: AccountReplica, m: MarketReplica, shares: int) -> None:
        pos = acc.position(m.asset_id)
        if pos.deposit_shares == 0:
            acc.header = replace(acc.header, deposit_bitmap=acc.header.deposit_bitmap | 1 << m.asset_id)
        acc._set(m.asset_id, replace(pos, deposit_shares=pos.deposit_shares + shares))

    def _remove_deposit(self, acc: AccountReplica, m: MarketReplica, shares: int, block_number: int) -> bool:
        pos = acc.position(m.asset_id)
        held = pos.deposit_shares
        acc._set(m.asset_id, replace(pos, deposit_shares=_sub(held, shares)))
        h = acc.header
        has_debt = h.debt_bitmap != 0
        if held == shares:
            h = replace(h, deposit_bitmap=h.deposit_bitmap & ~(1 << m.asset_id))
        if has_debt:
            h = replace(h, last_risk_block=block_number & MASK64)
        acc.header = h
        return has_debt

    def _add_borrow(self, acc: AccountReplica, m: MarketReplica, shares: int, block_number: int) -> None:
        pos = acc.position(m.asset_id)
        acc._set(m.asset_id, replace(pos, borrow_shares=pos.borrow_shares + shares))
        h = acc.header
        acc.header = replace(h, debt_bitmap=h.debt_bitmap | 1 << m.asset_id, last_risk_block=block_number & MASK64)

    def _remove_borrow(self, acc: AccountReplica, m: MarketReplica, shares: int) -> None:
        pos = acc.position(m.asset_id)
        owed = pos.borrow_shares
        acc._set(m.asset_id, replace(pos, borrow_shares=_sub(owed, shares)))
        if shares == owed:
            acc.header = replace(acc.header, debt_bitmap=acc.header.debt_bitmap & ~(1 << m.asset_id))

    # -- event replay -------------------------------------------------------------
    def _check_index(self, m: MarketReplica, name: str, field_: str, event_value: Any, replica_value: int, strict: bool) -> None:
        v = int(event_value)
        if v == replica_value:
            return
        if strict:
            raise ReplicaDesync(f"{name}: {field_} {v} != replica {replica_value} (asset {m.asset_id})")
        if field_ == "deposit_index":
            m.market_a = (m.market_a & ~MASK96 & MAX_UINT256) | v
        else:
            m.market_b = (m.market_b & ~MASK96 & MAX_UINT256) | v

    @_transactional
    def apply_event(
        self, name: str, args: Mapping[str, Any], timestamp: int, block_number: int = 0, *, strict: bool = True
    ) -> bool:
        """Applies one engine event, emitted in a block at ``timestamp`` (unix
        s) / ``block_number``; ``args`` are the event's fields by name.

        Handled (HANDLED_EVENTS): Deposit, Withdraw, Borrow, Repay,
        TransferCollateral, InterestAccrued (engine.accrue, set_rate_model),
        Liquidation, CollateralForfeited, LossSocialised, BadDebtSettled.
        Each accrues the asset as the engine's code path did
        (``need_borrow_index`` for borrow/repay/accrue/the repay side of a
        liquidation/bad-debt settlement), checks the index the event carries
        (strict -> :class:`ReplicaDesync`; else the event's index is
        adopted), then applies the share deltas, bitmaps and risk block.
        Returns False for any other event (ignored: no shares move).

        Configuration writes (set_risk, set_info, set_rate_model's new
        words) are not engine events: apply them with :meth:`set_config` /
        :meth:`set_rate_model`.
        """
        if name not in self.HANDLED_EVENTS:
            return False
        if name == "Liquidation":
            acc = self.account(args["owner"], args["sub_id"])
            mr = self.markets[self.asset_id(args["repay_asset"])]
            _, bi = mr.accrue(timestamp, True)
            self._check_index(mr, name, "borrow_index", args["borrow_index"], bi, strict)
            repaid = int(args["repaid_shares"])
            mr._set_totals(mr.deposit_shares, _sub(mr.borrow_shares, repaid))
            self._remove_borrow(acc, mr, repaid)
            ms = self.markets[self.asset_id(args["seize_asset"])]
            di, _ = ms.accrue(timestamp, False)
            self._check_index(ms, name, "deposit_index", args["deposit_index"], di, strict)
            seized = int(args["seized_shares"])
            ms._set_totals(_sub(ms.deposit_shares, seized), ms.borrow_shares)
            pos = acc.position(ms.asset_id)
            acc._set(ms.asset_id, replace(pos, deposit_shares=_sub(pos.deposit_shares, seized)))
            if seized == pos.deposit_shares:
                acc.header = replace(acc.header, deposit_bitmap=acc.header.deposit_bitmap & ~(1 << ms.asset_id))
            return True
        m = self.markets[self.asset_id(args["asset"])]
        if name == "InterestAccrued":
            di, bi = m.accrue(timestamp, True)
            self._check_index(m, name, "deposit_index", args["deposit_index"], di, strict)
            self._check_index(m, name, "borrow_index", args["borrow_index"], bi, strict)
            return True
        if name == "LossSocialised":
            m.accrue(timestamp, True)
            m.market_a = (m.market_a & ~MASK96 & MAX_UINT256) | int(args["deposit_index"])
            return True
        shares = int(args["shares"])
        need_bi = name in ("Borrow", "Repay", "BadDebtSettled", "CollateralForfeited")
        di, bi = m.accrue(timestamp, need_bi)
        if "borrow_index" in args:
            self._check_index(m, name, "borrow_index", args["borrow_index"], bi, strict)
        else:
            self._check_index(m, name, "deposit_index", args["deposit_index"], di, strict)
        if name == "Deposit":
            m._set_totals(m.deposit_shares + shares, m.borrow_shares)
            self._add_deposit(self.account(args["owner"], args["sub_id"]), m, shares)
        elif name == "Withdraw":
            m._set_totals(_sub(m.deposit_shares, shares), m.borrow_shares)
            self._remove_deposit(self.account(args["owner"], args["sub_id"]), m, shares, block_number)
        elif name == "Borrow":
            m._set_totals(m.deposit_shares, m.borrow_shares + shares)
            self._add_borrow(self.account(args["owner"], args["sub_id"]), m, shares, block_number)
        elif name in ("Repay", "BadDebtSettled"):
            m._set_totals(m.deposit_shares, _sub(m.borrow_shares, shares))
            self._remove_borrow(self.account(args["owner"], args["sub_id"]), m, shares)
        elif name == "CollateralForfeited":
            # settle_bad_debt: the whole deposit leaves; no risk-block update.
            acc = self.account(args["owner"], args["sub_id"])
            m._set_totals(_sub(m.deposit_shares, shares), m.borrow_shares)
            pos = acc.position(m.asset_id)
            acc._set(m.asset_id, replace(pos, deposit_shares=_sub(pos.deposit_shares, shares)))
            if shares == pos.deposit_shares:
                acc.header = replace(acc.header, deposit_bitmap=acc.header.deposit_bitmap & ~(1 << m.asset_id))
        else:  # TransferCollateral
            src = self.account(args["owner"], args["from_sub_id"])
            dst = self.account(args["owner"], args["to_sub_id"])
            # Engine order: debit the source position, credit the destination
            # (setting its bit), then update the source header.
            pos = src.position(m.asset_id)
            held = pos.deposit_shares
            src._set(m.asset_id, replace(pos, deposit_shares=_sub(held, shares)))
            self._add_deposit(dst, m, shares)
            h = src.header
            if held == shares:
                h = replace(h, deposit_bitmap=h.deposit_bitmap & ~(1 << m.asset_id))
            if h.debt_bitmap != 0:
                h = replace(h, last_risk_block=block_number & MASK64)
            src.header = h
        return True

    @_transactional
    def accrue(self, asset: Any, now: int) -> tuple[int, int]:
        """``engine.accrue(asset)``: accrues with ``need_borrow_index`` at
        ``now`` (unix s); the engine logs InterestAccrued with the result.
        Returns (deposit index, borrow index), WAD."""
        return self.markets[self.asset_id(asset)].accrue(now, True)

    @_transactional
    def set_rate_model(self, asset: Any, rate_model: int, reserve_factor: int, now: int) -> None:
        """``engine.set_rate_model``: accrues at the old model (need_borrow_index),
        then stores the new rate-model word and reserve factor (WAD)."""
        m = self.markets[self.asset_id(asset)]
        m.accrue(now, True)
        m.rate_model = rate_model
        m.market_b = (m.market_b & (2**136 - 1)) | reserve_factor << 136

    def set_config(self, state: Any) -> None:
        """Copies the configuration words (info, risk, ramp, rate model,
        liquidation) of an ``asset_state`` read into the replica, keeping
        its market words (set_risk / set_info / set_flags / set_liquidation
        write no market word)."""
        st = _as_state(state)
        m = self.markets[st.asset_id]
        m.info, m.risk, m.ramp, m.rate_model, m.liquidation = st.info, st.risk, st.ramp, st.rate_model, st.liquidation

    # -- liquidation ------------------------------------------------------------------
    def liquidation_plan(
        self,
        owner: Any,
        sub_id: int,
        repay_asset: Any,
        seize_asset: Any,
        requested: int,
        prices: Mapping[int, Any],
        now: int,
        dust: int,
        *,
        recently_stale_ids: Iterable[int] = (),
    ) -> Plan:
        """``MarginEngine._plan``: the liquidation plan of an account at
        ``now`` -- health of kinds MAINTENANCE | LIQUIDATION_END | VALUE with
        strict prices (oracle reasons, then the price grace period for
        ``recently_stale_ids``), VyperRevert("liquidation: account is
        healthy") unless maintenance health < 0, then :func:`plan_for` with
        the debt accrued to now and the deposit at the stored index.
        dust: USD WAD (engine.liquidation_settings()[0]); requested: token units.
        """
        acc = self.account(owner, sub_id)
        mr = self.markets[self.asset_id(repay_asset)]
        ms = self.markets[self.asset_id(seize_asset)]
        h = acc.health(self.markets, prices, now, kinds=14, strict=True, recently_stale_ids=recently_stale_ids)
        if not h.collateral[MAINTENANCE] < h.debt[MAINTENANCE]:
            raise VyperRevert("liquidation: account is healthy")
        sr, ss = mr.to_asset_state(), ms.to_asset_state()
        bi = sr.indexes_now(now)[1]
        return plan_for(
            h.collateral[MAINTENANCE],
            h.debt[MAINTENANCE],
            h.liquidation_end,
            sr.risk,
            sr.effective_ramp,
            ss.risk,
            ss.effective_ramp,
            ss.liquidation,
            _as_quote(prices[mr.asset_id]).price,
            _as_quote(prices[ms.asset_id]).price,
            mul_div_up(acc.position(mr.asset_id).borrow_shares, bi, WAD),
            mul_div_down(acc.position(ms.asset_id).deposit_shares, ss.deposit_index, WAD),
            dust,
            requested,
            h.collateral[VALUE] >= h.debt[VALUE],
            ss.deposit_index << 128 | bi,
            now,
        )

    def preview_liquidation(
        self, owner: Any, sub_id: int, repay_asset: Any, seize_asset: Any, prices: Mapping[int, Any], now: int, dust: int
    ) -> tuple[int, int, int]:
        """``MarginLens.preview_liquidation``: (max repay in token units of
        the repaid asset, token units of the seized asset to the liquidator,
        bonus WAD) with an unlimited request; zeros when the account does not
        hold that debt/deposit, is not liquidatable, or a price is rejected.
        Delay rules (cool-off, grace periods, pause) are not applied."""
        acc = self.account(owner, sub_id)
        id_r, id_s = self.asset_id(repay_asset), self.asset_id(seize_asset)
        if (acc.header.debt_bitmap >> id_r) & 1 == 0 or (acc.header.deposit_bitmap >> id_s) & 1 == 0:
            return 0, 0, 0
        h = acc.health(self.markets, prices, now, kinds=14)
        if h.collateral[MAINTENANCE] >= h.debt[MAINTENANCE] or not h.prices_valid:
            return 0, 0, 0
        p = self.liquidation_plan(owner, sub_id, id_r, id_s, MAX_UINT256, prices, now, dust)
        return p.repay, _sub(p.seize, p.to_insurance), p.bonus

    @_transactional
    def liquidate(
        self,
        liquidator: Any,
        owner: Any,
        sub_id: int,
        repay_asset: Any,
        repay_amount: int,
        seize_asset: Any,
        min_seize_amount: int,
        prices: Mapping[int, Any],
        now: int,
        block_number: int,
        dust: int,
        *,
        paused_until: int = 0,
        recently_stale_ids: Iterable[int] = (),
        nets_same_asset: bool = True,
    ) -> tuple[int, int, Plan, int, int]:
        """``MarginEngine.liquidate`` without a sequencer feed (L1): the
        asserts in the engine's order, the plan, then the share changes.
        ``nets_same_asset``: the call moves only the net flow when the two
        assets are the same (receiver = caller, empty ``data``: the engine's
        defaults); False for a flash liquidation or another receiver, where
        the seized tokens leave before the repayment arrives and the
        liquidity check counts the repaid debt as still lent out.
        Returns (repaid token units, seized token units to the liquidator,
        plan, repaid borrow shares, seized deposit shares)."""
        if _norm(liquidator) == _norm(owner):
            raise VyperRevert("liquidation: self-liquidation")
        if repay_amount == 0:
            raise VyperRevert("liquidation: zero repay amount")
        acc = self.account(owner, sub_id)
        header = acc.header
        mr = self._market_for(repay_asset)
        ms = self._market_for(seize_asset)
        id_r, id_s = mr.asset_id, ms.asset_id
        if (header.debt_bitmap >> id_r) & 1 == 0:
            raise VyperRevert("liquidation: no debt in repay asset")
        if (header.deposit_bitmap >> id_s) & 1 == 0:
            raise VyperRevert("liquidation: no deposit in seize asset")
        if header.last_risk_block == block_number:
            raise VyperRevert("liquidation: cool-off (same block as a health-lowering action)")
        if now < paused_until:
            raise VyperRevert("liquidation: paused")
        p = self.liquidation_plan(
            owner, sub_id, id_r, id_s, repay_amount, prices, now, dust, recently_stale_ids=recently_stale_ids
        )
        if p.lowers_ratio:
            raise VyperRevert("liquidation: seizing this asset lowers the health ratio")
        if p.leaves_dust:
            raise VyperRevert("liquidation: leaves dust")
        if not (p.repay != 0 and p.seize > p.to_insurance):
            raise VyperRevert("liquidation: nothing to seize")
        seized = p.seize - p.to_insurance
        if seized < min_seize_amount:
            raise VyperRevert("liquidation: seized amount below minimum")
        # Repay side.
        _, bi = mr.accrue(now, True)
        owed = acc.position(id_r).borrow_shares
        repaid_shares = _div(_mul(p.repay, WAD), bi)
        if p.repay >= mul_div_up(owed, bi, WAD):
            repaid_shares = owed
        if repaid_shares == 0:
            raise VyperRevert("liquidation: repay below one share")
        mr._set_totals(mr.deposit_shares, _sub(mr.borrow_shares, repaid_shares))
        self._remove_borrow(acc, mr, repaid_shares)
        # Seize side.
        di, bi_s = ms.accrue(now, False)
        held = acc.position(id_s).deposit_shares
        seized_shares = held if p.seize_all else min(mul_div_up(p.seize, WAD, di), held)
        total_shares = _sub(ms.deposit_shares, seized_shares)
        if id_s == id_r and not nets_same_asset:
            if mul_div_down(total_shares, di, WAD) < mul_div_up(ms.borrow_shares + repaid_shares, bi, WAD):
                raise VyperRevert("market: insufficient liquidity")
        elif ms.borrow_shares != 0:
            if mul_div_down(total_shares, di, WAD) < mul_div_up(ms.borrow_shares, bi_s, WAD):
                raise VyperRevert("market: insufficient liquidity")
        ms._set_totals(total_shares, ms.borrow_shares)
        pos = acc.position(id_s)
        acc._set(id_s, replace(pos, deposit_shares=held - seized_shares))
        if seized_shares == held:
            acc.header = replace(acc.header, deposit_bitmap=acc.header.deposit_bitmap & ~(1 << id_s))
        return p.repay, seized, p, repaid_shares, seized_shares

    @_transactional
    def settle_bad_debt(
        self,
        owner: Any,
        sub_id: int,
        prices: Mapping[int, Any],
        token_balances: Mapping[int, int],
        now: int,
        dust: int,
        *,
        paused_until: int = 0,
        recently_stale_ids: Iterable[int] = (),
    ) -> list[tuple[str, dict[str, int]]]:
        """``engine.settle_bad_debt`` without a sequencer feed (L1; on an L2
        the engine also reverts "oracle: sequencer down" / "oracle: sequencer
        grace period" right after the pause check): with debt, liquidations
        not paused, no held asset's feed in the price grace period
        (``recently_stale_ids``, as for a liquidation), a
        maintenance health below zero and the unweighted value of the
        deposits 0 or below ``dust`` (USD WAD) -- every held asset's price
        accepted (strict) -- every held asset is accrued
        (need_borrow_index), its deposit forfeited to the insurance fund and
        its debt written off: insurance fund first (token balance + total
        borrows - total deposits, token units), the rest socialised by
        cutting the deposit index by ceil(loss * WAD / deposit shares).
        token_balances: asset id -> the engine's token balance. Returns the
        events it would log as (name, fields) pairs."""
        acc = self.account(owner, sub_id)
        header = acc.header
        if header.debt_bitmap == 0:
            raise VyperRevert("settle: no debt")
        if now < paused_until:
            raise VyperRevert("liquidation: paused")
        h = account_health(
            acc.positions, self.markets, prices, now, header=header, kinds=10, strict=True,
            recently_stale_ids=recently_stale_ids,
        )
        if not h.collateral[MAINTENANCE] < h.debt[MAINTENANCE]:
            raise VyperRevert("settle: account is healthy")
        if not (h.collateral[VALUE] == 0 or h.collateral[VALUE] < dust):
            raise VyperRevert("settle: collateral above dust")
        events: list[tuple[str, dict[str, int]]] = []
        for i in header.held_ids():
            m = self.markets[i]
            di, bi = m.accrue(now, True)
            pos = acc.position(i)
            acc._set(i, Position())
            total_ds = _sub(m.deposit_shares, pos.deposit_shares)
            total_bs = _sub(m.borrow_shares, pos.borrow_shares)
            if pos.deposit_shares != 0:
                events.append(("CollateralForfeited", {"amount": mul_div_down(pos.deposit_shares, di, WAD), "shares": pos.deposit_shares, "deposit_index": di}))
            if pos.borrow_shares != 0:
                debt = mul_div_up(pos.borrow_shares, bi, WAD)
                fund = token_balances[i] + mul_div_up(m.borrow_shares, bi, WAD) - mul_div_down(total_ds, di, WAD)
                used = min(fund, debt) if fund > 0 else 0
                loss = debt - used
                if used != 0:
                    events.append(("InsuranceFundUsed", {"amount": used}))
                if loss != 0:
                    cut = mul_div_up(loss, WAD, total_ds)
                    if not cut < di:
                        raise VyperRevert("settle: loss exceeds deposits")
                    di -= cut
                    m.market_a = (m.market_a & ~MASK96 & MAX_UINT256) | di
                    events.append(("LossSocialised", {"amount": loss, "deposit_index": di}))
                events.append(("BadDebtSettled", {"debt": debt, "shares": pos.borrow_shares, "borrow_index": bi}))
            m._set_totals(total_ds, total_bs)
        acc.header = AccountHeader(0, 0, header.last_risk_block)
        return events

    # -- action simulation (token amounts in, engine results out) ---------------------
    def _market_for(self, asset: Any) -> MarketReplica:
        m = self.markets.get(self.asset_id(asset))
        if m is None or (m.info >> 8) & LISTED == 0:
            raise VyperRevert("asset: not listed")
        return m

    @_transactional
    def deposit(self, owner: Any, sub_id: int, asset: Any, amount: int, now: int, block_number: int = 0) -> int:
        """``MarginEngine.deposit`` (share math and asserts, no token transfer):
        shares = floor(amount * WAD / di) after accrual. Returns shares minted."""
        m = self._market_for(asset)
        if (m.info >> 8) & PAUSE_DEPOSIT != 0:
            raise VyperRevert("pause: deposit paused")
        if amount == 0:
            raise VyperRevert("deposit: zero amount")
        di, _ = m.accrue(now, False)
        shares = _div(_mul(amount, WAD), di)
        if shares == 0:
            raise VyperRevert("deposit: amount below one share")
        total_shares = _add(m.deposit_shares, shares)
        if total_shares > MASK128:
            raise VyperRevert("market: share overflow")
        cap = (m.info >> 16) & MASK120
        if cap != 0 and mul_div_down(total_shares, di, WAD) > cap:
            raise VyperRevert("cap: supply cap exceeded")
        m._set_totals(total_shares, m.borrow_shares)
        self._add_deposit(self.account(owner, sub_id), m, shares)
        return shares

    @_transactional
    def withdraw(
        self, owner: Any, sub_id: int, asset: Any, amount: int, now: int, block_number: int = 0,
        prices: Mapping[int, Any] | None = None,
    ) -> tuple[int, int]:
        """``MarginEngine.withdraw``: amount == 2**256-1 withdraws all
        (sent = floor(held * di / WAD)), else burns ceil(amount * WAD / di)
        shares. With debt and ``prices`` given, runs the initial-health check.
        Returns (token units sent, shares burned)."""
        m = self._market_for(asset)
        if (m.info >> 8) & PAUSE_WITHDRAW != 0:
            raise VyperRevert("pause: withdraw paused")
        if amount == 0:
            raise VyperRevert("withdraw: zero amount")
        di, bi = m.accrue(now, False)
        acc = self.account(owner, sub_id)
        held = acc.position(m.asset_id).deposit_shares
        if held == 0:
            raise VyperRevert("withdraw: no deposit")
        if amount == MAX_UINT256:
            shares = held
            sent = mul_div_down(held, di, WAD)
        else:
            sent = amount
            shares = mul_div_up(amount, WAD, di)
            if shares > held:
                raise VyperRevert("withdraw: amount exceeds deposit")
        total_shares = _sub(m.deposit_shares, shares)
        if m.borrow_shares != 0:
            if mul_div_down(total_shares, di, WAD) < mul_div_up(m.borrow_shares, bi, WAD):
                raise VyperRevert("market: insufficient liquidity")
        m._set_totals(total_shares, m.borrow_shares)
        has_debt = self._remove_deposit(acc, m, shares, block_number)
        if has_debt and prices is not None:
            self.require_initial_health(owner, sub_id, prices, now)
        return sent, shares

    @_transactional
    def borrow(
        self, owner: Any, sub_id: int, asset: Any, amount: int, now: int, block_number: int = 0,
        prices: Mapping[int, Any] | None = None,
    ) -> int:
        """``MarginEngine.borrow``: mints ceil(amount * WAD / bi) borrow
        shares after accrual (restarting the clock); checks liquidity, the
        borrow cap and, with ``prices``, initial health. Returns shares."""
        m = self._market_for(asset)
        if (m.info >> 8) & BORROWABLE == 0:
            raise VyperRevert("borrow: asset not borrowable")
        if (m.info >> 8) & PAUSE_BORROW != 0:
            raise VyperRevert("pause: borrow paused")
        if amount == 0:
            raise VyperRevert("borrow: zero amount")
        di, bi = m.accrue(now, True)
        shares = mul_div_up(amount, WAD, bi)
        total_shares = _add(m.borrow_shares, shares)
        if total_shares > MASK128:
            raise VyperRevert("market: share overflow")
        total_borrow = mul_div_up(total_shares, bi, WAD)
        if total_borrow > mul_div_down(m.deposit_shares, di, WAD):
            raise VyperRevert("market: insufficient liquidity")
        cap = (m.info >> 136) & MASK120
        if cap != 0 and total_borrow > cap:
            raise VyperRevert("cap: borrow cap exceeded")
        m._set_totals(m.deposit_shares, total_shares)
        self._add_borrow(self.account(owner, sub_id), m, shares, block_number)
        if prices is not None:
            self.require_initial_health(owner, sub_id, prices, now)
        return shares

    @_transactional
    def repay(self, owner: Any, sub_id: int, asset: Any, amount: int, now: int, block_number: int = 0) -> tuple[int, int]:
        """``MarginEngine.repay``: amount >= debt (ceil(owed * bi / WAD))
        repays all; else burns floor(amount * WAD / bi) shares. Returns
        (token units paid, shares burned)."""
        m = self._market_for(asset)
        if amount == 0:
            raise VyperRevert("repay: zero amount")
        _, bi = m.accrue(now, True)
        acc = self.account(owner, sub_id)
        owed = acc.position(m.asset_id).borrow_shares
        if owed == 0:
            raise VyperRevert("repay: no debt")
        debt = mul_div_up(owed, bi, WAD)
        shares, paid = owed, debt
        if amount < debt:
            shares = _div(_mul(amount, WAD), bi)
            if shares == 0:
                raise VyperRevert("repay: amount below one share")
            paid = amount
        m._set_totals(m.deposit_shares, _sub(m.borrow_shares, shares))
        self._remove_borrow(acc, m, shares)
        return paid, shares

    @_transactional
    def transfer(
        self, owner: Any, from_sub_id: int, to_sub_id: int, asset: Any, amount: int, now: int, block_number: int = 0,
        prices: Mapping[int, Any] | None = None,
    ) -> tuple[int, int]:
        """``MarginEngine.transfer_collateral``: moves held shares
        (amount == 2**256-1) or ceil(amount * WAD / di) shares between two
        sub-accounts of one owner; with debt and ``prices``, checks the
        source's initial health. Returns (shares moved, event amount =
        floor(shares * di / WAD))."""
        m = self._market_for(asset)
        if from_sub_id == to_sub_id:
            raise VyperRevert("transfer: same sub-account")
        if (m.info >> 8) & PAUSE_TRANSFER != 0:
            raise VyperRevert("pause: transfer paused")
        if amount == 0:
            raise VyperRevert("transfer: zero amount")
        di, _ = m.accrue(now, False)
        src = self.account(owner, from_sub_id)
        held = src.position(m.asset_id).deposit_shares
        shares = held if amount == MAX_UINT256 else mul_div_up(amount, WAD, di)
        if not (shares != 0 and shares <= held):
            raise VyperRevert("transfer: amount exceeds deposit")
        self.apply_event(
            "TransferCollateral",
            {"asset": m.asset_id, "owner": owner, "from_sub_id": from_sub_id, "to_sub_id": to_sub_id,
             "shares": shares, "deposit_index": di},
            now, block_number,
        )
        if src.header.debt_bitmap != 0 and prices is not None:
            self.require_initial_health(owner, from_sub_id, prices, now)
        return shares, mul_div_down(shares, di, WAD)
