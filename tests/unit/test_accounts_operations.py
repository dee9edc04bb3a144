"""Account operations of MarginEngine: deposit, withdraw, borrow, repay and
operators, with exact shares, balances, events and header bits.

Market used throughout: USDC (6 decimals, $1, id 0) and WETH (18 decimals,
$2000, id 1), default weights (aw_init 0.8, aw_maint 0.85, lw_init 1.2,
lw_maint 1.1). With 1 WETH of collateral the initial-margin borrowing power
is 2000 * 0.8 / 1.2 = 1333.333333 USDC.
"""

import boa
import pytest

from tests.protocol import AssetSpec, Protocol, deployer
from tests.unit.accounting import (
    MAX_UINT,
    WAD,
    check_accounting,
    mul_div_down,
    mul_div_up,
    only_event,
    stored_indexes,
    totals,
)

DAY = 86400
PAUSE_DEPOSIT, PAUSE_WITHDRAW, PAUSE_BORROW, PAUSE_TRANSFER = 2, 4, 8, 16
PAUSE_ALL = PAUSE_DEPOSIT | PAUSE_WITHDRAW | PAUSE_BORROW | PAUSE_TRANSFER


# ---------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------


def deposit(protocol, who, asset, amount, sub_id=0):
    protocol.fund(who, asset, amount)
    with boa.env.prank(who):
        return protocol.engine.deposit(asset.address, amount, sub_id)


def block_number():
    return boa.env.evm.patch.block_number


@pytest.fixture
def lent_and_borrowed(protocol, usdc, weth, lender, borrower):
    """lender: 10,000 USDC deposited; borrower: 1 WETH deposited, 1,000 USDC borrowed."""
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(borrower):
        protocol.engine.borrow(usdc.address, usdc.units(1_000))
        usdc.token.approve(protocol.engine.address, MAX_UINT)  # to repay
    return protocol


@pytest.fixture
def grown_indexes(lent_and_borrowed, usdc):
    """lent_and_borrowed, then 30 days of interest accrued on USDC, so both
    USDC indexes are above 1 and not round numbers."""
    protocol = lent_and_borrowed
    boa.env.time_travel(seconds=30 * DAY)
    protocol.refresh_prices()
    protocol.engine.accrue(usdc.address)
    di, bi = stored_indexes(protocol.engine, usdc.id)
    assert di > WAD and bi > di
    return protocol


# ---------------------------------------------------------------------------
# deposit
# ---------------------------------------------------------------------------


def test_deposit_mints_shares_sets_bit_and_emits_event(protocol, usdc, lender):
    amount = usdc.units(1_234.5)
    protocol.fund(lender, usdc, amount)
    with boa.env.prank(lender):
        shares = protocol.engine.deposit(usdc.address, amount)
    ev = only_event(protocol.engine, "Deposit")

    assert shares == amount * WAD // WAD == 1_234_500_000
    assert (ev.owner, ev.asset, ev.sub_id, ev.caller) == (lender, usdc.address, 0, lender)
    assert (ev.amount, ev.shares, ev.deposit_index) == (amount, shares, WAD)
    assert protocol.engine.position(lender, 0, usdc.address) == (shares, 0)
    assert totals(protocol.engine, usdc.id) == (shares, 0)
    assert protocol.engine.account_header(lender, 0) == (1 << usdc.id, 0, 0)
    assert usdc.token.balanceOf(protocol.engine.address) == amount
    assert usdc.token.balanceOf(lender) == 0
    check_accounting(protocol, [lender])


def test_deposit_rounds_shares_down_at_a_grown_index(grown_indexes, usdc, lender, borrower):
    protocol = grown_indexes
    di, _ = stored_indexes(protocol.engine, usdc.id)
    amount = usdc.units(777.777777)
    assert amount * WAD % di != 0  # the division really truncates
    before_lender, _ = protocol.engine.position(lender, 0, usdc.address)
    before_total, _ = totals(protocol.engine, usdc.id)

    shares = deposit(protocol, lender, usdc, amount)
    ev = only_event(protocol.engine, "Deposit")

    assert shares == amount * WAD // di
    assert shares < mul_div_up(amount, WAD, di)
    assert (ev.amount, ev.shares, ev.deposit_index) == (amount, shares, di)
    assert protocol.engine.position(lender, 0, usdc.address)[0] == before_lender + shares
    assert totals(protocol.engine, usdc.id)[0] == before_total + shares
    check_accounting(protocol, [lender, borrower])


def test_deposit_worth_less_than_one_share_reverts(grown_indexes, usdc, lender, borrower):
    protocol = grown_indexes
    protocol.fund(lender, usdc, 2)
    with boa.env.prank(lender):
        with boa.reverts("deposit: amount below one share"):
            protocol.engine.deposit(usdc.address, 1)  # 1 * WAD // di == 0
        assert protocol.engine.deposit(usdc.address, 2) == 1  # 2 units buy 1 share, rounded down
    check_accounting(protocol, [lender, borrower])


