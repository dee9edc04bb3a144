"""The keeper's replica (keeper/replica.py).

* The fast maintenance-health path (per-block factors, cached per-asset
  contributions) equals ``risk_model.account_health`` -- itself bit-exact
  with the contracts (tests/differential) -- over random markets, ramps,
  prices (rejected ones included), positions and block times, also across
  successive blocks where the caches are reused.
* Event deltas and their undo (used on reorgs) restore the exact state.
* Against a real engine on anvil: after random deposits, borrows,
  withdrawals, repayments, transfers, price moves, time warps and
  liquidations, the replica built from events equals ``engine.health`` and
  ``lens.healths`` at the same block, for every account.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from keeper import risk_model as rm
from keeper.replica import Replica
from tests.differential.strategies import NOW, indexes, rate_words, ramp_words, risk_params
from tests.keeper.fixtures import KEEPER, chain, fresh_chain, settings_for  # noqa: F401

WAD = rm.WAD


@st.composite
def markets(draw, n: int):
    out = []
    for i in range(n):
        p = draw(risk_params(valid=True))
        token_dec = draw(st.integers(0, 18))
        feed_dec = draw(st.integers(0, 18))
        risk = rm.pack_risk(p, token_dec, feed_dec, draw(st.integers(0, 3)))
        di, bi = draw(indexes()), draw(indexes())
        last = draw(st.integers(NOW - 400 * 86400, NOW))
        market_a = di | (0xFEED0000 + i) << 96
        market_b = bi | last << 96 | draw(st.integers(0, WAD)) << 136
        totals = draw(st.integers(1, 10**30)) | draw(st.integers(0, 10**30)) << 128
        out.append(rm.AssetState(f"0x{0xA55E7000 + i:040x}", i | 1 << 8, market_a, market_b, totals, draw(rate_words()), risk,
                                 draw(ramp_words(NOW)), 0))
    return out


@st.composite
def rounds(draw, now: int):
    answer = draw(st.one_of(st.integers(-10, 2**64), st.integers(1, 10**12), st.just(0)))
    updated = draw(st.one_of(st.integers(now - 10 * 86400, now), st.just(0)))
    rid = (1 << 64) | draw(st.integers(1, 1000))
    return rm.RoundData(rid, answer, updated, updated, rid if draw(st.integers(0, 9)) else rid - 1)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fast_health_equals_reference_model(data):
    n = data.draw(st.integers(1, 4))
    replica = Replica()
    for m in data.draw(markets(n)):
        replica.set_market(m)
    for i in range(n):
        replica.set_round(i, data.draw(st.one_of(st.none(), rounds(NOW))))
    for a in range(data.draw(st.integers(1, 6))):
        positions = {}
        for i in range(n):
            if data.draw(st.booleans()):
                positions[i] = (data.draw(st.integers(0, 10**27)), data.draw(st.integers(0, 10**24)))
        replica.load_account(f"0x{a + 1:040x}", a % 3, positions)
    steps = [NOW + s for s in sorted(data.draw(st.lists(st.integers(0, 30 * 86400), min_size=1, max_size=3)))]
    for now in steps:
        if data.draw(st.booleans()):  # a price update between blocks
            i = data.draw(st.integers(0, n - 1))
            replica.set_round(i, data.draw(st.one_of(st.none(), rounds(now))))
        try:
            expected = {}
            for key, acc in replica.accounts.items():
                quotes = {i: rm.asset_price(m.risk, replica.rounds.get(i), now) for i, m in replica.markets.items()}
                expected[key] = rm.account_health(acc.rm_positions(), replica.markets, quotes, now, header=acc.header, kinds=2)
        except (rm.VyperRevert, ValueError):
            return  # a state the engine would revert on (overflow): out of the replica's domain
        replica.recompute(now)
        for key, h in expected.items():
            e = replica.health[key]
            assert (e.collateral, e.debt, e.prices_valid) == (h.collateral[1], h.debt[1], h.prices_valid)
            assert (key in replica.liquidatable) == h.liquidatable


def test_a_market_whose_accrual_reverts_blocks_only_its_holders():
    """A market the engine cannot accrue (here a zero kink and a zero borrow
    index, which the configurator and engine never write but a random
    market word holds) makes the engine's
    health revert for its holders only: the replica marks them invalid and
    not liquidatable, and keeps computing every other account."""
    replica = Replica()
    broken_rate = rm.pack_rate_model(0, 10**9, 0, 0)  # kink 0: at zero utilisation borrow_rate divides by zero
    for i, rate in enumerate((rm.pack_rate_model(0, 0, 0, WAD // 2), broken_rate)):
        risk = rm.pack_risk(rm.RiskParams(8 * WAD // 10, 9 * WAD // 10, WAD, WAD, 86400, 0, 10**6, 10**14), 18, 8, 0)
        totals = 10**21 | 10**20 << 128
        borrow_index = WAD if i == 0 else 0  # index 0: zero total borrow, zero utilisation
        replica.set_market(rm.AssetState(f"0x{0xB0 + i:040x}", i | 1 << 8, WAD, borrow_index | (NOW - 3600) << 96, totals, rate,
                                         risk, 0, 0))
        replica.set_round(i, rm.RoundData(1 << 64 | 1, 100 * 10**8, NOW, NOW, 1 << 64 | 1))
    with pytest.raises(rm.VyperRevert):
        replica.markets[1].indexes_now(NOW)
    healthy_debtor, broken_debtor = "0x" + "01" * 20, "0x" + "02" * 20
    replica.load_account(healthy_debtor, 0, {0: (10**18, 2 * 10**18)})  # deeply underwater, only market 0
    replica.load_account(broken_debtor, 0, {0: (10**18, 0), 1: (0, 2 * 10**18)})
    found = replica.recompute(NOW)
    assert found == {(healthy_debtor, 0)}
    assert replica.health[(healthy_debtor, 0)].prices_valid
    assert not replica.health[(broken_debtor, 0)].prices_valid
    assert (broken_debtor, 0) not in replica.liquidatable


def test_events_and_undo_restore_exact_state():
    replica = Replica()
    for i in range(2):
        replica.set_market(rm.AssetState(f"0x{0xA0 + i:040x}", i | 1 << 8, WAD, WAD, 0, 0, 0, 0, 0))
    owner = "0x" + "11" * 20
    t0, t1 = replica.asset_ids, None
    w, u = "0x" + f"{0xA0:040x}", "0x" + f"{0xA1:040x}"
    replica.apply_event("Deposit", {"owner": owner, "asset": w, "sub_id": 0, "shares": 100}, 10)
    replica.apply_event("Borrow", {"owner": owner, "asset": u, "sub_id": 0, "shares": 40}, 11)
    before = {k: ({i: list(p) for i, p in a.positions.items()}, a.last_risk_block) for k, a in replica.accounts.items()}
    undo: list = []
    replica.apply_event("TransferCollateral", {"owner": owner, "asset": w, "from_sub_id": 0, "to_sub_id": 3, "shares": 30}, 12, undo)
    replica.apply_event("Liquidation", {"owner": owner, "sub_id": 0, "repay_asset": u, "seize_asset": w, "repaid_shares": 40, "seized_shares": 70}, 12, undo)
    acc = replica.accounts[(owner, 0)]
    assert acc.positions == {} and acc.header.to_word() == 12 << 128  # all repaid and seized; risk block from the transfer
    assert replica.accounts[(owner, 3)].positions == {0: [30, 0]}
    assert (owner, 0) not in replica.holders[0] and (owner, 3) in replica.holders[0]
    replica.undo(undo)
    after = {k: ({i: list(p) for i, p in a.positions.items()}, a.last_risk_block) for k, a in replica.accounts.items()
             if a.positions or k in before}
    assert after == before
    assert replica.accounts[(owner, 0)].header == rm.AccountHeader(1, 2, 11)
    assert t1 is None and t0 is replica.asset_ids


# ---------------------------------------------------------------------------
# Against the engine on anvil
# ---------------------------------------------------------------------------

ASSETS = ("WETH", "WBTC", "USDC")
PRICES = {"WETH": 2000.0, "WBTC": 60000.0, "USDC": 1.0}


def _try(dep, fn, sender) -> bool:
    try:
        tx = fn.transact({"from": sender})
    except Exception:
        return False  # reverted in estimation (e.g. below initial margin): skipped
    return dep.anvil.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1


def random_round(dep, rng: random.Random, users: list[str]) -> None:
    """Random actions by `users` on sub-accounts 0-1, then a price move and a time warp."""
    eng = dep.engine.functions
    for user in users:
        sub = rng.randrange(2)
        for _ in range(rng.randrange(1, 4)):
            sym = rng.choice(ASSETS)
            token = dep.tokens[sym].address
            amount = dep.units(sym, rng.choice([0.5, 1, 3]) * {"WETH": 1, "WBTC": 0.05, "USDC": 2000}[sym])
            kind = rng.choice(["deposit", "deposit", "borrow", "withdraw", "repay", "transfer"])
            if kind == "deposit":
                dep.fund(user, sym, amount)
                _try(dep, eng.deposit(token, amount, sub), user)
            elif kind == "borrow":
                _try(dep, eng.borrow(token, amount // 2, sub), user)
            elif kind == "withdraw":
                _try(dep, eng.withdraw(token, amount // 3, sub), user)
            elif kind == "repay":
                dep.fund(user, sym, amount)
                _try(dep, eng.repay(token, amount // 4, sub), user)
            else:
                _try(dep, eng.transfer_collateral(token, amount // 5, sub, 1 - sub), user)
    # one user borrows as much USDC as allowed, then collateral prices may fall
    user = rng.choice(users)
    sub = rng.randrange(2)
    most = dep.lens.functions.max_borrow(user, sub, dep.tokens["USDC"].address).call()
    if most > 10**6:
        _try(dep, eng.borrow(dep.tokens["USDC"].address, most - 1, sub), user)
    for sym in ASSETS:
        PRICES[sym] *= rng.choice([0.75, 0.9, 1.0, 1.05]) if sym != "USDC" else rng.choice([0.98, 1.0, 1.02])
        dep.set_price(sym, PRICES[sym])
    dep.anvil.call("evm_increaseTime", rng.randrange(60, 7 * 86400))
    dep.anvil.mine(1)
    for sym in ASSETS:  # fresh rounds after the warp
        dep.set_price(sym, PRICES[sym])


def compare_with_chain(keeper, dep) -> int:
    """Asserts replica == engine.health and lens.healths at the processed block; returns accounts compared."""
    block = keeper.state.processed
    keys = [k for k, a in keeper.replica.accounts.items()]
    refs = [(keeper.replica.accounts[k].owner, k[1]) for k in keys]
    views = dep.lens.functions.healths(refs).call(block_identifier=block)
    for key, ref, view in zip(keys, refs, views):
        onchain = dep.engine.functions.health(*ref).call(block_identifier=block)
        entry = keeper.replica.health[key]
        assert entry.health == onchain[1] == view[1], (ref, entry, onchain)
        assert entry.prices_valid == onchain[2]
        header = dep.engine.functions.account_header(*ref).call(block_identifier=block)
        acc = keeper.replica.accounts[key]
        assert (acc.deposit_bitmap, acc.debt_bitmap) == (header[0], header[1])
    return len(keys)


def test_replica_matches_engine_over_random_states(fresh_chain, tmp_path):
    dep = fresh_chain
    rng = random.Random(20261121)
    users = list(dep.anvil.accounts[1:6])
    liquidator = dep.anvil.accounts[7]
    dep.fund(liquidator, "USDC", dep.units("USDC", 10_000_000))
    dep.fund(liquidator, "WETH", dep.units("WETH", 10_000))
    dep.fund(liquidator, "WBTC", dep.units("WBTC", 1_000))

    async def main():
        from keeper.bot import Keeper

        keeper = Keeper(settings_for(dep, tmp_path, strategy={"dry_run": True}), account=KEEPER)
        try:
            random_round(dep, rng, users)
            await keeper.startup()  # full sync from events
            compared = compare_with_chain(keeper, dep)
            liquidated = 0
            for _ in range(4):
                random_round(dep, rng, users)
                # liquidate whoever is liquidatable (Liquidation events), from another account
                await keeper.process_to(dep.anvil.head())
                for key in list(keeper.replica.liquidatable):
                    acc = keeper.replica.accounts[key]
                    debts = [i for i, (_, b) in acc.positions.items() if b]
                    deps_ = [i for i, (d, _) in acc.positions.items() if d]
                    done = False
                    for i_r in debts:
                        for i_s in deps_:
                            r = keeper.replica.markets[i_r].asset
                            s = keeper.replica.markets[i_s].asset
                            if not done:
                                done = _try(dep, dep.engine.functions.liquidate(acc.owner, key[1], r, 2**256 - 1, s, 0), liquidator)
                    liquidated += done
                await keeper.process_to(dep.anvil.head())
                compared += compare_with_chain(keeper, dep)
            assert compared >= 30 and liquidated >= 1
            assert await keeper.verify_onchain() == 0  # the periodic resync finds nothing to fix
            # A corrupted replica (a missed event) is found and re-read from the engine's views.
            key = next(k for k, a in keeper.replica.accounts.items() if any(d for d, _ in a.positions.values()))
            acc = keeper.replica.accounts[key]
            asset_id = next(i for i, (d, _) in acc.positions.items() if d)
            acc.positions[asset_id][0] += 10**15
            acc.cache.clear()
            assert await keeper.verify_onchain() == 1
            compare_with_chain(keeper, dep)
        finally:
            await keeper.close()

    asyncio.run(main())
