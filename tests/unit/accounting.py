"""Accounting helpers for the account-level unit tests (test_accounts_*.py).

`check_accounting(protocol, accounts)` asserts the engine's bookkeeping
invariants for every listed asset:

  * solvency: token.balanceOf(engine) >= total deposits - total borrows, i.e.
    the insurance fund is never negative; checked both at the stored indexes
    and at the indexes accrued to now (lens.market), and the lens's
    insurance_fund must equal balance - total deposits + total borrows;
  * share conservation: the deposit/borrow shares of all `accounts` sum to
    the totals word of engine.asset_state(id) (low 128 bits deposit shares,
    high 128 bits borrow shares) -- so `accounts` must list EVERY sub-account
    the test touched;
  * header bitmaps: bit i of an account's deposit (debt) bitmap is set
    exactly when it holds deposit (borrow) shares of asset id i.

Also small integer-math helpers that mirror contracts/modules/fixed_point.vy,
so tests can write out expected values exactly.
"""

from __future__ import annotations

from typing import Iterable

WAD = 10**18
MAX_UINT = 2**256 - 1
MASK96 = 2**96 - 1
MASK128 = 2**128 - 1
MASK40 = 2**40 - 1
MASK60 = 2**60 - 1


def mul_div_down(x: int, y: int, d: int) -> int:
    return x * y // d


def mul_div_up(x: int, y: int, d: int) -> int:
    return -(-(x * y) // d)


def events(contract, name: str) -> list:
    """Decoded logs named `name` of the LAST top-level call on `contract`
    (child-contract logs, e.g. token Transfers, are included by boa and
    filtered out here by name)."""
    return [e for e in contract.get_logs() if type(e).__name__ == name]


def only_event(contract, name: str):
    found = events(contract, name)
    assert len(found) == 1, f"expected exactly one {name} event, got {found}"
    return found[0]


def totals(engine, asset_id: int) -> tuple[int, int]:
    """(total deposit shares, total borrow shares) from the packed totals word."""
    word = engine.asset_state(asset_id).totals
    return word & MASK128, word >> 128


def stored_indexes(engine, asset_id: int) -> tuple[int, int]:
    """(deposit index, borrow index) as stored (not accrued to now)."""
    state = engine.asset_state(asset_id)
    return state.market_a & MASK96, state.market_b & MASK96


def last_accrual(engine, asset_id: int) -> int:
    return (engine.asset_state(asset_id).market_b >> 96) & MASK40


def _normalise(accounts: Iterable) -> list[tuple[str, int]]:
    out = []
    for acct in accounts:
        if isinstance(acct, tuple):
            owner, sub_id = acct
        else:
            owner, sub_id = acct, 0
        key = (str(owner), int(sub_id))
        if key not in out:
            out.append(key)
    return out


def check_accounting(protocol, accounts: Iterable) -> dict[str, int]:
    """Asserts the invariants above. `accounts`: owners (sub-account 0) or
    (owner, sub_id) tuples -- every sub-account the test used.
    Returns {symbol: insurance fund at the indexes accrued to now}."""
    engine = protocol.engine
    accts = _normalise(accounts)
    funds = {}
    for symbol, asset in protocol.assets.items():
        deposit_shares, borrow_shares = totals(engine, asset.id)

        sum_deposit = sum_borrow = 0
        for owner, sub_id in accts:
            d, b = engine.position(owner, sub_id, asset.address)
            sum_deposit += d
            sum_borrow += b
            deposit_bits, debt_bits, _ = engine.account_header(owner, sub_id)
            assert bool(deposit_bits >> asset.id & 1) == (d != 0), (
                f"{symbol}: deposit bit of {owner}/{sub_id} disagrees with {d} deposit shares"
            )
            assert bool(debt_bits >> asset.id & 1) == (b != 0), (
                f"{symbol}: debt bit of {owner}/{sub_id} disagrees with {b} borrow shares"
            )
        assert sum_deposit == deposit_shares, f"{symbol}: account deposit shares {sum_deposit} != total {deposit_shares}"
        assert sum_borrow == borrow_shares, f"{symbol}: account borrow shares {sum_borrow} != total {borrow_shares}"

        balance = asset.token.balanceOf(engine.address)

        # At the stored indexes.
        di, bi = stored_indexes(engine, asset.id)
        stored_deposits = mul_div_down(deposit_shares, di, WAD)
        stored_borrows = mul_div_up(borrow_shares, bi, WAD)
        assert balance + stored_borrows >= stored_deposits, f"{symbol}: insolvent at stored indexes"

        # Accrued to now (lens).
        m = protocol.lens.market(asset.address)
        assert m.deposit_shares == deposit_shares and m.borrow_shares == borrow_shares
        assert m.insurance_fund == balance + m.total_borrows - m.total_deposits
        assert m.insurance_fund >= 0, f"{symbol}: negative insurance fund {m.insurance_fund}"
        assert m.deposit_index >= di and m.borrow_index >= bi, f"{symbol}: index fell"
        funds[symbol] = m.insurance_fund
    return funds
