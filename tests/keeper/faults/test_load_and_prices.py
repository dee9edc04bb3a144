"""Faults 9-11 (issue 4): 1,000 accounts liquidatable at once, a dry run
that must never broadcast, and a stale or zero price from the feed."""

from __future__ import annotations

import pytest

from scripts._xmargin_sim.seed import seeded_state
from tests.keeper.conftest import MASS_POPULATION, start_scenario, stop_scenario
from tests.keeper.faults.checks import liquidated_by, no_duplicates, no_errors
from tests.keeper.harness.keeper_driver import events


@pytest.fixture
def mass_scenario(tmp_path, keeper_account):
    # 1,000+ liquidations do not fit a 30M-gas block: this chain allows 2,000M per block
    sc = start_scenario(seeded_state(**MASS_POPULATION), tmp_path, keeper_account, gas_limit=2_000_000_000)
    yield sc
    stop_scenario(sc)


def test_a_thousand_accounts_liquidatable_at_once(mass_scenario):
    """ETH -20% makes every leveraged ETH long (leverage 0.93-0.97) of a
    1,100-account population liquidatable in one block: all are liquidated
    within 3 blocks, once each."""
    sc = mass_scenario
    keeper = sc.keeper(strategy={"max_candidates_per_block": 5_000})
    start = sc.head() + 1
    receipt = sc.sim.set_price("WETH", sc.sim.price("WETH") * 8 / 10)
    price_block = int(receipt["blockNumber"], 16)
    expected = set(sc.liquidatable())
    assert len(expected) >= 1_000
    keeper.wait_step(price_block, timeout=600)
    liquidated_by(sc, keeper, expected, price_block, start, step_timeout=600)
    assert sc.liquidatable() == []
    no_duplicates(sc, start)
    no_errors(keeper)


def test_dry_run_never_broadcasts(scenario):
    """Paper mode without a key: the keeper plans and simulates every
    liquidation (logged with dry_run=true) but the proxy sees zero
    eth_sendRawTransaction, and the accounts stay liquidatable."""
    sc = scenario
    keeper = sc.keeper(with_key=False, strategy={"dry_run": True})
    sc.drop_price("WETH", "0.80")
    expected = set(sc.liquidatable())
    sc.step(keeper, blocks=3)
    assert sc.proxy.count("eth_sendRawTransaction") == 0
    assert set(sc.liquidatable()) == expected
    planned = {e["account"].lower() for e in events(keeper.logs.entries, "liquidation_candidate") if e["dry_run"]}
    assert planned == {f"{o}:{s}".lower() for o, s in expected}
    no_errors(keeper)


@pytest.mark.parametrize("bad", ["zero", "stale"])
def test_stale_or_zero_price_blocks_liquidation_until_fixed(scenario, bad):
    """The ETH feed reports 0 (below the listing's min price) or a dropped
    price older than max_staleness (24 h): the engine rejects the price,
    so nothing is sent (no doomed transaction). Once the feed publishes a
    valid dropped price, all are liquidated within 3 blocks."""
    sc = scenario
    keeper = sc.keeper()
    start = sc.head() + 1
    feed = sc.sim.feeds["WETH"]
    dropped = feed.functions.latestAnswer().call() * 8 // 10
    if bad == "zero":
        sc.sim.set_round("WETH", 0, sc.sim.timestamp(), sc.sim.timestamp())
    else:
        old = sc.sim.timestamp() - 86_400 - 600
        sc.sim.set_round("WETH", dropped, old, old)
    keeper.wait_step(sc.head())
    healths = sc.sim.healths(sc.borrower_refs)
    assert any(not h[4] for h in healths)  # ETH holders' prices are rejected
    assert sc.liquidatable() == []
    sc.step(keeper, blocks=3)
    assert sc.proxy.count("eth_sendRawTransaction") == sc.proxy.forwarded("eth_sendRawTransaction") == _approvals(sc, keeper)
    sc.sim.set_round("WETH", dropped, sc.sim.timestamp(), sc.sim.timestamp())
    fixed = sc.head()
    keeper.wait_step(fixed)
    expected = set(sc.liquidatable())
    assert expected
    liquidated_by(sc, keeper, expected, fixed, start)
    assert sc.liquidatable() == []
    no_duplicates(sc, start)
    no_errors(keeper)


def _approvals(sc, keeper) -> int:
    """Transactions the keeper sent at startup (token approvals)."""
    return len([t for t in sc.proxy.raw_transactions if t.to != sc.sim.record.engine.lower()])
