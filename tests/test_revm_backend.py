"""The revm backend of titanoboa (tests/revm_backend.py) behaves as py-evm.

The invariant machines run on it, so everything they observe must be what
titanoboa's own py-evm gives: return values, storage, events, revert
reasons, block time, snapshots. One fixed scenario runs on both EVMs and
every observation is compared; then the boa features the machines use are
checked on revm alone.
"""

import boa
import pytest
from boa.contracts.base_evm_contract import BoaError

from tests.protocol import AssetSpec, Protocol
from tests.revm_backend import revm_env

MAX_UINT = 2**256 - 1
DAY = 86_400


def _scenario(start: int) -> list:
    """Deposits, a borrow, a day of interest, a price move, a repay, a
    liquidation attempt and reverts, on the current env; returns every
    observation (results, asset words, positions, healths, events, revert
    reasons) in order."""
    seen: list = []
    p = Protocol.deploy()
    usdc = p.list_asset(AssetSpec("USDC", 6, price=1.0))
    weth = p.list_asset(AssetSpec("WETH", 18, price=2000.0))
    lender, borrower, keeper = (boa.env.generate_address(n) for n in ("lender", "borrower", "keeper"))
    e = p.engine
    def look(label, value):
        seen.append((label, value))

    def words():
        for a in (usdc, weth):
            look(f"asset_state {a.spec.symbol}", tuple(e.asset_state(a.id)))
        for who in (lender, borrower):
            look("header", tuple(e.account_header(who, 0)))
            look("health", tuple(e.health(who, 0)))
            for a in (usdc, weth):
                look("position", tuple(e.position(who, 0, a.address)))

    p.fund(lender, usdc, usdc.units(50_000))
    p.fund(borrower, weth, weth.units(2))
    with boa.env.prank(lender):
        look("deposit", e.deposit(usdc.address, usdc.units(50_000), 0))
    look("events", [type(x).__name__ for x in e.get_logs()])
    with boa.env.prank(borrower):
        look("deposit", e.deposit(weth.address, weth.units(2), 0))
        look("borrow", e.borrow(usdc.address, usdc.units(2_600)))
        usdc.token.approve(e.address, MAX_UINT)
    look("borrow events", [x._asdict() for x in e.get_logs() if type(x).__name__ == "Borrow"])
    words()
    boa.env.time_travel(seconds=DAY)
    p.refresh_prices()
    words()
    weth.set_price(1_600.0)  # 3,200 * 0.85 < 2,600 * 1.1: below maintenance
    words()
    with boa.env.prank(borrower):
        look("repay", e.repay(usdc.address, usdc.units(100)))
        with pytest.raises(BoaError) as refused:
            e.borrow(usdc.address, usdc.units(10_000))
    look("borrow refused", refused.value.stack_trace.last_frame.pretty_vm_reason)
    boa.env.time_travel(seconds=12)
    p.fund(keeper, usdc, usdc.units(5_000))
    with boa.env.prank(keeper):
        result = e.liquidate(borrower, 0, usdc.address, usdc.units(500), weth.address, 0)
    look("liquidate", result)
    look("liquidation events", sorted(type(x).__name__ for x in e.get_logs()))
    words()
    look("block", (boa.env.timestamp - start, boa.env.evm.patch.block_number))
    return seen


def _run(env: boa.Env) -> list:
    # The same deployer and address generator on both EVMs, so that every
    # contract and actor gets the same address (they are packed in storage words).
    env.set_random_seed("revm-vs-pyevm")
    env.eoa = env.generate_address("eoa")
    with boa.swap_env(env):
        boa.env.timestamp = 1_750_000_000  # the same clock on both (packed in the asset words too)
        boa.env.evm.patch.block_number = 100
        return _scenario(boa.env.timestamp)


def test_revm_observes_what_pyevm_observes():
    """Every result, storage word, health, event and revert of the scenario is
    the same on revm as on titanoboa's py-evm."""
    on_pyevm = _run(boa.Env())
    on_revm = _run(revm_env())
    assert len(on_revm) == len(on_pyevm)
    for (label, a), (label_b, b) in zip(on_pyevm, on_revm):
        assert label == label_b
        assert a == b, label
    observed = dict(on_pyevm)
    assert observed["borrow refused"].startswith("health:"), observed["borrow refused"]
    assert observed["liquidate"][0] > 0 and "Liquidation" in observed["liquidation events"]  # it really liquidates


def test_reverts_carry_the_contract_reason_on_revm():
    """boa.reverts(reason) matches the contract's revert string on revm, and
    a wrong reason does not match."""
    with boa.swap_env(revm_env()):
        p = Protocol.deploy()
        usdc = p.list_asset(AssetSpec("USDC", 6))
        with boa.reverts("deposit: zero amount"):
            p.engine.deposit(usdc.address, 0, 0)
        with pytest.raises(ValueError, match="does not match"):
            with boa.reverts("some other reason"):
                p.engine.deposit(usdc.address, 0, 0)


def test_anchor_rolls_back_state_and_block_clock_on_revm():
    """boa.env.anchor() (hypothesis's per-example isolation) restores storage,
    balances and the block clock."""
    with boa.swap_env(revm_env()):
        p = Protocol.deploy()
        usdc = p.list_asset(AssetSpec("USDC", 6))
        who = boa.env.generate_address("who")
        t0, n0 = boa.env.timestamp, boa.env.evm.patch.block_number
        with boa.env.anchor():
            p.fund(who, usdc, 10**6)
            boa.env.time_travel(seconds=3_600)
            assert usdc.token.balanceOf(who) == 10**6
            assert boa.env.timestamp == t0 + 3_600
        assert usdc.token.balanceOf(who) == 0
        assert (boa.env.timestamp, boa.env.evm.patch.block_number) == (t0, n0)


def test_contracts_read_the_patched_block_clock_on_revm():
    """A feed round published after time_travel carries the new block time
    (block.timestamp as the contract sees it)."""
    with boa.swap_env(revm_env()):
        p = Protocol.deploy()
        usdc = p.list_asset(AssetSpec("USDC", 6))
        boa.env.time_travel(seconds=7 * DAY)
        usdc.set_price(1.0)
        assert usdc.feed.latestRoundData()[3] == boa.env.timestamp
