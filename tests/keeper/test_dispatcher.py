"""The dispatcher against a real anvil: send-error classification from the
node's own messages, fee bumps (+12.5% cap and tip), the profit cap, the
cancel that takes an abandoned nonce, re-broadcast of a dropped tx, and
crash safety (slot persisted before the broadcast)."""

from __future__ import annotations

import asyncio

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from keeper.config import GasSettings
from keeper.dispatcher import Dispatcher, Fees, SendError, bumped, classify_send_error, initial_fees
from keeper.metrics import Metrics
from keeper.rpc import Rpc, RpcError
from keeper.store import DROPPED, MINED, PENDING, Store
from tests.keeper.localchain import KEEPER_KEY, Anvil

KEEPER = Account.from_key(KEEPER_KEY)
TARGET = "0x00000000000000000000000000000000000000f1"  # an empty account (lower-case: not checksummed)
GWEI = 10**9


@pytest.fixture(scope="module")
def anvil():
    with Anvil() as node:
        yield node


@pytest.fixture
def node(anvil):
    snap = anvil.call("evm_snapshot")
    anvil.call("anvil_setNextBlockBaseFeePerGas", hex(GWEI))  # anvil keeps it across evm_revert
    anvil.mine(1)
    anvil.set_automine(False)
    yield anvil
    anvil.set_automine(True)
    anvil.call("evm_revert", snap)


def run(coro):
    return asyncio.run(coro)


def value(metric, *labels) -> float:
    m = metric.labels(*labels) if labels else metric
    return m._value.get()


def sign(account, nonce: int, max_fee: int, tip: int) -> str:
    tx = dict(type=2, chainId=31337, nonce=nonce, to=to_checksum_address(TARGET), value=0, data="0x", gas=21_000,
              maxFeePerGas=max_fee, maxPriorityFeePerGas=tip)
    return "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()


def test_bumped_is_ceil_and_strictly_higher():
    assert bumped(1_000_000_000, 125) == 1_125_000_000
    assert bumped(7, 125) == 8  # ceil(7.875)
    assert bumped(1, 125) == 2  # never equal
    assert bumped(0, 125) == 1
    gas = GasSettings(tip_gwei="2", max_fee_gwei="30", base_fee_multiplier_percent=200)
    assert initial_fees(10 * GWEI, gas) == Fees(22 * GWEI, 2 * GWEI)
    assert initial_fees(20 * GWEI, gas) == Fees(30 * GWEI, 2 * GWEI)  # capped by max_fee_gwei


