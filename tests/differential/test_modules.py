"""Unit-level differential tests: every pure function of keeper/risk_model.py
equals the contract module function it mirrors, for random inputs.

The module internals are called through tests/differential/harness/
ModulesHarness.vy (external wrappers; see its docstring for how the imports
resolve under titanoboa 0.2.8). Wherever the contract reverts (checked
arithmetic, division by zero, abi_decode bounds) the model must raise
VyperRevert, and vice versa.
"""

from __future__ import annotations

import dataclasses

import boa
import pytest
from boa import BoaError
from hypothesis import given
from hypothesis import strategies as st

from keeper import risk_model as rm

from .helpers import fixture_ok, harness_deployer
from .strategies import (
    MAX_UINT,
    NOW,
    WAD,
    indexes,
    ramp_words,
    rate_words,
    risk_params,
    risk_words,
    shares,
    uint,
)

ZERO = "0x" + "00" * 20


@pytest.fixture
def h():
    """The modules harness (external wrappers of the module internals)."""
    return harness_deployer("ModulesHarness").deploy()


@pytest.fixture
def feed():
    """A feed returning any round (RoundFeed.vy)."""
    return harness_deployer("RoundFeed").deploy()


def _norm(v):
    if dataclasses.is_dataclass(v):
        return tuple(_norm(x) for x in dataclasses.astuple(v))
    if isinstance(v, (tuple, list)):
        return tuple(_norm(x) for x in v)
    if isinstance(v, bool):
        return v
    return int(v)


def same(model_call, contract_call):
    """Model and contract agree: equal results, or both revert."""
    try:
        expected = model_call()
    except rm.VyperRevert:
        with pytest.raises(BoaError):
            contract_call()
        return None
    got = contract_call()
    assert _norm(got) == _norm(expected)
    return expected


# ---------------------------------------------------------------------------
# fixed_point
# ---------------------------------------------------------------------------


@fixture_ok()
@given(x=uint(), y=uint(), d=uint())
def test_mul_div(h, x, y, d):
    same(lambda: rm.mul_div_down(x, y, d), lambda: h.mul_div_down(x, y, d))
    same(lambda: rm.mul_div_up(x, y, d), lambda: h.mul_div_up(x, y, d))


# ---------------------------------------------------------------------------
# interest_rate
# ---------------------------------------------------------------------------


@fixture_ok()
@given(base=uint(70), low=uint(70), high=uint(70), kink=uint(70), word=uint())
def test_rate_pack_unpack(h, base, low, high, kink, word):
    same(lambda: rm.pack_rate_model(base, low, high, kink), lambda: h.rate_pack(base, low, high, kink))
    same(lambda: rm.unpack_rate_model(word), lambda: h.rate_unpack(word))
    assert rm.RateModel.from_word(word).to_word() == word


@fixture_ok()
@given(td=uint(), tb=uint())
def test_utilisation(h, td, tb):
    same(lambda: rm.utilisation(td, tb), lambda: h.utilisation(td, tb))


@fixture_ok()
@given(word=rate_words(), u=st.one_of(st.integers(0, WAD), uint()), rf=st.one_of(st.integers(0, WAD), uint(64)))
def test_borrow_and_supply_rate(h, word, u, rf):
    rate = same(lambda: rm.borrow_rate(word, u), lambda: h.borrow_rate(word, u))
    r = rate if rate is not None else u
    same(lambda: rm.supply_rate(r, u, rf), lambda: h.supply_rate(r, u, rf))


@fixture_ok()
@given(
    word=rate_words(),
    rf=st.one_of(st.integers(0, WAD), uint(60)),
    di=indexes(),
    bi=indexes(),
    ds=shares(),
    bs=shares(),
    dt=st.one_of(st.integers(0, 10 * 365 * 86400), uint(40)),
)
def test_accrue(h, word, rf, di, bi, ds, bs, dt):
    same(lambda: rm.accrue(word, rf, di, bi, ds, bs, dt), lambda: h.accrue(word, rf, di, bi, ds, bs, dt))


