"""Hypothesis strategies for the differential tests: raw words and
parameters in the ranges the contracts accept, plus edge values."""

from __future__ import annotations

from hypothesis import strategies as st

from keeper import risk_model as rm

WAD = rm.WAD
MAX_UINT = rm.MAX_UINT256
MAX_BORROW_RATE = 10 * WAD // (365 * 86400)  # MarginConfigurator: 1000% APR per second
NOW = 1_800_000_000  # a block time in 2027, unix s


def uint(bits: int = 256) -> st.SearchStrategy[int]:
    """Any uint of `bits` bits, biased to small values and edges."""
    top = 2**bits - 1
    return st.one_of(
        st.integers(0, 16),
        st.integers(0, min(top, 10**24)),
        st.integers(0, top),
        st.sampled_from(sorted({0, 1, 2, min(top, WAD - 1), min(top, WAD), min(top, WAD + 1), top - 1 if top else 0, top})),
    )


def bps_weight(lo: int, hi: int) -> st.SearchStrategy[int]:
    """A WAD weight that is a multiple of 1 bp in [lo, hi] (WAD)."""
    return st.integers(lo // rm.BPS_TO_WAD, hi // rm.BPS_TO_WAD).map(lambda b: b * rm.BPS_TO_WAD)


@st.composite
def risk_params(draw, valid: bool = True) -> rm.RiskParams:
    """RiskParams within the configurator's bounds (valid=True) or any
    bp-representable values."""
    if valid:
        aw_m = draw(bps_weight(0, WAD))
        aw_i = draw(bps_weight(0, aw_m))
        lw_m = draw(bps_weight(WAD, 5 * WAD))
        lw_i = draw(bps_weight(lw_m, 5 * WAD))
        lo = draw(st.integers(1, 2**64 - 2))
        hi = draw(st.integers(lo + 1, 2**64 - 1))
    else:
        aw_i, aw_m, lw_i, lw_m = (draw(st.integers(0, 2**16 - 1)) * rm.BPS_TO_WAD for _ in range(4))
        lo = draw(uint(64))
        hi = draw(uint(64))
    imf = draw(st.one_of(st.just(0), st.integers(0, 2**24 - 1), st.integers(0, 10_000))) * rm.IMF_TO_WAD
    return rm.RiskParams(aw_i, aw_m, lw_i, lw_m, draw(st.integers(0, 2**24 - 1)), imf, lo, hi)


@st.composite
def risk_words(draw) -> int:
    """A packed risk word: mostly from valid params, sometimes arbitrary."""
    if draw(st.integers(0, 9)) == 0:
        return draw(uint(256))
    p = draw(risk_params(valid=draw(st.booleans())))
    return rm.pack_risk(p, draw(st.integers(0, 18)), draw(st.integers(0, 18)), draw(st.integers(0, 3)))


@st.composite
def ramp_words(draw, now: int) -> int:
    """0 or a ramp word whose window lies around `now`."""
    if draw(st.integers(0, 3)) == 0:
        return 0
    start = draw(st.integers(max(0, now - 100 * 86400), now))
    end = draw(st.one_of(st.integers(start, now + 100 * 86400), st.integers(start, 2**40 - 1)))
    return rm.pack_ramp(draw(st.integers(0, 2**16 - 1)), draw(st.integers(0, 2**16 - 1)), start, end)


@st.composite
def rate_words(draw) -> int:
    """A packed rate model: mostly valid (0 < kink < 1, total rate capped),
    sometimes arbitrary 64-bit fields."""
    if draw(st.booleans()):
        base = draw(st.integers(0, MAX_BORROW_RATE))
        low = draw(st.integers(0, MAX_BORROW_RATE - base))
        high = draw(st.integers(0, MAX_BORROW_RATE - base - low))
        kink = draw(st.integers(1, WAD - 1))
    else:
        base, low, high, kink = (draw(uint(64)) for _ in range(4))
    return rm.pack_rate_model(base, low, high, kink)


def indexes() -> st.SearchStrategy[int]:
    """A stored index (WAD, 96 bits): near 1.0 mostly."""
    return st.one_of(st.integers(WAD, 2 * WAD), st.integers(WAD, 2**96 - 1), st.integers(0, 2**96 - 1))


def shares() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 10**30), st.integers(0, 2**128 - 1), st.just(0))
