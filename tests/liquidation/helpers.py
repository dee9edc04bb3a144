"""Set-up and chain-reading helpers of the liquidation tests.

`deploy_env` lists WETH (18 decimals, $2,000), WBTC (8, $60,000) and USDC
(6, $1) on a fresh Protocol, with zero interest rates by default so that
indexes stay at 1.0 and expected amounts can be written out by hand; a
lender provides liquidity in every asset. `load_state` reads the INPUTS of
the model (raw storage words, positions, feed answers, token balances, the
block time) into a tests.liquidation.model.State; expected values are then
computed by the model, never by the contracts.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import boa

from tests.liquidation.model import M64, M128, WAD, Market, State, mdd, mdu  # noqa: F401 (re-exported)
from tests.protocol import MAX_UINT, AssetSpec, Protocol

HERE = Path(__file__).resolve().parent

PRICES = {"WETH": 2000.0, "WBTC": 60000.0, "USDC": 1.0}
DECIMALS = {"WETH": 18, "WBTC": 8, "USDC": 6}

ZERO_RATES = dict(base_rate=0, slope_low=0, slope_high=0)


def now() -> int:
    return boa.env.evm.patch.timestamp


def block_number() -> int:
    return boa.env.evm.patch.block_number


def spec(symbol: str, rates: bool = False, **overrides) -> AssetSpec:
    kwargs = dict(decimals=DECIMALS.get(symbol, 18), price=PRICES.get(symbol, 1.0))
    if not rates:
        kwargs.update(ZERO_RATES)
    kwargs.update(overrides)
    return AssetSpec(symbol, **kwargs)


def deploy_env(
    symbols=("WETH", "WBTC", "USDC"),
    rates: bool = False,
    overrides: dict | None = None,
    liquidity: dict | None = None,
    sequencer: bool = False,
    sequencer_grace: int = 3600,
    **deploy_kwargs,
) -> SimpleNamespace:
    """A protocol with the given assets listed and a lender's liquidity.
    `overrides`: {symbol: {AssetSpec field: value}}."""
    overrides = overrides or {}
    if sequencer:
        p = Protocol.deploy_with_sequencer(grace_period=sequencer_grace, **deploy_kwargs)
    else:
        p = Protocol.deploy(**deploy_kwargs)
    env = SimpleNamespace(p=p, engine=p.engine, lens=p.lens)
    for sym in symbols:
        asset = p.list_asset(spec(sym, rates=rates, **overrides.get(sym, {})))
        setattr(env, sym.lower(), asset)
    env.lender = boa.env.generate_address("lender")
    env.liquidator = boa.env.generate_address("liquidator")
    default_liquidity = {"WETH": 1_000, "WBTC": 50, "USDC": 5_000_000}
    for sym in symbols:
        amount = (liquidity or default_liquidity).get(sym, 1_000_000)
        if amount:
            deposit(env, env.lender, sym, p[sym].units(amount))
    return env


def deposit(env, who, sym, units, sub=0):
    a = env.p[sym]
    env.p.fund(who, a, units)
    with boa.env.prank(who):
        env.engine.deposit(a.address, units, sub)


def borrow(env, who, sym, units, sub=0):
    with boa.env.prank(who):
        env.engine.borrow(env.p[sym].address, units, sub)


def open_account(env, name: str, deposits: dict, borrows: dict, sub: int = 0) -> str:
    """A fresh owner with `deposits` / `borrows` ({symbol: whole tokens});
    the next block starts right after (cool-off passed)."""
    who = boa.env.generate_address(name)
    for sym, amount in deposits.items():
        deposit(env, who, sym, env.p[sym].units(amount), sub)
    for sym, amount in borrows.items():
        borrow(env, who, sym, env.p[sym].units(amount), sub)
    next_block()
    return who


def next_block(seconds: int = 12) -> None:
    """Advance one block (12 s): feeds stay fresh (max staleness 3600 s)."""
    boa.env.time_travel(seconds=seconds)


def set_prices(env, **prices) -> None:
    for sym, price in prices.items():
        env.p[sym].set_price(price)


def liquidate(env, liquidator, owner, repay_sym, amount, seize_sym, min_seize=0, sub=0, receiver=None, fund=True):
    """Mints the liquidator enough repay tokens (when `fund`) and liquidates."""
    r = env.p[repay_sym]
    if fund:
        env.p.fund(liquidator, r, 10**40 if amount == MAX_UINT else amount)
    with boa.env.prank(liquidator):
        if receiver is None:
            return env.engine.liquidate(owner, sub, r.address, amount, env.p[seize_sym].address, min_seize)
        return env.engine.liquidate(owner, sub, r.address, amount, env.p[seize_sym].address, min_seize, receiver)


def lens_preview(env, owner, sub, repay_sym, seize_sym):
    """lens.preview_liquidation(owner, sub, repay, seize) -> (max repay,
    seized to the liquidator, bonus)."""
    lens = env.lens
    assert hasattr(lens, "preview_liquidation"), (
        "MarginLens.preview_liquidation is missing from contracts/MarginLens.vy (it is in the committed lens)"
    )
    return lens.preview_liquidation(owner, sub, env.p[repay_sym].address, env.p[seize_sym].address)


def checked_liquidation(
    env, owner, repay_sym, amount, seize_sym, sub=0, liquidator=None, min_seize=0, receiver=None, check_preview=True,
    fund=True,
):
    """Liquidates and checks the outcome against the model, exactly:
    the return values, the Liquidation event, the preview made in the same
    block before, the liquidator's and receiver's token balances, the
    insurance funds of both assets (lens.market), every storage word the
    liquidation writes and the account's health after (engine.health and
    lens.healths). Returns (model result, state before, state after)."""
    liquidator = liquidator or env.liquidator
    receiver = receiver or liquidator
    r, s = env.p[repay_sym], env.p[seize_sym]
    if fund:
        env.p.fund(liquidator, r, 10**40 if amount == MAX_UINT else amount)
    before = load_state(env, [(owner, sub)])
    after = before.copy()
    expected = after.liquidate(str(owner), sub, r.id, s.id, amount, min_seize)

    if amount == MAX_UINT and check_preview:
        preview = lens_preview(env, owner, sub, repay_sym, seize_sym)
        assert tuple(preview) == (expected.repaid, expected.to_liquidator, expected.bonus)
    fund_r, fund_s = env.lens.market(r.address).insurance_fund, env.lens.market(s.address).insurance_fund
    bal_r, bal_s = r.token.balanceOf(liquidator), s.token.balanceOf(receiver)

    with boa.env.prank(liquidator):
        if receiver == liquidator:
            out = env.engine.liquidate(owner, sub, r.address, amount, s.address, min_seize)
        else:
            out = env.engine.liquidate(owner, sub, r.address, amount, s.address, min_seize, receiver)
    assert tuple(out) == (expected.repaid, expected.to_liquidator)
    ev = one_event(env.engine, "Liquidation")
    assert (str(ev.owner), str(ev.liquidator), ev.sub_id) == (str(owner), str(liquidator), sub)
    assert (str(ev.repay_asset), str(ev.seize_asset)) == (str(r.address), str(s.address))
    assert (ev.repaid, ev.repaid_shares, ev.seized, ev.seized_shares) == (
        expected.repaid, expected.repaid_shares, expected.seized, expected.seized_shares
    )
    assert (ev.to_insurance, ev.bonus) == (expected.to_insurance, expected.bonus)
    assert (ev.borrow_index, ev.deposit_index) == (expected.borrow_index, expected.deposit_index)
    expected.event = ev  # get_logs() only sees the last call: keep the event

    if r.id != s.id:
        assert r.token.balanceOf(liquidator) == bal_r - expected.repaid
        assert s.token.balanceOf(receiver) == bal_s + expected.to_liquidator
        m_r, m_s = after.markets[r.id], after.markets[s.id]
        assert env.lens.market(r.address).insurance_fund - fund_r == m_r.insurance_fund_now(after.now) - (
            before.markets[r.id].insurance_fund_now(before.now)
        )
        assert env.lens.market(s.address).insurance_fund - fund_s == m_s.insurance_fund_now(after.now) - (
            before.markets[s.id].insurance_fund_now(before.now)
        )
    assert_matches_chain(env, after, [(owner, sub)])
    h = after.health(str(owner), sub)
    assert tuple(env.engine.health(owner, sub)) == (h.initial, h.maintenance, True)
    view = env.lens.healths([(owner, sub)])[0]
    assert (view.liquidation_end, view.ratio) == (h.liquidation_end, h.ratio)
    return expected, before, after


def events(contract, name: str) -> list:
    return [e for e in contract.get_logs() if type(e).__name__ == name]


def one_event(contract, name: str):
    found = events(contract, name)
    assert len(found) == 1, f"expected one {name}, got {found}"
    return found[0]


# ---------------------------------------------------------------------------
# Reading the model's inputs
# ---------------------------------------------------------------------------


def load_state(env, accounts=()) -> State:
    """Raw words of every listed asset, the listed accounts' positions and
    headers, feed answers, token balances of the engine and the settings."""
    engine = env.engine
    markets = {}
    for sym, a in env.p.assets.items():
        st = engine.asset_state(a.id)
        _, answer, _, _, _ = a.feed.latestRoundData()
        markets[a.id] = Market(
            id=a.id,
            address=str(a.address),
            risk=st.risk,
            ramp_word=st.ramp,
            market_a=st.market_a,
            market_b=st.market_b,
            totals=st.totals,
            rate_model=st.rate_model,
            liquidation_word=st.liquidation,
            answer=answer,
            balance=a.token.balanceOf(engine.address),
        )
    dust, grace, paused = engine.liquidation_settings()
    state = State(now=now(), block=block_number(), markets=markets, dust=dust, grace=grace, paused_until=paused)
    for acct in accounts:
        owner, sub = acct if isinstance(acct, tuple) else (acct, 0)
        dep_bits, debt_bits, last_block = engine.account_header(owner, sub)
        state.headers[(str(owner), sub)] = dep_bits | debt_bits << 64 | last_block << 128
        for a in env.p.assets.values():
            d, b = engine.position(owner, sub, a.address)
            if d or b:
                state.pos(str(owner), sub, a.id)[:] = [d, b]
    return state


def chain_positions(env, owner, sub=0) -> dict[int, tuple[int, int]]:
    out = {}
    for a in env.p.assets.values():
        d, b = env.engine.position(owner, sub, a.address)
        if d or b:
            out[a.id] = (d, b)
    return out


def model_positions(state: State, owner, sub=0) -> dict[int, tuple[int, int]]:
    return {id: tuple(v) for id, v in state.positions.get((str(owner), sub), {}).items() if v[0] or v[1]}


def assert_matches_chain(env, state: State, accounts=()) -> None:
    """The model's storage equals the chain's: market words, balances,
    positions and headers (proves every share/index/rounding step)."""
    for a in env.p.assets.values():
        st = env.engine.asset_state(a.id)
        m = state.markets[a.id]
        assert (st.market_a, st.market_b, st.totals) == (m.market_a, m.market_b, m.totals), a.spec.symbol
        assert a.token.balanceOf(env.engine.address) == m.balance, a.spec.symbol
    for acct in accounts:
        owner, sub = acct if isinstance(acct, tuple) else (acct, 0)
        assert chain_positions(env, owner, sub) == model_positions(state, owner, sub)
        dep_bits, debt_bits, last_block = env.engine.account_header(owner, sub)
        h = state.header(str(owner), sub)
        assert (dep_bits, debt_bits, last_block) == (h & M64, (h >> 64) & M64, (h >> 128) & M64)


def assert_identity(env) -> None:
    """token balance >= total deposits - total borrows for every asset, from
    the raw totals and indexes (stored and accrued to now)."""
    state = load_state(env)
    for id, (stored, accrued) in state.identity_gaps().items():
        assert stored >= 0, f"asset {id}: balance below deposits - borrows at stored indexes ({stored})"
        assert accrued >= 0, f"asset {id}: balance below deposits - borrows at current indexes ({accrued})"


__all__ = [
    "HERE", "PRICES", "DECIMALS", "MAX_UINT", "WAD", "M128", "mdd", "mdu",
    "now", "block_number", "spec", "deploy_env", "deposit", "borrow", "open_account", "next_block", "set_prices",
    "liquidate", "lens_preview", "checked_liquidation", "events", "one_event",
    "load_state", "chain_positions", "model_positions", "assert_matches_chain", "assert_identity",
]
