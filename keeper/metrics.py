"""Prometheus metrics and the ``/metrics`` + ``/health`` HTTP endpoints.

Each :class:`Metrics` has its own registry, so several keepers can run in
one process (tests). ``/health`` answers 200 ``{"status": "ok"}`` while the
node answers and the last processed block is within
``sync.head_lag_unhealthy`` blocks of the node's head, and 503 with the
reason otherwise.
"""

from __future__ import annotations

import json
import time
from typing import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric the keeper exports (names prefixed ``xmargin_keeper_``)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "xmargin_keeper_"
        self.accounts_tracked = Gauge(p + "accounts_tracked", "Sub-accounts in the replica", registry=r)
        self.accounts_liquidatable = Gauge(p + "accounts_liquidatable", "Sub-accounts with maintenance health < 0", registry=r)
        self.liquidations_sent = Counter(p + "liquidations_sent", "Liquidation transactions sent (replacements excluded)", registry=r)
        self.liquidations_mined = Counter(p + "liquidations_mined", "Our liquidations mined successfully", registry=r)
        self.liquidations_lost = Counter(p + "liquidations_lost", "Liquidations lost to a competitor (reverted, cancelled or pre-empted)", registry=r)
        self.liquidations_skipped = Counter(p + "liquidations_skipped", "Liquidatable accounts skipped", ["reason"], registry=r)
        self.replacements = Counter(p + "tx_replacements", "Fee-bump replacements sent", registry=r)
        self.cancels = Counter(p + "tx_cancels", "Nonces abandoned with a cancel transaction", registry=r)
        self.send_errors = Counter(p + "send_errors", "eth_sendRawTransaction errors by class", ["kind"], registry=r)
        self.profit_usd_wad = Counter(p + "profit_usd_wad", "Expected profit of mined liquidations, USD WAD", registry=r)
        self.rpc_errors = Counter(p + "rpc_errors", "Failed RPC requests by method", ["method"], registry=r)
        self.rpc_requests = Counter(p + "rpc_requests", "RPC requests by method", ["method"], registry=r)
        self.head_block = Gauge(p + "head_block", "Latest block number seen from the node", registry=r)
        self.processed_block = Gauge(p + "processed_block", "Last block fully processed", registry=r)
        self.head_lag = Gauge(p + "head_lag_blocks", "head_block - processed_block", registry=r)
        self.reorgs = Counter(p + "reorgs", "Chain reorganisations handled", registry=r)
        self.block_latency = Histogram(p + "block_seconds", "Time to process one block (sync + replica + strategy)", buckets=LATENCY_BUCKETS, registry=r)
        self.recompute_latency = Histogram(p + "recompute_seconds", "Replica health recompute time", buckets=LATENCY_BUCKETS, registry=r)
        self.detect_to_send = Histogram(p + "detect_to_send_seconds", "Block seen to liquidation sent", buckets=LATENCY_BUCKETS, registry=r)
        self.send_to_mined = Histogram(p + "send_to_mined_seconds", "Liquidation sent to receipt", buckets=LATENCY_BUCKETS, registry=r)
        self.rpc_up = Gauge(p + "rpc_up", "1 when the last RPC request succeeded", registry=r)
        self.rpc_up.set(0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """aiohttp server for ``/metrics`` and ``/health``. ``health`` returns
    (ok, details) each time it is asked."""

    def __init__(self, metrics: Metrics, health: Callable[[], tuple[bool, dict]], host: str, port: int):
        self.metrics, self.health, self.host, self.port = metrics, health, host, port
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        ok, details = self.health()
        details = {"status": "ok" if ok else "unhealthy", "time": int(time.time()), **details}
        return web.Response(status=200 if ok else 503, text=json.dumps(details), content_type="application/json")
