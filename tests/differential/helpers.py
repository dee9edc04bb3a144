"""Helpers shared by the differential tests (model vs. contracts).

Isolation: the root tests/conftest.py gives every test a fresh titanoboa
Env, and titanoboa's pytest plugin runs every hypothesis example inside
``boa.env.anchor()`` (state, block number and time roll back after each
example). So contracts shared by the examples of a test must be deployed in
a pytest fixture (which runs outside the per-example anchor), never lazily
inside an example: a contract deployed in the first example is rolled back
and later examples would call an empty address (which "succeeds" with empty
return data). Tests using such fixtures suppress hypothesis's
function_scoped_fixture health check (``FIXTURE_OK``): the fixture is meant
to be shared, the plugin isolates the examples.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import boa
from hypothesis import HealthCheck, settings

HARNESS = Path(__file__).resolve().parent / "harness"



def fixture_ok(**kwargs) -> settings:
    """Settings for @given tests that take (function-scoped) deployment
    fixtures: the loaded profile plus the suppressed health check."""
    checks = list(settings.default.suppress_health_check) + [HealthCheck.function_scoped_fixture]
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci":
        # CI replays a fixed pseudo-random set of examples (reproducible,
        # no flaky landings); dev and nightly draw new ones every run.
        kwargs.setdefault("derandomize", True)
        kwargs.setdefault("database", None)
    return settings(suppress_health_check=checks, **kwargs)


@lru_cache(maxsize=None)
def harness_deployer(name: str):
    """Compiles tests/differential/harness/<name>.vy once per process.

    Loaded from its path so that its relative imports
    (``from ....contracts.modules import margin``) resolve against the file's
    directory; see the ModulesHarness.vy docstring."""
    return boa.load_partial(str(HARNESS / f"{name}.vy"))


def examples(minimum: int) -> int:
    """At least ``minimum`` examples under the ci/nightly profiles (more if
    the profile asks for more); the dev profile keeps its quick count."""
    default = settings.default.max_examples
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "dev":
        return default
    return max(default, minimum)
