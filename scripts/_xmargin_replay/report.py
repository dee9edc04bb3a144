"""The replay report: every figure read from the chain, never from what the
replay meant to do.

- liquidations: `Liquidation` events of the engine in the replay's blocks;
  USD values use the feed answer in force at the event's block (the last
  `AnswerUpdated` event of the feed at or before it), i.e. the price the
  engine used;
- bad debt / insurance fund / socialised losses: `BadDebtSettled`,
  `InsuranceFundUsed`, `LossSocialised`, `CollateralForfeited` events;
  gas: the receipts of the liquidation and settlement transactions;
- keeper latency, hourly health distribution, insurance fund over time and
  the end state: read from the chain head while the replay ran
  (observer.py: `MarginEngine.weighted_health` of every borrower at each
  feed-update block, `MarginLens.market` hourly), because anvil answers
  calls at old blocks slowly.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3

from .observer import RATIO_BUCKETS  # noqa: F401 (re-exported for plots)
from .prices import iso

ROOT = Path(__file__).resolve().parents[2]
WAD = 10**18
EVENTS = ("Liquidation", "BadDebtSettled", "InsuranceFundUsed", "LossSocialised", "CollateralForfeited")


def engine_abi() -> list:
    return json.loads((ROOT / "abi" / "MarginEngine.json").read_text())


def lens_abi() -> list:
    return json.loads((ROOT / "abi" / "MarginLens.json").read_text())


def event_topic(name: str) -> str:
    """keccak of the event signature, e.g. Liquidation(address,...)."""
    (item,) = [i for i in engine_abi() if i["type"] == "event" and i["name"] == name]
    signature = f"{name}({','.join(i['type'] for i in item['inputs'])})"
    return "0x" + Web3.keccak(text=signature).hex().removeprefix("0x")


FEED_ABI = [{"name": "latestAnswer", "type": "function", "stateMutability": "view", "inputs": [],
             "outputs": [{"name": "", "type": "int256"}]}]


@dataclass
class Chain:
    """Read access to the replay's node."""

    w3: Web3
    rpc: Any  # scripts._xmargin_sim.rpc.Rpc (batched JSON-RPC)
    engine: Any
    lens: Any
    record: dict

    @classmethod
    def connect(cls, url: str, record: dict) -> "Chain":
        from scripts._xmargin_sim.rpc import Rpc

        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
        return cls(w3, Rpc(url), w3.eth.contract(address=record["engine"], abi=engine_abi()),
                   w3.eth.contract(address=record["lens"], abi=lens_abi()), record)

    def events(self, name: str, start: int, end: int) -> list[dict]:
        topic = event_topic(name)
        logs = self.rpc.call("eth_getLogs", {"fromBlock": hex(start), "toBlock": hex(end), "address": self.record["engine"],
                                             "topics": [topic]})
        out = []
        for raw in logs:
            log = self.w3.eth.contract(abi=engine_abi()).events[name]().process_log(_to_log(raw))
            out.append({"block": log["blockNumber"], "tx": log["transactionHash"].to_0x_hex(), "log_index": log["logIndex"],
                        **dict(log["args"])})
        return out

    def call_batch(self, calls: list[tuple[str, str, int]]) -> list[bytes]:
        """[(to, data hex, block)] -> raw results."""
        results = self.rpc.batch([("eth_call", [{"to": to, "data": data}, hex(block)]) for to, data, block in calls])
        return [bytes.fromhex(r.removeprefix("0x")) for r in results]


def _to_log(raw: dict) -> dict:
    from hexbytes import HexBytes

    return {
        "address": to_checksum_address(raw["address"]),
        "topics": [HexBytes(t) for t in raw["topics"]],
        "data": HexBytes(raw["data"]),
        "blockNumber": int(raw["blockNumber"], 16),
        "transactionHash": HexBytes(raw["transactionHash"]),
        "transactionIndex": int(raw["transactionIndex"], 16),
        "blockHash": HexBytes(raw["blockHash"]),
        "logIndex": int(raw["logIndex"], 16),
        "removed": False,
    }


# ---------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------


