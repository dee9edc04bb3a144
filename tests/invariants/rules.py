"""Rules of the invariant machines, layered on the base machine:

  AccountRules     deposit, withdraw, borrow, repay (by anyone), transfer
                   between sub-accounts, batches, leveraged openings,
                   same-block round trips, next block;
  MarketRules      + price moves (small, crash, zero feed, stale feed,
                   refresh), time warps, parameter ramps
                   (configurator.set_risk_params), pause / unpause, accrue;
  ProtocolMachine  + liquidations (plain and flash), bad-debt settlement,
                   and `keeper`: a composite rule that makes them land
                   (liquidations open, a target pushed under, cool-off,
                   a pair the model says lands; or bad debt settled).

Rule arguments are small integers that pick among the model's current
positions (so most actions target something that exists) and amounts
relative to what the model says the account holds, owes or may borrow:
the edges (exact amount, all, a little more than allowed) come up often.
"""

from __future__ import annotations

import boa
from hypothesis import strategies as st
from hypothesis.stateful import INVARIANT_MARKER, precondition, rule

from keeper import risk_model as rm
from tests.invariants.machine import MarginMachine, predict
from tests.invariants.world import ACTORS, ROUND_TRIP_SUBS, SUBS
from tests.protocol import MAX_UINT

WAD = rm.WAD
DAY = 86400