def test_deposit_accumulates_shares_and_keeps_bit(protocol, usdc, lender):
    deposit(protocol, lender, usdc, usdc.units(100))
    deposit(protocol, lender, usdc, usdc.units(50))
    assert protocol.engine.position(lender, 0, usdc.address) == (usdc.units(150), 0)
    assert protocol.engine.account_header(lender, 0)[0] == 1 << usdc.id
    check_accounting(protocol, [lender])


def test_deposit_zero_amount_reverts(protocol, usdc, lender):
    with boa.env.prank(lender), boa.reverts("deposit: zero amount"):
        protocol.engine.deposit(usdc.address, 0)


def test_deposit_unlisted_asset_reverts(protocol, usdc, lender):
    unlisted = deployer("mocks/MockERC20.vy").deploy("Unlisted", "UNL", 18)
    unlisted.mint(lender, 10**18)
    with boa.env.prank(lender):
        unlisted.approve(protocol.engine.address, MAX_UINT)
        with boa.reverts("asset: not listed"):
            protocol.engine.deposit(unlisted.address, 10**18)


def test_deposit_up_to_supply_cap_then_one_unit_more_reverts(protocol, usdc, lender):
    cap = usdc.units(5_000)
    with boa.env.prank(protocol.owner):
        protocol.configurator.set_caps(usdc.address, cap, 0)
    deposit(protocol, lender, usdc, cap - 1)
    protocol.fund(lender, usdc, 2)
    with boa.env.prank(lender):
        with boa.reverts("cap: supply cap exceeded"):
            protocol.engine.deposit(usdc.address, 2)
        protocol.engine.deposit(usdc.address, 1)
    assert totals(protocol.engine, usdc.id) == (cap, 0)
    with boa.env.prank(lender), boa.reverts("cap: supply cap exceeded"):
        protocol.engine.deposit(usdc.address, 1)
    check_accounting(protocol, [lender])


def test_deposit_paused_by_guardian_reverts(protocol, usdc, lender):
    protocol.fund(lender, usdc, usdc.units(10))
    with boa.env.prank(protocol.guardian):
        protocol.engine.pause(usdc.address, PAUSE_DEPOSIT)
    with boa.env.prank(lender), boa.reverts("pause: deposit paused"):
        protocol.engine.deposit(usdc.address, usdc.units(10))