def analyse(run) -> dict:
    """The report (a JSON-able dict) of a finished ReplayRun."""
    chain = Chain.connect(run.rpc_url, run.record)
    record = run.record
    symbols = {a["token"].lower(): s for s, a in record["assets"].items()}
    info = _asset_info(chain, record)
    start, end = run.first_block, run.last_block
    ev = {name: chain.events(name, start, end) for name in EVENTS}
    borrowers = [a for a in run.accounts if not a.is_lender]
    refs = [(to_checksum_address(a.owner), a.sub_id) for a in borrowers]

    # prices at event blocks: the answer in force (last AnswerUpdated at or before the block)
    feed_path = _feed_path(chain, record, 0, end)

    def price_at_block(symbol: str, block: int) -> int:
        blocks = [b for b, _, _ in feed_path[symbol]]
        i = bisect_right(blocks, block) - 1
        return feed_path[symbol][i][2]

    def usd(token: str, amount: int, block: int) -> float:
        s = symbols[token.lower()]
        return amount / 10 ** info[s]["decimals"] * price_at_block(s, block) / 1e8

    liqs = ev["Liquidation"]
    by_asset: dict[str, dict] = {}
    for e in liqs:
        r, s = symbols[e["repay_asset"].lower()], symbols[e["seize_asset"].lower()]
        by_asset.setdefault(r, {"repaid": 0, "repaid_usd": 0.0, "seized": 0, "seized_usd": 0.0, "to_insurance": 0, "to_insurance_usd": 0.0})
        by_asset.setdefault(s, {"repaid": 0, "repaid_usd": 0.0, "seized": 0, "seized_usd": 0.0, "to_insurance": 0, "to_insurance_usd": 0.0})
        by_asset[r]["repaid"] += e["repaid"]
        by_asset[r]["repaid_usd"] += usd(e["repay_asset"], e["repaid"], e["block"])
        by_asset[s]["seized"] += e["seized"]
        by_asset[s]["seized_usd"] += usd(e["seize_asset"], e["seized"], e["block"])
        by_asset[s]["to_insurance"] += e["to_insurance"]
        by_asset[s]["to_insurance_usd"] += usd(e["seize_asset"], e["to_insurance"], e["block"])
    liquidators: dict[str, int] = {}
    for e in liqs:
        liquidators[e["liquidator"]] = liquidators.get(e["liquidator"], 0) + 1

    def per_asset(events: list[dict], field: str) -> dict:
        out: dict[str, dict] = {}
        for e in events:
            s = symbols[e["asset"].lower()]
            o = out.setdefault(s, {"amount": 0, "usd": 0.0, "events": 0})
            o["amount"] += e[field]
            o["usd"] += usd(e["asset"], e[field], e["block"])
            o["events"] += 1
        return out

    bad_debt = per_asset(ev["BadDebtSettled"], "debt")
    senders = _tx_senders(chain, {e["tx"] for e in ev["BadDebtSettled"]})
    gas = _gas(chain, liqs, run.settle_txs)
    latency = run.latency.summary()
    samples = [dict(x, utc=iso(x["t"])) for x in run.samples]
    end_h = run.end_healths
    below = [r for r, h in zip(refs, end_h) if h.below_maintenance]
    liquidatable_end = [r for r, h in zip(refs, end_h) if h.below_maintenance and h.prices_valid]
    with_debt = sum(1 for h in end_h if h.debt)

    blocks = sorted({e["block"] for e in liqs})
    stamps = dict(zip(blocks, (int(b["timestamp"], 16) for b in chain.rpc.batch([("eth_getBlockByNumber", [hex(b), False]) for b in blocks])))) if blocks else {}
    liquidation_events = [
        {
            "block": e["block"], "t": stamps[e["block"]], "tx": e["tx"], "owner": e["owner"], "sub_id": e["sub_id"],
            "liquidator": e["liquidator"], "repay": symbols[e["repay_asset"].lower()], "seize": symbols[e["seize_asset"].lower()],
            "repaid": e["repaid"], "seized": e["seized"], "to_insurance": e["to_insurance"], "bonus_wad": e["bonus"],
            "repaid_usd": round(usd(e["repay_asset"], e["repaid"], e["block"]), 2),
            "seize_price": price_at_block(symbols[e["seize_asset"].lower()], e["block"]) / 1e8,
        }
        for e in sorted(liqs, key=lambda e: (e["block"], e["log_index"]))
    ]
    return {
        "scenario": {
            "name": run.plan.scenario.name,
            "source": run.plan.scenario.source,
            "description": run.plan.scenario.description,
            "from_utc": iso(run.plan.scenario.start),
            "to_utc": iso(run.plan.scenario.end),
        },
        "setup": {
            "accounts": len(run.accounts),
            "borrowers": len(borrowers),
            "lenders": len(run.accounts) - len(borrowers),
            "seed": run.options.seed,
            "profile": run.options.profile,
            "substeps_per_hour": run.options.substeps if run.plan.scenario.source == "coinbase" else None,
            "deviation_bps": run.options.deviation_bps,
            "heartbeat_s": run.options.heartbeat,
            "blocks_per_step": run.options.blocks_per_step,
            "block_wall_s": run.options.block_wall,
            "keeper": run.options.keeper,
            "keeper_address": run.keeper_address,
            "keeper_delay_hours": run.options.keeper_delay_hours,
            "keeper_start": None if run.keeper_start is None else {
                "utc": iso(run.keeper_start.t), "block": run.keeper_start.block,
                "below_maintenance": run.keeper_start.below_maintenance, "insolvent": run.keeper_start.insolvent,
                "shortfall_usd": run.keeper_start.shortfall_usd},
            "rejected_rounds": run.plan.rejected_rounds,
            "decimals": {s: info[s]["decimals"] for s in info},
            "oracle_bounds_note": "WETH/WBTC min_price widened to $10/$100 (local.yaml: $100/$1000) so Black Thursday's $90 ETH is accepted",
        },
        "chain": {
            "first_block": start,
            "last_block": end,
            "price_steps": len(run.plan.steps),
            "feed_updates": {s: len(v) for s, v in run.update_blocks.items()},
            "drain_blocks": run.drain_blocks_used,
        },
        "liquidations": {
            "count": len(liqs),
            "accounts": len({(e["owner"], e["sub_id"]) for e in liqs}),
            "volume_usd": sum(a["repaid_usd"] for a in by_asset.values()),
            "seized_usd": sum(a["seized_usd"] for a in by_asset.values()),
            "to_insurance_usd": sum(a["to_insurance_usd"] for a in by_asset.values()),
            "by_asset": by_asset,
            "liquidators": liquidators,
        },
        "bad_debt": {
            "events": len(ev["BadDebtSettled"]),
            "accounts": len({(e["owner"], e["sub_id"]) for e in ev["BadDebtSettled"]}),
            "usd": sum(a["usd"] for a in bad_debt.values()),
            "by_asset": bad_debt,
            "settled_by": {_role(addr, run): n for addr, n in _count(senders.values()).items()},
            "settled_by_replay": gas_settled(run, chain),
        },
        "collateral_forfeited": per_asset(ev["CollateralForfeited"], "amount"),
        "insurance_fund_used": per_asset(ev["InsuranceFundUsed"], "amount"),
        "losses_socialised": per_asset(ev["LossSocialised"], "amount"),
        "keeper_latency_blocks": latency,
        "gas": gas,
        "end": {
            "block": end,
            "accounts_below_maintenance": len(below),
            "liquidatable": len(liquidatable_end),
            "borrowers_with_debt": with_debt,
            "below_maintenance_refs": [f"{o}:{s}" for o, s in below[:20]],
        },
        "samples": samples,
        "feed_path": {sym: [[t, a / 1e8] for b, t, a in path if b >= start] for sym, path in feed_path.items()},
        "liquidation_events": liquidation_events,
        "timings_s": {k: round(v, 1) for k, v in run.timings.items()},
    }


