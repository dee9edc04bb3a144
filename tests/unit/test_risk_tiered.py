"""Tiered (size-dependent) initial margin, Drift v2 IMF:

  aw_init(s) = min(aw_init, 1.1 / (1 + imf * sqrt(s)))         rounded down
  lw_init(s) = max(lw_init, 0.8 * lw_init + imf * sqrt(s))     premium rounded up

with s the position size in whole tokens. In WAD, as contracts/modules/margin.vy:
  asset premium     = ceil(imf * (isqrt(s_wad * WAD) + 1) / WAD)   (rounded up: weight down)
  asset weight      = min(aw, floor(1.1e18 * WAD / (WAD + premium)))
  liability premium = ceil(imf * (isqrt(s_wad * WAD) + 1) / WAD)
  liability weight  = max(lw, ceil(lw * 0.8) + premium)
Maintenance (and liquidation end) weights are flat.
"""

from math import isqrt

import boa
import pytest

from tests.protocol import WAD, AssetSpec, Protocol

IMF = 10**16  # 0.01 per sqrt(whole token)
USDC = 10**6


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def tiered_aw(aw: int, imf: int, size_wad: int) -> int:
    if imf == 0 or size_wad == 0:
        return aw
    premium = ceil_div(imf * (isqrt(size_wad * WAD) + 1), WAD)
    return min(aw, 11 * 10**17 * WAD // (WAD + premium))


def tiered_lw(lw: int, imf: int, size_wad: int) -> int:
    if imf == 0 or size_wad == 0:
        return lw
    premium = ceil_div(imf * (isqrt(size_wad * WAD) + 1), WAD)
    return max(lw, ceil_div(lw * 8 * 10**17, WAD) + premium)


def coll_value(amount, price, aw):
    return amount * price // WAD * aw // WAD


def debt_value(amount, price, lw):
    return ceil_div(ceil_div(amount * price, WAD) * lw, WAD)


def deposit(p, who, asset, amount, sub=0):
    p.fund(who, asset, amount)
    with boa.env.prank(who):
        p.engine.deposit(asset.address, amount, sub)


def borrow(p, who, asset, amount, sub=0):
    with boa.env.prank(who):
        p.engine.borrow(asset.address, amount, sub)


@pytest.fixture
def p():
    return Protocol.deploy()


def big_spec(symbol="BIG", decimals=18, imf=IMF, price=1.0):
    # no interest, so debts stay exact within a test
    return AssetSpec(symbol, decimals=decimals, imf=imf, price=price, slope_low=0, slope_high=0)


@pytest.fixture
def alice():
    return boa.env.generate_address("alice")


# ---------------------------------------------------------------------------
# Reference values written out by hand
# ---------------------------------------------------------------------------


def test_reference_math_literals():
    # 10_000 tokens, imf 0.01: sqrt = 100, premium = 1.0 + 1 wei (rounded up), aw = 1.1 / 2 rounded down
    assert tiered_aw(8 * 10**17, IMF, 10_000 * WAD) == 11 * 10**35 // (2 * WAD + 1) == 55 * 10**16 - 1
    # 2_500 tokens: sqrt = 50, premium = 0.5 rounded up by one wei, lw = 0.96 + 0.5 + 1 wei
    assert tiered_lw(12 * 10**17, IMF, 2_500 * WAD) == 146 * 10**16 + 1
    # 576 tokens: 0.96 + 0.24 + 1 wei: just above the flat 1.2 because the premium rounds up
    assert tiered_lw(12 * 10**17, IMF, 576 * WAD) == 12 * 10**17 + 1
    # 575 tokens: 0.96 + 0.2397915... < 1.2: flat
    assert tiered_lw(12 * 10**17, IMF, 575 * WAD) == 12 * 10**17
    # 1406 tokens: 1.1 / 1.37496... = 0.80002 > 0.8: flat; 1407 tokens: 0.79994...: tiered
    assert tiered_aw(8 * 10**17, IMF, 1_406 * WAD) == 8 * 10**17
    assert tiered_aw(8 * 10**17, IMF, 1_407 * WAD) == 11 * 10**35 // (
        WAD + ceil_div(IMF * (isqrt(1_407 * WAD * WAD) + 1), WAD)
    )
    assert 7999 * 10**14 < tiered_aw(8 * 10**17, IMF, 1_407 * WAD) < 8 * 10**17
    # imf 0.001 (the minimum granularity is 1e12): 1e6 tokens -> sqrt 1000 -> premium 1.0
    assert tiered_aw(8 * 10**17, 10**15, 10**6 * WAD) == 55 * 10**16 - 1
    assert tiered_lw(12 * 10**17, 10**15, 10**6 * WAD) == 196 * 10**16 + 1