@pytest.mark.parametrize(
    "decimals,price",
    [(6, 1.0), (8, 60_000.0), (18, 2_000.0)],
    ids=["6-decimals", "8-decimals", "18-decimals"],
)
def test_deposit_token_decimals_give_exact_shares_and_usd_health(protocol, lender, decimals, price):
    asset = protocol.list_asset(AssetSpec(f"T{decimals}", decimals=decimals, price=price))
    amount = asset.units(1.5)
    assert amount == 15 * 10 ** (decimals - 1)
    shares = deposit(protocol, lender, asset, amount)
    assert shares == amount
    assert protocol.engine.position(lender, 0, asset.address) == (amount, 0)
    # 1.5 tokens * price, weighted 0.8 (initial) and 0.85 (maintenance), in USD WAD.
    usd = 15 * int(price) * WAD // 10
    assert protocol.engine.health(lender, 0) == (usd * 8 // 10, usd * 85 // 100, True)
    check_accounting(protocol, [lender])


def test_deposit_for_another_owner_by_non_operator_reverts(protocol, usdc, lender, attacker):
    protocol.fund(attacker, usdc, usdc.units(1))
    with boa.env.prank(attacker), boa.reverts("account: caller is not owner or operator"):
        protocol.engine.deposit(usdc.address, usdc.units(1), 0, lender)
    assert protocol.engine.position(lender, 0, usdc.address) == (0, 0)
    assert protocol.engine.account_header(lender, 0) == (0, 0, 0)
    check_accounting(protocol, [lender, attacker])


# ---------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------


def test_set_operator_to_self_reverts(protocol, lender):
    with boa.env.prank(lender), boa.reverts("account: cannot approve yourself"):
        protocol.engine.set_operator(lender, True)


def test_set_operator_emits_event_and_records_approval(protocol, borrower, operator):
    with boa.env.prank(borrower):
        protocol.engine.set_operator(operator, True)
    ev = only_event(protocol.engine, "OperatorSet")
    assert (ev.owner, ev.operator, ev.approved) == (borrower, operator, True)
    assert protocol.engine.operators(borrower, operator) is True
    assert protocol.engine.operators(operator, borrower) is False


def test_operator_deposits_borrows_and_withdraws_for_owner(protocol, usdc, weth, lender, borrower, operator):
    deposit(protocol, lender, usdc, usdc.units(10_000))
    with boa.env.prank(borrower):
        protocol.engine.set_operator(operator, True)

    # Deposit into the owner's sub-account 3: the operator pays.
    protocol.fund(operator, weth, weth.units(1))
    with boa.env.prank(operator):
        shares = protocol.engine.deposit(weth.address, weth.units(1), 3, borrower)
    ev = only_event(protocol.engine, "Deposit")
    assert (ev.owner, ev.sub_id, ev.caller, ev.shares) == (borrower, 3, operator, weth.units(1))
    assert protocol.engine.position(borrower, 3, weth.address) == (shares, 0)
    assert protocol.engine.position(operator, 3, weth.address) == (0, 0)
    assert weth.token.balanceOf(operator) == 0

    # Borrow against it, tokens to the owner.
    with boa.env.prank(operator):
        protocol.engine.borrow(usdc.address, usdc.units(500), 3, borrower, borrower)
    assert usdc.token.balanceOf(borrower) == usdc.units(500)
    assert protocol.engine.position(borrower, 3, usdc.address) == (0, usdc.units(500))

    # Withdraw part of the collateral; the receiver defaults to the caller (the operator).
    with boa.env.prank(operator):
        sent = protocol.engine.withdraw(weth.address, weth.units(0.25), 3, operator, borrower)
    assert sent == weth.units(0.25)
    assert weth.token.balanceOf(operator) == weth.units(0.25)
    assert protocol.engine.position(borrower, 3, weth.address) == (weth.units(0.75), 0)
    check_accounting(protocol, [lender, (borrower, 3), (operator, 3)])


def test_revoked_operator_can_no_longer_act(protocol, usdc, weth, lender, borrower, operator):
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(borrower):
        protocol.engine.set_operator(operator, True)
        protocol.engine.set_operator(operator, False)
    ev = only_event(protocol.engine, "OperatorSet")
    assert (ev.owner, ev.operator, ev.approved) == (borrower, operator, False)
    assert protocol.engine.operators(borrower, operator) is False

    protocol.fund(operator, weth, weth.units(1))
    with boa.env.prank(operator):
        with boa.reverts("account: caller is not owner or operator"):
            protocol.engine.deposit(weth.address, weth.units(1), 0, borrower)
        with boa.reverts("account: caller is not owner or operator"):
            protocol.engine.withdraw(weth.address, weth.units(1), 0, operator, borrower)
        with boa.reverts("account: caller is not owner or operator"):
            protocol.engine.borrow(usdc.address, usdc.units(1), 0, operator, borrower)
    assert protocol.engine.position(borrower, 0, weth.address) == (weth.units(1), 0)
    check_accounting(protocol, [lender, borrower])


def test_operator_approval_made_on_the_extension_directly_reverts(protocol, borrower, operator):
    # The extension serves set_operator only by delegatecall from the engine;
    # called directly it would write its own (unused) storage.
    with boa.env.prank(borrower), boa.reverts("engine: call through the engine"):
        protocol.extension.set_operator(operator, True)
    assert protocol.engine.operators(borrower, operator) is False


def test_non_operator_cannot_withdraw_or_borrow_for_owner(protocol, usdc, weth, lender, borrower, attacker):
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(attacker):
        with boa.reverts("account: caller is not owner or operator"):
            protocol.engine.withdraw(weth.address, MAX_UINT, 0, attacker, borrower)
        with boa.reverts("account: caller is not owner or operator"):
            protocol.engine.borrow(usdc.address, usdc.units(1), 0, attacker, borrower)
    assert weth.token.balanceOf(attacker) == 0
    assert usdc.token.balanceOf(attacker) == 0
    check_accounting(protocol, [lender, borrower, attacker])


# ---------------------------------------------------------------------------
# withdraw
# ---------------------------------------------------------------------------


def test_withdraw_partial_burns_shares_rounded_up(grown_indexes, usdc, lender, borrower):
    protocol = grown_indexes
    held, _ = protocol.engine.position(lender, 0, usdc.address)
    total_before, _ = totals(protocol.engine, usdc.id)
    amount = usdc.units(1_234.567891)
    with boa.env.prank(lender):
        sent = protocol.engine.withdraw(usdc.address, amount)
    ev = only_event(protocol.engine, "Withdraw")
    di, _ = stored_indexes(protocol.engine, usdc.id)

    burned = mul_div_up(amount, WAD, di)
    assert burned == amount * WAD // di + 1  # the rounding really goes up
    assert sent == amount
    assert (ev.owner, ev.asset, ev.sub_id, ev.receiver) == (lender, usdc.address, 0, lender)
    assert (ev.amount, ev.shares, ev.deposit_index) == (amount, burned, di)
    assert protocol.engine.position(lender, 0, usdc.address) == (held - burned, 0)
    assert totals(protocol.engine, usdc.id)[0] == total_before - burned
    assert usdc.token.balanceOf(lender) == amount
    assert protocol.engine.account_header(lender, 0)[0] == 1 << usdc.id  # still holds some
    check_accounting(protocol, [lender, borrower])


def test_withdraw_max_takes_whole_deposit_and_clears_bit(grown_indexes, usdc, lender, borrower):
    protocol = grown_indexes
    # A second lender keeps liquidity for the borrower after lender leaves.
    second_lender = boa.env.generate_address("second_lender")
    deposit(protocol, second_lender, usdc, usdc.units(5_000))
    held, _ = protocol.engine.position(lender, 0, usdc.address)
    with boa.env.prank(lender):
        sent = protocol.engine.withdraw(usdc.address, MAX_UINT)
    ev = only_event(protocol.engine, "Withdraw")
    di, _ = stored_indexes(protocol.engine, usdc.id)

    assert sent == mul_div_down(held, di, WAD)
    assert sent > usdc.units(10_000)  # principal plus 30 days of interest
    assert (ev.amount, ev.shares) == (sent, held)
    assert usdc.token.balanceOf(lender) == sent
    assert protocol.engine.position(lender, 0, usdc.address) == (0, 0)
    assert protocol.engine.account_header(lender, 0) == (0, 0, 0)
    check_accounting(protocol, [lender, borrower, second_lender])


def test_withdraw_without_deposit_reverts(protocol, usdc, lender):
    with boa.env.prank(lender), boa.reverts("withdraw: no deposit"):
        protocol.engine.withdraw(usdc.address, 1)


def test_withdraw_more_than_deposit_reverts(protocol, usdc, lender):
    deposit(protocol, lender, usdc, usdc.units(100))
    with boa.env.prank(lender):
        with boa.reverts("withdraw: amount exceeds deposit"):
            protocol.engine.withdraw(usdc.address, usdc.units(100) + 1)
        assert protocol.engine.withdraw(usdc.address, usdc.units(100)) == usdc.units(100)
    assert protocol.engine.account_header(lender, 0) == (0, 0, 0)
    check_accounting(protocol, [lender])


def test_withdraw_zero_amount_reverts(protocol, usdc, lender):
    deposit(protocol, lender, usdc, usdc.units(100))
    with boa.env.prank(lender), boa.reverts("withdraw: zero amount"):
        protocol.engine.withdraw(usdc.address, 0)


def test_withdraw_paused_reverts(protocol, usdc, lender):
    deposit(protocol, lender, usdc, usdc.units(100))
    with boa.env.prank(protocol.guardian):
        protocol.engine.pause(usdc.address, PAUSE_WITHDRAW)
    with boa.env.prank(lender), boa.reverts("pause: withdraw paused"):
        protocol.engine.withdraw(usdc.address, 1)


def test_withdraw_cannot_leave_borrows_above_deposits(lent_and_borrowed, usdc, lender, borrower):
    protocol = lent_and_borrowed  # 10,000 deposited, 1,000 borrowed, same block: index 1
    free = usdc.units(9_000)
    with boa.env.prank(lender):
        with boa.reverts("market: insufficient liquidity"):
            protocol.engine.withdraw(usdc.address, free + 1)
        with boa.reverts("market: insufficient liquidity"):
            protocol.engine.withdraw(usdc.address, MAX_UINT)
        assert protocol.engine.withdraw(usdc.address, free) == free
    assert totals(protocol.engine, usdc.id) == (usdc.units(1_000), usdc.units(1_000))
    assert usdc.token.balanceOf(protocol.engine.address) == 0
    check_accounting(protocol, [lender, borrower])


def test_withdraw_with_debt_stops_exactly_at_initial_margin(lent_and_borrowed, usdc, weth, lender, borrower):
    protocol = lent_and_borrowed
    # 1,000 USDC debt needs 1000 * 1.2 / (2000 * 0.8) = 0.75 WETH: 0.25 WETH is free.
    assert protocol.lens.max_withdraw(borrower, 0, weth.address) == weth.units(0.25)
    boa.env.time_travel(blocks=5, block_delta=0)  # new blocks, same second: no interest
    with boa.env.prank(borrower):
        with boa.reverts("health: below initial margin"):
            protocol.engine.withdraw(weth.address, weth.units(0.25) + 1)
        protocol.engine.withdraw(weth.address, weth.units(0.25))
    assert protocol.engine.health(borrower, 0)[0] == 0
    assert protocol.engine.position(borrower, 0, weth.address) == (weth.units(0.75), 0)
    # A withdrawal with debt records the block of the last health-lowering action.
    assert protocol.engine.account_header(borrower, 0) == (1 << weth.id, 1 << usdc.id, block_number())
    with boa.env.prank(borrower), boa.reverts("health: below initial margin"):
        protocol.engine.withdraw(weth.address, 1)
    check_accounting(protocol, [lender, borrower])


def test_withdraw_with_debt_and_stale_price_reverts(lent_and_borrowed, weth, lender, borrower):
    protocol = lent_and_borrowed
    boa.env.time_travel(seconds=3601)
    with boa.env.prank(borrower), boa.reverts("oracle: stale price"):
        protocol.engine.withdraw(weth.address, 1)
    check_accounting(protocol, [lender, borrower])


def test_withdraw_without_debt_needs_no_price(protocol, usdc, weth, lender):
    deposit(protocol, lender, weth, weth.units(2))
    boa.env.time_travel(seconds=10 * DAY)  # every feed is now stale
    with boa.env.prank(lender):
        assert protocol.engine.withdraw(weth.address, weth.units(1)) == weth.units(1)
    weth.feed.set_answer(0)  # and a zero price does not matter either
    with boa.env.prank(lender):
        assert protocol.engine.withdraw(weth.address, MAX_UINT) == weth.units(1)
    assert weth.token.balanceOf(lender) == weth.units(2)
    assert protocol.engine.account_header(lender, 0) == (0, 0, 0)
    check_accounting(protocol, [lender])


def test_withdraw_sends_to_receiver(protocol, usdc, lender):
    receiver = boa.env.generate_address("receiver")
    deposit(protocol, lender, usdc, usdc.units(100))
    with boa.env.prank(lender):
        protocol.engine.withdraw(usdc.address, usdc.units(40), 0, receiver)
    ev = only_event(protocol.engine, "Withdraw")
    assert (ev.owner, ev.receiver, ev.amount) == (lender, receiver, usdc.units(40))
    assert usdc.token.balanceOf(receiver) == usdc.units(40)
    assert usdc.token.balanceOf(lender) == 0
    assert protocol.engine.position(lender, 0, usdc.address) == (usdc.units(60), 0)
    check_accounting(protocol, [lender])


def test_withdraw_to_zero_receiver_reverts(protocol, usdc, lender):
    deposit(protocol, lender, usdc, usdc.units(100))
    with boa.env.prank(lender), boa.reverts("token: zero receiver"):
        protocol.engine.withdraw(usdc.address, usdc.units(1), 0, "0x" + "00" * 20)


# ---------------------------------------------------------------------------
# borrow
# ---------------------------------------------------------------------------


def test_borrow_mints_shares_sets_debt_bit_and_risk_block(protocol, usdc, weth, lender, borrower):
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, borrower, weth, weth.units(1))
    boa.env.time_travel(blocks=7)
    assert protocol.engine.account_header(borrower, 0) == (1 << weth.id, 0, 0)

    amount = usdc.units(1_000)
    with boa.env.prank(borrower):
        shares = protocol.engine.borrow(usdc.address, amount)
    ev = only_event(protocol.engine, "Borrow")

    assert shares == amount  # index 1
    assert (ev.owner, ev.asset, ev.sub_id, ev.receiver) == (borrower, usdc.address, 0, borrower)
    assert (ev.amount, ev.shares, ev.borrow_index) == (amount, shares, WAD)
    assert block_number() == 8
    assert protocol.engine.account_header(borrower, 0) == (1 << weth.id, 1 << usdc.id, 8)
    assert protocol.engine.position(borrower, 0, usdc.address) == (0, shares)
    assert totals(protocol.engine, usdc.id) == (usdc.units(10_000), shares)
    assert usdc.token.balanceOf(borrower) == amount
    check_accounting(protocol, [lender, borrower])