def gas_settled(run, chain: Chain) -> int:
    """Successful settle_bad_debt transactions sent by the replay."""
    if not run.settle_txs:
        return 0
    receipts = chain.rpc.batch([("eth_getTransactionReceipt", [h]) for h in run.settle_txs])
    return sum(1 for r in receipts if int(r["status"], 16) == 1)


def _role(address: str, run) -> str:
    if run.keeper_address and address.lower() == run.keeper_address.lower():
        return f"keeper {address}"
    if address.lower() == run.replay_sender.lower():
        return f"replay {address}"
    return address


LATENCY_BUCKETS = [(0, 0), (1, 1), (2, 2), (3, 5), (6, 10), (11, 20), (21, 50), (51, 10**9)]


def _count(items) -> dict:
    out: dict = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


ANSWER_UPDATED = "0x" + Web3.keccak(text="AnswerUpdated(int256,uint256,uint256)").hex().removeprefix("0x")


def _feed_path(chain: Chain, record: dict, start: int, end: int) -> dict[str, list[tuple[int, int, int]]]:
    """Every answer the mock feeds published (AnswerUpdated events):
    symbol -> [(block, updatedAt, answer with 8 decimals)], in order."""
    out = {}
    for s, a in record["assets"].items():
        logs = chain.rpc.call("eth_getLogs", {"fromBlock": hex(start), "toBlock": hex(end), "address": a["feed"],
                                              "topics": [ANSWER_UPDATED]})
        out[s] = [(int(log["blockNumber"], 16), int(log["data"][2:66], 16),
                   int.from_bytes(bytes.fromhex(log["topics"][1][2:]), "big", signed=True)) for log in logs]
    return out


