"""Health math: engine.health, lens.healths and lens.health_ratio.

health_T = sum_i deposit_i * price_i * aw_T,i - sum_i debt_i * price_i * lw_T,i   (USD WAD)

with, per asset, collateral = floor(floor(amount * unit_price / WAD) * aw / WAD) and
liability = ceil(ceil(amount * unit_price / WAD) * lw / WAD), where
unit_price = answer * 10**(36 - feed_decimals - token_decimals). Every expected
value below is recomputed here with Python integers.
"""

import boa
import pytest

from tests.protocol import MAX_UINT, WAD, AssetSpec, Protocol

BP = 10**14


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def unit_price(answer: int, feed_decimals: int, token_decimals: int) -> int:
    return answer * 10 ** (36 - feed_decimals - token_decimals)


def coll_value(amount: int, price: int, aw: int) -> int:
    return amount * price // WAD * aw // WAD


def debt_value(amount: int, price: int, lw: int) -> int:
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


@pytest.fixture
def alice():
    return boa.env.generate_address("alice")


@pytest.fixture
def lender():
    return boa.env.generate_address("lender")


# ---------------------------------------------------------------------------
# Single asset
# ---------------------------------------------------------------------------


def test_empty_account_health_is_zero_and_valid(p, alice):
    p.list_asset(AssetSpec("ETH", price=2000))
    assert p.engine.health(alice) == (0, 0, True)
    assert p.lens.health_ratio(alice) == MAX_UINT


def test_single_deposit_literal_values(p, alice):
    eth = p.list_asset(AssetSpec("ETH", decimals=18, feed_decimals=8, price=2000))
    deposit(p, alice, eth, 15 * 10**17)  # 1.5 ETH at $2000 = $3000
    # initial 3000 * 0.80, maintenance 3000 * 0.85
    assert p.engine.health(alice) == (2400 * WAD, 2550 * WAD, True)
    # other sub-accounts are untouched
    assert p.engine.health(alice, 1) == (0, 0, True)


# (token decimals, feed decimals, answer, deposit amount, borrow amount)
DECIMALS_CASES = [
    (6, 8, 99_987_654, 1_234_567_891, 987_654_321),
    (8, 8, 6_123_456_789_012, 12_345_679, 3_333_333),
    (18, 8, 201_234_567_891, 1_234_567_890_123_456_789, 333_333_333_333_333_333),
    (6, 18, 1_000_123_456_789_012_345, 7_777_777_777, 1_111_111_111),
    (8, 18, 12_345_678_901_234_567_891, 123_456_789, 9_876_543),
    (18, 18, 2_345_678_901_234_567_891, 3_141_592_653_589_793_238, 1_414_213_562_373_095_048),
]


@pytest.mark.parametrize("token_dec,feed_dec,answer,dep,debt", DECIMALS_CASES)
def test_decimals_and_feed_decimals(p, alice, lender, token_dec, feed_dec, answer, dep, debt):
    aw_i, aw_m, lw_i, lw_m = 7777 * BP, 8333 * BP, 12345 * BP, 11111 * BP
    x = p.list_asset(
        AssetSpec(
            "X",
            decimals=token_dec,
            feed_decimals=feed_dec,
            asset_weight_initial=aw_i,
            asset_weight_maintenance=aw_m,
            liability_weight_initial=lw_i,
            liability_weight_maintenance=lw_m,
        )
    )
    assert answer <= 2**64 - 1  # the widest accepted max_answer
    x.feed.set_answer(answer)
    usdc = p.list_asset(AssetSpec("USDC", decimals=6, price=1))

    price = answer * 10 ** (36 - feed_dec - token_dec)
    assert p.lens.market(x.address).price == price
    assert p.lens.market(x.address).price_valid

    # deposit side
    deposit(p, lender, x, dep)
    init, maint, valid = p.engine.health(lender)
    assert valid
    assert init == dep * price // WAD * aw_i // WAD
    assert maint == dep * price // WAD * aw_m // WAD

    # borrow side: alice has 10M USDC of collateral ($1, 0.8 / 0.85)
    usdc_amount = 10_000_000 * 10**6
    deposit(p, alice, usdc, usdc_amount)
    borrow(p, alice, x, debt)
    init, maint, valid = p.engine.health(alice)
    assert valid
    usdc_value = usdc_amount * 10**30 // WAD  # unit price 1e8 * 10**(36 - 8 - 6); = 10M USD in WAD
    assert usdc_value == 10_000_000 * WAD
    debt_usd = ceil_div(debt * price, WAD)
    assert init == usdc_value * 8 // 10 - ceil_div(debt_usd * lw_i, WAD)
    assert maint == usdc_value * 85 // 100 - ceil_div(debt_usd * lw_m, WAD)