def test_borrow_rounds_shares_up_at_a_grown_index(grown_indexes, usdc, lender, borrower):
    protocol = grown_indexes
    _, bi = stored_indexes(protocol.engine, usdc.id)
    before = protocol.engine.position(borrower, 0, usdc.address)[1]
    amount = usdc.units(12.345678)
    with boa.env.prank(borrower):
        shares = protocol.engine.borrow(usdc.address, amount)
    ev = only_event(protocol.engine, "Borrow")

    assert shares == mul_div_up(amount, WAD, bi) == amount * WAD // bi + 1
    assert (ev.amount, ev.shares, ev.borrow_index) == (amount, shares, bi)
    assert protocol.engine.position(borrower, 0, usdc.address)[1] == before + shares
    check_accounting(protocol, [lender, borrower])


def test_borrow_zero_amount_reverts(lent_and_borrowed, usdc, borrower):
    with boa.env.prank(borrower), boa.reverts("borrow: zero amount"):
        lent_and_borrowed.engine.borrow(usdc.address, 0)


def test_borrow_of_non_borrowable_asset_reverts(protocol, usdc, weth, lender, borrower):
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(protocol.owner):
        protocol.configurator.set_flags(usdc.address, True, False)
    with boa.env.prank(borrower), boa.reverts("borrow: asset not borrowable"):
        protocol.engine.borrow(usdc.address, usdc.units(1))
    assert protocol.lens.max_borrow(borrower, 0, usdc.address) == 0
    check_accounting(protocol, [lender, borrower])


