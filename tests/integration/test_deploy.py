"""Deployment library and `ape run deploy`, against a private anvil.

`make test` runs plain pytest with ape's pytest plugin disabled, so this
module starts its own anvil on a free port (module fixture) and connects ape
in-process with

    networks.parse_network_choice("ethereum:local:foundry",
                                  provider_settings={"host": url})

ape-foundry attaches to a node already listening on its host instead of
starting one, and leaves it running on disconnect; the fixture stops it.
Config validation and planning are pure and tested without a chain.
"""

from __future__ import annotations

import copy
import io
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

import pytest
from rich.console import Console

from scripts._xmargin_deploy import ConfigError, load_config, parse_config
from scripts._xmargin_deploy.config import YEAR, load_yaml, network_issues
from scripts._xmargin_deploy.plan import AssetState, Capabilities, ChainState, RecordStatus, build_plan

ROOT = Path(__file__).resolve().parents[2]
LOCAL_YAML = ROOT / "deployments" / "config" / "local.yaml"
SEPOLIA_YAML = ROOT / "deployments" / "config" / "sepolia.example.yaml"
TOOL_DIRS = [Path(sys.executable).parent, ROOT / "node_modules" / ".bin"]


def local_data() -> dict:
    return load_yaml(LOCAL_YAML.read_text())


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    return err.value.issues


# ---------------------------------------------------------------------------
# Config validation and conversion (pure)
# ---------------------------------------------------------------------------


def test_local_config_converts_exactly():
    cfg = load_config(LOCAL_YAML)
    weth = cfg.asset("WETH")
    assert [a.symbol for a in cfg.assets] == ["WETH", "WBTC", "USDC"]
    from scripts._xmargin_deploy.config import to_listing_params

    p = to_listing_params(weth, 18, 8)
    assert p.asset_weight_initial == 800_000_000_000_000_000
    assert p.liability_weight_maintenance == 1_100_000_000_000_000_000
    assert p.slope_low == 30_000_000_000_000_000 // 31_536_000 == 951_293_759
    assert p.min_answer == 100 * 10**8 and p.max_answer == 100_000 * 10**8
    assert p.supply_cap == 100_000 * 10**18
    usdc = to_listing_params(cfg.asset("USDC"), 6, 8)
    assert usdc.min_answer == 50_000_000 and usdc.borrow_cap == 450_000_000 * 10**6
    assert YEAR == 31_536_000


def test_unquoted_yaml_numbers_and_addresses_stay_exact():
    data = local_data()
    text = LOCAL_YAML.read_text().replace('asset_weight_initial: "0.80"', "asset_weight_initial: 0.80", 1)
    assert parse_config(load_yaml(text)).asset("WETH").asset_weight_initial.as_tuple() == (0, (8, 0), -2)
    # An unquoted 0x-literal is an int to YAML 1.1; the loader keeps it a string.
    loaded = load_yaml("feed: 0x694AA1769357215DE4FAC081bf1f309aDC325306\n")
    assert loaded["feed"] == "0x694AA1769357215DE4FAC081bf1f309aDC325306"
    assert data["assets"][0]["asset_weight_initial"] == "0.80"


def _set(data: dict, path: str, value) -> dict:
    data = copy.deepcopy(data)
    node = data
    parts = path.replace("]", "").replace("[", ".").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return data


_DELETE = object()

