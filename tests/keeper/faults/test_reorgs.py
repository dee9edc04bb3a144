"""Fault 3 (issue 4): reorgs of depth 1-3 (`anvil_reorg`, which replaces the
last blocks with empty ones and, like anvil, sends no `removed` logs) that
remove a price update or a mined liquidation."""

from __future__ import annotations

import pytest

from tests.keeper.faults.checks import liquidated_by, no_duplicates, no_errors


def reorg(sc, depth: int) -> None:
    head = sc.head()
    sc.node.rpc.call("anvil_reorg", depth, [])
    assert sc.head() == head  # same height, new blocks


@pytest.mark.parametrize("depth", [1, 3])
def test_reorg_removes_mined_liquidations(scenario, depth):
    """The liquidations are mined, then a reorg of `depth` blocks drops them
    (the price update stays). The keeper notices the new hashes, rolls its
    replica back and gets the same liquidations mined again -- under the
    same nonces -- within 3 blocks of the reorg."""
    sc = scenario
    keeper = sc.keeper()
    start = sc.head() + 1
    price_block = sc.drop_price("WETH", "0.80")
    expected = set(sc.liquidatable())
    mined_at = liquidated_by(sc, keeper, expected, price_block, start)
    assert {int(b, 16) for b in _event_blocks(sc, start)} == {mined_at}
    sc.step(keeper, blocks=depth - 1)
    reorg(sc, depth)  # blocks mined_at .. mined_at+depth-1 are now empty
    assert sc.liquidated_refs(start) == set() and set(sc.liquidatable()) == expected
    cleared = sc.head()
    liquidated_by(sc, keeper, expected, cleared, start)
    assert sc.liquidatable() == []
    no_duplicates(sc, start)
    no_errors(keeper)
    assert any(e["event"] == "reorg_detected" for e in keeper.logs.entries)


@pytest.mark.parametrize("depth", [1, 2])
def test_reorg_removes_the_price_update(scenario, depth):
    """The price drop is reorged out after the keeper acted on it (its
    liquidations are pending, depth 1, or mined, depth 2). Prices are back
    up: nothing is liquidatable. When the drop is published again, every
    liquidatable account is liquidated within 3 blocks, once on chain."""
    sc = scenario
    keeper = sc.keeper()
    start = sc.head() + 1
    sc.drop_price("WETH", "0.80")  # the keeper has handled the block: liquidations pooled
    expected = set(sc.liquidatable())
    sc.step(keeper, blocks=depth - 1)  # depth 2: the liquidations are mined
    assert len(sc.liquidated_refs(start)) == (len(expected) if depth == 2 else 0)
    reorg(sc, depth)
    assert sc.liquidatable() == [] and sc.liquidated_refs(start) == set()
    sc.step(keeper, blocks=2)  # liquidations still pooled (depth 1) are mined and revert
    assert sc.liquidated_refs(start) == set()
    sc.drop_price("WETH", "0.80")
    assert set(sc.liquidatable()) == expected
    liquidated_by(sc, keeper, expected, sc.head(), start)
    assert sc.liquidatable() == []
    assert not [k for k, n in _counts(sc.liquidation_events(start)).items() if n > 1]
    no_errors(keeper)
    assert any(e["event"] == "reorg_detected" for e in keeper.logs.entries)


def _event_blocks(sc, start):
    flt = {"fromBlock": hex(start), "toBlock": "latest", "address": sc.sim.record.engine,
           "topics": [sc.sim.engine.events.Liquidation().topic]}
    return [e["blockNumber"] for e in sc.node.rpc.call("eth_getLogs", flt)]


def _counts(items):
    from collections import Counter

    return Counter(items)
