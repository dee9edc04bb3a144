"""A loopback JSON-RPC chaos proxy (HTTP and websocket) between a keeper
and its node.

    with ChaosProxy(node.url) as proxy:       # proxy.url / proxy.ws_url
        proxy.inject("eth_getLogs", "error", count=3)     # next 3 calls fail
        proxy.inject(None, "http429", count=5)            # any method
        proxy.inject("eth_call", "timeout", count=1)      # held `timeout_s`, then dropped
        with proxy.outage("http429"):                     # every request fails meanwhile
            ...
        proxy.drop_websockets()                           # close every live ws session
        proxy.refuse_websockets(True)                     # and refuse new ones
        proxy.count("eth_sendRawTransaction")
        proxy.raw_transactions                            # list[SentTx] (hash, sender, nonce)
        proxy.resends()                                   # identical signed bytes forwarded twice+
        proxy.liquidation_nonces(engine)                  # (owner, sub) -> nonces used to liquidate it

Fault kinds: "error" (JSON-RPC error -32603 "injected fault"), "rate_limit"
(JSON-RPC -32005 "rate limit exceeded"), "http429" / "http500" (HTTP status,
no JSON body), "timeout" (the request is held `timeout_s` seconds and the
connection closed without an answer), "drop" (connection closed at once).
Injected requests are NOT forwarded, so a failed eth_sendRawTransaction never
reaches the node. A JSON-RPC batch fails as a whole if any member matches.
Every request is counted by method (HTTP and websocket frames alike), the
injected ones included; `forwarded(method)` counts only those that reached
the node.

The proxy runs an aiohttp server on its own event loop in a daemon thread,
so it works with synchronous tests and with a keeper on another loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import aiohttp
from aiohttp import web
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes

from scripts._xmargin_sim.anvil import free_port

# engine.liquidate overloads (receiver and data have defaults)
LIQUIDATE_SELECTORS = {
    "0x" + keccak(text=sig)[:4].hex()
    for sig in (
        "liquidate(address,uint8,address,uint256,address,uint256)",
        "liquidate(address,uint8,address,uint256,address,uint256,address)",
        "liquidate(address,uint8,address,uint256,address,uint256,address,bytes)",
    )
}
KINDS = ("error", "rate_limit", "http429", "http500", "timeout", "drop")


@dataclass(frozen=True)
class SentTx:
    """An eth_sendRawTransaction seen by the proxy."""

    hash: str
    sender: str
    nonce: int
    to: str | None
    data: str
    forwarded: bool  # False when a fault was injected instead
    at: float = 0.0  # time.monotonic() when the proxy received it


@dataclass
class _Rule:
    method: str | None  # None: any method
    kind: str
    remaining: int | None  # None: until removed


def decode_raw(raw: str) -> tuple[str, str, int, str | None, str]:
    """(hash, sender, nonce, to, data) of a signed raw transaction (legacy or typed)."""
    blob = bytes.fromhex(raw.removeprefix("0x"))
    tx_hash = "0x" + keccak(blob).hex()
    sender = Account.recover_transaction(blob)
    if blob[0] < 0x7F:
        fields = TypedTransaction.from_bytes(HexBytes(blob)).as_dict()
    else:
        import rlp

        nonce, _gp, _gas, to, _value, data, *_ = rlp.decode(blob)
        fields = {"nonce": int.from_bytes(nonce, "big"), "to": to, "data": data}
    to = fields.get("to")
    to = ("0x" + to.hex()) if isinstance(to, bytes) and to else (to or None)
    data = fields.get("data", b"")
    data = "0x" + data.hex() if isinstance(data, bytes) else str(data)
    return tx_hash, sender, int(fields["nonce"]), to, data


class ChaosProxy:
    """See the module docstring. `upstream`: the node's HTTP URL (its ws URL
    is derived: same host and port)."""

    def __init__(self, upstream: str, *, port: int | None = None, timeout_s: float = 15.0):
        self.upstream = upstream
        self.upstream_ws = upstream.replace("http://", "ws://").replace("https://", "wss://")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._decode_lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._outage: str | None = None
        self._refuse_ws = False
        self._counts: Counter[str] = Counter()
        self._forwarded: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()
        self._raw: list[tuple[str, bool, float]] = []  # (raw tx, forwarded, time)
        self._sent: list[SentTx] = []  # decoded prefix of _raw
        self._invalid = 0
        self._ws_sessions: set[web.WebSocketResponse] = set()
        self.ws_connections = 0  # accepted websocket sessions, ever
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"chaos-proxy-{self.port}", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("chaos proxy did not start")

    # --- control (any thread) ----------------------------------------------------------

    def inject(self, method: str | None, kind: str, count: int | None = 1) -> None:
        """The next `count` requests for `method` (None: any) get fault `kind`
        (count None: until `clear()`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {KINDS}")
        with self._lock:
            self._rules.append(_Rule(method, kind, count))

    def clear(self) -> None:
        """Removes every rule and ends any outage."""
        with self._lock:
            self._rules.clear()
            self._outage = None
            self._refuse_ws = False

    @contextmanager
    def outage(self, kind: str = "http429") -> Iterator[None]:
        """Every HTTP request fails with `kind` and websockets are refused
        and dropped inside the block."""
        with self._lock:
            self._outage = kind
            self._refuse_ws = True
        self.drop_websockets()
        try:
            yield
        finally:
            with self._lock:
                self._outage = None
                self._refuse_ws = False

    def refuse_websockets(self, refuse: bool = True) -> None:
        with self._lock:
            self._refuse_ws = refuse

    def drop_websockets(self) -> int:
        """Closes every live websocket session (like a load balancer cutting
        idle connections); returns how many were open."""
        sessions = list(self._ws_sessions)

        async def close_all() -> None:
            for ws in sessions:
                await ws.close(code=1011, message=b"chaos: dropped")

        asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(10)
        return len(sessions)

    @property
    def live_websockets(self) -> int:
        return len(self._ws_sessions)

    # --- observation ------------------------------------------------------------------

    def count(self, method: str) -> int:
        with self._lock:
            return self._counts[method]

    def forwarded(self, method: str) -> int:
        with self._lock:
            return self._forwarded[method]

    def injected(self, method: str | None = None) -> int:
        with self._lock:
            return sum(self._injected.values()) if method is None else self._injected[method]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._forwarded.clear()
            self._injected.clear()
            self._raw.clear()
            self._sent.clear()
            self._invalid = 0

    @property
    def raw_transactions(self) -> list[SentTx]:
        """Every eth_sendRawTransaction seen, decoded, in arrival order
        (invalid payloads, which the node rejects anyway, are left out)."""
        with self._decode_lock:
            with self._lock:
                raw = self._raw[len(self._sent) + self._invalid :]
            for payload, forwarded, at in raw:
                try:
                    h, sender, nonce, to, data = decode_raw(payload)
                except Exception:
                    with self._lock:
                        self._invalid += 1
                    continue
                with self._lock:
                    self._sent.append(SentTx(h, sender, nonce, to, data, forwarded=forwarded, at=at))
            with self._lock:
                return list(self._sent)

    def resends(self) -> list[SentTx]:
        """Forwarded raw transactions whose identical signed bytes (same hash)
        had been forwarded before (harmless to the chain, but a retry loop)."""
        seen: set[str] = set()
        out = []
        for tx in self.raw_transactions:
            if tx.forwarded:
                if tx.hash in seen:
                    out.append(tx)
                seen.add(tx.hash)
        return out

    def liquidation_nonces(self, engine: str) -> dict[tuple[str, int], set[int]]:
        """(owner, sub_id) -> the distinct nonces of forwarded
        `engine.liquidate(owner, sub_id, ...)` transactions. A fee bump or a
        resend keeps its nonce; more than one nonce for an account is a
        second liquidation attempt (a duplicate, unless the first was
        dropped or the account became liquidatable again)."""
        out: dict[tuple[str, int], set[int]] = {}
        for tx in self.raw_transactions:
            if tx.forwarded and tx.to and tx.to.lower() == engine.lower() and tx.data[:10] in LIQUIDATE_SELECTORS:
                owner = "0x" + tx.data[10 + 24 : 10 + 64]
                sub_id = int(tx.data[10 + 64 : 10 + 128], 16)
                out.setdefault((owner.lower(), sub_id), set()).add(tx.nonce)
        return out

    def sends_by_nonce(self) -> dict[tuple[str, int], list[SentTx]]:
        out: dict[tuple[str, int], list[SentTx]] = {}
        for tx in self.raw_transactions:
            if tx.forwarded:
                out.setdefault((tx.sender, tx.nonce), []).append(tx)
        return out

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        if self._loop.is_closed():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "ChaosProxy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- server (proxy thread) ----------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()

    async def _shutdown(self) -> None:
        for ws in list(self._ws_sessions):
            await ws.close()
        await self._runner.cleanup()
        await self._session.close()

    def _match(self, methods: list[str]) -> str | None:
        """The fault for a request carrying `methods` (one, or a batch), consuming a rule."""
        with self._lock:
            for m in methods:
                self._counts[m] += 1
            if self._outage:
                return self._outage
            for rule in self._rules:
                if rule.method is None or rule.method in methods:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    return rule.kind
        return None

    def _note(self, requests_: list[dict], fault: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            for r in requests_:
                m = r.get("method", "?")
                if fault:
                    self._injected[m] += 1
                else:
                    self._forwarded[m] += 1
        for r in requests_:
            if r.get("method") == "eth_sendRawTransaction" and r.get("params"):
                with self._lock:  # decoded lazily (signature recovery is slow): see raw_transactions
                    self._raw.append((r["params"][0], fault is None, now))

    @staticmethod
    def _error(req: dict, code: int, message: str) -> dict:
        return {"jsonrpc": "2.0", "id": req.get("id"), "error": {"code": code, "message": message}}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        body = await request.read()
        try:
            payload = json.loads(body)
        except json.JSONDecodeError:
            return web.Response(status=400, text="bad json")
        reqs = payload if isinstance(payload, list) else [payload]
        fault = self._match([r.get("method", "?") for r in reqs])
        self._note(reqs, fault)
        if fault in ("http429", "http500"):
            return web.Response(status=429 if fault == "http429" else 500, text="chaos")
        if fault in ("timeout", "drop"):
            if fault == "timeout":
                await asyncio.sleep(self.timeout_s)
            if request.transport is not None:
                request.transport.close()  # no answer at all
            return web.Response(status=504)  # never delivered: the socket is closed
        if fault in ("error", "rate_limit"):
            code, msg = (-32603, "injected fault") if fault == "error" else (-32005, "rate limit exceeded")
            answers = [self._error(r, code, msg) for r in reqs]
            return web.json_response(answers if isinstance(payload, list) else answers[0])
        async with self._session.post(self.upstream, data=body, headers={"Content-Type": "application/json"}) as up:
            return web.Response(status=up.status, body=await up.read(), content_type="application/json")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self._refuse_ws or self._outage:
            return web.Response(status=503, text="chaos: websockets refused")
        ws = web.WebSocketResponse(max_msg_size=64 * 2**20)
        await ws.prepare(request)
        self._ws_sessions.add(ws)
        self.ws_connections += 1
        try:
            async with self._session.ws_connect(self.upstream_ws, max_msg_size=64 * 2**20) as up:

                async def downstream() -> None:
                    async for msg in up:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await ws.send_str(msg.data)
                        elif msg.type == aiohttp.WSMsgType.BINARY:
                            await ws.send_bytes(msg.data)
                        else:
                            break
                    await ws.close()

                pump = asyncio.create_task(downstream())
                try:
                    async for msg in ws:
                        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                            break  # web3's WebSocketProvider sends BINARY frames
                        text = msg.data if msg.type == aiohttp.WSMsgType.TEXT else msg.data.decode()
                        try:
                            payload = json.loads(text)
                        except json.JSONDecodeError:
                            continue
                        reqs = payload if isinstance(payload, list) else [payload]
                        fault = self._match([r.get("method", "?") for r in reqs])
                        self._note(reqs, fault)
                        if fault in ("drop", "timeout", "http429", "http500"):
                            break  # a websocket has no status codes: the session dies
                        if fault in ("error", "rate_limit"):
                            code, m = (-32603, "injected fault") if fault == "error" else (-32005, "rate limit exceeded")
                            answers = [self._error(r, code, m) for r in reqs]
                            await ws.send_str(json.dumps(answers if isinstance(payload, list) else answers[0]))
                            continue
                        await up.send_str(text)
                finally:
                    pump.cancel()
        finally:
            self._ws_sessions.discard(ws)
            if not ws.closed:
                await ws.close()
        return ws
