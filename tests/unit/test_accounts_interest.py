"""Interest accrual seen from accounts: exact indexes after accrue (the
kinked model of contracts/modules/interest_rate.vy, re-derived below in
Python integers), the reserve-factor share going to the insurance fund,
lens rates at several utilisations, monotone indexes, and the clock restart
on the first borrow after an idle period.

USDC (6 decimals, $1) is lent and borrowed; WETH (18 decimals, $2000) is
the collateral. Default USDC rate model: base 0, slope_low 4% APR and
slope_high 75% APR per second, kink 0.8, reserve factor 0.1.
"""

import boa
import pytest

from tests.protocol import YEAR, AssetSpec, Protocol, per_second
from tests.unit.accounting import (
    MAX_UINT,
    WAD,
    check_accounting,
    last_accrual,
    only_event,
    stored_indexes,
    totals,
)

DAY = 86400
USDC_SPEC = AssetSpec("USDC", decimals=6, price=1.0)
BASE = USDC_SPEC.base_rate
SLOPE_LOW = USDC_SPEC.slope_low
SLOPE_HIGH = USDC_SPEC.slope_high
KINK = USDC_SPEC.kink
RESERVE_FACTOR = USDC_SPEC.reserve_factor


# ---------------------------------------------------------------------------
# The rate model, written out in Python integer math
# ---------------------------------------------------------------------------


def ceil_div(x, d):
    return -(-x // d)


def utilisation(total_deposit, total_borrow):
    if total_borrow == 0:
        return 0
    if total_borrow >= total_deposit:
        return WAD
    return total_borrow * WAD // total_deposit


def borrow_rate(u, base=BASE, slope_low=SLOPE_LOW, slope_high=SLOPE_HIGH, kink=KINK):
    if u <= kink:
        return base + slope_low * u // kink
    return base + slope_low + slope_high * (u - kink) // (WAD - kink)


def supply_rate(rate, u, reserve_factor=RESERVE_FACTOR):
    return rate * u // WAD * (WAD - reserve_factor) // WAD


def accrue(di, bi, deposit_shares, borrow_shares, dt, reserve_factor=RESERVE_FACTOR, **model):
    """(new deposit index, new borrow index, interest in token units)."""
    if borrow_shares == 0 or dt == 0:
        return di, bi, 0
    total_deposit = deposit_shares * di // WAD
    total_borrow = ceil_div(borrow_shares * bi, WAD)
    rate = borrow_rate(utilisation(total_deposit, total_borrow), **model)
    new_bi = bi + ceil_div(bi * rate * dt, WAD)  # borrowers round up
    interest = ceil_div(borrow_shares * new_bi, WAD) - total_borrow
    to_depositors = interest * (WAD - reserve_factor) // WAD  # depositors round down
    new_di = di + to_depositors * WAD // deposit_shares
    return new_di, new_bi, interest


def insurance_fund(balance, deposit_shares, borrow_shares, di, bi):
    return balance - deposit_shares * di // WAD + ceil_div(borrow_shares * bi, WAD)


def now():
    return boa.env.evm.patch.timestamp


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture
def usdc(protocol):
    return protocol.list_asset(USDC_SPEC)


def deposit(protocol, who, asset, amount, sub_id=0):
    protocol.fund(who, asset, amount)
    with boa.env.prank(who):
        return protocol.engine.deposit(asset.address, amount, sub_id)


@pytest.fixture
def market(protocol, usdc, weth, lender, borrower):
    """10,000 USDC deposited by lender; borrower has 10 WETH of collateral
    (13,333 USDC of borrowing power) and has approved USDC for repayment."""
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, borrower, weth, weth.units(10))
    protocol.fund(borrower, usdc, 0)
    return protocol


def borrow(protocol, who, asset, amount):
    with boa.env.prank(who):
        return protocol.engine.borrow(asset.address, amount)


def snapshot(protocol, asset):
    di, bi = stored_indexes(protocol.engine, asset.id)
    ds, bs = totals(protocol.engine, asset.id)
    return di, bi, ds, bs


# ---------------------------------------------------------------------------
# Rates at several utilisations
# ---------------------------------------------------------------------------