BAD_CONFIGS = [
    ("assets[1].asset_weight_initial", "0.75005", "assets[1].asset_weight_initial: must be a multiple of 1e14"),
    ("assets[0].asset_weight_initial", "0.90", "assets[0].asset_weight_initial: must be <= asset_weight_maintenance"),
    ("assets[2].liability_weight_maintenance", "0.99", "assets[2].liability_weight_maintenance: must be >= 1"),
    ("assets[0].liability_weight_initial", "1.05", "assets[0].liability_weight_initial: must be >= liability_weight_maintenance"),
    ("assets[0].max_staleness", 0, "assets[0].max_staleness: must be between 1 and 604800"),
    ("assets[0].imf", "0.0000001", "assets[0].imf: must be a multiple of 1e12"),
    ("assets[0].rate_model.kink", "1", "assets[0].rate_model.kink: must be strictly between 0 and 1"),
    ("assets[2].rate_model.slope_high", "12", "assets[2].rate_model: base_rate + slope_low + slope_high must be <= 10"),
    ("assets[2].rate_model.reserve_factor", "1.5", "assets[2].rate_model.reserve_factor: must be between 0 and 1"),
    ("assets[2].min_price", "0.000000001", "assets[2].min_price: 0.000000001 must be a positive multiple of 0.00000001"),
    ("assets[1].supply_cap", "0.000000001", "assets[1].supply_cap: not a whole number of token units (8 decimals)"),
    ("assets[0].max_price", "50", "assets[0].max_price: must be > min_price"),
    ("assets[0].feed.mock.price", "50", "assets[0].feed.mock.price: 50 is outside [min_price, max_price]"),
    ("assets[0].token.mock.decimals", 19, "assets[0].token.mock.decimals: Input should be less than or equal to 18"),
    ("assets[0].token", {"address": "0x1234"}, "assets[0].token.address: must be a 0x-prefixed 20-byte hex address"),
    ("assets[1].symbol", "WETH", "assets[1].symbol: duplicate of assets[0].symbol"),
    ("assets[0].collateral", "maybe", "assets[0].collateral: Input should be a valid boolean"),
    ("assets[0].rate_model", _DELETE, "assets[0].rate_model: missing"),
    ("assets[0].liquidation.max_bonus", "0.6", "assets[0].liquidation.max_bonus: must be <= 0.5"),
    ("assets[0].liquidation.min_bonus", "0.09", "assets[0].liquidation.min_bonus: must be <= max_bonus"),
    ("maintenance_ramp_duration", 60, "maintenance_ramp_duration: must be between 3600"),
    ("sequencer.grace_period", 90000, "sequencer.grace_period: Input should be less than or equal to 86400"),
    ("roles.guardian", "bob", "roles.guardian: must be \"deployer\" or an address"),
    ("liquidation_settings.grace_period", 100000, "liquidation_settings.grace_period: Input should be less than or equal to 86400"),
    ("network", "sepolia", "network: must be \"ecosystem:network\""),
]


