"""Rules of the invariant machines, layered on the base machine:

  AccountRules     deposit, withdraw, borrow, repay (by anyone), transfer
                   between sub-accounts, batches, leveraged openings,
                   same-block round trips, next block;
  MarketRules      + price moves (small, crash, zero feed, stale feed,
                   refresh), time warps, parameter ramps
                   (configurator.set_risk_params), pause / unpause, accrue;
  ProtocolMachine  + liquidations (plain and flash), bad-debt settlement.

Rule arguments are small integers that pick among the model's current
positions (so most actions target something that exists) and amounts
relative to what the model says the account holds, owes or may borrow:
the edges (exact amount, all, a little more than allowed) come up often.
"""

from __future__ import annotations

import boa
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from keeper import risk_model as rm
from tests.invariants.machine import MarginMachine
from tests.invariants.world import ACTORS, ROUND_TRIP_SUBS, SUBS
from tests.protocol import MAX_UINT

WAD = rm.WAD
DAY = 86400

roles = st.sampled_from(ACTORS)
subs = st.sampled_from(SUBS)
asset_ix = st.integers(0, 63)
picks = st.integers(0, 2**16)
# Amount modes: 0 all (max uint), 1 exactly the amount, 2 a fraction 0.1% .. 120%.
modes = st.integers(0, 2)
fractions = st.integers(1, 1_200)
# USD sizes: 0 = one token unit, else mantissa * 10**(size - 1) dollars.
sizes = st.integers(0, 7)
mantissas = st.integers(1, 99)


