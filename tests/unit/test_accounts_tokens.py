"""Non-standard tokens: USDT-style (returns nothing), fee-on-transfer
(refused), and a hook token whose transfer re-enters the engine (blocked by
`pragma nonreentrancy on`, views included)."""

import boa
import pytest

from tests.protocol import AssetSpec, Protocol
from tests.unit.accounting import MAX_UINT, check_accounting, last_accrual, only_event, totals

ZERO = "0x" + "00" * 20


@pytest.fixture
def weth(protocol):
    return protocol.list_asset(AssetSpec("WETH", decimals=18, price=2000.0))


def deposit(protocol, who, asset, amount, sub_id=0):
    protocol.fund(who, asset, amount)
    with boa.env.prank(who):
        return protocol.engine.deposit(asset.address, amount, sub_id)


# ---------------------------------------------------------------------------
# USDT-style token: transfer/transferFrom/approve return nothing
# ---------------------------------------------------------------------------


def test_usdt_style_token_supports_deposit_borrow_repay_withdraw(protocol, weth, lender, borrower):
    usdt = protocol.list_asset(AssetSpec("USDT", decimals=6, price=1.0, token_kind="usdt"))
    engine = protocol.engine

    assert deposit(protocol, lender, usdt, usdt.units(5_000)) == usdt.units(5_000)
    deposit(protocol, borrower, weth, weth.units(1))
    protocol.fund(borrower, usdt, usdt.units(0))  # approval (USDT: set once, from zero)

    with boa.env.prank(borrower):
        assert engine.borrow(usdt.address, usdt.units(1_000)) == usdt.units(1_000)
        assert usdt.token.balanceOf(borrower) == usdt.units(1_000)
        assert engine.repay(usdt.address, usdt.units(400)) == usdt.units(400)
        assert engine.position(borrower, 0, usdt.address) == (0, usdt.units(600))
        assert engine.repay(usdt.address, MAX_UINT) == usdt.units(600)
    assert usdt.token.balanceOf(borrower) == 0
    assert engine.account_header(borrower, 0)[1] == 0

    with boa.env.prank(lender):
        assert engine.withdraw(usdt.address, MAX_UINT) == usdt.units(5_000)
    assert usdt.token.balanceOf(lender) == usdt.units(5_000)
    assert usdt.token.balanceOf(engine.address) == 0
    assert totals(engine, usdt.id) == (0, 0)
    check_accounting(protocol, [lender, borrower])


# ---------------------------------------------------------------------------
# Fee-on-transfer token (1% fee)
# ---------------------------------------------------------------------------


def test_fee_on_transfer_token_deposit_is_refused(protocol, lender):
    fee = protocol.list_asset(AssetSpec("FEE", decimals=18, price=1.0, token_kind="fee"))
    protocol.fund(lender, fee, fee.units(100))
    with boa.env.prank(lender), boa.reverts("token: balance change differs from amount"):
        protocol.engine.deposit(fee.address, fee.units(100))
    assert fee.token.balanceOf(lender) == fee.units(100)
    assert fee.token.balanceOf(protocol.engine.address) == 0
    assert protocol.engine.account_header(lender, 0) == (0, 0, 0)
    check_accounting(protocol, [lender])


def test_fee_on_transfer_token_accepted_only_when_no_fee_is_charged(protocol, lender):
    # The engine measures the balance change rather than trusting `amount`:
    # 99 units pay a 0-unit fee (99 * 100 // 10_000), so they arrive in full.
    fee = protocol.list_asset(AssetSpec("FEE", decimals=18, price=1.0, token_kind="fee"))
    protocol.fund(lender, fee, 199)
    with boa.env.prank(lender):
        assert protocol.engine.deposit(fee.address, 99) == 99
        with boa.reverts("token: balance change differs from amount"):
            protocol.engine.deposit(fee.address, 100)  # 1-unit fee
    assert fee.token.balanceOf(protocol.engine.address) == 99
    check_accounting(protocol, [lender])


# ---------------------------------------------------------------------------
# Re-entrancy through a token hook
# ---------------------------------------------------------------------------


@pytest.fixture
def hook(protocol, weth):
    return protocol.list_asset(AssetSpec("HOOK", decimals=18, price=1.0, token_kind="hook"))


@pytest.fixture
def hook_account(protocol, hook):
    """The hook call comes from the token contract's own address. Give that
    address a deposit, tokens and an approval, so the re-entrant deposit and
    withdraw would succeed if they were not blocked."""
    token_addr = hook.token.address
    hook.token.mint(token_addr, hook.units(10))
    with boa.env.prank(token_addr):
        hook.token.approve(protocol.engine.address, MAX_UINT)
        protocol.engine.deposit(hook.address, hook.units(5))
    return token_addr


