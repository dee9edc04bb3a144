"""Node access: JSON-RPC over HTTP (aiohttp) for every request, and an
AsyncWeb3 websocket for ``newHeads`` / ``logs`` subscriptions.

Failures are split in two:

* :class:`RpcUnavailable` -- transport trouble (connection refused, timeout,
  HTTP 429/5xx, a closed socket, an RPC "rate limit"/"timeout" error). Read
  calls retry with exponential back-off (``max_retries``), then raise.
* :class:`RpcError` -- the node answered with a JSON-RPC error (a revert, an
  invalid argument, "nonce too low"...): never retried here.

Every request is counted in ``xmargin_keeper_rpc_requests{method}`` and
every failure in ``xmargin_keeper_rpc_errors{method}``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any, AsyncIterator

import aiohttp
import structlog

from .metrics import Metrics

log = structlog.get_logger("keeper.rpc")

# limit exceeded, too many requests, internal error (not a revert): the node's trouble, not the request's
_TRANSIENT_CODES = {-32005, 429, -32603}
_TRANSIENT_WORDS = ("rate limit", "too many requests", "timeout", "timed out", "header not found", "try again")


class RpcUnavailable(Exception):
    """The node could not be reached or refused service (retryable)."""


class RpcError(Exception):
    """A JSON-RPC error answer. ``code``, ``message`` and ``data`` as sent."""

    def __init__(self, code: int, message: str, data: Any = None):
        self.code, self.message, self.data = code, message, data
        super().__init__(f"{code}: {message}")

    @property
    def revert_reason(self) -> str | None:
        """The Error(string) revert reason carried in ``data``, if any."""
        data = self.data
        if isinstance(data, dict):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x08c379a0"):
            try:
                import eth_abi

                return eth_abi.decode(["string"], bytes.fromhex(data[10:]))[0]
            except Exception:
                return None
        msg = self.message
        if "execution reverted: " in msg:
            return msg.split("execution reverted: ", 1)[1]
        return None


def _hex(n: int) -> str:
    return hex(n)


def block_param(block: int | str) -> str:
    return block if isinstance(block, str) else _hex(block)


class Rpc:
    """An HTTP JSON-RPC client (see module docstring)."""

    def __init__(self, url: str, *, timeout: float = 10.0, max_retries: int = 3, metrics: Metrics | None = None):
        self.url = url
        self.timeout = timeout
        self.max_retries = max_retries
        self.metrics = metrics
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Rpc":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- core -----------------------------------------------------------------
    async def request(self, method: str, params: list | None = None, *, retries: int | None = None) -> Any:
        """Sends one request; retries :class:`RpcUnavailable` failures up to
        ``retries`` (default ``max_retries``) times with back-off 0.1 s * 2^n."""
        attempts = (self.max_retries if retries is None else retries) + 1
        delay = 0.1
        for attempt in range(attempts):
            try:
                return await self._request_once(method, params or [])
            except RpcUnavailable:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def _request_once(self, method: str, params: list) -> Any:
        if self._session is None:
            await self.start()
        assert self._session is not None
        m = self.metrics
        if m is not None:
            m.rpc_requests.labels(method).inc()
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            async with self._session.post(self.url, json=body) as resp:
                if resp.status == 429 or resp.status >= 500:
                    raise RpcUnavailable(f"{method}: HTTP {resp.status}")
                text = await resp.text()
                if resp.status != 200:
                    raise RpcUnavailable(f"{method}: HTTP {resp.status}: {text[:200]}")
        except RpcUnavailable:
            self._failed(method)
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self._failed(method)
            raise RpcUnavailable(f"{method}: {exc.__class__.__name__}: {exc}") from None
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            self._failed(method)
            raise RpcUnavailable(f"{method}: not JSON: {text[:200]!r}") from None
        if isinstance(answer, dict) and "error" in answer and answer["error"] is not None:
            err = answer["error"]
            code, message = int(err.get("code", 0)), str(err.get("message", ""))
            if m is not None:
                m.rpc_up.set(1)
            transient = code in _TRANSIENT_CODES and "revert" not in message.lower()
            if transient or any(w in message.lower() for w in _TRANSIENT_WORDS):
                self._failed(method)
                raise RpcUnavailable(f"{method}: {code}: {message}")
            raise RpcError(code, message, err.get("data"))
        if not isinstance(answer, dict) or "result" not in answer:
            self._failed(method)
            raise RpcUnavailable(f"{method}: malformed answer {text[:200]!r}")
        if m is not None:
            m.rpc_up.set(1)
        return answer["result"]

    def _failed(self, method: str) -> None:
        if self.metrics is not None:
            self.metrics.rpc_errors.labels(method).inc()
            self.metrics.rpc_up.set(0)

    # -- helpers ----------------------------------------------------------------
    async def chain_id(self) -> int:
        return int(await self.request("eth_chainId"), 16)

    async def block_number(self) -> int:
        return int(await self.request("eth_blockNumber"), 16)

    async def get_block(self, block: int | str = "latest") -> dict | None:
        """Block header (no transactions) or None when it does not exist."""
        return await self.request("eth_getBlockByNumber", [block_param(block), False])

    async def get_logs(self, from_block: int, to_block: int, addresses: list[str], topics: list | None = None) -> list[dict]:
        flt: dict[str, Any] = {"fromBlock": _hex(from_block), "toBlock": _hex(to_block), "address": addresses}
        if topics is not None:
            flt["topics"] = topics
        # A failed range is split by the caller (sync.fetch_logs): one attempt here.
        return await self.request("eth_getLogs", [flt], retries=0)

    async def call(self, to: str, data: str, block: int | str = "latest", sender: str | None = None, retries: int | None = None) -> str:
        tx: dict[str, Any] = {"to": to, "data": data}
        if sender is not None:
            tx["from"] = sender
        return await self.request("eth_call", [tx, block_param(block)], retries=retries)

    async def get_code(self, address: str, block: int | str = "latest") -> str:
        return await self.request("eth_getCode", [address, block_param(block)])

    async def nonce(self, address: str, block: int | str = "latest") -> int:
        return int(await self.request("eth_getTransactionCount", [address, block_param(block)]), 16)

    async def balance(self, address: str, block: int | str = "latest") -> int:
        return int(await self.request("eth_getBalance", [address, block_param(block)]), 16)

    async def receipt(self, tx_hash: str) -> dict | None:
        return await self.request("eth_getTransactionReceipt", [tx_hash])

    async def transaction(self, tx_hash: str) -> dict | None:
        return await self.request("eth_getTransactionByHash", [tx_hash])

    async def send_raw(self, raw: str) -> str:
        """eth_sendRawTransaction, never retried (the dispatcher decides)."""
        return await self.request("eth_sendRawTransaction", [raw], retries=0)

    async def estimate_gas(self, tx: dict, block: int | str = "latest") -> int:
        return int(await self.request("eth_estimateGas", [tx, block_param(block)], retries=0), 16)


class HeadSubscription:
    """``newHeads`` (and optionally ``logs``) over an AsyncWeb3 websocket.
    ``heads()`` yields block numbers as the node announces them and raises
    :class:`RpcUnavailable` when the socket drops (the caller falls back to
    HTTP polling and reconnects later)."""

    def __init__(self, url: str, *, timeout: float = 10.0):
        self.url = url
        self.timeout = timeout
        self._w3: Any = None

    async def connect(self) -> None:
        from web3 import AsyncWeb3, WebSocketProvider

        try:
            self._w3 = await AsyncWeb3(WebSocketProvider(self.url, request_timeout=self.timeout, max_connection_retries=1))
        except Exception as exc:
            raise RpcUnavailable(f"websocket {self.url}: {exc.__class__.__name__}: {exc}") from None

    async def close(self) -> None:
        if self._w3 is not None:
            try:
                await self._w3.provider.disconnect()
            except Exception:
                pass
            self._w3 = None

    async def heads(self, log_filter: dict | None = None) -> AsyncIterator[tuple[str, int]]:
        """Yields ("head", number) for each new head and ("log", block
        number) for each matching log (when ``log_filter`` is given)."""
        if self._w3 is None:
            await self.connect()
        w3 = self._w3
        try:
            head_sub = await w3.eth.subscribe("newHeads")
            log_sub = await w3.eth.subscribe("logs", log_filter) if log_filter else None
            async for msg in w3.socket.process_subscriptions():
                sub = msg.get("subscription")
                result = msg.get("result") or {}
                number = result.get("number") if sub == head_sub else result.get("blockNumber")
                if number is None:
                    continue
                n = int(number, 16) if isinstance(number, str) else int(number)
                yield ("head" if sub == head_sub else "log", n)
            raise RpcUnavailable("websocket closed")
        except RpcUnavailable:
            raise
        except Exception as exc:
            raise RpcUnavailable(f"websocket: {exc.__class__.__name__}: {exc}") from None
        finally:
            await self.close()
