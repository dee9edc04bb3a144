"""The keeper: startup checks, initial sync, then one block handler at a
time -- sync logs, update the replica, pick and send liquidations, drive the
dispatcher.

Usage in-process (tests)::

    keeper = Keeper(settings)           # settings: keeper.config.KeeperSettings
    stop = asyncio.Event()
    task = asyncio.create_task(keeper.run(stop))
    ...
    stop.set(); await task

Triggers: a new head (websocket ``newHeads``, or HTTP polling every
``sync.poll_interval`` seconds, also used while the websocket is down).
Feed ``AnswerUpdated``/``NewRound`` logs, engine events and configurator
events are read per block with ``eth_getLogs`` over the block range since the
last processed block. A handler that is still busy when new heads arrive
does not queue them: the next run processes the whole range up to the
newest head at once (never stacked).

Reorgs: before processing, the hash of the last processed block is compared
with the chain's; on a mismatch the common ancestor is found from the stored
hashes (``sync.max_reorg_depth``), the replica's per-block undo log is
rolled back to it, the markets and feeds are re-read and the blocks after it
are processed again. Beyond the kept depth (or after a restart) the replica
is rebuilt from the deployment block.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import structlog
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from . import risk_model as rm
from .abi import codec
from .config import Deployment, KeeperSettings, WAD, resolve_deployment
from .dispatcher import Dispatcher, SendRequest, initial_fees
from .errors import ConfigError, NodeUnreachable, StartupCheckFailed
from .keys import load_account
from .metrics import HealthServer, Metrics
from .replica import AccountKey, Delta, Replica
from .rpc import HeadSubscription, Rpc, RpcError, RpcUnavailable
from .store import Store, TxRecord
from .strategy import Candidate, Skip, Strategy
from .sync import ChunkState, LogFetchFailed, decode_logs, fetch_logs

log = structlog.get_logger("keeper")

ENGINE = codec("MarginEngine")
LENS = codec("MarginLens")
FEED = codec("AggregatorV3")
ERC20 = codec("ERC20")
MAX_UINT = 2**256 - 1


@dataclass
class BlockInfo:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    base_fee: int


@dataclass
class ScanRow:
    """One account of a health report."""

    owner: str
    sub_id: int
    collateral: int  # maintenance-weighted, USD WAD
    debt: int
    health: int
    ratio: int
    prices_valid: bool
    liquidatable: bool
    plan: str = ""


@dataclass
class KeeperState:
    """What `status` and /health report."""

    head: int = 0
    processed: int = 0
    rpc_ok: bool = False
    started: bool = False
    skipped: dict[str, str] = field(default_factory=dict)


class Keeper:
    """The liquidation keeper (see module docstring).

    ``settings``: a loaded :class:`KeeperSettings`. ``account``: a signer to
    use instead of the configured keystore (tests). ``metrics``: a shared
    :class:`Metrics` (default: a new registry).
    """

    def __init__(self, settings: KeeperSettings, *, account: LocalAccount | None = None, metrics: Metrics | None = None):
        self.settings = settings
        self.deployment: Deployment = resolve_deployment(settings)
        self.metrics = metrics or Metrics()
        self.rpc = Rpc(settings.chain.rpc_http, timeout=settings.chain.request_timeout,
                       max_retries=settings.chain.max_retries, metrics=self.metrics)
        self._account = account
        self.account: LocalAccount | None = None
        self.store: Store | None = None
        self.replica = Replica()
        self.strategy: Strategy | None = None
        self.dispatcher: Dispatcher | None = None
        self.state = KeeperState()
        self.chain_id: int | None = None
        self.chunk = ChunkState(settings.sync.log_chunk_blocks)
        self._undo: OrderedDict[int, list[Delta]] = OrderedDict()
        self._hashes: OrderedDict[int, str] = OrderedDict()
        self._new_head = asyncio.Event()
        self._ws_up = False  # the websocket subscription is delivering heads
        self._latest_seen = 0
        self._last_resync = time.monotonic()
        self._cooldown: dict[AccountKey, int] = {}
        self._skip_logged: dict[AccountKey, str] = {}
        self._losses: dict[str, int] = {}
        self._gas_cache: dict[tuple, tuple[int, int]] = {}  # (mode, repay id, seize id, held assets) -> (gas, block)
        self._server: HealthServer | None = None
        self.symbols = {a.asset_id: s for s, a in self.deployment.assets.items()}
        self.engine = self.deployment.engine
        self.feeds: dict[str, int] = {}
        self.balances: dict[int, int] = {}
        self.allowances: dict[int, int] = {}  # inventory mode: the engine's allowance per asset id
        self.blocks_processed = 0

    # ------------------------------------------------------------------ startup
    @property
    def dry_run(self) -> bool:
        return self.settings.strategy.dry_run

    @property
    def address(self) -> str | None:
        return self.account.address if self.account is not None else None

    async def connect(self) -> None:
        """Opens the RPC session and checks the chain id and contract code
        (raises NodeUnreachable / StartupCheckFailed)."""
        await self.rpc.start()
        try:
            self.chain_id = await self.rpc.chain_id()
        except (RpcUnavailable, RpcError) as exc:
            raise NodeUnreachable(f"chain.rpc_http {self.settings.chain.rpc_http}: {exc}") from None
        expected = self.deployment.chain_id
        if expected is not None and expected != self.chain_id:
            raise StartupCheckFailed(f"chain id {self.chain_id} differs from the configured/recorded {expected}")
        targets = {"deployment.engine": self.deployment.engine, "deployment.lens": self.deployment.lens}
        if self.settings.strategy.mode == "flash" and self.settings.strategy.flash_liquidator:
            targets["strategy.flash_liquidator"] = self.settings.strategy.flash_liquidator
        for name, addr in targets.items():
            code = await self.rpc.get_code(addr)
            if code in (None, "0x", ""):
                raise StartupCheckFailed(f"{name} {addr} has no code on chain {self.chain_id}")

    def load_key(self) -> None:
        """Loads the signer (not needed in dry run) and checks it against
        account.address (StartupCheckFailed)."""
        if self._account is not None:
            self.account = self._account
        elif not self.dry_run or self.settings.account.keystore or self.settings.account.ape_alias:
            self.account = load_account(self.settings.account)
        want = self.settings.account.address
        if self.account is not None and want is not None and self.account.address.lower() != want.lower():
            raise StartupCheckFailed(f"the key's address {self.account.address} is not account.address {want}")

    async def startup(self) -> None:
        """Key, node checks, store, initial sync, dispatcher. Idempotent."""
        if self.state.started:
            return
        self.load_key()
        await self.connect()
        s = self.settings
        self.store = Store(s.store.db_path)
        cid, eng = self.store.identity()
        if cid is not None and (cid != self.chain_id or (eng or "").lower() != self.engine.lower()):
            log.warning("store_for_other_deployment", stored_chain=cid, stored_engine=eng)
            self.store.reset()
        self.store.set_identity(self.chain_id, self.engine)  # type: ignore[arg-type]
        keeper_addr = self.address or "0x000000000000000000000000000000000000dEaD"
        native_id = None
        if s.strategy.native_price_symbol is not None:
            a = self.deployment.assets.get(s.strategy.native_price_symbol)
            if a is None:
                raise ConfigError(f"strategy.native_price_symbol: {s.strategy.native_price_symbol} is not a listed asset")
            native_id = a.asset_id
        elif s.strategy.native_price_usd is None:
            for sym in ("WETH", "ETH"):
                if sym in self.deployment.assets:
                    native_id = self.deployment.assets[sym].asset_id
        native_usd = None
        if s.strategy.native_price_usd is not None:
            native_usd = int(Decimal(s.strategy.native_price_usd) * WAD)
        self.strategy = Strategy(
            self.replica, mode=s.strategy.mode, engine=self.engine, keeper_address=keeper_addr,
            flash_liquidator=s.strategy.flash_liquidator, price_drift_bps=s.strategy.price_drift_bps,
            min_profit_usd=s.strategy.min_profit_wad, native_price_asset=native_id, native_price_usd=native_usd,
        )
        await self.initial_sync()
        self.dispatcher = Dispatcher(
            self.rpc, self.store, self.account, self.chain_id, s.gas, self.metrics,  # type: ignore[arg-type]
            dry_run=self.dry_run, on_resolved=self._on_resolved,
        )
        await self.dispatcher.start(self.state.processed)
        if s.strategy.mode == "inventory" and self.address is not None:
            await self._approve_engine()
        self.state.started = True
        log.info("keeper_started", chain_id=self.chain_id, engine=self.engine, address=self.address,
                 mode=s.strategy.mode, dry_run=self.dry_run, block=self.state.processed,
                 accounts=len(self.replica.accounts))

    async def _approve_engine(self) -> None:
        """Inventory mode: approve the engine for every asset once."""
        assert self.dispatcher is not None and self.address is not None
        head = await self._block("latest")
        fees = initial_fees(head.base_fee, self.settings.gas)
        for asset_id, m in sorted(self.replica.markets.items()):
            allowance = ERC20.decode("allowance", await self.rpc.call(m.asset, ERC20.encode("allowance", self.address, self.engine)))
            self.allowances[asset_id] = allowance
            if allowance >= 2**255 or self.dry_run or not self.settings.strategy.approve_max:
                continue
            self.allowances[asset_id] = MAX_UINT
            data = ERC20.encode("approve", self.engine, MAX_UINT)
            await self.dispatcher.send(kind="approve", to=m.asset, data=data, gas_limit=100_000, fees=fees,
                                       head=head.number, payload={"asset_id": asset_id})

    # ------------------------------------------------------------------ chain reads
    async def _block(self, block: int | str) -> BlockInfo:
        b = await self.rpc.get_block(block)
        if b is None:
            raise RpcUnavailable(f"block {block} not available yet")
        return BlockInfo(int(b["number"], 16), b["hash"], b["parentHash"], int(b["timestamp"], 16),
                         int(b.get("baseFeePerGas") or "0x0", 16))

    async def _eth_call(self, to: str, codec_: Any, fn: str, *args: Any, block: int | str = "latest") -> Any:
        return codec_.decode(fn, await self.rpc.call(to, codec_.encode(fn, *args), block), len(args))

    async def read_markets(self, block: int, ids: set[int] | None = None) -> None:
        """Reads asset_state (and the liquidation settings) at ``block``;
        ``ids`` None: every listed asset (discovers new ones)."""
        if ids is None:
            count = await self._eth_call(self.engine, ENGINE, "asset_count", block=block)
            ids = set(range(count))
            dust, grace, paused = await self._eth_call(self.engine, ENGINE, "liquidation_settings", block=block)
            self.replica.dust_threshold, self.replica.liquidation_grace, self.replica.paused_until = dust, grace, paused
        for i in sorted(ids):
            raw = await self._eth_call(self.engine, ENGINE, "asset_state", i, block=block)
            self.replica.set_market(rm.AssetState.from_tuple((to_checksum_address(raw[0]), *raw[1:])))
        self.feeds = self.replica.feeds()

    async def read_feeds(self, block: int, ids: set[int] | None = None) -> None:
        """latestRoundData of the assets' feeds at ``block`` (None when the
        call fails: the engine then sees ERR_CALL too)."""
        for i in sorted(self.replica.markets if ids is None else ids):
            feed = self.replica.markets[i].feed
            try:
                raw = await self.rpc.call(feed, FEED.encode("latestRoundData"), block)
                rd = rm.RoundData.from_tuple(FEED.decode("latestRoundData", raw))
            except RpcError:
                rd = None
            self.replica.set_round(i, rd)

    def _log_addresses(self) -> list[str]:
        addrs = [self.engine] + list(self.feeds)
        if self.deployment.configurator:
            addrs.append(self.deployment.configurator)
        return addrs

    # ------------------------------------------------------------------ sync
    async def initial_sync(self) -> None:
        """Resumes from the store when its last block is still canonical,
        else rebuilds from the deployment block."""
        assert self.store is not None
        s = self.settings.sync
        head = await self.rpc.block_number()
        target = max(0, head - s.confirmations)
        last = self.store.last_block()
        if last is not None:
            number, stored_hash = last
            chain_block = await self.rpc.get_block(number)
            if chain_block is not None and chain_block["hash"] == stored_hash and number <= target:
                for owner, sub_id, header, positions in self.store.load_accounts():
                    h = rm.AccountHeader.from_word(header)
                    self.replica.load_account(owner, sub_id, positions, h.last_risk_block)
                await self.read_markets(number)
                await self.read_feeds(number)
                for n, h_ in sorted(self.store.recent_blocks().items()):
                    self._hashes[n] = h_
                self.state.processed = number
                info = await self._block(number)
                self.replica.recompute(info.timestamp)
                log.info("resumed_from_store", block=number, accounts=len(self.replica.accounts), head=head)
                return
            log.warning("store_not_canonical_rebuilding", stored_block=number, head=head)
            self.store.reset()
            self.replica = Replica()
            if self.strategy is not None:
                self.strategy.replica = self.replica
        await self._full_sync(target)

    async def _full_sync(self, target: int) -> None:
        """Rebuilds every account from the engine's events in
        [deployment_block, target]; markets and feeds read at ``target``."""
        assert self.store is not None
        t0 = time.monotonic()
        info = await self._block(target)
        await self.read_markets(target)
        await self.read_feeds(target)
        start = self.deployment.deployment_block
        logs = await fetch_logs(self.rpc, start, target, [self.engine], self.chunk) if target >= start else []
        events = decode_logs(logs, self.engine, None, set())
        for ev in events:
            if ev.source == "engine":
                self.replica.apply_event(ev.name, ev.args, ev.block_number)
        self.replica.recompute(info.timestamp)
        self.store.commit_block(target, info.hash, self.replica.snapshot(self.replica.accounts.keys()),
                                self.settings.sync.max_reorg_depth, replace_all=True)
        self._hashes.clear()
        self._undo.clear()
        self._hashes[target] = info.hash
        self.state.processed = target
        self._update_gauges()
        log.info("full_sync_done", block=target, accounts=len(self.replica.accounts), events=len(events),
                 seconds=round(time.monotonic() - t0, 3))

    async def _find_ancestor(self) -> int | None:
        """Highest stored block whose hash is still canonical, or None."""
        for number in sorted(self._hashes, reverse=True):
            b = await self.rpc.get_block(number)
            if b is not None and b["hash"] == self._hashes[number]:
                return number
        return None

    async def _handle_reorg(self) -> None:
        self.metrics.reorgs.inc()
        ancestor = await self._find_ancestor()
        log.warning("reorg_detected", processed=self.state.processed, ancestor=ancestor)
        if ancestor is None:
            assert self.store is not None
            self.store.reset()
            self.replica = Replica()
            assert self.strategy is not None
            self.strategy.replica = self.replica
            await self._full_sync(max(0, await self.rpc.block_number() - self.settings.sync.confirmations))
        else:
            touched: set[AccountKey] = set()
            for number in sorted(self._undo, reverse=True):
                if number > ancestor:
                    touched |= self.replica.undo(self._undo.pop(number))
            for number in list(self._hashes):
                if number > ancestor:
                    del self._hashes[number]
            await self.read_markets(ancestor)
            await self.read_feeds(ancestor)
            self.state.processed = ancestor
            info = await self._block(ancestor)
            self.replica.recompute(info.timestamp)
            assert self.store is not None
            self.store.commit_block(ancestor, info.hash, self.replica.snapshot(touched), self.settings.sync.max_reorg_depth)
        if self.dispatcher is not None:
            await self.dispatcher.check_reorged()

    async def process_to(self, target: int) -> BlockInfo | None:
        """Processes every block in (processed, target] as one step: logs,
        replica, store. Returns the target block, or None if nothing new."""
        assert self.store is not None
        processed = self.state.processed
        if target <= processed:
            return None
        info = await self._block(target)
        # Reorg check: is our last processed block still canonical?
        known = self._hashes.get(processed)
        if known is not None:
            if target == processed + 1:
                canonical = info.parent_hash == known
            else:
                b = await self.rpc.get_block(processed)
                canonical = b is not None and b["hash"] == known
            if not canonical:
                await self._handle_reorg()
                processed = self.state.processed
                info = await self._block(target)
        logs = await fetch_logs(self.rpc, processed + 1, target, self._log_addresses(), self.chunk)
        events = decode_logs(logs, self.engine, self.deployment.configurator, set(self.feeds))
        touched: set[AccountKey] = set()
        market_ids: set[int] = set()
        feed_ids: set[int] = set()
        reload_all = False
        for ev in events:
            if ev.block_number > target:
                continue
            if ev.source == "engine":
                if ev.name in ("AssetListed", "LiquidationSettingsSet", "PauseSet"):
                    reload_all = True
                    continue
                undo = self._undo.setdefault(ev.block_number, [])
                try:
                    t, a = self.replica.apply_event(ev.name, ev.args, ev.block_number, undo)
                except (KeyError, rm.ReplicaDesync) as exc:
                    log.error("replica_desync_resync", event=ev.name, error=str(exc))
                    await self._full_sync(target)
                    return info
                touched |= t
                market_ids |= a
            elif ev.source == "configurator":
                reload_all = True
            else:
                feed_ids.add(self.feeds[ev.address])
        if reload_all:
            await self.read_markets(target)
            await self.read_feeds(target)
        else:
            if market_ids:
                await self.read_markets(target, market_ids)
            if feed_ids:
                await self.read_feeds(target, feed_ids)
        # Recompute: accounts touched + holders of re-priced / re-indexed assets.
        t0 = time.perf_counter()
        if reload_all or self.blocks_processed % 10 == 0:
            self.replica.recompute(info.timestamp)
        else:
            dirty = set(touched)
            for i in feed_ids | market_ids:
                dirty |= self.replica.holders.get(i, set())
            dirty |= self.replica.liquidatable
            self.replica.recompute(info.timestamp, dirty)
        self.metrics.recompute_latency.observe(time.perf_counter() - t0)
        self.store.commit_block(target, info.hash, self.replica.snapshot(touched), self.settings.sync.max_reorg_depth)
        self._hashes[target] = info.hash
        self._undo.setdefault(target, [])
        depth = self.settings.sync.max_reorg_depth
        while self._hashes and next(iter(self._hashes)) <= target - depth:
            self._hashes.popitem(last=False)
        while self._undo and next(iter(self._undo)) <= target - depth:
            self._undo.popitem(last=False)
        self.state.processed = target
        self.blocks_processed += 1
        self._update_gauges()
        return info

    def _update_gauges(self) -> None:
        m = self.metrics
        m.accounts_tracked.set(len(self.replica.accounts))
        m.accounts_liquidatable.set(len(self.replica.liquidatable))
        m.processed_block.set(self.state.processed)
        m.head_block.set(max(self._latest_seen, self.state.processed))
        m.head_lag.set(max(0, self._latest_seen - self.state.processed))

    # ------------------------------------------------------------------ liquidation
    async def _read_balances(self) -> None:
        assert self.address is not None
        for i, m in self.replica.markets.items():
            try:
                self.balances[i] = ERC20.decode("balanceOf", await self.rpc.call(m.asset, ERC20.encode("balanceOf", self.address)))
            except RpcError:
                self.balances[i] = 0

    async def liquidate_round(self, info: BlockInfo) -> list[Candidate]:
        """Plans (worst health first), simulates (``eth_call`` right before
        sending, concurrently) and sends this block's liquidations in
        dispatcher batches of 16. Returns the candidates sent (in dry run:
        that would have been)."""
        assert self.strategy is not None and self.dispatcher is not None
        liquidatable = {k for k in self.replica.liquidatable if self._cooldown.get(k, 0) <= info.number}
        if not liquidatable:
            return []
        t_detect = time.monotonic()
        s = self.settings
        fees = initial_fees(info.base_fee, s.gas)
        fee_per_gas = min(fees.max_fee, info.base_fee + fees.tip)
        balances = None
        if s.strategy.mode == "inventory" and self.address is not None:
            await self._read_balances()
            balances = dict(self.balances)
        now = info.timestamp
        # 1. plan (CPU, sequential: inventory is shared between candidates)
        plans: list[Candidate] = []
        for key in self.strategy.order(liquidatable):
            if len(plans) >= s.strategy.max_candidates_per_block:
                break
            if self.dispatcher.busy(f"{key[0]}:{key[1]}"):
                continue
            gas_guess = s.strategy.gas_limit
            plan = self.strategy.plan(key, now, gas_guess, fee_per_gas, balances)
            if isinstance(plan, Skip):
                self._skip(plan, info.number)
                continue
            plans.append(plan)
            if balances is not None:
                balances[plan.repay_id] = max(0, balances.get(plan.repay_id, 0) - plan.repay)
        if not plans:
            return []
        # 2-3. in chunks, worst health first (so the first transactions leave
        # while later ones are still being simulated and signed): simulate
        # concurrently, re-price with the simulated gas, send as one batch.
        sem = asyncio.Semaphore(16)

        async def simulate(plan: Candidate) -> tuple[Candidate, int, int, int] | Skip | None:
            async with sem:
                return await self._simulate(plan, s)

        sent: list[Candidate] = []
        chunk = 16
        for first in range(0, len(plans), chunk):
            batch = plans[first:first + chunk]
            results = await asyncio.gather(*(simulate(p) for p in batch))
            requests: list[SendRequest] = []
            chosen: list[Candidate] = []
            for plan, res in zip(batch, results):
                if res is None:
                    continue
                if isinstance(res, Skip):
                    self._skip(res, info.number, cooldown=2)
                    continue
                _, repaid, out, gas = res
                gas_limit = gas * 6 // 5 + 10_000
                gas_usd = self.strategy.wei_to_usd(gas_limit * fee_per_gas, now)
                profit = plan.gross_usd - gas_usd
                profit_wei = self.strategy.usd_to_wei(plan.gross_usd, now)
                if profit <= 0 or profit < self.strategy.min_profit or gas_limit * fee_per_gas > profit_wei:
                    self._skip(Skip(plan.key, "unprofitable", f"profit {profit} USD WAD after gas {gas_usd}"), info.number)
                    continue
                to, data = self.strategy.call(plan)
                log.info("liquidation_candidate", account=plan.account_id,
                         repay_asset=self.symbols.get(plan.repay_id, plan.repay_id),
                         seize_asset=self.symbols.get(plan.seize_id, plan.seize_id), repay=plan.repay, seized=plan.seized,
                         simulated_repaid=repaid, simulated_out=out, profit_usd_wad=profit, gas=gas_limit,
                         health=plan.health, block=info.number, dry_run=self.dry_run)
                payload = {"owner": plan.owner, "sub_id": plan.sub_id, "repay_asset": plan.repay_asset,
                           "seize_asset": plan.seize_asset, "repay": str(plan.repay), "seized": str(plan.seized),
                           "simulated_repaid": str(repaid), "profit_usd_wad": str(profit), "block": info.number}
                requests.append(SendRequest("liquidation", to, data, gas_limit, fees, profit_wei, plan.account_id, payload))
                chosen.append(plan)
            if not requests:
                continue
            slots = await self.dispatcher.send_batch(requests, info.number)
            for plan, slot in zip(chosen, slots):
                if slot is not None or self.dry_run:
                    if not sent:
                        self.metrics.detect_to_send.observe(time.monotonic() - t_detect)
                    sent.append(plan)
                    if self.dry_run:
                        self._cooldown[plan.key] = info.number + 1
        return sent

    async def _simulate(self, plan: Candidate, s: KeeperSettings) -> tuple[Candidate, int, int, int] | Skip | None:
        """eth_call of the liquidation from the keeper's address (dry run
        without an approval: the lens's preview, the same plan on-chain);
        gas from eth_estimateGas, cached per (pair, held assets) for 20 blocks.
        Returns (plan, repaid, seized or profit, gas), a Skip on revert, or
        None when the node is unavailable."""
        to, data = self.strategy.call(plan)  # type: ignore[union-attr]
        sender = self.address or self.strategy.keeper_address  # type: ignore[union-attr]
        try:
            if self.dry_run and (s.strategy.mode == "flash" or self.address is None
                                 or self.allowances.get(plan.repay_id, 0) < plan.repay):
                repaid, out, _ = await self._eth_call(self.deployment.lens, LENS, "preview_liquidation", plan.owner,
                                                      plan.sub_id, plan.repay_asset, plan.seize_asset)
                if repaid == 0:
                    return Skip(plan.key, "simulation reverted", "preview: not liquidatable with this pair")
                return plan, repaid, out, s.strategy.gas_limit
            result = await self.rpc.call(to, data, "latest", sender=sender, retries=1)
            repaid, out = self.strategy.decode_result(result)  # type: ignore[union-attr]
            # Gas depends on the pair and on how many assets the account holds
            # (the health loop): estimated once per shape, refreshed every 20 blocks.
            shape = (s.strategy.mode, plan.repay_id, plan.seize_id, len(self.replica.accounts[plan.key].positions))
            cached = self._gas_cache.get(shape)
            if cached is None or self.state.processed - cached[1] > 20:
                gas = await self.rpc.estimate_gas({"from": sender, "to": to, "data": data})
                self._gas_cache[shape] = (gas, self.state.processed)
            else:
                gas = cached[0]
            return plan, repaid, out, gas
        except RpcError as exc:
            return Skip(plan.key, "simulation reverted", exc.revert_reason or exc.message)
        except RpcUnavailable as exc:
            log.warning("simulation_unavailable", account=plan.account_id, error=str(exc)[:200])
            return None

    def _skip(self, skip: Skip, block: int, cooldown: int = 0) -> None:
        self.metrics.liquidations_skipped.labels(skip.reason).inc()
        text = f"{skip.reason}: {skip.detail}" if skip.detail else skip.reason
        account_id = f"{skip.key[0]}:{skip.key[1]}"
        self.state.skipped[account_id] = text
        if self._skip_logged.get(skip.key) != text:
            self._skip_logged[skip.key] = text
            log.info("liquidation_skipped", account=account_id, reason=skip.reason, detail=skip.detail, block=block)
        if cooldown:
            self._cooldown[skip.key] = block + cooldown

    def _on_resolved(self, slot: TxRecord) -> None:
        account = slot.account or slot.payload.get("cancelled_account")
        if slot.kind == "liquidation" and slot.status == "mined":
            try:
                self.metrics.profit_usd_wad.inc(int(slot.payload.get("profit_usd_wad", "0")))
            except ValueError:
                pass
            if account:
                self._losses.pop(account, None)
        elif account:
            # Lost (reverted on chain, or cancelled): back off exponentially
            # on this account so a faster competitor causes no retry storm.
            n = self._losses[account] = self._losses.get(account, 0) + 1
            owner, sub = account.split(":")
            self._cooldown[(owner, int(sub))] = self.state.processed + min(2**n, 32)
            log.info("liquidation_lost_backoff", account=account, losses=n, blocks=min(2**n, 32))

    async def _resimulate(self, slot: TxRecord) -> int | None:
        sender = self.address
        try:
            await self.rpc.call(slot.payload["to"], slot.payload["data"], "latest", sender=sender, retries=1)
        except RpcError:
            return None
        return slot.expected_profit_wei

    # ------------------------------------------------------------------ resync
    async def verify_onchain(self) -> int:
        """Periodic full check: every account's maintenance health from
        ``lens.healths`` (256 per call) against the replica at the same
        block; mismatching accounts are re-read from the engine's views.
        Returns the number of accounts corrected."""
        block = self.state.processed
        info = await self._block(block)
        await self.read_markets(block)
        await self.read_feeds(block)
        keys = list(self.replica.accounts)
        self.replica.recompute(info.timestamp)
        fixed = 0
        for start in range(0, len(keys), 256):
            batch = keys[start:start + 256]
            refs = [(self.replica.accounts[k].owner, k[1]) for k in batch]
            views = await self._eth_call(self.deployment.lens, LENS, "healths", refs, block=block)
            for k, v in zip(batch, views):
                entry = self.replica.health[k]
                if v[1] != entry.health:
                    await self.reload_account(k, block)
                    fixed += 1
        if fixed:
            self.replica.recompute(info.timestamp)
            assert self.store is not None
            self.store.commit_block(block, info.hash, self.replica.snapshot(keys), self.settings.sync.max_reorg_depth)
            log.warning("resync_corrected_accounts", count=fixed, block=block)
        else:
            log.info("resync_ok", accounts=len(keys), block=block)
        return fixed

    async def reload_account(self, key: AccountKey, block: int) -> None:
        """Reads one account from ``engine.account_header`` / ``position``."""
        acc = self.replica.accounts[key]
        deposits, debts, last = await self._eth_call(self.engine, ENGINE, "account_header", acc.owner, acc.sub_id, block=block)
        positions = {}
        for i, m in self.replica.markets.items():
            if ((deposits | debts) >> i) & 1:
                d, b = await self._eth_call(self.engine, ENGINE, "position", acc.owner, acc.sub_id, m.asset, block=block)
                positions[i] = (d, b)
        self.replica.load_account(acc.owner, acc.sub_id, positions, last)

    # ------------------------------------------------------------------ loop
    def health(self) -> tuple[bool, dict]:
        lag = max(0, self._latest_seen - self.state.processed)
        ok = self.state.started and self.state.rpc_ok and lag <= self.settings.sync.head_lag_unhealthy
        reasons = []
        if not self.state.started:
            reasons.append("starting")
        if not self.state.rpc_ok:
            reasons.append("rpc down")
        if lag > self.settings.sync.head_lag_unhealthy:
            reasons.append(f"head lag {lag} blocks")
        return ok, {"head": self._latest_seen, "processed": self.state.processed, "lag": lag,
                    "rpc_ok": self.state.rpc_ok, "reasons": reasons,
                    "in_flight": self.dispatcher.in_flight if self.dispatcher else 0}

    async def _poll_heads(self, stop: asyncio.Event) -> None:
        """HTTP head polling every poll_interval: the trigger without a
        websocket, and with one the watchdog that notices a silent socket or
        a node that stopped answering (it also keeps /health's rpc_ok)."""
        while not stop.is_set():
            interval = self.settings.sync.poll_interval
            try:
                n = await self.rpc.block_number()
                self.state.rpc_ok = True
                if n > self._latest_seen:
                    self._latest_seen = n
                    self._new_head.set()
            except (RpcUnavailable, RpcError) as exc:
                self.state.rpc_ok = False
                log.warning("head_poll_failed", error=str(exc)[:200])
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass

    async def _ws_heads(self, stop: asyncio.Event) -> None:
        url = self.settings.chain.rpc_ws
        assert url is not None
        backoff = 0.5
        while not stop.is_set():
            sub = HeadSubscription(url, timeout=self.settings.chain.request_timeout)
            try:
                flt = {"address": self._log_addresses()}
                async for kind, n in sub.heads(flt):
                    backoff = 0.5
                    self._ws_up = True
                    if n > self._latest_seen:
                        self._latest_seen = n
                    self._new_head.set()
                    if stop.is_set():
                        break
            except RpcUnavailable as exc:
                if not stop.is_set():
                    log.warning("websocket_down_polling_http", error=str(exc)[:200], retry_in=backoff)
            finally:
                self._ws_up = False
                await sub.close()
            try:
                await asyncio.wait_for(stop.wait(), backoff)
            except asyncio.TimeoutError:
                pass
            backoff = min(backoff * 2, 10.0)

    async def step(self) -> BlockInfo | None:
        """One handler run: process up to the newest head, liquidate, drive
        the dispatcher, maybe resync. Returns the processed block."""
        target = max(0, self._latest_seen - self.settings.sync.confirmations)
        t0 = time.perf_counter()
        info = await self.process_to(target)
        if info is None:
            return None
        assert self.dispatcher is not None
        await self.dispatcher.on_block(info.number, info.base_fee, self._resimulate)
        await self.liquidate_round(info)
        if time.monotonic() - self._last_resync > self.settings.sync.resync_interval:
            self._last_resync = time.monotonic()
            await self.verify_onchain()
        self.metrics.block_latency.observe(time.perf_counter() - t0)
        return info

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until ``stop`` is set. Startup errors raise KeeperError
        subclasses (the CLI maps them to exit codes); RPC trouble while
        running is logged and retried."""
        try:
            if not await self._startup_with_retries(stop):
                return
            self.state.rpc_ok = True
            if self.settings.metrics.port and self._server is None:
                self._server = HealthServer(self.metrics, self.health, self.settings.metrics.host, self.settings.metrics.port)
                await self._server.start()
                log.info("metrics_listening", host=self.settings.metrics.host, port=self._server.bound_port)
            self._latest_seen = max(self._latest_seen, self.state.processed)
            tasks = [asyncio.create_task(self._poll_heads(stop))]
            if self.settings.chain.rpc_ws:
                tasks.append(asyncio.create_task(self._ws_heads(stop)))
            try:
                while not stop.is_set():
                    waiter = asyncio.create_task(self._new_head.wait())
                    stopper = asyncio.create_task(stop.wait())
                    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    stopper.cancel()
                    if stop.is_set():
                        break
                    self._new_head.clear()
                    try:
                        await self.step()
                    except (RpcUnavailable, RpcError) as exc:
                        self.state.rpc_ok = False
                        log.warning("block_handler_rpc_error", error=str(exc)[:300])
                        await asyncio.sleep(min(1.0, self.settings.sync.poll_interval))
                        self._new_head.set()
                    except Exception as exc:  # keep running: a bug in one block must not stop the keeper
                        level = log.warning if isinstance(exc, LogFetchFailed) else log.exception
                        level("block_handler_failed", error=str(exc)[:300])
                        await asyncio.sleep(min(1.0, self.settings.sync.poll_interval))
                        self._new_head.set()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await self.close()

    async def _startup_with_retries(self, stop: asyncio.Event) -> bool:
        """startup(); a node that answered the startup checks but fails
        later in the initial sync is retried with back-off (the replica and
        the store are rebuilt), so only a node unreachable from the start
        exits (NodeUnreachable). Returns False if stopped meanwhile."""
        backoff = 0.5
        while True:
            try:
                await self.startup()
                return True
            except (RpcUnavailable, RpcError, LogFetchFailed) as exc:
                if self.chain_id is None:
                    raise NodeUnreachable(f"chain.rpc_http {self.settings.chain.rpc_http}: {exc}") from None
                log.warning("startup_retry", error=str(exc)[:300], retry_in=backoff)
                if self.store is not None:
                    self.store.close()
                    self.store = None
                self.replica = Replica()
                if self.strategy is not None:
                    self.strategy.replica = self.replica
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                    return False
                except asyncio.TimeoutError:
                    backoff = min(backoff * 2, 10.0)

    async def close(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await self.rpc.close()
        if self.store is not None:
            self.store.close()
            self.store = None
        self.state.started = False

    # ------------------------------------------------------------------ scan
    async def scan(self) -> list[ScanRow]:
        """One-shot health report of every account (no key needed, sends
        nothing): syncs into a throw-away in-memory store when
        ``store.db_path`` does not exist yet."""
        self.settings.strategy.dry_run = True
        await self.startup()
        info = await self._block(self.state.processed)
        rows = []
        assert self.strategy is not None
        for key, acc in self.replica.accounts.items():
            e = self.replica.health[key]
            if not acc.positions:
                continue
            plan_text = ""
            if e.liquidatable:
                p = self.strategy.plan(key, info.timestamp, self.settings.strategy.gas_limit, info.base_fee + self.settings.gas.tip_wei)
                if isinstance(p, Skip):
                    plan_text = f"skip: {p.reason}" + (f" ({p.detail})" if p.detail else "")
                else:
                    plan_text = (f"repay {p.repay} {self.symbols.get(p.repay_id, p.repay_id)}, seize {p.seized} "
                                 f"{self.symbols.get(p.seize_id, p.seize_id)}, profit ${p.profit_usd / WAD:.2f}")
            rows.append(ScanRow(acc.owner, acc.sub_id, e.collateral, e.debt, e.health, e.ratio, e.prices_valid,
                                e.liquidatable, plan_text))
        rows.sort(key=lambda r: (r.ratio, r.owner))
        return rows
