"""The committed front-end ABIs (abi/) match the compiled contracts.

Compiles every deployable with vyper 0.4.3 through tools/export_abi.py and
compares byte for byte; on drift the message says which file and how to fix
it (`python tools/export_abi.py`). ~30 s (one compiler session).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import export_abi  # noqa: E402


@pytest.fixture(scope="module")
def exported() -> dict[str, str]:
    return export_abi.build()


def test_committed_abis_match_compiled_contracts(exported):
    problems = export_abi.diff(exported)
    assert not problems, "ABI drift -- " + export_abi.FIX_HINT + ":\n  " + "\n  ".join(problems)


def test_keeper_abis_are_the_exported_ones(exported, tmp_path):
    """keeper/abi/ ships the engine and lens ABIs the keeper decodes with:
    they must be the export's, not hand-edited copies."""
    problems = export_abi.keeper_diff(exported)
    assert not problems, "keeper ABI drift -- " + export_abi.FIX_HINT + ":\n  " + "\n  ".join(problems)
    export_abi.write(export_abi.keeper_copies(exported), tmp_path, prune=False)
    assert export_abi.keeper_diff(exported, tmp_path) == []
    (tmp_path / "MarginLens.json").write_text("[]")
    assert export_abi.keeper_diff(exported, tmp_path) == ["keeper/abi/MarginLens.json: differs from the compiled contracts"]


def test_engine_abi_reaches_every_extension_function(exported):
    engine = json.loads(exported["MarginEngine.json"])
    names = {i["name"] for i in engine if i["type"] == "function"}
    # Cold paths live in the extension and are called through the engine address.
    for name in ("settle_bad_debt", "batch", "set_operator", "transfer_collateral", "accrue", "pause"):
        assert name in names, name
    # Hot paths and events of the engine itself.
    assert {"deposit", "borrow", "liquidate", "health"} <= names
    events = {i["name"] for i in engine if i["type"] == "event"}
    assert {"Liquidation", "BadDebtSettled", "InsuranceFundUsed", "LossSocialised"} <= events
    assert [i["type"] for i in engine].count("constructor") == 1
    ctor = next(i for i in engine if i["type"] == "constructor")
    assert [a["name"] for a in ctor["inputs"]][-2:] == ["extension", "planner"]  # the engine's, not the extension's


def test_callback_interface_abi(exported):
    (callback,) = json.loads(exported["interfaces/ILiquidationCallback.json"])
    assert callback["name"] == "on_liquidation" and callback["stateMutability"] == "nonpayable"
    assert [(i["name"], i["type"]) for i in callback["inputs"]] == [
        ("owner", "address"),
        ("sub_id", "uint8"),
        ("repay_asset", "address"),
        ("repay_amount", "uint256"),
        ("seize_asset", "address"),
        ("seized_amount", "uint256"),
        ("data", "bytes"),
    ]


def test_drift_is_reported_with_the_fix(exported, tmp_path):
    export_abi.write(exported, tmp_path)
    assert export_abi.diff(exported, tmp_path) == []
    lens = tmp_path / "MarginLens.json"
    lens.write_text(lens.read_text().replace('"health_ratio"', '"health_ratio_v0"'))
    (tmp_path / "Old.json").write_text("[]")
    (tmp_path / "mocks" / "MockUSDT.json").unlink()
    local = tmp_path / "deployments" / "local" / "local.json"  # `--local` exports are never drift
    local.parent.mkdir(parents=True)
    local.write_text("{}")
    assert export_abi.diff(exported, tmp_path) == [
        "abi/MarginLens.json: differs from the compiled contracts",
        "abi/mocks/MockUSDT.json: missing",
        "abi/Old.json: not produced by the export (stale file)",
    ]
    export_abi.write(exported, tmp_path)  # repairs, prunes the stale file, keeps the local export
    assert export_abi.diff(exported, tmp_path) == [] and local.is_file() and not (tmp_path / "Old.json").exists()


def test_deployment_records_are_reduced_for_front_ends():
    record = {
        "network": "ethereum:sepolia", "chain_id": 11155111, "deployment_block": 7,
        "engine": "0xE", "configurator": "0xC", "lens": "0xL", "extension": "0xX",
        "assets": {"USDC": {"token": "0xU", "feed": "0xF", "asset_id": 1}, "WETH": {"token": "0xW", "feed": "0xG", "asset_id": 0}},
        "transactions": [{"step": "deploy_engine", "hash": "0x1"}],
    }
    dep = export_abi.frontend_deployment(record)
    assert dep == {
        "network": "ethereum:sepolia", "chainId": 11155111, "deploymentBlock": 7,
        "contracts": {"MarginEngine": "0xE", "MarginConfigurator": "0xC", "MarginLens": "0xL", "MarginEngineExtension": "0xX"},
        "assets": {"WETH": {"token": "0xW", "feed": "0xG", "assetId": 0}, "USDC": {"token": "0xU", "feed": "0xF", "assetId": 1}},
    }
    assert list(dep["assets"]) == ["WETH", "USDC"]  # asset id order


def test_package_imports_in_node():
    # node is part of the set-up (npm installs anvil): missing node is a failure, not a skip.
    assert shutil.which("node") is not None, "node is not on PATH: install Node.js (make setup needs it for anvil)"
    script = 'import("./index.js").then(m => console.log(JSON.stringify(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v.length])))))'
    done = subprocess.run(["node", "--no-warnings", "-e", script], cwd=ROOT / "abi", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["MarginEngine"] == len(json.loads((ROOT / "abi" / "MarginEngine.json").read_text()))
    assert set(counts) == set(json.loads((ROOT / "abi" / "index.json").read_text())["abis"])
