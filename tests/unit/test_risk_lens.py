"""MarginLens: max_borrow / max_withdraw are exact (the amount succeeds, one
more token unit fails), balances are accrued to now, asset_config
round-trips every listed parameter."""

from math import isqrt
from types import SimpleNamespace

import boa
import pytest

from tests.protocol import MAX_UINT, PAUSE_BORROW, PAUSE_WITHDRAW, WAD, AssetSpec, Protocol, per_second

DAY = 86400
ETH = 10**18
USDC = 10**6
MASK96 = 2**96 - 1
BELOW = "health: below initial margin"


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def accrue_ref(rates, di, bi, ds, bs, dt):
    """interest_rate.accrue, independently: kinked rate, simple interest per accrual."""
    base, slope_low, slope_high, kink, rf = rates
    if bs == 0 or dt == 0:
        return di, bi
    td = ds * di // WAD
    tb = ceil_div(bs * bi, WAD)
    u = WAD if tb >= td else tb * WAD // td
    if u <= kink:
        r = base + slope_low * u // kink
    else:
        r = base + slope_low + slope_high * (u - kink) // (WAD - kink)
    nbi = bi + ceil_div(bi * r * dt, WAD)
    interest = ceil_div(bs * nbi, WAD) - tb
    ndi = di + (interest * (WAD - rf) // WAD) * WAD // ds
    return ndi, nbi


DEFAULT_RATES = (0, per_second(4 * 10**16), per_second(75 * 10**16), 8 * 10**17, 10**17)


def deposit(p, who, asset, amount, sub=0):
    p.fund(who, asset, amount)
    with boa.env.prank(who):
        p.engine.deposit(asset.address, amount, sub)


def borrow(p, who, asset, amount, sub=0):
    with boa.env.prank(who):
        return p.engine.borrow(asset.address, amount, sub)


def assert_exact_borrow(p, who, asset, expected=None, reason=BELOW, sub=0):
    """max_borrow succeeds; one more unit reverts with `reason`."""
    m = p.lens.max_borrow(who, sub, asset.address)
    if expected is not None:
        assert m == expected
    assert m > 0
    with boa.env.anchor():
        with boa.env.prank(who), boa.reverts(reason):
            p.engine.borrow(asset.address, m + 1, sub)
    with boa.env.prank(who):
        p.engine.borrow(asset.address, m, sub)
    return m


def assert_exact_withdraw(p, who, asset, expected=None, reason=BELOW, sub=0):
    m = p.lens.max_withdraw(who, sub, asset.address)
    if expected is not None:
        assert m == expected
    assert m > 0
    with boa.env.anchor():
        with boa.env.prank(who), boa.reverts(reason):
            p.engine.withdraw(asset.address, m + 1, sub)
    with boa.env.prank(who):
        assert p.engine.withdraw(asset.address, m, sub) == m
    return m


@pytest.fixture
def env():
    p = Protocol.deploy()
    eth = p.list_asset(AssetSpec("ETH", price=2000, max_staleness=7 * DAY))
    usdc = p.list_asset(AssetSpec("USDC", decimals=6, max_staleness=7 * DAY))
    alice = boa.env.generate_address("alice")
    lender = boa.env.generate_address("lender")
    deposit(p, lender, usdc, 100_000 * USDC)
    deposit(p, lender, eth, 100 * ETH)
    deposit(p, alice, eth, ETH)
    return SimpleNamespace(p=p, eth=eth, usdc=usdc, alice=alice, lender=lender)


# ---------------------------------------------------------------------------
# max_borrow
# ---------------------------------------------------------------------------


def test_max_borrow_flat_literal(env):
    # initial collateral 2000 * 0.8 = 1600; USDC at $1 and lw 1.2: 1600 / 1.2 = 1333.333333 USDC
    assert_exact_borrow(env.p, env.alice, env.usdc, 1_333_333_333)
    assert env.p.engine.health(env.alice)[0] == 1_600 * WAD - ceil_div(1_333_333_333 * 10**12 * 12, 10)
    assert env.p.lens.max_borrow(env.alice, 0, env.usdc.address) == 0  # nothing left (0.0000004 < 1 unit * 1.2)


def test_max_borrow_same_asset_as_collateral(env):
    # 1 ETH deposited, borrow ETH: 1600 >= x * 2000 * 1.2 -> x <= 0.6666... ETH
    m = assert_exact_borrow(env.p, env.alice, env.eth, 666_666_666_666_666_666)
    assert m == 2 * ETH // 3


def test_max_borrow_exact_with_awkward_prices(env):
    p = env.p
    dai = p.list_asset(AssetSpec("DAI", decimals=18, feed_decimals=18, max_staleness=7 * DAY))
    dai.feed.set_answer(999_712_345_678_901_234)
    env.eth.feed.set_answer(1_987_654_321_01)
    deposit(p, env.lender, dai, 100_000 * ETH)
    m = p.lens.max_borrow(env.alice, 0, dai.address)
    # largest x with ceil(ceil(x * price / WAD) * 1.2) <= floor(1e18 * 1987.6543210100 ) * 0.8
    coll = ETH * 1_987_654_321_01 * 10**10 // WAD * 8 // 10
    price = 999_712_345_678_901_234

    def liab(x):
        return ceil_div(ceil_div(x * price, WAD) * 12, 10)

    assert liab(m) <= coll < liab(m + 1)
    assert_exact_borrow(p, env.alice, dai, m)


def test_max_borrow_with_existing_debt_at_index_one(env):
    p = env.p
    borrow(p, env.alice, env.usdc, 1_000 * USDC)  # same block: borrow index still 1
    assert_exact_borrow(p, env.alice, env.usdc, 333_333_333)


def usdc_index_above_one(env):
    """Alice owes 1000 USDC for 45 days: the USDC borrow index is
    1.00006164383176 (u ~ 1%, 4% APR at the 80% kink), shared by every borrower."""
    p = env.p
    borrow(p, env.alice, env.usdc, 1_000 * USDC)
    boa.env.time_travel(seconds=45 * DAY)
    p.refresh_prices()
    slope_low = per_second(4 * 10**16)
    rate = slope_low * (1_000 * USDC * WAD // (100_000 * USDC)) // (8 * 10**17)
    bi = WAD + ceil_div(WAD * rate * 45 * DAY, WAD)
    assert p.lens.market(env.usdc.address).borrow_index == bi == 1_000_061_643_831_760_000
    return bi


# Regression: the lens once valued the debt after borrowing `mid` as debt_now + mid,
# while the engine mints ceil(mid * WAD / bi) shares and values the debt as
# ceil((shares_old + new_shares) * bi / WAD), up to one unit more once bi > 1.
def test_max_borrow_exact_with_existing_debt_and_interest(env):
    p = env.p
    bi = usdc_index_above_one(env)
    shares_old = 1_000 * USDC
    m = p.lens.max_borrow(env.alice, 0, env.usdc.address)
    assert m == 333_271_688
    # the engine's debt after borrowing m is at the limit (1600 / 1.2); one more unit is over it
    debt_now = ceil_div(shares_old * bi, WAD)
    engine_debt = ceil_div((shares_old + ceil_div(m * WAD, bi)) * bi, WAD)
    assert (debt_now + m, engine_debt) == (1_333_333_332, 1_333_333_333)
    assert_exact_borrow(p, env.alice, env.usdc, m)


def test_max_borrow_exact_for_a_new_borrower_when_index_above_one(env):
    p = env.p
    bi = usdc_index_above_one(env)
    bob = boa.env.generate_address("bob")
    deposit(p, bob, env.eth, ETH)
    m = p.lens.max_borrow(bob, 0, env.usdc.address)
    assert m == 1_333_333_332  # one unit under 1600 / 1.2: the engine's debt rounds up
    assert ceil_div(ceil_div(m * WAD, bi) * bi, WAD) == m + 1 == 1_333_333_333  # the engine's debt
    assert_exact_borrow(p, bob, env.usdc, m)


def test_max_borrow_cap_limit_exact_when_index_above_one(env):
    p = env.p
    bi = usdc_index_above_one(env)
    total_now = ceil_div(1_000 * USDC * bi, WAD)
    assert total_now == 1_000_061_644
    with boa.env.prank(p.owner):
        p.configurator.set_caps(env.usdc.address, 0, 1_500 * USDC)
    bob = boa.env.generate_address("bob")
    deposit(p, bob, env.eth, ETH)
    m = p.lens.max_borrow(bob, 0, env.usdc.address)
    assert m == 1_500 * USDC - total_now - 1 == 499_938_355
    # the engine's new total: ceil((shares + ceil(m / bi)) * bi) reaches the cap exactly
    assert ceil_div((1_000 * USDC + ceil_div(m * WAD, bi)) * bi, WAD) == 1_500 * USDC
    assert_exact_borrow(p, bob, env.usdc, m, reason="cap: borrow cap exceeded")


def test_max_borrow_tiered(env):
    p = env.p
    imf = 10**16
    big = p.list_asset(AssetSpec("BIG", imf=imf, price=1, max_staleness=7 * DAY))
    deposit(p, env.lender, big, 10**7 * ETH)
    deposit(p, env.alice, env.usdc, 5_000 * USDC)  # +4000 initial
    # 5600 of initial collateral; the tiered liability n * (0.96 + 0.01 * sqrt(n)) reaches 5600 near n = 3591
    m = p.lens.max_borrow(env.alice, 0, big.address)

    def liab(x):
        lw = max(12 * 10**17, ceil_div(12 * 10**17 * 8, 10) + ceil_div(imf * (isqrt(x * WAD) + 1), WAD))
        return ceil_div(x * lw, WAD)

    assert liab(m) <= 5_600 * WAD < liab(m + 1)
    assert liab(m) > ceil_div(m * 12, 10)  # the tier binds, not the flat 1.2
    assert 3_591 * ETH < m < 3_592 * ETH
    assert_exact_borrow(p, env.alice, big, m)


def test_max_borrow_tiered_both_sides(env):
    p = env.p
    big = p.list_asset(AssetSpec("BIG", imf=10**16, price=1, max_staleness=7 * DAY))
    deposit(p, env.lender, big, 10**7 * ETH)
    deposit(p, env.alice, big, 20_000 * ETH)  # tiered collateral on the same asset
    assert_exact_borrow(p, env.alice, big)


def test_max_borrow_limited_by_liquidity(env):
    p = env.p
    lender2 = boa.env.generate_address("lender2")
    wbtc = p.list_asset(AssetSpec("WBTC", decimals=8, price=100, max_staleness=7 * DAY))
    deposit(p, lender2, wbtc, 3 * 10**8)  # only 3 WBTC ($300) to lend; alice could borrow $1333
    bob = boa.env.generate_address("bob")
    deposit(p, bob, env.eth, ETH)
    borrow(p, bob, wbtc, 10**8)  # 1 WBTC out: 2 left
    assert_exact_borrow(p, env.alice, wbtc, 2 * 10**8, reason="market: insufficient liquidity")


def test_max_borrow_limited_by_borrow_cap(env):
    p = env.p
    bob = boa.env.generate_address("bob")
    deposit(p, bob, env.eth, ETH)
    borrow(p, bob, env.usdc, 200 * USDC)
    with boa.env.prank(p.owner):
        p.configurator.set_caps(env.usdc.address, 0, 700 * USDC)
    assert_exact_borrow(p, env.alice, env.usdc, 500 * USDC, reason="cap: borrow cap exceeded")
    # cap already reached: 0
    assert p.lens.max_borrow(bob, 0, env.usdc.address) == 0
    # a cap below the current total also gives 0
    with boa.env.prank(p.owner):
        p.configurator.set_caps(env.usdc.address, 0, 100 * USDC)
    assert p.lens.max_borrow(bob, 0, env.usdc.address) == 0


def test_max_borrow_zero_cases(env):
    p = env.p
    assert p.lens.max_borrow(env.alice, 0, env.usdc.address) == 1_333_333_333
    # an empty account
    assert p.lens.max_borrow(boa.env.generate_address("nobody"), 0, env.usdc.address) == 0
    # paused
    with boa.env.prank(p.guardian):
        p.engine.pause(env.usdc.address, PAUSE_BORROW)
    assert p.lens.max_borrow(env.alice, 0, env.usdc.address) == 0
    with boa.env.prank(p.owner):
        p.configurator.unpause(env.usdc.address, PAUSE_BORROW)
    assert p.lens.max_borrow(env.alice, 0, env.usdc.address) == 1_333_333_333
    # not borrowable
    with boa.env.prank(p.owner):
        p.configurator.set_flags(env.usdc.address, True, False)
    assert p.lens.max_borrow(env.alice, 0, env.usdc.address) == 0
    with boa.env.prank(p.owner):
        p.configurator.set_flags(env.usdc.address, True, True)
    # a stale price of a held asset
    boa.env.time_travel(seconds=7 * DAY + 1)
    assert p.lens.max_borrow(env.alice, 0, env.usdc.address) == 0
    p.refresh_prices()
    assert p.lens.max_borrow(env.alice, 0, env.usdc.address) == 1_333_333_333
    # under water: 0
    borrow(p, env.alice, env.usdc, 1_000 * USDC)
    env.eth.feed.set_answer(1_000 * 10**8)
    assert p.engine.health(env.alice)[0] < 0
    assert p.lens.max_borrow(env.alice, 0, env.usdc.address) == 0


# ---------------------------------------------------------------------------
# max_withdraw
# ---------------------------------------------------------------------------


def test_max_withdraw_with_debt_literal(env):
    p = env.p
    borrow(p, env.alice, env.usdc, 1_000 * USDC)
    # keep x ETH with x * 2000 * 0.8 >= 1200: x >= 0.75, so 0.25 ETH can go
    assert_exact_withdraw(p, env.alice, env.eth, 25 * 10**16)
    assert p.engine.health(env.alice)[0] == 0


def test_max_withdraw_without_debt_is_the_deposit(env):
    assert env.p.lens.max_withdraw(env.alice, 0, env.eth.address) == ETH
    with boa.env.prank(env.alice):
        assert env.p.engine.withdraw(env.eth.address, ETH) == ETH


def test_max_withdraw_limited_by_liquidity(env):
    p = env.p
    borrow(p, env.alice, env.usdc, 1_000 * USDC)
    assert_exact_withdraw(p, env.lender, env.usdc, 99_000 * USDC, reason="market: insufficient liquidity")


def test_max_withdraw_exact_with_interest(env):
    """Alice withdraws a USDC deposit whose index moves (bob borrows USDC)
    while she owes ETH; the lens values the deposit as the engine will
    after accruing."""
    p = env.p
    deposit(p, env.alice, env.usdc, 3_000 * USDC)
    borrow(p, env.alice, env.eth, ETH)  # $2000, initial debt 2400 vs 1600 + 2400 collateral
    bob = boa.env.generate_address("bob")
    deposit(p, bob, env.eth, 100 * ETH)
    borrow(p, bob, env.usdc, 90_000 * USDC)  # 87% utilisation: fast-growing USDC index
    boa.env.time_travel(seconds=60 * DAY)
    p.refresh_prices()
    s = p.engine.asset_state(env.usdc.id)
    stored_di = s.market_a & MASK96
    di_now = p.lens.market(env.usdc.address).deposit_index
    assert di_now > stored_di == WAD
    m = assert_exact_withdraw(p, env.alice, env.usdc)
    assert 1_000 * USDC < m < 3_000 * USDC


def test_max_withdraw_tiered_collateral(env):
    p = env.p
    big = p.list_asset(AssetSpec("BIG", imf=10**16, price=1, max_staleness=7 * DAY))
    deposit(p, env.alice, big, 50_000 * ETH)
    borrow(p, env.alice, env.usdc, 10_000 * USDC)
    # withdrawing shrinks the size and so raises the tiered asset weight: still exact
    assert_exact_withdraw(p, env.alice, big)


def test_max_withdraw_zero_cases(env):
    p = env.p
    borrow(p, env.alice, env.usdc, 1_000 * USDC)
    assert p.lens.max_withdraw(env.alice, 0, env.eth.address) == 25 * 10**16
    with boa.env.prank(p.guardian):
        p.engine.pause(env.eth.address, PAUSE_WITHDRAW)
    assert p.lens.max_withdraw(env.alice, 0, env.eth.address) == 0
    assert p.lens.max_withdraw(env.lender, 0, env.eth.address) == 0  # paused for everyone
    with boa.env.prank(p.owner):
        p.configurator.unpause(env.eth.address, PAUSE_WITHDRAW)
    boa.env.time_travel(seconds=7 * DAY + 1)  # stale
    assert p.lens.max_withdraw(env.alice, 0, env.eth.address) == 0
    assert p.lens.max_withdraw(env.lender, 0, env.eth.address) == 100 * ETH  # no debt: no price needed
    p.refresh_prices()
    env.eth.feed.set_answer(1_400 * 10**8)  # 1120 < 1200 + interest: under initial margin
    assert p.engine.health(env.alice)[0] < 0
    assert p.lens.max_withdraw(env.alice, 0, env.eth.address) == 0
    assert p.lens.max_withdraw(boa.env.generate_address("nobody"), 0, env.eth.address) == 0


# ---------------------------------------------------------------------------
# balances
# ---------------------------------------------------------------------------


def test_balances_accrued_to_now(env):
    p = env.p
    deposit(p, env.alice, env.usdc, 2_000 * USDC)
    borrow(p, env.alice, env.usdc, 500 * USDC)
    borrow(p, env.alice, env.eth, 10**17)
    b0 = p.lens.balances(env.alice)
    assert [(b.asset, b.deposit, b.borrow, b.deposit_shares, b.borrow_shares) for b in b0] == [
        (env.eth.address, ETH, 10**17, ETH, 10**17),
        (env.usdc.address, 2_000 * USDC, 500 * USDC, 2_000 * USDC, 500 * USDC),
    ]

    dt = 100 * DAY
    boa.env.time_travel(seconds=dt)
    usdc_di, usdc_bi = accrue_ref(DEFAULT_RATES, WAD, WAD, 102_000 * USDC, 500 * USDC, dt)
    eth_di, eth_bi = accrue_ref(DEFAULT_RATES, WAD, WAD, 101 * ETH, 10**17, dt)
    assert usdc_bi > WAD and eth_bi > WAD and usdc_di > WAD and eth_di > WAD
    expected = [
        (env.eth.address, ETH * eth_di // WAD, ceil_div(10**17 * eth_bi, WAD), ETH, 10**17),
        (env.usdc.address, 2_000 * USDC * usdc_di // WAD, ceil_div(500 * USDC * usdc_bi, WAD), 2_000 * USDC, 500 * USDC),
    ]
    got = [(b.asset, b.deposit, b.borrow, b.deposit_shares, b.borrow_shares) for b in p.lens.balances(env.alice)]
    assert got == expected
    # the lender's balances too (deposits only)
    got = [(b.asset, b.deposit, b.borrow) for b in p.lens.balances(env.lender)]
    assert got == [
        (env.eth.address, 100 * ETH * eth_di // WAD, 0),
        (env.usdc.address, 100_000 * USDC * usdc_di // WAD, 0),
    ]
    # storing the accrual changes nothing
    p.engine.accrue(env.eth.address)
    p.engine.accrue(env.usdc.address)
    assert p.engine.asset_state(env.usdc.id).market_a & MASK96 == usdc_di
    assert p.engine.asset_state(env.usdc.id).market_b & MASK96 == usdc_bi
    got = [(b.asset, b.deposit, b.borrow, b.deposit_shares, b.borrow_shares) for b in p.lens.balances(env.alice)]
    assert got == expected


def test_balances_lists_only_held_assets_by_id(env):
    p = env.p
    dai = p.list_asset(AssetSpec("DAI"))
    wbtc = p.list_asset(AssetSpec("WBTC", decimals=8))
    deposit(p, env.alice, wbtc, 12_345)
    with boa.env.prank(env.alice):
        p.engine.withdraw(env.eth.address, MAX_UINT)
    got = [(b.asset, b.deposit) for b in p.lens.balances(env.alice)]
    assert got == [(wbtc.address, 12_345)]
    assert dai.id == 2 and wbtc.id == 3
    assert p.lens.balances(boa.env.generate_address("nobody")) == []


# ---------------------------------------------------------------------------
# asset_config
# ---------------------------------------------------------------------------


def test_asset_config_round_trips_every_parameter():
    p = Protocol.deploy()
    p.list_asset(AssetSpec("ETH"))
    spec = AssetSpec(
        "ODD",
        decimals=8,
        feed_decimals=18,
        price=3.5,
        asset_weight_initial=6543 * 10**14,
        asset_weight_maintenance=7001 * 10**14,
        liability_weight_initial=17777 * 10**14,
        liability_weight_maintenance=13333 * 10**14,
        max_staleness=12_345,
        imf=7_654_321 * 10**12,
        min_answer=10**15,
        max_answer=10**19,
        base_rate=per_second(3 * 10**16),
        slope_low=per_second(7 * 10**16),
        slope_high=per_second(2 * 10**18),
        kink=65 * 10**16,
        reserve_factor=25 * 10**16,
        supply_cap=123_456 * 10**8,
        borrow_cap=65_432 * 10**8,
        collateral=False,
        borrowable=False,
        min_bonus=3 * 10**16,
        max_bonus=15 * 10**16,
        full_bonus_depth=2 * 10**17,
        insurance_share=5 * 10**16,
    )
    a = p.list_asset(spec)
    cfg = p.lens.asset_config(a.address)
    assert (cfg.asset, cfg.asset_id, cfg.feed, cfg.token_decimals, cfg.feed_decimals) == (
        a.address,
        1,
        a.feed.address,
        8,
        18,
    )
    assert tuple(cfg.risk) == (
        spec.asset_weight_initial,
        spec.asset_weight_maintenance,
        spec.liability_weight_initial,
        spec.liability_weight_maintenance,
        spec.max_staleness,
        spec.imf,
        spec.min_answer,
        spec.max_answer,
    )
    assert (cfg.asset_weight_maintenance_now, cfg.liability_weight_maintenance_now, cfg.ramp_end) == (
        spec.asset_weight_maintenance,
        spec.liability_weight_maintenance,
        0,
    )
    assert (cfg.supply_cap, cfg.borrow_cap) == (spec.supply_cap, spec.borrow_cap)
    assert (cfg.base_rate, cfg.slope_low, cfg.slope_high, cfg.kink, cfg.reserve_factor) == (
        spec.base_rate,
        spec.slope_low,
        spec.slope_high,
        spec.kink,
        spec.reserve_factor,
    )
    assert (cfg.collateral, cfg.borrowable, cfg.paused) == (False, False, 0)
    assert tuple(cfg.liquidation) == (spec.min_bonus, spec.max_bonus, spec.full_bonus_depth, spec.insurance_share)
    # the price is read with those decimals: $3.5 on an 18-decimal feed, 8-decimal token
    m = p.lens.market(a.address)
    assert (m.price, m.price_valid) == (35 * 10**17 * 10 ** (36 - 18 - 8), True)
