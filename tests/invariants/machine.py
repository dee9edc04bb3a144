"""The base invariant machine: action wrappers that run each action on the
contracts and, beside them, on a Python reference model, and the named
invariants that compare the two and check the protocol's promises.

Reference model: `keeper.risk_model.ProtocolReplica` (the keeper's
bit-exact replica: accrual, share rounding, bitmaps, health of every kind,
liquidation plan, bad-debt settlement) plus the engine's token balances and
the feeds' rounds, kept here. Every wrapper first asks the model what the
action does: a predicted revert is asserted with its exact reason
(`boa.reverts(reason)`), a predicted success must return exactly the
model's result. Nothing is wrapped in try/except: the only exception caught
is the model's own `VyperRevert`, which *is* the prediction.

Wrappers record "last step" facts (`Step`); invariants (one @invariant
method each, named after what it protects) assert them after every rule,
together with state checks against the chain. The chain is read only where
the last step wrote (`dirty_*`), so a step costs a few milliseconds.

Rules live in the subclasses (tests/invariants/test_stateful.py).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import dataclasses
import os
from dataclasses import dataclass, field

import boa
from hypothesis import event
from hypothesis.control import _current_build_context
from hypothesis.stateful import RuleBasedStateMachine, invariant

from keeper import risk_model as rm
from tests.invariants import steps
from tests.invariants.world import World
from tests.protocol import MAX_UINT

WAD = rm.WAD
ORACLE_REASONS = frozenset(
    {
        "oracle: feed call failed",
        "oracle: non-positive price",
        "oracle: price out of bounds",
        "oracle: incomplete round",
        "oracle: stale price",
    }
)
# Reasons deposit and repay may legitimately revert with (none depends on a feed).
DEPOSIT_REASONS = frozenset(
    {"pause: deposit paused", "deposit: zero amount", "deposit: amount below one share", "cap: supply cap exceeded"}
)
REPAY_REASONS = frozenset({"repay: zero amount", "repay: no debt", "repay: amount below one share"})
# Every n-th step of an example compares the slow views (py-evm) with the model.
HEALTH_PERIOD = 4  # engine.health of the touched accounts
LENS_PERIOD = 9  # lens.healths of the touched accounts
VIEW_PERIOD = 13  # lens.market / balances / preview_liquidation
# Steps after which an account may have become unhealthy.
RISK_STEPS = frozenset({"price", "warp", "stale", "ramp", "liquidate", "flash_liquidate"})


# keeper.risk_model.recently_stale walks back over rounds (round_data
# callback) since the liquidation fixes; before, it took the previous round.
_WALKING_GRACE = "round_data" in inspect.signature(rm.recently_stale).parameters
_SETTLE_WAITS_FOR_GRACE = "recently_stale_ids" in inspect.signature(rm.ProtocolReplica.settle_bad_debt).parameters


def _revert_reason(e: "boa.BoaError") -> str:
    """The revert reason of a failed engine call, as boa reports it."""
    frame = e.stack_trace.last_frame
    return frame if isinstance(frame, str) else (frame.pretty_vm_reason or str(frame.error_detail))


def _plain(result):
    """An engine call's result as plain values (a boa tuple as a tuple)."""
    return tuple(result) if isinstance(result, (tuple, list)) else result


def _row(x) -> tuple:
    """A struct (boa) or dataclass (model) as a tuple, addresses lower-cased."""
    t = dataclasses.astuple(x) if dataclasses.is_dataclass(x) else tuple(x)
    return tuple(v.lower() if isinstance(v, str) else v for v in t)


def current_build_context_or_none():
    """hypothesis's build context (None when a regression test drives the
    machine as plain code)."""
    return _current_build_context.value


def predict(model_call):
    """(result, None) when the model says the action succeeds, (None,
    reason) when it says the action reverts (the replica is left as before)."""
    try:
        return model_call(), None
    except rm.VyperRevert as e:
        return None, e.reason


@dataclass
class Step:
    """Facts about the last rule, asserted by the invariants."""

    kind: str = "init"
    account: tuple[str, int] | None = None
    reason: str | None = None  # None: succeeded (or no action)
    healths_before: dict = field(default_factory=dict)  # account -> rm.Health
    indexes_before: dict = field(default_factory=dict)  # asset id -> (stored di, stored bi)
    fund_before: dict = field(default_factory=dict)  # asset id -> insurance fund (token units)
    facts: dict = field(default_factory=dict)


def _triage_skips() -> frozenset[str]:
    """XMARGIN_SKIP_INVARIANTS=name,name (or XMARGIN_ONLY_INVARIANTS=...):
    local triage only, e.g. to look past a known bug while another branch
    fixes it, or to shrink one invariant's failure faster; never set in CI."""
    return frozenset(filter(None, os.environ.get("XMARGIN_SKIP_INVARIANTS", "").split(",")))


def named_invariant():
    """@invariant() that honours the local triage switch."""

    def wrap(fn):
        skips = _triage_skips()
        only = frozenset(filter(None, os.environ.get("XMARGIN_ONLY_INVARIANTS", "").split(",")))
        if fn.__name__ in skips or (only and fn.__name__ not in only):
            return invariant()(lambda self: None)
        if KEEP_GOING:
            return invariant()(_judging_contract_state(fn))
        return invariant()(fn)

    return wrap


# ---------------------------------------------------------------------------
# Mutation attribution only (tools/mutation, docs/mutation.md): never set in
# CI. XMARGIN_KEEP_GOING=1 lets the machine go on past a rule-level result
# check that fails (the contract's outcome or result differs from the
# model's): the step takes the contract's outcome (revert reason or
# success), and before each invariant the model adopts the contract's state
# (market words, every account's header and positions, and the engine's
# token balances; after a differing step also the wallets), except the side
# the running invariant itself compares with the contract. Each invariant
# then judges the contract's state instead of stopping at the first
# difference. Used with XMARGIN_ONLY_INVARIANTS=<one name> to learn which
# invariant catches a mutant. Without the switch nothing here runs.
KEEP_GOING = os.environ.get("XMARGIN_KEEP_GOING") == "1"
# Invariant -> what it compares with the contract (not adopted while it runs).
_OWN_REFERENCE = {
    "reference_model_matches_contract_storage": "storage",
    "engine_token_balance_matches_token_flows": "balances",
}


def _judging_contract_state(fn):
    def judged(self):
        self._adopt_contract_state(_OWN_REFERENCE.get(fn.__name__))
        fn(self)

    judged.__name__ = f"judged_{fn.__name__}"
    return judged


