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
from tests.invariants.budget import MAX_SHARDS, fixed_constant_pool, machine_settings, profile, seeded, shards
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
    env = machine_env()
    # boa's address generator is shared by every Env of a process: seed it
    # per shard, so the world (every address) and hence the explored
    # sequences do not depend on which tests ran before in this worker.
    env.set_random_seed(f"xmargin-{budget}-{shard}")
    env.eoa = env.generate_address("eoa")
    with boa.swap_env(env):
        machine_cls.world = deploy_world()
        with steps.cpu_timer(), fixed_constant_pool():
            run_state_machine_as_test(seeded(machine_cls, budget, shard), settings=machine_settings(budget, shard))


# What each ci shard of the protocol machine must keep landing (the ci
# profile is deterministic: every run replays the same sequences, so these
# counts are the same on every machine). Floors about a third of the
# measured counts (docs/invariants.md, "Volume: measured"): landed
# liquidations, flash liquidations and settlements, and refusals of each
# kind (the refusal paths must stay exercised too).
CI_LANDED = {"liquidate": 40, "flash_liquidate": 20, "settle": 35}
CI_REFUSED = {"liquidate": 5, "flash_liquidate": 5, "settle": 5}


@pytest.mark.parametrize("shard", range(MAX_SHARDS))
def test_protocol_invariants(shard):
    """Every rule: user actions, prices, time, ramps, pauses, liquidations
    (plain and flash) and bad-debt settlement."""
    before = steps.outcomes()
    run(ProtocolMachine, "protocol", shard)
    got = steps.outcomes() - before
    print(f"\nprotocol machine shard {shard}: landed/attempts: {steps.summary(got)}; {dict(sorted(got.items()))}")
    if profile() == "ci":
        for kind, floor in CI_LANDED.items():
            assert steps.landed(got, kind) >= floor, (kind, "landed", steps.landed(got, kind), floor, got)
        for kind, floor in CI_REFUSED.items():
            refused = steps.attempts(got, kind) - steps.landed(got, kind)
            assert refused >= floor, (kind, "refused", refused, floor, got)


@pytest.mark.parametrize("shard", range(2))
def test_account_invariants(shard):
    """User actions only, at fixed prices: the accounting and cross-margin
    invariants under long action sequences."""
    run(AccountRules, "accounts", shard)
