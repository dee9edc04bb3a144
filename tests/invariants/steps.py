"""Counts the stateful steps (rules) run in this process and the CPU time
they took, for the summary printed at the end of pytest
(tests/invariants/conftest.py)."""

import time

_count = 0
_cpu = 0.0


def count() -> None:
    global _count
    _count += 1


def total() -> int:
    return _count


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


def add(count: int, cpu: float) -> None:
    """Adds a pytest-xdist worker's totals (the controller prints the sum)."""
    global _count, _cpu
    _count += count
    _cpu += cpu