# ---------------------------------------------------------------------------
# Asset side (deposits)
# ---------------------------------------------------------------------------


def test_deposit_10k_tokens_literal(p, alice):
    big = p.list_asset(big_spec())
    deposit(p, alice, big, 10_000 * WAD)
    # initial 10_000 * $1 * 0.55 (tiered), maintenance 10_000 * 0.85 (flat)
    assert p.engine.health(alice) == (5_500 * WAD - 10_000, 8_500 * WAD, True)  # aw = 0.55 - 1 wei


@pytest.mark.parametrize(
    "tokens",
    [1, 100, 1_406, 1_407, 2_500, 10_000, 123_456, 10**6, 10**9],
)
def test_asset_weight_at_sizes(p, alice, tokens):
    big = p.list_asset(big_spec())
    amount = tokens * WAD + 123_456_789  # not a whole number of tokens
    deposit(p, alice, big, amount)
    price = 10**8 * 10**10
    aw = tiered_aw(8 * 10**17, IMF, amount)
    if tokens <= 1_406:
        assert aw == 8 * 10**17  # small: flat
    else:
        assert aw < 8 * 10**17  # large: tiered
    assert p.engine.health(alice) == (coll_value(amount, price, aw), coll_value(amount, price, 85 * 10**16), True)


@pytest.mark.parametrize("decimals", [6, 8, 18])
def test_size_is_in_whole_tokens_for_any_decimals(p, alice, decimals):
    big = p.list_asset(big_spec(decimals=decimals))
    deposit(p, alice, big, 10_000 * 10**decimals)
    assert p.engine.health(alice) == (5_500 * WAD - 10_000, 8_500 * WAD, True)  # aw = 0.55 - 1 wei


def test_size_does_not_depend_on_price(p, alice):
    big = p.list_asset(big_spec(price=2000))
    deposit(p, alice, big, 10_000 * WAD)
    # still 0.55 for 10_000 tokens, now worth $20M
    assert p.engine.health(alice) == (11_000_000 * WAD - 20_000_000, 17_000_000 * WAD, True)  # aw = 0.55 - 1 wei


def test_imf_zero_is_flat_at_any_size(p, alice):
    flat = p.list_asset(big_spec("FLAT", imf=0))
    deposit(p, alice, flat, 10**12 * WAD)  # a trillion tokens
    assert p.engine.health(alice) == (8 * 10**11 * WAD, 85 * 10**10 * WAD, True)


def test_tiered_asset_weight_rounding(p, alice):
    """A size with an irrational square root: every floor in the formula is taken."""
    big = p.list_asset(big_spec())
    amount = 2 * 10**6 * WAD + 1  # 2_000_000.000000000000000001 tokens
    deposit(p, alice, big, amount)
    root = isqrt(amount * WAD)  # 1414.2135623730950488... in WAD, floored
    assert root == 1_414_213_562_373_095_048_801
    premium = ceil_div(IMF * (root + 1), WAD)  # 14.142135623730950489 (rounded up)
    assert premium == 14_142_135_623_730_950_489
    aw = 11 * 10**17 * WAD // (WAD + premium)  # 1.1 / 15.142135623730950489, rounded down
    assert aw == 11 * 10**35 // (15_142_135_623_730_950_489)
    assert p.engine.health(alice)[0] == amount * 10**18 // WAD * aw // WAD


# ---------------------------------------------------------------------------
# Liability side (debts)
# ---------------------------------------------------------------------------


@pytest.fixture
def borrower_env(p, alice):
    big = p.list_asset(big_spec())
    usdc = p.list_asset(AssetSpec("USDC", decimals=6))
    lender = boa.env.generate_address("lender")
    deposit(p, lender, big, 10**7 * WAD)
    deposit(p, alice, usdc, 10**8 * USDC)  # $100M of flat collateral: initial 80M, maintenance 85M
    return big, usdc


def test_borrow_2500_tokens_literal(p, alice, borrower_env):
    big, _ = borrower_env
    borrow(p, alice, big, 2_500 * WAD)
    # initial liability 2500 * (1.46 + 1e-18) = 3650 + 2500 wei; maintenance 2500 * 1.1 (flat)
    assert p.engine.health(alice) == (80_000_000 * WAD - (3_650 * WAD + 2_500), 85_000_000 * WAD - 2_750 * WAD, True)


