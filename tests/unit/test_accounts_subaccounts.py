"""Sub-accounts of one owner: transfer_collateral, isolation of health
between siblings, and batch (several actions, one health check at the end).

Market: USDC (6 decimals, $1) and WETH (18 decimals, $2000), default weights
(aw_init 0.8, aw_maint 0.85, lw_init 1.2, lw_maint 1.1).
Batch Action tuple: (kind, asset, amount, receiver, to_sub_id).
"""

import boa
import pytest

from tests.protocol import AssetSpec, Protocol
from tests.unit.accounting import MAX_UINT, WAD, check_accounting, events, only_event, totals

ZERO = "0x" + "00" * 20
DEPOSIT, WITHDRAW, BORROW, REPAY, TRANSFER = range(5)
PAUSE_TRANSFER = 16


@pytest.fixture
def liquid_usdc(protocol, usdc, lender):
    """10,000 USDC of lender liquidity; the borrower's USDC and WETH approvals come from fund()."""
    deposit(protocol, lender, usdc, usdc.units(10_000))


def deposit(protocol, who, asset, amount, sub_id=0):
    protocol.fund(who, asset, amount)
    with boa.env.prank(who):
        return protocol.engine.deposit(asset.address, amount, sub_id)


def action(kind, asset, amount, receiver=ZERO, to_sub_id=0):
    return (kind, asset.address, amount, receiver, to_sub_id)


def block_number():
    return boa.env.evm.patch.block_number


# ---------------------------------------------------------------------------
# transfer_collateral
# ---------------------------------------------------------------------------


def test_transfer_collateral_moves_shares_between_sub_accounts(protocol, weth, borrower):
    deposit(protocol, borrower, weth, weth.units(3))
    with boa.env.prank(borrower):
        protocol.engine.transfer_collateral(weth.address, weth.units(1), 0, 7)
    ev = only_event(protocol.engine, "TransferCollateral")

    assert (ev.owner, ev.asset, ev.from_sub_id, ev.to_sub_id) == (borrower, weth.address, 0, 7)
    assert (ev.amount, ev.shares, ev.deposit_index) == (weth.units(1), weth.units(1), WAD)
    assert protocol.engine.position(borrower, 0, weth.address) == (weth.units(2), 0)
    assert protocol.engine.position(borrower, 7, weth.address) == (weth.units(1), 0)
    assert protocol.engine.account_header(borrower, 7) == (1 << weth.id, 0, 0)
    assert totals(protocol.engine, weth.id) == (weth.units(3), 0)
    assert weth.token.balanceOf(protocol.engine.address) == weth.units(3)  # no tokens move
    check_accounting(protocol, [(borrower, 0), (borrower, 7)])


def test_transfer_collateral_max_moves_everything_and_clears_source_bit(protocol, weth, borrower):
    deposit(protocol, borrower, weth, weth.units(3))
    with boa.env.prank(borrower):
        protocol.engine.transfer_collateral(weth.address, MAX_UINT, 0, 1)
    ev = only_event(protocol.engine, "TransferCollateral")
    assert (ev.amount, ev.shares) == (weth.units(3), weth.units(3))
    assert protocol.engine.account_header(borrower, 0) == (0, 0, 0)
    assert protocol.engine.account_header(borrower, 1) == (1 << weth.id, 0, 0)
    check_accounting(protocol, [(borrower, 0), (borrower, 1)])


def test_transfer_collateral_to_same_sub_account_reverts(protocol, weth, borrower):
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(borrower), boa.reverts("transfer: same sub-account"):
        protocol.engine.transfer_collateral(weth.address, weth.units(1), 0, 0)


def test_transfer_collateral_more_than_deposit_reverts(protocol, weth, borrower):
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(borrower), boa.reverts("transfer: amount exceeds deposit"):
        protocol.engine.transfer_collateral(weth.address, weth.units(1) + 1, 0, 1)
    check_accounting(protocol, [(borrower, 0), (borrower, 1)])


def test_transfer_collateral_paused_reverts(protocol, weth, borrower):
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(protocol.guardian):
        protocol.engine.pause(weth.address, PAUSE_TRANSFER)
    with boa.env.prank(borrower), boa.reverts("pause: transfer paused"):
        protocol.engine.transfer_collateral(weth.address, weth.units(1), 0, 1)


