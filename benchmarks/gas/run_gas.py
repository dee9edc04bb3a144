"""The standard gas scenario (/work/shared/bench/GAS_SCENARIO.md) on xmargin.

    python -m benchmarks.gas.run_gas            # or: make bench-gas
    python -m benchmarks.gas.run_gas --trace    # + per-transaction breakdown (TRACES.md)
    python -m benchmarks.gas.run_gas --no-write # print only

Starts a private anvil, deploys the protocol in the order of tests/protocol.py,
runs the scenario (each measured operation is one transaction alone in its
block, 12 s after the previous block; set-up transactions 1 s apart) and
records `receipt.gasUsed`. Then the marginal cost of a collateral asset:
borrow and health view with 1, 2, 4 and 8 collateral assets held.

Writes benchmarks/gas/results.json (machine-readable; the baseline of
check_regression.py) and benchmarks/gas/RESULTS.md, and prints the tables.
Gas is deterministic: same code + same scenario = same figures anywhere.

Modelling choices (all in GAS_SCENARIO.md's spirit, stated so that they can
be checked):
  * "supply" is a deposit of LOAN: in xmargin a lender's deposit earns the
    borrow interest (there is no separate lending side).
  * Every actor holds a balance of every token it sends or receives before
    anything is measured (minted in set-up, more than it uses), so no
    measured operation pays a token-side zero-to-non-zero balance write --
    as in the floor's figures. The liquidator is pre-funded with LOAN (to
    repay) and COLL (so receiving seized COLL is a non-zero write).
  * Calls use the shortest ABI overload a user would send: deposit/withdraw/
    borrow/repay(asset, amount); health(owner, sub_id); liquidate with its
    six required arguments (min_seize_amount 0, no callback data).
  * Feeds are MockAggregator (latestRoundData = 2 SLOADs), max staleness
    86,400 s; anvil runs the prague hardfork (vyper 0.4.3's default target).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .chain import GENESIS_TIMESTAMP, HARDFORK, ROOT, Anvil, Chain, anvil_version, compile_all

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"
TRACES_MD = HERE / "TRACES.md"
PEERS_JSON = HERE / "peers.json"

WAD = 10**18
YEAR = 365 * 86400
MAX_UINT = 2**256 - 1
ZERO_ADDRESS = "0x" + "00" * 20

SETUP_STEP = 1  # seconds between set-up transactions
MEASURE_STEP = 12  # seconds before each measured transaction
BACKGROUND_PAUSE = 3600  # "then one hour passes"
MARGINAL_COUNTS = (1, 2, 4, 8)
MARGINAL_TARGET = 10_000  # gas per extra collateral asset
GOAL_FACTOR = 0.9  # goal: <= 0.9x the best peer

# Anvil's default accounts, by role. Index = HD index of the default mnemonic.
ACTORS = ["deployer", "W", "W2", "L", "B", "B2", "B3", "B4", "liquidator", "guardian", "M1", "M2", "M4", "M8"]

CONTRACT_FILES = {
    "configurator": "contracts/MarginConfigurator.vy",
    "extension": "contracts/MarginEngineExtension.vy",
    "planner": "contracts/LiquidationPlanner.vy",
    "engine": "contracts/MarginEngine.vy",
    "lens": "contracts/MarginLens.vy",
    "erc20": "contracts/mocks/MockERC20.vy",
    "feed": "contracts/mocks/MockAggregator.vy",
}


def per_second(apr_wad: int) -> int:
    return apr_wad // YEAR


# ---------------------------------------------------------------------------
# Configuration of the benchmark deployment
# ---------------------------------------------------------------------------

CONFIG = {
    "ramp_duration": 86400,
    "dust_usd_wad": 1 * WAD,  # 1 USD
    "liquidation_grace_period": 0,
    "sequencer_feed": ZERO_ADDRESS,
    "sequencer_grace_period": 0,
    "feed_decimals": 8,
    "token_decimals": 18,
    "prices_usd": {"LOAN": 1, "COLL": 2000, "COLL2": 100, "X*": 100},
    "risk": {  # every asset: borrow up to 80% of collateral value
        "asset_weight_initial": 80 * 10**16,
        "asset_weight_maintenance": 85 * 10**16,
        "liability_weight_initial": WAD,
        "liability_weight_maintenance": WAD,
        "max_staleness": 86400,
        "imf": 0,
        "min_answer": 1,
        "max_answer": 2**64 - 1,
    },
    "rates": {  # kinked: 4% APR at the 80% kink, +75% APR above it; ~2.5% at 50%
        "base_rate": 0,
        "slope_low": per_second(4 * 10**16),
        "slope_high": per_second(75 * 10**16),
        "kink": 80 * 10**16,
        "reserve_factor": 10 * 10**16,
    },
    "supply_cap": 0,  # none
    "borrow_cap": 0,  # none
    "liquidation": {"min_bonus": 2 * 10**16, "max_bonus": 8 * 10**16, "full_bonus_depth": 10 * 10**16, "insurance_share": 10 * 10**16},
    "borrowable": {"LOAN": True, "COLL": False, "COLL2": False, "X*": False},
    "collateral": {"LOAN": True, "COLL": True, "COLL2": True, "X*": True},
}


def listing_params(symbol: str) -> tuple:
    r, q, liq = CONFIG["risk"], CONFIG["rates"], CONFIG["liquidation"]
    key = symbol if symbol in CONFIG["borrowable"] else "X*"
    return (
        (
            r["asset_weight_initial"],
            r["asset_weight_maintenance"],
            r["liability_weight_initial"],
            r["liability_weight_maintenance"],
            r["max_staleness"],
            r["imf"],
            r["min_answer"],
            r["max_answer"],
        ),
        (q["base_rate"], q["slope_low"], q["slope_high"], q["kink"], q["reserve_factor"]),
        CONFIG["supply_cap"],
        CONFIG["borrow_cap"],
        CONFIG["collateral"][key],
        CONFIG["borrowable"][key],
        (liq["min_bonus"], liq["max_bonus"], liq["full_bonus_depth"], liq["insurance_share"]),
    )


def units(amount: float | int) -> int:
    """Whole tokens (18 decimals) -> token units, exactly for the amounts used."""
    if isinstance(amount, int):
        return amount * 10**18
    return round(amount * 10**6) * 10**12


def answer(price: float) -> int:
    return round(price * 10**8)


# ---------------------------------------------------------------------------
# Operations: what is measured, and which row of the peers' table it matches
# ---------------------------------------------------------------------------


@dataclass
class Op:
    id: str
    label: str
    peer_row: str | None  # operation name in peers.json, or None (no peer figure)
    section: str
    gas: int | None = None
    actor: str = ""
    call: str = ""
    args: list = field(default_factory=list)
    tx_hash: str = ""
    block: int = 0
    timestamp: int = 0


# Rows of the printed table, in the order of the peers' table (extra rows of
# this scenario without a peer figure are placed next to their relatives).
TABLE_ORDER = [
    "deposit_first",
    "deposit_subsequent",
    "b3_deposit_first",
    "deposit_2nd_asset_first",
    "borrow_first_1c",
    "borrow_subsequent_1c",
    "borrow_first_2c",
    "borrow_subsequent_2c",
    "repay_partial",
    "repay_full",
    "withdraw_debt_open_1c",
    "withdraw_debt_open_2c",
    "withdraw_full_no_debt",
    "health_view_1c",
    "health_view_2c",
    "liquidate_1c",
    "liquidate_2c",
    "lender_supply_first",
    "lender_supply_subsequent",
    "lender_withdraw_partial",
    "lender_withdraw_full",
]


# ---------------------------------------------------------------------------
# The scenario
# ---------------------------------------------------------------------------


class Scenario:
    def __init__(self, chain: Chain, artifacts: dict, log):
        from web3 import Web3

        self.chain = chain
        self.art = artifacts
        self.log = log
        self.w3: Web3 = chain.w3
        self.addr = chain.address  # actor -> address
        self.ops: dict[str, Op] = {}
        self.tokens: dict[str, str] = {}  # symbol -> token address
        self.feeds: dict[str, str] = {}  # symbol -> feed address
        self.contracts: dict[str, str] = {}  # engine, extension, configurator, lens
        self._iface = {kind: self.w3.eth.contract(abi=a["abi"]) for kind, a in artifacts.items()}

    # -- encoding and sending ------------------------------------------------

    def _data(self, kind: str, signature: str, args: list) -> str:
        return self._iface[kind].encode_abi(signature, args=args)

    def setup(self, actor: str, kind: str, to: str, signature: str, *args):
        return self.chain.send(actor, to, self._data(kind, signature, list(args)), step=SETUP_STEP)

    def measure(self, op: Op, actor: str, kind: str, to: str, signature: str, *args) -> int:
        sent = self.chain.send(actor, to, self._data(kind, signature, list(args)), step=MEASURE_STEP)
        op.gas, op.actor, op.call = sent.gas_used, actor, signature
        op.args = [self._show(a) for a in args]
        op.tx_hash, op.block, op.timestamp = sent.tx_hash, sent.block, sent.timestamp
        self.ops[op.id] = op
        self.log(f"  {op.id:<28} {op.gas:>9,}")
        return op.gas

    def _show(self, value):
        names = {v.lower(): k for k, v in {**self.addr, **self.tokens}.items()}
        if isinstance(value, str) and value.lower() in names:
            return names[value.lower()]
        if value == MAX_UINT:
            return "max_uint256"
        return value

    def view(self, kind: str, to: str, signature: str, *args):
        contract = self.w3.eth.contract(address=to, abi=self.art[kind]["abi"])
        return contract.get_function_by_signature(signature)(*args).call()

    # -- engine shortcuts -----------------------------------------------------

    @property
    def engine(self) -> str:
        return self.contracts["engine"]

    def eng(self, actor: str, signature: str, *args):
        return self.setup(actor, "engine", self.engine, signature, *args)

    def measure_eng(self, op: Op, actor: str, signature: str, *args) -> int:
        return self.measure(op, actor, "engine", self.engine, signature, *args)

    def health(self, who: str) -> tuple[int, int, bool]:
        return tuple(self.view("engine", self.engine, "health(address,uint8)", self.addr[who], 0))

    def position(self, who: str, symbol: str) -> tuple[int, int]:
        return tuple(self.view("engine", self.engine, "position(address,uint8,address)", self.addr[who], 0, self.tokens[symbol]))

    # -- set-up ---------------------------------------------------------------

    def deploy_protocol(self) -> None:
        c = self.chain
        d = "deployer"
        configurator = c.deploy(d, self.art["configurator"], CONFIG["ramp_duration"])
        args = (configurator, self.addr["guardian"], CONFIG["sequencer_feed"], CONFIG["sequencer_grace_period"])
        extension = c.deploy(d, self.art["extension"], *args)
        planner = c.deploy(d, self.art["planner"])
        engine = c.deploy(d, self.art["engine"], *args, extension, planner)
        lens = c.deploy(d, self.art["lens"], engine)
        self.contracts = {
            "configurator": configurator, "extension": extension, "planner": planner, "engine": engine, "lens": lens
        }
        self.setup(d, "configurator", configurator, "set_engine(address)", engine)
        self.setup(
            d,
            "configurator",
            configurator,
            "set_liquidation_settings(uint256,uint256)",
            CONFIG["dust_usd_wad"],
            CONFIG["liquidation_grace_period"],
        )

    def list_asset(self, symbol: str, price: float) -> None:
        c = self.chain
        token = c.deploy("deployer", self.art["erc20"], symbol, symbol, CONFIG["token_decimals"])
        feed = c.deploy("deployer", self.art["feed"], CONFIG["feed_decimals"], f"{symbol} / USD", answer(price))
        self.setup(
            "deployer",
            "configurator",
            self.contracts["configurator"],
            "list_asset(address,address,((uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256),"
            "(uint256,uint256,uint256,uint256,uint256),uint256,uint256,bool,bool,(uint256,uint256,uint256,uint256)))",
            token,
            feed,
            listing_params(symbol),
        )
        self.tokens[symbol], self.feeds[symbol] = token, feed

    def fund(self, actor: str, symbol: str, whole_tokens: int) -> None:
        """Mint (open mint) and the one infinite approval of the engine."""
        token = self.tokens[symbol]
        self.setup(actor, "erc20", token, "mint(address,uint256)", self.addr[actor], units(whole_tokens))
        self.setup(actor, "erc20", token, "approve(address,uint256)", self.engine, MAX_UINT)

    def set_price(self, symbol: str, price: float) -> None:
        self.setup("deployer", "feed", self.feeds[symbol], "set_answer(int256)", answer(price))

    # -- the scenario -----------------------------------------------------------

    def run(self) -> None:
        t0 = time.monotonic()
        self.deploy_protocol()
        for symbol, price in (("LOAN", 1), ("COLL", 2000), ("COLL2", 100)):
            self.list_asset(symbol, price)
        ids = {s: self.view("engine", self.engine, "asset_id(address)", self.tokens[s]) for s in self.tokens}
        assert ids == {"LOAN": 0, "COLL": 1, "COLL2": 2}, ids

        # Every actor: a balance of each token it uses and one infinite approval.
        funding = {
            "W": {"LOAN": 1_100_000},
            "W2": {"LOAN": 1_000, "COLL": 1_000, "COLL2": 10_000},
            "L": {"LOAN": 100_000},
            "B": {"LOAN": 100_000, "COLL": 1_000},
            "B2": {"LOAN": 100_000, "COLL": 1_000},
            "B3": {"LOAN": 100_000, "COLL": 1_000, "COLL2": 10_000},
            "B4": {"LOAN": 100_000, "COLL": 1_000, "COLL2": 10_000},
            "liquidator": {"LOAN": 100_000, "COLL": 1_000, "COLL2": 10_000},
        }
        for actor, tokens in funding.items():
            for symbol, amount in tokens.items():
                self.fund(actor, symbol, amount)

        # Background: whale supply, W2's ~50%-utilisation borrow, one hour.
        L, C, C2 = self.tokens["LOAN"], self.tokens["COLL"], self.tokens["COLL2"]
        self.eng("W", "deposit(address,uint256)", L, units(1_000_000))
        self.eng("W2", "deposit(address,uint256)", C, units(300))
        self.eng("W2", "deposit(address,uint256)", C2, units(1_000))
        self.eng("W2", "borrow(address,uint256)", L, units(500_000))
        self.chain.advance(BACKGROUND_PAUSE)
        self.log(f"set-up done ({time.monotonic() - t0:.1f}s); measuring:")

        # 1. Lender.
        op = lambda i, label, row, sec: Op(i, label, row, sec)  # noqa: E731
        s1 = "1 lender"
        self.measure_eng(op("lender_supply_first", "lender supply 10,000 LOAN, first (fresh account)", "lender supply, first", s1), "L", "deposit(address,uint256)", L, units(10_000))
        self.measure_eng(op("lender_supply_subsequent", "lender supply 10,000 LOAN, subsequent", "lender supply, subsequent", s1), "L", "deposit(address,uint256)", L, units(10_000))

        # 2. Borrower B, one collateral asset.
        s2 = "2 borrower, 1 collateral"
        self.measure_eng(op("deposit_first", "deposit 10 COLL, first (fresh account)", "deposit collateral, first (fresh account)", s2), "B", "deposit(address,uint256)", C, units(10))
        self.measure_eng(op("deposit_subsequent", "deposit 10 COLL, subsequent", "deposit collateral, subsequent", s2), "B", "deposit(address,uint256)", C, units(10))
        self.measure_eng(op("borrow_first_1c", "borrow 10,000 LOAN, first, 1 collateral", "borrow, first, 1 collateral", s2), "B", "borrow(address,uint256)", L, units(10_000))
        self.measure_eng(op("borrow_subsequent_1c", "borrow 1,000 LOAN, subsequent, 1 collateral", "borrow, subsequent, 1 collateral", s2), "B", "borrow(address,uint256)", L, units(1_000))
        self.measure_eng(op("health_view_1c", "health view as a tx, 1 collateral", "health view as a tx, 1 collateral", s2), "B", "health(address,uint8)", self.addr["B"], 0)
        self.measure_eng(op("repay_partial", "repay 5,000 LOAN, partial", "repay, partial", s2), "B", "repay(address,uint256)", L, units(5_000))
        self.measure_eng(op("withdraw_debt_open_1c", "withdraw 1 COLL, debt open, 1 collateral", "withdraw collateral, debt open, 1 collateral", s2), "B", "withdraw(address,uint256)", C, units(1))
        self.measure_eng(op("repay_full", "repay all LOAN (max uint256), full", "repay, full", s2), "B", "repay(address,uint256)", L, MAX_UINT)
        assert self.position("B", "LOAN")[1] == 0, "repay all left debt"
        self.measure_eng(op("withdraw_full_no_debt", "withdraw all COLL (max uint256), no debt", "withdraw collateral, full, no debt", s2), "B", "withdraw(address,uint256)", C, MAX_UINT)
        assert self.position("B", "COLL") == (0, 0), "withdraw all left a deposit"

        # 3. Lender withdraws.
        s3 = "3 lender"
        self.measure_eng(op("lender_withdraw_partial", "lender withdraw 1,000 LOAN, partial", "lender withdraw, partial", s3), "L", "withdraw(address,uint256)", L, units(1_000))
        self.measure_eng(op("lender_withdraw_full", "lender withdraw all LOAN (max uint256), full", "lender withdraw, full", s3), "L", "withdraw(address,uint256)", L, MAX_UINT)
        assert self.position("L", "LOAN") == (0, 0)

        # 4. Borrower B3, two collateral assets (COLL alone does not cover the debt).
        s4 = "4 borrower, 2 collaterals"
        assert 5 * 2000 * 0.80 < 12_000 <= (5 * 2000 + 100 * 100) * 0.80
        self.measure_eng(op("b3_deposit_first", "deposit 5 COLL, first (fresh account) [B3]", "deposit collateral, first (fresh account)", s4), "B3", "deposit(address,uint256)", C, units(5))
        self.measure_eng(op("deposit_2nd_asset_first", "deposit 100 COLL2, first deposit of a 2nd collateral asset", "first deposit of a 2nd collateral asset", s4), "B3", "deposit(address,uint256)", C2, units(100))
        self.measure_eng(op("borrow_first_2c", "borrow 12,000 LOAN, first, 2 collaterals", None, s4), "B3", "borrow(address,uint256)", L, units(12_000))
        self.measure_eng(op("borrow_subsequent_2c", "borrow 100 LOAN, subsequent, 2 collaterals", "borrow, subsequent, 2 collaterals", s4), "B3", "borrow(address,uint256)", L, units(100))
        self.measure_eng(op("health_view_2c", "health view as a tx, 2 collaterals", "health view as a tx, 2 collaterals", s4), "B3", "health(address,uint8)", self.addr["B3"], 0)
        self.measure_eng(op("withdraw_debt_open_2c", "withdraw 0.1 COLL, debt open, 2 collaterals", "withdraw collateral, debt open, 2 collaterals", s4), "B3", "withdraw(address,uint256)", C, units(0.1))

        # 5. Liquidation: B2 (10 COLL) and B4 (5 COLL + 100 COLL2), each
        # borrowing 75% of its collateral value; prices drop 15%.
        s5 = "5 liquidation"
        self.eng("B2", "deposit(address,uint256)", C, units(10))
        self.eng("B2", "borrow(address,uint256)", L, units(15_000))  # 75% of 20,000
        self.eng("B4", "deposit(address,uint256)", C, units(5))
        self.eng("B4", "deposit(address,uint256)", C2, units(100))
        self.eng("B4", "borrow(address,uint256)", L, units(15_000))  # 75% of 20,000
        self.set_price("COLL", 1700)
        self.set_price("COLL2", 85)
        self.set_price("LOAN", 1)  # same price, fresh round
        for who in ("B2", "B4"):
            h = self.health(who)
            assert h[1] < 0 and h[2], f"{who} is not liquidatable after the drop: {h}"
        debt_b2, debt_b4 = self.position("B2", "LOAN")[1], self.position("B4", "LOAN")[1]
        liq = "liquidate(address,uint8,address,uint256,address,uint256)"
        self.measure_eng(op("liquidate_1c", "liquidate B2, partial, 1 collateral (repay LOAN max, seize COLL)", "liquidate, partial, 1 collateral", s5), "liquidator", liq, self.addr["B2"], 0, L, MAX_UINT, C, 0)
        self.measure_eng(op("liquidate_2c", "liquidate B4, partial, 2 collaterals (repay LOAN max, seize COLL)", "liquidate, 2 collaterals", s5), "liquidator", liq, self.addr["B4"], 0, L, MAX_UINT, C, 0)
        for who, before in (("B2", debt_b2), ("B4", debt_b4)):
            coll, debt = self.position(who, "COLL")[0], self.position(who, "LOAN")[1]
            assert 0 < debt < before and coll > 0, f"{who}: liquidation was not partial ({coll}, {debt})"

        # Marginal cost of a collateral asset: 8 more collateral tokens.
        self.log("marginal cost, set-up ...")
        for i in range(1, 9):
            self.list_asset(f"X{i}", 100)
        for k in MARGINAL_COUNTS:
            who = f"M{k}"
            self.fund(who, "LOAN", 1_000)
            for i in range(1, k + 1):
                self.fund(who, f"X{i}", 1_000)
        for k in MARGINAL_COUNTS:
            who = f"M{k}"
            for i in range(1, k + 1):
                self.eng(who, "deposit(address,uint256)", self.tokens[f"X{i}"], units(10))
            self.eng(who, "borrow(address,uint256)", L, units(500))  # first borrow: set-up
        self.log("marginal cost, measuring:")
        sm = "marginal"
        for k in MARGINAL_COUNTS:
            who = f"M{k}"
            self.measure_eng(op(f"marginal_borrow_k{k}", f"borrow 100 LOAN, subsequent, {k} collateral(s)", None, sm), who, "borrow(address,uint256)", L, units(100))
            self.measure_eng(op(f"marginal_health_k{k}", f"health view as a tx, {k} collateral(s)", None, sm), who, "health(address,uint8)", self.addr[who], 0)
        self.log(f"scenario done in {time.monotonic() - t0:.1f}s ({self.w3.eth.block_number} blocks)")


# ---------------------------------------------------------------------------
# Evaluation against the peers
# ---------------------------------------------------------------------------


def load_peers() -> dict:
    return json.loads(PEERS_JSON.read_text())


def evaluate(op_gas: dict[str, int], ops_meta: dict[str, dict], peers: dict) -> list[dict]:
    rows_by_name = {r["operation"]: r for r in peers["rows"]}
    out = []
    for op_id in TABLE_ORDER:
        meta = ops_meta[op_id]
        gas = op_gas[op_id]
        row = {"id": op_id, "label": meta["label"], "gas_used": gas, "peer_row": meta["peer_row"]}
        peer = rows_by_name.get(meta["peer_row"]) if meta["peer_row"] else None
        if peer is not None:
            reported = [(peer[p], p) for p in peers["peers"] if peer.get(p) is not None]
            best_gas, best_name = min(reported)
            row.update(
                best_peer=best_name,
                best_peer_gas=best_gas,
                best_peer_note=(peer.get("notes") or {}).get(best_name),
                ratio_best=round(gas / best_gas, 4),
                floor=peer.get("floor"),
                ratio_floor=round(gas / peer["floor"], 4) if peer.get("floor") else None,
                meets_best=gas <= best_gas,
                meets_goal=gas <= GOAL_FACTOR * best_gas,
                peers={p: peer.get(p) for p in peers["peers"]},
            )
        out.append(row)
    return out


def marginal_summary(op_gas: dict[str, int]) -> dict:
    summary = {"collateral_counts": list(MARGINAL_COUNTS), "target_per_extra_asset": MARGINAL_TARGET}
    for kind, prefix in (("borrow_subsequent", "marginal_borrow_k"), ("health_view", "marginal_health_k")):
        gas = {k: op_gas[f"{prefix}{k}"] for k in MARGINAL_COUNTS}
        steps = {}
        for a, b in zip(MARGINAL_COUNTS, MARGINAL_COUNTS[1:]):
            steps[f"{a}->{b}"] = (gas[b] - gas[a]) / (b - a)
        lo, hi = MARGINAL_COUNTS[0], MARGINAL_COUNTS[-1]
        slope = (gas[hi] - gas[lo]) / (hi - lo)
        summary[kind] = {
            "gas": {str(k): v for k, v in gas.items()},
            "per_extra_asset": {k: round(v, 1) for k, v in steps.items()},
            "per_extra_asset_1_to_8": round(slope, 1),
            "meets_target": max(steps.values()) <= MARGINAL_TARGET,
        }
    return summary


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def fmt(n) -> str:
    return "–" if n is None else f"{n:,}"


def target_text(row: dict) -> str:
    if "best_peer_gas" not in row:
        return "– (no peer figure)"
    if row["meets_goal"]:
        return "yes, goal met (≤ 0.9×)"
    if row["meets_best"]:
        return "yes (≤ best; goal 0.9× not met)"
    return f"NO (+{row['gas_used'] - row['best_peer_gas']:,})"


def main_table_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for r in rows:
        best = "–"
        if "best_peer_gas" in r:
            best = f"{r['best_peer_gas']:,} ({r['best_peer']}{', ' + r['best_peer_note'] if r.get('best_peer_note') else ''})"
        out.append(
            [
                r["label"],
                f"{r['gas_used']:,}",
                best,
                f"{r['ratio_best']:.3f}" if "ratio_best" in r else "–",
                fmt(r.get("floor")),
                f"{r['ratio_floor']:.3f}" if r.get("ratio_floor") else "–",
                target_text(r),
            ]
        )
    return out


MAIN_HEADER = ["operation", "xmargin gas", "best peer (name)", "ratio to best peer", "floor", "ratio to floor", "target met"]


def marginal_table_rows(m: dict) -> list[list[str]]:
    out = []
    prev = None
    for k in m["collateral_counts"]:
        b = m["borrow_subsequent"]["gas"][str(k)]
        h = m["health_view"]["gas"][str(k)]
        if prev is None:
            out.append([str(k), f"{b:,}", "–", f"{h:,}", "–"])
        else:
            key = f"{prev}->{k}"
            out.append(
                [
                    str(k),
                    f"{b:,}",
                    f"{m['borrow_subsequent']['per_extra_asset'][key]:+,.0f}",
                    f"{h:,}",
                    f"{m['health_view']['per_extra_asset'][key]:+,.0f}",
                ]
            )
        prev = k
    out.append(
        [
            "1→8 slope",
            "",
            f"{m['borrow_subsequent']['per_extra_asset_1_to_8']:+,.0f}",
            "",
            f"{m['health_view']['per_extra_asset_1_to_8']:+,.0f}",
        ]
    )
    return out


MARGINAL_HEADER = ["collateral assets held", "borrow (subsequent) gas", "Δ per extra asset", "health view gas", "Δ per extra asset"]


def print_tables(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(200, Console().width))
    t = Table(title=f"xmargin gas (receipt.gasUsed), standard scenario — vyper {results['vyper']}, anvil {results['anvil']} ({results['hardfork']})")
    for i, h in enumerate(MAIN_HEADER):
        t.add_column(h, justify="left" if i in (0, 2, 6) else "right", no_wrap=i in (0, 2, 6))
    for r, cells in zip(results["operations"], main_table_rows(results["operations"])):
        style = None
        if "best_peer_gas" in r:
            style = "green" if r["meets_goal"] else ("yellow" if r["meets_best"] else "red")
        t.add_row(*cells, style=style)
    console.print(t)
    m = results["marginal"]
    t2 = Table(title=f"marginal cost of a collateral asset (target ≤ +{MARGINAL_TARGET:,} per extra asset)")
    for i, h in enumerate(MARGINAL_HEADER):
        t2.add_column(h, justify="right")
    for cells in marginal_table_rows(m):
        t2.add_row(*cells)
    console.print(t2)
    for kind in ("borrow_subsequent", "health_view"):
        ok = m[kind]["meets_target"]
        worst = max(m[kind]["per_extra_asset"].values())
        console.print(
            f"{kind}: worst step {worst:+,.0f} per extra asset -> target {'met' if ok else 'NOT met'}",
            style="green" if ok else "red",
        )
    met = [r for r in results["operations"] if "best_peer_gas" in r]
    console.print(
        f"{sum(r['meets_best'] for r in met)}/{len(met)} rows at or below the best peer; "
        f"{sum(r['meets_goal'] for r in met)}/{len(met)} at or below 0.9x the best peer."
    )


def md_table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines)


def write_markdown(results: dict, path: Path) -> None:
    m = results["marginal"]
    met = [r for r in results["operations"] if "best_peer_gas" in r]
    peers = load_peers()
    extra = peers.get("per_extra_collateral_asset", {})
    text = f"""# xmargin gas benchmark

