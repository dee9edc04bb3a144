"""Runs one crash replay: node, deployment, population, keeper, price replay.

    result = run_replay(ReplayOptions(scenario=resolve_scenario(None, None, None, None)), console)

Order (every child process is stopped on every exit path, see processes.py):

1. price plan from ../shared/data/prices (bad input fails here, before any process starts);
2. anvil on a free port, genesis one hour before the window, chain time = scenario time;
3. `ape run deploy` with deployments/config/local.yaml, adjusted for the
   window (mock feeds start at the window's first prices; oracle bounds
   widened, see `replay_deploy_config`);
4. a seeded random population (scripts._xmargin_sim.open_population);
5. the keeper as a separate process: `xmargin-keeper run --config keeper.toml`
   with an encrypted keystore and its password in XMARGIN_KEEPER_PASSWORD,
   holding inventory of every token (funded here; with `keeper_delay_hours`
   the process starts only once that much of the window has been replayed:
   a late keeper, as MakerDAO's were on Black Thursday);
6. the replay: mining is manual; each price step is `blocks_per_step` blocks
   `block_seconds` apart in chain time. On a step that publishes a WETH/WBTC
   answer (or right after a liquidation) the blocks are mined `block_wall` s
   apart in wall time so the keeper can see the update and send; quiet steps
   are mined at once;
7. bad debt: every simulated hour, and once more after the drain (blocks
   keep coming until no account is liquidatable, or `drain_blocks`), the
   replay calls `settle_bad_debt` for every account below maintenance whose
   collateral is worth less than the dust threshold -- the protocol's
   write-off path, which anyone may call; whoever settles, the
   BadDebtSettled events count the same;
8. the keeper is stopped and the report is read from the chain (report.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from eth_account import Account
from eth_utils import to_checksum_address
from web3 import Web3

from .prices import HOUR, PricePlan, Scenario, build_plan
from .observer import HealthObserver, LatencyTracker, markets, sample
from .processes import Children
from .report import event_topic

ROOT = Path(__file__).resolve().parents[2]
LOCAL_YAML = ROOT / "deployments" / "config" / "local.yaml"
KEEPER_PASSWORD_ENV = "XMARGIN_KEEPER_PASSWORD"
BLOCK_SECONDS = 12
# Oracle bounds for the replay: local.yaml's WETH floor ($100) would reject
# Black Thursday's $90 low (the engine then refuses to price ETH and nothing
# can be liquidated). The replay widens the bounds 10x below/above the demo's.
REPLAY_BOUNDS = {"WETH": ("10", "100000"), "WBTC": ("100", "1000000")}


class ReplayError(RuntimeError):
    """The replay could not run (a child process failed, the chain refused)."""


@dataclass(frozen=True)
class KeeperStart:
    """The chain as the keeper found it when its process started.

    `below_maintenance`: borrowers with debt whose maintenance-weighted
    collateral is below their weighted debt; `insolvent`: of those, the ones
    whose unweighted collateral value is below their debt value (USD WAD, at
    the feeds in force) -- no liquidation can make them whole, since each
    seizes more value than it repays, so their shortfall ends as bad debt
    unless prices recover first."""

    t: int  # chain time of the price step before which it started, s
    block: int  # last block mined before the process started
    below_maintenance: int
    insolvent: int
    shortfall_usd: float  # sum of debt value - collateral value over the insolvent accounts


@dataclass
class ReplayOptions:
    scenario: Scenario
    accounts: int = 500
    seed: int = 1
    profile: str = "mixed"
    substeps: int = 12  # price steps per hourly candle
    deviation_bps: int = 50  # Chainlink deviation threshold
    heartbeat: int = HOUR  # Chainlink heartbeat, s
    blocks_per_step: int = 2
    block_wall: float = 0.08  # wall seconds between blocks on active steps
    drain_blocks: int = 40
    keeper: str = "process"  # "process" or "none" (no keeper: shows what is left undone)
    # the keeper process starts only after this many hours of the window have
    # been replayed (0: before the first price). Until then nobody liquidates,
    # so accounts can fall insolvent regardless of the keeper's speed.
    keeper_delay_hours: float = 0.0
    keeper_cmd: tuple[str, ...] | None = None  # default: xmargin-keeper next to this python
    keep_run_dir: bool = False


@dataclass
class ReplayRun:
    """What the analysis needs: the chain (kept running until the report is
    read), the deployment, the accounts, and block markers."""

    options: ReplayOptions
    plan: PricePlan
    rpc_url: str
    record: dict
    accounts: list  # SimAccount
    keeper_address: str | None
    replay_sender: str
    first_block: int  # first block of the replay (after setup)
    last_block: int = 0
    step_blocks: list[int] = field(default_factory=list)  # first block of each step
    update_blocks: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # symbol -> [(block, answer)]
    settle_txs: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    keeper_exit: int | None = None
    run_dir: Path | None = None
    drain_blocks_used: int = 0
    latency: LatencyTracker = field(default_factory=LatencyTracker)
    # when the keeper process started and what it found (see KeeperStart)
    keeper_start: "KeeperStart | None" = None
    samples: list[dict] = field(default_factory=list)  # hourly health buckets + insurance fund
    end_healths: list = field(default_factory=list)  # AccountHealth per borrower at last_block


# ---------------------------------------------------------------------------
# Setup helpers
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name: str) -> str:
    for candidate in (Path(sys.executable).parent / name, ROOT / "node_modules" / ".bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise ReplayError(f"`{name}` not found (venv bin, node_modules/.bin or PATH): run `make setup`")
    return found


def replay_deploy_config(plan: PricePlan, path: Path) -> Path:
    """local.yaml with the mock feeds starting at the window's first prices
    and the replay's oracle bounds."""
    data = yaml.safe_load(LOCAL_YAML.read_text())
    start = plan.start_prices()
    for asset in data["assets"]:
        symbol = asset["symbol"]
        if symbol in REPLAY_BOUNDS:
            asset["min_price"], asset["max_price"] = REPLAY_BOUNDS[symbol]
        if symbol in start:
            asset["feed"]["mock"]["price"] = str(start[symbol] / 10**8)
    path.write_text("# generated by scripts/replay.py from deployments/config/local.yaml\n" + yaml.safe_dump(data, sort_keys=False))
    return path


