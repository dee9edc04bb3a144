"""Contract issues found by the differential tests, kept as regression
tests once fixed (open ones are pinned as strict xfails)."""

from __future__ import annotations

import boa


def test_lens_max_borrow_checks_the_borrowed_assets_price(world):
    """Regression: lens.max_borrow returns 0 when the borrowed asset's own
    price is rejected, also when the account does not hold that asset yet
    (it once returned the whole liquidity while engine.borrow reverted
    "oracle: non-positive price")."""
    p = world.protocol
    collateral, debt = world.assets[0], world.assets[1]
    user, lender = world.users
    with boa.env.prank(p.owner):
        p.configurator.set_risk_params(collateral.address, (8 * 10**17, 9 * 10**17, 12 * 10**17, 11 * 10**17, 3600, 0, 1, 2**64 - 1))
        p.configurator.set_risk_params(debt.address, (8 * 10**17, 9 * 10**17, 12 * 10**17, 11 * 10**17, 3600, 0, 1, 2**64 - 1))
    with boa.env.prank(user):
        p.engine.deposit(collateral.address, 1_000 * 10**6)  # T0: 6 decimals, $1
    with boa.env.prank(lender):
        p.engine.deposit(debt.address, 10_000 * 10**8)  # T1: 8 decimals, $1
    debt.feed.set_answer(0)  # rejected: non-positive
    amount = p.lens.max_borrow(user, 0, debt.address)
    with boa.reverts("oracle: non-positive price"):
        with boa.env.prank(user):
            p.engine.borrow(debt.address, max(amount, 1))
    assert amount == 0