@pytest.mark.parametrize("tokens", [1, 100, 575, 576, 2_500, 40_000, 10**6])
def test_liability_weight_at_sizes(p, alice, borrower_env, tokens):
    big, _ = borrower_env
    amount = tokens * WAD
    borrow(p, alice, big, amount)
    lw = tiered_lw(12 * 10**17, IMF, amount)
    if tokens <= 575:
        assert lw == 12 * 10**17  # small: flat
    else:
        assert lw > 12 * 10**17  # large: tiered
    price = 10**18
    assert p.engine.health(alice) == (
        80_000_000 * WAD - debt_value(amount, price, lw),
        85_000_000 * WAD - debt_value(amount, price, 11 * 10**17),
        True,
    )


def test_tiered_both_sides_same_asset(p, alice):
    big = p.list_asset(big_spec())
    deposit(p, alice, big, 40_000 * WAD)  # sqrt 200: aw = 1.1 / (3 + 1 wei)
    borrow(p, alice, big, 900 * WAD)  # sqrt 30: lw = 0.96 + 0.3 + 1 wei
    aw = 11 * 10**17 * WAD // (3 * WAD + 1)
    lw = 126 * 10**16 + 1
    assert (tiered_aw(8 * 10**17, IMF, 40_000 * WAD), tiered_lw(12 * 10**17, IMF, 900 * WAD)) == (aw, lw)
    assert p.engine.health(alice) == (
        40_000 * aw - ceil_div(900 * WAD * lw, WAD),
        40_000 * 85 * 10**16 - 900 * 11 * 10**17,
        True,
    )


def test_borrow_gated_by_tiered_not_flat_weight(p, alice, borrower_env):
    """Collateral: $5000 USDC (initial 4000). With the flat 1.2, 3333 tokens
    would fit; tiered at 3333 tokens, lw = 0.96 + 0.577... > 1.2 does not."""
    big, usdc = borrower_env
    bob = boa.env.generate_address("bob")
    deposit(p, bob, usdc, 5_000 * USDC)
    assert ceil_div(3_333 * WAD * 12 * 10**17, WAD) <= 4_000 * WAD  # flat would allow it
    lw = tiered_lw(12 * 10**17, IMF, 3_333 * WAD)
    assert lw > 15 * 10**17
    with boa.env.prank(bob), boa.reverts("health: below initial margin"):
        p.engine.borrow(big.address, 3_333 * WAD)
    # the tiered limit: largest n (whole tokens) with ceil(n * lw(n)) <= 4000
    n = max(t for t in range(1, 3_334) if ceil_div(t * WAD * tiered_lw(12 * 10**17, IMF, t * WAD), WAD) <= 4_000 * WAD)
    assert n == 2_702  # 2702 * (0.96 + 0.01 * 51.98...) = 3998.4; 2703 -> 4000.2
    borrow(p, bob, big, n * WAD)
    with boa.env.prank(bob), boa.reverts("health: below initial margin"):
        p.engine.borrow(big.address, WAD)


def test_lens_maintenance_and_liquidation_end_are_flat(p, alice, borrower_env):
    big, _ = borrower_env
    deposit(p, alice, big, 10_000 * WAD)
    borrow(p, alice, big, 2_500 * WAD)
    h = p.lens.healths([(alice, 0)])[0]
    coll_i = 80_000_000 * WAD + 5_500 * WAD - 10_000  # BIG's aw = 0.55 - 1 wei
    debt_i = 3_650 * WAD + 2_500
    assert h.initial == coll_i - debt_i
    assert h.maintenance == 85_000_000 * WAD + 8_500 * WAD - 2_750 * WAD
    # liquidation end: USDC 0.825, BIG 0.825 / 1.15 (flat midpoints)
    assert h.liquidation_end == 82_500_000 * WAD + 8_250 * WAD - 2_875 * WAD
    assert h.ratio == (85_000_000 * WAD + 8_500 * WAD) * WAD // (2_750 * WAD)


def test_collateral_flag_off_zeroes_tiered_initial_weight(p, alice):
    big = p.list_asset(big_spec())
    deposit(p, alice, big, 10_000 * WAD)
    with boa.env.prank(p.owner):
        p.configurator.set_flags(big.address, False, True)
    assert p.engine.health(alice) == (0, 8_500 * WAD, True)