Generated by `make bench-gas` (`python -m benchmarks.gas.run_gas`) on
{results['generated_utc']}. The regression gate `make gas-check`
(`python -m benchmarks.gas.check_regression`, also run by `make test`)
fails when any figure below grows by more than 2%.

Scenario: the standard one of `/work/shared/bench/GAS_SCENARIO.md`; peer
figures transcribed in `benchmarks/gas/peers.json`. Figures are
`receipt.gasUsed` (21,000 intrinsic + calldata included, after refunds); each
measured operation is one transaction alone in its block, 12 s after the
previous block, so every account and slot is cold and interest accrues every
time. Gas is deterministic: the same code and scenario give the same figures
on any machine.

- code: git commit `{results['git']['commit']}`{' (contracts/ with uncommitted changes)' if results['git']['dirty'] else ''}, contracts fingerprint `{results['contracts_fingerprint']}` (sha256 of vyper/snekmate versions and every contracts/ source)
- vyper {results['vyper']}, anvil {results['anvil']} (hardfork `{results['hardfork']}`), web3.py {results['web3']}
- machine: `{results['machine']['uname']}`, nproc {results['machine']['nproc']}

## Operations

Best peer = the lowest of Morpho Blue, Compound III, Euler v2 and Aave v3.6
that reports the row. Target: at most the best peer; goal: at most 0.9× the
best peer. {sum(r['meets_best'] for r in met)}/{len(met)} rows meet the target, {sum(r['meets_goal'] for r in met)}/{len(met)} the goal.

