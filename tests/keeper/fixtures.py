"""Shared fixtures and helpers of the keeper tests (imported by the test
modules; kept out of a conftest so sibling suites under tests/keeper/ keep
their own)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Awaitable, Callable

import pytest
from eth_account import Account

from keeper.bot import Keeper
from keeper.config import KeeperSettings, load_settings
from tests.keeper.localchain import DEFAULT_SPECS, KEEPER_KEY, Anvil, LocalDeployment, deploy

KEEPER = Account.from_key(KEEPER_KEY)


@pytest.fixture(scope="module")
def chain():
    """A private anvil with the protocol (WETH, WBTC, USDC) deployed; a
    lender supplies 1,000,000 USDC and 100 WETH."""
    with Anvil() as anvil:
        dep = deploy(anvil, list(DEFAULT_SPECS))
        lender = anvil.accounts[8]
        dep.fund(lender, "USDC", dep.units("USDC", 1_000_000))
        dep.send(dep.engine.functions.deposit(dep.tokens["USDC"].address, dep.units("USDC", 1_000_000)), lender)
        dep.fund(lender, "WETH", dep.units("WETH", 100))
        dep.send(dep.engine.functions.deposit(dep.tokens["WETH"].address, dep.units("WETH", 100)), lender)
        yield dep


@pytest.fixture
def fresh_chain(chain: LocalDeployment):
    """Reverts the chain to its state before the test (evm_snapshot/revert)."""
    snap = chain.anvil.call("evm_snapshot")
    chain.anvil.set_automine(True)
    yield chain
    chain.anvil.set_automine(True)
    chain.anvil.call("evm_revert", snap)


def settings_for(dep: LocalDeployment, tmp_path: Path, **sections) -> KeeperSettings:
    """In-process settings for ``dep`` (record file in tmp_path, sqlite in tmp_path)."""
    record = dep.write_record(tmp_path / "deployment.json")
    base = {
        "chain": {"rpc_http": dep.anvil.url},
        "deployment": {"record": str(record)},
        "store": {"db_path": str(tmp_path / "keeper.sqlite")},
        "metrics": {"port": 0},
        "sync": {"poll_interval": 0.1},
        "strategy": {"mode": "inventory", "native_price_symbol": "WETH"},
        "log": {"json_logs": True},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return load_settings(None, **base)


def open_borrower(dep: LocalDeployment, borrower: str, weth: float = 10, usdc: float = 13_000, sub_id: int = 0) -> None:
    """WETH collateral (price 2000, maintenance aw 0.85) and a USDC debt."""
    dep.fund(borrower, "WETH", dep.units("WETH", weth))
    dep.send(dep.engine.functions.deposit(dep.tokens["WETH"].address, dep.units("WETH", weth), sub_id), borrower)
    dep.send(dep.engine.functions.borrow(dep.tokens["USDC"].address, dep.units("USDC", usdc), sub_id), borrower)


def maintenance_health(dep: LocalDeployment, owner: str, sub_id: int = 0, block: int | str = "latest") -> int:
    """engine.health(owner, sub_id)[1] (USD WAD) at ``block``."""
    return dep.engine.functions.health(owner, sub_id).call(block_identifier=block)[1]


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0, interval: float = 0.05) -> None:
    """Waits until predicate() is true (fails the test after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


class RunningKeeper:
    """``async with RunningKeeper(settings) as k:`` runs ``Keeper.run`` in a task."""

    def __init__(self, settings: KeeperSettings, account=KEEPER):
        self.keeper = Keeper(settings, account=account)
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Keeper:
        self.task = asyncio.create_task(self.keeper.run(self.stop))
        await until(lambda: self.keeper.state.started or self.task.done(), timeout=60)
        if self.task.done():
            self.task.result()
        return self.keeper

    async def __aexit__(self, *exc) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)