def test_transfer_collateral_of_another_owner_by_attacker_reverts(protocol, weth, borrower, attacker):
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(attacker), boa.reverts("account: caller is not owner or operator"):
        protocol.engine.transfer_collateral(weth.address, weth.units(1), 0, 1, borrower)


def test_transfer_collateral_with_debt_keeps_source_at_initial_margin(
    protocol, usdc, weth, lender, borrower, liquid_usdc
):
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(borrower):
        protocol.engine.borrow(usdc.address, usdc.units(1_000))  # needs 0.75 WETH
    boa.env.time_travel(blocks=3, block_delta=0)
    with boa.env.prank(borrower):
        with boa.reverts("health: below initial margin"):
            protocol.engine.transfer_collateral(weth.address, weth.units(0.25) + 1, 0, 1)
        protocol.engine.transfer_collateral(weth.address, weth.units(0.25), 0, 1)
    assert protocol.engine.health(borrower, 0)[0] == 0
    assert protocol.engine.account_header(borrower, 0) == (1 << weth.id, 1 << usdc.id, block_number())
    assert protocol.engine.position(borrower, 1, weth.address) == (weth.units(0.25), 0)
    check_accounting(protocol, [lender, (borrower, 0), (borrower, 1)])


def test_transfer_collateral_without_debt_needs_no_price(protocol, weth, borrower):
    deposit(protocol, borrower, weth, weth.units(1))
    boa.env.time_travel(seconds=2 * 86400)  # stale feeds
    with boa.env.prank(borrower):
        protocol.engine.transfer_collateral(weth.address, weth.units(1), 0, 2)
    assert only_event(protocol.engine, "TransferCollateral").shares == weth.units(1)
    assert protocol.engine.position(borrower, 2, weth.address) == (weth.units(1), 0)
    check_accounting(protocol, [(borrower, 0), (borrower, 2)])


# ---------------------------------------------------------------------------
# sub-account isolation
# ---------------------------------------------------------------------------


@pytest.fixture
def two_subs(protocol, usdc, weth, lender, borrower, liquid_usdc):
    """sub 0: 1 WETH, 1,300 USDC borrowed (near its limit);
    sub 1: 1 WETH, 100 USDC borrowed (very safe)."""
    deposit(protocol, borrower, weth, weth.units(1), 0)
    deposit(protocol, borrower, weth, weth.units(1), 1)
    with boa.env.prank(borrower):
        protocol.engine.borrow(usdc.address, usdc.units(1_300), 0)
        protocol.engine.borrow(usdc.address, usdc.units(100), 1)
    return protocol


def test_unhealthy_sub_account_does_not_affect_sibling_health(two_subs, usdc, weth, lender, borrower):
    protocol = two_subs
    sibling_before = protocol.engine.health(borrower, 1)
    assert sibling_before == (1600 * WAD - 120 * WAD, 1700 * WAD - 110 * WAD, True)

    weth.set_price(1200.0)  # sub 0: 1020 maintenance collateral vs 1430 debt
    initial0, maintenance0, valid0 = protocol.engine.health(borrower, 0)
    assert (initial0, maintenance0, valid0) == (960 * WAD - 1560 * WAD, 1020 * WAD - 1430 * WAD, True)
    assert maintenance0 < 0  # underwater
    # Sub 1 only sees its own WETH and debt at the new price.
    assert protocol.engine.health(borrower, 1) == (960 * WAD - 120 * WAD, 1020 * WAD - 110 * WAD, True)
    assert protocol.engine.position(borrower, 1, weth.address) == (weth.units(1), 0)
    assert protocol.engine.position(borrower, 1, usdc.address) == (0, usdc.units(100))
    check_accounting(protocol, [lender, (borrower, 0), (borrower, 1)])


