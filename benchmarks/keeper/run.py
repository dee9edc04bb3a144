"""Keeper benchmark: `python -m benchmarks.keeper.run` (prints a table,
writes benchmarks/keeper/RESULTS.md and results.json). Not a test: it
measures and reports, it does not pass or fail.

Setup: a cached chain with the protocol (deployments/config/local.yaml) and
a seeded population of `--accounts` (default 10,000) sub-accounts
(scripts/_xmargin_sim, profile "mixed", seed 7), loaded into anvil with
`--block-time 1` (interval mining, 30M gas blocks). The keeper runs as a
subprocess (`python -m keeper run`, keystore key, sqlite store) behind the
chaos proxy, which only counts and timestamps requests here.

Measured:
1. startup sync: the keeper's `full_sync_done` seconds (every account
   rebuilt from the engine's events) and the wall time from process start
   to `keeper_started` (goal: sync <= 30 s);
2. idle RPC load: requests per block through the proxy over `--idle-blocks`
   blocks with nothing to do, by method;
3. reaction: ETH/USD falls to `--drop` x price (one oracle update). From the
   moment the update's block is visible on the node to the last liquidation
   broadcast (eth_sendRawTransaction seen by the proxy); and the share of
   those transactions mined in the block right after the update's block;
4. replica recompute: `Replica.recompute(now)` of every account, in process
   (a dry-run keeper synced directly from the node), median of 7 runs
   (goal <= 50 ms).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KEEPER_INVENTORY = {"USDC": 10**9 * 10**6, "WETH": 10**6 * 10**18, "WBTC": 10**5 * 10**8}


@dataclass
class Results:
    machine: dict
    accounts: int
    borrowers: int
    seed: int
    profile: str
    block_time_s: float
    seeding_s: float | None = None  # None: the state came from the cache
    sync_full_s: float | None = None
    startup_wall_s: float | None = None
    idle_blocks: int = 0
    idle_requests_per_block: float | None = None
    idle_by_method: dict = field(default_factory=dict)
    drop: str = ""
    liquidatable: int = 0
    liquidations_sent: int = 0
    update_to_last_broadcast_s: float | None = None
    update_to_first_broadcast_s: float | None = None
    mined_next_block: int = 0
    mined_next_block_share: float | None = None
    blocks_to_mine_all: int | None = None
    cancelled: int = 0  # liquidation nonces the keeper replaced by a cancel (opportunity gone)
    distinct_nonces: int = 0  # broadcasts minus fee bumps (a bump re-signs the same nonce)
    distinct_accounts: int = 0  # (owner, sub_id) pairs the broadcasts liquidate
    reverted: int = 0  # mined liquidations with status 0
    gas_used_mean: float | None = None  # receipt gasUsed of the mined liquidations
    update_to_first_candidate_s: float | None = None  # keeper log: first liquidation_candidate
    update_to_last_candidate_s: float | None = None
    update_to_first_tx_sent_log_s: float | None = None  # keeper log: first tx_sent of a liquidation
    sign_ms: float | None = None  # eth-account LocalAccount.sign_transaction, one liquidation-sized tx
    sign_backend: str = ""  # eth-keys ECC backend in use (coincurve or pure Python)
    recompute_ms_median: float | None = None
    recompute_ms_runs: list = field(default_factory=list)
    inprocess_sync_s: float | None = None


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from scripts._xmargin_sim.anvil import anvil_binary

    try:
        anvil = subprocess.run([anvil_binary(), "--version"], capture_output=True, text=True, timeout=10).stdout.split("\n")[0]
    except Exception:
        anvil = "unknown"
    load = os.getloadavg()
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "keeper"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        keeper_git = f"commit {rev}" + (" + uncommitted changes in keeper/" if dirty else "")
    except OSError:
        keeper_git = "unknown"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "anvil": anvil,
        "loadavg_at_start": [round(x, 2) for x in load],
        "keeper_git": keeper_git,
    }


def _wait(predicate, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(poll)


def run_benchmark(n: int, seed: int, profile: str, drop: str, idle_blocks: int, console: Console) -> Results:
    from scripts._xmargin_sim import Anvil, Sim
    from scripts._xmargin_sim.seed import STATES, seeded_state
    from tests.keeper.harness.chaos import ChaosProxy
    from tests.keeper.harness.keeper_driver import KEEPER_KEY, SubprocessKeeper, events, write_keeper_files
    from eth_account import Account

    res = Results(machine=machine_info(), accounts=n, borrowers=0, seed=seed, profile=profile, block_time_s=1.0, drop=drop)
    console.print(f"[bold]1/5[/] seeded chain: {n:,} accounts (cached under {STATES.relative_to(ROOT)})")
    t = time.monotonic()
    cached = any(STATES.glob(f"seeded-*-{profile}-n{n}-s{seed}/meta.json"))
    state = seeded_state(n=n, seed=seed, profile=profile)
    res.seeding_s = None if cached else round(time.monotonic() - t, 1)
    res.borrowers = sum(1 for a in state.accounts if not a.is_lender)
    keeper_addr = Account.from_key(KEEPER_KEY).address
    tmp = Path(tempfile.mkdtemp(prefix="xmargin-keeper-bench-"))

    with Anvil.start(load_state=state.state_path, block_time=1) as node:
        sim = Sim(node.url, state.record_path)
        sim.republish_prices()
        sim.fund(keeper_addr, KEEPER_INVENTORY, approve=False)
        with ChaosProxy(node.url) as proxy:
            console.print("[bold]2/5[/] keeper subprocess: startup sync from events")
            config, env = write_keeper_files(tmp, proxy.url, state.record_path, rpc_ws=proxy.ws_url)
            _tune_config(config)
            proc = SubprocessKeeper(config, env, tmp / "keeper.log")
            try:
                t = time.monotonic()
                proc.start()
                proc.wait_started(timeout=600)
                res.startup_wall_s = round(time.monotonic() - t, 2)
                sync = events(proc.entries(), "full_sync_done")
                res.sync_full_s = sync[0]["seconds"] if sync else None
                # let the approvals get mined and the keeper settle
                first = node.block_number()
                _wait(lambda: node.block_number() >= first + 3, 30, "blocks")

                console.print(f"[bold]3/5[/] idle load over {idle_blocks} blocks")
                proxy.reset_counts()
                b0 = node.block_number()
                _wait(lambda: node.block_number() >= b0 + idle_blocks, idle_blocks * 3 + 30, "idle blocks")
                counts = proxy.counts()
                res.idle_blocks = node.block_number() - b0
                res.idle_requests_per_block = round(sum(counts.values()) / res.idle_blocks, 2)
                res.idle_by_method = {m: round(c / res.idle_blocks, 2) for m, c in sorted(counts.items(), key=lambda x: -x[1])}

                console.print(f"[bold]4/5[/] ETH/USD x {drop}: reaction")
                proxy.reset_counts()
                new_price = sim.price("WETH") * Decimal(drop)
                receipt = sim.set_price("WETH", new_price)  # returns once mined
                update_block = int(receipt["blockNumber"], 16)
                t_update = time.monotonic()  # the update's block is visible now (polled every 20 ms)
                t_update_wall = time.time()
                borrowers = [a.ref for a in state.accounts if not a.is_lender]
                engine = sim.record.engine.lower()

                def liquidation_sends():
                    return [x for x in proxy.raw_transactions if x.forwarded and x.to == engine]

                # the keeper goes quiet: no new liquidation broadcast for 3 s
                last_count, quiet_since = -1, time.monotonic()
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    count = proxy.forwarded("eth_sendRawTransaction")  # cheap: no decoding while the keeper works
                    if count != last_count:
                        last_count, quiet_since = count, time.monotonic()
                    elif count and time.monotonic() - quiet_since > 3:
                        break
                    time.sleep(0.05)
                sent = liquidation_sends()
                res.liquidations_sent = len(sent)
                if sent:
                    res.update_to_first_broadcast_s = round(min(x.at for x in sent) - t_update, 3)
                    res.update_to_last_broadcast_s = round(max(x.at for x in sent) - t_update, 3)
                    mined = _mined(node, sent, update_block)
                    res.mined_next_block, res.blocks_to_mine_all, res.cancelled, res.reverted, res.gas_used_mean = mined
                    res.distinct_nonces = len({x.nonce for x in sent})
                    res.distinct_accounts = len({_liquidated_account(x.data) for x in sent})
                    res.mined_next_block_share = round(res.mined_next_block / res.distinct_nonces, 3)
                res.update_to_first_candidate_s, res.update_to_last_candidate_s, res.update_to_first_tx_sent_log_s = (
                    _log_phases(proc.entries(), t_update_wall)
                )
                # accounts liquidatable right after the update (read at the update block)
                healths = sim.healths(borrowers, block=update_block)
                res.liquidatable = sum(1 for h in healths if h[4] and h[1] < 0)
                rc = proc.terminate()
                if rc != 0:
                    console.print(f"[red]keeper exited with {rc}[/]")
            finally:
                if proc.proc is not None and proc.proc.poll() is None:
                    proc.terminate()

        console.print("[bold]5/5[/] replica recompute (in process)")
        res.inprocess_sync_s, res.recompute_ms_runs = _recompute(node.url, state.record_path, tmp)
        res.recompute_ms_median = round(statistics.median(res.recompute_ms_runs), 2)
    res.sign_ms = _sign_ms()
    from eth_account import Account

    from tests.keeper.harness.keeper_driver import KEEPER_KEY

    res.sign_backend = type(Account.from_key(KEEPER_KEY)._key_obj.backend).__name__
    return res


def _liquidated_account(data: str) -> tuple[int, int]:
    """(owner, sub_id) of a `liquidate(owner, sub_id, ...)` call: the first
    two ABI words after the selector."""
    words = bytes.fromhex(data.removeprefix("0x"))[4:68]
    return int.from_bytes(words[:32], "big"), int.from_bytes(words[32:], "big")


def _mined(node, sent: list, update_block: int, timeout: float = 300.0) -> tuple[int, int | None, int, int, float | None]:
    """Per nonce (a fee bump re-signs the same nonce with a new hash): how
    many were mined in update_block + 1, how many blocks until the last was,
    how many nonces ended as something else (a cancel), how many mined
    liquidations reverted, and their mean gasUsed."""
    sender = sent[0].sender
    top = max(x.nonce for x in sent)
    _wait(lambda: int(node.rpc.call("eth_getTransactionCount", sender, "latest"), 16) > top, timeout, "nonces mined", poll=1)
    receipts = node.rpc.batch([("eth_getTransactionReceipt", [x.hash]) for x in sent])
    block_of: dict[int, int] = {}
    gas: list[int] = []
    reverted = 0
    for x, r in zip(sent, receipts):
        if r is not None:
            block_of[x.nonce] = int(r["blockNumber"], 16)
            gas.append(int(r["gasUsed"], 16))
            reverted += int(r["status"], 16) == 0
    nonces = {x.nonce for x in sent}
    next_block = sum(1 for b in block_of.values() if b == update_block + 1)
    last = max(block_of.values()) - update_block if block_of else None
    return next_block, last, len(nonces - set(block_of)), reverted, (round(statistics.mean(gas)) if gas else None)


def _log_phases(entries: list[dict], t0_wall: float) -> tuple:
    """Seconds from `t0_wall` to the first/last liquidation_candidate and
    the first liquidation tx_sent, from the keeper's ISO timestamps."""
    from datetime import datetime

    def since(e: dict) -> float:
        return round(datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp() - t0_wall, 3)

    cands = [since(e) for e in entries if e.get("event") == "liquidation_candidate"]
    sends = [since(e) for e in entries if e.get("event") == "tx_sent" and e.get("kind") == "liquidation"]
    return (min(cands) if cands else None, max(cands) if cands else None, min(sends) if sends else None)


