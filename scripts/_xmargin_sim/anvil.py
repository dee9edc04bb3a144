"""A private anvil process: free port, readiness wait, clean shutdown, state
dump/load.

    with Anvil.start(block_time=1, load_state=path) as node:
        node.url            # http://127.0.0.1:<port>
        node.ws_url         # ws://127.0.0.1:<port>
        node.rpc.call("eth_blockNumber")
        node.dump_state(path)  # JSON file usable with load_state=

Each node runs in its own process group, so `stop()` (SIGTERM, then SIGKILL
after 10 s) never leaves a child behind. Chain id 31337, the standard
mnemonic's 10 funded accounts unless `accounts=` says otherwise.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .rpc import Rpc

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_binary() -> str:
    # the native binary first: the node_modules/.bin entry is a node wrapper (an extra process)
    native = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    shared = Path("/work/main/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
    for candidate in (Path(sys.executable).parent / "anvil", native, shared, ROOT / "node_modules" / ".bin" / "anvil"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("anvil")
    if not found:
        raise FileNotFoundError("anvil not found (PATH, venv bin or node_modules/.bin)")
    return found


class Anvil:
    """One anvil process. Build with `Anvil.start(...)`; use as a context
    manager or call `stop()`."""

    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path, args: list[str]):
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.args = args
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.rpc = Rpc(self.url)

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        block_time: float | None = None,
        load_state: str | Path | None = None,
        accounts: int = 10,
        gas_limit: int | None = None,
        base_fee: int | None = None,
        extra_args: tuple[str, ...] = (),
        ready_timeout: float = 30.0,
    ) -> "Anvil":
        """Starts anvil and waits until it answers `eth_chainId`.

        block_time: seconds between blocks (None = automine on every tx).
        load_state: a state JSON (from `dump_state` or `anvil --dump-state`).
        Raises RuntimeError with anvil's output if it exits or does not answer.
        """
        port = port or free_port()
        args = [anvil_binary(), "--port", str(port), "--host", "127.0.0.1", "--accounts", str(accounts)]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        if load_state is not None:
            args += ["--load-state", str(load_state)]
        if gas_limit is not None:
            args += ["--gas-limit", str(gas_limit)]
        if base_fee is not None:
            args += ["--base-fee", str(base_fee)]
        args += list(extra_args)
        log = Path(tempfile.mkstemp(prefix=f"anvil-{port}-", suffix=".log")[1])
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        node = cls(proc, port, log, args)
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"anvil exited with {proc.returncode}: {node.output()[-2000:]}")
            try:
                if int(node.rpc.call("eth_chainId"), 16):
                    return node
            except OSError:
                pass
            except Exception as err:  # requests' ConnectionError subclasses OSError; others too
                if "Connection" not in type(err).__name__:
                    raise
            if time.monotonic() > deadline:
                node.stop()
                raise RuntimeError(f"anvil did not answer within {ready_timeout} s")
            time.sleep(0.05)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 10 s; idempotent."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.rpc.close()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> "Anvil":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- chain control -----------------------------------------------------------

    def block_number(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def mine(self, blocks: int = 1) -> int:
        """Mines `blocks` blocks now; returns the new head number."""
        self.rpc.call("anvil_mine", hex(blocks))
        return self.block_number()

    def snapshot(self) -> str:
        return self.rpc.call("evm_snapshot")

    def revert(self, snapshot_id: str) -> bool:
        return bool(self.rpc.call("evm_revert", snapshot_id))

    def dump_state(self, path: str | Path) -> Path:
        """Writes the chain state (accounts, storage, blocks) as a JSON file
        that `Anvil.start(load_state=path)` restores. Atomic (temp + rename)."""
        return dump_state(self.rpc, path)


def dump_state(rpc: Rpc, path: str | Path) -> Path:
    """`anvil_dumpState` (hex of gzipped JSON) written out as plain JSON."""
    raw = bytes.fromhex(rpc.call("anvil_dumpState").removeprefix("0x"))
    try:
        raw = gzip.decompress(raw)
    except OSError:
        pass  # older anvils return plain JSON
    json.loads(raw)  # refuse to write something --load-state cannot read
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return path
