"""A private anvil and a protocol deployed on it with web3, for keeper
tests (and any test that needs the keeper against a real node).

``Anvil()`` starts anvil on a free port (own process group, stopped with
it). ``deploy(anvil, specs)`` compiles the contracts with the installed
vyper (cached on disk by source hash), deploys configurator, extension,
engine, lens, lists the assets (``tests.protocol.AssetSpec``, mock tokens
and MockAggregator feeds) from anvil's unlocked account 0 and returns a
:class:`LocalDeployment` whose ``record`` has the layout of the deploy
script's deployment record (engine, lens, configurator, assets{symbol:
{token, feed, asset_id}}, deployment_block, chain_id).

Actors: anvil's unlocked accounts 1.. (``anvil.accounts``); the keeper's
key is anvil's well-known private key of account 9 (``KEEPER_KEY``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

from tests.protocol import AssetSpec

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
TOOL_DIRS = [Path(sys.executable).parent, Path("/work/main/node_modules/.bin"), ROOT / "node_modules" / ".bin"]
CACHE = Path(os.environ.get("XMARGIN_TEST_BUILD_CACHE", "/tmp/xmargin-keeper-build"))

# anvil's default mnemonic, account 9 (public test key; never use on a live chain)
KEEPER_KEY = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"
MAX_UINT = 2**256 - 1
WAD = 10**18


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc(url: str, method: str, params: list | None = None):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def _which(name: str) -> str:
    path = os.pathsep.join([*(str(d) for d in TOOL_DIRS), os.environ.get("PATH", "")])
    exe = shutil.which(name, path=path)
    if exe is None:
        raise RuntimeError(f"{name} not found (PATH or node_modules/.bin)")
    return exe


class Anvil:
    """anvil on a free port; ``url`` (HTTP) and ``ws_url`` (same port)."""

    def __init__(self, *args: str, block_time: int | None = None):
        self.port = free_port()
        cmd = [_which("anvil"), "--port", str(self.port), "--chain-id", "31337", "--hardfork", "prague", "--silent"]
        if block_time is not None:
            cmd += ["--block-time", str(block_time)]
        self.proc = subprocess.Popen([*cmd, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"anvil exited: {self.proc.stderr.read().decode()}")
            try:
                rpc(self.url, "eth_chainId")
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("anvil did not answer within 30 s")
                time.sleep(0.05)
        self.w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}))
        self.accounts = self.w3.eth.accounts

    def __enter__(self) -> "Anvil":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            self.proc.wait()
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def call(self, method: str, *params):
        return rpc(self.url, method, list(params))

    def mine(self, blocks: int = 1) -> None:
        self.call("anvil_mine", hex(blocks))

    def set_automine(self, on: bool) -> None:
        self.call("evm_setAutomine", on)

    def head(self) -> int:
        return self.w3.eth.block_number


def _source_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(CONTRACTS.rglob("*.vy*")) + sorted((ROOT / "tests" / "liquidation" / "contracts").glob("*.vy")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def compiled(relative: str) -> tuple[list, str]:
    """(abi, creation bytecode) of a contract (path relative to the repo),
    compiled with the installed vyper and cached on disk."""
    out = CACHE / _source_hash() / (relative.replace("/", "__") + ".json")
    if out.is_file():
        data = json.loads(out.read_text())
        return data["abi"], data["bytecode"]
    done = subprocess.run(
        [_which("vyper"), "-f", "abi,bytecode", "-p", str(ROOT), str(ROOT / relative)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    abi_line, bytecode = done.stdout.strip().splitlines()[-2:]
    data = {"abi": json.loads(abi_line), "bytecode": bytecode.strip()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data))
    return data["abi"], data["bytecode"]


@dataclass
class LocalDeployment:
    anvil: Anvil
    record: dict
    contracts: dict = field(default_factory=dict)  # name -> web3 contract
    tokens: dict = field(default_factory=dict)  # symbol -> web3 contract
    feeds: dict = field(default_factory=dict)  # symbol -> web3 contract
    specs: dict = field(default_factory=dict)  # symbol -> AssetSpec

    @property
    def engine(self):
        return self.contracts["engine"]

    @property
    def lens(self):
        return self.contracts["lens"]

    def write_record(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record, indent=2))
        return path

    def send(self, fn, sender: str, **tx):
        """Sends a contract call from an unlocked anvil account; returns the receipt (asserts success)."""
        tx_hash = fn.transact({"from": sender, **tx})
        receipt = self.anvil.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1, f"transaction reverted: {receipt}"
        return receipt

    def set_price(self, symbol: str, price: float, sender: str | None = None):
        spec = self.specs[symbol]
        return self.send(self.feeds[symbol].functions.set_answer(spec.answer(price)), sender or self.anvil.accounts[0])

    def fund(self, who: str, symbol: str, amount: int) -> None:
        token = self.tokens[symbol]
        self.send(token.functions.mint(who, amount), self.anvil.accounts[0])
        self.send(token.functions.approve(self.engine.address, MAX_UINT), who)

    def units(self, symbol: str, amount: float) -> int:
        return round(amount * 10 ** self.specs[symbol].decimals)


def deploy(anvil: Anvil, specs: list[AssetSpec], *, dust_threshold: int = 10 * WAD, grace: int = 0) -> LocalDeployment:
    """Deploys the protocol and lists ``specs`` (see module docstring)."""
    w3 = anvil.w3
    owner = anvil.accounts[0]
    start_block = w3.eth.block_number + 1

    def create(relative: str, *args):
        abi, bytecode = compiled(relative)
        factory = w3.eth.contract(abi=abi, bytecode=bytecode)
        tx_hash = factory.constructor(*args).transact({"from": owner})
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        assert receipt["status"] == 1, relative
        return w3.eth.contract(address=receipt["contractAddress"], abi=abi)

    zero = "0x" + "00" * 20
    configurator = create("contracts/MarginConfigurator.vy", 86400)
    extension = create("contracts/MarginEngineExtension.vy", configurator.address, owner, zero, 0)
    planner = create("contracts/LiquidationPlanner.vy")
    engine_core = create("contracts/MarginEngine.vy", configurator.address, owner, zero, 0, extension.address, planner.address)
    lens = create("contracts/MarginLens.vy", engine_core.address)
    ext_abi, _ = compiled("contracts/MarginEngineExtension.vy")
    seen = {(x.get("type"), x.get("name"), len(x.get("inputs", []))) for x in engine_core.abi}
    merged = engine_core.abi + [x for x in ext_abi if (x.get("type"), x.get("name"), len(x.get("inputs", []))) not in seen and x["type"] != "constructor"]
    engine = w3.eth.contract(address=engine_core.address, abi=merged)
    dep = LocalDeployment(anvil=anvil, record={})
    dep.contracts.update(configurator=configurator, extension=extension, engine=engine, lens=lens)
    dep.send(configurator.functions.set_engine(engine.address), owner)
    dep.send(configurator.functions.set_liquidation_settings(dust_threshold, grace), owner)
    assets = {}
    for spec in specs:
        token = create("contracts/mocks/MockERC20.vy", spec.symbol, spec.symbol, spec.decimals)
        feed = create("contracts/mocks/MockAggregator.vy", spec.feed_decimals, f"{spec.symbol} / USD", spec.answer())
        dep.send(configurator.functions.list_asset(token.address, feed.address, spec.listing_params()), owner)
        asset_id = engine.functions.asset_id(token.address).call()
        assets[spec.symbol] = {"token": token.address, "feed": feed.address, "asset_id": asset_id}
        dep.tokens[spec.symbol], dep.feeds[spec.symbol], dep.specs[spec.symbol] = token, feed, spec
    dep.record = {
        "network": "ethereum:local",
        "chain_id": 31337,
        "deployer": owner,
        "deployment_block": start_block,
        "configurator": configurator.address,
        "extension": extension.address,
        "planner": planner.address,
        "engine": engine.address,
        "lens": lens.address,
        "assets": assets,
    }
    return dep


def deploy_mock_dex(dep: LocalDeployment):
    """tests/liquidation/contracts/MockDex.vy, with rates set from the feeds'
    current prices for every pair (token_out per token_in, WAD)."""
    w3 = dep.anvil.w3
    abi, bytecode = compiled("tests/liquidation/contracts/MockDex.vy")
    tx_hash = w3.eth.contract(abi=abi, bytecode=bytecode).constructor().transact({"from": dep.anvil.accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    dex = w3.eth.contract(address=receipt["contractAddress"], abi=abi)
    set_dex_rates(dep, dex)
    return dex


def set_dex_rates(dep: LocalDeployment, dex, haircut_bps: int = 0) -> None:
    """rate(in -> out) = unit price in / unit price out (WAD), minus ``haircut_bps``."""
    unit = {}
    for sym, spec in dep.specs.items():
        answer = dep.feeds[sym].functions.latestAnswer().call()
        unit[sym] = answer * 10 ** (36 - spec.feed_decimals - spec.decimals)
    for a in unit:
        for b in unit:
            if a != b:
                rate = unit[a] * WAD // unit[b] * (10_000 - haircut_bps) // 10_000
                dep.send(dex.functions.set_rate(dep.tokens[a].address, dep.tokens[b].address, rate), dep.anvil.accounts[0])


DEFAULT_SPECS = (
    AssetSpec("WETH", decimals=18, price=2000.0, max_staleness=86400),
    AssetSpec("WBTC", decimals=8, price=60000.0, max_staleness=86400, asset_weight_maintenance=82 * 10**16),
    AssetSpec("USDC", decimals=6, price=1.0, max_staleness=86400, asset_weight_initial=9 * 10**17,
              asset_weight_maintenance=95 * 10**16, liability_weight_initial=11 * 10**17,
              liability_weight_maintenance=105 * 10**16, min_bonus=10**16, max_bonus=5 * 10**16),
)