@fixture_ok()
@given(
    data=st.data(),
    word=rate_words(),
    rf=st.one_of(st.integers(0, WAD), uint(60)),
    di=indexes(),
    bi=indexes(),
    ds=shares(),
    bs=shares(),
    feed_bits=uint(160),
    now=st.integers(NOW - 10**6, NOW + 10**8),
)
def test_indexes_now(h, data, word, rf, di, bi, ds, bs, feed_bits, now):
    last = data.draw(st.one_of(st.integers(now - 10**8, now + 1000), st.just(now), uint(40)))
    market_a = di | feed_bits << 96
    market_b = bi | (last & rm.MASK40) << 96 | rf << 136
    totals = ds | bs << 128
    boa.env.timestamp = now
    same(
        lambda: rm.indexes_now(market_a, market_b, totals, word, now),
        lambda: h.indexes_now(market_a, market_b, totals, word),
    )


# ---------------------------------------------------------------------------
# margin
# ---------------------------------------------------------------------------


@fixture_ok()
@given(p=risk_params(valid=False), td=st.integers(0, 31), fd=st.integers(0, 31), flags=st.integers(0, 63), word=risk_words())
def test_risk_word(h, p, td, fd, flags, word):
    same(lambda: rm.pack_risk(p, td, fd, flags), lambda: h.pack_risk(dataclasses.astuple(p), td, fd, flags))
    same(lambda: rm.unpack_risk(word), lambda: h.unpack_risk(word))
    lo, hi = rm.answer_bounds(word)
    same(
        lambda: (
            rm.token_decimals(word), rm.feed_decimals(word), rm.risk_flags(word), rm.max_staleness(word),
            lo, hi, rm.imf(word), rm.unit_price_exponent(word),
        ),
        lambda: h.risk_fields(word),
    )


@fixture_ok()
@given(aw=uint(16), lw=uint(16), start=uint(40), end=uint(40), word=uint())
def test_ramp_word(h, aw, lw, start, end, word):
    same(lambda: rm.pack_ramp(aw, lw, start, end), lambda: h.pack_ramp(aw, lw, start, end))
    same(lambda: rm.ramp_end(word), lambda: h.ramp_end(word))
    r = rm.Ramp.from_word(rm.pack_ramp(aw, lw, start, end))
    assert (r.asset_weight_start, r.liability_weight_start, r.start, r.end) == (
        aw * rm.BPS_TO_WAD, lw * rm.BPS_TO_WAD, start, end,
    )


@fixture_ok()
@given(data=st.data(), risk=risk_words(), now=st.integers(NOW - 10**6, NOW + 10**6))
def test_weights_and_ramp(h, data, risk, now):
    ramp = data.draw(ramp_words(now))
    if data.draw(st.booleans()):
        # now before the ramp start: the contract underflows
        now = data.draw(st.integers(max(0, now - 10**6), now))
    boa.env.timestamp = now
    same(lambda: rm.maintenance_weights(risk, ramp, now), lambda: h.maintenance_weights(risk, ramp))
    for kind in range(5):  # INITIAL, MAINTENANCE, LIQUIDATION_END, VALUE, and an unknown kind
        same(lambda k=kind: rm.weights(risk, ramp, k, now), lambda k=kind: h.weights(risk, ramp, k))


@fixture_ok()
@given(
    amount=st.one_of(st.integers(0, 10**30), uint()),
    decimals=st.integers(0, 31),
    w=st.one_of(st.integers(0, 5 * WAD), uint(64)),
    imf=st.one_of(st.integers(0, 2**24 - 1).map(lambda x: x * 10**12), uint()),
    size=st.one_of(st.integers(0, 10**40), uint()),
)
def test_size_and_tiered_weights(h, amount, decimals, w, imf, size):
    same(lambda: rm.size_wad(amount, decimals), lambda: h.size_wad(amount, decimals))
    same(lambda: rm.tiered_asset_weight(w, imf, size), lambda: h.tiered_asset_weight(w, imf, size))
    same(lambda: rm.tiered_liability_weight(w, imf, size), lambda: h.tiered_liability_weight(w, imf, size))