def test_sibling_can_withdraw_and_borrow_while_sub_zero_is_underwater(two_subs, usdc, weth, lender, borrower):
    protocol = two_subs
    weth.set_price(1200.0)
    with boa.env.prank(borrower):
        # Sub 0 is locked...
        with boa.reverts("health: below initial margin"):
            protocol.engine.withdraw(weth.address, 1, 0)
        with boa.reverts("health: below initial margin"):
            protocol.engine.transfer_collateral(weth.address, 1, 0, 1)
        # ...sub 1 is not: 0.5 WETH left is 480 USD initial collateral vs 120 USD debt.
        assert protocol.engine.withdraw(weth.address, weth.units(0.5), 1) == weth.units(0.5)
        protocol.engine.borrow(usdc.address, usdc.units(300), 1)  # 480 - 480 = 0
        with boa.reverts("health: below initial margin"):
            protocol.engine.borrow(usdc.address, 1, 1)
    assert protocol.engine.health(borrower, 1)[0] == 0
    assert protocol.engine.position(borrower, 0, weth.address) == (weth.units(1), 0)
    assert weth.token.balanceOf(borrower) == weth.units(0.5)
    check_accounting(protocol, [lender, (borrower, 0), (borrower, 1)])


def test_sibling_collateral_can_rescue_sub_zero_by_transfer(two_subs, usdc, weth, lender, borrower):
    protocol = two_subs
    weth.set_price(1200.0)
    with boa.env.prank(borrower):
        protocol.engine.transfer_collateral(weth.address, weth.units(0.5), 1, 0)
    # sub 0: 1.5 WETH * 1200 * 0.85 = 1530 maintenance collateral vs 1430 debt.
    assert protocol.engine.health(borrower, 0)[1] == 1530 * WAD - 1430 * WAD
    assert protocol.engine.health(borrower, 1)[0] == 480 * WAD - 120 * WAD
    check_accounting(protocol, [lender, (borrower, 0), (borrower, 1)])


# ---------------------------------------------------------------------------
# batch
# ---------------------------------------------------------------------------


def test_batch_deposit_then_borrow_checks_health_once_at_the_end(protocol, usdc, weth, lender, borrower, liquid_usdc):
    protocol.fund(borrower, weth, weth.units(1))
    with boa.env.prank(borrower):
        # Alone, the borrow fails: no collateral yet.
        with boa.reverts("health: below initial margin"):
            protocol.engine.borrow(usdc.address, usdc.units(1_000))
        protocol.engine.batch(
            [action(DEPOSIT, weth, weth.units(1)), action(BORROW, usdc, usdc.units(1_000), borrower)]
        )
    logs = [type(e).__name__ for e in protocol.engine.get_logs() if type(e).__name__ in ("Deposit", "Borrow")]
    assert logs == ["Deposit", "Borrow"]
    borrow_ev = events(protocol.engine, "Borrow")[0]
    assert (borrow_ev.owner, borrow_ev.receiver, borrow_ev.amount) == (borrower, borrower, usdc.units(1_000))
    assert protocol.engine.position(borrower, 0, weth.address) == (weth.units(1), 0)
    assert protocol.engine.position(borrower, 0, usdc.address) == (0, usdc.units(1_000))
    assert usdc.token.balanceOf(borrower) == usdc.units(1_000)
    assert protocol.engine.health(borrower, 0)[0] == 400 * WAD
    check_accounting(protocol, [lender, borrower])


def test_batch_failing_final_check_reverts_every_action(protocol, usdc, weth, lender, borrower, liquid_usdc):
    protocol.fund(borrower, weth, weth.units(1))
    with boa.env.prank(borrower), boa.reverts("health: below initial margin"):
        protocol.engine.batch(
            [action(DEPOSIT, weth, weth.units(1)), action(BORROW, usdc, usdc.units(1_333.333334), borrower)]
        )
    assert protocol.engine.position(borrower, 0, weth.address) == (0, 0)
    assert protocol.engine.account_header(borrower, 0) == (0, 0, 0)
    assert weth.token.balanceOf(borrower) == weth.units(1)
    check_accounting(protocol, [lender, borrower])


