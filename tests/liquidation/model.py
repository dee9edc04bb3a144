"""Independent integer model of xmargin's liquidation path, for the
liquidation tests.

Written from the formulas of contracts/modules/{fixed_point, margin,
interest_rate, oracle, liquidation}.vy, MarginEngine.liquidate and
MarginEngineExtension.settle_bad_debt (as of commit 931997b), in plain
Python integers with the same rounding direction at every step. It
deliberately uses neither the contracts nor keeper/risk_model.py (which had
no liquidation math when these tests were written): the chain is only read
for INPUTS (raw storage words via engine.asset_state / position /
account_header, feed answers, token balances, the block time), and every
expected output (health, bonus, repay cap, seized amount,
insurance share, shares burned, indexes after a socialised loss, ...) is
computed here.

Glossary (as in the contracts): WAD = 1e18 = 1.0; "unit price" = USD WAD
of one smallest token unit times 1e18, i.e.
answer * 10**(36 - feed decimals - token decimals); value = amount * unit
price // 1e18.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

WAD = 10**18
BP = 10**14  # one basis point in WAD
IMF_TO_WAD = 10**12
MAX_UINT = 2**256 - 1

M16 = 2**16 - 1
M24 = 2**24 - 1
M32 = 2**32 - 1
M40 = 2**40 - 1
M60 = 2**60 - 1
M64 = 2**64 - 1
M96 = 2**96 - 1
M128 = 2**128 - 1

INITIAL, MAINTENANCE, LIQUIDATION_END, VALUE = range(4)
FLAG_COLLATERAL = 1
FLAG_RAMPING = 2


class ModelRevert(Exception):
    """Where the contract would revert; `reason` is its revert string."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def require(cond: bool, reason: str) -> None:
    if not cond:
        raise ModelRevert(reason)


# ---------------------------------------------------------------------------
# fixed_point
# ---------------------------------------------------------------------------


def mdd(x: int, y: int, d: int) -> int:
    """floor(x * y / d)"""
    return x * y // d


