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

settings.register_profile("dev", max_examples=20, deadline=None)
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