def _sign_ms() -> float:
    """Median time to sign one liquidation-sized EIP-1559 transaction with
    the keeper's signer type (eth-account LocalAccount)."""
    from eth_account import Account

    from tests.keeper.harness.keeper_driver import KEEPER_KEY

    acct = Account.from_key(KEEPER_KEY)
    tx = dict(to=acct.address, value=0, gas=400_000, maxFeePerGas=10**10, maxPriorityFeePerGas=10**9, nonce=0,
              chainId=31337, type=2, data="0x" + "ab" * 292)
    runs = []
    for _ in range(21):
        t = time.perf_counter()
        acct.sign_transaction(tx)
        runs.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(runs), 2)


def _tune_config(config: Path) -> None:
    """Benchmark settings: the keeper's defaults for the request timeout
    (10 s) and the head-poll interval (1 s) -- the test harness uses 2 s and
    0.05 s -- and every liquidatable account in one round."""
    text = config.read_text().replace("request_timeout = 2.0", "request_timeout = 10.0", 1)
    text = text.replace("poll_interval = 0.05", "poll_interval = 1.0", 1)  # the keeper's default
    text = text.replace("[strategy]\n", "[strategy]\nmax_candidates_per_block = 5000\n", 1)
    config.write_text(text)


def _recompute(url: str, record_path: Path, tmp: Path) -> tuple[float, list[float]]:
    from keeper.bot import Keeper
    from keeper.logs import configure
    import io

    from tests.keeper.harness.keeper_driver import keeper_settings

    configure("warning", True, stream=io.StringIO())
    settings = keeper_settings(url, record_path, tmp / "recompute.sqlite", strategy={"dry_run": True},
                               chain={"request_timeout": 10.0})
    keeper = Keeper(settings)

    async def main() -> tuple[float, list[float]]:
        t = time.perf_counter()
        await keeper.startup()
        sync_s = round(time.perf_counter() - t, 2)
        info = await keeper._block(keeper.state.processed)
        runs = []
        for _ in range(7):
            t = time.perf_counter()
            keeper.replica.recompute(info.timestamp)
            runs.append(round((time.perf_counter() - t) * 1000, 2))
        await keeper.close()
        return sync_s, runs

    return asyncio.run(main())


