"""The three properties every fault test asserts (issue 4):

1. every liquidatable, profitable account is liquidated within
   `WITHIN_BLOCKS` blocks after the fault clears (`liquidated_by`);
2. no duplicate send: each account is liquidated at most once on the
   canonical chain and every liquidation of it the keeper broadcast used a
   single nonce (fee bumps and identical re-broadcasts keep the nonce)
   (`no_duplicates`);
3. no unhandled exception: no error-level log entry / traceback, and the
   keeper's run loop is alive or exited cleanly (`no_errors`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.keeper.harness.keeper_driver import error_entries

WITHIN_BLOCKS = 3


def liquidated_by(sc: Any, keeper: Any, expected: set[tuple[str, int]], cleared_at: int, from_block: int,
                  within: int = WITHIN_BLOCKS, step_timeout: float = 120.0) -> int:
    """Mines block by block (waiting for the keeper each time, when it is an
    in-process keeper) until every `expected` account has a Liquidation
    event since `from_block`, at most `within` blocks after `cleared_at`.
    Returns the block at which the last one was mined; fails otherwise."""
    assert expected, "the scenario must have liquidatable accounts"
    if hasattr(keeper, "wait_step"):
        def step() -> None:
            keeper.wait_step(sc.node.mine(1), timeout=step_timeout)
    else:
        def step() -> None:
            _step_subprocess(sc, keeper)
    while True:
        done = sc.liquidated_refs(from_block)
        missing = expected - done
        if not missing:
            return sc.head()
        assert sc.head() < cleared_at + within, (
            f"{len(missing)} of {len(expected)} liquidatable account(s) not liquidated within {within} blocks "
            f"after the fault cleared at block {cleared_at} (head {sc.head()}); e.g. {sorted(missing)[:3]}"
        )
        step()


def _step_subprocess(sc: Any, proc: Any) -> None:
    head = sc.node.mine(1)
    proc.wait_processed(head)


def no_duplicates(sc: Any, from_block: int, keeper_sent: bool = True) -> None:
    """`keeper_sent`: the liquidations on chain were the keeper's, so each
    must appear among its broadcasts (proves the nonce check saw them)."""
    events = sc.liquidation_events(from_block)
    per_account = Counter(events)
    twice = {k: n for k, n in per_account.items() if n > 1}
    assert not twice, f"accounts liquidated more than once on chain: {twice}"
    nonces = sc.proxy.liquidation_nonces(sc.sim.record.engine)
    multi = {k: v for k, v in nonces.items() if len(v) > 1}
    assert not multi, f"liquidations of one account broadcast under several nonces: {multi}"
    if keeper_sent:
        unseen = {(o.lower(), sub) for o, sub in events} - set(nonces)
        assert not unseen, f"liquidations on chain the proxy never saw broadcast: {sorted(unseen)[:3]}"


def no_errors(keeper: Any) -> None:
    errors = keeper.errors() if hasattr(keeper, "errors") else error_entries(keeper)
    assert errors == [], errors[:3]
    if hasattr(keeper, "check"):
        keeper.check()
