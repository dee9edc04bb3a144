"""Deployment of ``contracts/KeeperFlashLiquidator.vy`` from the keeper's
key (bytecode shipped in ``keeper/abi/KeeperFlashLiquidator.bin``, compiled
with vyper 0.4.3; ``tests/keeper/test_flash.py`` checks it matches)."""

from __future__ import annotations

import asyncio

import eth_abi
from eth_utils import to_checksum_address

from .abi import ABI_DIR
from .config import KeeperSettings, resolve_deployment
from .errors import NodeUnreachable, StartupCheckFailed
from .keys import load_account
from .rpc import Rpc, RpcError, RpcUnavailable


def initcode(engine: str, dex: str, keeper: str) -> str:
    """Creation bytecode + ABI-encoded constructor arguments."""
    code = (ABI_DIR / "KeeperFlashLiquidator.bin").read_text().strip()
    args = eth_abi.encode(["address", "address", "address"], [engine, dex, keeper]).hex()
    return code + args


async def deploy_flash_liquidator(settings: KeeperSettings, dex: str, *, timeout: float = 60.0) -> str:
    """Deploys KeeperFlashLiquidator(engine, dex, keeper address); returns
    its address once mined."""
    deployment = resolve_deployment(settings)
    account = load_account(settings.account)
    async with Rpc(settings.chain.rpc_http, timeout=settings.chain.request_timeout) as rpc:
        try:
            chain_id = await rpc.chain_id()
        except (RpcUnavailable, RpcError) as exc:
            raise NodeUnreachable(str(exc)) from None
        if deployment.chain_id is not None and chain_id != deployment.chain_id:
            raise StartupCheckFailed(f"chain id {chain_id} differs from {deployment.chain_id}")
        if (await rpc.get_code(dex)) in ("0x", "", None):
            raise StartupCheckFailed(f"--dex {dex} has no code")
        nonce = await rpc.nonce(account.address, "pending")
        block = await rpc.get_block("latest")
        base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
        tip = settings.gas.tip_wei
        data = initcode(deployment.engine, dex, account.address)
        gas = await rpc.estimate_gas({"from": account.address, "data": data})
        signed = account.sign_transaction({
            "type": 2, "chainId": chain_id, "nonce": nonce, "to": None, "value": 0, "data": data,
            "gas": gas * 6 // 5, "maxFeePerGas": base_fee * 2 + tip, "maxPriorityFeePerGas": tip,
        })
        tx_hash = await rpc.send_raw("0x" + bytes(signed.raw_transaction).hex())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            receipt = await rpc.receipt(tx_hash)
            if receipt is not None:
                if int(receipt["status"], 16) != 1:
                    raise StartupCheckFailed(f"KeeperFlashLiquidator deployment reverted: {tx_hash}")
                return to_checksum_address(receipt["contractAddress"])
            await asyncio.sleep(0.2)
        raise NodeUnreachable(f"deployment {tx_hash} not mined within {timeout} s")