def inner_calldata(protocol, hook, kind, victim, attacker):
    """Calldata of the re-entrant call, made by the token contract for its own
    account (state-changing kinds) or about `victim` (views)."""
    engine = protocol.engine
    if kind == "deposit":
        return engine.deposit.prepare_calldata(hook.address, hook.units(1))
    if kind == "withdraw":
        return engine.withdraw.prepare_calldata(hook.address, hook.units(1))
    if kind == "batch":  # extension function, reached through the engine's fallback
        return engine.batch.prepare_calldata([(0, hook.address, hook.units(1), ZERO, 0)])
    if kind == "transfer_collateral":
        return engine.transfer_collateral.prepare_calldata(hook.address, hook.units(1), 0, 1)
    if kind == "accrue":
        return engine.accrue.prepare_calldata(hook.address)
    if kind == "set_operator":
        return engine.set_operator.prepare_calldata(attacker, True)
    if kind == "health":
        return engine.health.prepare_calldata(victim, 0)
    if kind == "position":
        return engine.position.prepare_calldata(victim, 0, hook.address)
    if kind == "lens_health_ratio":
        return protocol.lens.health_ratio.prepare_calldata(victim, 0)
    raise ValueError(kind)


def assert_inner_had_no_effect(protocol, hook, kind, token_addr, attacker, last_accrual_before):
    engine = protocol.engine
    assert engine.position(token_addr, 0, hook.address) == (hook.units(5), 0)
    assert engine.position(token_addr, 1, hook.address) == (0, 0)
    assert hook.token.balanceOf(token_addr) == hook.units(5)
    assert engine.operators(token_addr, attacker) is False
    assert last_accrual(engine, hook.id) == last_accrual_before


def run_inner_directly(protocol, hook, kind, caller, victim, attacker):
    """The re-entrant call made on its own, outside any engine call: it works."""
    engine = protocol.engine
    with boa.env.prank(caller):
        if kind == "deposit":
            assert engine.deposit(hook.address, hook.units(1)) == hook.units(1)
        elif kind == "withdraw":
            assert engine.withdraw(hook.address, hook.units(1)) == hook.units(1)
        elif kind == "batch":
            engine.batch([(0, hook.address, hook.units(1), ZERO, 0)])
            assert engine.position(caller, 0, hook.address) == (hook.units(6), 0)
        elif kind == "transfer_collateral":
            engine.transfer_collateral(hook.address, hook.units(1), 0, 1)
            assert engine.position(caller, 1, hook.address) == (hook.units(1), 0)
        elif kind == "accrue":
            engine.accrue(hook.address)
            assert last_accrual(engine, hook.id) == boa.env.evm.patch.timestamp
        elif kind == "set_operator":
            engine.set_operator(attacker, True)
            assert engine.operators(caller, attacker) is True
        elif kind == "health":
            assert engine.health(victim, 0)[2] is True
        elif kind == "position":
            assert engine.position(victim, 0, hook.address)[0] > 0
        else:
            assert protocol.lens.health_ratio(victim, 0) == MAX_UINT


INNER_KINDS = [
    "deposit",
    "withdraw",
    "batch",
    "transfer_collateral",
    "accrue",
    "set_operator",
    "health",
    "position",
    "lens_health_ratio",
]


def arm(protocol, hook, inner, victim, attacker):
    target = protocol.lens.address if inner == "lens_health_ratio" else protocol.engine.address
    hook.token.set_hook(target, inner_calldata(protocol, hook, inner, victim, attacker))
    # Let time pass (feeds refreshed) so that a successful re-entrant accrue
    # would move the asset's clock.
    boa.env.time_travel(seconds=600)
    protocol.refresh_prices()
    return last_accrual(protocol.engine, hook.id)


def assert_blocked(hook, calls_before):
    assert hook.token.hook_calls() == calls_before + 1
    assert hook.token.last_hook_success() is False
    assert hook.token.last_hook_return() == b""  # the re-entrancy lock: a revert without reason


@pytest.mark.parametrize("inner", INNER_KINDS)
def test_hook_reentering_during_deposit_is_blocked(protocol, hook, hook_account, lender, attacker, inner):
    deposit(protocol, lender, hook, hook.units(1))  # the victim already has a position
    last_before = arm(protocol, hook, inner, lender, attacker)
    protocol.fund(lender, hook, hook.units(100))
    calls_before = hook.token.hook_calls()

    with boa.env.prank(lender):
        shares = protocol.engine.deposit(hook.address, hook.units(100))
    ev = only_event(protocol.engine, "Deposit")

    # The outer deposit completed...
    assert shares == hook.units(100)
    assert (ev.owner, ev.amount, ev.shares) == (lender, hook.units(100), hook.units(100))
    assert protocol.engine.position(lender, 0, hook.address) == (hook.units(101), 0)
    # ...the hook ran exactly once and the re-entrant call failed without effect.
    assert_blocked(hook, calls_before)
    assert_inner_had_no_effect(protocol, hook, inner, hook_account, attacker, last_before)
    assert hook.token.balanceOf(protocol.engine.address) == hook.units(106)
    assert totals(protocol.engine, hook.id) == (hook.units(106), 0)
    check_accounting(protocol, [lender, hook_account, (hook_account, 1)])

    hook.token.clear_hook()
    run_inner_directly(protocol, hook, inner, hook_account, lender, attacker)
    check_accounting(protocol, [lender, hook_account, (hook_account, 1)])