def mdu(x: int, y: int, d: int) -> int:
    """ceil(x * y / d)"""
    return -(-(x * y) // d)


# ---------------------------------------------------------------------------
# margin: risk word, weights, contributions
# ---------------------------------------------------------------------------


def token_decimals(risk: int) -> int:
    return (risk >> 112) & 31


def feed_decimals(risk: int) -> int:
    return (risk >> 117) & 31


def risk_flags(risk: int) -> int:
    return (risk >> 122) & 63


def max_staleness(risk: int) -> int:
    return (risk >> 64) & M24


def unit_price(answer: int, risk: int) -> int:
    """oracle.unit_price's price (0 for a non-positive answer)."""
    if answer <= 0:
        return 0
    return min(answer, 2**128) * 10 ** (36 - feed_decimals(risk) - token_decimals(risk))


def maintenance_weights(risk: int, ramp: int, now: int) -> tuple[int, int]:
    aw = ((risk >> 16) & M16) * BP
    lw = ((risk >> 48) & M16) * BP
    if ramp == 0:
        return aw, lw
    end = (ramp >> 72) & M40
    if now >= end:
        return aw, lw
    start = (ramp >> 32) & M40
    aw_start = (ramp & M16) * BP
    lw_start = ((ramp >> 16) & M16) * BP
    duration, elapsed = end - start, now - start
    if aw_start > aw:
        aw = aw_start - mdu(aw_start - aw, elapsed, duration)
    if lw_start < lw:
        lw = lw_start + mdu(lw - lw_start, elapsed, duration)
    return aw, lw


def weights(risk: int, ramp: int, kind: int, now: int) -> tuple[int, int]:
    """(aw, lw) of a health type: initial, maintenance, liquidation end
    (midpoint of initial and maintenance; aw rounds down, lw up), value."""
    if kind == INITIAL:
        aw = (risk & M16) * BP if risk_flags(risk) & FLAG_COLLATERAL else 0
        return aw, ((risk >> 32) & M16) * BP
    if kind == VALUE:
        return WAD, WAD
    aw_m, lw_m = maintenance_weights(risk, ramp, now)
    if kind == MAINTENANCE:
        return aw_m, lw_m
    aw_i = (risk & M16) * BP
    lw_i = ((risk >> 32) & M16) * BP
    return (aw_i + aw_m) // 2, (lw_i + lw_m + 1) // 2


def tiered_asset_weight(aw: int, imf_wad: int, size: int) -> int:
    if imf_wad == 0 or size == 0:
        return aw
    premium = imf_wad * math.isqrt(size * WAD) // WAD
    return min(aw, 11 * 10**17 * WAD // (WAD + premium))


def tiered_liability_weight(lw: int, imf_wad: int, size: int) -> int:
    if imf_wad == 0 or size == 0:
        return lw
    premium = mdu(imf_wad, math.isqrt(size * WAD) + 1, WAD)
    return max(lw, mdu(lw, 8 * 10**17, WAD) + premium)


def contribution(risk: int, ramp: int, price: int, deposit: int, debt: int, kind: int, now: int) -> tuple[int, int]:
    """Weighted (collateral, liability) of one asset, USD WAD: collateral
    rounds down, liability up; only the initial type is size-tiered."""
    aw, lw = weights(risk, ramp, kind, now)
    imf_wad = ((risk >> 88) & M24) * IMF_TO_WAD if kind == INITIAL else 0
    scale = 10 ** (18 - token_decimals(risk))
    coll = liab = 0
    if deposit != 0 and aw != 0:
        if imf_wad:
            aw = tiered_asset_weight(aw, imf_wad, deposit * scale)
        coll = mdd(mdd(deposit, price, WAD), aw, WAD)
    if debt != 0:
        if imf_wad:
            lw = tiered_liability_weight(lw, imf_wad, debt * scale)
        liab = mdu(mdu(debt, price, WAD), lw, WAD)
    return coll, liab


# ---------------------------------------------------------------------------
# interest_rate
# ---------------------------------------------------------------------------


def borrow_rate(word: int, u: int) -> int:
    base, low, high, kink = word & M64, (word >> 64) & M64, (word >> 128) & M64, word >> 192
    if u <= kink:
        return base + low * u // kink
    return base + low + high * (u - kink) // (WAD - kink)


def utilisation(total_deposit: int, total_borrow: int) -> int:
    if total_borrow == 0:
        return 0
    if total_borrow >= total_deposit:
        return WAD
    return mdd(total_borrow, WAD, total_deposit)


def accrue_indexes(word: int, rf: int, di: int, bi: int, ds: int, bs: int, dt: int) -> tuple[int, int]:
    if bs == 0 or dt == 0:
        return di, bi
    total_deposit = mdd(ds, di, WAD)
    total_borrow = mdu(bs, bi, WAD)
    rate = borrow_rate(word, utilisation(total_deposit, total_borrow))
    new_bi = bi + mdu(bi, rate * dt, WAD)
    interest = mdu(bs, new_bi, WAD) - total_borrow
    new_di = di
    if ds != 0:
        new_di += interest * (WAD - rf) // WAD * WAD // ds
    return new_di, new_bi


# ---------------------------------------------------------------------------
# liquidation module
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LiquidationParams:
    min_bonus: int
    max_bonus: int
    full_bonus_depth: int
    insurance_share: int

    @classmethod
    def unpack(cls, word: int) -> "LiquidationParams":
        return cls(
            (word & M16) * BP, ((word >> 16) & M16) * BP, ((word >> 32) & M16) * BP, ((word >> 48) & M16) * BP
        )


def dutch_bonus(ratio: int, p: LiquidationParams) -> int:
    """b = b_min + (b_max - b_min) * min(depth, depth_full) / depth_full,
    depth = 1 - rho; rounded down. (No solvency cap.)"""
    depth = WAD - min(ratio, WAD)
    b = p.min_bonus
    if p.max_bonus > p.min_bonus:
        if depth >= p.full_bonus_depth:
            b = p.max_bonus
        else:
            b += (p.max_bonus - p.min_bonus) * depth // p.full_bonus_depth
    return b


def bonus(ratio: int, p: LiquidationParams, aw_seize: int, lw_repay: int) -> int:
    """Dutch bonus, capped (aw_seize != 0) at rho * lw_m,r / aw_m,s - 1 (0 if
    that is <= 0)."""
    b = dutch_bonus(ratio, p)
    if aw_seize != 0:
        cap = ratio * lw_repay // aw_seize
        if cap <= WAD:
            return 0
        b = min(b, cap - WAD)
    return b


def seize_for(repay: int, price_r: int, price_s: int, b: int) -> int:
    value = mdd(repay, price_r, WAD)
    return mdd(mdd(value, WAD + b, WAD), WAD, price_s)


def repay_for(seize: int, price_r: int, price_s: int, b: int) -> int:
    value = mdu(seize, price_s, WAD)
    return mdu(mdu(value, WAD, WAD + b), WAD, price_r)


@dataclass
class Plan:
    repay: int
    seize: int
    to_insurance: int
    bonus: int
    leaves_dust: bool
    cap: int  # repay cap before the liquidator's request (after the debt-dust rule)
    target_cap: int  # repay cap of the liquidation-end target alone
    seize_all: bool = False  # the whole deposit (stored index) is seized: burn every share
    lowers_ratio: bool = False  # refused: a solvent account's maintenance ratio would fall

    @property
    def to_liquidator(self) -> int:
        return self.seize - self.to_insurance


def plan(
    le_health: int,
    debt: int,
    deposit: int,
    price_r: int,
    price_s: int,
    lw_le_r: int,
    aw_le_s: int,
    b: int,
    insurance_share: int,
    dust: int,
    requested: int,
) -> Plan:
    cap = debt
    gain = lw_le_r
    loss = mdd(aw_le_s, WAD + b, WAD)  # rounded down: a smaller cap
    if le_health >= 0:
        cap = 0
    elif gain > loss:
        value = (-le_health) * WAD // (gain - loss)
        cap = min(debt, value * WAD // price_r)
    target_cap = cap
    if mdu(debt - cap, price_r, WAD) < dust:
        cap = debt
    repay = min(cap, requested)
    leaves_dust = False
    seize = seize_for(repay, price_r, price_s, b)
    if seize >= deposit:
        seize = deposit
        repay = min(repay, repay_for(seize, price_r, price_s, b))
    elif mdd(deposit - seize, price_s, WAD) < dust:
        # Seize the dust rest too when the debt can pay its full price and
        # the request covers it.
        full = repay_for(deposit, price_r, price_s, b)
        if full <= debt:
            if full <= requested:
                seize = deposit
                repay = max(repay, full)
            else:
                leaves_dust = True  # a request short of the full price leaves the dust rest
    # A request short of the cap must not leave dust on either side.
    if requested < cap:
        rest_debt = mdu(debt - repay, price_r, WAD)
        rest_deposit = mdd(deposit - seize, price_s, WAD)
        leaves_dust = leaves_dust or (repay < debt and rest_debt < dust) or (seize < deposit and rest_deposit < dust)
    base = mdd(mdd(repay, price_r, WAD), WAD, price_s)
    to_insurance = (seize - base) * insurance_share // WAD if seize > base else 0
    return Plan(repay, seize, to_insurance, b, leaves_dust, cap, target_cap, seize_all=seize == deposit)


# ---------------------------------------------------------------------------
# Protocol state replica
# ---------------------------------------------------------------------------


@dataclass
class Market:
    id: int
    address: str
    risk: int
    ramp_word: int
    market_a: int
    market_b: int
    totals: int
    rate_model: int
    liquidation_word: int
    answer: int  # latest feed answer (feed decimals)
    balance: int  # token balance of the engine

    @property
    def ramp(self) -> int:
        return self.ramp_word if risk_flags(self.risk) & FLAG_RAMPING else 0

    @property
    def price(self) -> int:
        return unit_price(self.answer, self.risk)

    @property
    def di(self) -> int:
        return self.market_a & M96

    @property
    def bi(self) -> int:
        return self.market_b & M96

    @property
    def last(self) -> int:
        return (self.market_b >> 96) & M40

    @property
    def reserve_factor(self) -> int:
        return (self.market_b >> 136) & M60

    @property
    def ds(self) -> int:
        return self.totals & M128

    @property
    def bs(self) -> int:
        return self.totals >> 128

    @property
    def params(self) -> LiquidationParams:
        return LiquidationParams.unpack(self.liquidation_word)

    def set_totals(self, ds: int, bs: int) -> None:
        assert 0 <= ds <= M128 and 0 <= bs <= M128
        self.totals = ds | bs << 128

    def set_di(self, di: int) -> None:
        self.market_a = (self.market_a & ~M96) | di

    def indexes_now(self, now: int) -> tuple[int, int]:
        if self.bs == 0 or self.last >= now:
            return self.di, self.bi
        return accrue_indexes(self.rate_model, self.reserve_factor, self.di, self.bi, self.ds, self.bs, now - self.last)

    def borrow_index_now(self, now: int) -> int:
        if self.last == now:
            return self.bi
        return self.indexes_now(now)[1]

    def accrue(self, now: int, need_borrow_index: bool) -> tuple[int, int]:
        """ledger._accrue: stores and returns (deposit index, borrow index)."""
        if self.bs == 0 and not need_borrow_index:
            return self.di, 0
        bi = self.bi
        if self.last == now:
            return self.di, bi
        if self.bs != 0:
            new_di, bi = accrue_indexes(
                self.rate_model, self.reserve_factor, self.di, bi, self.ds, self.bs, now - self.last
            )
            self.set_di(new_di)
        self.market_b = (self.market_b & ~(M96 | M40 << 96)) | bi | now << 96
        return self.di, bi

    # Views at `now` (interest accrued, nothing stored).
    def total_deposits_now(self, now: int) -> int:
        return mdd(self.ds, self.indexes_now(now)[0], WAD)

    def total_borrows_now(self, now: int) -> int:
        return mdu(self.bs, self.indexes_now(now)[1], WAD)

    def insurance_fund_now(self, now: int) -> int:
        return self.balance + self.total_borrows_now(now) - self.total_deposits_now(now)


@dataclass
class Health:
    collateral: list[int]
    debt: list[int]

    def h(self, kind: int) -> int:
        return self.collateral[kind] - self.debt[kind]

    @property
    def initial(self) -> int:
        return self.h(INITIAL)

    @property
    def maintenance(self) -> int:
        return self.h(MAINTENANCE)

    @property
    def liquidation_end(self) -> int:
        return self.h(LIQUIDATION_END)

    @property
    def value(self) -> int:
        return self.h(VALUE)

    @property
    def ratio(self) -> int:
        if self.debt[MAINTENANCE] == 0:
            return MAX_UINT
        return self.collateral[MAINTENANCE] * WAD // self.debt[MAINTENANCE]


@dataclass
class LiquidationResult:
    plan: Plan
    repaid: int  # token units of the repay asset paid by the liquidator
    seized: int  # token units taken from the account (incl. insurance)
    to_liquidator: int
    to_insurance: int
    bonus: int
    repaid_shares: int
    seized_shares: int
    borrow_index: int
    deposit_index: int
    ratio: int  # maintenance ratio before
    solvent: bool


@dataclass
class SettleEvent:
    name: str
    asset: str
    values: dict


@dataclass
class State:
    """Replica of the engine's storage that matters here, at block time `now`."""

    now: int
    block: int
    markets: dict[int, Market]
    headers: dict[tuple[str, int], int] = field(default_factory=dict)
    positions: dict[tuple[str, int], dict[int, list[int]]] = field(default_factory=dict)
    dust: int = 0
    grace: int = 0
    paused_until: int = 0

    def copy(self) -> "State":
        return copy.deepcopy(self)

    def by_address(self, address: str) -> Market:
        for m in self.markets.values():
            if m.address.lower() == str(address).lower():
                return m
        raise KeyError(address)

    def pos(self, owner: str, sub: int, id: int) -> list[int]:
        return self.positions.setdefault((str(owner), sub), {}).setdefault(id, [0, 0])

    def header(self, owner: str, sub: int) -> int:
        return self.headers.get((str(owner), sub), 0)

    # -- health ---------------------------------------------------------------
    def deposit_amount(self, owner: str, sub: int, id: int) -> int:
        """At the STORED deposit index (the engine's health and plan)."""
        return mdd(self.pos(owner, sub, id)[0], self.markets[id].di, WAD)

    def debt_amount(self, owner: str, sub: int, id: int) -> int:
        """At the borrow index accrued to now."""
        return mdu(self.pos(owner, sub, id)[1], self.markets[id].borrow_index_now(self.now), WAD)

    def health(self, owner: str, sub: int = 0, header_mask: int | None = None) -> Health:
        header = self.header(owner, sub)
        if header_mask is not None:
            header &= header_mask
        held = (header | header >> 64) & M64
        coll, debt = [0] * 4, [0] * 4
        for id in range(64):
            if (held >> id) & 1 == 0:
                continue
            m = self.markets[id]
            d_shares, b_shares = self.pos(owner, sub, id)
            dep = mdd(d_shares, m.di, WAD) if d_shares else 0
            dbt = mdu(b_shares, m.borrow_index_now(self.now), WAD) if b_shares else 0
            for kind in range(4):
                c, l = contribution(m.risk, m.ramp, m.price, dep, dbt, kind, self.now)
                coll[kind] += c
                debt[kind] += l
        return Health(coll, debt)

    # -- liquidation ----------------------------------------------------------
    def plan_for(self, owner: str, sub: int, id_r: int, id_s: int, requested: int) -> tuple[Plan, int, bool]:
        """MarginEngine._plan / liquidation.plan_for: (plan, maintenance ratio, solvent)."""
        h = self.health(owner, sub)
        require(h.collateral[MAINTENANCE] < h.debt[MAINTENANCE], "liquidation: account is healthy")
        r, s = self.markets[id_r], self.markets[id_s]
        aw_m, _ = weights(s.risk, s.ramp, MAINTENANCE, self.now)
        _, lw_m = weights(r.risk, r.ramp, MAINTENANCE, self.now)
        solvent = h.collateral[VALUE] >= h.debt[VALUE]
        ratio = h.collateral[MAINTENANCE] * WAD // h.debt[MAINTENANCE]
        if solvent and ratio * lw_m < aw_m * WAD:
            # rho' >= rho needs (1 + b) * aw_m,s <= rho * lw_m,r; not even b = 0 works.
            return Plan(0, 0, 0, 0, False, 0, 0, lowers_ratio=True), ratio, solvent
        b = bonus(ratio, s.params, aw_m if solvent else 0, lw_m)
        aw_le, _ = weights(s.risk, s.ramp, LIQUIDATION_END, self.now)
        _, lw_le = weights(r.risk, r.ramp, LIQUIDATION_END, self.now)
        p = plan(
            h.liquidation_end,
            self.debt_amount(owner, sub, id_r),
            self.deposit_amount(owner, sub, id_s),
            r.price,
            s.price,
            lw_le,
            aw_le,
            b,
            s.params.insurance_share,
            self.dust,
            requested,
        )
        if solvent and aw_m != 0 and p.repay != 0:
            self._keep_ratio_in_token_units(p, h, r, s, lw_m, aw_m, requested, owner, sub, id_r, id_s)
        return p, ratio, solvent

    def _keep_ratio_in_token_units(self, p, h, r, s, lw_m, aw_m, requested, owner, sub, id_r, id_s) -> None:
        """The solvency cap against the engine's roundings (liquidation.vy
        plan_for): with C, D the maintenance collateral and debt, keep
        lost * D <= removed * C for a lower bound `removed` of the weighted
        debt repaid and an upper bound `lost` of the weighted collateral
        seized. Mutates `p`."""
        c, d = h.collateral[MAINTENANCE], h.debt[MAINTENANCE]
        debt = self.debt_amount(owner, sub, id_r)
        deposit = self.deposit_amount(owner, sub, id_s)
        bi = r.borrow_index_now(self.now)

        def removed_lo(repay: int) -> int:
            if repay >= debt:  # exact: the whole debt contribution
                return mdu(mdu(debt, r.price, WAD), lw_m, WAD)
            # floor(repay * WAD / bi) shares burned: the amount falls by > repay - bi/WAD - 1.
            units = repay - (2 + bi // WAD)
            v = mdd(mdd(units, r.price, WAD), lw_m, WAD) if units > 0 else 0
            return max(0, v - (lw_m // WAD + 2))

        if p.seize_all:
            lost = mdd(mdd(deposit, s.price, WAD), aw_m, WAD)  # exact: the whole contribution
            if lost * d > removed_lo(p.repay) * c:
                need = mdu(lost, d, c) + lw_m // WAD + 2
                repay = 2 + bi // WAD + mdu(mdu(need, WAD, lw_m), WAD, r.price)
                if repay >= debt or mdu(debt - repay, r.price, WAD) < self.dust:
                    repay = debt
                p.repay = repay
                p.lowers_ratio = repay > requested or lost * d > removed_lo(repay) * c
        else:
            # ceil(seize * WAD / di') shares burned (di' >= stored di): the
            # collateral falls by < (seize + 2 + di // WAD) * P * aw / WAD^2 + 2.
            budget = removed_lo(p.repay) * c // d
            most = mdd(mdd(budget - 2, WAD, aw_m), WAD, s.price) if budget > 2 else 0
            p.seize = max(0, min(p.seize, most - (2 + s.di // WAD)))
        base = mdd(mdd(p.repay, r.price, WAD), WAD, s.price)
        p.to_insurance = (p.seize - base) * s.params.insurance_share // WAD if p.seize > base else 0

    def liquidate(
        self, owner: str, sub: int, id_r: int, id_s: int, requested: int, min_seize: int = 0,
        nets_same_asset: bool = True,
    ) -> LiquidationResult:
        """MarginEngine.liquidate after its access/delay checks (self-
        liquidation, bitmaps, cool-off, pause, sequencer, oracle, grace are
        the tests' business). Mutates the state like the engine.
        `nets_same_asset` False: a flash liquidation or another receiver,
        where the seized tokens leave before the repayment arrives."""
        require(requested != 0, "liquidation: zero repay amount")
        header = self.header(owner, sub)
        require((header >> (64 + id_r)) & 1 != 0, "liquidation: no debt in repay asset")
        require((header >> id_s) & 1 != 0, "liquidation: no deposit in seize asset")
        p, ratio, solvent = self.plan_for(owner, sub, id_r, id_s, requested)
        require(not p.lowers_ratio, "liquidation: seizing this asset lowers the health ratio")
        require(not p.leaves_dust, "liquidation: leaves dust")
        require(p.repay != 0 and p.seize > p.to_insurance, "liquidation: nothing to seize")
        seized = p.seize - p.to_insurance
        require(seized >= min_seize, "liquidation: seized amount below minimum")

        r = self.markets[id_r]
        _, bi = r.accrue(self.now, True)
        pos = self.pos(owner, sub, id_r)
        repaid_shares = p.repay * WAD // bi
        if p.repay >= mdu(pos[1], bi, WAD):
            repaid_shares = pos[1]
        require(repaid_shares != 0, "liquidation: repay below one share")
        r.set_totals(r.ds, r.bs - repaid_shares)
        pos[1] -= repaid_shares
        if pos[1] == 0:
            header &= ~(1 << (64 + id_r))

        s = self.markets[id_s]
        di, _ = s.accrue(self.now, False)
        pos = self.pos(owner, sub, id_s)
        # A plan taking the whole deposit (stored index) burns every share.
        seized_shares = pos[0] if p.seize_all else min(mdu(p.seize, WAD, di), pos[0])
        total_shares = s.ds - seized_shares
        if id_s == id_r and not nets_same_asset:
            # Same asset, both legs moving: the pool pays the seizure with the
            # repaid debt still lent out.
            require(
                mdd(total_shares, di, WAD) >= mdu(s.bs + repaid_shares, bi, WAD),
                "market: insufficient liquidity",
            )
        elif s.bs != 0:
            require(
                mdd(total_shares, di, WAD) >= mdu(s.bs, s.borrow_index_now(self.now), WAD),
                "market: insufficient liquidity",
            )
        s.set_totals(total_shares, s.bs)
        pos[0] -= seized_shares
        if pos[0] == 0:
            header &= ~(1 << id_s)
        self.headers[(str(owner), sub)] = header
        s.balance -= seized
        r.balance += p.repay
        return LiquidationResult(
            plan=p,
            repaid=p.repay,
            seized=p.seize,
            to_liquidator=seized,
            to_insurance=p.to_insurance,
            bonus=p.bonus,
            repaid_shares=repaid_shares,
            seized_shares=seized_shares,
            borrow_index=bi,
            deposit_index=di,
            ratio=ratio,
            solvent=solvent,
        )

    # -- bad debt -------------------------------------------------------------
    def settle_bad_debt(self, owner: str, sub: int) -> list[SettleEvent]:
        """MarginEngineExtension.settle_bad_debt after its delay checks (pause,
        sequencer, price grace: the tests' business)."""
        header = self.header(owner, sub)
        require((header >> 64) & M64 != 0, "settle: no debt")
        h = self.health(owner, sub)
        require(h.collateral[MAINTENANCE] < h.debt[MAINTENANCE], "settle: account is healthy")
        require(h.collateral[VALUE] == 0 or h.collateral[VALUE] < self.dust, "settle: collateral above dust")
        events: list[SettleEvent] = []
        held = (header | header >> 64) & M64
        for id in range(64):
            if (held >> id) & 1 == 0:
                continue
            m = self.markets[id]
            di, bi = m.accrue(self.now, True)
            pos = self.pos(owner, sub, id)
            d_shares, b_shares = pos
            pos[0] = pos[1] = 0
            total_ds = m.ds - d_shares
            total_bs = m.bs - b_shares
            if d_shares:
                events.append(
                    SettleEvent(
                        "CollateralForfeited",
                        m.address,
                        dict(amount=mdd(d_shares, di, WAD), shares=d_shares, deposit_index=di),
                    )
                )
            if b_shares:
                debt = mdu(b_shares, bi, WAD)
                fund = m.balance + mdu(m.bs, bi, WAD) - mdd(total_ds, di, WAD)
                used = min(fund, debt) if fund > 0 else 0
                loss = debt - used
                if used:
                    events.append(SettleEvent("InsuranceFundUsed", m.address, dict(amount=used)))
                if loss:
                    cut = mdu(loss, WAD, total_ds)
                    require(cut < di, "settle: loss exceeds deposits")
                    m.set_di(di - cut)
                    events.append(
                        SettleEvent("LossSocialised", m.address, dict(amount=loss, deposit_index=di - cut, cut=cut))
                    )
                events.append(
                    SettleEvent("BadDebtSettled", m.address, dict(debt=debt, shares=b_shares, borrow_index=bi))
                )
            m.set_totals(total_ds, total_bs)
        self.headers[(str(owner), sub)] = header & (M64 << 128)
        return events

    # -- invariants -----------------------------------------------------------
    def identity_gaps(self) -> dict[int, tuple[int, int]]:
        """For every asset: (balance + borrows - deposits) at the stored
        indexes and at the indexes accrued to now; both must be >= 0."""
        out = {}
        for id, m in self.markets.items():
            stored = m.balance + mdu(m.bs, m.bi, WAD) - mdd(m.ds, m.di, WAD)
            out[id] = (stored, m.insurance_fund_now(self.now))
        return out
