"""Liquidation differential test: a skeleton that reliably reaches
liquidations (collateral, a lender, a borrow near the limit, interest, a
price crash), with random parameters, repay amounts and minimums. Every
liquidation's success or revert reason, (repaid, seized), and Liquidation
event fields (shares, insurance cut, bonus) must equal the model's
(ProtocolReplica.liquidate -> liquidation_plan / plan_for), as must a
following settle_bad_debt, the healths and lens.preview_liquidation; the
engine's logs replayed into a second replica rebuild the same state.
"""

from __future__ import annotations

import boa
from hypothesis import given
from hypothesis import strategies as st

from keeper import risk_model as rm
from tests.protocol import MAX_UINT

from .helpers import examples, fixture_ok
from .scenario import ASSET_KINDS, Run

WAD = rm.WAD


@fixture_ok(max_examples=examples(100))
@given(data=st.data())
def test_liquidation_matches_model(world, data):
    run = Run(world, data)
    run.configure(n_assets=2, plain=True)
    coll, debt = data.draw(st.permutations(run.chosen), "roles")
    user, lender = world.users
    dec_c, dec_d = ASSET_KINDS[coll][0], ASSET_KINDS[debt][0]
    run.deposit(lender, 0, debt, data.draw(st.integers(1, 10**6), "liquidity") * 10 ** (dec_d + 2))
    run.deposit(user, 0, coll, data.draw(st.integers(1, 10**6), "collateral") * 10**dec_c)
    if data.draw(st.booleans(), "second_collateral"):  # the debt asset as collateral too
        run.deposit(user, 0, debt, data.draw(st.integers(1, 10**4), "collateral2") * 10**dec_d)
    limit = run.borrow_limit(user, 0, debt)
    run.borrow(user, 0, debt, max(1, limit * data.draw(st.integers(900, 1_000), "use") // 1_000))
    boa.env.time_travel(seconds=data.draw(st.integers(0, 90 * 86400), "interest"))
    for i in run.chosen:  # fresh rounds after the warp
        run.asset(i).feed.set_answer(run.answers[i])
    run.read_rounds(run.chosen)
    run.do_crash()  # the collateral falls until the model says liquidatable; a block passes
    for n in range(data.draw(st.integers(1, 3), "liquidations")):
        acc = run.sim.account(user, 0)
        if not acc.header.debt_bitmap:
            break
        r = data.draw(st.sampled_from([i for i in run.chosen if acc.header.debt_bitmap >> i & 1]), f"repay{n}")
        deposits = [i for i in run.chosen if acc.header.deposit_bitmap >> i & 1]
        z = data.draw(st.sampled_from(deposits if deposits and data.draw(st.integers(0, 4), f"z{n}") else run.chosen), f"seize{n}")
        owed = rm.mul_div_up(acc.position(r).borrow_shares, run.sim.markets[r].indexes_now(run.now())[1], WAD)
        amount = data.draw(
            st.one_of(st.just(MAX_UINT), st.integers(1, max(1, owed)), st.integers(1, 1_000)), f"amount{n}"
        )
        min_seize = data.draw(st.one_of(st.just(0), st.integers(0, 10 ** (ASSET_KINDS[z][0] + 6))), f"min_seize{n}")
        run.liquidate(world.liquidator, user, 0, r, z, amount, min_seize)
    h = run.sim.account(user, 0).header
    if h.debt_bitmap and (not h.deposit_bitmap or data.draw(st.booleans(), "try_settle")):
        run.do_settle((user, 0))
    run.do_warp()
    rebuilt = run.check_against_engine()
    # the logs (Liquidation, CollateralForfeited, LossSocialised, BadDebtSettled, ...) rebuild the state too
    run.assert_same_state(run.replay, rebuilt, world.accounts)
