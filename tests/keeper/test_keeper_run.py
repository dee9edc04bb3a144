"""The keeper end to end on anvil: a price drop is liquidated (inventory
mode) with exact amounts; dry run sends nothing; the sqlite store resumes
without a full resync; a reorg that removes the price update is rolled
back; the CLI `run` subprocess with a keystore liquidates and exits 0 on
SIGTERM, serving /metrics and /health."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from keeper.bot import Keeper
from keeper.keys import write_keystore
from tests.keeper.fixtures import (  # noqa: F401
    KEEPER,
    RunningKeeper,
    chain,
    fresh_chain,
    maintenance_health,
    open_borrower,
    settings_for,
    until,
)
from tests.keeper.localchain import KEEPER_KEY, free_port

ROOT = Path(__file__).resolve().parents[2]


def counter(metric, *labels) -> float:
    return (metric.labels(*labels) if labels else metric)._value.get()


def replica_health(keeper, dep, key, block: int) -> int:
    """The replica's maintenance health of ``key`` recomputed at ``block``'s time."""
    keeper.replica.recompute(dep.anvil.w3.eth.get_block(block)["timestamp"], [key])
    return keeper.replica.health[key].health


def liquidation_events(dep, from_block: int) -> list[dict]:
    return [dict(e["args"]) for e in dep.engine.events.Liquidation().get_logs(from_block=from_block)]


def test_price_drop_is_liquidated_once_with_the_planned_amounts(fresh_chain, tmp_path):
    dep = fresh_chain
    borrower = dep.anvil.accounts[1]
    open_borrower(dep, borrower)  # 10 WETH at 2000, 13,000 USDC debt
    dep.send(dep.tokens["USDC"].functions.mint(KEEPER.address, dep.units("USDC", 100_000)), dep.anvil.accounts[0])

    async def main():
        async with RunningKeeper(settings_for(dep, tmp_path)) as keeper:
            start = dep.anvil.head()
            assert keeper.replica.liquidatable == set()
            dep.set_price("WETH", 1500)  # maintenance: 10 * 1500 * 0.85 = 12,750 < 13,000 * 1.05
            await until(lambda: maintenance_health(dep, borrower) >= 0, timeout=30)
            await until(lambda: counter(keeper.metrics.liquidations_mined) == 1)
            events = liquidation_events(dep, start)
            assert len(events) == 1
            ev = events[0]
            assert ev["owner"] == borrower and ev["liquidator"] == KEEPER.address
            assert ev["repay_asset"] == dep.tokens["USDC"].address and ev["seize_asset"] == dep.tokens["WETH"].address
            # The keeper's plan (replica, at the head's time) is the engine's simulated result at
            # that block; the mined amounts differ only by one block of interest.
            sent = keeper.store.txs()[-1]
            assert sent.kind == "liquidation" and sent.status == "mined"
            assert int(sent.payload["repay"]) == int(sent.payload["simulated_repaid"])
            assert abs(ev["repaid"] - int(sent.payload["repay"])) * 10_000 <= ev["repaid"]
            assert ev["repaid"] <= dep.units("USDC", 13_000)
            # Back to the liquidation-end target: healthy, and no second send.
            for _ in range(3):
                dep.anvil.mine(1)
            await until(lambda: keeper.state.processed >= dep.anvil.head())
            assert counter(keeper.metrics.liquidations_sent) == 1
            key, block = (borrower.lower(), 0), keeper.state.processed
            assert replica_health(keeper, dep, key, block) == maintenance_health(dep, borrower, block=block) > 0
            assert counter(keeper.metrics.accounts_tracked) == 2  # the fixture's lender and the borrower
            assert counter(keeper.metrics.profit_usd_wad) > 0

    asyncio.run(main())


def test_dry_run_never_sends(fresh_chain, tmp_path):
    dep = fresh_chain
    borrower = dep.anvil.accounts[2]
    open_borrower(dep, borrower)
    dep.send(dep.tokens["USDC"].functions.mint(KEEPER.address, dep.units("USDC", 100_000)), dep.anvil.accounts[0])
    nonce = dep.anvil.w3.eth.get_transaction_count(KEEPER.address)

    async def main():
        settings = settings_for(dep, tmp_path, strategy={"dry_run": True})
        async with RunningKeeper(settings) as keeper:
            dep.set_price("WETH", 1500)
            await until(lambda: len(keeper.dispatcher.paper) >= 1, timeout=30)
            for _ in range(3):
                dep.anvil.mine(1)
            await until(lambda: keeper.state.processed >= dep.anvil.head())
            paper = keeper.dispatcher.paper
            assert {p["account"] for p in paper} == {f"{borrower.lower()}:0"}
            assert paper[0]["kind"] == "liquidation" and paper[0]["expected_profit_wei"] > 0
            assert counter(keeper.metrics.rpc_requests, "eth_sendRawTransaction") == 0
            assert counter(keeper.metrics.liquidations_sent) == 0

    asyncio.run(main())
    assert dep.anvil.w3.eth.get_transaction_count(KEEPER.address) == nonce
    assert maintenance_health(dep, borrower) < 0  # still liquidatable: nothing was sent


def test_store_resume_skips_the_full_sync(fresh_chain, tmp_path):
    dep = fresh_chain
    a, b = dep.anvil.accounts[3], dep.anvil.accounts[4]
    open_borrower(dep, a, usdc=5_000)

    async def main():
        settings = settings_for(dep, tmp_path, strategy={"dry_run": True})
        first = Keeper(settings, account=KEEPER)
        await first.startup()
        processed = first.state.processed
        await first.close()
        # while the keeper is down: a new borrower and a repayment
        open_borrower(dep, b, usdc=4_000, sub_id=2)
        dep.fund(a, "USDC", dep.units("USDC", 1_000))
        dep.send(dep.engine.functions.repay(dep.tokens["USDC"].address, dep.units("USDC", 1_000)), a)
        second = Keeper(settings, account=KEEPER)
        await second.startup()
        assert second.state.processed == processed  # resumed from the store, not rebuilt
        assert second.rpc.metrics.rpc_requests.labels("eth_getLogs")._value.get() == 0
        await second.process_to(dep.anvil.head())  # catch up (late start after a crash)
        keys = {(a.lower(), 0), (b.lower(), 2)}
        assert keys <= set(second.replica.accounts)
        for key in keys:
            acc = second.replica.accounts[key]
            block = second.state.processed
            assert replica_health(second, dep, key, block) == maintenance_health(dep, acc.owner, acc.sub_id, block)
        # the same state as a keeper rebuilt from scratch
        fresh = Keeper(settings_for(dep, tmp_path / "fresh", strategy={"dry_run": True}), account=KEEPER)
        await fresh.startup()
        await fresh.process_to(second.state.processed)
        assert {k: v.positions for k, v in fresh.replica.accounts.items()} == {k: v.positions for k, v in second.replica.accounts.items()}
        await second.close()
        await fresh.close()

    (tmp_path / "fresh").mkdir()
    asyncio.run(main())


def test_reorg_removing_the_price_update_is_rolled_back(fresh_chain, tmp_path):
    dep = fresh_chain
    borrower = dep.anvil.accounts[5]
    open_borrower(dep, borrower)

    async def main():
        keeper = Keeper(settings_for(dep, tmp_path, strategy={"dry_run": True}), account=KEEPER)
        await keeper.startup()
        try:
            dep.set_price("WETH", 1500)
            dep.anvil.mine(1)
            await keeper.process_to(dep.anvil.head())
            key = (borrower.lower(), 0)
            assert key in keeper.replica.liquidatable
            dep.anvil.call("anvil_reorg", 2, [])  # price update gone
            dep.anvil.mine(1)
            await keeper.process_to(dep.anvil.head())
            assert counter(keeper.metrics.reorgs) == 1
            assert key not in keeper.replica.liquidatable
            block = keeper.state.processed
            assert replica_health(keeper, dep, key, block) == maintenance_health(dep, borrower, block=block) > 0
            head = dep.anvil.w3.eth.get_block("latest")
            assert keeper.store.last_block() == (head["number"], "0x" + head["hash"].hex().removeprefix("0x"))
        finally:
            await keeper.close()

    asyncio.run(main())


def test_cli_run_liquidates_serves_metrics_and_stops_on_sigterm(fresh_chain, tmp_path):
    dep = fresh_chain
    borrower = dep.anvil.accounts[6]
    open_borrower(dep, borrower)
    dep.send(dep.tokens["USDC"].functions.mint(KEEPER.address, dep.units("USDC", 100_000)), dep.anvil.accounts[0])
    dep.write_record(tmp_path / "deployment.json")
    write_keystore(KEEPER_KEY, "pw-123", tmp_path / "keeper-keystore.json")
    port = free_port()
    (tmp_path / "keeper.toml").write_text(f"""
