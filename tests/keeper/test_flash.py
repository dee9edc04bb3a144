"""Flash mode: KeeperFlashLiquidator deployed by ``xmargin-keeper
deploy-flash`` (keeper/flash.py) on anvil with the test MockDex; the keeper
liquidates without holding the repay token and receives the surplus. Also:
the shipped ABIs/bytecode are the compiler's, and the contract's guards."""

from __future__ import annotations

import asyncio
import os

import pytest
from web3.exceptions import ContractLogicError

from keeper.abi import ABI_DIR, load_abi
from keeper.flash import deploy_flash_liquidator
from keeper.keys import write_keystore
from tests.keeper.fixtures import (  # noqa: F401
    KEEPER,
    RunningKeeper,
    chain,
    fresh_chain,
    maintenance_health,
    open_borrower,
    settings_for,
    until,
)
from tests.keeper.localchain import KEEPER_KEY, compiled, deploy_mock_dex


def _sig(item: dict) -> tuple:
    return (item["type"], item.get("name"), tuple(i["type"] for i in item.get("inputs", [])))


def test_shipped_abis_and_bytecode_match_the_compiler():
    abi, bytecode = compiled("contracts/KeeperFlashLiquidator.vy")
    assert (ABI_DIR / "KeeperFlashLiquidator.bin").read_text().strip() == bytecode
    assert load_abi("KeeperFlashLiquidator") == abi
    engine = compiled("contracts/MarginEngine.vy")[0] + compiled("contracts/MarginEngineExtension.vy")[0]
    # keeper/abi/ holds tools/export_abi.py's files (sorted; the engine's with
    # its constructor and fallback): the callable surface must be the compiler's.
    callable_ = lambda abi: {_sig(x) for x in abi if x["type"] not in ("constructor", "fallback")}  # noqa: E731
    assert callable_(load_abi("MarginEngine")) == callable_(engine)
    assert callable_(load_abi("MarginLens")) == callable_(compiled("contracts/MarginLens.vy")[0])


def test_flash_liquidation_without_inventory(fresh_chain, tmp_path):
    dep = fresh_chain
    borrower = dep.anvil.accounts[1]
    open_borrower(dep, borrower)
    dex = deploy_mock_dex(dep)  # oracle-priced swaps (mints the output)
    write_keystore(KEEPER_KEY, "pw", tmp_path / "ks.json")

    os.environ["FLASH_TEST_PW"] = "pw"
    try:
        base = settings_for(dep, tmp_path, account={"keystore": str(tmp_path / "ks.json"), "password_env": "FLASH_TEST_PW"})
        flash = asyncio.run(deploy_flash_liquidator(base, dex.address))
    finally:
        del os.environ["FLASH_TEST_PW"]
    contract = dep.anvil.w3.eth.contract(address=flash, abi=load_abi("KeeperFlashLiquidator"))
    assert contract.functions.KEEPER().call() == KEEPER.address
    assert contract.functions.ENGINE().call() == dep.engine.address
    usdc = dep.tokens["USDC"]
    assert usdc.functions.balanceOf(KEEPER.address).call() == 0  # no inventory at all

    # Guards: only the keeper starts a liquidation; only the engine calls back, and only then.
    with pytest.raises(ContractLogicError, match="flash: caller is not the keeper"):
        contract.functions.liquidate(borrower, 0, usdc.address, 1, dep.tokens["WETH"].address, 0, 0).call({"from": borrower})
    with pytest.raises(ContractLogicError, match="flash: caller is not the engine"):
        contract.functions.on_liquidation(borrower, 0, usdc.address, 1, dep.tokens["WETH"].address, 1, b"\x01").call({"from": borrower})

    settings = settings_for(dep, tmp_path, strategy={"mode": "flash", "flash_liquidator": flash})

    async def main():
        async with RunningKeeper(settings) as keeper:
            start = dep.anvil.head()
            dep.set_price("WETH", 1500)
            from tests.keeper.localchain import set_dex_rates

            set_dex_rates(dep, dex)  # the DEX follows the oracle
            await until(lambda: maintenance_health(dep, borrower) >= 0, timeout=30)
            await until(lambda: keeper.metrics.liquidations_mined._value.get() == 1)
            return start

    start = asyncio.run(main())
    events = contract.events.FlashLiquidation().get_logs(from_block=start)
    assert len(events) == 1
    ev = events[0]["args"]
    assert ev["owner"] == borrower and ev["repay_asset"] == usdc.address and ev["seize_asset"] == dep.tokens["WETH"].address
    # Surplus: seized WETH sold at the oracle price minus the repayment, all sent to the keeper.
    weth_price_units = 1500 * 10**6 * ev["seized"] // 10**18  # USDC units for the seized WETH at $1500
    assert ev["profit"] == weth_price_units - ev["repaid"] > 0
    assert usdc.functions.balanceOf(KEEPER.address).call() == ev["profit"]
    assert usdc.functions.balanceOf(flash).call() == 0 and dep.tokens["WETH"].functions.balanceOf(flash).call() == 0
    liq = dep.engine.events.Liquidation().get_logs(from_block=start)
    assert [e["args"]["liquidator"] for e in liq] == [flash] and liq[0]["args"]["repaid"] == ev["repaid"]
