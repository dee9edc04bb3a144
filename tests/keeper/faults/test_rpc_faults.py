"""Faults 1-2 (issue 4): a failing node (JSON-RPC errors, timeouts, HTTP
429/500) and a dropped websocket, injected by the chaos proxy between the
in-process keeper and anvil."""

from __future__ import annotations

from tests.keeper.faults.checks import liquidated_by, no_duplicates, no_errors


def test_rpc_errors_timeouts_and_429s(scenario):
    """An outage (every request answered 429, websockets refused) spans the
    price drop; when it ends, a burst of one-shot faults hits the reads and
    the send path. Every liquidatable account is still liquidated within 3
    blocks of the outage's end, once each."""
    sc = scenario
    keeper = sc.keeper()
    start = sc.head() + 1
    with sc.proxy.outage("http429"):
        sc.drop_price("WETH", "0.80", wait=False)
        expected = set(sc.liquidatable())
        sc.step(blocks=2, wait=False)  # the keeper cannot see these blocks
        assert sc.proxy.injected() > 0 and sc.liquidated_refs(start) == set()
    cleared = sc.head()
    sc.proxy.inject("eth_getLogs", "error", count=2)
    sc.proxy.inject("eth_call", "timeout", count=1)
    sc.proxy.inject("eth_estimateGas", "rate_limit", count=2)
    sc.proxy.inject("eth_sendRawTransaction", "http500", count=1)  # never reaches the node
    sc.proxy.inject(None, "http429", count=3)
    liquidated_by(sc, keeper, expected, cleared, start)
    assert sc.liquidatable() == []
    no_duplicates(sc, start)
    no_errors(keeper)
    assert sc.proxy.injected("eth_getLogs") >= 2 and sc.proxy.injected("eth_sendRawTransaction") == 1


def test_websocket_drop_falls_back_to_polling(scenario):
    """The websocket is cut and refused while prices drop: heads come from
    HTTP polling, liquidations go out within 3 blocks, and the keeper
    subscribes again once websockets are back."""
    sc = scenario
    keeper = sc.keeper(ws=True)
    assert sc.proxy.live_websockets >= 1
    connections = sc.proxy.ws_connections
    sc.proxy.refuse_websockets(True)
    assert sc.proxy.drop_websockets() >= 1
    start = sc.head() + 1
    sc.drop_price("WETH", "0.80")
    expected = set(sc.liquidatable())
    liquidated_by(sc, keeper, expected, sc.head(), start)
    assert sc.proxy.live_websockets == 0
    sc.proxy.refuse_websockets(False)
    for _ in range(40):  # the keeper's reconnect back-off is at most 10 s
        if sc.proxy.live_websockets:
            break
        sc.step(keeper)
        import time

        time.sleep(0.25)
    assert sc.proxy.ws_connections > connections and sc.proxy.live_websockets >= 1
    no_duplicates(sc, start)
    no_errors(keeper)
