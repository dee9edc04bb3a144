"""Drive the keeper from tests: in-process (a thread with its own event loop)
or as a subprocess (`xmargin-keeper run`), with its JSON logs captured.

    keeper = InProcessKeeper(settings, account)   # keeper.bot.Keeper inside
    keeper.start()
    keeper.wait_step(block)        # a block handler run finished at >= block
    keeper.stop()                  # returns; raises if the run task raised
    keeper.errors()                # log entries at level error/critical

    proc = SubprocessKeeper(config_path, env, log_path)
    proc.start(); proc.wait_processed(block); proc.kill9(); proc.terminate()

`keeper_settings(...)` builds test settings: fast polling, short timeouts,
no metrics server, JSON logs.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
KEEPER_KEY = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"  # anvil account 9 (public test key)
KEYSTORE_PASSWORD = "xmargin-test"


def keeper_settings(rpc_http: str, record_path: Path, db_path: Path, *, rpc_ws: str | None = None, **sections: dict) -> Any:
    """KeeperSettings for a test: `sections` override whole-section fields,
    e.g. strategy={"dry_run": True}."""
    from keeper.config import load_settings

    base: dict[str, dict] = {
        "chain": {"rpc_http": rpc_http, "rpc_ws": rpc_ws, "request_timeout": 2.0, "max_retries": 2},
        "deployment": {"record": str(record_path)},
        "strategy": {"native_price_symbol": "WETH"},
        "sync": {"poll_interval": 0.05, "resync_interval": 3600},
        "store": {"db_path": str(db_path)},
        "metrics": {"port": 0},
        "log": {"level": "info", "json_logs": True},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return load_settings(None, **base)


class LogStream(io.TextIOBase):
    """A thread-safe text sink for structlog's PrintLogger that keeps the
    parsed JSON lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = ""
        self.entries: list[dict] = []
        self.unparsed: list[str] = []

    def write(self, text: str) -> int:
        with self._lock:
            self._buf += text
            *lines, self._buf = self._buf.split("\n")
            for line in lines:
                if line.strip():
                    try:
                        self.entries.append(json.loads(line))
                    except json.JSONDecodeError:
                        self.unparsed.append(line)
        return len(text)

    def flush(self) -> None:
        pass


def error_entries(entries: list[dict]) -> list[dict]:
    """Log entries that report an error or carry a traceback."""
    return [e for e in entries if e.get("level") in ("error", "critical", "exception") or "exception" in e]


def events(entries: list[dict], name: str) -> list[dict]:
    return [e for e in entries if e.get("event") == name]


def _allow_websockets_off_main_thread() -> None:
    """web3's persistent providers install SIGINT/SIGTERM handlers on
    connect, which Python only allows on the main thread; the in-process
    keeper runs on another thread, where that raises ValueError and the
    keeper would never get its websocket. Signals are the test runner's
    business here, so the hook is disabled for this process."""
    from web3.providers.persistent.persistent import PersistentConnectionProvider

    PersistentConnectionProvider._set_signal_handlers = lambda self: None  # type: ignore[method-assign]


class InProcessKeeper:
    """`keeper.bot.Keeper.run` on a private event loop in a daemon thread."""

    def __init__(self, settings: Any, account: Any | None = None):
        from keeper.bot import Keeper
        from keeper.logs import configure

        _allow_websockets_off_main_thread()
        self.logs = LogStream()
        configure(settings.log.level, True, stream=self.logs)
        self.keeper = Keeper(settings, account=account)
        self._steps: list[int] = []
        self._step_cv = threading.Condition()
        orig_step = self.keeper.step

        async def step() -> Any:
            info = await orig_step()
            with self._step_cv:
                self._steps.append(info.number if info is not None else -1)
                self._step_cv.notify_all()
            return info

        self.keeper.step = step  # type: ignore[method-assign]
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.exception: BaseException | None = None

    def start(self, wait_started: float = 60.0) -> "InProcessKeeper":
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self._loop)

            async def run() -> None:
                self._stop = asyncio.Event()
                ready.set()
                await self.keeper.run(self._stop)

            try:
                self._loop.run_until_complete(run())
            except BaseException as exc:  # surfaced by stop()/check()
                self.exception = exc
            finally:
                ready.set()
                # let background tasks (websocket listeners) finish their cleanup
                pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
                for t in pending:
                    t.cancel()
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
                self._loop.close()

        self._thread = threading.Thread(target=main, name="keeper", daemon=True)
        self._thread.start()
        ready.wait(10)
        deadline = time.monotonic() + wait_started
        while not self.keeper.state.started:
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError("keeper did not start")
            time.sleep(0.02)
        return self

    def check(self) -> None:
        if self.exception is not None:
            raise AssertionError(f"keeper run raised {self.exception!r}") from self.exception
        if self._thread is not None and not self._thread.is_alive() and self._stop is not None and not self._stop.is_set():
            raise AssertionError("keeper run returned on its own")

    @property
    def processed(self) -> int:
        return self.keeper.state.processed

    def wait_step(self, block: int, timeout: float = 60.0) -> None:
        """Waits until a block-handler run has finished having processed
        `block` or later (its transactions are then in the node's pool)."""
        deadline = time.monotonic() + timeout
        with self._step_cv:
            while not any(s >= block for s in self._steps):
                self.check()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"keeper did not finish a step at block >= {block} (processed {self.processed})")
                self._step_cv.wait(min(left, 0.1))

    def stop(self, timeout: float = 30.0) -> None:
        if self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise AssertionError("keeper did not stop within the timeout")
        if self.exception is not None:
            raise AssertionError(f"keeper run raised {self.exception!r}") from self.exception

    def errors(self) -> list[dict]:
        return error_entries(self.logs.entries)


