"""Step budgets of the invariant machines per hypothesis profile
(HYPOTHESIS_PROFILE: dev / ci / nightly; docs/invariants.md).

A test runs `examples` independent sequences of `steps` rules each; every
rule is one step (counted by tests.invariants.steps).
"""

import os

from hypothesis import HealthCheck, Phase, settings

# profile -> {test name: (examples, steps per example)}
# ci: ~31k steps, sized to the 10-minute CI share at the rate measured on
# py-evm (docs/invariants.md, "Volume"); nightly: 1,000,000 steps.
BUDGETS = {
    "dev": {"protocol": (20, 50), "accounts": (10, 50), "fork": (5, 40)},
    "ci": {"protocol": (400, 50), "accounts": (200, 50), "fork": (30, 40)},
    "nightly": {"protocol": (14_000, 50), "accounts": (6_000, 50), "fork": (250, 40)},
}


def profile() -> str:
    return os.environ.get("HYPOTHESIS_PROFILE", "ci")


def machine_settings(name: str) -> settings:
    examples, steps = BUDGETS.get(profile(), BUDGETS["ci"])[name]
    ci = profile() == "ci"
    return settings(
        settings.default,
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        # CI explores a fixed pseudo-random set of sequences (reproducible
        # from a fresh clone, no flaky landings); dev and nightly explore new
        # ones on every run and report through the example database.
        derandomize=ci,
        database=None if ci else settings.default.database,
        suppress_health_check=list(HealthCheck),
        # XMARGIN_NO_SHRINK=1: report the first failure unshrunk (debugging).
        phases=[Phase.explicit, Phase.reuse, Phase.generate] if os.environ.get("XMARGIN_NO_SHRINK") else settings.default.phases,
    )
