"""Prints how many stateful steps ran (tests/invariants/steps.py) in the
terminal summary: "stateful steps: N (... CPU s, ... steps per CPU second)"."""

from tests.invariants import steps


def pytest_terminal_summary(terminalreporter):
    n = steps.total()
    if n:
        cpu = steps.cpu_seconds()
        rate = f", {n / cpu:.0f} steps per CPU second" if cpu else ""
        terminalreporter.write_line(f"stateful steps: {n} (machines: {cpu:.0f} CPU s{rate})")