def write_keeper_files(folder: Path, rpc_http: str, record_path: Path, *, rpc_ws: str | None = None,
                       metrics_port: int = 0, extra_toml: str = "") -> tuple[Path, dict]:
    """A keystore (pbkdf2, cheap) for KEEPER_KEY and a TOML config; returns
    (config path, environment for the subprocess)."""
    from keeper.keys import write_keystore

    folder.mkdir(parents=True, exist_ok=True)
    keystore = folder / "keeper-key.json"
    address = write_keystore(KEEPER_KEY, KEYSTORE_PASSWORD, keystore, iterations=2)
    ws_line = f'rpc_ws = "{rpc_ws}"\n' if rpc_ws else ""
    config = folder / "keeper.toml"
    config.write_text(
        f"""[chain]
rpc_http = "{rpc_http}"
{ws_line}request_timeout = 2.0
max_retries = 2

[deployment]
record = "{record_path}"

[account]
keystore = "{keystore}"
address = "{address}"

[strategy]
native_price_symbol = "WETH"

[sync]
poll_interval = 0.05
resync_interval = 3600

[store]
db_path = "{folder / 'keeper.sqlite'}"

[metrics]
port = {metrics_port}

[log]
level = "info"
json_logs = true
{extra_toml}"""
    )
    env = os.environ | {"XMARGIN_KEEPER_PASSWORD": KEYSTORE_PASSWORD, "PYTHONPATH": str(ROOT)}
    return config, env


class SubprocessKeeper:
    """`python -m keeper run --config ...` in its own process group; stderr
    (JSON logs) appended to `log_path`."""

    def __init__(self, config: Path, env: dict, log_path: Path):
        self.config = config
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.db_path = Path(config).parent / "keeper.sqlite"

    def start(self) -> "SubprocessKeeper":
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "keeper", "run", "--config", str(self.config)],
            cwd=ROOT, env=self.env, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        out.close()
        return self

    def entries(self) -> list[dict]:
        stream = LogStream()
        stream.write(self.log_path.read_text(errors="replace") + "\n")
        return stream.entries

    def errors(self) -> list[dict]:
        return error_entries(self.entries())

    def processed(self) -> int | None:
        """The last block committed to the keeper's sqlite store."""
        if not self.db_path.exists():
            return None
        try:
            with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=1) as db:
                from keeper.store import Store  # noqa: F401 (schema owner)

                row = db.execute("SELECT MAX(number) FROM blocks").fetchone()
                return row[0] if row else None
        except sqlite3.Error:
            return None

    def wait_started(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("event") == "keeper_started" for e in self.entries()):
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"keeper exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"keeper did not start: {self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def wait_processed(self, block: int, timeout: float = 60.0, settle: float = 0.5) -> None:
        """Waits until the store records `block`, then `settle` seconds for
        the liquidation round of that block (sent after the commit)."""
        deadline = time.monotonic() + timeout
        while (self.processed() or -1) < block:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"keeper exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"keeper did not process block {block} (at {self.processed()})")
            time.sleep(0.05)
        time.sleep(settle)

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM (graceful stop); returns the exit code (SIGKILL after timeout)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("keeper ignored SIGTERM")
