"""`Sim`: drive a deployed xmargin on a local anvil with web3.py only.

    sim = Sim(w3_or_url, record)         # record: DeploymentRecord, dict or JSON path
    sim.set_price("WETH", "1600")        # mock feed answer, USD; mined before returning
    sim.set_round("WETH", answer=..., updated_at=...)  # stale / incomplete rounds
    sim.republish_prices()               # same answers, fresh timestamps (after a warp)
    sim.fund(liquidator, {"USDC": 10**12})   # mint + approve the engine
    sim.healths([(owner, sub_id), ...])  # lens.healths, any length

Every transaction is sent with `eth_sendTransaction` from an impersonated
address (`anvil_autoImpersonateAccount`), so no keys are needed; by default
from `SIM_OPERATOR`, an address of its own so the simulator never touches the
nonces of the deployer or of a keeper under test. On an automining node a
call returns once the transaction is mined; on an interval-mining node it
waits for the next block; on a node with mining off it mines one block.
Reverted transactions raise `SimError` with the decoded reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3

from scripts._xmargin_deploy.record import DeploymentRecord

from . import abi as abis
from .rpc import Rpc

# keccak("xmargin.sim.operator")[12:], a plain EOA nobody holds a key for
SIM_OPERATOR = to_checksum_address("0x" + Web3.keccak(text="xmargin.sim.operator").hex()[-40:])
MAX_UINT = 2**256 - 1
OPERATOR_ETH = 10**24  # wei given to impersonated senders (plenty for gas)
HEALTH_CHUNK = 256  # MarginLens.MAX_HEALTH_QUERIES


class SimError(RuntimeError):
    pass


def load_record(record: DeploymentRecord | dict | str | Path) -> DeploymentRecord:
    """A deployment record from a model, a dict, or a JSON file path."""
    if isinstance(record, DeploymentRecord):
        return record
    if isinstance(record, dict):
        return DeploymentRecord.model_validate(record)
    return DeploymentRecord.model_validate_json(Path(record).read_text())


def selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


def revert_reason(data: str | None) -> str:
    """Decodes Error(string) revert data; otherwise returns the raw hex."""
    if not data:
        return "reverted without reason"
    raw = bytes.fromhex(data.removeprefix("0x"))
    if raw[:4] == bytes.fromhex("08c379a0"):
        return abi_decode(["string"], raw[4:])[0]
    return data


@dataclass(frozen=True)
class AssetInfo:
    """One listed asset: addresses, decimals and initial/maintenance weights (WAD)."""

    symbol: str
    token: str
    feed: str
    asset_id: int
    token_decimals: int
    feed_decimals: int
    asset_weight_initial: int
    asset_weight_maintenance: int
    liability_weight_initial: int
    liability_weight_maintenance: int


class Sim:
    """Handle on one deployment; see the module docstring."""

    def __init__(self, w3_or_url: Any, record: DeploymentRecord | dict | str | Path):
        self.rpc = Rpc.of(w3_or_url)
        self.w3 = w3_or_url if isinstance(w3_or_url, Web3) else Web3(Web3.HTTPProvider(self.rpc.url))
        self.record = load_record(record)
        if not self.record.core_complete:
            raise SimError("the deployment record has no engine/lens: deploy first")
        self.engine = self.w3.eth.contract(address=self.record.engine, abi=abis.engine_abi())
        self.lens = self.w3.eth.contract(address=self.record.lens, abi=abis.abi("MarginLens"))
        self.tokens = {
            s: self.w3.eth.contract(address=a.token, abi=abis.abi("MockERC20")) for s, a in self.record.assets.items()
        }
        self.feeds = {
            s: self.w3.eth.contract(address=a.feed, abi=abis.abi("MockAggregator")) for s, a in self.record.assets.items()
        }
        self._assets: dict[str, AssetInfo] | None = None
        self._funded: set[str] = set()
        self.rpc.call("anvil_autoImpersonateAccount", True)

    # --- metadata ------------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        return list(self.record.assets)

    @property
    def assets(self) -> dict[str, AssetInfo]:
        """Listed assets by symbol, read once from `lens.asset_config`."""
        if self._assets is None:
            out = {}
            for symbol, rec in self.record.assets.items():
                c = self.lens.functions.asset_config(rec.token).call()
                # AssetConfig(asset, asset_id, feed, token_decimals, feed_decimals, risk, ...)
                risk = c[5]  # RiskParams(aw_init, aw_maint, lw_init, lw_maint, imf, ...)
                out[symbol] = AssetInfo(
                    symbol=symbol,
                    token=rec.token,
                    feed=rec.feed,
                    asset_id=c[1],
                    token_decimals=c[3],
                    feed_decimals=c[4],
                    asset_weight_initial=risk[0],
                    asset_weight_maintenance=risk[1],
                    liability_weight_initial=risk[2],
                    liability_weight_maintenance=risk[3],
                )
            self._assets = out
        return self._assets

    def symbol_of(self, token: str) -> str:
        token = token.lower()
        for s, a in self.record.assets.items():
            if a.token.lower() == token:
                return s
        raise KeyError(token)

    # --- transactions ------------------------------------------------------------------

    def ensure_eth(self, address: str, amount: int = OPERATOR_ETH) -> None:
        if address not in self._funded:
            self.rpc.call("anvil_setBalance", address, hex(amount))
            self._funded.add(address)

    def transact(self, to: str, data: bytes | str, sender: str = SIM_OPERATOR, gas: int = 2_000_000, wait: bool = True) -> dict | str:
        """Sends one transaction from `sender` (impersonated). With `wait`
        returns the receipt (raising `SimError` if it reverted), else the hash."""
        self.ensure_eth(sender)
        tx = {"from": sender, "to": to, "data": data if isinstance(data, str) else "0x" + data.hex(), "gas": hex(gas)}
        tx_hash = self.rpc.call("eth_sendTransaction", tx)
        if not wait:
            return tx_hash
        receipt = self.wait_receipt(tx_hash)
        if int(receipt["status"], 16) != 1:
            raise SimError(f"transaction to {to} reverted: {self._reason(tx, receipt)}")
        return receipt

    def wait_receipt(self, tx_hash: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        mined_once = False
        while True:
            receipt = self.rpc.call("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                return receipt
            if not mined_once and not self._mines_by_itself():
                self.rpc.call("evm_mine")
                mined_once = True
                continue
            if time.monotonic() > deadline:
                raise SimError(f"{tx_hash} not mined within {timeout} s")
            time.sleep(0.02)

    def _mines_by_itself(self) -> bool:
        if self.rpc.call("anvil_getAutomine"):
            return True
        interval = self.rpc.call("anvil_getIntervalMining") if self._has_interval_query() else None
        return bool(interval)

    def _has_interval_query(self) -> bool:
        if not hasattr(self, "_interval_query"):
            try:
                self.rpc.call("anvil_getIntervalMining")
                self._interval_query = True
            except Exception:
                self._interval_query = False
        return self._interval_query

    def _reason(self, tx: dict, receipt: dict) -> str:
        try:
            self.rpc.call("eth_call", {k: tx[k] for k in ("from", "to", "data")}, hex(int(receipt["blockNumber"], 16) - 1))
        except Exception as err:  # RpcError carries the revert data
            return revert_reason(getattr(err, "data", None)) if getattr(err, "data", None) else str(err)
        return "reverted (not reproducible by eth_call)"

    def call_fn(self, contract, fn: str, *args, sender: str = SIM_OPERATOR, wait: bool = True, gas: int = 2_000_000):
        data = contract.encode_abi(fn, args=list(args))
        return self.transact(contract.address, data, sender=sender, wait=wait, gas=gas)

    # --- prices ---------------------------------------------------------------------

    def answer_of(self, symbol: str, price: Decimal | str | int | float) -> int:
        """USD price -> feed answer (feed decimals), exact for decimal strings."""
        return int(Decimal(str(price)).scaleb(self.assets[symbol].feed_decimals).to_integral_value())

    def price(self, symbol: str) -> Decimal:
        """The feed's latest answer in USD."""
        answer = self.feeds[symbol].functions.latestAnswer().call()
        return Decimal(answer).scaleb(-self.assets[symbol].feed_decimals)

    def set_price(self, symbol: str, price: Decimal | str | int | float, wait: bool = True) -> dict | str:
        """Publishes a new round on the mock feed of `symbol` (USD price; 0 or
        negative allowed, to model a broken feed); returns the receipt."""
        return self.call_fn(self.feeds[symbol], "set_answer", self.answer_of(symbol, price), wait=wait)

    def set_round(self, symbol: str, answer: int, started_at: int, updated_at: int, wait: bool = True) -> dict | str:
        """Writes a round with explicit timestamps (stale data: old
        `updated_at`; incomplete round: `updated_at == 0`). `answer` in feed units."""
        return self.call_fn(self.feeds[symbol], "set_round", answer, started_at, updated_at, wait=wait)

    def republish_prices(self) -> None:
        """Every feed publishes its latest answer again with the current
        timestamp (feeds go stale after `max_staleness`; do this after a time
        warp or after loading an old state file)."""
        hashes = [
            self.call_fn(feed, "set_answer", feed.functions.latestAnswer().call(), wait=False) for feed in self.feeds.values()
        ]
        for h in hashes:
            self.wait_receipt(h)

    # --- tokens ---------------------------------------------------------------------

    def units(self, symbol: str, amount: Decimal | str | int | float) -> int:
        """Whole tokens -> token units (exact for decimal strings)."""
        return int(Decimal(str(amount)).scaleb(self.assets[symbol].token_decimals))

    def fund(self, address: str, amounts: dict[str, int], approve: bool = True) -> None:
        """Mints `amounts` (token units, by symbol) to `address` and, with
        `approve`, lets the engine pull unlimited amounts of each token from it
        (sent as `address` through impersonation). Gives it ETH for gas."""
        address = to_checksum_address(address)
        self.ensure_eth(address)
        pending = []
        for symbol, units in amounts.items():
            token = self.tokens[symbol]
            pending.append(self.call_fn(token, "mint", address, units, wait=False))
            if approve:
                pending.append(self.call_fn(token, "approve", self.record.engine, MAX_UINT, sender=address, wait=False))
        for h in pending:
            receipt = self.wait_receipt(h)
            if int(receipt["status"], 16) != 1:
                raise SimError(f"funding {address} failed in {h}")

    def balance(self, symbol: str, address: str) -> int:
        return self.tokens[symbol].functions.balanceOf(address).call()

    # --- views ----------------------------------------------------------------------

    def healths(self, refs: list[tuple[str, int]], block: int | str = "latest") -> list[tuple[int, int, int, int, bool]]:
        """lens.healths for any number of (owner, sub_id): a list of
        (initial, maintenance, liquidation_end, ratio, prices_valid), USD WAD."""
        out = []
        for start in range(0, len(refs), HEALTH_CHUNK):
            chunk = [(to_checksum_address(o), s) for o, s in refs[start : start + HEALTH_CHUNK]]
            out += [tuple(h) for h in self.lens.functions.healths(chunk).call(block_identifier=block)]
        return out

    def liquidatable(self, refs: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """The refs whose maintenance health is below zero with valid prices."""
        return [r for r, h in zip(refs, self.healths(refs)) if h[4] and h[1] < 0]

    def position(self, owner: str, sub_id: int, symbol: str) -> tuple[int, int]:
        """(deposit shares, borrow shares) of one asset."""
        return tuple(self.engine.functions.position(to_checksum_address(owner), sub_id, self.assets[symbol].token).call())

    def block_number(self) -> int:
        return int(self.rpc.call("eth_blockNumber"), 16)

    def timestamp(self) -> int:
        return int(self.rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)


def record_json(record: DeploymentRecord) -> str:
    return json.dumps(record.model_dump(mode="json"))