def test_borrow_paused_reverts(protocol, usdc, weth, lender, borrower):
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(protocol.guardian):
        protocol.engine.pause(usdc.address, PAUSE_BORROW)
    with boa.env.prank(borrower), boa.reverts("pause: borrow paused"):
        protocol.engine.borrow(usdc.address, usdc.units(1))


def test_borrow_up_to_borrow_cap_then_one_unit_more_reverts(protocol, usdc, weth, lender, borrower):
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, borrower, weth, weth.units(1))
    cap = usdc.units(500)
    with boa.env.prank(protocol.owner):
        protocol.configurator.set_caps(usdc.address, 0, cap)
    assert protocol.lens.max_borrow(borrower, 0, usdc.address) == cap
    with boa.env.prank(borrower):
        with boa.reverts("cap: borrow cap exceeded"):
            protocol.engine.borrow(usdc.address, cap + 1)
        protocol.engine.borrow(usdc.address, cap)
        with boa.reverts("cap: borrow cap exceeded"):
            protocol.engine.borrow(usdc.address, 1)
    assert totals(protocol.engine, usdc.id)[1] == cap
    check_accounting(protocol, [lender, borrower])


def test_borrow_beyond_liquidity_reverts(protocol, usdc, weth, lender, borrower):
    deposit(protocol, lender, usdc, usdc.units(1_000))
    deposit(protocol, borrower, weth, weth.units(10))  # plenty of collateral
    assert protocol.lens.max_borrow(borrower, 0, usdc.address) == usdc.units(1_000)
    with boa.env.prank(borrower):
        with boa.reverts("market: insufficient liquidity"):
            protocol.engine.borrow(usdc.address, usdc.units(1_000) + 1)
        protocol.engine.borrow(usdc.address, usdc.units(1_000))
    assert usdc.token.balanceOf(protocol.engine.address) == 0
    check_accounting(protocol, [lender, borrower])


