"""Transaction dispatcher: owns the keeper's nonces (the idea of Euler's
liquidation bot ``dispatcher.rs``).

* One transaction per nonce ("slot"), EIP-1559 (type 2). A slot is signed,
  written to sqlite and committed BEFORE it is broadcast: a kill -9 between
  send and receipt leaves the exact signed bytes on disk; on restart they
  are re-broadcast (same hash: never a second liquidation) or, if the
  opportunity is gone, the nonce is cancelled -- never a gap.
* Every block: slots whose nonce is below the account's mined nonce are
  resolved (which of the slot's hashes has a receipt: success = mined,
  revert = lost; none = the nonce went to another of our txs); a slot whose
  tx the node no longer knows (dropped) is re-broadcast; a slot without a
  receipt after ``bump_after_blocks`` is replaced with fee cap and tip each
  raised by ``bump_percent`` (>= 12.5%) as long as gas_limit * fee cap stays
  <= the expected profit; past that or after ``abandon_after_blocks`` (or
  when re-simulation says the liquidation would now fail) the nonce is
  abandoned: a 0-value self-transfer with bumped fees takes it.
* Send errors are classified (:func:`classify_send_error`): nonce too low,
  underpriced, already known, insufficient funds, other.
* Dry run: everything is planned and logged, nothing is signed or sent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import Enum
from typing import Awaitable, Callable

import structlog
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from .config import GasSettings
from .metrics import Metrics
from .rpc import Rpc, RpcError, RpcUnavailable
from .store import DROPPED, LOST, MINED, PENDING, Store, TxRecord

log = structlog.get_logger("keeper.dispatcher")

CANCEL_GAS = 21_000


class SendError(Enum):
    NONE = "none"
    NONCE_TOO_LOW = "nonce_too_low"
    UNDERPRICED = "underpriced"
    ALREADY_KNOWN = "already_known"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    UNAVAILABLE = "unavailable"  # transport failure: the tx may or may not have arrived
    OTHER = "other"


def classify_send_error(exc: Exception) -> SendError:
    """Maps an eth_sendRawTransaction failure to a :class:`SendError`
    (messages of geth, erigon, nethermind, reth and anvil)."""
    if isinstance(exc, RpcUnavailable):
        return SendError.UNAVAILABLE
    msg = str(getattr(exc, "message", exc)).lower()
    if "nonce too low" in msg or "nonce has already been used" in msg or "noncetoolow" in msg or "old nonce" in msg:
        return SendError.NONCE_TOO_LOW
    if "already known" in msg or "known transaction" in msg or "alreadyknown" in msg or "already imported" in msg:
        return SendError.ALREADY_KNOWN
    if "underpriced" in msg or "fee too low" in msg or "less than block base fee" in msg or "feecaptoolow" in msg or "max fee per gas less than" in msg:
        return SendError.UNDERPRICED
    if "insufficient funds" in msg or "insufficientfunds" in msg or "lack of funds" in msg:
        return SendError.INSUFFICIENT_FUNDS
    return SendError.OTHER


def bumped(value: int, permille: int) -> int:
    """value * (1 + permille/1000), rounded up, and at least value + 1."""
    return max(value + 1, -(-value * (1000 + permille) // 1000))


@dataclass(frozen=True)
class Fees:
    max_fee: int  # wei per gas
    tip: int  # wei per gas


def initial_fees(base_fee: int, gas: GasSettings) -> Fees:
    """fee cap = base fee * multiplier + tip (capped by max_fee_gwei)."""
    tip = gas.tip_wei
    max_fee = min(base_fee * gas.base_fee_multiplier_percent // 100 + tip, gas.max_fee_wei)
    return Fees(max_fee, min(tip, max_fee))


@dataclass(frozen=True)
class SendRequest:
    """A transaction to send (see :meth:`Dispatcher.send_batch`)."""

    kind: str  # "liquidation" | "approve" | "cancel"
    to: str
    data: str
    gas_limit: int
    fees: Fees
    expected_profit_wei: int = 0
    account_key: str | None = None
    payload: dict | None = None


# resimulate(slot) -> expected profit in wei if the liquidation would still
# succeed now, or None if it would fail (the opportunity is gone).
Resimulate = Callable[[TxRecord], Awaitable[int | None]]


class Dispatcher:
    """See module docstring. ``account`` None means dry run (no key)."""

    def __init__(
        self,
        rpc: Rpc,
        store: Store,
        account: LocalAccount | None,
        chain_id: int,
        gas: GasSettings,
        metrics: Metrics,
        *,
        dry_run: bool = False,
        on_resolved: Callable[[TxRecord], None] | None = None,
    ):
        self.rpc, self.store, self.account, self.chain_id = rpc, store, account, chain_id
        self.gas, self.metrics = gas, metrics
        self.dry_run = dry_run or account is None
        self.on_resolved = on_resolved
        self.address = account.address if account is not None else None
        self.next_nonce: int | None = None
        self.slots: dict[int, TxRecord] = {}
        self.funds_blocked_until = 0  # block; no new sends after "insufficient funds"
        self.paper: list[dict] = []  # dry run: what would have been sent
        self._deferred: list[TxRecord] | None = None  # slots finished inside _resolve_many

    # -- lifecycle --------------------------------------------------------------
    async def start(self, head: int) -> None:
        """Loads pending slots, resolves those already mined, re-broadcasts
        the rest (the exact bytes persisted before the crash) and sets the
        next nonce above both the chain and the store."""
        if self.dry_run:
            return
        assert self.address is not None
        mined_nonce = await self.rpc.nonce(self.address, "latest")
        for slot in self.store.txs(PENDING):
            self.slots[slot.nonce] = slot
        highest = max(self.slots, default=-1)
        self.next_nonce = max(mined_nonce, highest + 1)
        pool_nonce = await self.rpc.nonce(self.address, "pending")
        if pool_nonce > self.next_nonce:
            log.warning("unknown_pending_txs", pool_nonce=pool_nonce, next_nonce=self.next_nonce,
                        hint="another process uses this key; nonces may collide")
            self.next_nonce = pool_nonce
        await self._resolve_many([s for n, s in sorted(self.slots.items()) if n < mined_nonce])
        for nonce in sorted(self.slots):
            slot = self.slots[nonce]
            if nonce < mined_nonce:
                continue
            else:
                log.info("rebroadcast_after_restart", nonce=nonce, hash=slot.hash, kind=slot.kind)
                await self._broadcast(slot, head, fresh=False)

    def busy(self, account_key: str) -> bool:
        """A liquidation of this account is in flight."""
        return any(s.account == account_key and s.kind == "liquidation" for s in self.slots.values())

    @property
    def in_flight(self) -> int:
        return len(self.slots)

    # -- sending ------------------------------------------------------------------
    def _sign(self, nonce: int, to: str, data: str, gas_limit: int, fees: Fees, value: int = 0) -> tuple[str, str]:
        assert self.account is not None
        signed = self.account.sign_transaction(
            {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "to": to_checksum_address(to),
                "value": value,
                "data": data,
                "gas": gas_limit,
                "maxFeePerGas": fees.max_fee,
                "maxPriorityFeePerGas": fees.tip,
            }
        )
        return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()

    async def send(
        self,
        *,
        kind: str,
        to: str,
        data: str,
        gas_limit: int,
        fees: Fees,
        head: int,
        expected_profit_wei: int = 0,
        account_key: str | None = None,
        payload: dict | None = None,
    ) -> TxRecord | None:
        """Signs, persists, then broadcasts a new transaction on the next
        nonce. Returns the slot (None in dry run or when it was refused)."""
        req = SendRequest(kind, to, data, gas_limit, fees, expected_profit_wei, account_key, payload)
        return (await self.send_batch([req], head))[0]

    async def send_batch(self, requests: list["SendRequest"], head: int) -> list[TxRecord | None]:
        """Signs every request on consecutive nonces, commits them all to the
        store in one transaction, then broadcasts them in nonce order. A
        refused broadcast stops the batch: its nonce and the later (never
        broadcast) ones are released. Returns one slot or None per request."""
        if self.dry_run:
            for r in requests:
                self.paper.append(dict(kind=r.kind, to=r.to, data=r.data, gas_limit=r.gas_limit, max_fee=r.fees.max_fee,
                                       tip=r.fees.tip, expected_profit_wei=r.expected_profit_wei, account=r.account_key,
                                       block=head))
                log.info("dry_run_would_send", kind=r.kind, to=r.to, account=r.account_key, gas_limit=r.gas_limit,
                         max_fee=r.fees.max_fee, tip=r.fees.tip, expected_profit_wei=r.expected_profit_wei)
            return [None] * len(requests)
        if head < self.funds_blocked_until or not requests:
            return [None] * len(requests)
        assert self.next_nonce is not None
        slots = []
        for r in requests:
            nonce = self.next_nonce
            raw, tx_hash = self._sign(nonce, r.to, r.data, r.gas_limit, r.fees)
            slots.append(TxRecord(
                nonce=nonce, kind=r.kind, account=r.account_key, status=PENDING, raw=raw, hash=tx_hash, hashes=[tx_hash],
                max_fee=r.fees.max_fee, tip=r.fees.tip, gas_limit=r.gas_limit, expected_profit_wei=r.expected_profit_wei,
                sent_block=head, payload=dict(r.payload or {}, to=r.to, data=r.data),
            ))
            self.slots[nonce] = slots[-1]
            self.next_nonce = nonce + 1
        self.store.save_txs(slots)  # persisted before any broadcast
        out: list[TxRecord | None] = []
        for i, slot in enumerate(slots):
            ok = await self._broadcast(slot, head, fresh=True, last=i == len(slots) - 1)
            if not ok:
                rest = slots[i + 1:]
                if rest and self.slots.get(slot.nonce) is None and self.next_nonce == slot.nonce:
                    # the refused nonce was released: so are the later, never broadcast ones
                    for later in rest:
                        self._finish(later, DROPPED, "batch stopped before broadcast")
                    out += [None] * (len(slots) - i)
                    break
                if rest:
                    # the refused nonce is being cancelled: the rest still go out
                    out.append(None)
                    continue
            elif slot.kind == "liquidation":
                self.metrics.liquidations_sent.inc()
            out.append(slot if ok else None)
        return out

    async def _broadcast(self, slot: TxRecord, head: int, *, fresh: bool, last: bool = True) -> bool:
        """Sends slot.raw; handles the error classes. Returns False when the
        slot was given up (nonce released or cancelled). ``last``: no later
        nonce of a batch is waiting to be broadcast after this one."""
        try:
            await self.rpc.send_raw(slot.raw)
            kind = SendError.NONE
        except (RpcError, RpcUnavailable) as exc:
            kind = classify_send_error(exc)
            self.metrics.send_errors.labels(kind.value).inc()
            log.warning("send_error", nonce=slot.nonce, kind=kind.value, error=str(exc)[:300], tx_kind=slot.kind)
        moved = slot.sent_block != head
        slot.sent_block = head
        if kind in (SendError.NONE, SendError.ALREADY_KNOWN, SendError.UNAVAILABLE):
            # UNAVAILABLE: maybe sent. The slot stays pending; the next block's
            # check re-broadcasts the same bytes if the node does not know it.
            if moved:
                self.store.save_tx(slot)
            log.info("tx_sent", nonce=slot.nonce, hash=slot.hash, kind=slot.kind, account=slot.account,
                     max_fee=slot.max_fee, tip=slot.tip, gas_limit=slot.gas_limit, result=kind.value)
            return True
        if kind is SendError.NONCE_TOO_LOW:
            # The nonce is taken: by one of this slot's earlier hashes (resolved
            # next block) or by a tx we do not know. Re-read the chain nonce.
            mined = await self.rpc.nonce(self.address, "latest")  # type: ignore[arg-type]
            self.next_nonce = max(self.next_nonce or 0, mined)
            if len(slot.hashes) > 1 or not fresh:
                return True  # an earlier version may be the one mined: resolve next block
            self._finish(slot, DROPPED, "nonce taken by an unknown transaction")
            return False
        if kind is SendError.UNDERPRICED and not fresh:
            return True  # the pooled version stays; bumping happens on schedule
        if kind is SendError.INSUFFICIENT_FUNDS:
            self.funds_blocked_until = head + 5
        # Not accepted: release the nonce if it is the last one, else fill it.
        if slot.hashes and len(slot.hashes) > 1:
            return True  # an older version of this nonce is still pooled
        if self.next_nonce == slot.nonce + 1 or (fresh and not last):
            self.next_nonce = slot.nonce
            self._finish(slot, DROPPED, f"refused: {kind.value}")
            return False
        await self._cancel(slot, head, reason=f"refused ({kind.value}) below later nonces")
        return False

    # -- per block -----------------------------------------------------------------
    async def on_block(self, head: int, base_fee: int, resimulate: Resimulate) -> None:
        """Resolves, re-broadcasts, bumps or abandons in-flight slots."""
        if self.dry_run or not self.slots:
            return
        assert self.address is not None
        mined_nonce = await self.rpc.nonce(self.address, "latest")
        mined = [slot for nonce, slot in sorted(self.slots.items()) if nonce < mined_nonce]
        if mined:
            await self._resolve_many(mined)
        for nonce in sorted(self.slots):
            slot = self.slots.get(nonce)
            if slot is None or nonce < mined_nonce:
                continue
            if slot.kind == "liquidation" and nonce == mined_nonce:
                # Next to be mined: still worth it?
                profit = None
                try:
                    profit = await resimulate(slot)
                except (RpcError, RpcUnavailable):
                    profit = slot.expected_profit_wei
                if profit is None:
                    log.info("abandon_liquidation", nonce=nonce, account=slot.account, reason="simulation fails now")
                    await self._cancel(slot, head, reason="opportunity gone", base_fee=base_fee)
                    continue
                slot.expected_profit_wei = profit
            known = await self.rpc.transaction(slot.hash)
            if known is None and slot.max_fee >= base_fee:
                # Dropped (node restart, anvil_dropTransaction, pool eviction): same bytes again.
                log.warning("tx_dropped_rebroadcast", nonce=nonce, hash=slot.hash)
                await self._broadcast(slot, head, fresh=False)
                continue
            age = head - slot.sent_block
            if known is not None and age < self.gas.bump_after_blocks:
                continue
            # Stuck (no receipt after bump_after_blocks) or evicted below the base fee.
            await self._bump(slot, head, base_fee)

    def _bumped_fees(self, slot: TxRecord, base_fee: int) -> Fees:
        """Fee cap and tip each +bump_percent, and the cap at least base fee + tip (includable)."""
        p = self.gas.bump_permille
        tip = bumped(slot.tip, p)
        return Fees(max(bumped(slot.max_fee, p), base_fee + tip), tip)

    async def _bump(self, slot: TxRecord, head: int, base_fee: int) -> None:
        fees = self._bumped_fees(slot, base_fee)
        if slot.kind == "cancel":
            if fees.max_fee > self.gas.max_fee_wei:
                log.warning("cancel_stuck_at_fee_ceiling", nonce=slot.nonce, max_fee=slot.max_fee, base_fee=base_fee)
                return
            await self._replace(slot, head, fees, slot.payload["to"], slot.payload["data"], slot.gas_limit)
            self.metrics.replacements.inc()
            return
        first = int(slot.payload.get("first_block", slot.sent_block))
        affordable = fees.max_fee * slot.gas_limit <= slot.expected_profit_wei and fees.max_fee <= self.gas.max_fee_wei
        if not affordable or head - first >= self.gas.abandon_after_blocks:
            log.info("abandon_liquidation", nonce=slot.nonce, account=slot.account,
                     reason="fee cap would exceed the expected profit" if not affordable else "too old",
                     max_fee=fees.max_fee, gas_limit=slot.gas_limit, expected_profit_wei=slot.expected_profit_wei)
            await self._cancel(slot, head, reason="stuck", base_fee=base_fee)
            return
        await self._replace(slot, head, fees, slot.payload["to"], slot.payload["data"], slot.gas_limit)
        self.metrics.replacements.inc()

    async def _replace(self, slot: TxRecord, head: int, fees: Fees, to: str, data: str, gas_limit: int) -> None:
        slot.payload.setdefault("first_block", slot.sent_block)
        raw, tx_hash = self._sign(slot.nonce, to, data, gas_limit, fees)
        slot.raw, slot.hash = raw, tx_hash
        slot.hashes.append(tx_hash)
        slot.max_fee, slot.tip, slot.gas_limit = fees.max_fee, fees.tip, gas_limit
        slot.bumps += 1
        self.store.save_tx(slot)  # persisted before the broadcast
        log.info("tx_replaced", nonce=slot.nonce, kind=slot.kind, hash=tx_hash, max_fee=fees.max_fee, tip=fees.tip,
                 bumps=slot.bumps)
        await self._broadcast(slot, head, fresh=False)

    async def _cancel(self, slot: TxRecord, head: int, *, reason: str, base_fee: int = 0) -> None:
        """Replaces the slot with a 0-value self-transfer (fee cap and tip
        +bump_percent, cap at least base fee * multiplier + tip, at most
        gas.max_fee_gwei), so the nonce is used and later nonces are not stuck."""
        assert self.address is not None
        fees = self._bumped_fees(slot, base_fee)
        fees = Fees(min(max(fees.max_fee, base_fee * self.gas.base_fee_multiplier_percent // 100 + fees.tip),
                        max(self.gas.max_fee_wei, fees.max_fee)), fees.tip)
        if slot.kind == "liquidation":
            slot.payload["cancelled_account"] = slot.account
            slot.payload["liquidation_hashes"] = list(slot.hashes)
        slot.kind = "cancel"
        slot.account = None
        slot.expected_profit_wei = 0
        slot.payload.update(to=self.address, data="0x", cancel_reason=reason)
        self.metrics.cancels.inc()
        log.info("tx_cancel", nonce=slot.nonce, reason=reason, max_fee=fees.max_fee, tip=fees.tip)
        await self._replace(slot, head, fees, self.address, "0x", CANCEL_GAS)

    async def _resolve_many(self, slots: list[TxRecord], concurrency: int = 16) -> None:
        """Resolves mined slots, fetching receipts concurrently; the results
        are committed to the store in one transaction."""
        sem = asyncio.Semaphore(concurrency)

        async def one(slot: TxRecord) -> None:
            async with sem:
                await self._resolve(slot)

        self._deferred = []
        try:
            await asyncio.gather(*(one(s) for s in slots))
        finally:
            deferred, self._deferred = self._deferred, None
            if deferred:
                self.store.save_txs(deferred)
            for slot in deferred:
                if self.on_resolved is not None:
                    self.on_resolved(slot)

    async def _resolve(self, slot: TxRecord) -> None:
        """The slot's nonce is mined: find which version (if any) made it."""
        for tx_hash in reversed(slot.hashes):
            try:
                receipt = await self.rpc.receipt(tx_hash)
            except RpcUnavailable:
                return  # try again next block
            if receipt is None:
                continue
            ok = int(receipt.get("status", "0x0"), 16) == 1
            slot.hash = tx_hash
            if tx_hash in slot.payload.get("liquidation_hashes", ()):
                # The cancel lost the race to an earlier liquidation version.
                slot.kind = "liquidation"
                slot.account = slot.payload.get("cancelled_account")
            if slot.kind == "liquidation":
                if ok:
                    self.metrics.liquidations_mined.inc()
                    self.metrics.send_to_mined.observe(max(0.0, time.time() - slot.created_at))
                    self._finish(slot, MINED, "mined")
                else:
                    self.metrics.liquidations_lost.inc()
                    self._finish(slot, LOST, "reverted on chain (pre-empted)")
            else:
                if slot.payload.get("cancelled_account"):
                    self.metrics.liquidations_lost.inc()  # the cancel took the liquidation's nonce
                self._finish(slot, MINED if ok else LOST, "mined")
            return
        # No receipt for any of our versions although the nonce is used:
        # the chain may still be indexing, or a tx we did not persist used it.
        age = time.time() - slot.updated_at
        if age > 30:
            self._finish(slot, LOST, "nonce used by an unknown transaction")

    def _finish(self, slot: TxRecord, status: str, reason: str) -> None:
        slot.status = status
        self.slots.pop(slot.nonce, None)
        log.info("tx_final", nonce=slot.nonce, status=status, kind=slot.kind, account=slot.account,
                 hash=slot.hash, reason=reason)
        if self._deferred is not None:
            self._deferred.append(slot)  # saved (and reported) together by _resolve_many
            return
        self.store.save_tx(slot)
        if self.on_resolved is not None:
            self.on_resolved(slot)

    async def check_reorged(self, lookback: int = 32) -> None:
        """After a reorg: slots marked mined whose nonce is no longer mined
        come back as pending (and are re-broadcast by the next on_block)."""
        if self.dry_run or self.address is None:
            return
        mined_nonce = await self.rpc.nonce(self.address, "latest")
        for slot in self.store.txs()[-lookback:]:
            if slot.status in (MINED, LOST) and slot.nonce >= mined_nonce:
                slot.status = PENDING
                self.store.save_tx(slot)
                self.slots[slot.nonce] = slot
                self.next_nonce = max(self.next_nonce or 0, slot.nonce + 1)
                log.warning("tx_unmined_by_reorg", nonce=slot.nonce, hash=slot.hash)
