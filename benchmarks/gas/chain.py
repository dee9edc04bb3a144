"""Plumbing of the gas benchmark: compile, a private anvil, timed transactions.

* `compile_all` compiles contracts with vyper's Python API, with the same
  search paths as tools/check_bytecode_size.py (and therefore as ape-vyper),
  and caches the output in .build/gas-bench/ keyed by the vyper version and
  the content of every file under contracts/ (so a cache hit is always the
  current code).
* `Anvil` starts anvil on a free port with a pinned hardfork, a fixed genesis
  timestamp and base fee 0, and stops it again.
* `Chain` signs transactions with eth-account (anvil's default mnemonic),
  sets every block's timestamp explicitly with `evm_setNextBlockTimestamp`
  before the (automined) transaction, so each transaction is alone in its
  block and every timestamp -- hence every interest amount and gas figure --
  is deterministic.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
CACHE_DIR = ROOT / ".build" / "gas-bench"

MNEMONIC = "test test test test test test test test test test test junk"
CHAIN_ID = 31337
HARDFORK = "prague"  # vyper 0.4.3's default target; pinned so that anvil upgrades do not move figures
GENESIS_TIMESTAMP = 1_700_000_000
TX_GAS = 3_000_000  # gas limit of a call; gasUsed does not depend on it
DEPLOY_GAS = 25_000_000
CACHE_FORMAT = 2  # bump when _compile_one's output changes


# ---------------------------------------------------------------------------
# Compilation
# ---------------------------------------------------------------------------


def _size_tool():
    """tools/check_bytecode_size.py as a module (not a package)."""
    spec = importlib.util.spec_from_file_location("_xmargin_size_tool", ROOT / "tools" / "check_bytecode_size.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def search_paths() -> list[Path]:
    """The size gate's search paths (sys.path reversed, '.', project root)."""
    try:
        return _size_tool().search_paths()
    except Exception:  # pragma: no cover - fallback mirrors the tool
        return [Path(p) for p in reversed(sys.path)] + [Path("."), ROOT]


def _compile_one(rel_path: str) -> dict:
    import warnings

    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    try:
        from vyper.warnings import ContractSizeLimit

        warnings.simplefilter("ignore", ContractSizeLimit)
    except ImportError:
        pass
    os.chdir(ROOT)
    bundle = FilesystemInputBundle(search_paths())
    out = vyper.compile_from_file_input(
        bundle.load_file(Path(rel_path)),
        input_bundle=bundle,
        output_formats=["bytecode", "abi", "layout", "source_map_runtime"],
    )
    return {
        "bytecode": out["bytecode"],
        "abi": out["abi"],
        "layout": out["layout"],
        "pc_functions": _pc_functions(out["source_map_runtime"], bundle),
    }


def _pc_functions(source_map: dict, bundle) -> dict[str, str]:
    """Runtime pc -> "module.function" of the source that generated it (for
    the trace breakdown). Top-level `def`s start at column 0; a position
    belongs to the last one at or above its line."""
    import re

    paths = {sid: Path(p) for p, sid in getattr(bundle, "_source_ids", {}).items()}
    defs: dict[int, list[tuple[int, str]]] = {}
    for sid, path in paths.items():
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        defs[sid] = [(i + 1, m.group(1)) for i, line in enumerate(lines) if (m := re.match(r"def (\w+)\(", line))]
    pos = source_map.get("pc_pos_map", {})
    out = {}
    for pc, (sid, _node) in source_map.get("pc_ast_map", {}).items():
        where = pos.get(pc)
        if where is None or sid not in defs:
            continue
        line = where[0]
        name = "(module level)"
        for start, fn in defs[sid]:
            if start > line:
                break
            name = fn
        out[str(pc)] = f"{paths[sid].stem}.{name}"
    return out


def source_fingerprint() -> str:
    import vyper

    h = hashlib.sha256()
    h.update(f"vyper {vyper.__version__}\n".encode())
    try:  # imported modules (snekmate) are part of the compiled code
        from importlib.metadata import version

        h.update(f"snekmate {version('snekmate')}\n".encode())
    except Exception:  # noqa: BLE001 - not installed: nothing to add
        pass
    for path in sorted(CONTRACTS.rglob("*")):
        if path.is_file() and path.suffix in (".vy", ".vyi"):
            h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def compile_all(rel_paths: list[str], log=print) -> tuple[dict[str, dict], str]:
    """({rel_path: {bytecode, abi, layout, pc_functions}}, contracts
    fingerprint), from the cache when it is current. If the sources change
    while compiling (someone is editing them), compiles again, so the
    fingerprint always names the code that was compiled."""
    for _attempt in range(3):
        key = source_fingerprint()
        cache = CACHE_DIR / f"{key}-v{CACHE_FORMAT}.json"
        if cache.is_file():
            data = json.loads(cache.read_text())
            if all(p in data for p in rel_paths):
                return data, key
        t0 = time.monotonic()
        log(f"compiling {len(rel_paths)} contracts with vyper (cache miss: {cache.relative_to(ROOT)}) ...")
        workers = max(1, min(len(rel_paths), os.cpu_count() or 1))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = dict(zip(rel_paths, pool.map(_compile_one, rel_paths)))
        log(f"compiled in {time.monotonic() - t0:.1f}s")
        if source_fingerprint() != key:
            log("compiling: contracts/ changed during compilation; compiling again")
            continue
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        for old in CACHE_DIR.glob("*.json"):  # keep only the current build
            old.unlink(missing_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(results))
        tmp.replace(cache)
        return results, key
    raise RuntimeError("contracts/ kept changing during compilation; try again")