@pytest.mark.parametrize("path, value, message", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_config_errors_name_the_field(path, value, message):
    issues = errors_of(_set(local_data(), path, value))
    assert any(issue.startswith(message) for issue in issues), issues


def test_unknown_field_and_both_token_sources():
    data = _set(local_data(), "assets[0].colateral", True)
    assert "assets[0].colateral: unknown field (typo?)" in errors_of(data)
    data = _set(local_data(), "assets[2].token.address", "0x694AA1769357215DE4FAC081bf1f309aDC325306")
    assert any(i.startswith("assets[2].token: give exactly one of `address` or `mock`") for i in errors_of(data))
    bad_checksum = "0x694aa1769357215DE4FAC081bf1f309aDC325306"
    data = _set(local_data(), "assets[0].feed", {"address": bad_checksum})
    assert any(i.startswith("assets[0].feed.address: has an invalid EIP-55 checksum") for i in errors_of(data))


def test_sepolia_example_fails_only_on_token_placeholders():
    with pytest.raises(ConfigError) as err:
        load_config(SEPOLIA_YAML)
    assert err.value.issues == [
        f"assets[{i}].token.address: is the zero address (a placeholder?): put the real address here" for i in range(3)
    ]
    data = load_yaml(SEPOLIA_YAML.read_text())
    for i, token in enumerate(
        ["0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20]
    ):  # fill the placeholders: the rest validates
        data["assets"][i]["token"]["address"] = token
    cfg = parse_config(data)
    assert cfg.network == "ethereum:sepolia" and not cfg.uses_mocks
    assert network_issues(cfg, "ethereum:sepolia", is_dev=False) == []


def test_mocks_refused_on_live_networks():
    cfg = load_config(LOCAL_YAML)
    issues = network_issues(cfg, "ethereum:sepolia", is_dev=False)
    assert "network: the config is for ethereum:local but the connected network is ethereum:sepolia" in issues
    assert any(i.startswith("assets[0].token.mock: mock tokens are only allowed on local networks") for i in issues)
    assert any(i.startswith("assets[2].feed.mock: mock feeds are only allowed on local networks") for i in issues)
    assert network_issues(cfg, "ethereum:local", is_dev=True) == []


# ---------------------------------------------------------------------------
# Planning (pure)
# ---------------------------------------------------------------------------

A = "0x" + "aa" * 20
DEPLOYER = "0x" + "d0" * 20


def _state(**kw) -> ChainState:
    base = dict(network="ethereum:local", is_dev=True, chain_id=31337, deployer=DEPLOYER)
    return ChainState(**(base | kw))


def test_plan_fresh_deployment_order():
    plan = build_plan(load_config(LOCAL_YAML), _state())
    assert plan.ok, plan.issues
    kinds = [s.kind for s in plan.steps]
    assert kinds == [
        "deploy_configurator",
        "deploy_extension",
        "deploy_planner",
        "deploy_engine",
        "deploy_lens",
        "set_engine",
        "set_liquidation_settings",
        *["deploy_mock_token", "deploy_mock_feed", "list_asset"] * 3,
    ]
    assert plan.guardian == DEPLOYER and plan.to_list == ["WETH", "WBTC", "USDC"]


def test_plan_follows_older_contracts_without_liquidation():
    old = Capabilities(
        engine_args=("configurator", "guardian", "sequencer_feed", "sequencer_grace_period"),
        extension_args=None,
        listing_fields=("risk", "rates", "supply_cap", "borrow_cap", "collateral", "borrowable"),
        has_liquidation_settings=False,
    )
    plan = build_plan(load_config(LOCAL_YAML), _state(caps=old))
    assert plan.ok, plan.issues
    kinds = [s.kind for s in plan.steps]
    assert "deploy_extension" not in kinds and "deploy_planner" not in kinds and "set_liquidation_settings" not in kinds
    assert not plan.listings["WETH"].has_liquidation and len(plan.listings["WETH"].as_tuple()) == 6
    assert any(n.startswith("liquidation_settings: ignored") for n in plan.notes)


def test_plan_refuses_unknown_contract_changes_and_stale_live_records():
    caps = Capabilities(engine_args=(*Capabilities().engine_args, "oracle_router"))
    plan = build_plan(load_config(LOCAL_YAML), _state(caps=caps))
    assert not plan.steps and any("`oracle_router`" in i for i in plan.issues)
    live = _state(is_dev=False, network="ethereum:sepolia", record_status=RecordStatus.STALE)
    plan = build_plan(load_config(LOCAL_YAML), live)
    assert not plan.steps and plan.issues[0].startswith("deployment file: it describes another chain")


def test_plan_existing_deployment_lists_only_new_assets_and_needs_the_owner():
    cfg = load_config(LOCAL_YAML)
    existing = dict(
        record_status=RecordStatus.CURRENT,
        record_deployer=DEPLOYER,
        configurator=A,
        engine="0x" + "bb" * 20,
        lens="0x" + "cc" * 20,
        extension="0x" + "ee" * 20,
        configurator_engine="0x" + "bb" * 20,
        configurator_owner=DEPLOYER,
        liquidation_settings_done=True,
        assets={
            "WETH": AssetState(token="0x" + "01" * 20, token_has_code=True, token_decimals=18,
                               feed="0x" + "02" * 20, feed_has_code=True, feed_decimals=8, listed=True),
            "WBTC": AssetState(token="0x" + "03" * 20, token_has_code=True, token_decimals=8,
                               feed="0x" + "04" * 20, feed_has_code=True, feed_decimals=8, listed=True),
        },
    )
    plan = build_plan(cfg, _state(**existing))
    assert plan.ok and plan.already_deployed
    assert [s.kind for s in plan.steps] == ["deploy_mock_token", "deploy_mock_feed", "list_asset"]
    assert plan.to_list == ["USDC"]
    other = _state(**(existing | {"configurator_owner": "0x" + "99" * 20}))
    plan = build_plan(cfg, other)
    assert any("run with --account set to the owner" in i for i in plan.issues)


# ---------------------------------------------------------------------------
# Against anvil
# ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rpc(url: str, method: str, params=None):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=2) as response:
        return json.loads(response.read())["result"]


@pytest.fixture(scope="module")
def tool_env():
    """ape-vyper needs the venv's `vyper` and we need `anvil` on PATH (the
    Makefile sets it; plain `pytest` may not). APE_FOUNDRY_HOST would
    override our host, so it is removed for this module."""
    saved = {k: os.environ.get(k) for k in ("PATH", "APE_FOUNDRY_HOST")}
    os.environ["PATH"] = os.pathsep.join([*(str(d) for d in TOOL_DIRS), saved["PATH"] or ""])
    os.environ.pop("APE_FOUNDRY_HOST", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def anvil(tool_env):
    exe = shutil.which("anvil")
    if exe is None:
        pytest.fail("anvil not found on PATH or in node_modules/.bin: run `make setup`")
    port = _free_port()
    # npm's `anvil` is a node wrapper that spawns the binary: give them their
    # own process group and stop the group.
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--chain-id", "31337", "--hardfork", "prague", "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            pytest.fail(f"anvil exited early: {proc.stderr.read().decode()}")
        try:
            assert int(_rpc(url, "eth_chainId"), 16) == 31337
            break
        except OSError:
            if time.monotonic() > deadline:
                _stop(proc)
                pytest.fail("anvil did not answer within 20 s")
            time.sleep(0.05)
    try:
        yield url
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        proc.wait()
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def ape_provider(anvil):
    from ape import networks

    with networks.parse_network_choice("ethereum:local:foundry", provider_settings={"host": anvil}) as provider:
        assert provider.uri == anvil, "ape connected somewhere else"
        yield provider


@pytest.fixture(scope="module")
def project(ape_provider):
    from ape import Project

    return Project(ROOT)  # compiles on first use (cached in .build/)


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=200)


def ape_account(index: int):
    from ape import accounts

    return accounts.test_accounts[index]


def run_deploy(cfg, account, project, record_path, **kw):
    from scripts._xmargin_deploy.chain import deploy

    console = quiet_console()
    result = deploy(cfg, account, project=project, record_path=record_path, console=console, **kw)
    return result, console.file.getvalue()


def test_dry_run_sends_nothing(project, tmp_path):
    from ape import chain

    account = ape_account(5)
    nonce, head = account.nonce, chain.blocks.head.number
    record_path = tmp_path / "dry.json"
    result, out = run_deploy(load_config(LOCAL_YAML), account, project, record_path, dry_run=True)
    assert account.nonce == nonce and chain.blocks.head.number == head
    assert not record_path.exists() and result.sent == 0
    assert result.plan.transaction_count == 16
    assert "Dry run: 16 transaction(s) planned, nothing sent." in out
    assert "951293759" in out  # the converted WETH slope_low is printed


@pytest.fixture(scope="module")
def deployment(project, tmp_path_factory):
    account = ape_account(6)
    record_path = tmp_path_factory.mktemp("deploy") / "local.json"
    nonce = account.nonce
    result, out = run_deploy(load_config(LOCAL_YAML), account, project, record_path)
    return dict(account=account, record_path=record_path, result=result, out=out, nonce_before=nonce)


def test_deploy_records_and_reads_back(deployment, project):
    from ape import networks

    result, account = deployment["result"], deployment["account"]
    assert result.verified, [f"{c.scope}.{c.name}" for c in result.mismatches]
    assert result.sent == result.plan.transaction_count == account.nonce - deployment["nonce_before"] == 16
    record = json.loads(deployment["record_path"].read_text())
    assert record["chain_id"] == 31337 and record["network"] == "ethereum:local"
    assert record["deployer"] == account.address and isinstance(record["deployment_block"], int)
    for name in ("configurator", "extension", "planner", "engine", "lens"):
        assert len(networks.provider.get_code(record[name])) > 0, name
    assert {s: a["asset_id"] for s, a in record["assets"].items()} == {"WETH": 0, "WBTC": 1, "USDC": 2}
    assert len(record["transactions"]) == 16

    # Independent read-back of a few exact integers (not through the library).
    lens = project.MarginLens.at(record["lens"])
    weth = lens.asset_config(record["assets"]["WETH"]["token"])
    assert weth.risk.asset_weight_initial == 8 * 10**17 and weth.risk.liability_weight_initial == 12 * 10**17
    assert weth.slope_low == 3 * 10**16 // 31_536_000 and weth.supply_cap == 100_000 * 10**18
    assert weth.feed == record["assets"]["WETH"]["feed"] and weth.collateral and weth.borrowable
    usdc = lens.asset_config(record["assets"]["USDC"]["token"])
    assert (usdc.risk.min_answer, usdc.risk.max_answer) == (50_000_000, 200_000_000)
    assert usdc.token_decimals == 6 and usdc.borrow_cap == 450_000_000 * 10**6
    wbtc = lens.asset_config(record["assets"]["WBTC"]["token"])
    assert wbtc.kink == 45 * 10**16 and wbtc.risk.imf == 5 * 10**14 and wbtc.supply_cap == 5_000 * 10**8
    if hasattr(wbtc, "liquidation"):
        assert (wbtc.liquidation.min_bonus, wbtc.liquidation.max_bonus) == (3 * 10**16, 10**17)
    assert "Read-back: all" in deployment["out"]


def test_second_run_is_idempotent(deployment, project):
    account = deployment["account"]
    nonce = account.nonce
    result, out = run_deploy(load_config(LOCAL_YAML), account, project, deployment["record_path"])
    assert account.nonce == nonce and result.sent == 0
    assert result.plan.already_deployed and result.plan.steps == [] and result.verified
    assert "Already deployed" in out and "Nothing to send" in out


def test_changed_parameter_is_reported_not_changed(deployment, project):
    account = deployment["account"]
    data = _set(local_data(), "assets[0].asset_weight_initial", "0.78")
    nonce = account.nonce
    result, out = run_deploy(parse_config(data), account, project, deployment["record_path"])
    assert account.nonce == nonce and result.sent == 0
    assert [(c.scope, c.name) for c in result.mismatches] == [("WETH", "risk.asset_weight_initial")]
    assert "WETH.risk.asset_weight_initial: on-chain 0.8, config 0.78" in out


def test_other_account_cannot_list(deployment, project):
    from scripts._xmargin_deploy.chain import DeployError

    data = local_data()
    data["assets"].append(_dai(data))
    intruder = ape_account(7)
    nonce = intruder.nonce
    with pytest.raises(DeployError, match="run with --account set to the owner"):
        run_deploy(parse_config(data), intruder, project, deployment["record_path"])
    assert intruder.nonce == nonce


def _dai(data: dict) -> dict:
    dai = copy.deepcopy(data["assets"][2])
    dai["symbol"] = "DAI"
    dai["token"] = {"mock": {"name": "Dai Stablecoin", "symbol": "DAI", "decimals": 18}}
    dai["feed"] = {"mock": {"decimals": 8, "price": "1", "description": "DAI / USD"}}
    return dai


def test_rerun_lists_only_the_new_asset(deployment, project):
    account = deployment["account"]
    data = local_data()
    data["assets"].append(_dai(data))
    nonce = account.nonce
    result, out = run_deploy(parse_config(data), account, project, deployment["record_path"])
    assert result.plan.to_list == ["DAI"]
    assert [s.kind for s in result.plan.steps] == ["deploy_mock_token", "deploy_mock_feed", "list_asset"]
    assert result.sent == 3 == account.nonce - nonce and result.verified
    record = json.loads(deployment["record_path"].read_text())
    assert record["assets"]["DAI"]["asset_id"] == 3
    assert project.MarginEngine.at(record["engine"]).asset_count() == 4
    assert "Assets in the config not listed yet: DAI" in out


def _ape_run(anvil: str, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"APE_FOUNDRY_HOST": anvil, "COLUMNS": "200"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "ape"), "run", "deploy", "--network", "ethereum:local:foundry", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_deploys(anvil, ape_provider, tmp_path):
    """`ape run deploy` end to end (a subprocess, like a user runs it)."""
    record_path = tmp_path / "cli.json"
    account = ape_account(8)
    nonce = account.nonce
    done = _ape_run(
        anvil, "--config", str(LOCAL_YAML), "--account", "TEST::8", "--deployment-file", str(record_path)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Read-back: all" in done.stdout and "Transactions sent: 16" in done.stdout
    assert account.nonce == nonce + 16 and json.loads(record_path.read_text())["deployer"] == account.address


def test_cli_rejects_bad_config_before_connecting(tmp_path):
    """The --config callback validates while the command line is parsed, so
    a bad file fails before any network connection (click in-process)."""
    from click.testing import CliRunner

    from scripts.deploy import cli

    bad = tmp_path / "bad.yaml"
    bad.write_text(LOCAL_YAML.read_text().replace('asset_weight_initial: "0.75"', 'asset_weight_initial: "0.75005"'))
    result = CliRunner().invoke(cli, ["--config", str(bad), "--dry-run", "--network", "ethereum:local:foundry"])
    assert result.exit_code == 2
    assert "assets[1].asset_weight_initial: must be a multiple of 1e14 (0.0001); got 0.75005" in result.output


def _real_address_config(token: str, feed: str, token_extra=None, feed_extra=None, network="ethereum:local") -> dict:
    data = local_data()
    asset = data["assets"][2] | {"symbol": "TUSD"}
    asset["token"] = {"address": token, "decimals": 6} | (token_extra or {})
    asset["feed"] = {"address": feed, "decimals": 8, "description": "TUSD / USD"} | (feed_extra or {})
    data["assets"] = [asset]
    data["network"] = network
    return data


@pytest.fixture(scope="module")
def external_token_and_feed(project):
    """A token and a feed deployed by someone else: the Sepolia-like path."""
    owner = ape_account(9)
    token = project.MockERC20.deploy("Test USD", "TUSD", 6, sender=owner)
    feed = project.MockAggregator.deploy(8, "TUSD / USD", 10**8, sender=owner)
    return token.address, feed.address


def test_real_addresses_are_checked_on_chain(external_token_and_feed, project, tmp_path):
    from scripts._xmargin_deploy.chain import DeployError

    token, feed = external_token_and_feed
    account = ape_account(9)
    nonce = account.nonce
    wrong = _real_address_config(token, feed, token_extra={"decimals": 18}, feed_extra={"description": "ETH / USD"})
    with pytest.raises(DeployError) as err:
        run_deploy(parse_config(wrong), account, project, tmp_path / "real.json")
    assert "assets[0].token.decimals: config says 18 but the token reports 6" in str(err.value)
    assert "assets[0].feed.description: config expects 'ETH / USD' but the feed says 'TUSD / USD'" in str(err.value)
    assert account.nonce == nonce

    result, _ = run_deploy(parse_config(_real_address_config(token, feed)), account, project, tmp_path / "real.json")
    assert result.verified and result.plan.to_list == ["TUSD"]
    assert "deploy_mock_token" not in [s.kind for s in result.plan.steps]
    record = json.loads((tmp_path / "real.json").read_text())
    assert record["assets"]["TUSD"] | {"asset_id": 0} == record["assets"]["TUSD"]
    assert record["assets"]["TUSD"]["token"] == token and not record["assets"]["TUSD"]["mock_token"]


def test_live_network_asks_before_sending(external_token_and_feed, project, tmp_path, monkeypatch):
    """Pretend the chain is a live network: mocks are refused and nothing is
    sent unless `confirm` says yes."""
    from scripts._xmargin_deploy import chain as chain_mod

    real_info = chain_mod.network_info
    monkeypatch.setattr(
        chain_mod,
        "network_info",
        lambda: real_info().__class__(**(vars(real_info()) | {"choice": "ethereum:sepolia", "name": "sepolia", "is_dev": False})),
    )
    account = ape_account(9)
    nonce = account.nonce
    with pytest.raises(ConfigError, match=r"assets\[0\]\.token\.mock: mock tokens are only allowed on local networks"):
        run_deploy(load_config(LOCAL_YAML), account, project, tmp_path / "live.json")
    token, feed = external_token_and_feed
    cfg = parse_config(_real_address_config(token, feed, network="ethereum:sepolia"))
    questions = []
    with pytest.raises(chain_mod.DeployError, match="not confirmed"):
        run_deploy(cfg, account, project, tmp_path / "live.json", confirm=lambda q: questions.append(q) or False)
    assert questions and questions[0].startswith("Send 8 transaction(s) to ethereum:sepolia from")
    assert account.nonce == nonce and not (tmp_path / "live.json").exists()
    dry, _ = run_deploy(cfg, account, project, tmp_path / "live.json", dry_run=True, confirm=lambda q: pytest.fail(q))
    assert dry.sent == 0 and account.nonce == nonce
