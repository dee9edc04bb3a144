"""Liquidation cascade on Black Thursday (2020-03-12/13), real hourly prices.

50 seeded-random accounts (WETH 18 decimals, WBTC 8, USDC 6; mostly USDC
debt, some cross borrows: WBTC against WETH, WETH against USDC + WBTC),
leverage from conservative to near the initial-margin limit. ETH and BTC
feeds follow the Coinbase hourly closes from 2020-03-12 00:00 UTC for 48
hours (../shared/data/prices, see its README: ETH 194 -> 99, -49% in 25 h).
After every hourly step a keeper loop liquidates every liquidatable account
(maintenance health < 0), always the pair with the largest preview, until
none is left, and settles bad debt once an account's collateral is below
the dust threshold. Interest accrues at the default rates.

At the end every account is healthy or settled, the token-balance
identity holds for every asset, and the account shares sum to the totals.
"""

import csv
import random
from pathlib import Path

import boa
import pytest

from tests.liquidation.helpers import MAX_UINT, WAD, M128, assert_identity, deploy_env, lens_preview, load_state
from tests.protocol import ROOT

DATA = (ROOT / ".." / "shared" / "data" / "prices").resolve()
START = 1583971200  # 2020-03-12 00:00 UTC
HOURS = 48
SEED = 20200312
# Keepers stalled (on the day gas prices spiked and Maker's keepers failed):
# no liquidation in these hours, so some accounts fall into bad debt.
KEEPER_OFFLINE = range(20, 25)
N_ACCOUNTS = 50
DUST = 10 * WAD


def hourly(path: Path) -> dict[int, tuple[float, float]]:
    """{unix hour: (open, close)}; rows are newest first and five hours are
    duplicated (same timestamp, same prices): sorted and de-duplicated."""
    rows = {}
    with open(path, newline="") as f:
        next(f)  # banner
        for row in csv.DictReader(f):
            ts = int(float(row["Unix Timestamp"]))
            value = (float(row["Open"]), float(row["Close"]))
            assert rows.setdefault(ts, value) == value, f"conflicting duplicate hour {ts}"
    return dict(sorted(rows.items()))


@pytest.fixture(scope="module")
def prices():
    eth = hourly(DATA / "coinbase_ethusd_1h_2017-2020.csv")
    btc = hourly(DATA / "coinbase_btcusd_1h_2017-2020.csv")
    hours = [START + 3600 * i for i in range(HOURS)]
    return {
        "eth_open": eth[START][0],
        "btc_open": btc[START][0],
        "eth": [eth[h][1] for h in hours],
        "btc": [btc[h][1] for h in hours],
    }


def test_price_data_is_black_thursday(prices):
    eth = prices["eth"]
    assert prices["eth_open"] == 194.61 and eth[0] == 193.44
    assert min(eth[:24]) / eth[0] < 0.58  # ETH -43% within the day (to 110.30)
    assert min(eth) == 98.88 and min(eth) / prices["eth_open"] < 0.54  # -49%
    assert min(prices["btc"]) / prices["btc_open"] < 0.55