def test_decimals_cases_exercise_rounding():
    """The cases above are not all exact: each rounding direction matters in some case."""
    aw_i, lw_i = 7777 * BP, 12345 * BP
    floors = ceils = 0
    for token_dec, feed_dec, answer, dep, debt in DECIMALS_CASES:
        price = unit_price(answer, feed_dec, token_dec)
        if (dep * price) % WAD or (dep * price // WAD * aw_i) % WAD:
            floors += 1
        if (debt * price) % WAD or (ceil_div(debt * price, WAD) * lw_i) % WAD:
            ceils += 1
    assert floors >= 3 and ceils >= 3


def test_literal_values_6_and_18_decimals(p, alice, lender):
    """Hand-checked numbers: 1234.567891 USDC at $0.99987654 (8-decimal feed),
    and 1.000000000000000001 DAI at $0.999712345678901234 (18-decimal feed)."""
    usdc = p.list_asset(
        AssetSpec("USDC", decimals=6, feed_decimals=8, asset_weight_initial=7777 * BP, asset_weight_maintenance=8333 * BP)
    )
    usdc.feed.set_answer(99_987_654)
    deposit(p, lender, usdc, 1_234_567_891)
    # unit price = 99_987_654 * 1e22; value = 1_234_567_891 * 99_987_654 * 1e4 wei = $1234.41547124817714
    value = 1_234_567_891 * 99_987_654 * 10**4
    assert value == 1_234_415_471_248_177_140_000
    # initial value * 0.7777, maintenance value * 0.8333 (exact here)
    assert p.engine.health(lender) == (960_004_911_989_707_361_778, 1_028_638_412_191_106_010_762, True)

    dai = p.list_asset(AssetSpec("DAI", decimals=18, feed_decimals=18, asset_weight_initial=8500 * BP, asset_weight_maintenance=9000 * BP))
    dai.feed.set_answer(999_712_345_678_901_234)
    deposit(p, alice, dai, 10**18 + 1)
    # value = floor((1e18 + 1) * 999712345678901234 / 1e18) = 999712345678901234 (drops .9997...)
    # initial = floor(999712345678901234 * 0.85) = 849755493827066048 (drops .9)
    # maintenance = floor(999712345678901234 * 0.9) = 899741111111011110 (drops .6)
    assert p.engine.health(alice) == (849_755_493_827_066_048, 899_741_111_111_011_110, True)


# ---------------------------------------------------------------------------
# Multi-asset accounts
# ---------------------------------------------------------------------------


def list_four(p):
    eth = p.list_asset(AssetSpec("ETH", decimals=18, feed_decimals=8, price=2000))
    wbtc = p.list_asset(
        AssetSpec(
            "WBTC",
            decimals=8,
            feed_decimals=8,
            price=60000,
            asset_weight_initial=7000 * BP,
            asset_weight_maintenance=7500 * BP,
            liability_weight_initial=13000 * BP,
            liability_weight_maintenance=12500 * BP,
        )
    )
    usdc = p.list_asset(
        AssetSpec(
            "USDC",
            decimals=6,
            feed_decimals=8,
            asset_weight_initial=9000 * BP,
            asset_weight_maintenance=9500 * BP,
            liability_weight_initial=10500 * BP,
            liability_weight_maintenance=10200 * BP,
        )
    )
    dai = p.list_asset(
        AssetSpec(
            "DAI",
            decimals=18,
            feed_decimals=18,
            asset_weight_initial=8500 * BP,
            asset_weight_maintenance=9000 * BP,
            liability_weight_initial=11500 * BP,
            liability_weight_maintenance=10700 * BP,
        )
    )
    eth.feed.set_answer(2_012_345_678_91)  # $2012.3456789100
    wbtc.feed.set_answer(6_012_345_678_901)  # $60123.45678901
    usdc.feed.set_answer(100_012_345)  # $1.00012345
    dai.feed.set_answer(999_712_345_678_901_234)  # $0.999712345678901234
    return eth, wbtc, usdc, dai


def test_multi_asset_two_debts(p, alice, lender):
    eth, wbtc, usdc, dai = list_four(p)
    deposit(p, lender, usdc, 1_000_000 * 10**6)
    deposit(p, lender, dai, 1_000_000 * 10**18)

    eth_amt, wbtc_amt = 3 * 10**18 + 123_456_789, 12_345_678  # 3.000000000123456789 ETH, 0.12345678 WBTC
    usdc_debt, dai_debt = 2_500_123_457, 1_700 * 10**18 + 987_654_321  # 2500.123457 USDC, 1700.000...987654321 DAI
    deposit(p, alice, eth, eth_amt)
    deposit(p, alice, wbtc, wbtc_amt)
    borrow(p, alice, usdc, usdc_debt)
    borrow(p, alice, dai, dai_debt)

    p_eth = 2_012_345_678_91 * 10**10  # 36 - 8 - 18
    p_wbtc = 6_012_345_678_901 * 10**20  # 36 - 8 - 8
    p_usdc = 100_012_345 * 10**22  # 36 - 8 - 6
    p_dai = 999_712_345_678_901_234  # 36 - 18 - 18
    for asset, price in ((eth, p_eth), (wbtc, p_wbtc), (usdc, p_usdc), (dai, p_dai)):
        assert p.lens.market(asset.address).price == price

    initial = (
        coll_value(eth_amt, p_eth, 8000 * BP)
        + coll_value(wbtc_amt, p_wbtc, 7000 * BP)
        - debt_value(usdc_debt, p_usdc, 10500 * BP)
        - debt_value(dai_debt, p_dai, 11500 * BP)
    )
    maintenance = (
        coll_value(eth_amt, p_eth, 8500 * BP)
        + coll_value(wbtc_amt, p_wbtc, 7500 * BP)
        - debt_value(usdc_debt, p_usdc, 10200 * BP)
        - debt_value(dai_debt, p_dai, 10700 * BP)
    )
    assert p.engine.health(alice) == (initial, maintenance, True)
    # sanity: $6037 * 0.8 + $7422 * 0.7 - $2500 * 1.05 - $1700 * 1.15 ~= $5446
    assert 5_440 * WAD < initial < 5_450 * WAD


def test_both_sides_of_the_same_asset(p, alice):
    eth = p.list_asset(AssetSpec("ETH", decimals=18, feed_decimals=8, price=2000))
    eth.feed.set_answer(1_999_99_999_999)  # $1999.99999999
    deposit(p, alice, eth, 10 * 10**18)
    borrow(p, alice, eth, 3 * 10**18 + 1)  # own deposit provides the liquidity
    price = 1_999_99_999_999 * 10**10
    debt = 3 * 10**18 + 1
    initial = coll_value(10 * 10**18, price, 8 * 10**17) - debt_value(debt, price, 12 * 10**17)
    maintenance = coll_value(10 * 10**18, price, 85 * 10**16) - debt_value(debt, price, 11 * 10**17)
    # written out: 10 * 1999.99999999 * 0.8 - ceil(ceil(3.000000000000000001 * 1999.99999999) * 1.2)
    assert initial == 15_999_999_999_92 * 10**10 - ceil_div(ceil_div(debt * 1_999_99_999_999, 10**8) * 12, 10)
    assert p.engine.health(alice) == (initial, maintenance, True)
    # the deposit is not netted against the debt: health is below deposit*aw - debt*aw
    assert initial < (10 * 10**18 - 3 * 10**18) * price // WAD * 8 // 10


def test_sub_accounts_are_separate(p, alice, lender):
    eth = p.list_asset(AssetSpec("ETH", price=2000))
    usdc = p.list_asset(AssetSpec("USDC", decimals=6))
    deposit(p, lender, usdc, 100_000 * 10**6)
    deposit(p, alice, eth, 10**18, sub=0)
    deposit(p, alice, eth, 2 * 10**18, sub=7)
    borrow(p, alice, usdc, 1_000 * 10**6, sub=7)
    assert p.engine.health(alice, 0) == (1600 * WAD, 1700 * WAD, True)
    # sub 7: 4000 * 0.8 - 1000 * 1.2, 4000 * 0.85 - 1000 * 1.1
    assert p.engine.health(alice, 7) == (2000 * WAD, 2300 * WAD, True)


def test_debt_counts_accrued_interest_and_collateral_the_stored_index(p, alice, lender):
    """Debt is valued at the borrow index accrued to now; collateral at the
    stored deposit index (unaccrued deposit interest left out)."""
    eth = p.list_asset(AssetSpec("ETH", price=2000, max_staleness=7 * 86400))
    usdc = p.list_asset(AssetSpec("USDC", decimals=6, max_staleness=7 * 86400))
    deposit(p, lender, usdc, 10_000 * 10**6)
    deposit(p, alice, eth, 10**18)
    borrow(p, alice, usdc, 1_000 * 10**6)
    dt = 30 * 86400
    boa.env.time_travel(seconds=dt)
    p.refresh_prices()

    # Kinked model of the default AssetSpec: base 0, slope_low = 4% APR // YEAR at kink 0.8.
    slope_low = 4 * 10**16 // (365 * 86400)
    u = 1_000 * 10**6 * WAD // (10_000 * 10**6)  # 0.1
    rate = slope_low * u // (8 * 10**17)
    bi = WAD + ceil_div(WAD * rate * dt, WAD)
    debt = ceil_div(1_000 * 10**6 * bi, WAD)  # borrow shares = 1000e6 at index 1
    assert debt > 1_000 * 10**6
    assert p.lens.market(usdc.address).borrow_index == bi

    price_usdc = 10**8 * 10**22
    assert p.engine.health(alice) == (
        1600 * WAD - debt_value(debt, price_usdc, 12 * 10**17),
        1700 * WAD - debt_value(debt, price_usdc, 11 * 10**17),
        True,
    )
    # The lender's deposit earned interest (lens.balances), but health keeps the stored index (1.0).
    balance = p.lens.balances(lender)[0]
    assert balance.deposit > 10_000 * 10**6
    assert p.engine.health(lender) == (8_000 * WAD, 8_500 * WAD, True)
    # After an accrual the stored index moves and health follows it.
    p.engine.accrue(usdc.address)
    di = p.engine.asset_state(usdc.id).market_a & (2**96 - 1)
    assert di > WAD
    stored = 10_000 * 10**6 * di // WAD
    assert p.engine.health(lender) == (
        coll_value(stored, price_usdc, 8 * 10**17),
        coll_value(stored, price_usdc, 85 * 10**16),
        True,
    )


# ---------------------------------------------------------------------------
# Lens: healths and health_ratio
# ---------------------------------------------------------------------------


def test_lens_healths_three_types_and_ratio(p, alice, lender):
    eth, wbtc, usdc, dai = list_four(p)
    deposit(p, lender, usdc, 1_000_000 * 10**6)
    deposit(p, lender, dai, 1_000_000 * 10**18)
    eth_amt, dai_debt, usdc_debt = 2 * 10**18 + 7, 1_234 * 10**18 + 5, 321_123_457
    deposit(p, alice, eth, eth_amt)
    borrow(p, alice, dai, dai_debt)
    borrow(p, alice, usdc, usdc_debt)
    bob = boa.env.generate_address("bob")  # never touched

    p_eth = 2_012_345_678_91 * 10**10
    p_usdc = 100_012_345 * 10**22
    p_dai = 999_712_345_678_901_234

    # liquidation end = midpoint of initial and maintenance weights
    # (aw rounds down, lw rounds up; bp weights make both exact here)
    aw_le_eth = (8000 * BP + 8500 * BP) // 2  # 0.825
    lw_le_usdc = (10500 * BP + 10200 * BP + 1) // 2  # 1.035
    lw_le_dai = (11500 * BP + 10700 * BP + 1) // 2  # 1.11
    assert (aw_le_eth, lw_le_usdc, lw_le_dai) == (825 * 10**15, 1035 * 10**15, 111 * 10**16)

    def h(aw_eth, lw_usdc, lw_dai):
        coll = coll_value(eth_amt, p_eth, aw_eth)
        debt = debt_value(usdc_debt, p_usdc, lw_usdc) + debt_value(dai_debt, p_dai, lw_dai)
        return coll, debt

    ci, di_ = h(8000 * BP, 10500 * BP, 11500 * BP)
    cm, dm = h(8500 * BP, 10200 * BP, 10700 * BP)
    cl, dl = h(aw_le_eth, lw_le_usdc, lw_le_dai)

    out = p.lens.healths([(alice, 0), (lender, 0), (bob, 0), (alice, 1)])
    assert len(out) == 4
    a = out[0]
    assert (a.initial, a.maintenance, a.liquidation_end) == (ci - di_, cm - dm, cl - dl)
    assert a.initial < a.liquidation_end < a.maintenance
    assert a.ratio == cm * WAD // dm
    assert a.prices_valid
    assert (a.initial, a.maintenance) == p.engine.health(alice)[:2]
    assert p.lens.health_ratio(alice) == cm * WAD // dm

    lend = out[1]
    lender_init = coll_value(1_000_000 * 10**6, p_usdc, 9000 * BP) + coll_value(1_000_000 * 10**18, p_dai, 8500 * BP)
    lender_maint = coll_value(1_000_000 * 10**6, p_usdc, 9500 * BP) + coll_value(1_000_000 * 10**18, p_dai, 9000 * BP)
    lender_le = coll_value(1_000_000 * 10**6, p_usdc, 9250 * BP) + coll_value(1_000_000 * 10**18, p_dai, 8750 * BP)
    assert (lend.initial, lend.maintenance, lend.liquidation_end) == (lender_init, lender_maint, lender_le)
    assert lend.ratio == MAX_UINT  # no debt
    assert p.lens.health_ratio(lender) == MAX_UINT

    for empty in (out[2], out[3]):
        assert (empty.initial, empty.maintenance, empty.liquidation_end, empty.ratio, empty.prices_valid) == (
            0,
            0,
            0,
            MAX_UINT,
            True,
        )


def test_health_ratio_literal(p, alice, lender):
    eth = p.list_asset(AssetSpec("ETH", price=2000))
    usdc = p.list_asset(AssetSpec("USDC", decimals=6))
    deposit(p, lender, usdc, 100_000 * 10**6)
    deposit(p, alice, eth, 10**18)
    borrow(p, alice, usdc, 1_000 * 10**6)
    # maintenance: 2000 * 0.85 = 1700 against 1000 * 1.1 = 1100 -> 1.545454...
    assert p.lens.health_ratio(alice) == 1700 * WAD * WAD // (1100 * WAD)
    assert p.lens.health_ratio(alice) == 1_545_454_545_454_545_454
    # ratio == 1 exactly at maintenance health 0: price such that 0.85 * 2 * P = 1.1 * 1000 ... P = 647.0588..
    # use a round case instead: ETH at $1294.11764706 gives ratio just above 1
    eth.feed.set_answer(1_294_117_647_06)
    coll = 10**18 * (1_294_117_647_06 * 10**10) // WAD * 85 // 100
    assert p.lens.health_ratio(alice) == coll * WAD // (1100 * WAD)
    assert p.lens.health_ratio(alice) == 1_000_000_000_000_909_090  # 1100.0000000001 / 1100


def test_liquidation_end_rounds_lw_up_during_a_ramp(p, alice, lender):
    """With a ramping lw_maint (not a bp multiple), the LIQUIDATION_END liability
    weight (lw_i + lw_m + 1) // 2 rounds up."""
    eth = p.list_asset(AssetSpec("ETH", price=2000))
    usdc = p.list_asset(AssetSpec("USDC", decimals=6, slope_low=0, slope_high=0))  # no interest
    deposit(p, lender, usdc, 100_000 * 10**6)
    deposit(p, alice, eth, 10**18)
    borrow(p, alice, usdc, 1_000 * 10**6)
    with boa.env.prank(p.owner):
        # tighten USDC lw_maint 1.1 -> 1.2 (ramps over a day), keep the rest
        p.configurator.set_risk_params(
            usdc.address, (8 * 10**17, 85 * 10**16, 12 * 10**17, 12 * 10**17, 3600, 0, 1, 2**64 - 1)
        )
    boa.env.time_travel(seconds=2)
    lw_m = 11 * 10**17 + ceil_div(10**17 * 2, 86400)  # 1.1 + ceil(0.1 * 2 / 86400)
    assert lw_m % 2 == 1
    lw_le = (12 * 10**17 + lw_m + 1) // 2
    assert lw_le * 2 == 12 * 10**17 + lw_m + 1  # the +1 rounded it up
    out = p.lens.healths([(alice, 0)])[0]
    assert out.maintenance == 1700 * WAD - ceil_div(1000 * WAD * lw_m, WAD)
    assert out.liquidation_end == 1650 * WAD - ceil_div(1000 * WAD * lw_le, WAD)
