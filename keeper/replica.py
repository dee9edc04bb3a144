"""The keeper's replica of the engine: every sub-account's shares (from
events), every market's raw words and every feed's latest round (read from
the chain at the processed block), and each account's maintenance health.

Sources of truth and how they are followed:

* account shares and bitmaps: engine events (Deposit, Withdraw, Borrow,
  Repay, TransferCollateral, Liquidation, CollateralForfeited,
  BadDebtSettled) carry the share deltas exactly; a deposit bit is set iff
  the deposit shares are non-zero, a debt bit iff the borrow shares are (the
  engine's header bitmaps follow the same rule). Each block's deltas are kept
  as an undo log so a reorg can take them back.
* market words (indexes, totals, risk, ramp...): ``engine.asset_state(id)``
  read at the processed block for every asset an event touched (accrual only
  happens on a touch, and every touch logs), and for all assets after a
  configurator event.
* prices: ``feed.latestRoundData()`` read at the processed block for every
  feed that logged ``AnswerUpdated`` / ``NewRound`` (MockAggregator and
  Chainlink aggregators emit both).

Health math is ``keeper.risk_model`` (bit-exact with the contracts). The hot
path, :meth:`Replica.recompute`, evaluates only the maintenance health type
with per-asset factors computed once per block (stored deposit index, borrow
index accrued to the block time, unit price, maintenance weights): integer
math, a few multiplications per held asset, so 10,000 accounts take tens of
milliseconds. On a price update only the holders of that asset are
recomputed (``holders`` index).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

from . import risk_model as rm

WAD = rm.WAD
MAINTENANCE = rm.MAINTENANCE

AccountKey = tuple[str, int]  # (owner lower-case hex, sub id)


@dataclass(slots=True)
class Account:
    """One sub-account: positions by asset id -> [deposit shares, borrow shares]."""

    owner: str  # checksummed when known, compared lower-case
    sub_id: int
    positions: dict[int, list[int]] = field(default_factory=dict)
    last_risk_block: int = 0  # block of the last health-lowering action (cool-off rule)
    # asset id -> (deposit factor version, collateral, debt factor version, liability): the
    # per-asset contributions of the last recompute, reused while the asset's factors are unchanged
    cache: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def key(self) -> AccountKey:
        return (self.owner.lower(), self.sub_id)

    @property
    def deposit_bitmap(self) -> int:
        b = 0
        for i, (d, _) in self.positions.items():
            if d:
                b |= 1 << i
        return b

    @property
    def debt_bitmap(self) -> int:
        b = 0
        for i, (_, s) in self.positions.items():
            if s:
                b |= 1 << i
        return b

    @property
    def header(self) -> rm.AccountHeader:
        return rm.AccountHeader(self.deposit_bitmap, self.debt_bitmap, self.last_risk_block)

    def header_word(self) -> int:
        return self.header.to_word()

    def rm_positions(self) -> dict[int, rm.Position]:
        return {i: rm.Position(d, b) for i, (d, b) in self.positions.items()}


@dataclass(frozen=True, slots=True)
class AssetFactors:
    """Per-block factors of one asset for the maintenance health:
    deposit index (stored, WAD), borrow index accrued to the block time
    (WAD), unit price (USD WAD per token unit * 1e18), maintenance weights
    (WAD), price error code (risk_model.ERR_*), and whether interest accrual
    to the block time succeeds (False: the engine's accrual of this market
    reverts, e.g. an overflowing index, so every call touching it reverts)."""

    deposit_index: int
    borrow_index: int
    price: int
    aw: int
    lw: int
    error: int
    accrues: bool = True


class HealthEntry(NamedTuple):
    """Maintenance collateral and debt (USD WAD) of an account at ``now``."""

    collateral: int
    debt: int
    prices_valid: bool
    now: int

    @property
    def health(self) -> int:
        return self.collateral - self.debt

    @property
    def liquidatable(self) -> bool:
        return self.collateral < self.debt

    @property
    def ratio(self) -> int:
        return rm.health_ratio(self.collateral, self.debt)


Delta = tuple[AccountKey, int, int, int, int]  # (account, asset id, d deposit shares, d borrow shares, previous risk block)

ACCOUNT_EVENTS = frozenset(
    {"Deposit", "Withdraw", "Borrow", "Repay", "TransferCollateral", "Liquidation", "CollateralForfeited", "BadDebtSettled"}
)
MARKET_EVENTS = ACCOUNT_EVENTS | {"InterestAccrued", "LossSocialised", "InsuranceFundUsed"}


class Replica:
    """Accounts, markets and prices (see module docstring)."""

    def __init__(self) -> None:
        self.accounts: dict[AccountKey, Account] = {}
        self.markets: dict[int, rm.AssetState] = {}
        self.asset_ids: dict[str, int] = {}  # token lower -> id
        self.rounds: dict[int, rm.RoundData | None] = {}
        self.holders: dict[int, set[AccountKey]] = {}
        self.health: dict[AccountKey, HealthEntry] = {}
        self.liquidatable: set[AccountKey] = set()
        self.dust_threshold = 0  # USD WAD
        self.liquidation_grace = 0  # seconds
        self.paused_until = 0  # unix s
        self._factors: dict[int, AssetFactors] = {}
        self._factors_now: int | None = None
        self._versions: dict[int, tuple[int, int]] = {}  # asset id -> (deposit, debt) factor versions
        self._version = 0

    # -- markets and prices -----------------------------------------------------
    def set_market(self, state: rm.AssetState) -> None:
        self.markets[state.asset_id] = state
        self.asset_ids[state.asset.lower()] = state.asset_id
        self._factors_now = None

    def set_round(self, asset_id: int, round_data: rm.RoundData | None) -> None:
        self.rounds[asset_id] = round_data
        self._factors_now = None

    def asset_id(self, token: str) -> int:
        return self.asset_ids[token.lower()]

    def feeds(self) -> dict[str, int]:
        """feed address (lower) -> asset id."""
        return {m.feed.lower(): i for i, m in self.markets.items()}

    def quote(self, asset_id: int, now: int) -> rm.PriceQuote:
        return rm.asset_price(self.markets[asset_id].risk, self.rounds.get(asset_id), now)

    def quotes(self, now: int) -> dict[int, rm.PriceQuote]:
        return {i: self.quote(i, now) for i in self.markets}

    def factors(self, now: int) -> dict[int, AssetFactors]:
        """Per-asset factors at block time ``now`` (cached per ``now``)."""
        if self._factors_now == now:
            return self._factors
        out = {}
        for i, m in self.markets.items():
            q = self.quote(i, now)
            try:
                _, bi = m.indexes_now(now)
                accrues = True
            except rm.VyperRevert:
                # The engine's accrual of this market reverts: its holders' health,
                # liquidation and settlement revert too. Not liquidatable here.
                bi, accrues = m.borrow_index, False
            aw, lw = rm.weights(m.risk, m.effective_ramp, MAINTENANCE, now)
            out[i] = AssetFactors(m.deposit_index, bi, q.price, aw, lw, q.error, accrues)
            old = self._factors.get(i)
            dv, bv = self._versions.get(i, (0, 0))
            if old is None or (old.deposit_index, old.price, old.aw) != (m.deposit_index, q.price, aw):
                self._version += 1
                dv = self._version
            if old is None or (old.borrow_index, old.price, old.lw) != (bi, q.price, lw):
                self._version += 1
                bv = self._version
            self._versions[i] = (dv, bv)
        self._factors, self._factors_now = out, now
        return out

    # -- accounts ------------------------------------------------------------------
    def account(self, owner: str, sub_id: int) -> Account:
        key = (owner.lower(), int(sub_id))
        acc = self.accounts.get(key)
        if acc is None:
            acc = self.accounts[key] = Account(owner, int(sub_id))
        return acc

    def load_account(self, owner: str, sub_id: int, positions: dict[int, tuple[int, int]], last_risk_block: int = 0) -> Account:
        """Seeds an account (from the store or from on-chain views)."""
        acc = self.account(owner, sub_id)
        for i in list(acc.positions):
            self._unhold(acc, i)
        acc.positions = {i: [d, b] for i, (d, b) in positions.items() if d or b}
        acc.cache.clear()
        acc.last_risk_block = last_risk_block
        for i in acc.positions:
            self.holders.setdefault(i, set()).add(acc.key)
        return acc

    def _unhold(self, acc: Account, asset_id: int) -> None:
        s = self.holders.get(asset_id)
        if s is not None:
            s.discard(acc.key)

    def _move(self, acc: Account, asset_id: int, d_deposit: int, d_borrow: int, undo: list[Delta] | None, risk_block: int | None) -> None:
        pos = acc.positions.get(asset_id)
        if pos is None:
            pos = acc.positions[asset_id] = [0, 0]
            self.holders.setdefault(asset_id, set()).add(acc.key)
        prev_block = acc.last_risk_block
        acc.cache.pop(asset_id, None)
        pos[0] += d_deposit
        pos[1] += d_borrow
        if pos[0] < 0 or pos[1] < 0:
            raise rm.ReplicaDesync(f"negative shares for {acc.key} asset {asset_id}: {pos}")
        if risk_block is not None:
            acc.last_risk_block = risk_block
        if pos[0] == 0 and pos[1] == 0:
            del acc.positions[asset_id]
            self._unhold(acc, asset_id)
        if undo is not None:
            undo.append((acc.key, asset_id, d_deposit, d_borrow, prev_block))

    def apply_event(self, name: str, args: dict, block_number: int, undo: list[Delta] | None = None) -> tuple[set[AccountKey], set[int]]:
        """Applies one engine event's share deltas. Returns (accounts touched,
        asset ids whose market words changed). Unknown events touch nothing."""
        touched: set[AccountKey] = set()
        assets: set[int] = set()
        if name not in MARKET_EVENTS:
            return touched, assets
        if name == "Liquidation":
            acc = self.account(args["owner"], args["sub_id"])
            id_r, id_s = self.asset_id(args["repay_asset"]), self.asset_id(args["seize_asset"])
            self._move(acc, id_r, 0, -int(args["repaid_shares"]), undo, None)
            self._move(acc, id_s, -int(args["seized_shares"]), 0, undo, None)
            touched.add(acc.key)
            assets |= {id_r, id_s}
            return touched, assets
        asset_id = self.asset_id(args["asset"])
        assets.add(asset_id)
        if name in ("InterestAccrued", "LossSocialised", "InsuranceFundUsed"):
            return touched, assets
        shares = int(args["shares"])
        if name == "TransferCollateral":
            src = self.account(args["owner"], args["from_sub_id"])
            dst = self.account(args["owner"], args["to_sub_id"])
            has_debt = any(b for _, b in src.positions.values())
            self._move(src, asset_id, -shares, 0, undo, block_number if has_debt else None)
            self._move(dst, asset_id, shares, 0, undo, None)
            touched |= {src.key, dst.key}
            return touched, assets
        acc = self.account(args["owner"], args["sub_id"])
        touched.add(acc.key)
        if name == "Deposit":
            self._move(acc, asset_id, shares, 0, undo, None)
        elif name == "Withdraw":
            has_debt = any(b for _, b in acc.positions.values())
            self._move(acc, asset_id, -shares, 0, undo, block_number if has_debt else None)
        elif name == "Borrow":
            self._move(acc, asset_id, 0, shares, undo, block_number)
        elif name in ("Repay", "BadDebtSettled"):
            self._move(acc, asset_id, 0, -shares, undo, None)
        elif name == "CollateralForfeited":
            self._move(acc, asset_id, -shares, 0, undo, None)
        return touched, assets

    def undo(self, deltas: Iterable[Delta]) -> set[AccountKey]:
        """Takes back deltas recorded by :meth:`apply_event` (in reverse)."""
        touched = set()
        for key, asset_id, d_dep, d_bor, prev_block in reversed(list(deltas)):
            acc = self.accounts[key]
            self._move(acc, asset_id, -d_dep, -d_bor, None, None)
            acc.last_risk_block = prev_block
            touched.add(key)
        return touched

    # -- health ----------------------------------------------------------------------
    def recompute(self, now: int, keys: Iterable[AccountKey] | None = None) -> set[AccountKey]:
        """Maintenance health of ``keys`` (None: every account) at block time
        ``now``; updates :attr:`health` and :attr:`liquidatable`. Returns the
        keys that are liquidatable after the update (of those recomputed).

        Bit-exact with ``engine.health(owner, sub)[1]``: per held asset,
          collateral += floor(floor(floor(ds * di / W) * price / W) * aw / W)  (ds, aw != 0)
          debt       += ceil(ceil(ceil(bs * bi_now / W) * price / W) * lw / W)  (bs != 0)
        (deposit at the stored index, debt accrued to now; see risk_model.contribution).
        """
        factors = self.factors(now)
        versions = self._versions
        f = {
            i: (versions[i][0], fa.deposit_index, fa.price, fa.aw, versions[i][1], fa.borrow_index, fa.lw, fa.error,
                fa.accrues)
            for i, fa in factors.items()
        }
        accounts = self.accounts
        health = self.health
        liq = self.liquidatable
        W = WAD
        found = set()
        it = accounts.keys() if keys is None else keys
        for key in it:
            acc = accounts.get(key)
            if acc is None:
                continue
            c = 0
            d = 0
            valid = True
            accrues = True
            cache = acc.cache
            for i, (ds, bs) in acc.positions.items():
                dv, di, price, aw, bv, bi, lw, err, ok = f[i]
                if err:
                    valid = False
                if not ok:
                    accrues = False
                hit = cache.get(i)
                if hit is not None and hit[0] == dv and hit[2] == bv:
                    c += hit[1]
                    d += hit[3]
                    continue
                if hit is not None and hit[0] == dv:
                    ci = hit[1]
                else:
                    ci = (ds * di // W) * price // W * aw // W if ds and aw else 0
                li = 0
                if bs:
                    # ceil(ceil(ceil(bs * bi / W) * price / W) * lw / W); -(-a // b) = ceil(a / b)
                    x = -(-(bs * bi) // W)
                    x = -(-(x * price) // W)
                    li = -(-(x * lw) // W)
                cache[i] = (dv, ci, bv, li)
                c += ci
                d += li
            health[key] = HealthEntry(c, d, valid and accrues, now)
            if c < d and accrues:
                liq.add(key)
                found.add(key)
            else:
                liq.discard(key)
        return found

    def full_health(self, key: AccountKey, now: int) -> rm.Health:
        """All four health types (risk_model.account_health) of one account."""
        acc = self.accounts[key]
        return rm.account_health(
            acc.rm_positions(), self.markets, self.quotes(now), now, header=acc.header, kinds=rm.ALL_KINDS
        )

    def plan(self, key: AccountKey, id_r: int, id_s: int, now: int, requested: int = rm.MAX_UINT256) -> rm.Plan:
        """``MarginEngine._plan`` for this account (risk_model.plan_for):
        raises ``VyperRevert`` with the engine's reason (oracle reasons,
        "liquidation: account is healthy")."""
        acc = self.accounts[key]
        quotes = self.quotes(now)
        h = rm.account_health(
            acc.rm_positions(), self.markets, quotes, now, header=acc.header, kinds=14, strict=True
        )
        if not h.collateral[MAINTENANCE] < h.debt[MAINTENANCE]:
            raise rm.VyperRevert("liquidation: account is healthy")
        mr, ms = self.markets[id_r], self.markets[id_s]
        ds = acc.positions.get(id_s, [0, 0])[0]
        bs = acc.positions.get(id_r, [0, 0])[1]
        bi = mr.indexes_now(now)[1]
        return rm.plan_for(
            h.collateral[MAINTENANCE],
            h.debt[MAINTENANCE],
            h.liquidation_end,
            mr.risk,
            mr.effective_ramp,
            ms.risk,
            ms.effective_ramp,
            ms.liquidation,
            quotes[id_r].price,
            quotes[id_s].price,
            rm.mul_div_up(bs, bi, WAD),
            rm.mul_div_down(ds, ms.deposit_index, WAD),
            self.dust_threshold,
            requested,
            h.collateral[rm.VALUE] >= h.debt[rm.VALUE],
            ms.deposit_index << 128 | bi,
            now,
        )

    def snapshot(self, keys: Iterable[AccountKey]) -> list[tuple[str, int, int, dict[int, tuple[int, int]]]]:
        """Rows for :meth:`keeper.store.Store.commit_block`."""
        out = []
        for key in keys:
            acc = self.accounts.get(key)
            if acc is None:
                continue
            out.append((acc.owner, acc.sub_id, acc.header_word(), {i: (d, b) for i, (d, b) in acc.positions.items()}))
        return out