def test_borrow_exact_lens_max_succeeds_and_one_more_unit_fails(protocol, usdc, weth, lender, borrower):
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, borrower, weth, weth.units(1))
    max_borrow = protocol.lens.max_borrow(borrower, 0, usdc.address)
    # floor(2000 * 0.8 / 1.2 USDC) in 6-decimal units.
    assert max_borrow == 1_333_333_333
    with boa.env.prank(borrower):
        with boa.reverts("health: below initial margin"):
            protocol.engine.borrow(usdc.address, max_borrow + 1)
        protocol.engine.borrow(usdc.address, max_borrow)
    # 1600 USD weighted collateral - 1333.333333 * 1.2 USD weighted debt.
    assert protocol.engine.health(borrower, 0)[0] == 1600 * WAD - 1_333_333_333 * 12 * 10**11
    assert protocol.lens.max_borrow(borrower, 0, usdc.address) == 0
    with boa.env.prank(borrower), boa.reverts("health: below initial margin"):
        protocol.engine.borrow(usdc.address, 1)
    check_accounting(protocol, [lender, borrower])


@pytest.fixture
def whale():
    return boa.env.generate_address("whale")


@pytest.fixture
def grown_usdc_fresh_borrower(protocol, usdc, weth, lender, borrower, whale):
    """USDC indexes grown by 30 days of 70% utilisation (a whale's loan);
    then `borrower` arrives with 1 WETH of collateral and no debt."""
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, whale, weth, weth.units(100))
    with boa.env.prank(whale):
        protocol.engine.borrow(usdc.address, usdc.units(7_000))
    boa.env.time_travel(seconds=30 * DAY)
    protocol.refresh_prices()
    deposit(protocol, borrower, weth, weth.units(1))
    return protocol


# Regression (found by these tests, fixed in the lens): after interest the
# engine mints ceil(amount * WAD / bi) borrow shares and values debts and
# totals at ceil(shares * bi / WAD), i.e. up to 1 unit above the amount, and
# burns ceil(amount * WAD / di) deposit shares on a withdrawal. A lens that
# ignored this rounding reported maxima 1 unit too high at grown indexes.
def test_borrow_exact_lens_max_at_a_grown_borrow_index(grown_usdc_fresh_borrower, usdc, lender, borrower, whale):
    protocol = grown_usdc_fresh_borrower
    max_borrow = protocol.lens.max_borrow(borrower, 0, usdc.address)
    # 1600 USD / 1.2 would be 1,333.333333 USDC; the share rounding costs one unit.
    assert max_borrow == 1_333_333_332
    with boa.env.anchor(), boa.env.prank(borrower), boa.reverts("health: below initial margin"):
        protocol.engine.borrow(usdc.address, max_borrow + 1)
    with boa.env.prank(borrower):
        protocol.engine.borrow(usdc.address, max_borrow)
    assert 0 <= protocol.engine.health(borrower, 0)[0] < 2 * 10**12  # within 1 unit * 1.2 of zero
    check_accounting(protocol, [lender, borrower, whale])