def render(res: Results, console: Console) -> None:
    table = Table(title=f"xmargin keeper benchmark: {res.accounts:,} accounts, {res.block_time_s:g} s blocks", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")

    def fmt(v, unit=""):
        return "-" if v is None else f"{v:,}{unit}"

    table.add_row("startup sync from events (full_sync_done)", fmt(res.sync_full_s, " s"), "<= 30 s")
    table.add_row("keeper process start -> keeper_started", fmt(res.startup_wall_s, " s"), "")
    table.add_row("in-process startup (dry run, direct RPC)", fmt(res.inprocess_sync_s, " s"), "")
    table.add_row("replica recompute, all accounts (median of 7)", fmt(res.recompute_ms_median, " ms"), "<= 50 ms")
    table.add_row("idle RPC requests per block", fmt(res.idle_requests_per_block), "")
    table.add_row(f"liquidatable after ETH x {res.drop}", fmt(res.liquidatable), "a few hundred")
    table.add_row("liquidations broadcast", fmt(res.liquidations_sent), "")
    table.add_row("  distinct nonces / distinct accounts", f"{res.distinct_nonces} / {res.distinct_accounts}", "")
    table.add_row("  mined liquidations reverted", fmt(res.reverted), "0")
    table.add_row("  gas per mined liquidation (mean)", fmt(res.gas_used_mean), "")
    table.add_row("update block -> first candidate planned (keeper log)", fmt(res.update_to_first_candidate_s, " s"), "")
    table.add_row("update block -> last candidate planned (keeper log)", fmt(res.update_to_last_candidate_s, " s"), "")
    table.add_row("update block -> first broadcast", fmt(res.update_to_first_broadcast_s, " s"), "")
    table.add_row("update block -> last broadcast", fmt(res.update_to_last_broadcast_s, " s"), "")
    share = None if res.mined_next_block_share is None else f"{res.mined_next_block} ({res.mined_next_block_share:.1%})"
    table.add_row("mined in the next block", share or "-", "")
    table.add_row("blocks until all mined", fmt(res.blocks_to_mine_all), "")
    table.add_row("signing one transaction (eth-account, median)", fmt(res.sign_ms, " ms"), "")
    console.print(table)
    m = res.machine
    console.print(f"[dim]{m['nproc']} cores · {m['cpu']} · Python {m['python']} · {m['anvil']} · load {m['loadavg_at_start']}[/]")


def write_results(res: Results) -> None:
    (HERE / "results.json").write_text(json.dumps(asdict(res), indent=2) + "\n")
    m = res.machine
    idle = "\n".join(f"| `{k}` | {v} |" for k, v in res.idle_by_method.items()) or "| - | - |"
    share = "-" if res.mined_next_block_share is None else f"{res.mined_next_block} of {res.liquidations_sent} ({res.mined_next_block_share:.1%})"
    (HERE / "RESULTS.md").write_text(f"""# Keeper benchmark results

Produced by `python -m benchmarks.keeper.run` (see the module docstring for
the method). {res.accounts:,} sub-accounts ({res.borrowers:,} borrowers),
profile `{res.profile}`, seed {res.seed}; anvil with `--block-time 1` and
30M-gas blocks; the keeper as a subprocess behind the counting proxy.

Machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, {m['anvil']},
load average at start {m['loadavg_at_start']} (the machine is shared: the
figures include contention).

| measure | value | goal |
|---|---:|---:|
| startup sync of every account from events (`full_sync_done`) | {res.sync_full_s} s | <= 30 s |
| keeper process start -> `keeper_started` | {res.startup_wall_s} s | |
| in-process startup, dry run, direct RPC | {res.inprocess_sync_s} s | |
| replica recompute of all accounts (median of 7: {res.recompute_ms_runs}) | {res.recompute_ms_median} ms | <= 50 ms |
| idle RPC requests per block | {res.idle_requests_per_block} | |
| accounts liquidatable after ETH x {res.drop} | {res.liquidatable} | a few hundred |
| liquidations broadcast | {res.liquidations_sent} | |
| distinct nonces (broadcasts minus fee bumps) / distinct accounts liquidated | {res.distinct_nonces} / {res.distinct_accounts} | |
| mined liquidations that reverted | {res.reverted} | 0 |
| gas per mined liquidation (mean receipt gasUsed) | {res.gas_used_mean} | |
| oracle-update block visible -> first / last liquidation planned (keeper log) | {res.update_to_first_candidate_s} s / {res.update_to_last_candidate_s} s | |
| oracle-update block visible -> first liquidation broadcast | {res.update_to_first_broadcast_s} s | |
| oracle-update block visible -> last liquidation broadcast | {res.update_to_last_broadcast_s} s | |
| liquidations mined in the next block | {share} | |
| blocks until every liquidation was mined (by nonce) | {res.blocks_to_mine_all} | |
| liquidation nonces later cancelled by the keeper (opportunity gone) | {res.cancelled} | |
| signing one liquidation transaction (eth-account `LocalAccount`, median of 21) | {res.sign_ms} ms | |

Signing cost: {res.liquidations_sent} broadcasts x {res.sign_ms} ms = {_cpu(res)} s of CPU
in the send path (eth-keys backend: `{res.sign_backend}`; with the pure-Python
`NativeECCBackend`, i.e. without `coincurve`, one signature took about 20 ms here).

Keeper code measured: {m.get('keeper_git', 'unknown')}.

Idle requests per block, by method:

| method | per block |
|---|---:|
{idle}

Raw figures: `results.json`.
""")


def _cpu(res: Results) -> str:
    return "-" if res.sign_ms is None else f"{res.liquidations_sent * res.sign_ms / 1000:.2f}"


@click.command()
@click.option("--accounts", "n", default=10_000, show_default=True, help="Population size (sub-accounts).")
@click.option("--seed", default=7, show_default=True)
@click.option("--profile", default="mixed", show_default=True, help="scripts/_xmargin_sim profile.")
@click.option("--drop", default="0.85", show_default=True, help="ETH/USD is multiplied by this.")
@click.option("--idle-blocks", default=10, show_default=True)
@click.option("--no-write", is_flag=True, help="Print only; leave RESULTS.md / results.json alone.")
def main(n: int, seed: int, profile: str, drop: str, idle_blocks: int, no_write: bool) -> None:
    """Measure the keeper on a seeded anvil chain (see the module docstring)."""
    console = Console(width=120)
    res = run_benchmark(n, seed, profile, drop, idle_blocks, console)
    render(res, console)
    if not no_write:
        write_results(res)
        console.print(f"written: {(HERE / 'RESULTS.md').relative_to(ROOT)}, {(HERE / 'results.json').relative_to(ROOT)}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
