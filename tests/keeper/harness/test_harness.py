"""The simulator (scripts/_xmargin_sim) and the chaos proxy, on real anvil
nodes: exact amounts on chain, determinism, prices, state files, and every
fault kind of the proxy."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import requests
from eth_account import Account

from scripts._xmargin_sim import SIM_OPERATOR, Anvil, Rpc, RpcError, Sim, open_population, plan_population
from scripts._xmargin_sim.population import KINDS, owner_address
from scripts._xmargin_sim.seed import deployed_state
from tests.keeper.harness.chaos import ChaosProxy
from tests.keeper.harness.keeper_driver import KEEPER_KEY

WAD = 10**18


@pytest.fixture(scope="module")
def base():
    return deployed_state()


@pytest.fixture
def sim(base):
    with Anvil.start(load_state=base.state_path) as node:
        s = Sim(node.url, base.record_path)
        s.republish_prices()
        yield s


def test_population_is_deterministic_and_varied(sim):
    a = plan_population(sim, 200, seed=3)
    b = plan_population(sim, 200, seed=3)
    c = plan_population(sim, 200, seed=4)
    assert a == b and a != c
    assert [x.kind for x in a[:8]] == ["lender"] * 8 and all(x.kind != "lender" for x in a[8:])
    assert a[0].owner == owner_address(3, 0)
    kinds = {x.kind for x in a[8:]}
    assert kinds == set(KINDS)  # every archetype drawn at n = 200
    subs = [x for x in a if x.sub_id > 0]
    assert subs and all(any(y.owner == x.owner and y.sub_id == 0 for y in a) for x in subs)
    assert len({x.ref for x in a}) == 200
    assert all(0.2 <= x.leverage <= 0.97 for x in a[8:])
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        plan_population(sim, 10, seed=1, profile="nope")


def test_open_population_puts_exact_positions_on_chain(sim):
    accounts = open_population(sim, None, 40, seed=9)
    assert sim.rpc.call("anvil_getAutomine") is True  # restored
    weth = sim.assets["WETH"]
    for acc in accounts:
        balances = {sim.symbol_of(b[0]): (b[1], b[2]) for b in sim.lens.functions.balances(acc.owner, acc.sub_id).call()}
        for symbol, units in acc.deposits.items():
            # the deposit index can only grow: never less than deposited, at most 1e-9 more after a few blocks
            assert units <= balances[symbol][0] <= units + units // 10**9 + 1, (acc, symbol)
        for symbol, units in acc.borrows.items():
            assert units <= balances[symbol][1] <= units + units // 10**6 + 1, (acc, symbol)
        assert sim.engine.functions.operators(acc.owner, SIM_OPERATOR).call() is False  # approval revoked
    healths = sim.healths([a.ref for a in accounts])
    for acc, (initial, maintenance, _end, _ratio, valid) in zip(accounts, healths):
        assert valid and initial >= 0 and maintenance > initial
    # leverage = borrow_usd * lw_init / (collateral_usd * aw_init) for a single-asset ETH long
    longs = [a for a in accounts if a.kind == "eth_long"]
    assert longs
    usdc = sim.assets["USDC"]
    for a in longs:
        collateral = Decimal(a.deposits["WETH"]) / 10**18 * sim.price("WETH") * weth.asset_weight_initial / WAD
        debt = Decimal(a.borrows["USDC"]) / 10**6 * usdc.liability_weight_initial / WAD
        assert abs(debt / collateral - Decimal(repr(a.leverage))) < Decimal("0.0005")


def test_prices_and_rounds(sim):
    sim.set_price("WETH", "1234.5")
    assert sim.feeds["WETH"].functions.latestAnswer().call() == 123_450_000_000
    assert sim.price("WETH") == Decimal("1234.5")
    accounts = open_population(sim, None, 12, seed=2, profile="eth_longs")
    refs = [a.ref for a in accounts if not a.is_lender]
    old = sim.timestamp() - 86_400 - 10  # local.yaml: max_staleness 86,400 s
    sim.set_round("WETH", 123_450_000_000, old, old)
    assert [h[4] for h in sim.healths(refs)] == [False] * len(refs)
    sim.republish_prices()
    assert [h[4] for h in sim.healths(refs)] == [True] * len(refs)
    sim.set_price("WETH", Decimal("1234.5") * Decimal("0.8"))
    assert sorted(sim.liquidatable(refs)) == sorted(refs)  # leverage >= 0.93: all below maintenance at -20%


def test_state_file_round_trip(base, tmp_path):
    with Anvil.start(load_state=base.state_path) as node:
        sim = Sim(node.url, base.record_path)
        sim.republish_prices()
        open_population(sim, None, 6, seed=1)
        head = node.block_number()
        flt = {"fromBlock": hex(base.record.deployment_block), "toBlock": "latest", "address": base.record.engine}
        logs = node.rpc.call("eth_getLogs", flt)
        node.dump_state(tmp_path / "s.json")
    with Anvil.start(load_state=tmp_path / "s.json") as again:
        assert again.block_number() == head
        assert again.rpc.call("eth_getLogs", flt) == logs  # history survives: the keeper syncs from events


def test_chaos_proxy_faults_and_counts():
    keeper = Account.from_key(KEEPER_KEY)
    with Anvil.start() as node, ChaosProxy(node.url, timeout_s=0.5) as proxy:
        rpc = Rpc(proxy.url, timeout=5)
        assert rpc.call("eth_chainId") == "0x7a69"
        proxy.inject("eth_blockNumber", "error", count=2)
        for _ in range(2):
            with pytest.raises(RpcError, match="injected fault"):
                rpc.call("eth_blockNumber")
        assert rpc.call("eth_blockNumber") == "0x0"
        proxy.inject(None, "rate_limit", count=1)
        with pytest.raises(RpcError) as err:
            rpc.call("eth_chainId")
        assert err.value.code == -32005
        for kind, status in (("http429", 429), ("http500", 500)):
            proxy.inject(None, kind, count=1)
            assert requests.post(proxy.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).status_code == status
        for kind in ("timeout", "drop"):
            proxy.inject(None, kind, count=1)
            with pytest.raises(requests.ConnectionError):
                requests.post(proxy.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=5)
        with proxy.outage("http429"):
            assert requests.post(proxy.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).status_code == 429
        assert rpc.batch([("eth_chainId", []), ("eth_blockNumber", [])]) == ["0x7a69", "0x0"]
        assert proxy.counts() == {"eth_chainId": 8, "eth_blockNumber": 4}
        assert proxy.injected() == 8 and proxy.forwarded("eth_blockNumber") == 2

        signed = keeper.sign_transaction(dict(to=keeper.address, value=1, gas=21_000, maxFeePerGas=10**10,
                                              maxPriorityFeePerGas=1, nonce=0, chainId=31337, type=2))
        raw = "0x" + signed.raw_transaction.hex()
        proxy.inject("eth_sendRawTransaction", "error", count=1)
        with pytest.raises(RpcError):
            rpc.call("eth_sendRawTransaction", raw)  # never reached the node
        tx_hash = rpc.call("eth_sendRawTransaction", raw)
        with pytest.raises(RpcError, match="nonce too low|already"):
            rpc.call("eth_sendRawTransaction", raw)
        sent = proxy.raw_transactions
        assert [(t.hash, t.sender, t.nonce, t.forwarded) for t in sent] == [
            (tx_hash, keeper.address, 0, False), (tx_hash, keeper.address, 0, True), (tx_hash, keeper.address, 0, True)
        ]
        assert [t.hash for t in proxy.resends()] == [tx_hash]


def test_chaos_proxy_websockets():
    from web3 import AsyncWeb3, WebSocketProvider

    from tests.keeper.harness.keeper_driver import _allow_websockets_off_main_thread

    _allow_websockets_off_main_thread()
    with Anvil.start() as node, ChaosProxy(node.url) as proxy:

        async def session() -> str:
            async with AsyncWeb3(WebSocketProvider(proxy.ws_url, request_timeout=5)) as w3:
                assert await w3.eth.block_number == 0
                await w3.eth.subscribe("newHeads")
                assert proxy.live_websockets == 1
                await asyncio.get_running_loop().run_in_executor(None, proxy.drop_websockets)
                try:
                    await asyncio.wait_for(w3.eth.block_number, 3)
                except Exception as exc:  # the session is gone
                    return type(exc).__name__
                return "still open"

        assert asyncio.run(session()) != "still open"
        assert proxy.live_websockets == 0 and proxy.ws_connections == 1
        counts = proxy.counts()
        assert counts["eth_subscribe"] == 1 and counts["eth_blockNumber"] >= 1
        proxy.refuse_websockets(True)

        async def handshake() -> None:
            import websockets

            async with websockets.connect(proxy.ws_url):
                pass

        with pytest.raises(Exception, match="503"):
            asyncio.run(handshake())
        assert proxy.ws_connections == 1