def _asset_info(chain: Chain, record: dict) -> dict:
    out = {}
    for s, a in record["assets"].items():
        c = chain.lens.functions.asset_config(a["token"]).call()
        out[s] = {"token": a["token"], "feed": a["feed"], "decimals": c[3]}
    return out


def _tx_senders(chain: Chain, hashes: set[str]) -> dict[str, str]:
    if not hashes:
        return {}
    txs = chain.rpc.batch([("eth_getTransactionByHash", [h]) for h in sorted(hashes)])
    return {t["hash"]: to_checksum_address(t["from"]) for t in txs}


def _gas(chain: Chain, liqs: list[dict], settle_txs: list[str]) -> dict:
    def stats(hashes: list[str]) -> dict:
        """Gas of the successful transactions; `reverted` counts the others."""
        if not hashes:
            return {"txs": 0, "total": 0, "mean": 0, "max": 0, "reverted": 0}
        receipts = chain.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        used = [int(r["gasUsed"], 16) for r in receipts if int(r["status"], 16) == 1]
        reverted = len(receipts) - len(used)
        if not used:
            return {"txs": 0, "total": 0, "mean": 0, "max": 0, "reverted": reverted}
        return {"txs": len(used), "total": sum(used), "mean": round(sum(used) / len(used)), "max": max(used), "reverted": reverted}

    return {"liquidation": stats(sorted({e["tx"] for e in liqs})), "settle_bad_debt": stats(sorted(set(settle_txs)))}


def _usd(x: float) -> str:
    return f"${x:,.0f}"