# Maintenance ratios (per mille) where a solvent account's bonus meets its
# solvency cap in the world's assets: from aw_m / lw_m (0.85 / 1.1 = 0.773,
# solvent only above it) to (1 + max bonus) * aw_m / lw_m (0.85 at 10%).
CAP_BAND = (770, 850)
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

    def _checkpoint(self) -> None:
        """Every invariant, as hypothesis runs them after a rule: a
        composite rule calls it between its steps (the last one is checked
        by hypothesis)."""
        for name in dir(type(self)):
            fn = getattr(type(self), name)
            if getattr(fn, INVARIANT_MARKER, None) is not None:
                fn(self)

    def free_liquidity(self, i: int) -> int:
        """The books' free liquidity of asset i (token units): total deposits
        (rounded down) minus total borrows (rounded up), as the engine checks."""
        m = self.model.markets[i]
        return rm.mul_div_down(m.deposit_shares, m.deposit_index, WAD) - rm.mul_div_up(m.borrow_shares, m.borrow_index, WAD)

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

    @rule(role=roles, i=asset_ix, size=sizes, mantissa=mantissas)
    def donate(self, role, i, size, mantissa):
        """Tokens sent straight to the engine: cash beyond the books, which a
        missing liquidity check would pay out."""
        i = self.ix(i)
        self.do_donate(role, i, self.usd_amount(i, size, mantissa))

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

    @rule(pick=picks, other=roles, donate_first=st.booleans(), accrue_first=st.booleans())
    def withdraw_lent_out_deposit(self, pick, other, donate_first, accrue_first):
        """A depositor asks for all the engine's cash its deposit covers once
        the pool is lent out: past the books' free liquidity whenever the
        engine holds cash they do not lend (the fund's interest, a
        donation), which must be refused ("market: insufficient liquidity")."""
        held_positions = self._positions("deposit")
        if not held_positions:
            return
        role, sub, i = held_positions[pick % len(held_positions)]
        who = self.actor(role)
        a = self.asset(i)
        if self.deposit_of((who, sub), i) <= self.free_liquidity(i):
            # Lend the pool out first: another account borrows all it may.
            for candidate in ACTORS[ACTORS.index(other):] + ACTORS[: ACTORS.index(other)]:
                if candidate == role:
                    continue
                room = self.w.lens.max_borrow(self.actor(candidate), 0, a.address)
                if room > 0:
                    self.do_borrow(candidate, 0, i, room)
                    self._checkpoint()
                    break
        if donate_first:
            self.do_donate(other, i, 1)
            self._checkpoint()
        cash = a.token.balanceOf(self.engine.address)
        self.do_withdraw(role, sub, i, max(1, min(self.deposit_of((who, sub), i), cash)), accrue_first)

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
        # At most the wallet (as do_deposit: after deep crashes a USD-sized
        # amount can exceed it, and the model does not predict the token's
        # own revert).
        amount = min(self.usd_amount(coll, size, mantissa), self.wallet(self.actor(role), coll))
        self.do_batch(role, sub, [(0, coll, amount, 0), (2, debt, self.leveraged_borrow(coll, debt, amount, leverage), 0)])

    def leveraged_borrow(self, coll: int, debt: int, amount: int, leverage: int) -> int:
        """`leverage` per mille of what `amount` of collateral `coll` allows
        to borrow in `debt` at the initial weights (no ramp, no size tier)."""
        price_c, price_d = self.prices()[coll].price, self.prices()[debt].price
        now = self.now()
        aw = rm.weights(self.model.markets[coll].risk, 0, rm.INITIAL, now)[0]
        lw = rm.weights(self.model.markets[debt].risk, 0, rm.INITIAL, now)[1]
        value = amount * price_c // WAD * aw // WAD
        return max(1, value * WAD // max(1, lw) * WAD // max(1, price_d) * leverage // 1_000)

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
            if self.wallet(who, j) < self.debt_of((who, sub), j):
                # The debt rounds up past the borrow and the deposit took the
                # rest of the wallet: the actor cannot close the trip; the
                # debt stays open (the sub-account stays in use).
                self.touch(dirty_assets | self.dirty_assets, dirty_accounts | self.dirty_accounts)
                return
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
        step.facts["debts_before"] = self.chain_debts()
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
        step.facts["debts_before"] = self.chain_debts()
        self.warp(seconds)
        if refresh:
            self.refresh_feeds()

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
        self.agree((ev["deposit_index"], ev["borrow_index"]) == (di, bi), (ev, di, bi))
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

    # -- keeper: liquidations and settlements that land ----------------------------------
    # The plain rules above mostly meet refusals (cool-off, healthy target,
    # pause, price grace): a liquidation needs several conditions at once,
    # which random rule sequences rarely line up. The composite `keeper` rule
    # below lines them up the way a keeper does, choosing with the model (never by
    # trying the chain): wait out a liquidation pause and the price grace
    # with heartbeat rounds, push a debtor below maintenance with price
    # moves inside the feeds' answer bounds, wait a block for the cool-off,
    # then liquidate a (repay, seize) pair the model says lands. Each part is
    # its own step (counted, and every invariant runs after it).

    # -- helpers ----------------------------------------------------------------------
    def _bounded(self, i: int, answer: int) -> int:
        """answer clamped into asset i's accepted answer bounds."""
        lo, hi = rm.answer_bounds(self.model.markets[i].risk)
        return min(max(answer, lo, 1), hi)

    def _liquidations_blocked(self) -> bool:
        """A liquidation pause, a feed in the price grace period or a
        rejected price (stale, zero, out of bounds)."""
        return (
            self.now() < self.paused_until
            or bool(self.recently_stale_ids())
            or not all(q.valid for q in self.prices().values())
        )

    def _keeper_waits(self) -> bool:
        """Heartbeats until liquidations are open: each step warps (at most
        half the shortest staleness, so the new rounds open no stale gap)
        and publishes every feed's last answer inside its bounds. A feed
        already stale opens a grace period, which the next steps wait out.
        True when open (at most 12 steps)."""
        for _ in range(12):
            if not self._liquidations_blocked():
                return True
            stale = any(q.error == rm.ERR_STALE for q in self.prices().values())
            half = min(rm.max_staleness(m.risk) for m in self.model.markets.values()) // 2
            wait = 12
            if not stale:
                if self.now() < self.paused_until:
                    wait = max(wait, self.paused_until - self.now())
                if self.recently_stale_ids():
                    wait = max(wait, self.grace)
            step = self.begin("warp")
            step.facts["debts_before"] = self.chain_debts()
            self.warp(max(12, min(wait, half)))
            for i in range(self.n):
                self.publish(i, self._bounded(i, self.answers[i]))
            self._checkpoint()
        return not self._liquidations_blocked()

    def _maintenance_parts(self, account) -> dict[int, tuple[int, int]]:
        """asset id -> (weighted collateral, weighted debt) at maintenance."""
        now, prices = self.now(), self.prices()
        out = {}
        for k in self.model.account(*account).header.held_ids():
            st = self.model.markets[k].to_asset_state()
            out[k] = rm.contribution(st.risk, st.effective_ramp, prices[k].price, self.deposit_of(account, k),
                                     self.debt_of(account, k), rm.MAINTENANCE, now)
        return out

    def _push_under(self, account, ratio: int, deep: bool = False) -> bool:
        """Price moves (one step each, at most 4) until `account`'s
        maintenance ratio (collateral / debt, per mille) is about `ratio`
        (< 1000): its largest collateral it does not owe falls (by at most
        95%), else its largest debt it does not hold rises (at most x20),
        clamped to the answer bounds (a clamped move leaves the rest to the
        next move); `deep`: even when it is liquidatable already. True when
        the account is liquidatable."""
        for _ in range(4):
            h = self.health(account, kinds=2)
            if h.liquidatable and not (deep and h.collateral[rm.MAINTENANCE] * 1_000 > h.debt[rm.MAINTENANCE] * ratio):
                return True
            parts = self._maintenance_parts(account)
            coll, debt = h.collateral[rm.MAINTENANCE], h.debt[rm.MAINTENANCE]
            target = debt * ratio // 1_000
            only_coll = [k for k, (c, d) in parts.items() if c and not d]
            only_debt = [k for k, (c, d) in parts.items() if d and not c]
            if only_coll:
                k = max(only_coll, key=lambda j: parts[j][0])
                c = parts[k][0]
                factor = max(WAD // 20, max(0, c - (coll - target)) * WAD // c)  # new / old price, WAD; at most -95%
            elif only_debt:
                k = max(only_debt, key=lambda j: parts[j][1])
                d = parts[k][1]
                factor = min(20 * WAD, (d + coll * 1_000 // max(1, ratio) - debt) * WAD // d)  # at most x20
            else:
                return False  # the same assets on both sides: prices cannot push it alone
            self.begin("price", account, asset=k)
            self.publish(k, self._bounded(k, self.answers[k] * factor // WAD))
            self._checkpoint()
        return self.health(account, kinds=2).liquidatable

    def _cool_off(self, account) -> None:
        """A block passes when the account lowered its health in this one."""
        if self.model.account(*account).header.last_risk_block == self.block():
            self.begin("next_block")
            self.warp(12)
            self._checkpoint()

    def _landing_pairs(self, account, liquidator: str, amount_of, flash: bool) -> list[tuple[int, int, int]]:
        """(repay id, seize id, amount) of every pair the model says lands
        now, plain or flash (amount_of(r) is the request for repay asset r)."""
        hdr = self.model.account(*account).header
        now, blk, prices = self.now(), self.block(), self.prices()
        out = []
        for r in [k for k in range(self.n) if hdr.debt_bitmap >> k & 1]:
            for z in [k for k in range(self.n) if hdr.deposit_bitmap >> k & 1]:
                amount = amount_of(r)
                with self.scratch() as shadow:
                    _plan, reason = predict(lambda: shadow.liquidate(
                        liquidator, *account, r, amount, z, 0, prices, now, blk, self.dust,
                        paused_until=self.paused_until, recently_stale_ids=self.recently_stale_ids(),
                        nets_same_asset=not flash))
                if reason is None:
                    out.append((r, z, amount))
        return out

    def _pushable(self, account) -> bool:
        """Prices alone can push it under: it holds a collateral it does
        not owe or owes an asset it does not hold."""
        return any(bool(c) != bool(d) for c, d in self._maintenance_parts(account).values())

    def _keeper_opens(self, pick: int, size: int, mantissa: int):
        """A borrower opens a leveraged position (collateral and debt in two
        different assets, 90% of the initial limit) in one batch step; a
        lender first deposits the borrowed asset when the market lacks the
        liquidity. Returns the account, or None when the batch is refused."""
        role = ("borrower", "trader", "whale")[pick % 3]
        sub = SUBS[pick // 3 % len(SUBS)]
        coll = pick // 7 % self.n
        debt = (coll + 1 + pick // 29 % (self.n - 1)) % self.n
        who = self.actor(role)
        amount = min(self.usd_amount(coll, size, mantissa), self.wallet(who, coll))
        borrow = self.leveraged_borrow(coll, debt, amount, 900)
        if self.free_liquidity(debt) < borrow:
            self.do_deposit("lender", 0, debt, 2 * borrow)
            self._checkpoint()
        if self.do_batch(role, sub, [(0, coll, amount, 0), (2, debt, borrow, 0)]) is None:
            return None
        self._checkpoint()
        return (who, sub)

    def _liquidator(self, account, flash: bool, role: str) -> tuple[str | None, str]:
        """(role for do_liquidate, address the model sees as liquidator)."""
        if flash:
            return None, self.w.flash.address
        if account[0] == self.actor(role):
            role = "attacker" if role != "attacker" else "liquidator"
        return role, self.actor(role)

    def _keeper_target(self, pick: int, ratio: int, size: int, mantissa: int):
        """An account the model says is liquidatable, else the weakest
        debtor prices can push under, pushed to a maintenance ratio of
        `ratio` per mille, else a position opened for it and pushed. None
        when the opening is refused."""
        prices, now = self.prices(), self.now()
        candidates = [a for a in self.debtors() if self.model.account(*a).header.deposit_bitmap]
        under = [a for a in candidates if self.health(a, kinds=2).liquidatable]
        pushable = [a for a in candidates if a not in under and self._pushable(a)]
        if under:
            # The one nearest the drawn ratio, unless it is far from it and a
            # healthy account can be pushed there instead: accounts left deep
            # under by crashes would otherwise take every liquidation, and
            # only a barely liquidatable one stops at the target (the
            # partial liquidation the target and ratio invariants judge).
            gap = lambda a: abs(self.health(a, kinds=2).ratio - ratio * WAD // 1_000)  # noqa: E731
            nearest = min(under, key=gap)
            # In the band where the bonus's solvency cap binds only a near
            # account will do: a few per cent off, the cap no longer binds.
            tolerance = WAD // 50 if CAP_BAND[0] <= ratio <= CAP_BAND[1] else WAD // 10
            if gap(nearest) <= tolerance or not pushable:
                return nearest if pick % 4 else under[pick % len(under)]
        if pushable:
            account = min(pushable, key=lambda a: self.model.health(*a, prices, now, kinds=2).ratio)
        else:
            account = self._keeper_opens(pick, size, mantissa)
            if account is None:
                return None
        self._push_under(account, ratio)
        return account

    # -- rule -------------------------------------------------------------------------
    # One step in three may start a keeper (the step index is machine state,
    # so hypothesis replays it): a keeper runs several steps, liquidations
    # and flash liquidations are the costliest calls on py-evm, and a third
    # already lands hundreds in the ci profile (docs/invariants.md).
    @precondition(lambda self: self.step_index % 3 == 0)
    # Target maintenance ratios (per mille): anywhere, or where the checks
    # bite -- solvent but deep (CAP_BAND: the bonus's solvency cap binds)
    # and barely under (the liquidation-end target caps the repay).
    @rule(pick=picks, ratio=st.one_of(st.integers(50, 999), st.integers(*CAP_BAND), st.integers(960, 999)), mode=modes, frac=fractions, flash=st.booleans(),
          liquidator=st.sampled_from(["liquidator", "attacker"]), size=st.integers(2, 7), mantissa=mantissas,
          settle=st.booleans())
    def keeper(self, pick, ratio, mode, frac, flash, liquidator, size, mantissa, settle):
        """A keeper (one rule, so that its several steps do not crowd out
        the others): `keeper_liquidates`, or with `settle`
        `keeper_settles_bad_debt` (pushed to 70% of `ratio`)."""
        if settle:
            self.keeper_settles_bad_debt(pick, ratio * 7 // 10, flash, size, mantissa)
        else:
            self.keeper_liquidates(pick, ratio, mode, frac, flash, liquidator, size, mantissa)

    def keeper_liquidates(self, pick, ratio, mode, frac, flash, liquidator, size, mantissa):
        """A keeper's liquidation: liquidations open (heartbeats), a target
        (`_keeper_target`, pushed to a maintenance ratio of `ratio` per
        mille), a block for the cool-off, then a (repay, seize) pair the
        model says lands with the request all / exactly the debt /
        0.1%-120% of it (plain or flash). When no pair lands the first pair
        is tried: its refusal is predicted and checked like any other."""
        if not self._keeper_waits():
            return
        account = self._keeper_target(pick, ratio, size, mantissa)
        if account is None:
            return
        self._cool_off(account)
        role, address = self._liquidator(account, flash, liquidator)
        pairs = self._landing_pairs(account, address, lambda r: fraction(self.debt_of(account, r), mode, frac), flash)
        if pairs:
            r, z, amount = pairs[pick % len(pairs)]
            if frac % 7 == 0:
                # Adversarial: a request that leaves a collateral rest below
                # the dust threshold (or, failing that, all the debt but one
                # unit); the engine must refuse it unless the target caps
                # the repay first.
                amount = self._dust_request(account, r, z)
        else:
            hdr = self.model.account(*account).header
            r = [k for k in range(self.n) if hdr.debt_bitmap >> k & 1][0]
            z = [k for k in range(self.n) if hdr.deposit_bitmap >> k & 1][0]
            amount = fraction(self.debt_of(account, r), mode, frac)
        self.do_liquidate(role, account, r, z, amount, flash=flash)

    def _dust_request(self, account, r: int, z: int) -> int:
        """A repay request whose seizure leaves about half the dust
        threshold of asset z's deposit (at the bonus the model plans), else
        the debt in r minus one unit."""
        prices, now = self.prices(), self.now()
        fallback = max(1, self.debt_of(account, r) - 1)
        deposit = self.deposit_of(account, z)
        pz, pr = prices[z].price, prices[r].price
        if not (pz and pr) or rm.mul_div_down(deposit, pz, WAD) <= self.dust:
            return fallback
        with self.scratch() as shadow:
            plan, _reason = predict(lambda: shadow.liquidation_plan(
                *account, r, z, MAX_UINT, prices, now, self.dust, recently_stale_ids=self.recently_stale_ids()))
        if plan is None:
            return fallback
        rest = max(1, rm.mul_div_down(self.dust // 2, WAD, pz))
        return max(1, rm.repay_for(deposit - rest, pr, pz, plan.bonus))

    def keeper_settles_bad_debt(self, pick, ratio, flash, size, mantissa):
        """Bad debt: liquidations open (heartbeats); a liquidatable debtor
        with collateral under the dust threshold when there is one, else a target
        (`_keeper_target`) pushed insolvent (to a maintenance ratio of
        `ratio` per mille), liquidated for all of a landing pair (the
        largest seizure first, plain or flash: at most 4 steps) until its
        collateral is worth less than the dust threshold, then settled."""
        if not self._keeper_waits():
            return
        value = lambda a: self.health(a, kinds=8).collateral[rm.VALUE]  # noqa: E731
        bare = [a for a in self.debtors() if value(a) < self.dust and self.health(a, kinds=2).liquidatable]
        if bare:
            account = bare[pick % len(bare)]
        else:
            account = self._keeper_target(pick, ratio, size, mantissa)
            if account is None:
                return
            self._push_under(account, ratio, deep=True)
            self._cool_off(account)
            for _ in range(4):
                if value(account) < self.dust:
                    break
                role, address = self._liquidator(account, flash, "liquidator")
                pairs = self._landing_pairs(account, address, lambda r: MAX_UINT, flash)
                if not pairs:
                    break
                price = self.prices()
                r, z, amount = max(pairs, key=lambda p: rm.mul_div_down(self.deposit_of(account, p[1]), price[p[1]].price, WAD))
                self.do_liquidate(role, account, r, z, amount, flash=flash)
                self._checkpoint()
        self.do_settle(account)


def boa_prank(who):
    return boa.env.prank(who)
