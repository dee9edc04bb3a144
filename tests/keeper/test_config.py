"""Keeper configuration: TOML + env overrides, validation messages, and the
CLI's distinct exit codes (bad config 78, unreachable node 69, key error 77,
startup check 65)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keeper.config import load_settings, resolve_deployment
from keeper.errors import (
    EXIT_BAD_CONFIG,
    EXIT_KEY_ERROR,
    EXIT_NODE_UNREACHABLE,
    EXIT_STARTUP_CHECK,
    ConfigError,
)
from tests.keeper.localchain import KEEPER_KEY, free_port

ROOT = Path(__file__).resolve().parents[2]
ENGINE = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
LENS = "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"
RECORD = {
    "network": "ethereum:local",
    "chain_id": 31337,
    "deployment_block": 7,
    "configurator": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "engine": ENGINE,
    "lens": LENS,
    "assets": {
        "WETH": {"token": "0x0165878A594ca255338adfa4d48449f69242Eb8F", "feed": "0xa513E6E4b8f2a923D98304ec87F64353C4D5C853", "asset_id": 0},
        "DAI": {"token": None, "feed": None, "asset_id": None},
    },
}


def write(tmp_path: Path, toml: str, record: dict | None = RECORD) -> Path:
    if record is not None:
        (tmp_path / "record.json").write_text(json.dumps(record))
    path = tmp_path / "keeper.toml"
    path.write_text(toml)
    return path


def issues(tmp_path: Path, toml: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, toml))
    return err.value.issues


def test_example_config_loads_and_resolves_relative_paths():
    s = load_settings(ROOT / "keeper" / "example.toml")
    assert s.strategy.mode == "inventory" and s.strategy.min_profit_wad == 10**18
    assert s.gas.tip_wei == 10**9 and s.gas.max_fee_wei == 500 * 10**9 and s.gas.bump_permille == 125
    assert s.deployment.record == (ROOT / "deployments" / "local" / "local.json").resolve()
    assert s.account.keystore == (ROOT / "keeper" / "keeper-keystore.json").resolve()
    assert s.sync.log_chunk_blocks == 5000 and s.metrics.port == 9108


def test_record_resolution_and_explicit_override(tmp_path):
    s = load_settings(write(tmp_path, '[deployment]\nrecord = "record.json"\nlens = "0x00000000000000000000000000000000000000aa"\n'))
    d = resolve_deployment(s)
    assert d.engine == ENGINE and d.lens == "0x00000000000000000000000000000000000000aa"
    assert d.chain_id == 31337 and d.deployment_block == 7
    assert list(d.assets) == ["WETH"] and d.assets["WETH"].asset_id == 0  # unlisted DAI skipped


def test_env_overrides_toml(tmp_path, monkeypatch):
    path = write(tmp_path, '[strategy]\nmode = "inventory"\ndry_run = false\n[gas]\ntip_gwei = "1"\n')
    monkeypatch.setenv("XMARGIN_KEEPER_STRATEGY__DRY_RUN", "true")
    monkeypatch.setenv("XMARGIN_KEEPER_GAS__TIP_GWEI", "2.5")
    s = load_settings(path)
    assert s.strategy.dry_run is True and s.gas.tip_wei == 2_500_000_000
    assert s.strategy.mode == "inventory"  # untouched fields of the section stay


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[strategy]\nmode = "flash"\n', "strategy: mode = flash needs flash_liquidator (a KeeperFlashLiquidator address)"),
        ('[strategy]\nmode = "yolo"\n', "strategy.mode: Input should be 'inventory' or 'flash'"),
        ('[gas]\nbump_percent = "10"\n', "gas.bump_percent: must be >= 12.5"),
        ('[gas]\ntip_gwei = "abc"\n', "gas.tip_gwei: tip_gwei: not a decimal number: 'abc'"),
        ('[chain]\nrpc_http = "localhost:8545"\n', "chain.rpc_http: must start with http:// or https://"),
        ('[deployment]\nengine = "0x1234"\n', "deployment.engine: engine: must be a 0x-prefixed 20-byte hex address"),
        ('[account]\nkeystore = "a.json"\nape_alias = "k"\n', "account: set keystore or ape_alias, not both"),
        ('[sync]\npoll_interval = 0\n', "sync.poll_interval: Input should be greater than 0"),
        ('[strategy]\nprivate_key = "0xabc"\n', "strategy.private_key: Extra inputs are not permitted"),
    ],
)
def test_validation_messages_name_the_field(tmp_path, toml, message):
    found = issues(tmp_path, toml)
    assert any(message in i for i in found), found


def test_missing_addresses_are_listed(tmp_path):
    s = load_settings(write(tmp_path, "[sync]\npoll_interval = 1\n"))
    with pytest.raises(ConfigError) as err:
        resolve_deployment(s)
    assert err.value.issues == [
        "deployment.engine: missing (set it or deployment.record)",
        "deployment.lens: missing (set it or deployment.record)",
        "deployment.assets: no listed asset (set them or deployment.record)",
    ]


# ---------------------------------------------------------------------------
# CLI exit codes (subprocess: what a supervisor sees)
# ---------------------------------------------------------------------------


def cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("XMARGIN_KEEPER_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "keeper", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd or ROOT, timeout=60)


def test_exit_code_bad_config(tmp_path):
    done = cli("run", "--config", str(tmp_path / "missing.toml"))
    assert done.returncode == EXIT_BAD_CONFIG == 78
    assert "config file not found" in done.stderr
    path = write(tmp_path, "[chain\nrpc_http = 1\n")
    done = cli("run", "--config", str(path))
    assert done.returncode == EXIT_BAD_CONFIG and "not valid TOML" in done.stderr
    path = write(tmp_path, '[strategy]\nmode = "flash"\n')
    done = cli("run", "--config", str(path))
    assert done.returncode == EXIT_BAD_CONFIG and "flash_liquidator" in done.stderr


def _runnable(tmp_path: Path, port: int, extra: str = "") -> Path:
    from keeper.keys import write_keystore

    write_keystore(KEEPER_KEY, "secret", tmp_path / "ks.json")
    return write(tmp_path, f"""