def test_send_errors_are_classified_from_anvil_messages(node):
    poor = Account.create()

    async def main():
        async with Rpc(node.url) as rpc:
            first = sign(KEEPER, 0, 10 * GWEI, GWEI)
            await rpc.send_raw(first)
            kinds = {}
            for name, raw in [
                ("again", first),
                ("lower_replacement", sign(KEEPER, 0, 9 * GWEI, GWEI)),
                ("poor", sign(poor, 0, 10 * GWEI, GWEI)),
            ]:
                with pytest.raises(RpcError) as err:
                    await rpc.send_raw(raw)
                kinds[name] = classify_send_error(err.value)
            node.mine(1)
            with pytest.raises(RpcError) as err:
                await rpc.send_raw(sign(KEEPER, 0, 20 * GWEI, 2 * GWEI))
            kinds["used_nonce"] = classify_send_error(err.value)
            node.call("anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
            node.mine(1)
            with pytest.raises(RpcError) as err:
                await rpc.send_raw(sign(KEEPER, 1, 10 * GWEI, GWEI))
            kinds["below_base_fee"] = classify_send_error(err.value)
            return kinds

    assert run(main()) == {
        "again": SendError.ALREADY_KNOWN,
        "lower_replacement": SendError.UNDERPRICED,
        "poor": SendError.INSUFFICIENT_FUNDS,
        "used_nonce": SendError.NONCE_TOO_LOW,
        "below_base_fee": SendError.UNDERPRICED,
    }


def make(rpc: Rpc, tmp_path, account=KEEPER, **gas) -> tuple[Dispatcher, Store, Metrics]:
    store = Store(tmp_path / "d.sqlite")
    metrics = Metrics()
    rpc.metrics = metrics  # count this dispatcher's requests
    settings = GasSettings(**{"tip_gwei": "1", "max_fee_gwei": "500", "bump_after_blocks": 2, "abandon_after_blocks": 8, **gas})
    return Dispatcher(rpc, store, account, 31337, settings, metrics), store, metrics


async def base_fee(rpc: Rpc) -> int:
    return int((await rpc.get_block("latest"))["baseFeePerGas"], 16)


def test_bump_then_profit_cap_then_cancel(node, tmp_path):
    async def main():
        async with Rpc(node.url) as rpc:
            d, store, metrics = make(rpc, tmp_path)
            await d.start(0)
            bf = await base_fee(rpc)
            fees = initial_fees(bf, d.gas)
            gas_limit = 50_000
            # Enough profit for exactly one bump: cap * gas <= profit < bumped(bumped(cap)) * gas.
            profit = bumped(fees.max_fee, 125) * gas_limit + 1
            slot = await d.send(kind="liquidation", to=TARGET, data="0x", gas_limit=gas_limit, fees=fees, head=10,
                                expected_profit_wei=profit, account_key="0xabc:0")
            assert slot is not None and slot.nonce == 0 and store.txs(PENDING)[0].hash == slot.hash
            first_hash = slot.hash
            still = lambda s: profit  # noqa: E731  (re-simulation: still profitable)

            async def resim(s):
                return still(s)

            await d.on_block(11, bf, resim)  # age 1 < bump_after_blocks: nothing
            assert d.slots[0].hashes == [first_hash]
            await d.on_block(12, bf, resim)  # age 2: bump
            s = d.slots[0]
            assert (s.max_fee, s.tip) == (bumped(fees.max_fee, 125), bumped(fees.tip, 125))
            assert len(s.hashes) == 2 and s.kind == "liquidation" and s.bumps == 1
            assert (await rpc.transaction(s.hash)) is not None  # the replacement is pooled
            await d.on_block(14, bf, resim)  # next bump would cost more than the profit: cancel
            s = d.slots[0]
            assert s.kind == "cancel" and s.gas_limit == 21_000 and s.payload["to"] == KEEPER.address
            assert s.max_fee == bumped(bumped(fees.max_fee, 125), 125) and s.tip == bumped(bumped(fees.tip, 125), 125)
            assert s.payload["cancelled_account"] == "0xabc:0" and len(s.hashes) == 3
            node.mine(1)
            await d.on_block(15, bf, resim)
            assert d.slots == {} and await rpc.nonce(KEEPER.address) == 1
            final = store.txs()[0]
            assert final.status == MINED and final.kind == "cancel" and final.hash == s.hash
            assert value(metrics.liquidations_lost) == 1 and value(metrics.replacements) == 1
            assert value(metrics.cancels) == 1 and value(metrics.liquidations_sent) == 1
            # The next transaction takes the next nonce.
            nxt = await d.send(kind="liquidation", to=TARGET, data="0x", gas_limit=gas_limit, fees=fees, head=16,
                               expected_profit_wei=profit, account_key="0xdef:0")
            assert nxt is not None and nxt.nonce == 1

    run(main())


def test_dropped_tx_is_rebroadcast_with_the_same_hash(node, tmp_path):
    async def main():
        async with Rpc(node.url) as rpc:
            d, store, metrics = make(rpc, tmp_path)
            await d.start(0)
            bf = await base_fee(rpc)
            slot = await d.send(kind="liquidation", to=TARGET, data="0x", gas_limit=50_000, fees=initial_fees(bf, d.gas),
                                head=5, expected_profit_wei=10**18, account_key="0xabc:0")
            node.call("anvil_dropTransaction", slot.hash)
            assert await rpc.transaction(slot.hash) is None

            async def resim(s):
                return s.expected_profit_wei

            await d.on_block(6, bf, resim)
            assert await rpc.transaction(slot.hash) is not None and d.slots[0].hashes == [slot.hash]
            node.mine(1)
            await d.on_block(7, bf, resim)
            assert store.txs()[0].status == MINED and value(metrics.liquidations_mined) == 1
            assert value(metrics.rpc_requests, "eth_sendRawTransaction") == 2  # send + one re-broadcast

    run(main())


def test_abandon_when_resimulation_fails_fills_the_nonce_gap(node, tmp_path):
    async def main():
        async with Rpc(node.url) as rpc:
            d, store, _ = make(rpc, tmp_path)
            await d.start(0)
            bf = await base_fee(rpc)
            fees = initial_fees(bf, d.gas)
            a = await d.send(kind="liquidation", to=TARGET, data="0x", gas_limit=50_000, fees=fees, head=5,
                             expected_profit_wei=10**18, account_key="0xa:0")
            b = await d.send(kind="liquidation", to=TARGET, data="0x", gas_limit=50_000, fees=fees, head=5,
                             expected_profit_wei=10**18, account_key="0xb:0")
            assert (a.nonce, b.nonce) == (0, 1)
            node.call("anvil_dropTransaction", a.hash)  # nonce 0 missing: nonce 1 cannot be mined

            async def resim(s):
                return None if s.nonce == 0 else s.expected_profit_wei  # account a is no longer liquidatable

            await d.on_block(6, bf, resim)
            assert d.slots[0].kind == "cancel"
            node.mine(1)
            await d.on_block(7, bf, resim)
            assert await rpc.nonce(KEEPER.address) == 2 and d.slots == {}
            assert [(t.nonce, t.kind, t.status) for t in store.txs()] == [(0, "cancel", MINED), (1, "liquidation", MINED)]

    run(main())


def test_insufficient_funds_releases_the_nonce(node, tmp_path):
    poor = Account.create()

    async def main():
        async with Rpc(node.url) as rpc:
            d, store, metrics = make(rpc, tmp_path, account=poor)
            await d.start(0)
            bf = await base_fee(rpc)
            slot = await d.send(kind="liquidation", to=TARGET, data="0x", gas_limit=50_000, fees=initial_fees(bf, d.gas),
                                head=5, expected_profit_wei=10**18, account_key="0xa:0")
            assert slot is None and d.next_nonce == 0 and d.slots == {}
            assert store.txs()[0].status == DROPPED
            assert value(metrics.send_errors, "insufficient_funds") == 1

    run(main())


def test_crash_before_broadcast_restart_sends_the_persisted_bytes_once(node, tmp_path):
    """kill -9 after the slot is committed but before eth_sendRawTransaction:
    the restarted dispatcher broadcasts the exact persisted transaction;
    after it is mined a second restart sends nothing."""

    async def main():
        async with Rpc(node.url) as rpc:
            d, store, _ = make(rpc, tmp_path)
            await d.start(0)
            bf = await base_fee(rpc)

            async def crash(raw):
                raise KeyboardInterrupt  # the process dies inside the send

            rpc.send_raw, real_send = crash, rpc.send_raw
            with pytest.raises(KeyboardInterrupt):
                await d.send(kind="liquidation", to=TARGET, data="0x", gas_limit=50_000, fees=initial_fees(bf, d.gas),
                             head=5, expected_profit_wei=10**18, account_key="0xa:0")
            rpc.send_raw = real_send
            persisted = store.txs(PENDING)
            assert len(persisted) == 1 and await rpc.nonce(KEEPER.address, "pending") == 0
            store.close()

            d2, store2, metrics2 = make(rpc, tmp_path)
            await d2.start(6)
            assert await rpc.transaction(persisted[0].hash) is not None
            assert d2.next_nonce == 1
            node.mine(1)

            d3, store3, metrics3 = make(rpc, tmp_path)
            await d3.start(8)
            assert value(metrics3.rpc_requests, "eth_sendRawTransaction") == 0
            assert [(t.nonce, t.status, t.hash) for t in store3.txs()] == [(0, MINED, persisted[0].hash)]
            assert d3.next_nonce == 1 and await rpc.nonce(KEEPER.address) == 1

    run(main())
