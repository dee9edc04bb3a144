"""docs/integration.md stays correct: its web3.py blocks run top to bottom
against a fresh anvil deployment (then a liquidation is provoked and the
doc's listener must see it), and every function/event its viem blocks name
exists in the ABI they pass. ~40 s (deployment with `ape run deploy`)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integration.md"
ABI = ROOT / "abi"
# anvil's well-known test keys (mnemonic "test test ... junk"), accounts 1 and 2
USER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
LIQUIDATOR_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


# ---------------------------------------------------------------------------
# JS snippets against the ABI (no JS runtime needed)
# ---------------------------------------------------------------------------


def _abi_names(name: str, kind: str) -> set[str]:
    path = ABI / (f"mocks/{name}.json" if name.startswith("Mock") else f"{name}.json")
    return {i["name"] for i in json.loads(path.read_text()) if i["type"] == kind}


def test_viem_snippets_use_names_that_exist_in_the_abi():
    ts = "\n".join(code_blocks("ts"))
    calls = re.findall(r"abi:\s*(\w+),\s*functionName:\s*\"(\w+)\"", ts)
    events = re.findall(r"abi:\s*(\w+),\s*eventName:\s*\"(\w+)\"", ts)
    assert len(calls) == 7 and len(events) == 1, (calls, events)  # every call site was recognised
    for contract, fn in calls:
        assert fn in _abi_names(contract, "function"), f"{contract}.{fn} is not in the ABI"
    for contract, ev in events:
        assert ev in _abi_names(contract, "event"), f"event {contract}.{ev} is not in the ABI"
    liquidation = next(i for i in json.loads((ABI / "MarginEngine.json").read_text()) if i.get("name") == "Liquidation")
    fields = {i["name"] for i in liquidation["inputs"]}
    assert set(re.findall(r"args\.(\w+)", ts)) <= fields
    imported = re.search(r"import \{([^}]*)\} from \"@xmargin/abi\"", ts).group(1)
    exports = json.loads((ABI / "index.json").read_text())["abis"]
    assert {n.strip() for n in imported.split(",")} <= set(exports)


def test_python_snippets_name_existing_abi_entries():
    py = "\n".join(code_blocks("python"))
    engine_fns = _abi_names("MarginEngine", "function")
    lens_fns = _abi_names("MarginLens", "function")
    for fn in re.findall(r"engine\.functions\.(\w+)", py):
        assert fn in engine_fns, fn
    for fn in re.findall(r"lens\.functions\.(\w+)", py):
        assert fn in lens_fns, fn
    for ev in re.findall(r"engine\.events\.(\w+)", py):
        assert ev in _abi_names("MarginEngine", "event"), ev


# ---------------------------------------------------------------------------
# web3.py snippets executed against anvil
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node():
    from scripts._xmargin_sim import Anvil

    with Anvil.start() as anvil:
        yield anvil


@pytest.fixture(scope="module")
def deployment_file(node, tmp_path_factory):
    sys.path.insert(0, str(ROOT / "tools"))
    import export_abi
    from scripts._xmargin_sim.seed import deploy_local

    folder = tmp_path_factory.mktemp("integration")
    record = deploy_local(node.url, folder / "record.json")
    path = folder / "local.json"
    path.write_text(json.dumps(export_abi.frontend_deployment(record.model_dump(mode="json"))))
    return path


def test_web3py_snippets_run_against_a_deployment(node, deployment_file, monkeypatch):
    from eth_account import Account

    from scripts._xmargin_sim import Sim

    monkeypatch.setenv("XMARGIN_RPC_URL", node.url)
    monkeypatch.setenv("XMARGIN_DEPLOYMENT", str(deployment_file))
    monkeypatch.setenv("XMARGIN_ABI_DIR", str(ABI))
    monkeypatch.setenv("XMARGIN_PRIVATE_KEY", USER_KEY)
    user = Account.from_key(USER_KEY).address
    # a lender provides the USDC the doc's borrower borrows
    sim = Sim(node.url, deployment_file.parent / "record.json")
    lender = "0x" + "1e" * 20
    sim.fund(lender, {"USDC": 1_000_000 * 10**6})
    sim.call_fn(sim.engine, "deposit", sim.assets["USDC"].token, 1_000_000 * 10**6, sender=lender)
    ns: dict = {"__name__": "integration_doc"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in code_blocks("python"):
            exec(compile(block, str(DOC), "exec"), ns)  # noqa: S102 (the doc's own code)
    printed = out.getvalue()

    # deposit: 5 WETH at the initial index (1e18) -> 5e18 shares
    assert "deposited 5.0 WETH for 5000000000000000000 shares" in printed
    engine, lens, tokens = ns["engine"], ns["lens"], ns["tokens"]
    weth, usdc = tokens["WETH"].address, tokens["USDC"].address
    assert engine.functions.position(user, 0, weth).call() == [5 * 10**18, 0]
    assert tokens["WETH"].functions.balanceOf(user).call() == 5 * 10**18

    # the summary was read before the borrow: no debt
    summary = ns["summary"]
    assert summary["balances"] == {"WETH": {"deposit": 5 * 10**18, "borrow": 0}}
    assert summary["ratio"] is None and summary["liquidatable"] is False and summary["prices_valid"] is True
    # 5 WETH at $2,000 with initial asset weight 0.80 -> $8,000 of initial health exactly
    assert summary["initial_health_usd"] == 8000.0 and summary["maintenance_health_usd"] == 8500.0

    # borrow: half of max_borrow in USDC, exactly
    amount, limit = ns["amount"], ns["limit"]
    assert amount == limit // 2 and limit > 0
    assert tokens["USDC"].functions.balanceOf(user).call() == amount
    balances = ns["account_summary"](user)["balances"]
    assert balances["USDC"]["borrow"] == amount and balances["WETH"]["deposit"] == 5 * 10**18

    # provoke a liquidation: ETH -65% (half the borrow limit was used), another account liquidates
    start = node.block_number() + 1
    sim.set_price("WETH", "700")
    liquidator = Account.from_key(LIQUIDATOR_KEY).address
    sim.fund(liquidator, {"USDC": 10**6 * 10**6})
    assert ns["account_summary"](user)["liquidatable"] is True
    raw = sim.call_fn(engine, "liquidate", user, 0, usdc, 2**256 - 1, weth, 0, sender=liquidator, gas=3_000_000)
    receipt = ns["w3"].eth.get_transaction_receipt(raw["transactionHash"])
    (expected,) = engine.events.Liquidation().process_receipt(receipt, errors=ns["DISCARD"])
    assert expected.args.owner == user and expected.args.liquidator == liquidator and expected.args.repaid > 0

    events = ns["liquidations_between"](start, node.block_number(), owner=user)
    assert [(e.transactionHash, e.args.repaid, e.args.seized) for e in events] == [
        (expected.transactionHash, expected.args.repaid, expected.args.seized)
    ]
    assert ns["liquidations_between"](start, node.block_number(), owner=liquidator) == []
    seen = []
    ns["watch_liquidations"](seen.append, start, poll_seconds=0, stop=lambda: bool(seen))
    assert [e.transactionHash for e in seen] == [expected.transactionHash]
    text = ns["describe"](seen[0])
    assert text.startswith(f"block {receipt['blockNumber']}: {user}:0 liquidated by {liquidator}, repaid ")
    assert " USDC, seized " in text and " WETH (bonus " in text
