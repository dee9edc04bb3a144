"""Child processes of a replay (anvil, `ape run deploy`, the keeper), each in
its own process group, and all stopped on every exit path.

`Children` is a context manager: leaving it -- normally, by an exception, by
Ctrl-C (SIGINT -> KeyboardInterrupt) or SIGTERM (turned into SystemExit by
`install_signal_handlers`) -- sends SIGTERM to every registered process
group, then SIGKILL after a grace period. npm's `anvil` is a node wrapper
that spawns the real binary, hence groups rather than single pids.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Sequence


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP exit through the normal unwinding (finally blocks run);
    SIGINT raises KeyboardInterrupt even when the replay was started with it
    ignored (a shell's background job inherits SIGINT ignored)."""

    def _exit(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group of `proc`, SIGKILL after `grace` s; idempotent."""
    if proc.poll() is not None:
        # the leader is gone; its children may not be
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        proc.wait()
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    try:  # stragglers of the group (a wrapper's child)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Children:
    """Registry of the replay's child processes (see the module docstring)."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen, IO | None]] = []
        self.extra_stops: list = []  # callables (e.g. Anvil.stop) run on exit

    def spawn(self, name: str, args: Sequence[str], *, log_path: Path | None = None, env: dict | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL
        proc = subprocess.Popen(
            list(args), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )
        self._procs.append((name, proc, out if log_path is not None else None))
        return proc

    def run(self, name: str, args: Sequence[str], *, log_path: Path, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 600.0) -> int:
        """Runs a registered child to completion (killed with the rest on Ctrl-C)."""
        proc = self.spawn(name, args, log_path=log_path, env=env, cwd=cwd)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                stop_group(proc)
                raise TimeoutError(f"{name} did not finish within {timeout:.0f} s (log: {log_path})")
            time.sleep(0.1)
        return proc.returncode

    def stop_all(self) -> None:
        for stop in reversed(self.extra_stops):
            try:
                stop()
            except Exception as err:  # noqa: BLE001 (keep stopping the rest)
                print(f"replay: stopping failed: {err}", file=sys.stderr)
        self.extra_stops.clear()
        for _name, proc, out in reversed(self._procs):
            stop_group(proc)
            if out is not None:
                out.close()
        self._procs.clear()

    def __enter__(self) -> "Children":
        return self

    def __exit__(self, *exc) -> None:
        # a second Ctrl-C while stopping must not leave processes behind
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.stop_all()
        finally:
            signal.signal(signal.SIGINT, previous)
