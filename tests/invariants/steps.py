"""Counts the stateful steps (rules) run in this process, the CPU time
they took and the outcomes of liquidations and settlements, for the
summary printed at the end of pytest (tests/conftest.py) and the landing
checks of tests/invariants/test_stateful.py."""

import time
from collections import Counter

_count = 0
_cpu = 0.0
# "liquidate: ok", "flash_liquidate: liquidation: paused", "settle: ok", ...
_outcomes: Counter = Counter()


def count() -> None:
    global _count
    _count += 1


def total() -> int:
    return _count


def outcome(kind: str, reason: str | None) -> None:
    """Books a liquidation or settlement: its kind and revert reason (None: landed)."""
    _outcomes[f"{kind}: {reason or 'ok'}"] += 1


def outcomes() -> Counter:
    """A copy of the outcome counts so far (in this process)."""
    return Counter(_outcomes)


def landed(counts: Counter, kind: str) -> int:
    return counts[f"{kind}: ok"]


def attempts(counts: Counter, kind: str) -> int:
    return sum(n for key, n in counts.items() if key.split(": ", 1)[0] == kind)


def summary(counts: Counter) -> str:
    """"liquidate 40/120, flash_liquidate 30/90, settle 20/60" (landed/attempts)."""
    kinds = ("liquidate", "flash_liquidate", "settle")
    return ", ".join(f"{k} {landed(counts, k)}/{attempts(counts, k)}" for k in kinds)


class cpu_timer:
    """Adds the process CPU time of the block to the machines' total (wall
    time on a shared machine says little; CPU time is what CI pays)."""

    def __enter__(self):
        self._start = time.process_time()

    def __exit__(self, *exc):
        global _cpu
        _cpu += time.process_time() - self._start


def cpu_seconds() -> float:
    return _cpu


def add(count: int, cpu: float, outcomes: dict | None = None) -> None:
    """Adds a pytest-xdist worker's totals (the controller prints the sum)."""
    global _count, _cpu
    _count += count
    _cpu += cpu
    _outcomes.update(outcomes or {})