{md_table(MAIN_HEADER, main_table_rows(results['operations']), {1, 3, 4, 5})}

## Marginal cost of a collateral asset

Borrow (subsequent, 100 LOAN) and health view with 1, 2, 4 and 8 collateral
assets held (tokens X1..X8 at $100, 10 each, plus a 500 LOAN debt). Target:
at most +{MARGINAL_TARGET:,} gas per extra collateral asset
(borrow: {'met' if m['borrow_subsequent']['meets_target'] else 'NOT met'};
health view: {'met' if m['health_view']['meets_target'] else 'NOT met'}).
For reference (GAS_SCENARIO.md): the cold-storage floor is about
+{extra.get('floor', 8900):,}, Compound III +{extra.get('Compound III', 10600):,},
Aave +{extra.get('Aave v3.6', 29400):,}, Euler +{extra.get('Euler v2', 33500):,} per extra collateral.

{md_table(MARGINAL_HEADER, marginal_table_rows(m), {0, 1, 2, 3, 4})}

## How the scenario is run

- Private anvil (`--hardfork {results['hardfork']} --base-fee 0 --timestamp {GENESIS_TIMESTAMP}`),
  automine, `evm_setNextBlockTimestamp` before every transaction: set-up
  transactions 1 s apart, measured ones 12 s apart; one hour passes after
  the background state.
