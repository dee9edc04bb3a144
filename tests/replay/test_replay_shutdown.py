"""Ctrl-C stops the replay's node and keeper: SIGINT to `python -m
scripts.replay` (the signal a terminal sends) while it deploys and while it
replays, then no anvil on its port and no keeper process are left."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = [str(Path(sys.executable).parent), str(ROOT / "node_modules" / ".bin")]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(f"{cmdline.parent.name}: {args}")
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("interrupt_after", ["anvil on", "keeper 0x"], ids=["while-deploying", "while-replaying"])
def test_sigint_leaves_no_node_or_keeper(tmp_path, interrupt_after):
    env = os.environ | {"PYTHONUNBUFFERED": "1", "PATH": os.pathsep.join([*TOOLS, os.environ.get("PATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.replay", "--from", "2020-03-12T00:00", "--to", "2020-03-13T00:00",
         "--accounts", "40", "--out", str(tmp_path / "out")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while not any(line.startswith(interrupt_after) for line in lines):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "replay exited early:\n" + "".join(lines)
            lines.append(line)
            assert time.monotonic() < deadline, "".join(lines)
        port = int(re.search(r"anvil on http://127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
        run_dir = re.search(r"run files in (\S+)", "".join(lines)).group(1)
        assert _port_open(port)
        keeper_pid = None
        if interrupt_after == "keeper 0x":
            keeper_pid = int(re.search(r"running \(pid (\d+)", "".join(lines)).group(1))
            os.kill(keeper_pid, 0)  # alive before the interrupt
        time.sleep(1.0)  # well inside the phase
        proc.send_signal(signal.SIGINT)  # to the replay only, as a terminal's Ctrl-C reaches the foreground group
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = "".join(lines) + out
    assert proc.returncode == 130, output
    assert "interrupted: node and keeper stopped" in output
    assert not _port_open(port)
    assert _processes_mentioning(f"--port {port}") == []
    assert _processes_mentioning(run_dir) == []  # keeper (its config lives there) and `ape run deploy`
    assert not Path(run_dir).exists()  # logs, keystore, configs removed after an interrupt
    if keeper_pid is not None:
        with pytest.raises(ProcessLookupError):
            os.kill(keeper_pid, 0)