def test_rate_model_constants_are_the_documented_aprs():
    assert SLOPE_LOW == 4 * 10**16 // YEAR == 1_268_391_679
    assert SLOPE_HIGH == 75 * 10**16 // YEAR == 23_782_343_987
    assert borrow_rate(KINK) == SLOPE_LOW
    assert borrow_rate(WAD) == SLOPE_LOW + SLOPE_HIGH == 25_050_735_666


@pytest.mark.parametrize(
    "borrowed,expected_u,expected_rate",
    [
        (0, 0, 0),
        (2_500, 25 * 10**16, 1_268_391_679 * 25 // 80),  # below the kink: slope_low * u / kink
        (5_000, 50 * 10**16, 1_268_391_679 * 50 // 80),
        (8_000, 80 * 10**16, 1_268_391_679),  # at the kink
        (9_000, 90 * 10**16, 1_268_391_679 + 23_782_343_987 // 2),  # halfway up the steep slope
        (10_000, WAD, 1_268_391_679 + 23_782_343_987),  # fully used
    ],
    ids=["u0", "u25", "u50", "u80-kink", "u90", "u100"],
)
def test_lens_rates_follow_the_kinked_model(market, usdc, borrower, borrowed, expected_u, expected_rate):
    protocol = market
    if borrowed:
        borrow(protocol, borrower, usdc, usdc.units(borrowed))
    m = protocol.lens.market(usdc.address)
    assert (m.total_deposits, m.total_borrows) == (usdc.units(10_000), usdc.units(borrowed))
    assert m.utilisation == expected_u == utilisation(m.total_deposits, m.total_borrows)
    assert m.borrow_rate == expected_rate == borrow_rate(expected_u)
    assert m.supply_rate == expected_rate * expected_u // WAD * 9 // 10
    assert m.supply_rate == supply_rate(m.borrow_rate, m.utilisation)
    assert m.insurance_fund == 0


# ---------------------------------------------------------------------------
# accrue
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("borrowed", [5_000, 8_000, 9_000, 10_000], ids=["below-kink", "at-kink", "above-kink", "full"])
def test_accrue_sets_indexes_exactly_per_rate_model(market, usdc, lender, borrower, borrowed):
    protocol = market
    borrow(protocol, borrower, usdc, usdc.units(borrowed))
    di, bi, ds, bs = snapshot(protocol, usdc)
    assert (di, bi) == (WAD, WAD)
    start = now()
    dt = 7 * DAY + 123
    boa.env.time_travel(seconds=dt)
    protocol.refresh_prices()

    expected_di, expected_bi, interest = accrue(di, bi, ds, bs, dt)
    # The lens projects the same indexes before anything is stored.
    m = protocol.lens.market(usdc.address)
    assert (m.deposit_index, m.borrow_index) == (expected_di, expected_bi)
    assert m.last_update == start

    protocol.engine.accrue(usdc.address)

    assert stored_indexes(protocol.engine, usdc.id) == (expected_di, expected_bi)
    assert last_accrual(protocol.engine, usdc.id) == now() == start + dt
    assert totals(protocol.engine, usdc.id) == (ds, bs)  # accrual moves indexes, not shares
    assert interest > 0 and expected_di > WAD and expected_bi > expected_di
    check_accounting(protocol, [lender, borrower])


def test_accrue_emits_interest_accrued_with_the_new_indexes(market, usdc, borrower, lender):
    protocol = market
    borrow(protocol, borrower, usdc, usdc.units(8_000))
    di, bi, ds, bs = snapshot(protocol, usdc)
    boa.env.time_travel(seconds=5 * DAY)
    protocol.engine.accrue(usdc.address)
    ev = only_event(protocol.engine, "InterestAccrued")
    expected_di, expected_bi, _ = accrue(di, bi, ds, bs, 5 * DAY)
    assert (ev.asset, ev.deposit_index, ev.borrow_index, ev.timestamp) == (
        usdc.address,
        expected_di,
        expected_bi,
        now(),
    )
    check_accounting(protocol, [lender, borrower])


def test_accrue_at_full_utilisation_uses_the_top_rate(market, usdc, borrower, lender):
    protocol = market
    borrow(protocol, borrower, usdc, usdc.units(10_000))
    boa.env.time_travel(seconds=DAY)
    protocol.engine.accrue(usdc.address)
    # bi = 1 + ceil(1 * 25_050_735_666 * 86400 / 1e18) in WAD.
    assert stored_indexes(protocol.engine, usdc.id)[1] == WAD + 25_050_735_666 * DAY
    check_accounting(protocol, [lender, borrower])


def test_accrue_twice_in_the_same_second_changes_nothing(market, usdc, borrower, lender):
    protocol = market
    borrow(protocol, borrower, usdc, usdc.units(6_000))
    boa.env.time_travel(seconds=3 * DAY)
    protocol.engine.accrue(usdc.address)
    state = protocol.engine.asset_state(usdc.id)
    protocol.engine.accrue(usdc.address)
    assert protocol.engine.asset_state(usdc.id) == state
    check_accounting(protocol, [lender, borrower])


def test_accrue_compounds_across_accruals(market, usdc, borrower, lender):
    protocol = market
    borrow(protocol, borrower, usdc, usdc.units(7_000))
    di, bi, ds, bs = snapshot(protocol, usdc)
    for dt in (DAY, 13 * DAY, 3_600, 45 * DAY):
        boa.env.time_travel(seconds=dt)
        protocol.engine.accrue(usdc.address)
        di, bi, _ = accrue(di, bi, ds, bs, dt)
        assert stored_indexes(protocol.engine, usdc.id) == (di, bi)
    check_accounting(protocol, [lender, borrower])


def test_accrue_of_unlisted_asset_reverts(protocol, usdc, weth):
    with boa.reverts("asset: not listed"):
        protocol.engine.accrue(protocol.owner)


def test_health_counts_debt_accrued_to_now_without_any_transaction(market, usdc, weth, borrower, lender):
    protocol = market
    borrow(protocol, borrower, usdc, usdc.units(1_000))
    di, bi, ds, bs = snapshot(protocol, usdc)
    dt = 90 * DAY
    boa.env.time_travel(seconds=dt)
    protocol.refresh_prices()
    _, bi_now, _ = accrue(di, bi, ds, bs, dt)
    debt_now = ceil_div(usdc.units(1_000) * bi_now, WAD)
    assert debt_now > usdc.units(1_000)
    (usdc_balance,) = [b for b in protocol.lens.balances(borrower, 0) if b.asset == usdc.address]
    assert usdc_balance.borrow == debt_now
    # Initial health: 10 WETH * 2000 * 0.8 - debt * 1e-6 USD * 1.2 (rounded up).
    debt_usd = debt_now * 10**12
    assert protocol.engine.health(borrower, 0)[0] == 16_000 * WAD - ceil_div(debt_usd * 12, 10)
    # Nothing was stored: the view accrued on the fly.
    assert stored_indexes(protocol.engine, usdc.id) == (di, bi)
    check_accounting(protocol, [lender, borrower])


# ---------------------------------------------------------------------------
# Insurance fund
# ---------------------------------------------------------------------------


def test_reserve_factor_share_of_interest_goes_to_insurance_fund(market, usdc, lender, borrower):
    protocol = market
    borrow(protocol, borrower, usdc, usdc.units(6_000))
    di, bi, ds, bs = snapshot(protocol, usdc)
    balance = usdc.token.balanceOf(protocol.engine.address)
    assert balance == usdc.units(4_000)
    assert protocol.lens.market(usdc.address).insurance_fund == 0

    dt = 30 * DAY
    boa.env.time_travel(seconds=dt)
    protocol.engine.accrue(usdc.address)
    new_di, new_bi, interest = accrue(di, bi, ds, bs, dt)
    m = protocol.lens.market(usdc.address)

    total_deposits = ds * new_di // WAD
    total_borrows = ceil_div(bs * new_bi, WAD)
    assert (m.total_deposits, m.total_borrows) == (total_deposits, total_borrows)
    assert m.insurance_fund == balance - total_deposits + total_borrows
    assert m.insurance_fund == insurance_fund(balance, ds, bs, new_di, new_bi)
    # The fund got the reserve factor's 10% of the interest, plus at most 1
    # unit of rounding dust from the depositors' share.
    to_depositors = interest * 9 // 10
    assert total_borrows - usdc.units(6_000) == interest
    assert total_deposits - usdc.units(10_000) in (to_depositors, to_depositors - 1)
    assert m.insurance_fund == interest - (total_deposits - usdc.units(10_000))
    assert interest - to_depositors <= m.insurance_fund <= interest - to_depositors + 1
    check_accounting(protocol, [lender, borrower])


def test_insurance_fund_keeps_growing_across_repay_and_withdraw(market, usdc, lender, borrower):
    protocol = market
    borrow(protocol, borrower, usdc, usdc.units(8_500))
    funds = [0]
    for step in range(3):
        boa.env.time_travel(seconds=20 * DAY)
        protocol.refresh_prices()
        with boa.env.prank(borrower):
            protocol.engine.repay(usdc.address, usdc.units(500))
        with boa.env.prank(lender):
            protocol.engine.withdraw(usdc.address, usdc.units(300))
        fund = check_accounting(protocol, [lender, borrower])["USDC"]
        assert fund > funds[-1]
        funds.append(fund)
    # Finally everything is repaid and withdrawn: what is left is exactly the fund.
    usdc.token.mint(borrower, usdc.units(1_000))
    with boa.env.prank(borrower):
        protocol.engine.repay(usdc.address, MAX_UINT)
    with boa.env.prank(lender):
        protocol.engine.withdraw(usdc.address, MAX_UINT)
    assert totals(protocol.engine, usdc.id) == (0, 0)
    left = usdc.token.balanceOf(protocol.engine.address)
    assert left == protocol.lens.market(usdc.address).insurance_fund >= funds[-1]
    check_accounting(protocol, [lender, borrower])


def test_full_reserve_factor_sends_all_interest_to_insurance_fund(market, usdc, lender, borrower):
    protocol = market
    borrow(protocol, borrower, usdc, usdc.units(5_000))
    with boa.env.prank(protocol.owner):
        protocol.configurator.set_rate_model(usdc.address, (BASE, SLOPE_LOW, SLOPE_HIGH, KINK, WAD))
    di, bi, ds, bs = snapshot(protocol, usdc)
    boa.env.time_travel(seconds=10 * DAY)
    protocol.engine.accrue(usdc.address)
    new_di, new_bi, interest = accrue(di, bi, ds, bs, 10 * DAY, reserve_factor=WAD)
    assert stored_indexes(protocol.engine, usdc.id) == (WAD, new_bi)
    assert new_di == WAD
    assert protocol.lens.market(usdc.address).insurance_fund == interest
    check_accounting(protocol, [lender, borrower])


# ---------------------------------------------------------------------------
# Monotone indexes and the idle clock
# ---------------------------------------------------------------------------


def test_indexes_never_fall_through_an_action_sequence(market, usdc, weth, lender, borrower):
    protocol = market
    engine = protocol.engine
    seen = [stored_indexes(engine, usdc.id)]

    def step(action):
        action()
        di, bi = stored_indexes(engine, usdc.id)
        m = protocol.lens.market(usdc.address)
        assert di >= seen[-1][0] and bi >= seen[-1][1]
        assert m.deposit_index >= di and m.borrow_index >= bi
        seen.append((di, bi))
        check_accounting(protocol, [lender, borrower])

    def travel(seconds):
        def go():
            boa.env.time_travel(seconds=seconds)
            protocol.refresh_prices()

        return go

    def as_(who, fn, *args):
        def go():
            with boa.env.prank(who):
                getattr(engine, fn)(*args)

        return go

    usdc.token.mint(borrower, usdc.units(5_000))
    step(as_(borrower, "borrow", usdc.address, usdc.units(9_000)))
    step(travel(30 * DAY))
    step(lambda: engine.accrue(usdc.address))
    step(as_(borrower, "repay", usdc.address, usdc.units(4_000)))
    step(travel(DAY))
    step(as_(lender, "withdraw", usdc.address, usdc.units(2_000)))
    step(travel(7 * DAY))
    step(as_(borrower, "borrow", usdc.address, usdc.units(1_000)))
    step(travel(365 * DAY))
    step(as_(borrower, "repay", usdc.address, MAX_UINT))
    step(travel(100 * DAY))  # idle, no borrows
    step(lambda: engine.accrue(usdc.address))
    step(as_(lender, "deposit", usdc.address, usdc.units(1)))
    step(as_(lender, "withdraw", usdc.address, MAX_UINT))
    assert seen[-1][0] > WAD and seen[-1][1] > WAD


def test_first_borrow_after_long_idle_period_does_not_pay_for_it(market, usdc, lender, borrower):
    protocol = market
    listed_at = last_accrual(protocol.engine, usdc.id)
    boa.env.time_travel(seconds=365 * DAY)  # a year with deposits but no borrows
    protocol.refresh_prices()
    # Deposits without borrows do not touch the clock.
    deposit(protocol, lender, usdc, usdc.units(1))
    assert last_accrual(protocol.engine, usdc.id) == listed_at

    shares = borrow(protocol, borrower, usdc, usdc.units(5_000))
    ev = only_event(protocol.engine, "Borrow")
    assert ev.borrow_index == WAD and shares == usdc.units(5_000)
    assert last_accrual(protocol.engine, usdc.id) == now()  # the clock restarted

    di, bi, ds, bs = snapshot(protocol, usdc)
    boa.env.time_travel(seconds=DAY)
    protocol.engine.accrue(usdc.address)
    expected_di, expected_bi, _ = accrue(di, bi, ds, bs, DAY)  # one day, not a year and a day
    assert stored_indexes(protocol.engine, usdc.id) == (expected_di, expected_bi)
    u = usdc.units(5_000) * WAD // usdc.units(10_001)
    assert expected_bi == WAD + borrow_rate(u) * DAY
    check_accounting(protocol, [lender, borrower])


def test_borrow_after_full_repay_and_idle_period_starts_from_the_old_index(market, usdc, lender, borrower):
    protocol = market
    borrow(protocol, borrower, usdc, usdc.units(4_000))
    boa.env.time_travel(seconds=10 * DAY)
    protocol.refresh_prices()
    usdc.token.mint(borrower, usdc.units(100))
    with boa.env.prank(borrower):
        protocol.engine.repay(usdc.address, MAX_UINT)
    di, bi = stored_indexes(protocol.engine, usdc.id)
    assert bi > WAD

    boa.env.time_travel(seconds=200 * DAY)  # no borrows at all
    protocol.refresh_prices()
    assert protocol.lens.market(usdc.address).borrow_index == bi
    amount = usdc.units(3_000)
    shares = borrow(protocol, borrower, usdc, amount)
    ev = only_event(protocol.engine, "Borrow")
    assert ev.borrow_index == bi  # nothing accrued over the idle 200 days
    assert shares == ceil_div(amount * WAD, bi)
    assert stored_indexes(protocol.engine, usdc.id) == (di, bi)
    assert last_accrual(protocol.engine, usdc.id) == now()
    check_accounting(protocol, [lender, borrower])


def test_base_rate_accrues_even_at_tiny_utilisation(protocol, weth, lender, borrower):
    dai = protocol.list_asset(AssetSpec("DAI", decimals=18, price=1.0, base_rate=per_second(2 * 10**16)))
    deposit(protocol, lender, dai, dai.units(1_000_000))
    deposit(protocol, borrower, weth, weth.units(1))
    borrow(protocol, borrower, dai, dai.units(1))
    di, bi, ds, bs = snapshot(protocol, dai)
    boa.env.time_travel(seconds=DAY)
    protocol.engine.accrue(dai.address)
    model = dict(base=per_second(2 * 10**16))
    expected_di, expected_bi, _ = accrue(di, bi, ds, bs, DAY, **model)
    u = WAD // 1_000_000
    assert expected_bi == WAD + (per_second(2 * 10**16) + SLOPE_LOW * u // KINK) * DAY
    assert stored_indexes(protocol.engine, dai.id) == (expected_di, expected_bi)
    check_accounting(protocol, [lender, borrower])
