"""Protocol-level differential tests: random states executed on the real
engine (tests/protocol.py), checked against keeper.risk_model.

* test_health_matches_engine: the model, fed only the engine's raw getters
  (asset_state, position, account_header, feed latestRoundData), gives
  exactly engine.health (initial, maintenance, prices_valid) and
  lens.healths (incl. liquidation_end and ratio), lens.balances and
  lens.market; every action's success/revert reason and return value is
  predicted by the model's action simulation.
* test_event_replay_rebuilds_accounts: the engine's logs alone (Deposit,
  Withdraw, Borrow, Repay, TransferCollateral, InterestAccrued, Liquidation,
  CollateralForfeited, LossSocialised, BadDebtSettled), replayed into a
  replica seeded with the initial asset words, end with the same shares,
  bitmaps, risk blocks and indexes as the engine; every index an event
  carries equals the replica's (strict replay).
"""

from __future__ import annotations

import boa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper import risk_model as rm
from tests.protocol import MAX_UINT

from .helpers import examples, fixture_ok
from .scenario import Run, deploy_world


@pytest.fixture
def world():
    return deploy_world()


@fixture_ok(max_examples=examples(200))
@given(data=st.data())
def test_health_matches_engine(world, data):
    run = Run(world, data)
    run.configure()
    for _ in range(data.draw(st.integers(2, 6), "n_steps")):
        run.step()
    run.do_warp()
    run.check_against_engine()


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