def fraction(amount: int, mode: int, frac: int) -> int:
    if mode == 0:
        return MAX_UINT
    if mode == 1:
        return max(1, amount)
    return max(1, amount * frac // 1_000)


class AccountRules(MarginMachine):
    """User actions only: prices and time stay put (apart from blocks)."""

    # -- helpers ----------------------------------------------------------------------
    def ix(self, i: int) -> int:
        return i % self.n

    def usd_amount(self, i: int, size: int, mantissa: int) -> int:
        if size == 0:
            return 1
        return self.units_for_usd(i, mantissa * 10 ** (size - 1))

    def _positions(self, side: str, roles_only: bool = True):
        """(role, sub, asset id) of every position with a deposit / a debt."""
        by_address = {v: k for k, v in self.w.actors.items()}
        out = []
        for (owner, sub), acc in self.model.accounts.items():
            if sub in ROUND_TRIP_SUBS:
                continue
            bitmap = acc.header.deposit_bitmap if side == "deposit" else acc.header.debt_bitmap
            out += [(by_address[owner], sub, i) for i in range(self.n) if bitmap >> i & 1]
        return out

    def pick_position(self, side: str, pick: int, role: str, sub: int, i: int):
        """Usually (3 in 4) an existing position of that side, else the given one."""
        held = self._positions(side)
        if held and pick % 4 != 0:
            return held[pick % len(held)]
        return role, sub, self.ix(i)

    def borrow_room(self, role: str, sub: int, i: int) -> int:
        """The model's estimate of the largest borrow of asset i (flat
        weights): initial health / (unit price * lw_init), token units."""
        account = (self.actor(role), sub)
        h = self.health(account, kinds=1)
        q = self.prices()[i]
        lw = rm.weights(self.model.markets[i].risk, 0, rm.INITIAL, self.now())[1]
        room = max(0, h.collateral[0] - h.debt[0])
        return room * WAD // max(1, q.price) * WAD // max(1, lw) if q.price else 0

    # -- rules ------------------------------------------------------------------------
    @rule(role=roles, sub=subs, i=asset_ix, size=sizes, mantissa=mantissas, accrue_first=st.booleans())
    def deposit(self, role, sub, i, size, mantissa, accrue_first):
        i = self.ix(i)
        self.do_deposit(role, sub, i, self.usd_amount(i, size, mantissa), accrue_first)

    @rule(pick=picks, role=roles, sub=subs, i=asset_ix, mode=modes, frac=fractions, accrue_first=st.booleans())
    def withdraw(self, pick, role, sub, i, mode, frac, accrue_first):
        role, sub, i = self.pick_position("deposit", pick, role, sub, i)
        if frac % 8 == 0:
            # the lens's own limit (or one more)
            amount = self.w.lens.max_withdraw(self.actor(role), sub, self.asset(i).address) + frac % 16 // 8
            self.do_withdraw(role, sub, i, max(1, amount), accrue_first)
            return
        held = self.deposit_of((self.actor(role), sub), i)
        self.do_withdraw(role, sub, i, fraction(held, mode, frac), accrue_first)

    @rule(pick=picks, role=roles, sub=subs, i=asset_ix, mode=modes, frac=fractions, accrue_first=st.booleans())
    def borrow(self, pick, role, sub, i, mode, frac, accrue_first):
        role, sub, _ = self.pick_position("deposit", pick, role, sub, i)
        i = self.ix(i)
        if frac % 8 == 0:
            # the lens's own limit (or one more): max_borrow must be borrowable
            amount = self.w.lens.max_borrow(self.actor(role), sub, self.asset(i).address) + frac % 16 // 8
            self.do_borrow(role, sub, i, max(1, amount), accrue_first)
            return
        amount = fraction(self.borrow_room(role, sub, i), mode, frac)
        if amount == MAX_UINT:
            amount = self.units_for_usd(i, 1_000)
        self.do_borrow(role, sub, i, amount, accrue_first)

    @rule(pick=picks, payer=roles, role=roles, sub=subs, i=asset_ix, mode=modes, frac=fractions, accrue_first=st.booleans())
    def repay(self, pick, payer, role, sub, i, mode, frac, accrue_first):
        role, sub, i = self.pick_position("debt", pick, role, sub, i)
        if pick % 3 != 0:
            payer = role
        debt = self.debt_of((self.actor(role), sub), i)
        self.do_repay(payer, role, sub, i, fraction(debt, mode, frac), accrue_first)

    @rule(pick=picks, role=roles, sub=subs, i=asset_ix, mode=modes, frac=fractions)
    def transfer(self, pick, role, sub, i, mode, frac):
        role, sub, i = self.pick_position("deposit", pick, role, sub, i)
        held = self.deposit_of((self.actor(role), sub), i)
        to_sub = sub if pick % 17 == 0 else 1 - sub  # sometimes the same sub-account (a revert)
        self.do_transfer(role, sub, to_sub, i, fraction(held, mode, frac))

    @rule(role=roles, sub=subs, coll=asset_ix, debt=asset_ix, size=st.integers(2, 7), mantissa=mantissas,
          leverage=st.integers(500, 1_050))
    def open_leveraged_position(self, role, sub, coll, debt, size, mantissa, leverage):
        """A batch: deposit collateral, borrow `leverage` per mille of what
        its initial weight allows (above 1000: one health check refuses)."""
        coll, debt = self.ix(coll), self.ix(debt)
        amount = self.usd_amount(coll, size, mantissa)
        price_c, price_d = self.prices()[coll].price, self.prices()[debt].price
        now = self.now()
        aw = rm.weights(self.model.markets[coll].risk, 0, rm.INITIAL, now)[0]
        lw = rm.weights(self.model.markets[debt].risk, 0, rm.INITIAL, now)[1]
        value = amount * price_c // WAD * aw // WAD
        borrow = max(1, value * WAD // max(1, lw) * WAD // max(1, price_d) * leverage // 1_000)
        self.do_batch(role, sub, [(0, coll, amount, 0), (2, debt, borrow, 0)])

    @rule(pick=picks, role=roles, sub=subs, i=asset_ix, j=asset_ix, frac=fractions)
    def deleverage_batch(self, pick, role, sub, i, j, frac):
        """A batch: repay part of a debt, withdraw part of a deposit, move
        some collateral to the other sub-account."""
        role, sub, i = self.pick_position("debt", pick, role, sub, i)
        account = (self.actor(role), sub)
        deposits = [k for k in range(self.n) if self.model.account(*account).header.deposit_bitmap >> k & 1]
        j = deposits[j % len(deposits)] if deposits else self.ix(j)
        repay = max(1, self.debt_of(account, i) * frac // 1_000)
        withdraw = max(1, self.deposit_of(account, j) * frac // 4_000)
        moved = max(1, self.deposit_of(account, j) // 10)
        self.do_batch(role, sub, [(3, i, repay, 0), (1, j, withdraw, 0), (4, j, moved, 1 - sub)])

    @rule(role=roles, i=asset_ix, size=st.integers(1, 7), mantissa=mantissas, j=asset_ix, borrow_frac=st.integers(1, 1_000))
    def same_block_round_trip(self, role, i, size, mantissa, j, borrow_frac):
        """deposit -> (borrow -> repay all) -> withdraw all, in one block, in
        an empty sub-account: what comes back must not exceed what went in.
        (A leg refused by a pause leaves the sub-account in use; the next
        round trip of that actor takes the next empty one.)"""
        i, j = self.ix(i), self.ix(j)
        who = self.actor(role)
        sub = next(s for s in ROUND_TRIP_SUBS if not self.model.account(who, s).header.held_bitmap)
        amount = self.usd_amount(i, size, mantissa)
        paid = {i: 0, j: 0}
        received = {i: 0, j: 0}
        if self.do_deposit(role, sub, i, amount) is None:
            return
        paid[i] += amount
        dirty_assets, dirty_accounts = set(self.dirty_assets), set(self.dirty_accounts)
        borrow = self.borrow_room(role, sub, j) * borrow_frac // 1_000
        if borrow and self.do_borrow(role, sub, j, borrow) is not None:
            received[j] += borrow
            paid[j] += self.do_repay(role, role, sub, j, MAX_UINT)
            dirty_assets |= self.dirty_assets
        sent = self.do_withdraw(role, sub, i, MAX_UINT)
        self.touch(dirty_assets, dirty_accounts)
        if sent is None:
            return
        received[i] += sent
        self.last.kind = "round_trip"
        # In USD at the current prices (both legs in one block).
        value = lambda d: sum(rm.mul_div_down(v, self.prices()[k].price, WAD) for k, v in d.items())  # noqa: E731
        self.last.facts.update(actor=who, sub=sub, paid=value(paid), received=value(received), legs=(paid, received))
        for k in paid:
            assert received[k] <= paid[k], (self.asset(k).symbol, paid[k], received[k])

    @rule()
    def next_block(self):
        self.begin("next_block")
        self.warp(12)


class MarketRules(AccountRules):
    """+ prices, time, risk parameters and pauses."""

    @rule(i=asset_ix, factor=st.integers(900, 1_100))
    def small_price_move(self, i, factor):
        i = self.ix(i)
        self.begin("price", asset=i)
        self.publish(i, max(1, self.answers[i] * factor // 1_000))

    @rule(i=asset_ix, factor=st.integers(30, 700))
    def price_crash(self, i, factor):
        i = self.ix(i)
        self.begin("price", asset=i)
        self.publish(i, max(1, self.answers[i] * factor // 1_000))

    @rule(i=asset_ix, answer=st.sampled_from([0, -1]))
    def feed_reports_zero(self, i, answer):
        i = self.ix(i)
        self.begin("price", asset=i)
        self.publish(i, answer)

    @rule(extra=st.integers(1, 3 * DAY))
    def feeds_go_stale(self, extra):
        """Time passes beyond the longest staleness without new rounds."""
        step = self.begin("stale")
        step.facts["debts_before"] = self._debts()
        longest = max(rm.max_staleness(m.risk) for m in self.model.markets.values())
        self.warp(longest + extra)

    @rule()
    def refresh_feeds_rule(self):
        self.begin("price")
        self.refresh_feeds()

    @rule(seconds=st.one_of(st.integers(12, 3_600), st.integers(3_600, 30 * DAY)), refresh=st.integers(0, 3))
    def time_warp(self, seconds, refresh):
        """Interest accrues; feeds are usually refreshed after the warp."""
        step = self.begin("warp")
        step.facts["debts_before"] = self._debts()
        self.warp(seconds)
        if refresh:
            self.refresh_feeds()

    def _debts(self) -> dict:
        return {a: {i: self.debt_of(a, i) for i in self.model.account(*a).header.held_ids()} for a in self.debtors()}

    @rule(i=asset_ix, aw_frac=st.integers(0, 1_000), lw_frac=st.integers(0, 1_000), initial=st.booleans())
    def ramp_risk_params(self, i, aw_frac, lw_frac, initial):
        """configurator.set_risk_params: maintenance weights anywhere between
        the initial weights and the listing's (a tightening ramps in over the
        ramp duration, a loosening applies at once); sometimes the initial
        weights move too."""
        i = self.ix(i)
        self.begin("ramp", asset=i)
        base = rm.unpack_risk(self.w.baseline[i].risk)
        cur = rm.unpack_risk(self.model.markets[i].risk)
        aw_i, lw_i = base.asset_weight_initial, base.liability_weight_initial
        if initial:
            aw_i = aw_i * (900 + aw_frac // 10) // 1_000 // rm.BPS_TO_WAD * rm.BPS_TO_WAD
        bps = rm.BPS_TO_WAD
        aw_m = (aw_i + (base.asset_weight_maintenance - aw_i) * aw_frac // 1_000) // bps * bps
        lw_m = (base.liability_weight_maintenance + (lw_i - base.liability_weight_maintenance) * lw_frac // 1_000) // bps * bps
        params = (aw_i, max(aw_m, aw_i), lw_i, min(max(lw_m, base.liability_weight_maintenance), lw_i),
                  cur.max_staleness, cur.imf, cur.min_answer, cur.max_answer)
        with boa_prank(self.w.owner):
            self.w.configurator.set_risk_params(self.asset(i).address, params)
        self.refresh_config(i)
        self.touch([i])

    @rule(i=asset_ix, actions=st.integers(1, 15))
    def guardian_pauses(self, i, actions):
        i = self.ix(i)
        self.begin("pause", asset=i)
        with boa_prank(self.w.guardian):
            self.engine.pause(self.asset(i).address, actions << 1)
        self.refresh_config(i)
        self.touch([i])

    @rule(i=asset_ix, actions=st.integers(1, 15))
    def owner_unpauses(self, i, actions):
        i = self.ix(i)
        self.begin("unpause", asset=i)
        with boa_prank(self.w.owner):
            self.w.configurator.unpause(self.asset(i).address, actions << 1)
        self.refresh_config(i)
        self.touch([i])

    @rule(i=asset_ix, base=st.integers(0, 100), low=st.integers(0, 300), high=st.integers(0, 600),
          kink=st.integers(1, 99), rf=st.integers(0, 100))
    def set_rate_model(self, i, base, low, high, kink, rf):
        """configurator.set_rate_model (APR percent, kink and reserve factor
        percent): the engine accrues at the old rates first."""
        i = self.ix(i)
        self.begin("rates", asset=i)
        per_second = lambda pct: pct * WAD // 100 // (365 * DAY)  # noqa: E731
        rates = (per_second(base), per_second(low), per_second(high), kink * WAD // 100, rf * WAD // 100)
        with boa_prank(self.w.owner):
            self.w.configurator.set_rate_model(self.asset(i).address, rates)
        self.model.set_rate_model(i, rm.pack_rate_model(*rates[:4]), rates[4], self.now())
        self.refresh_config(i)
        self.touch([i])

    @rule(i=asset_ix, supply=st.integers(0, 1_500), borrow=st.integers(0, 1_500))
    def set_caps(self, i, supply, borrow):
        """configurator.set_caps around the current totals (per mille; 0 = no cap)."""
        i = self.ix(i)
        self.begin("caps", asset=i)
        m = self.model.markets[i]
        deposits = rm.mul_div_down(m.deposit_shares, m.deposit_index, WAD)
        borrows = rm.mul_div_up(m.borrow_shares, m.borrow_index, WAD)
        caps = (deposits * supply // 1_000 if supply else 0, borrows * borrow // 1_000 if borrow else 0)
        with boa_prank(self.w.owner):
            self.w.configurator.set_caps(self.asset(i).address, *caps)
        self.refresh_config(i)
        self.touch([i])

    @rule(duration=st.integers(1, 5 * 3600))
    def guardian_pauses_liquidations(self, duration):
        """engine.pause_liquidations: at most 4 hours, then 4 hours of cool-down."""
        self.begin("pause")
        until, now = self.paused_until, self.now()
        if duration > 4 * 3600:
            reason = "pause: duration above 4 hours"
        elif until != 0 and now < until + 4 * 3600:
            reason = "pause: cooling down from the last pause"
        else:
            reason = None
        self.last.reason = reason
        with boa_prank(self.w.guardian):
            if reason is None:
                self.engine.pause_liquidations(duration)
                self.paused_until = now + duration
            else:
                with boa.reverts(reason):
                    self.engine.pause_liquidations(duration)

    @rule(i=asset_ix)
    def accrue(self, i):
        i = self.ix(i)
        self.begin("accrue", asset=i)
        di, bi = self.model.accrue(i, self.now())
        self.engine.accrue(self.asset(i).address)
        ev = self._event("InterestAccrued")
        assert (ev["deposit_index"], ev["borrow_index"]) == (di, bi)
        self.touch([i])


class ProtocolMachine(MarketRules):
    """+ liquidations (plain and flash) and bad-debt settlement."""

    def _liquidation_target(self, pick: int, r: int, z: int):
        debtors = self.debtors()
        if not debtors:
            return None
        if pick % 3:
            prices, now = self.prices(), self.now()
            account = min(debtors, key=lambda a: self.model.health(*a, prices, now, kinds=2).maintenance)
        else:
            account = debtors[pick % len(debtors)]
        hdr = self.model.account(*account).header
        debt_ids = [k for k in range(self.n) if hdr.debt_bitmap >> k & 1]
        dep_ids = [k for k in range(self.n) if hdr.deposit_bitmap >> k & 1] or list(range(self.n))
        return account, debt_ids[r % len(debt_ids)], dep_ids[z % len(dep_ids)]

    @precondition(lambda self: bool(self.debtors()))
    @rule(pick=picks, factor=st.integers(100, 900))
    def push_weakest_debtor_under(self, pick, factor):
        """The prelude of a liquidation: the weakest debtor's largest
        collateral price falls until it is liquidatable (at most 4 times),
        then a block passes (liquidation cool-off)."""
        target = self._liquidation_target(pick, 0, 0)
        account = target[0]
        self.begin("price", account)
        for _ in range(4):
            acc = self.model.account(*account)
            ids = [k for k in range(self.n) if acc.header.deposit_bitmap >> k & 1]
            if not ids or self.health(account, kinds=2).liquidatable:
                break
            k = max(ids, key=lambda j: rm.mul_div_down(self.deposit_of(account, j), self.prices()[j].price, WAD))
            self.publish(k, max(1, self.answers[k] * factor // 1_000))
        self.warp(12)

    @precondition(lambda self: bool(self.debtors()))
    @rule(pick=picks, r=asset_ix, z=asset_ix, mode=modes, frac=fractions, liquidator=st.sampled_from(["liquidator", "attacker"]))
    def liquidate(self, pick, r, z, mode, frac, liquidator):
        account, r, z = self._liquidation_target(pick, r, z)
        if account[0] == self.actor(liquidator):
            liquidator = "whale" if liquidator != "whale" else "lender"
        amount = fraction(self.debt_of(account, r), mode, frac)
        self.do_liquidate(liquidator, account, r, z, amount)

    @precondition(lambda self: bool(self.debtors()))
    @rule(pick=picks, r=asset_ix, z=asset_ix, mode=modes, frac=fractions)
    def flash_liquidate(self, pick, r, z, mode, frac):
        account, r, z = self._liquidation_target(pick, r, z)
        amount = fraction(self.debt_of(account, r), mode, frac)
        self.do_liquidate(None, account, r, z, amount, flash=True)

    @precondition(lambda self: bool(self.debtors()))
    @rule(pick=picks)
    def settle_bad_debt(self, pick):
        """Settles a debtor; the one without collateral when there is one."""
        debtors = self.debtors()
        bare = [a for a in debtors if self.model.account(*a).header.deposit_bitmap == 0]
        account = (bare or debtors)[pick % len(bare or debtors)]
        self.do_settle(account)


def boa_prank(who):
    return boa.env.prank(who)