@pytest.mark.parametrize("inner", INNER_KINDS)
def test_hook_reentering_during_withdraw_is_blocked(protocol, hook, hook_account, lender, attacker, inner):
    deposit(protocol, lender, hook, hook.units(100))
    last_before = arm(protocol, hook, inner, lender, attacker)
    calls_before = hook.token.hook_calls()

    with boa.env.prank(lender):
        sent = protocol.engine.withdraw(hook.address, hook.units(40))
    ev = only_event(protocol.engine, "Withdraw")

    assert sent == hook.units(40)
    assert (ev.owner, ev.amount, ev.shares) == (lender, hook.units(40), hook.units(40))
    assert hook.token.balanceOf(lender) == hook.units(40)
    assert protocol.engine.position(lender, 0, hook.address) == (hook.units(60), 0)
    assert_blocked(hook, calls_before)
    assert_inner_had_no_effect(protocol, hook, inner, hook_account, attacker, last_before)
    assert hook.token.balanceOf(protocol.engine.address) == hook.units(65)
    check_accounting(protocol, [lender, hook_account, (hook_account, 1)])

    hook.token.clear_hook()
    run_inner_directly(protocol, hook, inner, hook_account, lender, attacker)
    check_accounting(protocol, [lender, hook_account, (hook_account, 1)])


@pytest.mark.parametrize("inner", ["deposit", "batch", "transfer_collateral", "health"])
def test_hook_reentering_during_a_batch_is_blocked(protocol, hook, hook_account, lender, attacker, inner):
    """The outer call runs in the extension (delegatecall): the lock it holds
    must also block the engine's own functions, and the extension's."""
    last_before = arm(protocol, hook, inner, lender, attacker)
    protocol.fund(lender, hook, hook.units(100))
    calls_before = hook.token.hook_calls()

    with boa.env.prank(lender):
        protocol.engine.batch(
            [(0, hook.address, hook.units(100), ZERO, 0), (1, hook.address, hook.units(30), lender, 0)]
        )

    assert protocol.engine.position(lender, 0, hook.address) == (hook.units(70), 0)
    assert hook.token.balanceOf(lender) == hook.units(30)
    # The hook fires on each of the two transfers; both re-entries fail.
    assert hook.token.hook_calls() == calls_before + 2
    assert hook.token.last_hook_success() is False
    assert hook.token.last_hook_return() == b""
    assert_inner_had_no_effect(protocol, hook, inner, hook_account, attacker, last_before)
    check_accounting(protocol, [lender, hook_account, (hook_account, 1)])


def test_hook_reentering_during_repay_is_blocked(protocol, weth, hook, hook_account, lender, borrower):
    """Repay pulls tokens through transferFrom too: a re-entrant borrow from
    inside it must fail while the repay completes."""
    deposit(protocol, lender, hook, hook.units(1_000))
    deposit(protocol, borrower, weth, weth.units(1))
    with boa.env.prank(borrower):
        protocol.engine.borrow(hook.address, hook.units(100))
        hook.token.approve(protocol.engine.address, MAX_UINT)
    # The token account has 5 HOOK collateral at $1 (4 USD of initial borrowing power).
    hook.token.set_hook(protocol.engine.address, protocol.engine.borrow.prepare_calldata(hook.address, hook.units(1)))

    with boa.env.prank(borrower):
        assert protocol.engine.repay(hook.address, MAX_UINT) == hook.units(100)
    assert hook.token.last_hook_success() is False
    assert hook.token.last_hook_return() == b""  # the re-entrancy lock: a revert without reason
    assert protocol.engine.position(hook_account, 0, hook.address) == (hook.units(5), 0)
    assert protocol.engine.position(borrower, 0, hook.address) == (0, 0)
    check_accounting(protocol, [lender, borrower, hook_account])

    hook.token.clear_hook()
    with boa.env.prank(hook_account):  # on its own the same borrow works
        assert protocol.engine.borrow(hook.address, hook.units(1)) == hook.units(1)
    check_accounting(protocol, [lender, borrower, hook_account])