def open_accounts(env, rng: random.Random, eth0: float, btc0: float):
    """Mixed collateral and debts; each borrow uses a fraction `u` of the
    initial-margin capacity (aw_i 0.8, lw_i 1.2): 0.3 (conservative) to
    0.99 (at the limit)."""
    px = {"WETH": eth0, "WBTC": btc0, "USDC": 1.0}
    kinds = ["eth-usdc"] * 18 + ["btc-usdc"] * 10 + ["mixed-usdc"] * 10 + ["eth-btc"] * 6 + ["short-eth"] * 6
    rng.shuffle(kinds)
    accounts = []
    for i, kind in enumerate(kinds):
        owner = boa.env.generate_address(f"acct{i}")
        size = rng.uniform(2_000, 200_000)  # USD of collateral
        u = rng.choice([rng.uniform(0.3, 0.8), rng.uniform(0.8, 0.95), rng.uniform(0.95, 0.99)])
        if kind == "eth-usdc":
            deposits, borrows = {"WETH": size}, {"USDC": 1.0}
        elif kind == "btc-usdc":
            deposits, borrows = {"WBTC": size}, {"USDC": 1.0}
        elif kind == "mixed-usdc":
            w = rng.uniform(0.2, 0.8)
            deposits = {"WETH": size * w, "WBTC": size * (1 - w)}
            borrows = {"USDC": 0.7, "WBTC": 0.3} if rng.random() < 0.5 else {"USDC": 1.0}
        elif kind == "eth-btc":
            deposits, borrows = {"WETH": size}, {"WBTC": 1.0}
        else:  # a short: stablecoin and BTC collateral, ETH debt
            deposits, borrows = {"USDC": size * 0.6, "WBTC": size * 0.4}, {"WETH": 1.0}
        capacity = sum(usd * 0.8 for usd in deposits.values()) / 1.2 * u
        for sym, usd in deposits.items():
            a = env.p[sym]
            units = int(usd / px[sym] * 10**a.spec.decimals)
            a.token.mint(owner, units)
            with boa.env.prank(owner):
                a.token.approve(env.engine.address, MAX_UINT)
                env.engine.deposit(a.address, units)
        for sym, share in borrows.items():
            a = env.p[sym]
            units = int(capacity * share / px[sym] * 10**a.spec.decimals)
            with boa.env.prank(owner):
                env.engine.borrow(a.address, units)
        accounts.append(owner)
    return accounts


class Keeper:
    """Finds liquidatable accounts with an off-chain replica of the engine's
    health (tests/liquidation/model.py, re-synced from the chain's raw words
    after every action and every hour), confirms each with engine.health
    (exact equality), picks the pair with the largest lens preview and
    liquidates; settles bad debt once the collateral is below dust. Every
    hour it also checks the accounts closest to liquidation against
    engine.health, so the replica cannot silently miss one."""

    def __init__(self, env, accounts):
        self.env = env
        self.accounts = accounts
        self.me = boa.env.generate_address("keeper")
        for a in env.p.assets.values():
            with boa.env.prank(self.me):
                a.token.approve(env.engine.address, MAX_UINT)
        self.state = load_state(env, accounts)
        self.by_id = {a.id: a for a in env.p.assets.values()}
        self.liquidations = 0
        self.settlements = 0
        self.bonus_usd = 0
        self.written_off = {}
        self.checked = 0

    def sync_markets(self):
        fresh = load_state(self.env)
        self.state.markets, self.state.now, self.state.block = fresh.markets, fresh.now, fresh.block

    def sync_account(self, owner):
        engine, key = self.env.engine, (str(owner), 0)
        deposit_bits, debt_bits, last = engine.account_header(owner, 0)
        self.state.headers[key] = deposit_bits | debt_bits << 64 | last << 128
        self.state.positions[key] = {
            a.id: list(engine.position(owner, 0, a.address)) for a in self.by_id.values()
            if (deposit_bits | debt_bits) >> a.id & 1
        }

    def confirm(self, owner):
        """engine.health equals the replica's, exactly."""
        h = self.state.health(str(owner))
        assert tuple(self.env.engine.health(owner)) == (h.initial, h.maintenance, True)
        self.checked += 1
        return h

    def settle_if_dust(self, owner) -> bool:
        h = self.state.health(str(owner))
        if (self.state.header(str(owner), 0) >> 64) & (2**64 - 1) == 0 or h.collateral[3] >= DUST:
            return False
        engine = self.env.engine
        engine.settle_bad_debt(owner, 0)
        logs = engine.get_logs()
        for e in logs:
            if type(e).__name__ == "BadDebtSettled":
                sym = next(a.spec.symbol for a in self.by_id.values() if a.address == e.asset)
                self.written_off[sym] = self.written_off.get(sym, 0) + e.debt
                # Each write-off is drawn from the fund, then socialised: debt = used + loss.
                covered = sum(
                    x.amount for x in logs
                    if type(x).__name__ in ("InsuranceFundUsed", "LossSocialised") and x.asset == e.asset
                )
                assert covered == e.debt
        assert engine.account_header(owner, 0)[:2] == (0, 0)
        self.settlements += 1
        self.sync_markets()
        self.sync_account(owner)
        return True

    def liquidate_best(self, owner) -> bool:
        header = self.state.header(str(owner), 0)
        prices = {id: m.price for id, m in self.state.markets.items()}
        best = None
        for r in self.by_id.values():
            if not (header >> (64 + r.id)) & 1:
                continue
            for s in self.by_id.values():
                if not (header >> s.id) & 1:
                    continue
                repay, seized, bonus = lens_preview(self.env, owner, 0, r.spec.symbol, s.spec.symbol)
                value = seized * prices[s.id] // WAD
                if repay and (best is None or value > best[0]):
                    best = (value, r, s, repay, seized)
        if best is None:
            return False
        value, r, s, repay, seized = best
        r.token.mint(self.me, repay)
        with boa.env.prank(self.me):
            out = self.env.engine.liquidate(owner, 0, r.address, MAX_UINT, s.address, seized)
        assert tuple(out) == (repay, seized)  # exactly the same-block preview
        self.bonus_usd += value - repay * prices[r.id] // WAD
        self.liquidations += 1
        self.sync_markets()
        self.sync_account(owner)
        return True

    def run(self):
        """Liquidate until nobody is liquidatable (maintenance < 0)."""
        self.sync_markets()
        for _ in range(20):  # rounds; each liquidates every liquidatable account once
            healths = {a: self.state.health(str(a)) for a in self.accounts}
            todo = [a for a in self.accounts if healths[a].maintenance < 0]
            if not todo:
                # The closest calls: the engine agrees they are not liquidatable.
                debtors = [a for a in self.accounts if (self.state.header(str(a), 0) >> 64) & (2**64 - 1)]
                for a in sorted(debtors, key=lambda a: healths[a].maintenance)[:3]:
                    assert self.confirm(a).maintenance >= 0
                return
            for owner in todo:
                assert self.confirm(owner).maintenance < 0
                if self.settle_if_dust(owner):
                    continue
                assert self.liquidate_best(owner), f"no liquidation possible for {owner}"
                self.settle_if_dust(owner)
        raise AssertionError("keeper did not converge")


