"""Event replay: the engine's logs alone rebuild every account.

The engine's logs (Deposit, Withdraw, Borrow, Repay, TransferCollateral,
InterestAccrued, Liquidation, CollateralForfeited, LossSocialised,
BadDebtSettled), replayed after each call into a keeper.risk_model replica
seeded with the asset words at the start, end with exactly the engine's
shares, bitmaps, risk blocks and indexes; every index an event carries must
equal the replica's accrued index at that point (strict replay: an accrual
missing from the logs would raise ReplicaDesync).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from .helpers import examples, fixture_ok
from .scenario import Run


@fixture_ok(max_examples=examples(100))
@given(data=st.data())
def test_event_replay_rebuilds_accounts(world, data):
    run = Run(world, data)
    run.configure()
    for _ in range(data.draw(st.integers(3, 14), "n_steps")):
        run.step()
    run.do_warp()
    rebuilt = run.check_against_engine(views=False)
    # the events alone give the engine's shares, bitmaps, risk blocks and indexes
    run.assert_same_state(run.replay, rebuilt, world.accounts)