@fixture_ok()
@given(
    data=st.data(),
    risk=risk_words(),
    now=st.integers(NOW - 10**6, NOW + 10**6),
    price=st.one_of(st.integers(0, 10**40), st.integers(10**24, 10**34), uint()),
    dep=st.one_of(st.integers(0, 10**30), st.just(0), uint(128)),
    debt=st.one_of(st.integers(0, 10**30), st.just(0), uint(128)),
    kind=st.integers(0, 4),
)
def test_contribution(h, data, risk, now, price, dep, debt, kind):
    ramp = data.draw(ramp_words(now))
    boa.env.timestamp = now
    same(
        lambda: rm.contribution(risk, ramp, price, dep, debt, kind, now),
        lambda: h.contribution(risk, ramp, price, dep, debt, kind),
    )


# ---------------------------------------------------------------------------
# oracle
# ---------------------------------------------------------------------------


def _near(data, anchor: int, strategy, below: bool | None = None):
    """A value at one of the boundaries of the oracle's comparisons: within
    +-1 of `anchor`, on one side of it (below=True: <= anchor, False: >=),
    or anything from `strategy`."""
    mode = data.draw(st.integers(0, 2))
    if mode == 0:
        return max(0, anchor + data.draw(st.integers(-1, 1)))
    if mode == 1 and below is not None:
        step = data.draw(st.integers(0, 10**20))
        return max(0, anchor - step) if below else max(0, anchor + step)
    return data.draw(strategy)


@fixture_ok()
@given(
    data=st.data(),
    round_id=st.one_of(
        st.integers(0, 2**64 + 5), st.integers(0, 2**80 - 1), st.sampled_from([(1 << 64) | 1, (1 << 64) | 2, (1 << 64) | 9, 1, 2])
    ),
    now=st.integers(NOW - 10**6, NOW + 10**6),
    down=st.integers(0, 9).map(lambda x: x == 7),
    n_previous=st.one_of(st.integers(0, 3), st.integers(0, rm.MAX_GRACE_ROUNDS + 2)),
)
def test_recently_stale(h, feed, data, round_id, now, down, n_previous):
    """The walk back over up to MAX_GRACE_ROUNDS previous rounds: gaps near
    max staleness, rounds near the edge of the grace window, a history that
    ends (getRoundData reverts) or reaches the first round of a phase."""
    updated = data.draw(st.one_of(st.integers(now - 10**5, now), uint(64)))
    grace = _near(data, now - updated, st.one_of(st.integers(0, 10**5), uint(32), uint()), below=False)
    stale = data.draw(st.one_of(st.integers(0, 10**5), uint(24), uint()))
    ids, times, t = [], [], updated
    for k in range(1, min(n_previous, round_id) + 1):
        gap = _near(data, stale, st.integers(0, 10**5), below=True)
        t = data.draw(st.one_of(st.just(max(0, t - gap)), st.integers(0, max(0, t)), uint(64)))
        ids.append(round_id - k)
        times.append(t)
    grace, stale = min(grace, MAX_UINT), min(stale, MAX_UINT)
    feed.set(round_id, 10**8, updated, updated, round_id, down)
    feed.set_history(ids, times)
    boa.env.timestamp = now
    latest = None if down else rm.RoundData(round_id, 10**8, updated, updated, round_id)
    history = dict(zip(ids, times))

    def round_data(rid):
        return rm.RoundData(rid, 10**8, history[rid], history[rid], rid) if rid in history else None

    same(lambda: rm.recently_stale(latest, round_data, stale, grace, now), lambda: h.recently_stale(feed.address, stale, grace))


def liquidation_params():
    bp = st.integers(0, 2**16 - 1).map(lambda x: x * rm.BPS_TO_WAD)
    small = st.integers(0, 3_000).map(lambda x: x * rm.BPS_TO_WAD)
    return st.builds(rm.LiquidationParams, st.one_of(small, bp), st.one_of(small, bp), st.one_of(small, bp), st.one_of(small, bp))


