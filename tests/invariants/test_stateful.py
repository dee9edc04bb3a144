"""The invariant machines on a titanoboa deployment (tests/invariants/world.py).

Each test deploys the world once (outside hypothesis's per-example anchor)
and runs one shard of its machine's budget (tests/invariants/budget.py).
The machines run on revm behind titanoboa (tests/revm_backend.py, ~4x the
steps per CPU second of py-evm); XMARGIN_MACHINE_EVM=pyevm runs them on
titanoboa's own py-evm (what `make coverage` does: coverage needs py-evm's
pc traces).
"""

import os

import boa
import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.invariants import steps
from tests.invariants.budget import MAX_SHARDS, machine_settings, seeded, shards
from tests.invariants.rules import AccountRules, ProtocolMachine
from tests.invariants.world import deploy_world
from tests.revm_backend import revm_env


def machine_env() -> boa.Env:
    evm = os.environ.get("XMARGIN_MACHINE_EVM", "revm")
    if evm not in ("revm", "pyevm"):
        raise ValueError(f"XMARGIN_MACHINE_EVM must be revm or pyevm, not {evm!r}")
    return revm_env() if evm == "revm" else boa.Env()


def run(machine_cls, budget: str, shard: int) -> None:
    if shard >= shards(budget):
        pytest.skip(f"the {budget} budget of this profile has {shards(budget)} shard(s)")
    with boa.swap_env(machine_env()):
        machine_cls.world = deploy_world()
        with steps.cpu_timer():
            run_state_machine_as_test(seeded(machine_cls, budget, shard), settings=machine_settings(budget, shard))


@pytest.mark.parametrize("shard", range(MAX_SHARDS))
def test_protocol_invariants(shard):
    """Every rule: user actions, prices, time, ramps, pauses, liquidations
    (plain and flash) and bad-debt settlement."""
    run(ProtocolMachine, "protocol", shard)


@pytest.mark.parametrize("shard", range(2))
def test_account_invariants(shard):
    """User actions only, at fixed prices: the accounting and cross-margin
    invariants under long action sequences."""
    run(AccountRules, "accounts", shard)
