"""ABI encoding/decoding of the few contract calls and events the keeper
uses, from the JSON ABIs in ``keeper/abi/`` (compiler output of the
contracts; the engine's file merges MarginEngine and MarginEngineExtension,
whose events share the engine's address).

``Codec(name)`` encodes calls (``encode(fn, *args)``) and decodes their
results (``decode(fn, data)``) and logs (``decode_log(log)``) with eth-abi.
Overloaded functions (Vyper default arguments) resolve to the variant with
as many inputs as arguments given.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import eth_abi
from eth_utils import (
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
    to_checksum_address,
)

ABI_DIR = Path(__file__).resolve().parent / "abi"


def _hex(b: bytes | str) -> bytes:
    if isinstance(b, (bytes, bytearray)):
        return bytes(b)
    return bytes.fromhex(b[2:] if b.startswith("0x") else b)


@lru_cache(maxsize=65536)
def checksum(address: str) -> str:
    """EIP-55 checksummed address (cached: owners repeat across logs)."""
    return to_checksum_address(address)


_STATIC = ("uint", "int", "address", "bool")


def _word_decoder(kind: str):
    """Decoder of one static ABI word (bytes of 32) for uint/int/address/bool."""
    if kind == "address":
        return lambda w: checksum("0x" + w[12:].hex())
    if kind == "bool":
        return lambda w: w[31] != 0
    if kind.startswith("uint"):
        return lambda w: int.from_bytes(w, "big")
    return lambda w: int.from_bytes(w, "big", signed=True)  # intN words are sign-extended to 256 bits


def _to_dict(items: list[dict], values: tuple) -> dict[str, Any]:
    out = {}
    for item, value in zip(items, values):
        if item["type"] == "tuple" and isinstance(value, tuple):
            value = _to_dict(item["components"], value)
        elif item["type"] == "address":
            value = to_checksum_address(value)
        out[item["name"]] = value
    return out


class Codec:
    """Encoder/decoder for one contract ABI (see module docstring)."""

    def __init__(self, abi: list[dict]):
        self.abi = abi
        self._functions: dict[tuple[str, int], dict] = {}
        self._events: dict[bytes, dict] = {}
        for item in abi:
            if item["type"] == "function":
                self._functions[(item["name"], len(item["inputs"]))] = item
            elif item["type"] == "event":
                self._events[event_abi_to_log_topic(item)] = item
        # Events whose fields are all static words decode without eth-abi (hot path of the sync).
        self._fast: dict[bytes, tuple] = {}
        for topic, ev in self._events.items():
            fields = ev["inputs"]
            if all(i["type"].startswith(_STATIC) and "[" not in i["type"] for i in fields):
                indexed = [(i["name"], _word_decoder(i["type"])) for i in fields if i.get("indexed")]
                plain = [(i["name"], _word_decoder(i["type"])) for i in fields if not i.get("indexed")]
                self._fast[topic] = (ev["name"], indexed, plain)

    def function(self, name: str, n_args: int) -> dict:
        try:
            return self._functions[(name, n_args)]
        except KeyError:
            raise KeyError(f"no function {name} with {n_args} inputs") from None

    def encode(self, name: str, *args: Any) -> str:
        """Calldata (0x-hex) of ``name(*args)``."""
        fn = self.function(name, len(args))
        body = eth_abi.encode(get_abi_input_types(fn), list(args))
        return "0x" + (function_abi_to_4byte_selector(fn) + body).hex()

    def decode(self, name: str, data: bytes | str, n_args: int | None = None) -> Any:
        """Decoded return value of ``name``: a single value, or a tuple for
        several outputs (structs come back as tuples)."""
        fn = self._first(name) if n_args is None else self.function(name, n_args)
        values = eth_abi.decode(get_abi_output_types(fn), _hex(data))
        return values[0] if len(values) == 1 else values

    def _first(self, name: str) -> dict:
        for (n, _), fn in self._functions.items():
            if n == name:
                return fn
        raise KeyError(f"no function {name}")

    def event_topic(self, name: str) -> str:
        for topic, ev in self._events.items():
            if ev["name"] == name:
                return "0x" + topic.hex()
        raise KeyError(f"no event {name}")

    def decode_log(self, log: dict) -> tuple[str, dict[str, Any]] | None:
        """(event name, fields by name) of an RPC log object, or None when
        the topic is not an event of this ABI."""
        topics = log.get("topics") or []
        if not topics:
            return None
        topic0 = _hex(topics[0])
        fast = self._fast.get(topic0)
        if fast is not None:
            name, indexed_fields, plain_fields = fast
            out: dict[str, Any] = {}
            for (field, dec), topic in zip(indexed_fields, topics[1:]):
                out[field] = dec(_hex(topic))
            data = _hex(log.get("data") or "0x")
            if len(data) < 32 * len(plain_fields):
                raise ValueError(f"{name}: log data too short")
            for k, (field, dec) in enumerate(plain_fields):
                out[field] = dec(data[32 * k:32 * k + 32])
            return name, out
        ev = self._events.get(topic0)
        if ev is None:
            return None
        indexed = [i for i in ev["inputs"] if i.get("indexed")]
        plain = [i for i in ev["inputs"] if not i.get("indexed")]
        args: dict[str, Any] = {}
        for item, topic in zip(indexed, topics[1:]):
            (value,) = eth_abi.decode([item["type"]], _hex(topic))
            args[item["name"]] = to_checksum_address(value) if item["type"] == "address" else value
        if plain:
            types = [_abi_type(i) for i in plain]
            values = eth_abi.decode(types, _hex(log.get("data") or "0x"))
            args.update(_to_dict(plain, values))
        return ev["name"], args


def _abi_type(item: dict) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner})" + item["type"][5:]
    return item["type"]


@lru_cache(maxsize=None)
def load_abi(name: str) -> list[dict]:
    """The JSON ABI ``keeper/abi/<name>.json``."""
    return json.loads((ABI_DIR / f"{name}.json").read_text(encoding="utf8"))


@lru_cache(maxsize=None)
def codec(name: str) -> Codec:
    """Cached :class:`Codec` of ``keeper/abi/<name>.json`` (MarginEngine,
    MarginLens, AggregatorV3, ERC20, KeeperFlashLiquidator)."""
    return Codec(load_abi(name))
