"""The invariant machine against the protocol as the project deploys it:
a private anvil chain (free port), `ape run deploy` with
deployments/config/local.yaml (the real deploy script, as a subprocess),
then `boa.fork(url, block_identifier="latest")` and the addresses of the
deployment record. Smaller step budget (tests/invariants/budget.py "fork").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boa
import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.invariants import steps
from tests.invariants.budget import fixed_constant_pool, machine_settings, seeded
from tests.invariants.rules import ProtocolMachine
from tests.invariants.world import fork_world

ROOT = Path(__file__).resolve().parents[2]
LOCAL_YAML = ROOT / "deployments" / "config" / "local.yaml"
TOOL_PATH = os.pathsep.join([str(Path(sys.executable).parent), str(ROOT / "node_modules" / ".bin"), os.environ.get("PATH", "")])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chain_id(url: str) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=2) as response:
        return int(json.loads(response.read())["result"], 16)


@pytest.fixture(scope="module")
def anvil_url():
    """A private anvil (own port, own process group, stopped afterwards)."""
    exe = shutil.which("anvil", path=TOOL_PATH)
    if exe is None:
        pytest.fail("anvil not found (node_modules/.bin): run `make setup`")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--chain-id", "31337", "--hardfork", "prague", "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"anvil exited early: {proc.stderr.read().decode()}")
            try:
                assert _chain_id(url) == 31337
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("anvil did not answer within 30 s")
                time.sleep(0.1)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            proc.wait()
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def deployment_record(anvil_url, tmp_path_factory) -> dict:
    """`ape run deploy` with local.yaml against the anvil; the record it writes."""
    record_path = tmp_path_factory.mktemp("fork") / "local.json"
    env = dict(os.environ, PATH=TOOL_PATH, APE_FOUNDRY_HOST=anvil_url)
    cmd = [
        str(Path(sys.executable).parent / "ape"), "run", "deploy", "--network", "ethereum:local:foundry",
        "--config", str(LOCAL_YAML), "--deployment-file", str(record_path),
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads(record_path.read_text())
    assert record["chain_id"] == 31337 and set(record["assets"]) == {"WETH", "WBTC", "USDC"}
    return record


def test_protocol_invariants_on_a_fork_of_the_ape_deployment(anvil_url, deployment_record):
    """The full machine (every rule, every invariant) on a fork of the chain
    the deploy script wrote: the listed parameters are local.yaml's (caps,
    size factors, bounds, rate models, bonuses, dust threshold, no grace)."""
    boa.fork(anvil_url, block_identifier="latest")
    world = fork_world(deployment_record)
    assert world.engine.asset_count() == 3 and [a.symbol for a in world.assets] == ["WETH", "WBTC", "USDC"]
    assert world.engine.liquidation_settings() == (10 * 10**18, 0, 0)
    ProtocolMachine.world = world
    with steps.cpu_timer(), fixed_constant_pool():
        run_state_machine_as_test(seeded(ProtocolMachine, "fork", 0), settings=machine_settings("fork"))