[chain]
rpc_http = "http://127.0.0.1:{port}"
request_timeout = 1.0
max_retries = 0
[deployment]
record = "record.json"
[account]
keystore = "ks.json"
password_env = "TEST_KEEPER_PW"
[store]
db_path = "k.sqlite"
[metrics]
port = 0
{extra}
""")


def test_exit_code_node_unreachable(tmp_path):
    path = _runnable(tmp_path, free_port())
    done = cli("run", "--config", str(path), env={"TEST_KEEPER_PW": "secret"})
    assert done.returncode == EXIT_NODE_UNREACHABLE == 69, done.stderr
    assert "NodeUnreachable" in done.stderr


def test_exit_code_key_errors(tmp_path):
    path = _runnable(tmp_path, free_port())
    done = cli("run", "--config", str(path))  # password variable unset
    assert done.returncode == EXIT_KEY_ERROR == 77
    assert "TEST_KEEPER_PW" in done.stderr and "secret" not in done.stderr
    done = cli("run", "--config", str(path), env={"TEST_KEEPER_PW": "wrong"})
    assert done.returncode == EXIT_KEY_ERROR and "wrong password" in done.stderr
    assert KEEPER_KEY[2:] not in done.stderr + done.stdout


def test_exit_code_startup_check_wrong_chain(tmp_path):
    from tests.keeper.localchain import Anvil

    with Anvil() as anvil:
        path = _runnable(tmp_path, anvil.port)
        record = dict(RECORD, chain_id=1)
        (tmp_path / "record.json").write_text(json.dumps(record))
        done = cli("run", "--config", str(path), env={"TEST_KEEPER_PW": "secret"})
        assert done.returncode == EXIT_STARTUP_CHECK == 65
        assert "chain id 31337 differs from the configured/recorded 1" in done.stderr
        (tmp_path / "record.json").write_text(json.dumps(RECORD))
        done = cli("run", "--config", str(path), env={"TEST_KEEPER_PW": "secret"})
        assert done.returncode == EXIT_STARTUP_CHECK  # nothing deployed on this fresh chain
        assert f"deployment.engine {ENGINE} has no code on chain 31337" in done.stderr
        path = _runnable(tmp_path, anvil.port, '[strategy]\ndry_run = false\n')
        text = path.read_text().replace('password_env = "TEST_KEEPER_PW"', 'password_env = "TEST_KEEPER_PW"\naddress = "0x0000000000000000000000000000000000000001"')
        path.write_text(text)
        done = cli("run", "--config", str(path), env={"TEST_KEEPER_PW": "secret"})
        assert done.returncode == EXIT_STARTUP_CHECK
        assert "is not account.address 0x0000000000000000000000000000000000000001" in done.stderr


def test_ape_alias_and_keystore_load_the_same_key(tmp_path, monkeypatch):
    from eth_account import Account

    from keeper.config import AccountSettings
    from keeper.errors import KeyLoadError
    from keeper.keys import load_account, write_keystore

    monkeypatch.setenv("APE_DATA_FOLDER", str(tmp_path / "ape"))
    write_keystore(KEEPER_KEY, "pw", tmp_path / "ape" / "accounts" / "keeper.json")
    monkeypatch.setenv("KEEPER_PW", "pw")
    by_alias = load_account(AccountSettings(ape_alias="keeper", password_env="KEEPER_PW"))
    assert by_alias.address == Account.from_key(KEEPER_KEY).address
    with pytest.raises(KeyLoadError, match="ape alias 'other' file not found"):
        load_account(AccountSettings(ape_alias="other", password_env="KEEPER_PW"))
    with pytest.raises(KeyLoadError, match="set account.keystore or account.ape_alias"):
        load_account(AccountSettings())
