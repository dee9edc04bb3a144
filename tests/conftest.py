"""Shared pytest set-up: hypothesis profiles and a fresh titanoboa Env per test.

HYPOTHESIS_PROFILE picks the profile: `ci` (default, the README's test
command), `dev` (quick local runs) or `nightly` (long runs).

`ci` is derandomized: every run replays the same examples, so a merge is
judged on reproducible landings. Exploration happens in `dev` and `nightly`,
which draw fresh examples each run; what they find is pinned as a regression
test (tests/invariants/test_regressions.py, @example cases).
"""

import os

import boa
import pytest
from hypothesis import HealthCheck, settings

from tests.invariants import steps
from tests.invariants.budget import fixed_constant_pool

settings.register_profile("dev", max_examples=20, deadline=None)
# The mutation runner's machine runs (tools/mutation): dev's draws, a longer
# machine budget (tests/invariants/budget.py).
settings.register_profile("mutation", max_examples=20, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "nightly", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def fresh_boa_env():
    """A fresh Env per test: boa's rollback isolation reuses addresses and can
    crash while printing a revert of a reused contract; a new Env avoids it.
    Compiled contracts are cached per process (tests.protocol.deployer)."""
    with boa.swap_env(boa.Env()):
        yield


@pytest.fixture(autouse=True)
def fixed_hypothesis_constants(request):
    """Hypothesis draws some integers from the literals of every local module
    imported so far: pinned to the test's own module's, so a derandomized
    test explores the same examples whatever ran before it in the process
    (tests/invariants/budget.py, `fixed_constant_pool`)."""
    with fixed_constant_pool((request.module.__name__,)):
        yield


# -- stateful-step summary: "stateful steps: N (machines: C CPU s, R steps per CPU second);
#    landed/attempts: liquidate L/A, flash_liquidate L/A, settle L/A"


def pytest_sessionfinish(session):
    """An xdist worker hands its step count and CPU time to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["stateful_steps"] = (steps.total(), steps.cpu_seconds(), dict(steps.outcomes()))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: sums the workers' steps."""
    count, cpu, *outcomes = getattr(node, "workeroutput", {}).get("stateful_steps", (0, 0.0))
    steps.add(count, cpu, outcomes[0] if outcomes else None)


def pytest_terminal_summary(terminalreporter):
    n = steps.total()
    if n:
        cpu = steps.cpu_seconds()
        rate = f", {n / cpu:.0f} steps per CPU second" if cpu else ""
        landed = steps.outcomes()
        outcomes = f"; landed/attempts: {steps.summary(landed)}" if landed else ""
        terminalreporter.write_line(f"stateful steps: {n} (machines: {cpu:.0f} CPU s{rate}){outcomes}")
