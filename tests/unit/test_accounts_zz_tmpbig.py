"""Random sequences of account actions (hypothesis): after every step the
accounting identity holds (tests/unit/accounting.py), wallets move by exactly
the amounts the engine reports, accounts left with debt by a risk-increasing
action have initial health >= 0, and indexes never fall.

Actors: lender, alice and bob, each with sub-accounts 0 and 1, on USDC
(6 decimals) and WETH (18 decimals). Amounts are drawn as percentages of
what the actor holds or may do, so most steps succeed; steps that revert
are expected (boa rolls them back) and only must not break the invariants.
"""

import boa
import pytest
from boa.contracts.base_evm_contract import BoaError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocol import AssetSpec, Protocol
from tests.unit.accounting import MAX_UINT, check_accounting, stored_indexes

ACTORS = ("lender", "alice", "bob")
SUBS = (0, 1)
KINDS = ("deposit", "withdraw", "borrow", "repay", "transfer", "time", "price")

step_strategy = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, len(ACTORS) - 1),  # actor (for repay: the payer)
    st.integers(0, len(ACTORS) - 1),  # repay: the account owner
    st.sampled_from(SUBS),
    st.sampled_from(("USDC", "WETH")),
    st.integers(1, 100),  # percent
    st.booleans(),  # use max uint256 where it means "all"
)


@pytest.fixture
def world():
    protocol = Protocol.deploy()
    usdc = protocol.list_asset(AssetSpec("USDC", decimals=6, price=1.0))
    weth = protocol.list_asset(AssetSpec("WETH", decimals=18, price=2000.0))
    actors = {name: boa.env.generate_address(name) for name in ACTORS}
    protocol.fund(actors["lender"], usdc, usdc.units(1_000_000))
    protocol.fund(actors["lender"], weth, weth.units(100))
    for name in ("alice", "bob"):
        protocol.fund(actors[name], usdc, usdc.units(20_000))
        protocol.fund(actors[name], weth, weth.units(50))
    # Opening positions, so that random steps find deposits and debts to act on.
    engine, lender, alice, bob = protocol.engine, actors["lender"], actors["alice"], actors["bob"]
    with boa.env.prank(lender):
        engine.deposit(usdc.address, usdc.units(500_000))
        engine.deposit(weth.address, weth.units(50))
    with boa.env.prank(alice):
        engine.deposit(weth.address, weth.units(10), 0)
        engine.borrow(usdc.address, usdc.units(5_000), 0)
        engine.deposit(usdc.address, usdc.units(10_000), 1)
        engine.borrow(weth.address, weth.units(1), 1)
    with boa.env.prank(bob):
        engine.deposit(weth.address, weth.units(5), 0)
        engine.borrow(usdc.address, usdc.units(3_000), 0)
    return protocol, actors


def wallet(asset, who):
    return asset.token.balanceOf(who)


def deposit_value(protocol, asset, who, sub):
    for b in protocol.lens.balances(who, sub):
        if b.asset == asset.address:
            return b.deposit
    return 0


def debt_value(protocol, asset, who, sub):
    for b in protocol.lens.balances(who, sub):
        if b.asset == asset.address:
            return b.borrow
    return 0


def run_step(protocol, actors, step):
    """Runs one step; returns the (owner, sub) whose risk went up, if any."""
    kind, a, b, sub, symbol, pct, use_max = step
    engine = protocol.engine
    asset = protocol[symbol]
    who = actors[ACTORS[a]]
    if kind == "time":
        boa.env.time_travel(seconds=pct * 3_600)
        protocol.refresh_prices()
        return None
    if kind == "price":
        protocol["WETH"].set_price(1_000 + 20 * pct)
        return None
    if kind == "deposit":
        amount = max(1, wallet(asset, who) * pct // 100)
        before = wallet(asset, who)
        with boa.env.prank(who):
            engine.deposit(asset.address, amount, sub)
        assert wallet(asset, who) == before - amount
        return None
    if kind == "withdraw":
        amount = MAX_UINT if use_max else max(1, deposit_value(protocol, asset, who, sub) * pct // 100)
        before = wallet(asset, who)
        with boa.env.prank(who):
            sent = engine.withdraw(asset.address, amount, sub)
        assert wallet(asset, who) == before + sent
        if amount != MAX_UINT:
            assert sent == amount
        return (who, sub)
    if kind == "borrow":
        # Headroom from the initial health (lw_init 1.2); cheaper than lens.max_borrow.
        initial = engine.health(who, sub)[0]
        unit_price = protocol.lens.market(asset.address).price  # USD WAD per unit * 1e18
        amount = max(1, max(initial, 0) * 10**18 * 10 // (unit_price * 12) * pct // 100)
        before = wallet(asset, who)
        with boa.env.prank(who):
            engine.borrow(asset.address, amount, sub)
        assert wallet(asset, who) == before + amount
        return (who, sub)
    if kind == "repay":
        owner = actors[ACTORS[b]]
        owed = debt_value(protocol, asset, owner, sub)
        amount = MAX_UINT if use_max else max(1, owed * pct // 100)
        before = wallet(asset, who)
        with boa.env.prank(who):
            paid = engine.repay(asset.address, amount, sub, owner)
        assert wallet(asset, who) == before - paid
        assert paid <= owed  # never more than the debt accrued to now
        if amount == MAX_UINT:
            assert engine.position(owner, sub, asset.address)[1] == 0
        return None
    if kind == "transfer":
        amount = MAX_UINT if use_max else max(1, deposit_value(protocol, asset, who, sub) * pct // 100)
        with boa.env.prank(who):
            engine.transfer_collateral(asset.address, amount, sub, 1 - sub)
        return (who, sub)
    raise ValueError(kind)


# Each example runs up to 12 engine actions with a full accounting check after
# each, so it takes a quarter of the profile's examples (ci 25, nightly 1250).
@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(steps=st.lists(step_strategy, min_size=1, max_size=12))
def test_random_action_sequences_keep_the_books_balanced(world, steps):
    protocol, actors = world
    accounts = [(who, sub) for who in actors.values() for sub in SUBS]
    with boa.env.anchor():  # every example starts from the same funded world
        indexes = {s: stored_indexes(protocol.engine, a.id) for s, a in protocol.assets.items()}
        for step in steps:
            try:
                risky = run_step(protocol, actors, step)
            except BoaError:
                risky = None  # a refused action changes nothing
            if risky is not None:
                owner, sub = risky
                if protocol.engine.account_header(owner, sub)[1] != 0:
                    assert protocol.engine.health(owner, sub)[0] >= 0
            check_accounting(protocol, accounts)
            for symbol, asset in protocol.assets.items():
                now = stored_indexes(protocol.engine, asset.id)
                assert now[0] >= indexes[symbol][0] and now[1] >= indexes[symbol][1]
                indexes[symbol] = now


import collections as _c
_stats = _c.Counter()
_orig = run_step
def run_step(p, a, step):  # noqa: F811
    try:
        r = _orig(p, a, step); _stats[(step[0], "ok")] += 1; return r
    except BoaError:
        _stats[(step[0], "revert")] += 1; raise
def test_zz_print():
    print(sorted(_stats.items()))