def test_batch_allows_temporary_shortfall_between_actions(protocol, usdc, weth, lender, borrower, liquid_usdc):
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(borrower):
        protocol.engine.borrow(usdc.address, usdc.units(1_000))  # needs 0.75 WETH
        with boa.reverts("health: below initial margin"):
            protocol.engine.withdraw(weth.address, weth.units(0.5))
        # Withdraw 0.5 and put it back: only the final state is checked.
        protocol.engine.batch(
            [action(WITHDRAW, weth, weth.units(0.5), borrower), action(DEPOSIT, weth, weth.units(0.5))]
        )
    assert protocol.engine.position(borrower, 0, weth.address) == (weth.units(1), 0)
    assert weth.token.balanceOf(borrower) == 0
    check_accounting(protocol, [lender, borrower])


def test_batch_withdraw_then_borrow_fails_but_borrow_repay_withdraw_succeeds(
    protocol, usdc, weth, lender, borrower, liquid_usdc
):
    deposit(protocol, borrower, weth, weth.units(1))
    protocol.fund(borrower, usdc, 0)  # approval to repay
    with boa.env.prank(borrower):
        with boa.reverts("health: below initial margin"):
            protocol.engine.batch(
                [action(WITHDRAW, weth, MAX_UINT, borrower), action(BORROW, usdc, usdc.units(100), borrower)]
            )
        protocol.engine.batch(
            [
                action(BORROW, usdc, usdc.units(100), borrower),
                action(REPAY, usdc, MAX_UINT),
                action(WITHDRAW, weth, MAX_UINT, borrower),
            ]
        )
    assert protocol.engine.account_header(borrower, 0)[:2] == (0, 0)
    assert weth.token.balanceOf(borrower) == weth.units(1)
    assert usdc.token.balanceOf(borrower) == 0
    check_accounting(protocol, [lender, borrower])


def test_batch_actions_run_in_order(protocol, usdc, lender):
    deposit(protocol, lender, usdc, usdc.units(500))
    with boa.env.prank(lender):
        # Withdrawing everything first leaves nothing to transfer...
        with boa.reverts("transfer: amount exceeds deposit"):
            protocol.engine.batch(
                [action(WITHDRAW, usdc, MAX_UINT, lender), action(TRANSFER, usdc, usdc.units(100), to_sub_id=1)]
            )
        # ...the other way round both succeed.
        protocol.engine.batch(
            [action(TRANSFER, usdc, usdc.units(100), to_sub_id=1), action(WITHDRAW, usdc, MAX_UINT, lender)]
        )
    assert usdc.token.balanceOf(lender) == usdc.units(400)
    assert protocol.engine.position(lender, 0, usdc.address) == (0, 0)
    assert protocol.engine.position(lender, 1, usdc.address) == (usdc.units(100), 0)
    check_accounting(protocol, [(lender, 0), (lender, 1)])


def test_batch_unknown_action_reverts(protocol, usdc, lender):
    deposit(protocol, lender, usdc, usdc.units(10))
    protocol.fund(lender, usdc, 1)
    with boa.env.prank(lender), boa.reverts("batch: unknown action"):
        protocol.engine.batch([action(DEPOSIT, usdc, 1), (5, usdc.address, 1, lender, 0)])
    # The valid deposit before the unknown action is rolled back too.
    assert protocol.engine.position(lender, 0, usdc.address) == (usdc.units(10), 0)
    assert usdc.token.balanceOf(lender) == 1
    check_accounting(protocol, [lender])


def test_batch_for_another_owner_needs_operator(protocol, usdc, weth, lender, borrower, operator, liquid_usdc):
    protocol.fund(operator, weth, weth.units(1))
    batch = [action(DEPOSIT, weth, weth.units(1)), action(BORROW, usdc, usdc.units(500), borrower)]
    with boa.env.prank(operator), boa.reverts("account: caller is not owner or operator"):
        protocol.engine.batch(batch, 2, borrower)
    with boa.env.prank(borrower):
        protocol.engine.set_operator(operator, True)
    with boa.env.prank(operator):
        protocol.engine.batch(batch, 2, borrower)
    assert protocol.engine.position(borrower, 2, weth.address) == (weth.units(1), 0)
    assert protocol.engine.position(borrower, 2, usdc.address) == (0, usdc.units(500))
    assert usdc.token.balanceOf(borrower) == usdc.units(500)
    assert weth.token.balanceOf(operator) == 0
    check_accounting(protocol, [lender, (borrower, 2), (operator, 2)])