def test_black_thursday_cascade(prices):
    rng = random.Random(SEED)
    env = deploy_env(
        rates=True,
        overrides={"WETH": dict(price=prices["eth_open"]), "WBTC": dict(price=prices["btc_open"])},
        liquidity={"WETH": 20_000, "WBTC": 500, "USDC": 20_000_000},
    )
    accounts = open_accounts(env, rng, prices["eth_open"], prices["btc_open"])
    assert all(v.initial >= 0 for v in env.lens.healths([(a, 0) for a in accounts]))
    keeper = Keeper(env, accounts)
    liquidatable_at = []
    for hour in range(HOURS):
        boa.env.time_travel(seconds=3600)
        env.weth.set_price(prices["eth"][hour])
        env.wbtc.set_price(prices["btc"][hour])
        env.usdc.set_price(1.0)
        before = keeper.liquidations
        if hour in KEEPER_OFFLINE:
            liquidatable_at.append(0)
            continue
        keeper.run()
        liquidatable_at.append(keeper.liquidations - before)

    # Every account is healthy again or settled (no debt left).
    healthy = settled = 0
    for owner in accounts:
        deposit_bits, debt_bits, _ = env.engine.account_header(owner, 0)
        if debt_bits == 0:
            settled += 1
        else:
            assert env.engine.health(owner)[1] >= 0
            healthy += 1
    assert healthy + settled == N_ACCOUNTS
    # The books balance: token balance >= deposits - borrows for every asset ...
    assert_identity(env)
    # ... and the accounts' shares (plus the lender's) are the totals.
    for a in env.p.assets.values():
        word = env.engine.asset_state(a.id).totals
        d = b = 0
        for owner in [*accounts, env.lender]:
            pd, pb = env.engine.position(owner, 0, a.address)
            d, b = d + pd, b + pb
        assert (d, b) == (word & M128, word >> 128), a.spec.symbol
    # The crash did liquidate: the big hours are 10:00 (ETH -20%) and 23:00-01:00.
    assert keeper.liquidations >= 20
    assert liquidatable_at[10] > 0
    # With the keepers back at the 01:00 low, some accounts were under water.
    assert keeper.settlements > 0 and keeper.written_off
    print(
        f"\nBlack Thursday: {keeper.liquidations} liquidations, {keeper.settlements} settlements, "
        f"bonus ${keeper.bonus_usd / WAD:,.0f}, written off {keeper.written_off}, per hour {liquidatable_at}"
    )
