"""Step budgets of the invariant machines per hypothesis profile
(HYPOTHESIS_PROFILE: dev / ci / nightly; docs/invariants.md).

A machine's budget is `examples` independent sequences of `steps` rules
each (every rule is one step, counted by tests.invariants.steps), split
into `shards` tests so that pytest-xdist spreads it over the CI machine's
2 cores. In the ci profile each shard explores its own fixed pseudo-random
sequences (seeded by the shard number: reproducible from a fresh clone);
dev and nightly draw new ones on every run.
"""

import contextlib
import functools
import importlib
import os

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants, constants_from_module
from hypothesis.internal.floats import float_to_int
from sortedcontainers import SortedSet

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
    """The machine class for one shard. In the ci profile shard k runs with
    hypothesis seed k, so the shards explore different fixed sequences;
    other profiles draw fresh ones. Every shard is seeded, shard 0 too: a
    derandomized machine's seed is a digest of the machine class's source
    (hypothesis `function_digest`), so any edit of the rules -- a pure
    refactor included -- would change its sequences."""
    if profile() != "ci":
        return machine_cls
    return seed(shard)(type(f"{machine_cls.__name__}Shard{shard}", (machine_cls,), {}))


# The modules whose literals seed hypothesis's pool of "local constants".
CONSTANT_MODULES = (
    "keeper.risk_model",
    "tests.protocol",
    "tests.invariants.world",
    "tests.invariants.machine",
    "tests.invariants.rules",
)


@functools.cache
def _module_constants(name: str) -> Constants:
    return constants_from_module(importlib.import_module(name))


@contextlib.contextmanager
def fixed_constant_pool(modules: tuple[str, ...] = CONSTANT_MODULES):
    """Runs a machine with the same pool of "local constants" in every process.

    Hypothesis (>= 6.131) sometimes draws an integer from the literals of
    every local module imported so far (sys.modules), and caches the
    filtered pool per draw shape. So the sequences a derandomized or seeded
    shard explores depended on which other test modules the process had
    imported before it (a full pytest-xdist run explored other sequences
    than the shard alone, and failed where the shard alone passed). Inside
    this block the pool is the literals of `modules` only (by default
    CONSTANT_MODULES, the machines' own; tests/conftest.py pins every other
    test to its own module's).
    Uses hypothesis internals (pinned: constraints.txt); a renamed internal
    fails loudly here rather than silently losing reproducibility."""
    # Sorted, as hypothesis keeps its own pool: a plain set of strings
    # iterates in a per-process (hash-seeded) order.
    pool = Constants(
        integers=SortedSet(), floats=SortedSet(key=float_to_int), bytes=SortedSet(), strings=SortedSet()
    )
    for name in modules:
        pool |= _module_constants(name)
    original = providers._get_local_constants
    providers.CONSTANTS_CACHE.cache.clear()
    providers._get_local_constants = lambda: pool
    try:
        yield pool
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE.cache.clear()