def write_report(report: dict, out_dir: Path, wall_time: float, plots: list[str]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = dict(report, wall_time_s=round(wall_time, 1))
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md_path = out_dir / "report.md"
    md_path.write_text(render_markdown(report, plots))
    return md_path, json_path


def _keeper_start_note(su: dict) -> str:
    ks = su.get("keeper_start")
    if not ks:
        return ""
    when = (f" Late keeper: its process started {su['keeper_delay_hours']:g} h into the window ({ks['utc']} UTC, after block {ks['block']})"
            if su.get("keeper_delay_hours") else f" It started before the first price (after block {ks['block']})")
    return (f"{when}, finding {ks['below_maintenance']} account(s) below maintenance, {ks['insolvent']} of them insolvent "
            f"(collateral value below debt value, shortfall {_usd(ks['shortfall_usd'])}).")


def render_markdown(r: dict, plots: list[str]) -> str:
    sc, su, li, bd, lat, g, end = r["scenario"], r["setup"], r["liquidations"], r["bad_debt"], r["keeper_latency_blocks"], r["gas"], r["end"]
    lines = [
        f"# Crash replay: {sc['name']}",
        "",
        f"{sc['description']}. Window {sc['from_utc']} to {sc['to_utc']} UTC ({sc['source']} data).",
        "",
        f"Generated by `python -m scripts.replay` (`make replay`); every figure below is read from the chain "
        f"(events, receipts, and engine/lens views read at the chain head while the replay ran). Wall time {r['wall_time_s']:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in r['timings_s'].items())}).",
        "",
        "## Setup",
        "",
        f"- {su['accounts']} accounts ({su['borrowers']} borrowers, {su['lenders']} lenders), seed {su['seed']}, profile `{su['profile']}` "
        "(scripts/_xmargin_sim).",
        f"- Feeds follow Chainlink's rule: a new answer on a {su['deviation_bps'] / 100:g}% deviation or after {su['heartbeat_s']} s; "
        + (f"hourly candles walked through open, extremes, close in {su['substeps_per_hour']} steps per hour." if su['substeps_per_hour'] else "recorded rounds replayed as published.")
        + f" Each price step is {su['blocks_per_step']} blocks; steps with a new answer are mined {su['block_wall_s']} s apart (wall) so the keeper can react.",
        f"- Keeper: {su['keeper']}" + (f" (`xmargin-keeper run`, {su['keeper_address']})" if su['keeper_address'] else "") + "."
        + _keeper_start_note(su),
        f"- {su['oracle_bounds_note']}.",
        f"- Blocks {r['chain']['first_block']}..{r['chain']['last_block']}, {r['chain']['price_steps']} price steps, feed answers published: "
        + ", ".join(f"{s} {n}" for s, n in r["chain"]["feed_updates"].items()) + ".",
        "",
        "## Headline",
        "",
        "| figure | value |",
        "|---|---|",
        f"| liquidations | {li['count']} on {li['accounts']} accounts |",
        f"| liquidation volume (debt repaid) | {_usd(li['volume_usd'])} |",
        f"| collateral seized (incl. insurance share) | {_usd(li['seized_usd'])} |",
        f"| insurance share of seizures | {_usd(li['to_insurance_usd'])} |",
        f"| bad debt written off | {_usd(bd['usd'])} ({bd['events']} BadDebtSettled events, {bd['accounts']} accounts) |",
        f"| insurance fund used | {_usd(sum(a['usd'] for a in r['insurance_fund_used'].values()))} |",
        f"| losses socialised to depositors | {_usd(sum(a['usd'] for a in r['losses_socialised'].values()))} |",
        f"| keeper latency, blocks (median / p90 / max) | "
        + (f"{lat['median']} / {lat['p90']} / {lat['max']} over {lat['episodes']} episodes |" if lat.get("episodes") else "n/a |"),
        f"| gas per liquidation (mean / max) | {g['liquidation']['mean']:,} / {g['liquidation']['max']:,} ({g['liquidation']['txs']} txs, {g['liquidation']['total']:,} total) |",
        f"| gas per settle_bad_debt (mean) | {g['settle_bad_debt']['mean']:,} ({g['settle_bad_debt']['txs']} txs by the replay, {g['settle_bad_debt']['reverted']} reverted) |",
        f"| accounts below maintenance at the end | **{end['accounts_below_maintenance']}** |",
        "",
        "## Liquidations by asset",
        "",
        "| asset | repaid | repaid USD | seized | seized USD | to insurance |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    dec = su["decimals"]

    def tok(symbol: str, units: int) -> str:
        x = units / 10 ** dec[symbol]
        return f"{x:,.4f}" if x == 0 or x >= 0.01 else f"{x:.3g}"

    for s, a in li["by_asset"].items():
        lines.append(f"| {s} | {tok(s, a['repaid'])} | {_usd(a['repaid_usd'])} | {tok(s, a['seized'])} | {_usd(a['seized_usd'])} | {tok(s, a['to_insurance'])} |")
    lines += ["", "Amounts in tokens (report.json has exact token units); USD at the feed answer in force at the event's block.", ""]
    lines += ["## Bad debt, insurance fund, socialised losses", ""]
    for title, key in (("Bad debt written off (BadDebtSettled)", "bad_debt"), ("Collateral forfeited to the fund", "collateral_forfeited"),
                       ("Insurance fund used", "insurance_fund_used"), ("Losses socialised", "losses_socialised")):
        data = r[key]["by_asset"] if key == "bad_debt" else r[key]
        body = ", ".join(f"{s}: {tok(s, v['amount'])} ({_usd(v['usd'])}, {v['events']} events)" for s, v in data.items()) or "none"
        lines.append(f"- {title}: {body}")
    lines += [
        "- Settled by: " + (", ".join(f"{a} ({n})" for a, n in bd["settled_by"].items()) or "nobody")
        + f"; the replay settles hourly and after the drain ({bd['settled_by_replay']} successful settle_bad_debt transaction(s)).",
        "",
        "## Keeper latency",
        "",
        "Blocks from the first feed-update block after which an account stayed below maintenance to its first liquidation "
        "(a follow-up liquidation of an account that never recovered is the same episode).",
        "",
    ]
    if lat.get("episodes"):
        lines.append("| blocks | episodes |")
        lines.append("|---:|---:|")
        for lo, hi in LATENCY_BUCKETS:
            n = sum(v for k, v in lat["histogram"].items() if lo <= int(k) <= hi)
            label = str(lo) if lo == hi else (f"{lo}-{hi}" if hi < 10**9 else f"> {lo - 1}")
            lines.append(f"| {label} | {n} |")
        lines += ["", f"Mean {lat['mean']} blocks; {lat.get('unobserved', 0)} first liquidation(s) of accounts never observed "
                  "below maintenance are not counted. One block here is "
                  f"{su['block_wall_s']} s of wall time on steps with a new answer, so latency mostly measures how fast "
                  "the keeper process turns an update into a transaction on this machine."]
    lines += [
        "",
        "## End state",
        "",
        f"At block {end['block']}: {end['accounts_below_maintenance']} account(s) below maintenance, {end['liquidatable']} liquidatable, "
        f"{end['borrowers_with_debt']} borrowers still with debt.",
        "",
    ]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)