# ---------------------------------------------------------------------------
# anvil
# ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_version() -> str:
    out = subprocess.run(["anvil", "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[0].removeprefix("anvil Version: ").strip()


class Anvil:
    """A private anvil on a free port; a context manager that always stops it."""

    def __init__(self, accounts: int, tracing: bool = False):
        if shutil.which("anvil") is None:
            raise SystemExit("anvil not found on PATH (run `make setup`; PATH needs node_modules/.bin)")
        self.accounts = accounts
        self.tracing = tracing
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> "Anvil":
        last_err = ""
        for _ in range(5):
            port = _free_port()
            cmd = [
                "anvil",
                "--host", "127.0.0.1",
                "--port", str(port),
                "--chain-id", str(CHAIN_ID),
                "--hardfork", HARDFORK,
                "--timestamp", str(GENESIS_TIMESTAMP),
                "--base-fee", "0",
                "--gas-limit", "30000000",
                "--accounts", str(self.accounts),
                "--balance", "1000000",
                "--mnemonic", MNEMONIC,
                "--silent",
            ]  # fmt: skip
            if self.tracing:
                cmd.append("--steps-tracing")  # debug_traceTransaction struct logs
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            self.url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_err = (self.proc.stderr.read() or "").strip()
                    break
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"could not start anvil: {last_err or 'timeout'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------


class TxFailed(RuntimeError):
    pass


@dataclass
class Sent:
    tx_hash: str
    gas_used: int
    block: int
    timestamp: int
    receipt: Any


class Chain:
    """Signs and sends transactions, one per block, at explicit timestamps."""

    def __init__(self, url: str, actor_names: list[str]):
        from eth_account import Account
        from web3 import Web3

        Account.enable_unaudited_hdwallet_features()
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
        for _ in range(100):
            if self.w3.is_connected():
                break
            time.sleep(0.05)
        self.keys = {}
        self.address = {}
        for i, name in enumerate(actor_names):
            acct = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
            self.keys[name] = acct
            self.address[name] = acct.address
        self.nonce = {name: 0 for name in actor_names}
        self.now = self.w3.eth.get_block("latest")["timestamp"]
        assert self.now == GENESIS_TIMESTAMP, self.now

    def rpc(self, method: str, params: list) -> Any:
        resp = self.w3.provider.make_request(method, params)
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp["result"]

    def advance(self, seconds: int) -> None:
        """Lets time pass without a transaction (the next block is later)."""
        self.now += seconds

    def send(self, actor: str, to: str | None, data: str, step: int, gas: int = TX_GAS) -> Sent:
        """Sends one transaction in its own block, `step` seconds after the
        previous block, and returns its receipt (raises if it reverted)."""
        self.now += step
        self.rpc("evm_setNextBlockTimestamp", [self.now])
        tx = {
            "nonce": self.nonce[actor],
            "gas": gas,
            "maxFeePerGas": 0,
            "maxPriorityFeePerGas": 0,
            "chainId": CHAIN_ID,
            "value": 0,
            "data": data,
        }
        if to is not None:
            tx["to"] = to
        signed = self.keys[actor].sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self.nonce[actor] += 1
        receipt = None
        for _ in range(2000):  # automine: normally there at the first try
            receipt = self._receipt_or_none(tx_hash)
            if receipt is not None:
                break
            time.sleep(0.005)
        if receipt is None:
            raise TxFailed(f"no receipt for {tx_hash.hex()}")
        block = self.w3.eth.get_block(receipt["blockNumber"])
        if block["timestamp"] != self.now or len(block["transactions"]) != 1:
            raise TxFailed(f"block {receipt['blockNumber']}: timestamp {block['timestamp']} != {self.now} or not alone")
        if receipt["status"] != 1:
            raise TxFailed(f"{actor}'s transaction reverted: {self._revert_reason(tx, actor, receipt)}")
        return Sent("0x" + bytes(tx_hash).hex(), receipt["gasUsed"], receipt["blockNumber"], self.now, receipt)

    def _receipt_or_none(self, tx_hash):
        from web3.exceptions import TransactionNotFound

        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _revert_reason(self, tx: dict, actor: str, receipt) -> str:
        call = {"from": self.address[actor], "data": tx["data"], "gas": tx["gas"]}
        if "to" in tx:
            call["to"] = tx["to"]
        try:  # replayed on the state before the block (the time differs by one block)
            self.w3.eth.call(call, receipt["blockNumber"] - 1)
        except Exception as exc:  # noqa: BLE001 - the reason is in the message
            return str(exc)
        return "unknown (replay did not revert)"

    def deploy(self, actor: str, artifact: dict, *args) -> str:
        from eth_abi import encode
        from eth_utils.abi import get_abi_input_types

        ctor = next((e for e in artifact["abi"] if e["type"] == "constructor"), None)
        data = artifact["bytecode"]
        if ctor is not None and ctor["inputs"]:
            data += encode(get_abi_input_types(ctor), list(args)).hex()
        sent = self.send(actor, None, data, step=1, gas=DEPLOY_GAS)
        return sent.receipt["contractAddress"]
