"""Fixtures for keeper tests against real anvil nodes.

Chains start from cached state files (scripts/_xmargin_sim/seed.py): the
protocol deployed from deployments/config/local.yaml plus a seeded
population, built once (about 30-60 s on a cold cache, then a file lookup)
and loaded with `anvil --load-state` per test (well under a second).

Fault-test chains run with mining OFF (`--no-mining`): the test mines every
block itself (`Scenario.step()`), waits until the keeper's block handler has
finished with it, and so counts blocks exactly ("liquidated within 3 blocks
after the fault clears") without timing races on a loaded 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from scripts._xmargin_sim import Anvil, Sim
from scripts._xmargin_sim.population import SimAccount
from scripts._xmargin_sim.seed import SeededState, seeded_state
from tests.keeper.harness.chaos import ChaosProxy
from tests.keeper.harness.keeper_driver import KEEPER_KEY, InProcessKeeper, keeper_settings

# ~40% of the borrowers end up liquidatable after ETH -20% (see test_population)
FAULT_POPULATION = dict(n=120, seed=4, profile="risky")
MASS_POPULATION = dict(n=1_100, seed=5, profile="eth_longs")  # fault 9: ~1,000 liquidatable at once
KEEPER_INVENTORY = {"USDC": 10**9 * 10**6, "WETH": 10**6 * 10**18, "WBTC": 10**5 * 10**8}


@pytest.fixture(scope="session")
def fault_state() -> SeededState:
    return seeded_state(**FAULT_POPULATION)


@pytest.fixture(scope="session")
def keeper_account():
    return Account.from_key(KEEPER_KEY)


@dataclass
class Scenario:
    """One test's chain: node (mining off), sim, chaos proxy, population."""

    node: Anvil
    sim: Sim
    proxy: ChaosProxy
    state: SeededState
    tmp: Path
    keeper_account: Any
    keepers: list[InProcessKeeper] = field(default_factory=list)
    active: InProcessKeeper | None = None  # the keeper `step`/`drop_price` wait for by default

    @property
    def accounts(self) -> list[SimAccount]:
        return self.state.accounts

    @property
    def borrower_refs(self) -> list[tuple[str, int]]:
        return [a.ref for a in self.accounts if not a.is_lender]

    def liquidatable(self) -> list[tuple[str, int]]:
        return self.sim.liquidatable(self.borrower_refs)

    def keeper(self, *, ws: bool = True, start: bool = True, with_key: bool = True, **sections: dict) -> InProcessKeeper:
        """An in-process keeper talking to the node THROUGH the chaos proxy
        (`with_key=False`: no signer, e.g. for dry runs)."""
        sections.setdefault("strategy", {}).setdefault("max_candidates_per_block", 256)
        settings = keeper_settings(
            self.proxy.url, self.state.record_path, self.tmp / "keeper.sqlite",
            rpc_ws=self.proxy.ws_url if ws else None, **sections,
        )
        k = InProcessKeeper(settings, account=self.keeper_account if with_key else None)
        self.keepers.append(k)
        self.active = k
        if start:
            k.start()
            self.settle(k)
        return k

    def head(self) -> int:
        return self.node.block_number()

    def step(self, keeper: InProcessKeeper | None = None, blocks: int = 1, wait: bool = True) -> int:
        """Mines `blocks` blocks one at a time, each time waiting (unless
        `wait` is False) until the keeper's handler -- `keeper` or the active
        one -- finished with it. Returns the new head."""
        keeper = keeper or self.active
        for _ in range(blocks):
            head = self.node.mine(1)
            if wait and keeper is not None:
                keeper.wait_step(head)
        return self.head()

    def settle(self, keeper: InProcessKeeper) -> None:
        """Mines until the keeper's startup transactions (approvals) are in."""
        for _ in range(3):
            self.step(keeper)
        pending = self.node.rpc.call("txpool_status")
        assert int(pending["pending"], 16) == 0, pending

    def drop_price(self, symbol: str, factor: str, wait: bool = True) -> int:
        """Moves the mock feed to price * factor (one mined block) and waits
        (unless `wait` is False) for the active keeper to handle that block.
        Returns the block of the update."""
        from decimal import Decimal

        receipt = self.sim.set_price(symbol, self.sim.price(symbol) * Decimal(factor))
        block = int(receipt["blockNumber"], 16)
        if wait and self.active is not None:
            self.active.wait_step(block)
        return block

    def liquidation_events(self, from_block: int) -> list[tuple[str, int]]:
        """(owner, sub_id) of every engine Liquidation event since
        `from_block` on the canonical chain, in order (repeats kept)."""
        event = self.sim.engine.events.Liquidation()
        flt = {"fromBlock": hex(from_block), "toBlock": "latest", "address": self.sim.record.engine, "topics": [event.topic]}
        out = []
        for raw in self.node.rpc.call("eth_getLogs", flt):
            ev = event.process_log(_attrdict_log(raw))
            out.append((ev["args"]["owner"], ev["args"]["sub_id"]))
        return out

    def liquidated_refs(self, from_block: int) -> set[tuple[str, int]]:
        return set(self.liquidation_events(from_block))


def _attrdict_log(raw: dict) -> Any:
    from hexbytes import HexBytes
    from web3.datastructures import AttributeDict

    return AttributeDict(
        {
            "address": raw["address"],
            "topics": [HexBytes(t) for t in raw["topics"]],
            "data": HexBytes(raw["data"]),
            "blockNumber": int(raw["blockNumber"], 16),
            "transactionHash": HexBytes(raw["transactionHash"]),
            "transactionIndex": int(raw["transactionIndex"], 16),
            "blockHash": HexBytes(raw["blockHash"]),
            "logIndex": int(raw["logIndex"], 16),
            "removed": raw.get("removed", False),
        }
    )


def start_scenario(state: SeededState, tmp: Path, keeper_account: Any, *, fund_keeper: bool = True,
                   gas_limit: int | None = None) -> Scenario:
    node = Anvil.start(load_state=state.state_path, gas_limit=gas_limit, extra_args=("--no-mining",))
    try:
        if gas_limit is not None:  # a loaded state brings its own block gas limit back
            node.rpc.call("evm_setBlockGasLimit", hex(gas_limit))
        sim = Sim(node.url, state.record_path)
        sim.republish_prices()  # the cached state may be older than max_staleness
        if fund_keeper:
            sim.fund(keeper_account.address, KEEPER_INVENTORY, approve=False)
        proxy = ChaosProxy(node.url, timeout_s=3.0)
    except BaseException:
        node.stop()
        raise
    return Scenario(node, sim, proxy, state, tmp, keeper_account)


def stop_scenario(sc: Scenario) -> None:
    try:
        for k in sc.keepers:
            try:
                k.stop()
            except AssertionError:
                pass
    finally:
        sc.proxy.close()
        sc.node.stop()


@pytest.fixture
def scenario(fault_state, tmp_path, keeper_account):
    sc = start_scenario(fault_state, tmp_path, keeper_account)
    yield sc
    stop_scenario(sc)