[chain]
rpc_http = "{dep.anvil.url}"
rpc_ws = "{dep.anvil.ws_url}"
[deployment]
record = "deployment.json"
[account]
keystore = "keeper-keystore.json"
password_env = "KEEPER_TEST_PASSWORD"
[strategy]
mode = "inventory"
[sync]
poll_interval = 0.2
[store]
db_path = "keeper.sqlite"
[metrics]
port = {port}
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("XMARGIN_KEEPER_")}
    env.update(KEEPER_TEST_PASSWORD="pw-123", PYTHONPATH=str(ROOT))
    log_path = tmp_path / "keeper.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "keeper", "run", "--config", str(tmp_path / "keeper.toml")],
                                env=env, stderr=log_file, stdout=subprocess.DEVNULL)
        try:
            health = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                        health = json.loads(r.read())
                    if health["status"] == "ok":
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            assert health is not None and health["status"] == "ok", health
            dep.set_price("WETH", 1500)
            deadline = time.monotonic() + 60
            while maintenance_health(dep, borrower) < 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert maintenance_health(dep, borrower) >= 0
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                metrics = r.read().decode()
            assert "xmargin_keeper_liquidations_mined_total 1.0" in metrics
            assert "xmargin_keeper_accounts_tracked" in metrics
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    assert code == 0, log_path.read_text()[-2000:]
    lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    events = [x["event"] for x in lines]
    assert "keeper_started" in events and "liquidation_candidate" in events
    assert sum(1 for x in lines if x["event"] == "tx_sent" and x["kind"] == "liquidation") == 1
    assert not any(x["level"] == "error" for x in lines)
    assert KEEPER_KEY[2:] not in log_path.read_text() and "pw-123" not in log_path.read_text()

    # `status` (store + node) and `scan` (one-shot report) on the same config
    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "keeper", *args, "--config", str(tmp_path / "keeper.toml"), "--json"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    status = cli("status")
    head = dep.anvil.head()
    assert status["chain_id"] == 31337 and status["engine"] == dep.engine.address.lower()
    assert status["head"] == head and status["lag"] == head - status["last_block"] >= 0
    assert status["accounts_tracked"] == 2 and status["in_flight"] == []
    assert [(t["kind"], t["status"]) for t in status["recent"]][-1] == ("liquidation", "mined")
    scan = cli("scan")
    assert scan["block"] == dep.anvil.head()
    rows = {(r["owner"], r["sub_id"]): r for r in scan["accounts"]}
    row = rows[(borrower, 0)]
    assert int(row["health"]) == maintenance_health(dep, borrower, block=scan["block"]) > 0 and row["liquidatable"] is False
    assert int(row["debt"]) > 0 and row["prices_valid"] is True