def _rpc_ready(url: str, proc, timeout: float = 30.0) -> None:
    from scripts._xmargin_sim.rpc import Rpc

    rpc = Rpc(url, timeout=2)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ReplayError(f"anvil exited with code {proc.returncode}")
        try:
            rpc.call("eth_chainId")
            return
        except Exception:  # noqa: BLE001 (not up yet)
            if time.monotonic() > deadline:
                raise ReplayError(f"anvil did not answer within {timeout:.0f} s") from None
            time.sleep(0.05)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def keeper_toml(url: str, record_path: Path, keystore: Path, address: str, run_dir: Path) -> str:
    return f"""# generated by scripts/replay.py
[chain]
rpc_http = "{url}"
chain_id = 31337

[deployment]
record = "{record_path}"

[account]
keystore = "{keystore}"
password_env = "{KEEPER_PASSWORD_ENV}"
address = "{address}"

[strategy]
mode = "inventory"
min_profit_usd = "0"
# gas valued at $0: the replay measures the protocol, not keeper economics --
# every liquidation with a positive bonus is sent (see docs/replay/README.md)
native_price_usd = "0"
price_drift_bps = 10
max_candidates_per_block = 64

[gas]
tip_gwei = "1"
max_fee_gwei = "500"

[sync]
poll_interval = 0.02
resync_interval = 30.0

[store]
db_path = "{run_dir / 'keeper.sqlite'}"

[metrics]
port = 0

[log]
level = "info"
json_logs = true
"""


# ---------------------------------------------------------------------------
# The replay
# ---------------------------------------------------------------------------


