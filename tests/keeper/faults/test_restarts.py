"""Faults 7-8 (issue 4): `kill -9` of a keeper process with liquidations in
flight, then a restart; and a late start after a crash while the chain moved
on. The keeper runs as a real subprocess (`python -m keeper run`) with a
keystore and its sqlite store, talking through the chaos proxy."""

from __future__ import annotations

import time

from tests.keeper.faults.checks import liquidated_by, no_duplicates, no_errors
from tests.keeper.harness.keeper_driver import SubprocessKeeper, events, write_keeper_files


def start_process(sc, log_name: str) -> SubprocessKeeper:
    config, env = write_keeper_files(sc.tmp / "keeper", sc.proxy.url, sc.state.record_path, rpc_ws=sc.proxy.ws_url)
    proc = SubprocessKeeper(config, env, sc.tmp / log_name).start()
    proc.wait_started()
    return proc


def settle(sc, proc: SubprocessKeeper, blocks: int = 3) -> None:
    for _ in range(blocks):
        proc.wait_processed(sc.node.mine(1))


def wait_liquidation_sends(sc, proc: SubprocessKeeper, count: int, timeout: float = 60.0) -> list:
    engine = sc.sim.record.engine.lower()
    deadline = time.monotonic() + timeout
    while True:
        sent = [t for t in sc.proxy.raw_transactions if t.forwarded and t.to == engine]
        if len(sent) >= count:
            return sent
        assert time.monotonic() < deadline, f"the keeper sent {len(sent)} of {count} liquidations"
        time.sleep(0.05)


def test_kill9_mid_flight_then_restart(scenario):
    """SIGKILL right after the keeper broadcast its liquidations. The node
    then mines the lower half and loses the upper half (dropped from the
    pool). The restarted keeper resolves the mined ones from its store,
    re-broadcasts the lost ones with their original bytes and nonces, and
    every account is liquidated once, within 3 blocks of the restart."""
    sc = scenario
    first = start_process(sc, "keeper-1.log")
    settle(sc, first)
    start = sc.head() + 1
    sc.drop_price("WETH", "0.80", wait=False)
    expected = set(sc.liquidatable())
    sent = wait_liquidation_sends(sc, first, len(expected))
    first.kill9()
    middle = sorted(sent, key=lambda t: t.nonce)[len(sent) // 2]
    sc.node.rpc.call("anvil_dropTransaction", middle.hash)  # anvil drops the higher nonces with it
    sc.node.mine(1)
    mined = sc.liquidated_refs(start)
    assert 0 < len(mined) < len(expected)
    no_errors(first.entries())

    second = start_process(sc, "keeper-2.log")
    restarted = sc.head()
    entries = second.entries()
    assert events(entries, "resumed_from_store")
    assert len(events(entries, "rebroadcast_after_restart")) >= len(expected) - len(mined)
    liquidated_by(sc, second, expected, restarted, start)
    assert sc.liquidatable() == []
    no_duplicates(sc, start)
    no_errors(second.entries())
    assert second.terminate() == 0


def test_late_start_after_crash(scenario):
    """The keeper is killed while idle; the price drops and 10 blocks pass
    before it is started again. It resumes from its store (catching up the
    missed blocks from logs) and liquidates everything within 3 blocks of
    its start."""
    sc = scenario
    first = start_process(sc, "keeper-1.log")
    settle(sc, first)
    first.kill9()
    start = sc.head() + 1
    sc.node.mine(4)
    sc.drop_price("WETH", "0.80", wait=False)
    expected = set(sc.liquidatable())
    sc.node.mine(5)
    assert sc.liquidated_refs(start) == set()

    second = start_process(sc, "keeper-2.log")
    restarted = sc.head()
    assert events(second.entries(), "resumed_from_store")
    liquidated_by(sc, second, expected, restarted, start)
    assert sc.liquidatable() == []
    no_duplicates(sc, start)
    no_errors(second.entries())
    assert second.terminate() == 0