@fixture_ok()
@given(
    p=liquidation_params(),
    word=uint(),
    ratio=st.one_of(st.integers(0, 2 * WAD), uint(128)),
    aw=st.one_of(st.just(0), st.integers(0, WAD), uint(64)),
    lw=st.one_of(st.integers(WAD, 5 * WAD), uint(64)),
)
def test_liquidation_words_and_bonus(h, p, word, ratio, aw, lw):
    same(lambda: rm.pack_liquidation(p), lambda: h.liq_pack(dataclasses.astuple(p)))
    same(lambda: rm.unpack_liquidation(word), lambda: h.liq_unpack(word))
    same(lambda: rm.liquidation_bonus(ratio, p, aw, lw), lambda: h.liq_bonus(ratio, dataclasses.astuple(p), aw, lw))


PRICES = st.one_of(st.integers(1, 10**40), st.integers(10**24, 10**34), uint(128), st.just(0))
AMOUNTS = st.one_of(st.integers(0, 10**30), uint(128), st.just(0))


@fixture_ok()
@given(amount=AMOUNTS, pr=PRICES, ps=PRICES, b=st.one_of(st.integers(0, WAD), uint(64)))
def test_seize_and_repay_for(h, amount, pr, ps, b):
    same(lambda: rm.seize_for(amount, pr, ps, b), lambda: h.seize_for(amount, pr, ps, b))
    same(lambda: rm.repay_for(amount, pr, ps, b), lambda: h.repay_for(amount, pr, ps, b))


@fixture_ok()
@given(
    data=st.data(),
    le_health=st.one_of(st.integers(-(10**30), 10**20), st.integers(-(2**255), 2**255 - 1), st.sampled_from([0, -1, 1])),
    debt=AMOUNTS,
    deposit=AMOUNTS,
    pr=st.one_of(st.integers(10**20, 10**34), PRICES),
    ps=st.one_of(st.integers(10**20, 10**34), PRICES),
    lw=st.one_of(st.integers(WAD, 5 * WAD), uint(64)),
    aw=st.one_of(st.integers(0, WAD), uint(64)),
    b=st.one_of(st.integers(0, WAD // 5), uint(64)),
    share=st.one_of(st.integers(0, WAD), uint(64)),
    dust=st.one_of(st.just(0), st.integers(0, 100 * WAD), uint()),
)
def test_liquidation_plan(h, data, le_health, debt, deposit, pr, ps, lw, aw, b, share, dust):
    requested = data.draw(st.one_of(st.just(MAX_UINT), AMOUNTS, st.integers(0, max(0, debt))))
    same(
        lambda: rm.liquidation_plan(le_health, debt, deposit, pr, ps, lw, aw, b, share, dust, requested),
        lambda: h.liq_plan(le_health, debt, deposit, pr, ps, lw, aw, b, share, dust, requested),
    )


@fixture_ok()
@given(
    data=st.data(),
    cm=st.one_of(st.integers(0, 10**30), uint(128)),
    dm=st.one_of(st.integers(1, 10**30), uint(128)),
    le_health=st.one_of(st.integers(-(10**30), 10**20), st.just(0)),
    risk_r=risk_words(),
    risk_s=risk_words(),
    word=st.one_of(liquidation_params().map(rm.pack_liquidation), uint()),
    pr=st.one_of(st.integers(10**20, 10**34), PRICES),
    ps=st.one_of(st.integers(10**20, 10**34), PRICES),
    debt=AMOUNTS,
    deposit=AMOUNTS,
    dust=st.one_of(st.just(0), st.integers(0, 100 * WAD)),
    solvent=st.booleans(),
    now=st.integers(NOW - 10**6, NOW + 10**6),
)
def test_plan_for(h, data, cm, dm, le_health, risk_r, risk_s, word, pr, ps, debt, deposit, dust, solvent, now):
    ramp_r = data.draw(ramp_words(now))
    ramp_s = data.draw(ramp_words(now))
    requested = data.draw(st.one_of(st.just(MAX_UINT), AMOUNTS))
    di, bi = data.draw(indexes()), data.draw(indexes())
    boa.env.timestamp = now
    args = (cm, dm, le_health, risk_r, ramp_r, risk_s, ramp_s, word, pr, ps, debt, deposit, dust, requested, solvent,
            di << 128 | bi)
    same(lambda: rm.plan_for(*args, now), lambda: h.plan_for(*args))