def test_borrow_exact_lens_max_when_liquidity_limited_at_a_grown_index(
    grown_usdc_fresh_borrower, usdc, weth, lender, borrower, whale
):
    protocol = grown_usdc_fresh_borrower
    rich = boa.env.generate_address("rich")
    deposit(protocol, rich, weth, weth.units(100))  # health is not the limit
    m = protocol.lens.market(usdc.address)
    max_borrow = protocol.lens.max_borrow(rich, 0, usdc.address)
    assert m.total_deposits - m.total_borrows - 1 <= max_borrow <= m.total_deposits - m.total_borrows
    with boa.env.anchor(), boa.env.prank(rich), boa.reverts("market: insufficient liquidity"):
        protocol.engine.borrow(usdc.address, max_borrow + 1)
    with boa.env.prank(rich):
        protocol.engine.borrow(usdc.address, max_borrow)
    check_accounting(protocol, [lender, rich, whale, borrower])


def test_withdraw_exact_lens_max_when_liquidity_limited_at_a_grown_index(
    grown_usdc_fresh_borrower, usdc, lender, borrower, whale
):
    protocol = grown_usdc_fresh_borrower
    m = protocol.lens.market(usdc.address)
    max_withdraw = protocol.lens.max_withdraw(lender, 0, usdc.address)
    # One unit below the naive liquidity: the burnt shares round up.
    assert max_withdraw == m.total_deposits - m.total_borrows - 1
    with boa.env.anchor(), boa.env.prank(lender), boa.reverts("market: insufficient liquidity"):
        protocol.engine.withdraw(usdc.address, max_withdraw + 1)
    with boa.env.prank(lender):
        assert protocol.engine.withdraw(usdc.address, max_withdraw) == max_withdraw
    check_accounting(protocol, [lender, whale, borrower])


def test_borrow_without_collateral_reverts(protocol, usdc, lender, borrower):
    deposit(protocol, lender, usdc, usdc.units(10_000))
    with boa.env.prank(borrower), boa.reverts("health: below initial margin"):
        protocol.engine.borrow(usdc.address, 1)


def test_borrow_with_stale_collateral_price_reverts(protocol, usdc, weth, lender, borrower):
    deposit(protocol, lender, usdc, usdc.units(10_000))
    deposit(protocol, borrower, weth, weth.units(1))
    boa.env.time_travel(seconds=3601)
    usdc.set_price(1.0)  # only WETH is stale
    with boa.env.prank(borrower), boa.reverts("oracle: stale price"):
        protocol.engine.borrow(usdc.address, usdc.units(1))
    check_accounting(protocol, [lender, borrower])


# ---------------------------------------------------------------------------
# repay
# ---------------------------------------------------------------------------


def test_repay_by_third_party_reduces_owners_debt(lent_and_borrowed, usdc, lender, borrower, payer):
    protocol = lent_and_borrowed
    protocol.fund(payer, usdc, usdc.units(400))
    with boa.env.prank(payer):
        paid = protocol.engine.repay(usdc.address, usdc.units(400), 0, borrower)
    ev = only_event(protocol.engine, "Repay")

    assert paid == usdc.units(400)
    assert (ev.owner, ev.asset, ev.sub_id, ev.payer) == (borrower, usdc.address, 0, payer)
    assert (ev.amount, ev.shares, ev.borrow_index) == (usdc.units(400), usdc.units(400), WAD)
    assert protocol.engine.position(borrower, 0, usdc.address) == (0, usdc.units(600))
    assert protocol.engine.position(payer, 0, usdc.address) == (0, 0)
    assert usdc.token.balanceOf(payer) == 0
    assert usdc.token.balanceOf(borrower) == usdc.units(1_000)  # the borrower's tokens are untouched
    check_accounting(protocol, [lender, borrower, payer])


def test_repay_partial_burns_shares_rounded_down(grown_indexes, usdc, lender, borrower):
    protocol = grown_indexes
    owed_before = protocol.engine.position(borrower, 0, usdc.address)[1]
    amount = usdc.units(333.333333)
    with boa.env.prank(borrower):
        paid = protocol.engine.repay(usdc.address, amount)
    ev = only_event(protocol.engine, "Repay")
    _, bi = stored_indexes(protocol.engine, usdc.id)

    burned = amount * WAD // bi
    assert burned < mul_div_up(amount, WAD, bi)  # the rounding really goes down
    assert paid == amount
    assert (ev.amount, ev.shares, ev.borrow_index) == (amount, burned, bi)
    assert protocol.engine.position(borrower, 0, usdc.address)[1] == owed_before - burned
    assert protocol.engine.account_header(borrower, 0)[1] == 1 << usdc.id
    check_accounting(protocol, [lender, borrower])


