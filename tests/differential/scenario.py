"""Random protocol scenarios run on the real engine (tests/protocol.py) and,
side by side, on keeper.risk_model replicas.

A `World` is deployed once per test (pytest fixture): six listed assets, one
per (token decimals, feed decimals) pair in {6, 8, 18} x {8, 18}, and two
funded users with sub-accounts 0 and 1. Each hypothesis example (isolated by
titanoboa's per-example anchor) then:

  * picks 2-4 assets and gives them random risk parameters (weights, imf,
    staleness, answer bounds, collateral flag), rate models and prices;
  * runs random actions: deposit / withdraw / borrow / repay / transfer,
    liquidate / settle_bad_debt, `engine.accrue`, time warps (with or
    without fresh feed rounds), price moves (including rejected rounds: out
    of bounds, incomplete, non-positive) and maintenance tightenings (ramps);
  * mirrors every action on a `ProtocolReplica` that simulates it from the
    token amount (`sim`) -- same success or revert reason, same return
    value and event fields -- and replays the engine's logs into a second
    replica (`replay`, strict: every index in every event must match).

`check_against_engine` rebuilds a third replica from the engine's raw
getters only and compares the model with engine.health, lens.healths,
lens.balances and lens.market.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import boa
from boa import BoaError
from hypothesis import event
from hypothesis import strategies as st

from keeper import risk_model as rm
from tests.protocol import MAX_UINT, Asset, AssetSpec, Protocol

WAD = rm.WAD
DAY = 86400
MAX_BORROW_RATE = 10 * WAD // (365 * DAY)
ASSET_KINDS = [(6, 8), (8, 8), (18, 8), (6, 18), (8, 18), (18, 18)]  # (token decimals, feed decimals)
SUBS = (0, 1)
FUNDING = 10**40  # token units minted to each user per asset


@dataclass
class World:
    protocol: Protocol
    assets: list[Asset]
    users: list[str]
    liquidator: str
    baseline: list = field(default_factory=list)  # asset_state of every asset after deployment

    @property
    def accounts(self) -> list[tuple[str, int]]:
        return [(u, s) for u in self.users for s in SUBS]


def deploy_world() -> World:
    """The protocol with six assets listed at neutral weights (aw 0, lw 5),
    so any random parameters can later be set without starting a ramp."""
    p = Protocol.deploy()
    assets = []
    for i, (dec, fdec) in enumerate(ASSET_KINDS):
        spec = AssetSpec(
            f"T{i}",
            decimals=dec,
            feed_decimals=fdec,
            asset_weight_initial=0,
            asset_weight_maintenance=0,
            liability_weight_initial=5 * WAD,
            liability_weight_maintenance=5 * WAD,
            min_answer=rm.bound_scale(fdec),
            max_answer=(2**64 - 1) * rm.bound_scale(fdec),
        )
        assets.append(p.list_asset(spec))
    users = [boa.env.generate_address(f"user{i}") for i in range(2)]
    liquidator = boa.env.generate_address("liquidator")
    for u in users + [liquidator]:
        for a in assets:
            p.fund(u, a, FUNDING)
    baseline = [rm.AssetState.from_tuple(p.engine.asset_state(i)) for i in range(len(assets))]
    return World(p, assets, users, liquidator, baseline)


def revert_reason(e: BoaError) -> str:
    """The revert string of a BoaError ('' for a bare revert)."""
    frame = e.stack_trace.last_frame
    reason = getattr(frame, "pretty_vm_reason", None)
    return reason if isinstance(reason, str) and not reason.startswith("Revert(") else ""


@dataclass
class Outcome:
    """What one action did on the engine and in the model."""

    kind: str
    engine: object = None
    engine_reason: str | None = None  # None = success
    model: object = None
    model_reason: str | None = None
    logs: list = field(default_factory=list)  # (event name, fields) at the engine's address

    def event(self, name: str) -> dict:
        found = [f for n, f in self.logs if n == name]
        assert len(found) == 1, (name, self.logs)
        return found[0]


@dataclass
class Run:
    """One scenario (one hypothesis example)."""

    world: World
    data: object
    dust: int = 0
    sim: rm.ProtocolReplica = field(default_factory=rm.ProtocolReplica)
    replay: rm.ProtocolReplica = field(default_factory=rm.ProtocolReplica)
    chosen: list[int] = field(default_factory=list)
    rounds: dict[int, rm.RoundData | None] = field(default_factory=dict)
    answers: dict[int, int] = field(default_factory=dict)
    bounds: dict[int, tuple[int, int]] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    # -- plumbing -------------------------------------------------------------
    @property
    def p(self) -> Protocol:
        return self.world.protocol

    @property
    def engine(self):
        return self.world.protocol.engine

    def draw(self, strategy, label: str | None = None):
        return self.data.draw(strategy, label=label)

    @staticmethod
    def now() -> int:
        return boa.env.timestamp

    @staticmethod
    def block() -> int:
        return boa.env.evm.patch.block_number

    def asset(self, i: int) -> Asset:
        return self.world.assets[i]

    def read_rounds(self, ids) -> None:
        for i in ids:
            self.rounds[i] = rm.RoundData.from_tuple(self.asset(i).feed.latestRoundData())

    def prices(self, replica: rm.ProtocolReplica | None = None) -> dict[int, rm.PriceQuote]:
        replica = replica or self.sim
        now = self.now()
        return {i: rm.asset_price(replica.markets[i].risk, self.rounds[i], now) for i in self.chosen}

    def refresh_config(self, i: int) -> None:
        """After a configurator call: copy the config words (not the market
        words, which the replicas must already match) into both replicas."""
        state = rm.AssetState.from_tuple(self.engine.asset_state(i))
        for rep in (self.sim, self.replay):
            m = rep.markets[i]
            assert (m.market_a, m.market_b, m.totals) == (state.market_a, state.market_b, state.totals)
            rep.set_config(state)

    # -- set-up -----------------------------------------------------------------
    def configure(self, n_assets: int | None = None, plain: bool = False) -> None:
        """Random parameters for 2-3 assets (`n_assets` to fix the count);
        `plain`: no size tiering (imf 0) and every asset a collateral."""
        n = len(self.world.assets)
        k = n_assets or self.draw(st.integers(2, 3), "n_assets")
        self.chosen = sorted(self.draw(st.permutations(range(n)), "assets")[:k])
        owner = self.p.owner
        for i in self.chosen:
            a = self.asset(i)
            dec, fdec = ASSET_KINDS[i]
            # Feed answer: $1e-4 .. $1e6.
            answer = self.draw(st.integers(10 ** (fdec - 4), 10 ** (fdec + 6)), f"answer{i}")
            aw_m = self.draw(st.integers(0, 10_000), f"aw_m{i}") * rm.BPS_TO_WAD
            aw_i = self.draw(st.integers(0, aw_m // rm.BPS_TO_WAD), f"aw_i{i}") * rm.BPS_TO_WAD
            lw_m = self.draw(st.integers(10_000, 50_000), f"lw_m{i}") * rm.BPS_TO_WAD
            lw_i = self.draw(st.integers(lw_m // rm.BPS_TO_WAD, 50_000), f"lw_i{i}") * rm.BPS_TO_WAD
            imf = 0 if plain else self.draw(st.one_of(st.just(0), st.integers(0, 5_000), st.integers(0, 2**24 - 1)), f"imf{i}") * 10**12
            staleness = self.draw(st.integers(60, 7 * DAY), f"stale{i}")
            # Answer bounds: multiples of the bound scale (8 stored decimals).
            scale = rm.bound_scale(fdec)
            lo = max(1, answer // self.draw(st.integers(1, 100), f"lo{i}") // scale) * scale
            hi = min(2**64 - 1, answer * self.draw(st.integers(1, 100), f"hi{i}") // scale) * scale
            if lo >= hi:
                lo, hi = scale, (2**64 - 1) * scale
            self.bounds[i] = (lo, hi)
            with boa.env.prank(owner):
                self.p.configurator.set_risk_params(a.address, (aw_i, aw_m, lw_i, lw_m, staleness, imf, lo, hi))
                if self.draw(st.integers(0, 2), f"set_rates{i}") == 0:
                    base = self.draw(st.integers(0, MAX_BORROW_RATE // 4), f"base{i}")
                    low = self.draw(st.integers(0, MAX_BORROW_RATE // 4), f"low{i}")
                    high = self.draw(st.integers(0, MAX_BORROW_RATE // 2), f"high{i}")
                    kink = self.draw(st.integers(1, WAD - 1), f"kink{i}")
                    rf = self.draw(st.integers(0, WAD), f"rf{i}")
                    self.p.configurator.set_rate_model(a.address, (base, low, high, kink, rf))
                if not plain and self.draw(st.integers(0, 4), f"no_collateral{i}") == 0:
                    self.p.configurator.set_flags(a.address, False, True)
            a.feed.set_answer(answer)
            self.answers[i] = answer
        # Seed both replicas from the engine's raw words (assets not chosen
        # are as deployed: every example starts from the world's snapshot).
        for i in range(len(self.world.assets)):
            state = rm.AssetState.from_tuple(self.engine.asset_state(i)) if i in self.chosen else self.world.baseline[i]
            self.sim.add_market(state)
            self.replay.add_market(state)
        self.read_rounds(self.chosen)
        self.dust = self.engine.liquidation_settings()[0]
        # Liquidity: one deposit per chosen asset, by a random account.
        if not plain:
            for i in self.chosen:
                self.do_deposit(asset=i, seed=True)

    # -- actions ----------------------------------------------------------------
    def _amount(self, dec: int, label: str) -> int:
        e = self.draw(st.integers(0, dec + 6), label + "_exp")
        m = self.draw(st.integers(1, 9_999), label + "_mant")
        return max(1, m * 10**e // 1_000)

    def _fraction(self, amount: int, label: str) -> int:
        """MAX (all), exactly `amount`, or a random fraction (up to 120%)."""
        c = self.draw(st.integers(0, 3), label + "_mode")
        if c == 0:
            return MAX_UINT
        if c == 1:
            return max(1, amount)
        return max(1, amount * self.draw(st.integers(1, 1_200), label + "_frac") // 1_000)

    def _exec(self, kind: str, engine_call, model_call, replay: bool = True) -> Outcome:
        out = Outcome(kind)
        try:
            out.model = model_call()
        except rm.VyperRevert as e:
            out.model_reason = e.reason
        try:
            out.engine = engine_call()
        except BoaError as e:
            out.engine_reason = revert_reason(e)
        else:
            out.logs = self._engine_logs()
            if replay:
                now, blk = self.now(), self.block()
                for name, fields in out.logs:
                    self.replay.apply_event(name, fields, now, blk)  # strict: indexes must match
        self.outcomes.append(out)
        event(f"{kind}: {'ok' if out.engine_reason is None else (out.model_reason or 'revert')}")
        assert (out.model_reason is None) == (out.engine_reason is None), (
            f"{kind}: model {out.model_reason or 'ok'} vs engine {out.engine_reason if out.engine_reason is not None else 'ok'}"
        )
        if out.model_reason is not None and out.engine_reason:
            # the engine's string reasons are modelled verbatim
            assert out.model_reason == out.engine_reason, kind
        return out

    def _engine_logs(self) -> list[tuple[str, dict]]:
        out = []
        for log in self.engine.get_logs():
            if hasattr(log, "_asdict") and str(log.address) == str(self.engine.address):
                out.append((type(log).__name__, log._asdict()))
        return out

    def step(self) -> None:
        kinds = [
            "deposit", "borrow", "borrow", "borrow", "withdraw", "repay", "transfer", "warp", "price", "crash",
            "tighten", "liquidate", "liquidate", "settle", "accrue",
        ]
        kind = self.draw(st.sampled_from(kinds), "action")
        getattr(self, "do_" + kind)()

    def _pick(self, side: str | None = None):
        """(user, sub, asset id): with side "deposit"/"debt", preferably a
        position that has it (so the action can succeed), else any."""
        if side is not None and self.draw(st.integers(0, 4), "targeted") != 0:
            held = []
            for user, sub in self.world.accounts:
                h = self.sim.account(user, sub).header
                bitmap = h.deposit_bitmap if side == "deposit" else h.debt_bitmap
                held += [(user, sub, i) for i in self.chosen if bitmap >> i & 1]
            if held:
                return self.draw(st.sampled_from(held), "position")
        user = self.draw(st.sampled_from(self.world.users), "user")
        sub = self.draw(st.sampled_from(SUBS), "sub")
        i = self.draw(st.sampled_from(self.chosen), "asset")
        return user, sub, i

    def deposit(self, user: str, sub: int, i: int, amount: int) -> Outcome:
        """One deposit, mirrored on the model (explicit target)."""
        now, blk = self.now(), self.block()

        def engine():
            with boa.env.prank(user):
                return self.engine.deposit(self.asset(i).address, amount, sub)

        out = self._exec("deposit", engine, lambda: self.sim.deposit(user, sub, i, amount, now, blk))
        if out.engine_reason is None:
            assert out.engine == out.model == out.event("Deposit")["shares"]
        return out

    def borrow(self, user: str, sub: int, i: int, amount: int) -> Outcome:
        """One borrow, mirrored on the model (explicit target)."""
        now, blk = self.now(), self.block()

        def engine():
            with boa.env.prank(user):
                return self.engine.borrow(self.asset(i).address, amount, sub)

        out = self._exec("borrow", engine, lambda: self.sim.borrow(user, sub, i, amount, now, blk, prices=self.prices()))
        if out.engine_reason is None:
            assert out.engine == out.model == out.event("Borrow")["shares"]
        return out

    def borrow_limit(self, user: str, sub: int, i: int) -> int:
        """The model's estimate of the largest borrow of asset `i` (flat
        weights): initial health / (unit price * lw_init), capped by liquidity."""
        now = self.now()
        h = self.sim.health(user, sub, self.prices(), now, kinds=1)
        q = rm.asset_price(self.sim.markets[i].risk, self.rounds[i], now)
        lw = rm.weights(self.sim.markets[i].risk, 0, rm.INITIAL, now)[1]
        room = max(0, h.collateral[0] - h.debt[0])
        est = room * WAD // max(1, q.price) * WAD // max(1, lw) if q.price else 0
        m = self.sim.markets[i]
        di, bi = m.indexes_now(now)
        liquidity = rm.mul_div_down(m.deposit_shares, di, WAD) - rm.mul_div_up(m.borrow_shares, bi, WAD)
        return max(0, min(est, liquidity))

    def liquidate(self, liquidator: str, user: str, sub: int, r: int, z: int, amount: int, min_seize: int) -> Outcome:
        """One liquidation, mirrored on the model (explicit target)."""
        now, blk = self.now(), self.block()
        ra, za = self.asset(r), self.asset(z)

        def engine():
            with boa.env.prank(liquidator):
                return self.engine.liquidate(user, sub, ra.address, amount, za.address, min_seize)

        def model():
            return self.sim.liquidate(liquidator, user, sub, r, amount, z, min_seize, self.prices(), now, blk, self.dust)

        out = self._exec("liquidate", engine, model)
        if out.engine_reason is None:
            repaid, seized, plan, repaid_shares, seized_shares = out.model
            assert tuple(out.engine) == (repaid, seized)
            ev = out.event("Liquidation")
            assert (ev["repaid"], ev["repaid_shares"], ev["seized"], ev["seized_shares"], ev["to_insurance"], ev["bonus"]) == (
                plan.repay, repaid_shares, plan.seize, seized_shares, plan.to_insurance, plan.bonus,
            )
        return out

    def do_deposit(self, asset: int | None = None, seed: bool = False) -> None:
        user, sub, i = self._pick()
        if asset is not None:
            i = asset
        a = self.asset(i)
        dec = ASSET_KINDS[i][0]
        if seed:  # liquidity: 10**2 .. 10**7 whole tokens
            amount = self.draw(st.integers(1, 99_999), "seed_mant") * 10 ** (dec + self.draw(st.integers(0, 3), "seed_exp"))
        else:
            amount = self._amount(dec, "deposit")
        now, blk = self.now(), self.block()

        def engine():
            with boa.env.prank(user):
                return self.engine.deposit(a.address, amount, sub)

        out = self._exec("deposit", engine, lambda: self.sim.deposit(user, sub, i, amount, now, blk))
        if out.engine_reason is None:
            assert out.engine == out.model == out.event("Deposit")["shares"]

    def do_borrow(self, near_max: bool = False) -> None:
        """A borrow; `near_max`: 90-100% of the model's estimate of the
        limit, of an asset the account does not deposit (if it can)."""
        user, sub, _ = self._pick("deposit")
        i = self.draw(st.sampled_from(self.chosen), "borrow_asset")
        if near_max:
            deposits = self.sim.account(user, sub).header.deposit_bitmap
            others = [j for j in self.chosen if not deposits >> j & 1]
            if others:
                i = self.draw(st.sampled_from(others), "borrow_other")
        a = self.asset(i)
        now, blk = self.now(), self.block()
        held_before = self.sim.account(user, sub).header.held_bitmap >> i & 1
        mode = 1 if near_max else self.draw(st.integers(0, 7), "borrow_mode")  # lens.max_borrow is slow: 1 in 8
        lens_max = None
        if mode == 0:
            # the lens's own limit (bisection on the engine's checks), or one more
            lens_max = self.p.lens.max_borrow(user, sub, a.address)
            amount = lens_max + self.draw(st.integers(0, 1), "borrow_plus")
        else:
            # an estimate from the model: initial health / (price * lw_init)
            h = self.sim.health(user, sub, self.prices(), now, kinds=1)
            q = rm.asset_price(self.sim.markets[i].risk, self.rounds[i], now)
            lw = rm.weights(self.sim.markets[i].risk, 0, rm.INITIAL, now)[1]
            room = max(0, h.collateral[0] - h.debt[0])
            est = room * WAD // max(1, q.price) * WAD // max(1, lw) if q.price else 0
            if near_max:
                # capped by the liquidity the model sees
                di, bi = self.sim.markets[i].indexes_now(now)
                m = self.sim.markets[i]
                room_tokens = rm.mul_div_down(m.deposit_shares, di, WAD) - rm.mul_div_up(m.borrow_shares, bi, WAD)
                amount = min(est, max(0, room_tokens)) * self.draw(st.integers(900, 1_000), "near_max") // 1_000
            else:
                amount = self._fraction(est, "borrow")
            if amount == MAX_UINT:
                amount = self._amount(ASSET_KINDS[i][0], "borrow_any")
        amount = max(1, amount)

        def engine():
            with boa.env.prank(user):
                return self.engine.borrow(a.address, amount, sub)

        out = self._exec("borrow", engine, lambda: self.sim.borrow(user, sub, i, amount, now, blk, prices=self.prices()))
        if lens_max and amount == lens_max and (held_before or self.prices()[i].valid):
            # (Not checked when the account does not hold the asset and its
            # price is rejected: lens.max_borrow ignores that price -- see
            # test_known_issues.py::test_lens_max_borrow_checks_the_borrowed_assets_price.)
            assert out.engine_reason is None, f"lens.max_borrow {lens_max} is not borrowable: {out.engine_reason}"
        if out.engine_reason is None:
            assert out.engine == out.model == out.event("Borrow")["shares"]

    def do_withdraw(self) -> None:
        user, sub, i = self._pick("deposit")
        a = self.asset(i)
        now, blk = self.now(), self.block()
        lens_max = None
        if self.draw(st.integers(0, 7), "withdraw_mode") == 0:
            lens_max = self.p.lens.max_withdraw(user, sub, a.address)
            amount = lens_max + self.draw(st.integers(0, 1), "withdraw_plus")
        else:
            pos = self.sim.account(user, sub).position(i)
            held = rm.mul_div_down(pos.deposit_shares, self.sim.markets[i].indexes_now(now)[0], WAD)
            amount = self._fraction(held, "withdraw")
        amount = max(1, amount)

        def engine():
            with boa.env.prank(user):
                return self.engine.withdraw(a.address, amount, sub)

        out = self._exec(
            "withdraw", engine, lambda: self.sim.withdraw(user, sub, i, amount, now, blk, prices=self.prices())
        )
        if lens_max and amount == lens_max:
            assert out.engine_reason is None, f"lens.max_withdraw {lens_max} is not withdrawable: {out.engine_reason}"
        if out.engine_reason is None:
            assert (out.engine, out.event("Withdraw")["shares"]) == out.model

    def do_repay(self) -> None:
        user, sub, i = self._pick("debt")
        a = self.asset(i)
        now, blk = self.now(), self.block()
        pos = self.sim.account(user, sub).position(i)
        debt = rm.mul_div_up(pos.borrow_shares, self.sim.markets[i].indexes_now(now)[1], WAD)
        amount = self._fraction(debt, "repay")

        def engine():
            with boa.env.prank(user):
                return self.engine.repay(a.address, amount, sub)

        out = self._exec("repay", engine, lambda: self.sim.repay(user, sub, i, amount, now, blk))
        if out.engine_reason is None:
            assert (out.engine, out.event("Repay")["shares"]) == out.model

    def do_transfer(self) -> None:
        user, sub, i = self._pick("deposit")
        to = 1 - sub
        a = self.asset(i)
        now, blk = self.now(), self.block()
        pos = self.sim.account(user, sub).position(i)
        held = rm.mul_div_down(pos.deposit_shares, self.sim.markets[i].indexes_now(now)[0], WAD)
        amount = self._fraction(held, "transfer")

        def engine():
            with boa.env.prank(user):
                return self.engine.transfer_collateral(a.address, amount, sub, to)

        out = self._exec(
            "transfer", engine, lambda: self.sim.transfer(user, sub, to, i, amount, now, blk, prices=self.prices())
        )
        if out.engine_reason is None:  # an extension function: results are in the event
            ev = out.event("TransferCollateral")
            assert (ev["shares"], ev["amount"]) == out.model

    def do_warp(self) -> None:
        seconds = self.draw(
            st.one_of(st.integers(1, 3600), st.integers(1, 30 * DAY), st.integers(1, 2 * 365 * DAY)), "warp"
        )
        boa.env.time_travel(seconds=seconds)
        if self.draw(st.integers(0, 3), "refresh") != 0:
            for i in self.chosen:
                self.asset(i).feed.set_answer(self.answers[i])
        self.read_rounds(self.chosen)

    def do_price(self) -> None:
        i = self.draw(st.sampled_from(self.chosen), "price_asset")
        feed = self.asset(i).feed
        mode = self.draw(st.integers(0, 9), "price_mode")
        if mode == 0:
            feed.set_answer(self.draw(st.integers(-2, 0), "bad_answer"))  # non-positive
        elif mode == 1:
            feed.set_round(self.answers[i], self.now(), 0)  # incomplete round
        else:
            factor = self.draw(st.integers(1, 4_000), "price_factor")  # x0.001 .. x4
            self.answers[i] = min(2**100, max(1, self.answers[i] * factor // 1_000))
            feed.set_answer(self.answers[i])  # may fall outside the answer bounds
        self.read_rounds([i])

    def do_liquidation_phase(self) -> None:
        """Borrow near the limit if nobody has debt, crash the weakest
        debtor's collateral, then try to liquidate it."""
        if self._debtor() is None:
            self.do_borrow(near_max=True)
        self.do_crash()
        self.do_liquidate()
        # an account left with debt and no collateral: bad debt to settle
        for account in self.world.accounts:
            h = self.sim.account(*account).header
            if h.debt_bitmap and not h.deposit_bitmap:
                self.do_settle(account)
                break

    def do_crash(self) -> None:
        """The prelude of a liquidation: the price of the weakest debtor's
        largest collateral falls (x0.01 .. x0.7, up to four times, until
        the model says the account is liquidatable), then a block passes."""
        pick = self._debtor(weakest=True)
        if pick is None:
            return self.do_price()
        acc = self.sim.account(*pick)
        for n in range(4):
            now, prices = self.now(), self.prices()
            ids = [i for i in self.chosen if acc.header.deposit_bitmap >> i & 1]
            if not ids:
                break
            i = max(ids, key=lambda j: rm.contribution(
                self.sim.markets[j].risk, 0, prices[j].price,
                rm.mul_div_down(acc.position(j).deposit_shares, self.sim.markets[j].deposit_index, WAD), 0, rm.VALUE, now,
            )[0])
            # (kept inside the answer bounds: an out-of-bounds price blocks liquidations)
            crashed = self.answers[i] * self.draw(st.integers(10, 700), f"crash_factor{n}") // 1_000
            self.answers[i] = max(self.bounds[i][0], crashed)
            self.asset(i).feed.set_answer(self.answers[i])
            self.read_rounds([i])
            if self.sim.health(*pick, self.prices(), now, kinds=2).maintenance < 0:
                break
        boa.env.time_travel(seconds=12)
        self.read_rounds(self.chosen)

    def do_tighten(self) -> None:
        """Lower aw_maint / raise lw_maint: the configurator starts a ramp."""
        i = self.draw(st.sampled_from(self.chosen), "tighten_asset")
        p = rm.unpack_risk(self.sim.markets[i].risk)
        aw_m = self.draw(st.integers(p.asset_weight_initial // rm.BPS_TO_WAD, p.asset_weight_maintenance // rm.BPS_TO_WAD), "aw_m")
        lw_m = self.draw(st.integers(p.liability_weight_maintenance // rm.BPS_TO_WAD, p.liability_weight_initial // rm.BPS_TO_WAD), "lw_m")
        params = (
            p.asset_weight_initial, aw_m * rm.BPS_TO_WAD, p.liability_weight_initial, lw_m * rm.BPS_TO_WAD,
            p.max_staleness, p.imf, p.min_answer, p.max_answer,
        )
        with boa.env.prank(self.p.owner):
            self.p.configurator.set_risk_params(self.asset(i).address, params)
        self.refresh_config(i)

    def do_accrue(self) -> None:
        i = self.draw(st.sampled_from(self.chosen), "accrue_asset")
        now = self.now()
        out = self._exec("accrue", lambda: self.engine.accrue(self.asset(i).address), lambda: self.sim.accrue(i, now))
        if out.engine_reason is None:
            ev = out.event("InterestAccrued")
            assert (ev["deposit_index"], ev["borrow_index"]) == out.model

    def _debtor(self, weakest: bool = False):
        """An account with debt; with `weakest`, usually the one with the
        lowest maintenance health in the model (the liquidation candidate)."""
        debtors = [a for a in self.world.accounts if self.sim.account(*a).header.debt_bitmap]
        if not debtors:
            return None
        if weakest and self.draw(st.integers(0, 3), "weakest") != 0:
            prices, now = self.prices(), self.now()
            return min(debtors, key=lambda a: self.sim.health(*a, prices, now, kinds=2).maintenance)
        return self.draw(st.sampled_from(debtors), "debtor")

    def do_liquidate(self) -> None:
        pick = self._debtor(weakest=True)
        if pick is None:
            return
        user, sub = pick
        acc = self.sim.account(user, sub)
        debt_ids = [i for i in self.chosen if acc.header.debt_bitmap >> i & 1]
        dep_ids = [i for i in self.chosen if acc.header.deposit_bitmap >> i & 1] or self.chosen
        r = self.draw(st.sampled_from(debt_ids), "repay_asset")
        z = self.draw(st.sampled_from(dep_ids), "seize_asset")
        now, blk = self.now(), self.block()
        debt = rm.mul_div_up(acc.position(r).borrow_shares, self.sim.markets[r].indexes_now(now)[1], WAD)
        amount = self._fraction(debt, "liq")
        liquidator = self.draw(st.sampled_from([self.world.liquidator, self.world.liquidator, *self.world.users]), "liquidator")
        ra, za = self.asset(r), self.asset(z)

        def engine():
            with boa.env.prank(liquidator):
                return self.engine.liquidate(user, sub, ra.address, amount, za.address, 0)

        def model():
            return self.sim.liquidate(liquidator, user, sub, r, amount, z, 0, self.prices(), now, blk, self.dust)

        out = self._exec("liquidate", engine, model)
        if out.engine_reason is None:
            repaid, seized, plan, repaid_shares, seized_shares = out.model
            assert tuple(out.engine) == (repaid, seized)
            ev = out.event("Liquidation")
            assert (ev["repaid"], ev["repaid_shares"], ev["seized"], ev["seized_shares"], ev["to_insurance"], ev["bonus"]) == (
                plan.repay, repaid_shares, plan.seize, seized_shares, plan.to_insurance, plan.bonus,
            )

    def do_settle(self, pick=None) -> None:
        pick = pick or self._debtor()
        if pick is None:
            return
        user, sub = pick
        now = self.now()
        held = self.sim.account(user, sub).header.held_ids()
        balances = {i: self.asset(i).token.balanceOf(self.engine.address) for i in held}
        out = self._exec(
            "settle",
            lambda: self.engine.settle_bad_debt(user, sub),
            lambda: self.sim.settle_bad_debt(user, sub, self.prices(), balances, now, self.dust),
        )
        if out.engine_reason is None:
            assert [n for n, _ in out.logs] == [n for n, _ in out.model]
            fields = [(n, {k: f[k] for k in m}) for (n, m), (_, f) in zip(out.model, out.logs, strict=True)]
            assert fields == out.model

    # -- checks -------------------------------------------------------------------
    def rebuild(self) -> rm.ProtocolReplica:
        """A replica built from the engine's raw getters only."""
        e = self.engine
        assert e.asset_count() == len(self.world.assets)
        # Only the chosen assets were touched (the others are checked unchanged
        # through the simulated replica, whose words were read at the start).
        rep = rm.ProtocolReplica(self.sim.markets[i].to_asset_state() for i in range(len(self.world.assets)))
        for i in self.chosen:
            rep.add_market(e.asset_state(i))
        for user, sub in self.world.accounts:
            header = rm.AccountHeader.from_tuple(e.account_header(user, sub))
            assert header.held_bitmap & ~sum(1 << i for i in self.chosen) == 0
            positions = {}
            for i in header.held_ids():
                pos = rm.Position.from_tuple(e.position(user, sub, self.asset(i).address))
                # a bitmap bit is set exactly when that side is non-zero
                assert (pos.deposit_shares != 0) == bool(header.deposit_bitmap >> i & 1)
                assert (pos.borrow_shares != 0) == bool(header.debt_bitmap >> i & 1)
                positions[i] = pos
            rep.set_account(user, sub, header, positions)
        return rep

    @staticmethod
    def assert_same_state(a: rm.ProtocolReplica, b: rm.ProtocolReplica, accounts) -> None:
        assert {i: m.to_asset_state() for i, m in a.markets.items()} == {i: m.to_asset_state() for i, m in b.markets.items()}
        for user, sub in accounts:
            x, y = a.account(user, sub), b.account(user, sub)
            assert (x.header, x.positions) == (y.header, y.positions), (user, sub)

    def check_against_engine(self, views: bool = True) -> rm.ProtocolReplica:
        """Model (rebuilt from raw getters) == engine.health, lens.healths,
        lens.balances, lens.market; simulated replica == rebuilt replica."""
        now = self.now()
        rebuilt = self.rebuild()
        self.assert_same_state(self.sim, rebuilt, self.world.accounts)
        self.read_rounds(self.chosen)
        prices = self.prices(rebuilt)
        healths = {}
        for user, sub in self.world.accounts:
            acc = rebuilt.account(user, sub)
            h = rm.account_health(acc.positions, rebuilt.markets, prices, now, header=acc.header)
            healths[(user, sub)] = h
            assert self.engine.health(user, sub) == (h.initial, h.maintenance, h.prices_valid), (user, sub)
        if not views:
            return rebuilt
        lens = self.p.lens
        holders = [a for a in self.world.accounts if rebuilt.account(*a).header.held_bitmap]
        got = lens.healths(holders)
        for (user, sub), v in zip(holders, got, strict=True):
            h = healths[(user, sub)]
            assert tuple(v) == (h.initial, h.maintenance, h.liquidation_end, h.ratio, h.prices_valid), (user, sub)
        # The other views, each in about half of the examples (they are the
        # slowest calls): balances of one account holding something, market
        # of one chosen asset, liquidation preview of one debtor.
        views = self.draw(st.integers(0, 3), "lens_views")
        if holders and views & 1:
            user, sub = self.draw(st.sampled_from(holders), "balances_account")
            model = [_row(b) for b in rebuilt.account(user, sub).balances(rebuilt.markets, now)]
            assert [_row(b) for b in lens.balances(user, sub)] == model, (user, sub)
        if views & 2:
            i = self.draw(st.sampled_from(self.chosen), "market_asset")
            a = self.asset(i)
            mv = rm.market_view(rebuilt.markets[i], prices[i], now, a.token.balanceOf(self.engine.address))
            assert _row(lens.market(a.address)) == _row(mv)
        debtors = [x for x in self.world.accounts if rebuilt.account(*x).header.debt_bitmap]
        if debtors and views in (0, 3):
            if self.draw(st.booleans(), "preview_weakest"):
                user, sub = min(debtors, key=lambda x: healths[x].maintenance)
            else:
                user, sub = self.draw(st.sampled_from(debtors), "preview_account")
            hdr = rebuilt.account(user, sub).header
            r = self.draw(st.sampled_from([j for j in self.chosen if hdr.debt_bitmap >> j & 1]), "preview_repay")
            z = self.draw(st.sampled_from(self.chosen), "preview_seize")
            try:
                model = rebuilt.preview_liquidation(user, sub, r, z, prices, now, self.dust)
            except rm.VyperRevert:
                model = None
            try:
                got = tuple(lens.preview_liquidation(user, sub, self.asset(r).address, self.asset(z).address))
            except BoaError:
                got = None
            assert got == model, (user, sub, r, z)
        return rebuilt


def _row(x) -> tuple:
    """A struct (boa) or dataclass (model) as a tuple, addresses lower-cased."""
    t = dataclasses.astuple(x) if dataclasses.is_dataclass(x) else tuple(x)
    return tuple(v.lower() if isinstance(v, str) else v for v in t)
