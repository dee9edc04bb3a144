"""A short crash replay end to end (anvil, `ape run deploy`, 150 accounts,
Black Thursday's worst 20 hours at 6 price steps an hour, the keeper process
started late), and the report's figures checked against the chain read
independently: raw `eth_getLogs` with hand-written event signatures,
`MarginEngine.health` and `MarginLens.market` at the last block. ~70-100 s.

The keeper starts only after KEEPER_DELAY_HOURS of the window (MakerDAO's
keepers failed on the day): until then nobody liquidates, so the crash
leaves accounts insolvent whatever the keeper's speed on this machine, and
the bad-debt path (liquidation down to dust, then settle_bad_debt) always
runs -- a precondition that does not depend on wall-clock timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi import decode
from eth_utils import to_checksum_address
from rich.console import Console
from web3 import Web3

from scripts._xmargin_replay.plots import write_plots
from scripts._xmargin_replay.prices import resolve_scenario
from scripts._xmargin_replay.report import analyse, lens_abi, render_markdown, write_report
from scripts._xmargin_replay.runner import ReplayOptions, run_replay

# 08:00 + 16 h = 00:00 UTC on the 13th: ETH $171 -> $110, BTC $7,390 -> $4,860 with
# nobody liquidating; prices keep falling to ETH $90 / BTC $3,860 at 02:00 while the keeper catches up
KEEPER_DELAY_HOURS = 16

LIQUIDATION = "Liquidation(address,address,uint8,address,address,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256)"
BAD_DEBT = "BadDebtSettled(address,address,uint8,uint256,uint256,uint256)"
INSURANCE_USED = "InsuranceFundUsed(address,uint256)"
LOSS = "LossSocialised(address,uint256,uint256)"
HEALTH_ABI = [{"name": "health", "type": "function", "stateMutability": "view",
               "inputs": [{"name": "owner", "type": "address"}, {"name": "sub_id", "type": "uint8"}],
               "outputs": [{"name": "", "type": "int256"}, {"name": "", "type": "int256"}, {"name": "", "type": "bool"}]}]


def _logs(w3: Web3, address: str, signature: str) -> list[dict]:
    topic = Web3.keccak(text=signature)
    return w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": address, "topics": [topic]})


def _chain_facts(run) -> dict:
    """What the chain says, read without the report code."""
    w3 = Web3(Web3.HTTPProvider(run.rpc_url))
    engine = run.record["engine"]
    token_symbol = {a["token"].lower(): s for s, a in run.record["assets"].items()}
    liqs = []
    for log in _logs(w3, engine, LIQUIDATION):
        sub_id, repay_asset, seize_asset, repaid, _, seized, _, to_insurance, *_ = decode(
            ["uint8", "address", "address"] + ["uint256"] * 8, bytes(log["data"]))
        liqs.append({"tx": "0x" + bytes(log["transactionHash"]).hex(), "block": log["blockNumber"],
                     "owner": to_checksum_address(log["topics"][1][-20:]), "sub_id": sub_id,
                     "repay": token_symbol[repay_asset.lower()], "seize": token_symbol[seize_asset.lower()],
                     "repaid": repaid, "seized": seized, "to_insurance": to_insurance})
    bad = {}
    bad_txs = set()
    for log in _logs(w3, engine, BAD_DEBT):
        bad_txs.add(bytes(log["transactionHash"]))
        _, debt, _, _ = decode(["uint8", "uint256", "uint256", "uint256"], bytes(log["data"]))
        symbol = token_symbol[to_checksum_address(log["topics"][2][-20:]).lower()]
        bad[symbol] = bad.get(symbol, 0) + debt
    used = sum(1 for _ in _logs(w3, engine, INSURANCE_USED))
    losses = sum(1 for _ in _logs(w3, engine, LOSS))
    health = w3.eth.contract(address=engine, abi=HEALTH_ABI)
    borrowers = [a for a in run.accounts if not a.is_lender]
    below = [a for a in borrowers if health.functions.health(to_checksum_address(a.owner), a.sub_id).call()[1] < 0]
    lens = w3.eth.contract(address=run.record["lens"], abi=lens_abi())
    funds = {s: lens.functions.market(a["token"]).call()[11] for s, a in run.record["assets"].items()}
    return {"liquidations": liqs, "bad_debt": bad, "bad_debt_txs": len(bad_txs), "insurance_used_events": used, "loss_events": losses,
            "below_maintenance": len(below), "borrowers": len(borrowers), "funds": funds}


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay")
    options = ReplayOptions(
        scenario=resolve_scenario(None, "2020-03-12T08:00", "2020-03-13T04:00", "coinbase"),
        accounts=150, seed=3, profile="risky", substeps=6, keeper_delay_hours=KEEPER_DELAY_HOURS,
    )
    captured = {}

    def analyse_and_check(run):
        captured["facts"] = _chain_facts(run)
        captured["run"] = run
        return analyse(run)

    report = run_replay(options, Console(file=open("/dev/null", "w")), analyse_and_check)
    plots = write_plots(report, [(e["t"], e["seize"], e["seize_price"]) for e in report["liquidation_events"]], out)
    write_report(report, out, 0.0, plots)
    return report, captured["facts"], captured["run"], out


def test_liquidations_match_the_chain(replay):
    report, facts, _, _ = replay
    chain = facts["liquidations"]
    assert len(chain) > 20  # the window crashes ETH ~40%: the keeper must have worked
    assert report["liquidations"]["count"] == len(chain)
    assert sorted((e["tx"], e["owner"], e["repaid"], e["seized"]) for e in report["liquidation_events"]) == sorted(
        (e["tx"], e["owner"], e["repaid"], e["seized"]) for e in chain)
    assert report["liquidations"]["accounts"] == len({(e["owner"], e["sub_id"]) for e in chain})
    for symbol, figures in report["liquidations"]["by_asset"].items():
        assert figures["repaid"] == sum(e["repaid"] for e in chain if e["repay"] == symbol)
        assert figures["seized"] == sum(e["seized"] for e in chain if e["seize"] == symbol)
        assert figures["to_insurance"] == sum(e["to_insurance"] for e in chain if e["seize"] == symbol)
    assert report["gas"]["liquidation"]["txs"] == len({e["tx"] for e in chain})
    assert set(report["liquidations"]["liquidators"]) == {report["setup"]["keeper_address"]}


def test_late_keeper_finds_insolvent_accounts(replay):
    report, _, run, _ = replay
    start = report["setup"]["keeper_start"]
    assert report["setup"]["keeper_delay_hours"] == KEEPER_DELAY_HOURS
    assert start["utc"] == "2020-03-13 00:00"
    # the keeper's first block comes after the recorded state, and after every price step before 00:00
    steps_before = sum(1 for s in run.plan.steps if s.t < run.plan.steps[0].t + KEEPER_DELAY_HOURS * 3600)
    assert start["block"] == run.step_blocks[steps_before - 1] + run.options.blocks_per_step - 1
    assert 0 < start["insolvent"] <= start["below_maintenance"] and start["shortfall_usd"] > 0
    # nobody liquidated before the keeper existed
    assert all(e["block"] > start["block"] for e in report["liquidation_events"])


def test_bad_debt_matches_the_chain(replay):
    report, facts, run, _ = replay
    start = report["setup"]["keeper_start"]
    assert facts["bad_debt"], f"{start['insolvent']} accounts were insolvent when the keeper started: their shortfall is bad debt"
    assert {s: v["amount"] for s, v in report["bad_debt"]["by_asset"].items()} == facts["bad_debt"]
    # one BadDebtSettled per (account, debt asset): an account owing two assets emits two
    assert report["bad_debt"]["events"] == sum(v["events"] for v in report["bad_debt"]["by_asset"].values())
    assert 0 < report["bad_debt"]["accounts"] <= report["bad_debt"]["events"]
    assert sum(v["events"] for v in report["insurance_fund_used"].values()) == facts["insurance_used_events"]
    assert sum(v["events"] for v in report["losses_socialised"].values()) == facts["loss_events"]
    # the keeper does not settle bad debt: every settlement is one of the replay's transactions
    assert report["bad_debt"]["settled_by_replay"] == facts["bad_debt_txs"]
    assert report["gas"]["settle_bad_debt"]["txs"] == facts["bad_debt_txs"]
    assert report["gas"]["settle_bad_debt"]["txs"] + report["gas"]["settle_bad_debt"]["reverted"] == len(set(run.settle_txs))


def test_no_account_left_below_maintenance(replay):
    report, facts, _, _ = replay
    assert facts["below_maintenance"] == 0
    assert report["end"]["accounts_below_maintenance"] == 0 and report["end"]["liquidatable"] == 0
    assert report["setup"]["borrowers"] == facts["borrowers"]


def test_samples_latency_and_files(replay):
    report, facts, run, out = replay
    last = report["samples"][-1]
    assert last["block"] == report["chain"]["last_block"]
    for symbol, fund in facts["funds"].items():
        decimals = {"WETH": 18, "WBTC": 8, "USDC": 6}[symbol]
        assert last["insurance_fund"][symbol] == fund / 10**decimals
    # one sample per simulated hour + the end
    assert len(report["samples"]) == 20 + 1 + 1
    lat = report["keeper_latency_blocks"]
    assert lat["episodes"] + lat["unobserved"] >= report["liquidations"]["accounts"]
    assert sum(lat["histogram"].values()) == lat["episodes"] and 0 <= lat["min"] <= lat["median"] <= lat["max"]
    saved = json.loads((out / "report.json").read_text())
    assert saved["liquidations"]["count"] == report["liquidations"]["count"]
    md = (out / "report.md").read_text()
    assert f"| liquidations | {report['liquidations']['count']} on {report['liquidations']['accounts']} accounts |" in md
    assert md == render_markdown(saved, ["prices.png", "health.png", "insurance.png"])
    for name in ("prices.png", "health.png", "insurance.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run.run_dir is None  # cleaned up after success