def test_repay_max_takes_exactly_the_debt_and_clears_bit(grown_indexes, usdc, weth, lender, borrower):
    protocol = grown_indexes
    owed = protocol.engine.position(borrower, 0, usdc.address)[1]
    _, bi = stored_indexes(protocol.engine, usdc.id)  # accrued this block by the fixture
    debt = mul_div_up(owed, bi, WAD)
    assert debt > usdc.units(1_000)
    protocol.fund(borrower, usdc, usdc.units(50))  # enough for the interest
    wallet = usdc.token.balanceOf(borrower)

    with boa.env.prank(borrower):
        paid = protocol.engine.repay(usdc.address, MAX_UINT)
    ev = only_event(protocol.engine, "Repay")

    assert paid == debt
    assert (ev.amount, ev.shares) == (debt, owed)
    assert usdc.token.balanceOf(borrower) == wallet - debt
    assert protocol.engine.position(borrower, 0, usdc.address) == (0, 0)
    assert protocol.engine.account_header(borrower, 0)[:2] == (1 << weth.id, 0)
    assert totals(protocol.engine, usdc.id)[1] == 0
    check_accounting(protocol, [lender, borrower])


def test_repay_more_than_debt_takes_only_the_debt(lent_and_borrowed, usdc, lender, borrower):
    protocol = lent_and_borrowed
    protocol.fund(borrower, usdc, usdc.units(500))
    with boa.env.prank(borrower):
        paid = protocol.engine.repay(usdc.address, usdc.units(1_500))
    assert paid == usdc.units(1_000)
    assert usdc.token.balanceOf(borrower) == usdc.units(500)
    assert protocol.engine.position(borrower, 0, usdc.address) == (0, 0)
    check_accounting(protocol, [lender, borrower])


def test_repay_without_debt_reverts(protocol, usdc, lender, payer):
    deposit(protocol, lender, usdc, usdc.units(100))
    protocol.fund(payer, usdc, usdc.units(1))
    with boa.env.prank(payer), boa.reverts("repay: no debt"):
        protocol.engine.repay(usdc.address, usdc.units(1), 0, lender)


def test_repay_zero_amount_reverts(lent_and_borrowed, usdc, borrower):
    with boa.env.prank(borrower), boa.reverts("repay: zero amount"):
        lent_and_borrowed.engine.repay(usdc.address, 0)


def test_repay_is_not_blocked_when_every_action_is_paused(lent_and_borrowed, usdc, weth, lender, borrower):
    protocol = lent_and_borrowed
    with boa.env.prank(protocol.guardian):
        protocol.engine.pause(usdc.address, PAUSE_ALL)
        protocol.engine.pause(weth.address, PAUSE_ALL)
    assert protocol.lens.asset_config(usdc.address).paused == 30
    with boa.env.prank(borrower):
        with boa.reverts("pause: deposit paused"):
            protocol.engine.deposit(usdc.address, 1)
        paid = protocol.engine.repay(usdc.address, MAX_UINT)
    assert paid == usdc.units(1_000)
    assert protocol.engine.position(borrower, 0, usdc.address) == (0, 0)
    check_accounting(protocol, [lender, borrower])


@pytest.mark.parametrize("feed_state", ["stale", "zero"])
def test_repay_and_deposit_ignore_a_bad_price(lent_and_borrowed, usdc, weth, lender, borrower, feed_state):
    protocol = lent_and_borrowed
    if feed_state == "stale":
        boa.env.time_travel(seconds=2 * 3600)
    else:
        usdc.feed.set_answer(0)
        weth.feed.set_answer(0)
    assert protocol.engine.health(borrower, 0)[2] is False  # prices are rejected

    with boa.env.prank(borrower):
        paid = protocol.engine.repay(usdc.address, usdc.units(250))
    assert paid == usdc.units(250)
    protocol.fund(borrower, weth, weth.units(1))
    with boa.env.prank(borrower):
        shares = protocol.engine.deposit(weth.address, weth.units(1))
    assert shares == weth.units(1)
    owed = protocol.engine.position(borrower, 0, usdc.address)[1]
    _, bi = stored_indexes(protocol.engine, usdc.id)
    assert owed == usdc.units(1_000) - usdc.units(250) * WAD // bi
    assert protocol.engine.position(borrower, 0, weth.address) == (weth.units(2), 0)
    check_accounting(protocol, [lender, borrower])
