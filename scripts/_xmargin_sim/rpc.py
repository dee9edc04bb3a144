"""Raw JSON-RPC over HTTP with batching: the fast path for seeding thousands
of transactions (one HTTP round trip per few hundred requests instead of one
per request). Only the standard library and `requests` (a web3 dependency).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import requests


class RpcError(RuntimeError):
    """A JSON-RPC error answer: `.code`, `.message`, `.data`, `.method`."""

    def __init__(self, method: str, error: dict):
        self.method = method
        self.code = error.get("code")
        self.message = error.get("message", "")
        self.data = error.get("data")
        super().__init__(f"{method}: {self.message} (code {self.code})")


class Rpc:
    """A JSON-RPC client for one HTTP endpoint.

    `call(method, *params)` returns the result or raises `RpcError`;
    `batch([(method, params), ...])` sends them in chunks of `chunk` and
    returns the results in order (raising on the first error unless
    `raise_errors=False`, which returns `RpcError` objects in place).
    """

    def __init__(self, url: str, timeout: float = 60.0, chunk: int = 500):
        self.url = url
        self.timeout = timeout
        self.chunk = chunk
        self._ids = itertools.count(1)
        self._session = requests.Session()

    @classmethod
    def of(cls, w3_or_url: Any) -> "Rpc":
        """An `Rpc` for a URL string, an `Rpc`, or a web3 `Web3` over HTTP."""
        if isinstance(w3_or_url, Rpc):
            return w3_or_url
        if isinstance(w3_or_url, str):
            return cls(w3_or_url)
        uri = getattr(getattr(w3_or_url, "provider", None), "endpoint_uri", None)
        if not uri or not str(uri).startswith("http"):
            raise TypeError("the simulator needs an HTTP JSON-RPC endpoint (a URL or an HTTPProvider Web3)")
        return cls(str(uri))

    def call(self, method: str, *params: Any) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        answer = self._session.post(self.url, json=payload, timeout=self.timeout).json()
        if "error" in answer:
            raise RpcError(method, answer["error"])
        return answer["result"]

    def batch(self, calls: Iterable[tuple[str, Sequence[Any]]], raise_errors: bool = True) -> list[Any]:
        calls = list(calls)
        results: list[Any] = []
        for start in range(0, len(calls), self.chunk):
            part = calls[start : start + self.chunk]
            ids = [next(self._ids) for _ in part]
            payload = [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in zip(ids, part)
            ]
            answers = self._session.post(self.url, json=payload, timeout=self.timeout).json()
            if isinstance(answers, dict):  # a whole-batch error
                raise RpcError("batch", answers.get("error", {"message": str(answers)}))
            by_id = {a["id"]: a for a in answers}
            for i, (method, _) in zip(ids, part):
                answer = by_id[i]
                if "error" in answer:
                    err = RpcError(method, answer["error"])
                    if raise_errors:
                        raise err
                    results.append(err)
                else:
                    results.append(answer["result"])
        return results

    def close(self) -> None:
        self._session.close()
