"""The invariant machines on a titanoboa deployment (tests/invariants/world.py).

Each test deploys the world once (outside hypothesis's per-example anchor)
and runs its machine for the profile's budget (tests/invariants/budget.py).
"""

from hypothesis.stateful import run_state_machine_as_test

from tests.invariants import steps
from tests.invariants.budget import machine_settings
from tests.invariants.rules import AccountRules, ProtocolMachine
from tests.invariants.world import deploy_world


def run(machine_cls, budget: str) -> None:
    machine_cls.world = deploy_world()
    with steps.cpu_timer():
        run_state_machine_as_test(machine_cls, settings=machine_settings(budget))


def test_protocol_invariants():
    """Every rule: user actions, prices, time, ramps, pauses, liquidations
    (plain and flash) and bad-debt settlement."""
    run(ProtocolMachine, "protocol")


def test_account_invariants():
    """User actions only, at fixed prices: the accounting and cross-margin
    invariants under long action sequences."""
    run(AccountRules, "accounts")
