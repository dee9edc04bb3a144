"""Faults 4-6 (issue 4): a dropped transaction / nonce gap, a base-fee
spike, and a competing liquidator that wins the race."""

from __future__ import annotations

import pytest
from eth_abi import decode, encode

from scripts._xmargin_sim.chain import MAX_UINT
from tests.keeper.faults.checks import liquidated_by, no_duplicates, no_errors

GWEI = 10**9
LIQUIDATE_ARGS = ["address", "uint8", "address", "uint256", "address", "uint256", "address", "bytes"]


def keeper_liquidations(sc, keeper) -> list:
    """Forwarded liquidation transactions of the keeper, in send order."""
    engine = sc.sim.record.engine.lower()
    return [t for t in sc.proxy.raw_transactions if t.forwarded and t.to == engine and t.sender == keeper.keeper.address]


def test_dropped_transactions_are_rebroadcast(scenario):
    """The node loses every pending liquidation of the keeper
    (`anvil_dropTransaction`; anvil also drops the higher nonces of a
    dropped one). The keeper notices that the node no longer knows them and
    re-broadcasts the same signed bytes (same nonces): all are mined within
    3 blocks."""
    sc = scenario
    keeper = sc.keeper()
    start = sc.head() + 1
    sc.drop_price("WETH", "0.80")
    expected = set(sc.liquidatable())
    sent = keeper_liquidations(sc, keeper)
    assert len(sent) == len(expected)
    for tx in sent:
        sc.node.rpc.call("anvil_dropTransaction", tx.hash)
    status = sc.node.rpc.call("txpool_status")
    assert int(status["pending"], 16) + int(status["queued"], 16) == 0
    cleared = sc.head()
    liquidated_by(sc, keeper, expected, cleared, start)
    assert sc.liquidatable() == []
    assert {t.hash for t in sent} <= {t.hash for t in sc.proxy.resends()}  # same bytes again
    no_duplicates(sc, start)
    no_errors(keeper)


def test_nonce_gap_from_a_lost_broadcast(scenario):
    """The keeper's first liquidation broadcast is lost in transit (the
    connection drops before the node sees it): every later nonce waits in
    the node's queue behind the gap. The keeper fills the gap by
    re-broadcasting the lost nonce; everything is mined within 3 blocks."""
    sc = scenario
    keeper = sc.keeper()
    start = sc.head() + 1
    sc.proxy.inject("eth_sendRawTransaction", "drop", count=1)
    sc.drop_price("WETH", "0.80")
    expected = set(sc.liquidatable())
    assert sc.proxy.injected("eth_sendRawTransaction") == 1
    status = sc.node.rpc.call("txpool_status")
    assert int(status["pending"], 16) == 0 and int(status["queued"], 16) >= 1  # the gap
    cleared = sc.head()
    liquidated_by(sc, keeper, expected, cleared, start)
    assert sc.liquidatable() == []
    no_duplicates(sc, start)
    no_errors(keeper)


def test_base_fee_spike_skips_then_liquidates(scenario):
    """At a 1,000,000 gwei base fee, gas costs more than any bonus (about
    $800k per liquidation): the keeper skips every candidate as
    unprofitable and sends nothing. Once
    the base fee is back to 1 gwei, all are liquidated within 3 blocks."""
    sc = scenario
    # no fee ceiling below the spike: the profit check sees the real gas price
    keeper = sc.keeper(gas={"max_fee_gwei": "100000000"})
    start = sc.head() + 1
    sc.node.rpc.call("anvil_setNextBlockBaseFeePerGas", hex(10**6 * GWEI))
    sc.drop_price("WETH", "0.80")
    expected = set(sc.liquidatable())
    sc.step(keeper, blocks=2)  # the base fee only decays 12.5% per empty block
    assert keeper_liquidations(sc, keeper) == []
    skipped = {e["account"] for e in keeper.logs.entries if e.get("event") == "liquidation_skipped" and e.get("reason") == "unprofitable"}
    assert skipped == {f"{o}:{s}" for o, s in expected} or {a.lower() for a in skipped} == {f"{o}:{s}".lower() for o, s in expected}
    sc.node.rpc.call("anvil_setNextBlockBaseFeePerGas", hex(GWEI))
    cleared = sc.head()
    liquidated_by(sc, keeper, expected, cleared, start)
    assert sc.liquidatable() == []
    no_duplicates(sc, start)
    no_errors(keeper)


def test_competitor_wins_the_race_without_retry_storm(scenario):
    """A competitor copies each pooled liquidation of the keeper (its own
    receiver) with a 100 gwei tip, so it is mined first; the keeper's
    transactions revert. The keeper backs off: no new liquidation
    transaction in the following blocks, nothing left liquidatable."""
    sc = scenario
    competitor = "0x000000000000000000000000000000000000C0DE"
    sc.sim.fund(competitor, {"USDC": 10**15, "WETH": 10**24, "WBTC": 10**13}, approve=True)
    keeper = sc.keeper()
    start = sc.head() + 1
    sc.drop_price("WETH", "0.80")
    expected = set(sc.liquidatable())
    sent = keeper_liquidations(sc, keeper)
    assert len(sent) == len(expected)
    selector = sent[0].data[:10]
    for tx in sent:
        args = list(decode(LIQUIDATE_ARGS, bytes.fromhex(tx.data[10:])))
        args[6] = competitor
        data = selector + encode(LIQUIDATE_ARGS, args).hex()
        sc.node.rpc.call("eth_sendTransaction", {
            "from": competitor, "to": sc.sim.record.engine, "data": data, "gas": hex(1_500_000),
            "maxPriorityFeePerGas": hex(100 * GWEI), "maxFeePerGas": hex(1_000 * GWEI),
        })
    head = sc.step(keeper)
    block = sc.node.rpc.call("eth_getBlockReceipts", hex(head))
    by_sender = {}
    for r in block:
        by_sender.setdefault(r["from"].lower(), []).append(int(r["status"], 16))
    assert by_sender[competitor.lower()] == [1] * len(sent)
    assert by_sender[keeper.keeper.address.lower()] == [0] * len(sent)  # all lost the race
    assert sc.liquidated_refs(start) == expected and sc.liquidatable() == []
    sends = sc.proxy.count("eth_sendRawTransaction")
    sc.step(keeper, blocks=5)
    assert sc.proxy.count("eth_sendRawTransaction") == sends  # no retry storm
    lost = {e["account"] for e in keeper.logs.entries if e.get("event") == "liquidation_lost_backoff"}
    assert len(lost) == len(expected)
    no_duplicates(sc, start, keeper_sent=False)
    no_errors(keeper)