- Deployment order of `tests/protocol.py`; tokens are `MockERC20`
  (solmate semantics), feeds `MockAggregator` (8 decimals, 2 SLOADs).
  Every asset: aw 0.80/0.85 (initial/maintenance), lw 1.00/1.00,
  max staleness 86,400 s, kinked rate (4% APR at the 80% kink, +75% above,
  reserve factor 10%), no caps, bonus 2%→8% over 10% depth with a 10%
  insurance share; dust 1 USD, grace 0. LOAN is borrowable; COLL, COLL2 and
  X1..X8 are collateral only.
- Background: W deposits 1,000,000 LOAN; W2 deposits 300 COLL + 1,000 COLL2
  and borrows 500,000 LOAN (utilisation 50%).
- Every actor holds a balance of each token it sends or receives (minted in
  set-up) and approves the engine for 2**256-1 once, so no measured
  operation pays a token-side zero-to-non-zero balance write (as in the
  floor's figures); the liquidator holds LOAN and COLL.
- Calls: `deposit/withdraw/borrow/repay(asset, amount)`,
  `health(owner, sub_id)` sent as a transaction, and
  `liquidate(owner, 0, LOAN, 2**256-1, COLL, 0)`.
- Liquidation: B2 (10 COLL) and B4 (5 COLL + 100 COLL2) each borrow 15,000
  LOAN (75% of $20,000); COLL 2,000→1,700, COLL2 100→85 (LOAN's feed gets a
  fresh round too); the liquidator repays LOAN up to the liquidation-end
  target and seizes COLL (both liquidations are partial).
- Marginal cost: after the scenario, X1..X8 are listed (collateral only,
  $100); borrowers M1, M2, M4, M8 deposit 10 of each of X1..Xk and borrow
  500 LOAN in set-up; measured are a 100 LOAN borrow and the health view.
- `python -m benchmarks.gas.run_gas --trace` replays every measured
  transaction with `debug_traceTransaction` and writes a breakdown
  (storage slots read/written, cold accesses, calls, events, gas per
  contract and per source function) to `benchmarks/gas/TRACES.md`.
"""
    path.write_text(text)


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------


def git_info() -> dict:
    def run(*cmd):
        try:
            return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    commit = run("git", "rev-parse", "HEAD")
    status = run("git", "status", "--porcelain", "--", "contracts")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def run_scenario(trace: bool = False, log=print) -> dict:
    """Runs everything on a fresh anvil; returns the results dict (not written)."""
    import vyper
    import web3

    t0 = time.monotonic()
    artifacts_by_path, fingerprint = compile_all(list(CONTRACT_FILES.values()), log=log)
    artifacts = {kind: artifacts_by_path[path] for kind, path in CONTRACT_FILES.items()}
    with Anvil(accounts=len(ACTORS), tracing=trace) as node:
        chain = Chain(node.url, ACTORS)
        scenario = Scenario(chain, artifacts, log)
        scenario.run()
        traces = None
        if trace:
            from .trace import analyse_all

            traces = analyse_all(scenario)
    op_gas = {op_id: op.gas for op_id, op in scenario.ops.items()}
    meta = {op_id: {"label": op.label, "peer_row": op.peer_row} for op_id, op in scenario.ops.items()}
    results = {
        "schema": "xmargin-gas-bench/1",
        "generated_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git": git_info(),
        "contracts_fingerprint": fingerprint,
        "vyper": vyper.__version__,
        "anvil": anvil_version(),
        "hardfork": HARDFORK,
        "web3": web3.__version__,
        "python": platform.python_version(),
        "machine": {"uname": " ".join(platform.uname()), "nproc": os.cpu_count()},
        "runtime_seconds": round(time.monotonic() - t0, 1),
        "gas": op_gas,
        "operations": evaluate(op_gas, meta, load_peers()),
        "marginal": marginal_summary(op_gas),
        "transactions": {
            op_id: {
                "section": op.section,
                "label": op.label,
                "actor": op.actor,
                "call": op.call,
                "args": op.args,
                "block": op.block,
                "timestamp": op.timestamp,
                "gas_used": op.gas,
            }
            for op_id, op in scenario.ops.items()
        },
        "config": {k: v for k, v in CONFIG.items()},
        "addresses": {**scenario.contracts, **{f"token:{s}": a for s, a in scenario.tokens.items()}},
    }
    try:
        results["machine"]["uname"] = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    if traces is not None:
        results["_traces"] = traces
    return results


def write_results(results: dict, json_path: Path = RESULTS_JSON, md_path: Path = RESULTS_MD) -> None:
    data = {k: v for k, v in results.items() if not k.startswith("_")}
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    write_markdown(results, md_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results.json/RESULTS.md")
    parser.add_argument("--trace", action="store_true", help="also trace every measured tx (debug_traceTransaction) into TRACES.md")
    parser.add_argument("--json", type=Path, default=RESULTS_JSON, help="where to write the results JSON")
    args = parser.parse_args(argv)
    results = run_scenario(trace=args.trace)
    print_tables(results)
    if not args.no_write:
        write_results(results, args.json, RESULTS_MD if args.json == RESULTS_JSON else args.json.with_suffix(".md"))
        print(f"wrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json} and RESULTS.md")
    if args.trace:
        from .trace import write_traces

        write_traces(results["_traces"], TRACES_MD, results)
        print(f"wrote {TRACES_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
