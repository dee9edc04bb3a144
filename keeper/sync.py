"""Discovery: ``eth_getLogs`` over block ranges in chunks that halve on
error, and decoding of the engine's, configurator's and feeds' logs into
the events the replica applies.

Reorg detection lives in :mod:`keeper.keeper` (by block hash: anvil's
``anvil_reorg`` sends no ``removed`` logs).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from .abi import codec
from .rpc import Rpc, RpcError, RpcUnavailable

log = structlog.get_logger("keeper.sync")

FEED_EVENTS = ("AnswerUpdated", "NewRound")


class LogFetchFailed(Exception):
    """A single block's logs could not be fetched after every retry."""


@dataclass
class ChunkState:
    """The current ``eth_getLogs`` range size, shared across calls: halved
    on each failure (down to 1 block), doubled back after ``grow_after``
    successes (up to ``max_size``)."""

    max_size: int
    size: int = 0
    successes: int = 0
    grow_after: int = 8

    def __post_init__(self) -> None:
        if self.size <= 0:
            self.size = self.max_size

    def failed(self) -> None:
        self.size = max(1, self.size // 2)
        self.successes = 0

    def succeeded(self) -> None:
        self.successes += 1
        if self.successes >= self.grow_after and self.size < self.max_size:
            self.size = min(self.max_size, self.size * 2)
            self.successes = 0


async def fetch_logs(
    rpc: Rpc,
    start: int,
    end: int,
    addresses: list[str],
    chunk: ChunkState,
    *,
    single_block_retries: int = 5,
) -> list[dict]:
    """Every log of ``addresses`` in blocks [start, end], ordered by
    (block, log index), ``removed`` logs dropped. A failed range is retried
    at half the size; a failing single block is retried
    ``single_block_retries`` times with back-off, then
    :class:`LogFetchFailed`."""
    out: list[dict] = []
    cursor = start
    failures_at_one = 0
    while cursor <= end:
        upper = min(end, cursor + chunk.size - 1)
        try:
            logs = await rpc.get_logs(cursor, upper, addresses)
        except (RpcError, RpcUnavailable) as exc:
            if chunk.size > 1:
                chunk.failed()
                log.warning("getlogs_chunk_halved", start=cursor, end=upper, new_size=chunk.size, error=str(exc)[:200])
                continue
            failures_at_one += 1
            if failures_at_one > single_block_retries:
                raise LogFetchFailed(f"eth_getLogs failed for block {cursor}: {exc}") from None
            await asyncio.sleep(min(0.1 * 2**failures_at_one, 2.0))
            continue
        failures_at_one = 0
        chunk.succeeded()
        out.extend(x for x in logs if not x.get("removed"))
        cursor = upper + 1
    out.sort(key=lambda x: (int(x["blockNumber"], 16), int(x["logIndex"], 16)))
    return out


@dataclass(frozen=True)
class DecodedLog:
    """A log decoded against the ABI of its source."""

    source: str  # "engine" | "configurator" | "feed"
    name: str  # event name ("" when the topic is unknown)
    args: dict[str, Any]
    address: str  # lower-case
    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str


def decode_logs(logs: list[dict], engine: str, configurator: str | None, feeds: set[str]) -> list[DecodedLog]:
    """Decodes raw RPC logs by source address (engine events with the merged
    engine+extension ABI, feed events with the aggregator ABI; configurator
    logs are kept undecoded: any of them means "re-read the assets")."""
    engine_l = engine.lower()
    conf_l = configurator.lower() if configurator else None
    eng = codec("MarginEngine")
    agg = codec("AggregatorV3")
    out = []
    for x in logs:
        addr = x["address"].lower()
        common = dict(
            address=addr,
            block_number=int(x["blockNumber"], 16),
            block_hash=x["blockHash"],
            log_index=int(x["logIndex"], 16),
            tx_hash=x.get("transactionHash") or "",
        )
        if addr == engine_l:
            d = eng.decode_log(x)
            if d is not None:
                out.append(DecodedLog("engine", d[0], d[1], **common))
        elif conf_l is not None and addr == conf_l:
            out.append(DecodedLog("configurator", "", {}, **common))
        elif addr in feeds:
            d = agg.decode_log(x)
            if d is not None and d[0] in FEED_EVENTS:
                out.append(DecodedLog("feed", d[0], d[1], **common))
    return out