class MarginMachine(RuleBasedStateMachine):
    """Drives one World; subclasses add rules. `world` is set by the test."""

    world: World = None  # type: ignore[assignment]

    def __init__(self):
        super().__init__()
        w = self.world
        self.w = w
        self.engine = w.engine
        self.n = len(w.assets)
        self.model = rm.ProtocolReplica(w.baseline)
        self.balances = dict(w.balances)
        self.wallets = dict(w.wallets)  # (actor address, asset id) -> token balance
        self.rounds = dict(w.rounds)  # asset id -> (previous, latest) RoundData
        self.history = {i: {latest.round_id: latest} for i, (_prev, latest) in w.rounds.items()}
        self.answers = {i: latest.answer for i, (_prev, latest) in w.rounds.items()}
        self.dust, self.grace, self.paused_until = w.settings
        self.socialised = {a.id: 0 for a in w.assets}  # cumulated deposit-index cuts (WAD)
        self.last = Step()
        self.dirty_assets: set[int] = set(range(self.n))
        self.dirty_accounts: set[tuple[str, int]] = set()
        self.dirty_wallets: set[tuple[str, int]] = set()
        self._prices = None
        self._chain_cache = None
        # The contract's own books, as last read by chain(): positions per
        # account and (deposit, borrow) share totals per asset. The share-sum
        # invariants compare the contract with itself, not with the model.
        self.chain_positions: dict[tuple[str, int], dict[int, rm.Position]] = {}
        self.chain_totals: dict[int, tuple[int, int]] = {}
        self.step_index = 0

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    def now() -> int:
        return boa.env.timestamp

    @staticmethod
    def block() -> int:
        return boa.env.evm.patch.block_number

    def asset(self, i: int):
        return self.w.assets[i]

    def actor(self, role: str) -> str:
        return self.w.actors[role]

    def prices(self) -> dict[int, rm.PriceQuote]:
        if self._prices is None or self._prices[0] != self.now():
            now = self.now()
            quotes = {i: rm.asset_price(self.model.markets[i].risk, self.rounds[i][1], now) for i in range(self.n)}
            self._prices = (now, quotes)
        return self._prices[1]

    def round_data(self, i: int, round_id: int) -> rm.RoundData:
        """getRoundData of asset i's feed (rounds never change once published)."""
        history = self.history.setdefault(i, {})
        if round_id not in history:
            history[round_id] = rm.RoundData.from_tuple(self.asset(i).feed.getRoundData(round_id))
        return history[round_id]

    def recently_stale_ids(self) -> list[int]:
        """Assets whose feed is inside the liquidation price grace period."""
        if self.grace == 0:
            return []
        now = self.now()
        out = []
        for i in range(self.n):
            latest = self.rounds[i][1]
            stale_after = rm.max_staleness(self.model.markets[i].risk)
            if _WALKING_GRACE:
                hit = rm.recently_stale(latest, lambda rid, i=i: self.round_data(i, rid), stale_after, self.grace, now)
            else:
                hit = rm.recently_stale(latest, self.rounds[i][0], stale_after, self.grace, now)
            if hit:
                out.append(i)
        return out

    def health(self, account, kinds: int = rm.ALL_KINDS) -> rm.Health:
        return self.model.health(*account, self.prices(), self.now(), kinds=kinds)

    def held_accounts(self) -> list[tuple[str, int]]:
        return [k for k, acc in self.model.accounts.items() if acc.header.held_bitmap]

    def debtors(self) -> list[tuple[str, int]]:
        return [k for k, acc in self.model.accounts.items() if acc.header.debt_bitmap]

    def chain_debts(self) -> dict:
        """Every debtor's debts accrued to now, as the contract reports them:
        account -> {asset address: token units} (lens.balances, rounded up)."""
        return {a: {str(b.asset).lower(): b.borrow for b in self.w.lens.balances(*a) if b.borrow} for a in self.debtors()}

    def debt_of(self, account, i: int) -> int:
        """Debt in asset i accrued to now, token units (rounded up)."""
        shares = self.model.account(*account).position(i).borrow_shares
        return rm.mul_div_up(shares, self.model.markets[i].indexes_now(self.now())[1], WAD)

    def deposit_of(self, account, i: int) -> int:
        """Deposit in asset i at the stored index, token units (rounded down)."""
        shares = self.model.account(*account).position(i).deposit_shares
        return rm.mul_div_down(shares, self.model.markets[i].deposit_index, WAD)

    def fund(self, i: int) -> int:
        """Insurance fund of asset i at the stored indexes: token balance -
        deposits + borrows (token units; the engine's settle definition)."""
        m = self.model.markets[i]
        return (
            self.balances[i]
            - rm.mul_div_down(m.deposit_shares, m.deposit_index, WAD)
            + rm.mul_div_up(m.borrow_shares, m.borrow_index, WAD)
        )

    def units_for_usd(self, i: int, usd: int) -> int:
        """Token units worth about `usd` dollars at the last published answer."""
        fdec = rm.feed_decimals(self.model.markets[i].risk)
        return max(1, usd * 10**fdec * 10 ** self.asset(i).decimals // max(1, self.answers[i]))

    def wallet(self, who: str, i: int) -> int:
        return self.wallets[(who, i)]

    def move(self, i: int, frm: str | None, to: str | None, amount: int) -> None:
        """Books a token transfer between a wallet and the engine (None)."""
        if frm is None:
            self.balances[i] -= amount
        else:
            self.wallets[(frm, i)] = self.wallet(frm, i) - amount
            self.dirty_wallets.add((frm, i))
        if to is None:
            self.balances[i] += amount
        else:
            self.wallets[(to, i)] = self.wallet(to, i) + amount
            self.dirty_wallets.add((to, i))

    def snapshot(self):
        """A cheap copy of the model's mutable state (market words are ints,
        headers and positions immutable values)."""
        markets = {i: copy.copy(m) for i, m in self.model.markets.items()}
        accounts = {k: (a.header, dict(a.positions)) for k, a in self.model.accounts.items()}
        return markets, accounts

    def restore(self, snap) -> None:
        markets, accounts = snap
        self.model.markets = markets
        for k in list(self.model.accounts):
            if k not in accounts:
                del self.model.accounts[k]
        for k, (header, positions) in accounts.items():
            acc = self.model.accounts[k]
            acc.header, acc.positions = header, positions

    @contextlib.contextmanager
    def scratch(self):
        """Runs a what-if on the model and puts it back afterwards."""
        snap = self.snapshot()
        try:
            yield self.model
        finally:
            self.restore(snap)

    # -------------------------------------------------------------- step life
    def begin(self, kind: str, account=None, asset: int | None = None) -> Step:
        """Starts a rule: counts the step, snapshots what invariants compare."""
        steps.count()
        self.step_index += 1
        self.dirty_assets = set()
        self.dirty_accounts = set()
        self.dirty_wallets = set()
        self._chain_cache = None
        now = self.now()
        healths = {a: self.health(a) for a in self.held_accounts()}
        indexes = {i: (m.deposit_index, m.borrow_index) for i, m in self.model.markets.items()}
        funds = {i: self.fund(i) for i in range(self.n)}
        self.last = Step(kind, account, None, healths, indexes, funds, {"now": now, "asset": asset})
        return self.last

    def touch(self, assets=(), accounts=()) -> None:
        self.dirty_assets.update(assets)
        self.dirty_accounts.update(accounts)

    def expect(self, model_call, engine_call, allowed: frozenset | None = None):
        """Runs one action: the model's prediction, then the engine, which
        must revert with exactly the predicted reason or return exactly the
        predicted result. Returns (model result, engine result), or
        (None, None) after a predicted revert."""
        expected, reason = predict(model_call)
        self.last.reason = reason
        self.last.facts["expected"] = expected
        if current_build_context_or_none() is not None:
            event(f"{self.last.kind}: {reason or 'ok'}")
        if reason is not None and allowed is not None:
            assert reason in allowed, f"{self.last.kind} reverted with {reason!r}"
        if KEEP_GOING:
            return self._expect_keep_going(expected, reason, engine_call)
        if reason is not None:
            with boa.reverts(reason):
                engine_call()
            self.last.facts["chain_result"] = (None, reason)
            return None, None
        got = engine_call()
        self.last.facts["chain_result"] = (_plain(got), None)
        return expected, got

    def agree(self, same: bool, what) -> None:
        """A rule's result check: the contract's result equals the model's
        (an AssertionError otherwise; XMARGIN_KEEP_GOING: recorded, and the
        step goes on with the contract's state)."""
        if same:
            return
        if KEEP_GOING:
            self.last.facts["diverged"] = ("result", what)
            return
        raise AssertionError(what)

    # ------------------------------------------- XMARGIN_KEEP_GOING (never in CI)
    def _expect_keep_going(self, expected, reason, engine_call):
        """`expect` under XMARGIN_KEEP_GOING: a differing outcome becomes the
        step's outcome (the contract's revert reason, or None on success);
        the wrapper then books nothing and the invariants see the contract's
        state (`_adopt_contract_state`)."""
        try:
            got, got_reason = engine_call(), None
        except boa.BoaError as e:
            got, got_reason = None, _revert_reason(e)
        self.last.facts["chain_result"] = (_plain(got), got_reason)
        if got_reason == reason:
            return (expected, got) if reason is None else (None, None)
        f = self.last.facts
        f["diverged"] = ("outcome", reason, got_reason)
        self.last.reason = got_reason
        f.pop("without_accrue", None)  # a model prediction against a contract outcome
        self.dirty_assets = set(range(self.n))
        if self.last.account is not None:
            self.dirty_accounts.add(self.last.account)
        i = f.get("asset")
        if got_reason is None and i is not None:
            # What the wrapper records after a success it would have booked.
            if self.last.kind in ("deposit", "borrow"):
                f["cap_check"] = ("supply" if self.last.kind == "deposit" else "borrow", i)
            if self.last.kind in ("withdraw", "borrow"):
                f["liquidity_check"] = i
        return None, None

    def _adopt_contract_state(self, own_reference: str | None) -> None:
        """The model takes the contract's state (once per step), except the
        running invariant's own reference (`_OWN_REFERENCE`)."""
        if getattr(self, "_adopted_step", None) == self.step_index:
            return
        self._adopted_step = self.step_index
        diverged = "diverged" in self.last.facts
        e = self.engine
        if own_reference != "storage" or diverged:
            for i in range(self.n):
                self.model.markets[i] = rm.MarketReplica.from_asset_state(rm.AssetState.from_tuple(e.asset_state(i)))
            accounts = set(self.model.accounts) | ({self.last.account} if self.last.account else set())
            for owner, sub in sorted(accounts):
                header, positions = self._read_account(owner, sub)
                acc = self.model.account(owner, sub)
                acc.header, acc.positions = header, {i: p for i, p in positions.items() if not p.is_empty}
            self._prices = None
        if own_reference != "balances" or diverged:
            for i in range(self.n):
                self.balances[i] = self.asset(i).token.balanceOf(e.address)
        if diverged:
            for who, i in list(self.wallets):
                self.wallets[(who, i)] = self.asset(i).token.balanceOf(who)
        f = self.last.facts
        f.pop("healths_after", None)
        if self.last.kind in ("liquidate", "flash_liquidate") and "after" in f:
            f["after"] = self.health(self.last.account)

    # ------------------------------------------------------------ action wrappers
    def do_deposit(self, role: str, sub: int, i: int, amount: int, accrue_first: bool = False):
        who = self.actor(role)
        self.begin("deposit", (who, sub), i)
        a = self.asset(i)
        now, blk = self.now(), self.block()
        # An actor deposits what its wallet holds at most (after deep price
        # crashes a USD-sized amount can exceed any wallet; the model does
        # not predict the token's own "insufficient balance" revert).
        amount = min(amount, self.wallet(who, i))

        def engine():
            with boa.env.prank(who):
                return self.engine.deposit(a.address, amount, sub)

        if accrue_first:
            self._accrue_first(i, lambda m: m.deposit(who, sub, i, amount, now, blk), engine)

        expected, got = self.expect(lambda: self.model.deposit(who, sub, i, amount, now, blk), engine, DEPOSIT_REASONS)
        self.last.facts["feeds_valid"] = all(q.valid for q in self.prices().values())
        if got is not None:
            self.agree(got == expected, (got, expected))
            self.move(i, who, None, amount)
            self.touch([i], [(who, sub)])
            self.last.facts["cap_check"] = ("supply", i)
        return got

    def do_withdraw(self, role: str, sub: int, i: int, amount: int, accrue_first: bool = False):
        who = self.actor(role)
        self.begin("withdraw", (who, sub), i)
        a = self.asset(i)
        now, blk, prices = self.now(), self.block(), self.prices()

        def engine():
            with boa.env.prank(who):
                return self.engine.withdraw(a.address, amount, sub)

        if accrue_first:
            self._accrue_first(i, lambda m: m.withdraw(who, sub, i, amount, now, blk, prices=prices), engine)

        expected, got = self.expect(lambda: self.model.withdraw(who, sub, i, amount, now, blk, prices=prices), engine)
        if got is not None:
            sent, _shares = expected
            self.agree(got == sent, (got, sent))
            self.move(i, None, who, sent)
            self.touch([i], [(who, sub)])
            self.last.facts["liquidity_check"] = i
        return got

    def do_donate(self, role: str, i: int, amount: int):
        """A plain token transfer to the engine, outside its accounting (the
        donation of Hundred 2023 / Sonne 2024 / Euler 2023): the engine's
        books must not move; the insurance fund (balance - deposits +
        borrows) absorbs it, so the pool holds more cash than its books."""
        who = self.actor(role)
        self.begin("donate", None, i)
        amount = min(amount, self.wallet(who, i))
        if amount == 0:
            return
        with boa.env.prank(who):
            self.asset(i).token.transfer(self.engine.address, amount)
        self.move(i, who, None, amount)
        self.touch([i])

    def do_borrow(self, role: str, sub: int, i: int, amount: int, accrue_first: bool = False):
        who = self.actor(role)
        self.begin("borrow", (who, sub), i)
        a = self.asset(i)
        now, blk, prices = self.now(), self.block(), self.prices()

        def engine():
            with boa.env.prank(who):
                return self.engine.borrow(a.address, amount, sub)

        if accrue_first:
            self._accrue_first(i, lambda m: m.borrow(who, sub, i, amount, now, blk, prices=prices), engine)

        expected, got = self.expect(lambda: self.model.borrow(who, sub, i, amount, now, blk, prices=prices), engine)
        if got is not None:
            self.agree(got == expected, (got, expected))
            self.move(i, None, who, amount)
            self.touch([i], [(who, sub)])
            self.last.facts["cap_check"] = ("borrow", i)
            self.last.facts["liquidity_check"] = i
        return got

    def do_repay(self, role: str, owner_role: str, sub: int, i: int, amount: int, accrue_first: bool = False):
        """`role` repays the debt of (`owner_role`, sub): anyone may repay."""
        payer, owner = self.actor(role), self.actor(owner_role)
        self.begin("repay", (owner, sub), i)
        a = self.asset(i)
        now, blk = self.now(), self.block()
        if min(amount, self.debt_of((owner, sub), i)) > self.wallet(payer, i):
            # A payer repays what its wallet holds at most (after deep
            # crashes and donations a wallet can run short; the model does
            # not predict the token's own "insufficient balance" revert).
            amount = self.wallet(payer, i)

        def engine():
            with boa.env.prank(payer):
                return self.engine.repay(a.address, amount, sub, owner)

        if accrue_first:
            self._accrue_first(i, lambda m: m.repay(owner, sub, i, amount, now, blk), engine)

        expected, got = self.expect(lambda: self.model.repay(owner, sub, i, amount, now, blk), engine, REPAY_REASONS)
        self.last.facts["feeds_valid"] = all(q.valid for q in self.prices().values())
        if got is not None:
            paid, _shares = expected
            self.agree(got == paid, (got, paid))
            self.move(i, payer, None, paid)
            self.touch([i], [(owner, sub)])
        return got

    def do_transfer(self, role: str, sub: int, to_sub: int, i: int, amount: int):
        who = self.actor(role)
        self.begin("transfer", (who, sub))
        a = self.asset(i)
        now, blk, prices = self.now(), self.block(), self.prices()

        def engine():
            with boa.env.prank(who):
                self.engine.transfer_collateral(a.address, amount, sub, to_sub)
            return self._event("TransferCollateral")

        expected, got = self.expect(lambda: self.model.transfer(who, sub, to_sub, i, amount, now, blk, prices=prices), engine)
        if got is not None:
            self.agree((got["shares"], got["amount"]) == expected, (got, expected))
            self.touch([i], [(who, sub), (who, to_sub)])
        return got

    def do_batch(self, role: str, sub: int, actions: list[tuple[int, int, int, int]]):
        """actions: (kind, asset id, amount, to_sub) run in order on one
        sub-account, one initial-health check at the end."""
        who = self.actor(role)
        self.begin("batch", (who, sub))
        now, blk, prices = self.now(), self.block(), self.prices()

        def model():
            snapshot = self.snapshot()
            try:
                flows, check = [], False
                for kind, i, amount, to_sub in actions:
                    if kind == 0:
                        self.model.deposit(who, sub, i, amount, now, blk)
                        flows.append((i, who, None, amount))
                    elif kind == 1:
                        sent, _ = self.model.withdraw(who, sub, i, amount, now, blk)
                        check = check or self.model.account(who, sub).header.debt_bitmap != 0
                        flows.append((i, None, who, sent))
                    elif kind == 2:
                        self.model.borrow(who, sub, i, amount, now, blk)
                        check = True
                        flows.append((i, None, who, amount))
                    elif kind == 3:
                        paid, _ = self.model.repay(who, sub, i, amount, now, blk)
                        flows.append((i, who, None, paid))
                    else:
                        self.model.transfer(who, sub, to_sub, i, amount, now, blk)
                        check = check or self.model.account(who, sub).header.debt_bitmap != 0
                if check:
                    self.model.require_initial_health(who, sub, prices, now)
                return flows
            except rm.VyperRevert:
                self.restore(snapshot)
                raise

        def engine():
            structs = [(k, self.asset(i).address, amount, who, to_sub) for k, i, amount, to_sub in actions]
            with boa.env.prank(who):
                self.engine.batch(structs, sub)
            return True

        flows, got = self.expect(model, engine)
        if got is not None:
            for i, frm, to, amount in flows:
                self.move(i, frm, to, amount)
            ids = {i for _, i, _, _ in actions}
            self.touch(ids, [(who, sub)] + [(who, t) for k, _, _, t in actions if k == 4])
            self.last.facts["liquidity_check"] = ids
        return got

    def _accrue_first(self, i: int, model_call, engine_call) -> None:
        """Accrues asset i on both sides before the action, after recording
        what the model predicts without it, and what the engine does without
        it (run in a rolled-back anchor; `accrue_first_never_changes_results`)."""
        with self.scratch() as shadow:
            self.last.facts["without_accrue"] = predict(lambda: model_call(shadow))
        with boa.env.anchor():
            try:
                self.last.facts["chain_without_accrue"] = (_plain(engine_call()), None)
            except boa.BoaError as e:
                self.last.facts["chain_without_accrue"] = (None, _revert_reason(e))
        self.model.accrue(i, self.now())
        self.engine.accrue(self.asset(i).address)
        self.last.facts["accrue_asset"] = i
        self.last.facts["model_call"] = model_call
        self.touch([i])

    def do_liquidate(self, liquidator_role: str | None, account, r: int, z: int, amount: int, flash: bool = False):
        owner, sub = account
        if flash:
            liquidator = self.w.flash.address
        else:
            liquidator = self.actor(liquidator_role)
        step = self.begin("flash_liquidate" if flash else "liquidate", account)
        now, blk, prices = self.now(), self.block(), self.prices()
        before = self.health(account)
        step.facts.update(
            before=before, debt_r=self.debt_of(account, r), deposit_z=self.deposit_of(account, z), r=r, z=z,
            requested=amount,
        )
        ra, za = self.asset(r), self.asset(z)
        if flash and prices[r].price and prices[z].price:
            # The dex pays twice the seized value in the repaid token.
            self.w.dex.set_rate(za.address, ra.address, 2 * prices[z].price * WAD // prices[r].price + 1)

        def model():
            return self.model.liquidate(
                liquidator, owner, sub, r, amount, z, 0, prices, now, blk, self.dust,
                paused_until=self.paused_until, recently_stale_ids=self.recently_stale_ids(),
                nets_same_asset=not flash,
            )

        def engine():
            if flash:
                # Inventory for the repay leg, whatever the swap yields (the
                # flash contract is no actor: no modelled wallet changes).
                ra.token.mint(self.w.flash.address, min(amount, step.facts["debt_r"]) + 1)
                return self.w.flash.run(owner, sub, ra.address, amount, za.address, 0, b"flash")
            with boa.env.prank(liquidator):
                return self.engine.liquidate(owner, sub, ra.address, amount, za.address, 0)

        expected, got = self.expect(model, engine)
        steps.outcome(step.kind, self.last.reason)
        if got is not None:
            repaid, seized, plan, _rs, _ss = expected
            self.agree(tuple(got) == (repaid, seized), (tuple(got), repaid, seized))
            step.facts["plan"] = plan
            step.facts["after"] = self.health(account)
            if flash:
                assert self.w.flash.reenter_ok() is False, "re-entry into the engine succeeded during the callback"
                self.balances[r] += repaid
                self.balances[z] -= seized
            else:
                self.move(r, liquidator, None, repaid)
                self.move(z, None, liquidator, seized)
            self.touch([r, z], [account])
        return got

    def do_settle(self, account):
        owner, sub = account
        step = self.begin("settle", account)
        now = self.now()
        held = self.model.account(owner, sub).header.held_ids()
        step.facts["funds"] = {i: self.fund(i) for i in held}

        def model():
            extra = {"recently_stale_ids": self.recently_stale_ids()} if _SETTLE_WAITS_FOR_GRACE else {}
            return self.model.settle_bad_debt(
                owner, sub, self.prices(), dict(self.balances), now, self.dust, paused_until=self.paused_until, **extra
            )

        def engine():
            with boa.env.prank(self.actor("liquidator")):
                self.engine.settle_bad_debt(owner, sub)
            return self._events()

        expected, got = self.expect(model, engine)
        steps.outcome("settle", self.last.reason)
        if got is not None:
            names = [n for n, _ in got]
            self.agree(names == [n for n, _ in expected], (names, expected))
            self.agree(
                names == [n for n, _ in expected]
                and [{k: f[k] for k in m} for (_, m), (_, f) in zip(expected, got, strict=True)] == [m for _, m in expected],
                (got, expected),
            )
            step.facts["events"] = got
            step.facts["held"] = held
            self.touch(held, [account])
        return got

    # --------------------------------------------------------- market actions
    def publish(self, i: int, answer: int) -> None:
        """A new feed round at the current time. MockAggregator.set_answer
        opens round latest + 1 with startedAt = updatedAt = now; the model
        books it without a read (checked against latestRoundData at teardown)."""
        self.asset(i).feed.set_answer(answer)
        if answer > 0:
            self.answers[i] = answer
        previous = self.rounds[i][1]
        rid = previous.round_id + 1
        latest = rm.RoundData(rid, answer, self.now(), self.now(), rid)
        self.rounds[i] = (previous, latest)
        self.history.setdefault(i, {})[rid] = latest
        self._prices = None

    def refresh_feeds(self) -> None:
        for i in range(self.n):
            self.publish(i, self.answers[i])

    def warp(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)
        self._prices = None

    def refresh_config(self, i: int) -> None:
        """After a configurator call: config words into the model (the market
        words must already match)."""
        state = rm.AssetState.from_tuple(self.engine.asset_state(i))
        m = self.model.markets[i]
        words = (state.market_a, state.market_b, state.totals)
        self.agree((m.market_a, m.market_b, m.totals) == words, ("market words", (m.market_a, m.market_b, m.totals), words))
        if KEEP_GOING:
            self.model.markets[i] = rm.MarketReplica.from_asset_state(state)  # the contract's words (tooling only)
        self.model.set_config(state)
        self._prices = None

    # ------------------------------------------------------------- chain reads
    def _event(self, name: str) -> dict:
        found = [f for n, f in self._events() if n == name]
        assert len(found) == 1, (name, found)
        return found[0]

    def _events(self) -> list[tuple[str, dict]]:
        out = []
        for log in self.engine.get_logs():
            if hasattr(log, "_asdict") and str(log.address) == str(self.engine.address):
                out.append((type(log).__name__, log._asdict()))
        return out

    def chain(self) -> dict:
        """Raw chain state of the dirty assets and accounts (read once per
        step, cheap getters only): asset_state words, token balances,
        headers, positions."""
        if self._chain_cache is not None:
            return self._chain_cache
        e = self.engine
        assets = {}
        for i in sorted(self.dirty_assets):
            a = self.asset(i)
            assets[i] = (rm.AssetState.from_tuple(e.asset_state(i)), a.token.balanceOf(e.address))
            totals = assets[i][0].totals
            self.chain_totals[i] = (totals & rm.MASK128, totals >> 128)
        accounts = {}
        for owner, sub in sorted(self.dirty_accounts):
            accounts[(owner, sub)] = self._read_account(owner, sub)
            self.chain_positions[(owner, sub)] = accounts[(owner, sub)][1]
        self._chain_cache = {"assets": assets, "accounts": accounts}
        return self._chain_cache

    def _read_account(self, owner: str, sub: int):
        e = self.engine
        header = rm.AccountHeader.from_tuple(e.account_header(owner, sub))
        ids = header.held_bitmap | self.model.account(owner, sub).header.held_bitmap
        positions = {
            i: rm.Position.from_tuple(e.position(owner, sub, self.asset(i).address)) for i in range(self.n) if ids >> i & 1
        }
        return header, positions

    def sampled(self, period: int) -> bool:
        """The health views are slow on py-evm: they are compared on every
        `period`-th step of an example (and for every account at teardown)."""
        return self.step_index % period == 0

    def teardown(self):
        """A full sweep at the end of every example: every asset's words and
        balance, every account's positions and health, against the model."""
        self.dirty_assets = set(range(self.n))
        self.dirty_accounts = set(self.model.accounts)
        self._chain_cache = None
        self.reference_model_matches_contract_storage()
        self.engine_token_balance_matches_token_flows()
        self.bitmaps_match_positions()
        for i in range(self.n):
            got = rm.RoundData.from_tuple(self.asset(i).feed.latestRoundData())
            self.agree(got == self.rounds[i][1], (self.asset(i).symbol, got, self.rounds[i][1]))
        for account in self.held_accounts():
            h = self.health(account, kinds=3)
            got = tuple(self.engine.health(*account))
            self.agree(got == (h.initial, h.maintenance, h.prices_valid), (account, got, h))

    # ================================================================ invariants
    # -- Accounting --------------------------------------------------------------
    @named_invariant()
    def engine_token_balance_matches_token_flows(self):
        """Protects: no token enters or leaves the engine except through the
        modelled deposits, withdrawals, borrows, repayments and liquidations
        (no stranded or leaked tokens)."""
        for i, (_state, balance) in self.chain()["assets"].items():
            assert balance == self.balances[i], (self.asset(i).symbol, balance, self.balances[i])

    @named_invariant()
    def token_balance_covers_deposits_minus_borrows(self):
        """Protects: for every token, balance >= deposits - borrows, i.e. the
        insurance fund (balance - deposits + borrows) is never negative, so
        every depositor can be paid once borrowers repay."""
        for i in range(self.n):
            assert self.fund(i) >= 0, (self.asset(i).symbol, self.fund(i))

    @named_invariant()
    def deposit_shares_sum_to_total(self):
        """Protects: on the chain, an asset's total deposit shares equal the
        sum of every account's deposit shares (no share minted or burned off
        the books). Contract against contract: positions from
        engine.position, totals from engine.asset_state, as last read."""
        self.chain()
        for i, (total, _) in self.chain_totals.items():
            held = sum(p[i].deposit_shares for p in self.chain_positions.values() if i in p)
            assert held == total, (self.asset(i).symbol, held, total)

    @named_invariant()
    def borrow_shares_sum_to_total(self):
        """Protects: on the chain, an asset's total borrow shares equal the
        sum of every account's borrow shares (no debt forgiven or invented
        off the books). Contract against contract, as the deposit side."""
        self.chain()
        for i, (_, total) in self.chain_totals.items():
            held = sum(p[i].borrow_shares for p in self.chain_positions.values() if i in p)
            assert held == total, (self.asset(i).symbol, held, total)

    @named_invariant()
    def debt_shares_zero_exactly_when_debt_zero(self):
        """Protects: an account owes a non-zero amount exactly when it holds
        borrow shares (no invisible debt, no zero-debt position that blocks
        withdrawals)."""
        now = self.now()
        for (owner, sub), acc in self.model.accounts.items():
            for i, pos in acc.positions.items():
                debt = rm.mul_div_up(pos.borrow_shares, self.model.markets[i].indexes_now(now)[1], WAD)
                assert (pos.borrow_shares == 0) == (debt == 0), (owner, sub, i)

    @named_invariant()
    def bitmaps_match_positions(self):
        """Protects: a header bit is set exactly when that side of the
        position is non-zero, on the chain (health visits exactly the held
        assets)."""
        for (owner, sub), (header, positions) in self.chain()["accounts"].items():
            for i in range(self.n):
                pos = positions.get(i, rm.Position())
                assert bool(header.deposit_bitmap >> i & 1) == (pos.deposit_shares != 0), (owner, sub, i)
                assert bool(header.debt_bitmap >> i & 1) == (pos.borrow_shares != 0), (owner, sub, i)

    @named_invariant()
    def reference_model_matches_contract_storage(self):
        """Protects: the contracts' market words (indexes, totals, accrual
        time) and account positions/headers equal the reference model's
        after every action (bit-exact accrual and share rounding)."""
        c = self.chain()
        for i, (state, _balance) in c["assets"].items():
            m = self.model.markets[i]
            assert (state.market_a, state.market_b, state.totals) == (m.market_a, m.market_b, m.totals), self.asset(i).symbol
            assert (state.info, state.risk, state.ramp) == (m.info, m.risk, m.ramp), self.asset(i).symbol
        for account, (header, positions) in c["accounts"].items():
            acc = self.model.account(*account)
            assert header == acc.header, account
            assert {i: p for i, p in positions.items() if not p.is_empty} == {
                i: p for i, p in acc.positions.items() if not p.is_empty
            }, account

    @named_invariant()
    def borrows_never_exceed_deposits_after_borrow_withdraw_or_seize(self):
        """Protects: liquidity -- after a borrow, withdrawal or seizure the
        asset's total borrows (rounded up) stay <= total deposits (rounded
        down)."""
        ids = self.last.facts.get("liquidity_check")
        if ids is None and self.last.kind in ("liquidate", "flash_liquidate") and self.last.reason is None:
            ids = self.last.facts["z"]
        if ids is None or self.last.reason is not None:
            return
        for i in ids if isinstance(ids, set) else [ids]:
            m = self.model.markets[i]
            borrows = rm.mul_div_up(m.borrow_shares, m.borrow_index, WAD)
            deposits = rm.mul_div_down(m.deposit_shares, m.deposit_index, WAD)
            assert borrows <= deposits, (self.asset(i).symbol, borrows, deposits)

    @named_invariant()
    def wallets_change_only_by_modelled_flows(self):
        """Protects: users receive exactly what the engine reports sending
        and pay exactly what it reports taking (USDT-style tokens included)."""
        for who, i in sorted(self.dirty_wallets):
            assert self.asset(i).token.balanceOf(who) == self.wallets[(who, i)], (who, self.asset(i).symbol)

    # -- Interest ------------------------------------------------------------------
    @named_invariant()
    def borrow_index_never_falls(self):
        """Protects: debt is never forgiven by index arithmetic."""
        for i, (_di, bi) in self.last.indexes_before.items():
            assert self.model.markets[i].borrow_index >= bi, self.asset(i).symbol

    @named_invariant()
    def deposit_index_falls_only_by_socialised_loss(self):
        """Protects: depositors lose value only through a socialised bad-debt
        loss, and then by exactly the loss's cut of the index."""
        cuts = {}
        for name, f in self.last.facts.get("events", []):
            if name == "LossSocialised":
                cuts[self.model.asset_id(f["asset"])] = f["deposit_index"]
        for i, (di, _bi) in self.last.indexes_before.items():
            now_di = self.model.markets[i].deposit_index
            if i in cuts:
                assert now_di == cuts[i] < di
                self.socialised[i] += di - now_di
            else:
                assert now_di >= di, self.asset(i).symbol

    @named_invariant()
    def debt_never_falls_with_time_alone(self):
        """Protects: waiting never reduces what a borrower owes (accrual is
        monotone in time): the contract's debts accrued to now (lens.balances)
        after a time step are at least those before it."""
        if self.last.kind not in ("warp", "stale") or "debts_before" not in self.last.facts:
            return
        after = self.chain_debts()
        for account, before in self.last.facts["debts_before"].items():
            for asset, debt in before.items():
                assert after.get(account, {}).get(asset, 0) >= debt, (account, asset, debt, after.get(account))

    @named_invariant()
    def accruing_first_never_changes_results(self):
        """Protects: an action's result does not depend on whether someone
        accrued the market first in the same block (no griefing or profit
        from poking `accrue`): the engine's result or revert reason without
        the accrual (a rolled-back run) equals its result after it."""
        f = self.last.facts
        if "chain_without_accrue" not in f:
            return
        # The contract: the same call without the accrual (run first in a
        # rolled-back anchor) returned or reverted exactly as it did after it.
        assert f["chain_without_accrue"] == f["chain_result"], (self.last.kind, f["chain_without_accrue"], f["chain_result"])
        # The reference model, likewise (under XMARGIN_KEEP_GOING a step whose
        # outcome differs from the model's judges the contract side only).
        if "without_accrue" in f and "diverged" not in f:
            assert f["without_accrue"] == (f.get("expected"), self.last.reason)

    @named_invariant()
    def insurance_fund_never_falls_except_to_cover_bad_debt(self):
        """Protects: the insurance fund only grows (reserve-factor interest,
        rounding dust, liquidation share, forfeited collateral) except when
        bad-debt settlement draws on it."""
        used = {}
        for name, f in self.last.facts.get("events", []):
            if name == "InsuranceFundUsed":
                used[self.model.asset_id(f["asset"])] = f["amount"]
        for i, before in self.last.fund_before.items():
            assert self.fund(i) >= before - used.get(i, 0), (self.asset(i).symbol, before, self.fund(i), used.get(i))

    @named_invariant()
    def accrued_views_match_model(self):
        """Protects: the lens's market view (indexes accrued to now, totals,
        utilisation) equals the model's accrual, for the touched assets."""
        if not self.sampled(VIEW_PERIOD):
            return
        # The touched asset, and one more in rotation: mostly one whose
        # stored indexes lag (no accrual this step), where a view that
        # forgot to accrue would show.
        ids = sorted(self.dirty_assets)[:1]
        rotating = (self.step_index // VIEW_PERIOD) % self.n
        if rotating not in ids:
            ids.append(rotating)
        now = self.now()
        for i in ids:
            view = self.w.lens.market(self.asset(i).address)
            m = self.model.markets[i]
            di, bi = m.indexes_now(now)
            assert (view.deposit_index, view.borrow_index) == (di, bi), self.asset(i).symbol
            assert (view.deposit_shares, view.borrow_shares) == (m.deposit_shares, m.borrow_shares), self.asset(i).symbol
            totals = (rm.mul_div_down(m.deposit_shares, di, WAD), rm.mul_div_up(m.borrow_shares, bi, WAD))
            assert (view.total_deposits, view.total_borrows) == totals, self.asset(i).symbol

    # -- Health and cross-margin ---------------------------------------------------
    def _healths_now(self) -> dict:
        if "healths_after" not in self.last.facts:
            self.last.facts["healths_after"] = {a: self.health(a) for a in self.held_accounts()}
        return self.last.facts["healths_after"]

    @named_invariant()
    def only_price_interest_ramp_or_liquidation_make_unhealthy(self):
        """Protects: a user action (deposit, withdraw, borrow, repay,
        transfer, batch) or settlement never pushes any account below
        maintenance; only price moves, interest, parameter ramps and
        liquidations can."""
        if self.last.kind in RISK_STEPS:
            return
        cut = self._socialised_ids()
        for account, h in self._healths_now().items():
            if cut and self._deposits_in(account, cut):
                continue  # a socialised loss cuts every depositor of that asset (checked by the bad-debt invariants)
            before = self.last.healths_before.get(account)
            if before is None or not before.liquidatable:
                assert not h.liquidatable, (self.last.kind, account, h.maintenance)

    @named_invariant()
    def risk_increasing_actions_leave_initial_health_nonnegative(self):
        """Protects: a successful borrow, withdraw, transfer or batch leaves
        the acting account with initial health >= 0 (engine.health)."""
        if self.last.kind not in ("borrow", "withdraw", "transfer", "batch") or self.last.reason is not None:
            return
        owner, sub = self.last.account
        if self.model.account(owner, sub).header.debt_bitmap == 0:
            return
        # The model's health (bit-exact: model_health_equals_contract_health
        # compares it with engine.health on sampled steps and at teardown).
        h = self.health((owner, sub), kinds=1)
        assert h.initial >= 0 and h.prices_valid, (self.last.kind, h.initial)

    @named_invariant()
    def deposit_and_repay_never_blocked_by_feeds(self):
        """Protects: deposits and repayments are always possible whatever
        the price feeds say (stale, zero, out of bounds): users can always
        add collateral or pay down debt."""
        if self.last.kind not in ("deposit", "repay") or self.last.reason is None:
            return
        allowed = DEPOSIT_REASONS if self.last.kind == "deposit" else REPAY_REASONS
        assert self.last.reason in allowed, self.last.reason

    @named_invariant()
    def action_never_changes_another_accounts_health(self):
        """Protects: cross-margin isolation -- an action on one sub-account
        never changes any other sub-account's health, except that accruing
        the market raises every depositor's collateral."""
        if self.last.kind in RISK_STEPS or self.last.kind in ("init", "next_block", "pause", "unpause", "accrue"):
            return
        touched = {self.last.account} | set(self.dirty_accounts)
        accrued = any(
            self.model.markets[i].deposit_index != di for i, (di, _bi) in self.last.indexes_before.items()
        )
        cut = self._socialised_ids()
        for account, before in self.last.healths_before.items():
            if account in touched:
                continue
            after = self._healths_now().get(account) or self.health(account)
            if accrued:
                # A settlement's socialised loss cuts the deposit index: every
                # depositor of that asset loses its share (exactly the
                # LossSocialised cut: deposit_index_falls_only_by_socialised_loss).
                if not (cut and self._deposits_in(account, cut)):
                    assert after.collateral[rm.MAINTENANCE] >= before.collateral[rm.MAINTENANCE], account
                assert after.debt == before.debt, account
            else:
                assert after == before, account

    def _socialised_ids(self) -> set[int]:
        """Assets whose deposit index the last step cut (a settlement's LossSocialised)."""
        if self.last.kind != "settle" or self.last.reason is not None:
            return set()
        return {self.model.asset_id(f["asset"]) for n, f in self.last.facts.get("events", []) if n == "LossSocialised"}

    def _deposits_in(self, account, ids: set[int]) -> bool:
        bitmap = self.model.account(*account).header.deposit_bitmap
        return any(bitmap >> i & 1 for i in ids)

    @named_invariant()
    def healthy_account_cannot_be_liquidated(self):
        """Protects: liquidation is open only for accounts below maintenance."""
        if self.last.kind not in ("liquidate", "flash_liquidate"):
            return
        if self.last.reason is None:
            assert self.last.facts["before"].liquidatable
        elif not self.last.facts["before"].liquidatable and self.last.reason.startswith("liquidation: account"):
            assert self.last.reason == "liquidation: account is healthy"

    @named_invariant()
    def liquidation_stops_at_target(self):
        """Protects: a partial liquidation capped by the target brings the
        account back to liquidation-end health and no further (liquidators
        cannot over-seize)."""
        f = self.last.facts
        if self.last.kind not in ("liquidate", "flash_liquidate") or self.last.reason is not None:
            return
        plan = f["plan"]
        capped = plan.repay < f["requested"] and plan.repay < f["debt_r"] and plan.seize < f["deposit_z"]
        if capped:
            # docs/risk-model.md, "Liquidation-end target, rounding bound": the
            # seizure rounds down, so H_LE ends <= the value of one seized unit
            # at its liquidation-end weight: H_LE * 1e36 <= P_s * aw_LE,s --
            # plus the interest the liquidation's own accrual of the seized
            # asset credits to the deposit (health values deposits at the
            # stored index; found by ci shard 3 with USDT at $0.0009: +205
            # units' worth of interest, 1.5e-7 USD).
            z = f["z"]
            m = self.model.markets[z]
            state = m.to_asset_state()
            aw_le = rm.weights(state.risk, state.effective_ramp, rm.LIQUIDATION_END, self.now())[0]
            # Credited: what the deposit left is worth beyond deposit - seize.
            credited = max(0, self.deposit_of(self.last.account, z) - (f["deposit_z"] - plan.seize))
            bound = self.prices()[z].price * aw_le * (1 + credited)
            assert f["after"].liquidation_end * 10**36 <= bound, ("overshoot", f["after"].liquidation_end, bound, credited)

    @named_invariant()
    def liquidation_never_lowers_solvent_health_ratio(self):
        """Protects: liquidating a solvent account (collateral value >= debt
        value) never lowers its maintenance health ratio."""
        f = self.last.facts
        if self.last.kind not in ("liquidate", "flash_liquidate") or self.last.reason is not None:
            return
        if f["before"].solvent and f["after"].debt[rm.MAINTENANCE] != 0:
            assert f["after"].ratio >= f["before"].ratio, (f["before"].ratio, f["after"].ratio)

    @named_invariant()
    def full_liquidation_leaves_no_remainder(self):
        """Protects: a liquidation that repays the whole debt of an asset
        leaves no borrow shares, and one that seizes the whole deposit burns
        every deposit share (no accrued-interest remainder on either side)."""
        f = self.last.facts
        if self.last.kind not in ("liquidate", "flash_liquidate") or self.last.reason is not None:
            return
        owner, sub = self.last.account
        header, positions = self.chain()["accounts"][(owner, sub)]
        if f["plan"].repay >= f["debt_r"]:
            assert positions.get(f["r"], rm.Position()).borrow_shares == 0, "debt left after a full repayment"
        if f["plan"].seize >= f["deposit_z"]:
            assert positions.get(f["z"], rm.Position()).deposit_shares == 0, "deposit shares left after a full seizure"

    @named_invariant()
    def liquidation_leaves_no_collateral_dust(self):
        """Protects: a liquidation never turns a deposit into dust while the
        account still owes: the seized deposit is left empty or worth at
        least the dust threshold (no unliquidatable crumbs)."""
        f = self.last.facts
        if self.last.kind not in ("liquidate", "flash_liquidate") or self.last.reason is not None:
            return
        price = self.prices()[f["z"]].price
        left = self.deposit_of(self.last.account, f["z"])
        was_dust = rm.mul_div_down(f["deposit_z"], price, WAD) < self.dust
        still_owes = self.model.account(*self.last.account).header.debt_bitmap != 0
        if left and still_owes and not was_dust:
            value = rm.mul_div_down(left, price, WAD)
            assert value >= self.dust, ("collateral dust", left, value)

    @named_invariant()
    def model_health_equals_contract_health(self):
        """Protects: the keeper's replica (keeper/risk_model.py) computes
        exactly the contract's initial and maintenance health."""
        if not self.sampled(HEALTH_PERIOD):
            return
        for account in sorted(self.dirty_accounts):
            got = self.engine.health(*account)
            h = self.health(account, kinds=3)
            assert tuple(got) == (h.initial, h.maintenance, h.prices_valid), account

    @named_invariant()
    def lens_healths_equal_model(self):
        """Protects: the lens's health view (initial, maintenance,
        liquidation end, ratio) equals the model's, for front ends and
        keepers."""
        if not self.sampled(LENS_PERIOD) or not self.dirty_accounts:
            return
        refs = sorted(self.dirty_accounts)
        for account, v in zip(refs, self.w.lens.healths(refs), strict=True):
            h = self.health(account)
            assert tuple(v) == (h.initial, h.maintenance, h.liquidation_end, h.ratio, h.prices_valid), account

    # -- Bad debt --------------------------------------------------------------------
    @named_invariant()
    def debt_without_collateral_is_settled(self):
        """Protects: an account left with debt and no collateral (with its
        prices accepted) can always be settled, so bad debt never lingers."""
        now = self.now()
        for account, acc in list(self.model.accounts.items()):
            hdr = acc.header
            if hdr.debt_bitmap == 0 or hdr.deposit_bitmap != 0 or now < self.paused_until:
                continue
            if not all(self.prices()[i].valid for i in hdr.held_ids()):
                continue
            if _SETTLE_WAITS_FOR_GRACE and set(self.recently_stale_ids()) & set(hdr.held_ids()):
                continue  # settlement waits out the price grace period, as liquidations
            with self.scratch() as shadow:
                _events, reason = predict(
                    lambda: shadow.settle_bad_debt(*account, self.prices(), dict(self.balances), now, self.dust)
                )
            assert reason is None, (account, reason)

    @named_invariant()
    def insurance_fund_drawn_before_loss_socialised(self):
        """Protects: depositors bear a loss only after the asset's insurance
        fund is used up."""
        if self.last.kind != "settle" or self.last.reason is not None:
            return
        events = self.last.facts["events"]
        for i in self.last.facts["held"]:
            a = self.asset(i).address.lower()
            used = sum(f["amount"] for n, f in events if n == "InsuranceFundUsed" and str(f["asset"]).lower() == a)
            loss = sum(f["amount"] for n, f in events if n == "LossSocialised" and str(f["asset"]).lower() == a)
            if loss:
                # Fund at settlement = fund before + forfeited collateral of this account.
                forfeited = sum(f["amount"] for n, f in events if n == "CollateralForfeited" and str(f["asset"]).lower() == a)
                assert used >= self.last.facts["funds"][i] + forfeited - 1, (used, self.last.facts["funds"][i], forfeited)

    @named_invariant()
    def socialised_loss_equals_debt_minus_fund_used(self):
        """Protects: a settlement writes off exactly the debt: fund used +
        socialised loss = debt written off, per asset."""
        if self.last.kind != "settle" or self.last.reason is not None:
            return
        events = self.last.facts["events"]
        for i in self.last.facts["held"]:
            a = self.asset(i).address.lower()
            of = lambda name: sum(f.get("amount", f.get("debt", 0)) for n, f in events if n == name and str(f["asset"]).lower() == a)  # noqa: E731
            debt = sum(f["debt"] for n, f in events if n == "BadDebtSettled" and str(f["asset"]).lower() == a)
            assert of("InsuranceFundUsed") + of("LossSocialised") == debt, self.asset(i).symbol

    @named_invariant()
    def settled_account_is_empty(self):
        """Protects: after settlement the account holds nothing and owes
        nothing (its remaining collateral went to the insurance fund)."""
        if self.last.kind != "settle" or self.last.reason is not None:
            return
        header, positions = self.chain()["accounts"][self.last.account]
        assert header.held_bitmap == 0 and all(p.is_empty for p in positions.values())

    # -- Safety -----------------------------------------------------------------------
    @named_invariant()
    def caps_hold_whenever_totals_rise(self):
        """Protects: supply and borrow caps bound total deposits / borrows
        after every action that raises them."""
        check = self.last.facts.get("cap_check")
        if check is None or self.last.reason is not None:
            return
        side, i = check
        m = self.model.markets[i]
        info = m.info
        if side == "supply":
            cap = (info >> 16) & rm.MASK120
            total = rm.mul_div_down(m.deposit_shares, m.deposit_index, WAD)
        else:
            cap = (info >> 136) & rm.MASK120
            total = rm.mul_div_up(m.borrow_shares, m.borrow_index, WAD)
        assert cap == 0 or total <= cap, (side, self.asset(i).symbol, total, cap)

    @named_invariant()
    def views_never_revert(self):
        """Protects: every view front ends and keepers rely on answers in
        every state (stale or zero feeds included): engine.health,
        lens.healths/balances/market/preview_liquidation, for the touched
        accounts and assets."""
        if not self.sampled(VIEW_PERIOD):
            return
        now = self.now()
        # The touched account, and a debtor in rotation (the debt rows and
        # the liquidation preview only show on debtors).
        accounts = sorted(self.dirty_accounts)[:1]
        debtors = sorted(self.debtors())
        if debtors:
            debtor = debtors[(self.step_index // VIEW_PERIOD) % len(debtors)]
            if debtor not in accounts:
                accounts.append(debtor)
        for account in accounts:
            acc = self.model.account(*account)
            got = [_row(b) for b in self.w.lens.balances(*account)]
            assert got == [_row(b) for b in acc.balances(self.model.markets, now)], account
            if acc.header.debt_bitmap and acc.header.deposit_bitmap:
                hdr = acc.header
                debts = [i for i in range(self.n) if hdr.debt_bitmap >> i & 1]
                deposits = [i for i in range(self.n) if hdr.deposit_bitmap >> i & 1]
                r = debts[self.step_index % len(debts)]
                z = deposits[-1 - self.step_index % len(deposits)]
                got = tuple(self.w.lens.preview_liquidation(*account, self.asset(r).address, self.asset(z).address))
                with self.scratch() as shadow:
                    expected, _reason = predict(lambda: shadow.preview_liquidation(*account, r, z, self.prices(), now, self.dust))
                assert got == (expected if expected is not None else (0, 0, 0)), (account, got, expected)

    @named_invariant()
    def reentrancy_lock_free_after_every_call(self):
        """Protects: the shared nonreentrant lock is released after every
        call (a stuck lock would freeze the protocol): a view under the lock
        (MarginEngine's own; the exported ledger getters are not locked)
        answers. The flash liquidation checks the converse: the lock is held
        during the liquidation callback."""
        assert tuple(self.engine.liquidation_settings()) == (self.dust, self.grace, self.paused_until)

    @named_invariant()
    def stale_price_blocks_borrow_and_withdraw_never_repay(self):
        """Protects: with a held asset's price rejected (stale, zero, out of
        bounds), an account with debt can neither borrow nor withdraw, while
        repay still works."""
        if self.last.kind not in ("borrow", "withdraw", "repay") or self.last.account is None:
            return
        acc = self.model.account(*self.last.account)
        if self.last.kind == "repay":
            assert self.last.reason not in ORACLE_REASONS
            return
        if self.last.reason is None and acc.header.debt_bitmap:
            assert all(self.prices()[i].valid for i in acc.header.held_ids()), "risk action with a rejected price"

    @named_invariant()
    def no_profit_from_same_block_round_trip(self):
        """Protects: deposit->withdraw and borrow->repay in one block never
        return more than was put in (no rounding arbitrage)."""
        f = self.last.facts
        if self.last.kind != "round_trip":
            return
        paid, received = f["legs"]
        for k in paid:  # per asset, and in USD at the block's prices
            assert received[k] <= paid[k], (self.asset(k).symbol, paid[k], received[k])
        assert f["received"] <= f["paid"], f
        assert self.model.account(f["actor"], f["sub"]).header.held_bitmap == 0

    @named_invariant()
    def paused_actions_blocked_and_repay_never_paused(self):
        """Protects: a paused action is refused with the pause reason, and
        repay cannot be paused."""
        if self.last.account is None or self.last.kind not in ("deposit", "withdraw", "borrow", "repay"):
            return
        i = self.last.facts.get("asset")
        if i is None:
            return
        flags = (self.model.markets[i].info >> 8) & 0xFF
        bit = {"deposit": 2, "withdraw": 4, "borrow": 8}.get(self.last.kind)
        if bit and flags & bit:
            assert self.last.reason == f"pause: {self.last.kind} paused", self.last.reason
        if self.last.kind == "repay":
            assert self.last.reason is None or not self.last.reason.startswith("pause:")


__all__ = ["MarginMachine", "predict", "MAX_UINT"]