def run_replay(options: ReplayOptions, console, analyse) -> Any:
    """Runs the replay and returns `analyse(run)` (called while the node is
    still up and the keeper already stopped). `console`: a rich Console."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    t_start = time.monotonic()
    plan = build_plan(options.scenario, substeps=options.substeps, deviation_bps=options.deviation_bps,
                      heartbeat=options.heartbeat)
    window_hours = (plan.steps[-1].t - plan.steps[0].t) / HOUR
    if not 0 <= options.keeper_delay_hours < window_hours:
        raise ReplayError(f"keeper delay {options.keeper_delay_hours:g} h is outside the window "
                          f"(0 <= delay < {window_hours:g} h of price steps)")
    run_dir = Path(tempfile.mkdtemp(prefix="xmargin-replay-"))
    # the run folder (logs, configs, keystore) is removed after a success or
    # an interrupt, kept after a failure for diagnosis (and with --keep-run-dir)
    remove = False
    try:
        with Children() as kids:
            # -- node ----------------------------------------------------------------
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            genesis = plan.steps[0].t - HOUR
            anvil = kids.spawn("anvil", [tool("anvil"), "--port", str(port), "--host", "127.0.0.1", "--chain-id", "31337",
                                         "--hardfork", "prague", "--timestamp", str(genesis), "--gas-limit", "60000000",
                                         "--silent"], log_path=run_dir / "anvil.log")
            _rpc_ready(url, anvil)
            console.print(f"anvil on {url} (genesis {genesis}); run files in {run_dir}")

            # -- deployment --------------------------------------------------------------
            t0 = time.monotonic()
            cfg = replay_deploy_config(plan, run_dir / "deploy.yaml")
            record_path = run_dir / "deployment.json"
            env = os.environ | {
                "APE_FOUNDRY_HOST": url,
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(ROOT / "node_modules" / ".bin"), os.environ.get("PATH", "")]),
                "COLUMNS": "200",
            }
            code = kids.run("ape run deploy", [tool("ape"), "run", "deploy", "--network", "ethereum:local:foundry",
                                               "--config", str(cfg), "--deployment-file", str(record_path)],
                            log_path=run_dir / "deploy.log", env=env, cwd=ROOT, timeout=300)
            if code != 0 or not record_path.is_file():
                raise ReplayError(f"`ape run deploy` failed (exit {code}):\n{_tail(run_dir / 'deploy.log')}")
            record = json.loads(record_path.read_text())
            timings = {"deploy": time.monotonic() - t0}
            console.print(f"deployed: engine {record['engine']} (deploy {timings['deploy']:.1f} s)")

            # -- population --------------------------------------------------------------
            from scripts._xmargin_sim.chain import SIM_OPERATOR, Sim
            from scripts._xmargin_sim.population import open_population

            t0 = time.monotonic()
            sim = Sim(url, record_path)
            accounts = open_population(sim, None, options.accounts, seed=options.seed, profile=options.profile)
            timings["population"] = time.monotonic() - t0
            borrowers = [a for a in accounts if not a.is_lender]
            console.print(f"population: {len(accounts)} accounts ({len(borrowers)} borrowers), seed {options.seed}, "
                          f"profile {options.profile} ({timings['population']:.1f} s)")
            rpc = sim.rpc
            rpc.call("evm_setAutomine", False)

            # -- keeper ------------------------------------------------------------------------
            keeper_address = None
            keeper_proc = None
            start_keeper = None  # () -> Popen: spawns the keeper and lets it sync
            if options.keeper == "process":
                key = Web3.keccak(text=f"xmargin.replay.keeper:{options.seed}")
                keeper_address = Account.from_key(key).address
                password = f"replay-{options.seed}"
                keystore = run_dir / "keeper-keystore.json"
                keystore.write_text(json.dumps(Account.encrypt(key, password, kdf="scrypt", iterations=2**14)))
                inventory = {"USDC": 10**9 * 10**6, "WETH": 10**6 * 10**18, "WBTC": 10**5 * 10**8}
                rpc.call("evm_setAutomine", True)
                sim.fund(keeper_address, {s: v for s, v in inventory.items() if s in sim.assets})
                rpc.call("evm_setAutomine", False)
                toml_path = run_dir / "keeper.toml"
                toml_path.write_text(keeper_toml(url, record_path, keystore, keeper_address, run_dir))
                cmd = list(options.keeper_cmd or (tool("xmargin-keeper"), "run", "--config", str(toml_path)))
                # PYTHONPATH: the console script imports this tree's keeper package
                # (the shared venv's editable install may point at another checkout).
                keeper_env = os.environ | {KEEPER_PASSWORD_ENV: password,
                                           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

                def start_keeper():
                    proc = kids.spawn("keeper", cmd, log_path=run_dir / "keeper.log", env=keeper_env, cwd=run_dir)
                    _warm_up(rpc, proc, run_dir)
                    console.print(f"keeper {keeper_address} running (pid {proc.pid}, log {run_dir / 'keeper.log'})")
                    return proc

                if options.keeper_delay_hours <= 0:
                    keeper_proc = start_keeper()
                    start_keeper = None

            # -- replay -----------------------------------------------------------------------
            head = int(rpc.call("eth_blockNumber"), 16)
            run = ReplayRun(options, plan, url, record, accounts, keeper_address, SIM_OPERATOR, first_block=head + 1,
                            timings=timings, run_dir=run_dir)
            run.update_blocks = {s: [] for s in sim.assets}
            engine = record["engine"]
            refs = [(to_checksum_address(a.owner), a.sub_id) for a in borrowers]
            observer = HealthObserver(rpc, engine, refs)
            tracker = run.latency
            tokens = {s: a["token"] for s, a in record["assets"].items()}
            decimals = {s: sim.assets[s].token_decimals for s in tokens}
            liq_topic = event_topic("Liquidation")
            stable = [s for s in sim.assets if s not in plan.steps[0].prices]
            stable_last: dict[str, int] = {s: -(10**12) for s in stable}
            liquidations = 0
            last_ts = int(rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
            keeper_due = plan.steps[0].t + round(options.keeper_delay_hours * HOUR)
            scanned_to = head  # last block scanned for Liquidation events
            if keeper_proc is not None:
                run.keeper_start = keeper_start_state(plan.steps[0].t, head, observer.observe())
            dust = sim.engine.functions.liquidation_settings().call()[0]
            t0 = time.monotonic()
            active_next = False
            next_sample = plan.steps[0].t
            columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                       TimeElapsedColumn())
            with Progress(*columns, console=console, transient=False) as progress:
                task = progress.add_task("replay", total=len(plan.steps), info="")
                for step in plan.steps:
                    if start_keeper is not None and step.t >= keeper_due:
                        # the late keeper: what it finds, then it starts and syncs
                        # (its warm-up blocks are 1 s apart in chain time)
                        healths = observer.observe()
                        block = int(rpc.call("eth_blockNumber"), 16)
                        run.keeper_start = keeper_start_state(step.t, block, healths)
                        console.print(f"keeper starts at {_fmt_time(step.t)}: {run.keeper_start.below_maintenance} accounts below "
                                      f"maintenance, {run.keeper_start.insolvent} insolvent")
                        keeper_proc = start_keeper()
                        start_keeper = None
                        last_ts = int(rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
                        # latency counts from when a keeper exists to react
                        tracker.restart_waits(block + 1)
                    sends = dict(step.updates)
                    for s in stable:  # $1 feeds: republished on the heartbeat so they never go stale
                        if step.t - stable_last[s] >= options.heartbeat:
                            sends[s] = 10**8
                            stable_last[s] = step.t
                    for symbol, answer in sends.items():
                        sim.call_fn(sim.feeds[symbol], "set_answer", answer, wait=False, gas=200_000)
                    active = bool(step.updates) or active_next
                    wants_sample = step.t >= next_sample
                    healths = None
                    if active:
                        for j in range(options.blocks_per_step):
                            ts = max(last_ts + 1, step.t + j * BLOCK_SECONDS)
                            rpc.call("evm_mine", ts)
                            last_ts = ts
                            mined_at = time.monotonic()
                            if j == 0:
                                first = int(rpc.call("eth_blockNumber"), 16)
                                # read every borrower's health at the update block while the keeper works on it
                                healths = observer.observe()
                                tracker.observe(first, refs, healths)
                            if j < options.blocks_per_step - 1:
                                time.sleep(max(0.0, options.block_wall - (time.monotonic() - mined_at)))
                    else:
                        ts = max(last_ts + 1, step.t)
                        rpc.call("evm_setNextBlockTimestamp", ts)
                        rpc.call("anvil_mine", hex(options.blocks_per_step), hex(BLOCK_SECONDS))
                        last_ts = ts + BLOCK_SECONDS * (options.blocks_per_step - 1)
                        first = int(rpc.call("eth_blockNumber"), 16) - options.blocks_per_step + 1
                    run.step_blocks.append(first)
                    for symbol, answer in sends.items():
                        run.update_blocks[symbol].append((first, answer))
                    last = int(rpc.call("eth_blockNumber"), 16)
                    # from the block after the last scan: a late keeper's warm-up blocks included
                    logs = rpc.call("eth_getLogs", {"fromBlock": hex(scanned_to + 1), "toBlock": hex(last), "address": engine,
                                                    "topics": [liq_topic]})
                    scanned_to = last
                    for log in logs:
                        owner = to_checksum_address("0x" + log["topics"][1][-40:])
                        sub_id = int(log["data"][2:66], 16)
                        tracker.liquidated((owner, sub_id), int(log["blockNumber"], 16))
                    liquidations += len(logs)
                    # keep pacing blocks while the keeper has work: liquidations just
                    # happened, or accounts seen below maintenance are not served yet
                    waiting = any(ref not in tracker.served for ref in tracker.since)
                    active_next = keeper_proc is not None and (bool(logs) or waiting)
                    if wants_sample:
                        next_sample = (step.t // HOUR + 1) * HOUR
                        if healths is None:
                            healths = observer.observe()
                        run.samples.append(sample(step.t, first, healths, markets(rpc, record["lens"], tokens), decimals))
                        # hourly bad-debt sweep: settle accounts whose collateral is
                        # below dust (mined with the next step's first block)
                        run.settle_txs += settle_bad_debt(sim, refs, healths, dust, wait=False)
                    if keeper_proc is not None and keeper_proc.poll() is not None:
                        raise ReplayError(f"the keeper exited with code {keeper_proc.returncode}:\n{_tail(run_dir / 'keeper.log')}")
                    progress.update(task, advance=1, info=f"{_fmt_time(step.t)}  ETH {step.prices['WETH'] / 1e8:>8,.2f}  "
                                                          f"BTC {step.prices['WBTC'] / 1e8:>9,.2f}  liquidations {liquidations}")
            timings["replay"] = time.monotonic() - t0
            console.print(f"replayed {len(plan.steps)} price steps in {timings['replay']:.1f} s: {liquidations} liquidations")

            # -- drain, settle -------------------------------------------------------------------
            t0 = time.monotonic()
            drained = 0
            while keeper_proc is not None and drained < options.drain_blocks:
                healths = observer.observe()
                # liquidatable = below maintenance with collateral worth liquidating
                # (below the dust threshold it is bad debt, settled below)
                if not any(h.below_maintenance and h.prices_valid and h.debt and h.collateral_value >= dust for h in healths):
                    break
                time.sleep(options.block_wall * 2)
                last_ts += BLOCK_SECONDS
                rpc.call("evm_mine", last_ts)
                drained += 1
            run.drain_blocks_used = drained
            if keeper_proc is not None:
                kids_stop_keeper(keeper_proc)
                run.keeper_exit = keeper_proc.returncode
            # flush what is pending (hourly settlements, the keeper's last
            # transactions), then settle with automine on: nothing else sends now
            last_ts += BLOCK_SECONDS
            rpc.call("evm_mine", last_ts)
            rpc.call("evm_setAutomine", True)
            run.settle_txs += settle_bad_debt(sim, refs, observer.observe(), dust)
            run.last_block = int(rpc.call("eth_blockNumber"), 16)
            run.end_healths = observer.observe()
            run.samples.append(sample(last_ts, run.last_block, run.end_healths, markets(rpc, record["lens"], tokens), decimals))
            timings["drain_settle"] = time.monotonic() - t0

            t0 = time.monotonic()
            result = analyse(run)
            timings["analysis"] = time.monotonic() - t0
            timings["total"] = time.monotonic() - t_start
        remove = True
    except (KeyboardInterrupt, SystemExit):
        remove = True
        raise
    finally:
        if remove and not options.keep_run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
    if not options.keep_run_dir:
        run.run_dir = None
    return result


def kids_stop_keeper(proc) -> None:
    from .processes import stop_group

    stop_group(proc, grace=10.0)


def keeper_start_state(t: int, block: int, healths: list) -> KeeperStart:
    """KeeperStart from the borrowers' health read at `block`."""
    below = [h for h in healths if h.debt and h.below_maintenance and h.prices_valid]
    insolvent = [h for h in below if h.collateral_value < h.debt_value]
    shortfall = sum(h.debt_value - h.collateral_value for h in insolvent)
    return KeeperStart(t, block, len(below), len(insolvent), round(shortfall / 10**18, 2))


