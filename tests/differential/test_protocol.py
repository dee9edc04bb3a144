"""Protocol-level differential tests: random states executed on the real
engine (tests/protocol.py), checked against keeper.risk_model.

* test_health_matches_engine: the model, fed only the engine's raw getters
  (asset_state, position, account_header, feed latestRoundData), gives
  exactly engine.health (initial, maintenance, prices_valid) and
  lens.healths (incl. liquidation_end and ratio), lens.balances,
  lens.market and lens.preview_liquidation; every action's success or
  revert reason, return value and event fields (deposit, withdraw, borrow,
  repay, transfer, accrue, liquidate, settle_bad_debt) is predicted by the
  model's action simulation, and the replica it drives equals one rebuilt
  from the raw getters. A third of the examples end with a price crash of the
  weakest debtor's collateral and a liquidation attempt.

The event-replay test is in test_event_replay.py; known contract issues
found by these tests are pinned in test_known_issues.py.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from .helpers import examples, fixture_ok
from .scenario import Run


@fixture_ok(max_examples=examples(200))
@given(data=st.data())
def test_health_matches_engine(world, data):
    run = Run(world, data)
    run.configure()
    for _ in range(data.draw(st.integers(1, 4), "n_steps")):
        run.step()
    if data.draw(st.integers(0, 2), "liquidation_phase") == 0:  # (test_liquidation.py goes deeper)
        run.do_liquidation_phase()  # near-max borrow if needed, price crash, liquidation
    run.do_warp()
    run.check_against_engine()
