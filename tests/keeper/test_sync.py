"""Log discovery: eth_getLogs ranges halve on error (down to one block),
grow back after successes, and return exactly the logs of one big query;
a block that keeps failing raises LogFetchFailed. The node is a real anvil
behind a loopback proxy that refuses ranges wider than a limit, as hosted
nodes do ("query returned more than 10000 results")."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from keeper.rpc import Rpc
from keeper.sync import ChunkState, LogFetchFailed, decode_logs, fetch_logs
from tests.keeper.localchain import Anvil, compiled


class RangeLimitProxy:
    """Forwards JSON-RPC to the node; eth_getLogs over more than
    ``max_range`` blocks (or touching ``poison`` blocks) gets error -32005."""

    def __init__(self, upstream: str, max_range: int, poison: set[int] = frozenset()):
        self.upstream, self.max_range, self.poison = upstream, max_range, set(poison)
        self.ranges: list[tuple[int, int, bool]] = []  # (from, to, served)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("method") == "eth_getLogs":
            flt = body["params"][0]
            lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
            refused = hi - lo + 1 > self.max_range or any(lo <= p <= hi for p in self.poison)
            self.ranges.append((lo, hi, not refused))
            if refused:
                return web.json_response({"jsonrpc": "2.0", "id": body["id"],
                                          "error": {"code": -32005, "message": "query returned more than 10000 results"}})
        async with aiohttp.ClientSession() as s:
            async with s.post(self.upstream, json=body) as r:
                return web.Response(text=await r.text(), content_type="application/json")

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


@pytest.fixture(scope="module")
def feed_chain():
    """anvil with one MockAggregator and 40 rounds, one per block."""
    with Anvil() as anvil:
        w3 = anvil.w3
        abi, bytecode = compiled("contracts/mocks/MockAggregator.vy")
        tx = w3.eth.contract(abi=abi, bytecode=bytecode).constructor(8, "ETH / USD", 2000 * 10**8).transact({"from": anvil.accounts[0]})
        feed = w3.eth.contract(address=w3.eth.wait_for_transaction_receipt(tx)["contractAddress"], abi=abi)
        for i in range(40):
            w3.eth.wait_for_transaction_receipt(feed.functions.set_answer((2000 + i) * 10**8).transact({"from": anvil.accounts[0]}))
        yield anvil, feed.address


def test_chunks_halve_on_error_and_results_are_complete(feed_chain):
    anvil, feed = feed_chain
    head = anvil.head()

    async def main():
        async with Rpc(anvil.url) as direct:
            expected = await direct.get_logs(0, head, [feed])
        proxy = RangeLimitProxy(anvil.url, max_range=5)
        async with proxy as url:
            async with Rpc(url, max_retries=0) as rpc:
                chunk = ChunkState(max_size=64, grow_after=3)
                got = await fetch_logs(rpc, 0, head, [feed], chunk)
        return expected, got, proxy.ranges, chunk

    expected, got, ranges, chunk = asyncio.run(main())
    assert len(expected) == 2 * 41  # NewRound + AnswerUpdated per round (constructor + 40)
    assert got == expected
    refused_sizes = [hi - lo + 1 for lo, hi, ok in ranges if not ok]
    assert refused_sizes[:4] == [42, 32, 16, 8]  # 64 capped by the range, then halving
    served = [(lo, hi) for lo, hi, ok in ranges if ok]
    assert served[0] == (0, 3) and all(hi - lo + 1 <= 5 for lo, hi in served)
    assert [b for lo, hi in served for b in range(lo, hi + 1)] == list(range(0, head + 1))  # no gap, no overlap
    # after 3 successes at 4 blocks the size doubles to 8 (refused), then halves again
    assert 8 in refused_sizes[4:]
    answers = [d.args["current"] for d in decode_logs(got, "0x" + "00" * 20, None, {feed.lower()}) if d.name == "AnswerUpdated"]
    assert answers == [2000 * 10**8] + [(2000 + i) * 10**8 for i in range(40)]  # constructor round, then 40 writes


def test_a_block_that_always_fails_raises_after_retries(feed_chain):
    anvil, feed = feed_chain

    async def main():
        proxy = RangeLimitProxy(anvil.url, max_range=1000, poison={7})
        async with proxy as url:
            async with Rpc(url, max_retries=0) as rpc:
                with pytest.raises(LogFetchFailed, match="block 7"):
                    await fetch_logs(rpc, 0, 20, [feed], ChunkState(max_size=16), single_block_retries=2)
        return proxy.ranges

    ranges = asyncio.run(main())
    assert [(lo, hi) for lo, hi, ok in ranges if ok] == [(0, 3), (4, 5), (6, 6)]
    assert [(lo, hi) for lo, hi, ok in ranges if not ok][-3:] == [(7, 7)] * 3  # first try + 2 retries


def test_fast_log_decoder_equals_eth_abi_for_every_event():
    """The static-word fast path of keeper.abi.Codec.decode_log gives what
    eth-abi gives, for every event of the engine and the feed, with edge values."""
    import random

    import eth_abi
    from eth_utils import to_checksum_address

    from keeper.abi import Codec, codec, load_abi

    rng = random.Random(7)

    def value(kind: str):
        if kind == "address":
            return to_checksum_address("0x" + rng.randbytes(20).hex())
        if kind == "bool":
            return rng.random() < 0.5
        bits = int(kind.lstrip("uint") or 256)
        if kind.startswith("uint"):
            return rng.choice([0, 1, 2**bits - 1, rng.randrange(2**bits)])
        return rng.choice([-(2 ** (bits - 1)), -1, 0, 2 ** (bits - 1) - 1, rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1))])

    checked = 0
    for name in ("MarginEngine", "AggregatorV3"):
        fast, slow = codec(name), Codec(load_abi(name))
        slow._fast = {}
        for ev in (x for x in load_abi(name) if x["type"] == "event"):
            for _ in range(5):
                args = {i["name"]: value(i["type"]) for i in ev["inputs"]}
                topics = [fast.event_topic(ev["name"])] + [
                    "0x" + eth_abi.encode([i["type"]], [args[i["name"]]]).hex() for i in ev["inputs"] if i.get("indexed")
                ]
                plain = [i for i in ev["inputs"] if not i.get("indexed")]
                data = "0x" + eth_abi.encode([i["type"] for i in plain], [args[i["name"]] for i in plain]).hex()
                log = {"topics": topics, "data": data}
                assert fast.decode_log(log) == slow.decode_log(log) == (ev["name"], args)
                checked += 1
    assert checked == 5 * (16 + 2)
