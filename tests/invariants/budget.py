"""Step budgets of the invariant machines per hypothesis profile
(HYPOTHESIS_PROFILE: dev / ci / nightly; docs/invariants.md).

A machine's budget is `examples` independent sequences of `steps` rules
each (every rule is one step, counted by tests.invariants.steps), split
into `shards` tests so that pytest-xdist spreads it over the CI machine's
2 cores. In the ci profile each shard explores its own fixed pseudo-random
sequences (seeded by the shard number: reproducible from a fresh clone);
dev and nightly draw new ones on every run.
"""

import os

from hypothesis import HealthCheck, Phase, seed, settings

# profile -> {machine: (examples, steps per example, shards)}
# ci: 101,000 steps of the two titanoboa machines on revm
# (tests/revm_backend.py) + 1,200 on the fork (py-evm); nightly: 1,000,000.
BUDGETS = {
    "dev": {"protocol": (20, 50, 1), "accounts": (10, 50, 1), "fork": (5, 40, 1)},
    "ci": {"protocol": (1_520, 50, 4), "accounts": (500, 50, 2), "fork": (30, 40, 1)},
    "nightly": {"protocol": (14_000, 50, 4), "accounts": (6_000, 50, 2), "fork": (250, 40, 1)},
    # tools/mutation: one machine run per (mutant, invariant); ~10,000 steps.
    "mutation": {"protocol": (200, 50, 1), "accounts": (100, 50, 1), "fork": (5, 40, 1)},
}
MAX_SHARDS = 4  # the test parametrisation; a profile may use fewer


def profile() -> str:
    return os.environ.get("HYPOTHESIS_PROFILE", "ci")


def budget(name: str) -> tuple[int, int, int]:
    return BUDGETS.get(profile(), BUDGETS["ci"])[name]


def shards(name: str) -> int:
    return budget(name)[2]


def machine_settings(name: str, shard: int = 0) -> settings:
    """Settings of one shard: its share of the examples."""
    examples, steps, n_shards = budget(name)
    share = examples // n_shards + (1 if shard < examples % n_shards else 0)
    ci = profile() == "ci"
    return settings(
        settings.default,
        max_examples=share,
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


def seeded(machine_cls, name: str, shard: int):
    """The machine class for one shard. In the ci profile shard k > 0 runs
    with hypothesis seed k (a seed overrides derandomize; shard 0 keeps the
    derandomized sequences the ci profile always ran), so the shards explore
    different fixed sequences; other profiles draw fresh ones."""
    if profile() != "ci" or shard == 0:
        return machine_cls
    return seed(shard)(type(f"{machine_cls.__name__}Shard{shard}", (machine_cls,), {}))