def _warm_up(rpc, keeper_proc, run_dir: Path, seconds: float = 4.0) -> None:
    """Lets the keeper start (sync the deployment's events, send its
    approvals): a few blocks, mined a little apart in wall time and 1 s
    apart in chain time, before the next price step."""
    deadline = time.monotonic() + seconds
    last = int(rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    while time.monotonic() < deadline:
        if keeper_proc.poll() is not None:
            raise ReplayError(f"the keeper exited with code {keeper_proc.returncode} at startup:\n{_tail(run_dir / 'keeper.log')}")
        time.sleep(0.25)
        last += 1
        rpc.call("evm_mine", last)


def settle_bad_debt(sim, refs: list[tuple[str, int]], healths: list, dust: int, wait: bool = True) -> list[str]:
    """settle_bad_debt for every account with debt, below maintenance, whose
    collateral is worth less than the dust threshold `dust` (USD WAD) -- the
    engine's own conditions as of `healths`. With `wait` (automine on) each
    receipt must succeed; without, the transactions are only sent (mining
    off: they land in the next block, and one may revert if prices moved
    back up meanwhile -- the report counts only successful ones). Returns
    the transaction hashes."""
    hashes = []
    for (owner, sub_id), h in zip(refs, healths):
        if not (h.debt and h.below_maintenance and h.prices_valid):
            continue
        if not (h.collateral_value == 0 or h.collateral_value < dust):
            continue
        sent = sim.call_fn(sim.engine, "settle_bad_debt", owner, sub_id, gas=3_000_000, wait=wait)
        hashes.append(sent["transactionHash"] if wait else sent)
    return hashes


def _fmt_time(ts: int) -> str:
    from .prices import iso

    return iso(ts)
