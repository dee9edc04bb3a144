"""Runs the invariant machine and the regression tests against each mutant.

For every mutant (catalogue.MUTANTS, or those named):
  (a) the protocol invariant machine (tests/invariants, short budget:
      HYPOTHESIS_PROFILE=dev, no shrinking), repeated up to `rounds` times
      with the invariants already seen failing switched off
      (XMARGIN_SKIP_INVARIANTS), to learn WHICH named invariants catch it;
  (b) the exploit regressions (without their vulnerable-variant checks)
      and a fast subset of the unit and liquidation tests, with -x: the
      first failing test.
Each result is appended to a JSON file as soon as it is known, so an
interrupted run keeps what it measured; `report` renders docs/mutation.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from tools.mutation.catalogue import Mutant
from tools.mutation.materialise import ROOT, materialise

RESULTS = ROOT / "tools" / "mutation" / "results.json"
MACHINE = ROOT / "tests" / "invariants" / "machine.py"
INVARIANT_TEST = "tests/invariants/test_stateful.py::test_protocol_invariants"
# Exploit regressions first (they name the attack), then a fast subset of
# the unit and liquidation tests; -x stops at the first failure.
TESTS = (
    "tests/exploits",
    "tests/unit/test_accounts_operations.py",
    "tests/unit/test_risk_health.py",
    "tests/unit/test_risk_oracle.py",
    "tests/liquidation/test_liquidation_reverts.py",
    "tests/liquidation/test_liquidation_amounts.py",
    "tests/liquidation/test_bad_debt.py",
    "tests/liquidation/test_liquidation_target.py",
    "tests/liquidation/test_liquidation_ratio_rounding.py",
    "tests/liquidation/test_liquidation_same_asset.py",
)
FAILED_LINE = re.compile(r"^FAILED (\S+)", re.MULTILINE)


@dataclass
class Result:
    mutant: str
    invariants: list[str] = field(default_factory=list)  # named invariants that failed
    machine_other: str = ""  # the machine failed outside an invariant (e.g. a wrapper's model check)
    invariant_runs: int = 0
    tests: list[str] = field(default_factory=list)  # failing test node ids
    seconds: float = 0.0
    note: str = ""
    # Attribution (`attribute`): invariant -> {"outcome", "detail", "seconds"}
    # of a machine run with only that invariant checked (XMARGIN_KEEP_GOING).
    targeted: dict = field(default_factory=dict)


def invariant_names() -> list[str]:
    """Names of the machine's @named_invariant methods, in file order."""
    if not MACHINE.is_file():
        return []
    return re.findall(r"@named_invariant\(\)\s*\n\s*def (\w+)\(self", MACHINE.read_text())


def _pytest(args: list[str], env: dict, timeout: int) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", "--tb=short", *args]
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return -1, out
    return done.returncode, done.stdout + done.stderr


def failing_invariant(output: str, names: list[str]) -> str | None:
    """The named invariant a hypothesis failure points at: the last
    traceback frame in machine.py that is an invariant method."""
    frames = re.findall(r"machine\.py:\d+: in (\w+)", output)
    for frame in reversed(frames):
        if frame in names:
            return frame
    return None


def run_invariants(mutant_env: dict, rounds: int, timeout: int, result: Result) -> None:
    names = invariant_names()
    if not names:
        result.note = "no invariant machine"
        return
    skipped: list[str] = []
    for _ in range(rounds):
        env = dict(mutant_env, HYPOTHESIS_PROFILE="dev", XMARGIN_NO_SHRINK="1", XMARGIN_SKIP_INVARIANTS=",".join(skipped))
        code, output = _pytest(["-x", INVARIANT_TEST], env, timeout)
        result.invariant_runs += 1
        if code == 0:
            return
        if code == -1:
            result.note = (result.note + " invariant run timed out").strip()
            return
        name = failing_invariant(output, names)
        if name is None:
            # A rule's own check (a wrapper comparing the contract with the
            # reference model): name the innermost machine frame.
            frames = re.findall(r"tests/invariants/\w+\.py:\d+: in (\w+)", output)
            result.machine_other = frames[-1] if frames else "error"
            return
        result.invariants.append(name)
        skipped.append(name)


def run_tests(mutant_env: dict, timeout: int, result: Result, tests: tuple[str, ...]) -> None:
    code, output = _pytest(["-x", "-k", "not vulnerable_variant", *tests], mutant_env, timeout)
    if code == -1:
        result.note = (result.note + " tests timed out").strip()
    result.tests = FAILED_LINE.findall(output)
    if code not in (0, 1, -1) and not result.tests:
        result.note = (result.note + f" pytest exit {code}").strip()


# --------------------------------------------------------------- attribution
# Wrapper and rule frames: a failure there is the rule-level result check
# (the contract's result against the model's), not an invariant.
RULE_FRAMES = re.compile(r"^(expect|agree|predict|do_\w+|refresh_config|publish|_accrue_first|_expect_keep_going)$")
EXCEPTION_LINE = re.compile(r"^E[ \t]+([A-Za-z_][\w.]*(?:Error|Exception|Revert|Desync)\w*)\b:?[ \t]*(.*)$", re.MULTILINE)


def classify(output: str, target: str) -> tuple[str, str]:
    """(outcome, detail) of a failed machine run checking only `target`:
    "caught" (an AssertionError, or the revert of a view it calls, raised in
    the target's own frame), "machine:
    expect/model" (a rule-level result check), "machine: teardown",
    "machine: rule" (an assertion in tests/invariants/rules.py), or
    "machine: error" (anything else, e.g. an exception in the target that is
    not an assertion: not a catch)."""
    frames = re.findall(r"tests/invariants/(\w+)\.py:\d+: in (\w+)", output)
    excs = EXCEPTION_LINE.findall(output)
    exc = f"{excs[-1][0]}: {excs[-1][1]}"[:240] if excs else "?"
    if not frames:
        return "machine: error", exc
    module, func = frames[-1]
    if module == "machine" and func == target:
        # An assertion, or a revert of a view the invariant calls (views_never_revert).
        hit = excs and excs[-1][0].endswith(("AssertionError", "BoaError"))
        return ("caught" if hit else "machine: error"), exc
    if any(f == "teardown" for _m, f in frames):
        return "machine: teardown", f"{func}: {exc}"
    if module == "machine" and RULE_FRAMES.match(func):
        return "machine: expect/model", f"{func}: {exc}"
    if module == "rules":
        return "machine: rule", f"{func}: {exc}"
    return "machine: error", f"{module}.{func}: {exc}"


def attribute(mutant: Mutant, targets: list[str], timeout: int, keep_going: bool = True) -> dict:
    """Runs the protocol machine once per target invariant, only that
    invariant checked; returns {invariant: {"outcome", "detail", "seconds"}}."""
    folder = materialise(mutant)
    out = {}
    for target in targets:
        start = time.monotonic()
        env = dict(os.environ, XMARGIN_CONTRACTS_DIR=str(folder), HYPOTHESIS_PROFILE="mutation", XMARGIN_NO_SHRINK="1",
                   XMARGIN_ONLY_INVARIANTS=target, XMARGIN_SKIP_INVARIANTS="")
        if keep_going:
            env["XMARGIN_KEEP_GOING"] = "1"
        # A fresh example database: no failing sequence of another mutant is
        # replayed first (hypothesis's reuse phase).
        env["HYPOTHESIS_STORAGE_DIRECTORY"] = tempfile.mkdtemp(prefix="xmargin-attr-")
        code, output = _pytest(["-x", INVARIANT_TEST], env, timeout)
        if code == 0:
            outcome, detail = "passed", ""
        elif code == -1:
            outcome, detail = "timeout", ""
        else:
            outcome, detail = classify(output, target)
        out[target] = {"outcome": outcome, "detail": detail, "seconds": round(time.monotonic() - start, 1),
                       "keep_going": keep_going}
        print(f"  {mutant.name} / {target}: {outcome} {detail[:160]} ({out[target]['seconds']} s)", flush=True)
    return out


def save_targeted(name: str, targeted: dict) -> None:
    results = load_results()
    entry = results.setdefault(name, asdict(Result(mutant=name)))
    entry.setdefault("targeted", {}).update(targeted)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


def load_results() -> dict[str, dict]:
    if RESULTS.is_file():
        return json.loads(RESULTS.read_text())
    return {}


def save_result(result: Result) -> None:
    results = load_results()
    results[result.mutant] = asdict(result)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


def run(mutants: list[Mutant], rounds: int, invariant_timeout: int, test_timeout: int, skip_invariants: bool,
        tests: tuple[str, ...] = TESTS) -> list[Result]:
    out = []
    for mutant in mutants:
        start = time.monotonic()
        folder = materialise(mutant)
        env = dict(os.environ, XMARGIN_CONTRACTS_DIR=str(folder))
        result = Result(mutant=mutant.name)
        if skip_invariants:
            # Keep what the machine runs measured before (tests re-run only).
            previous = load_results().get(mutant.name, {})
            result.invariants = previous.get("invariants", [])
            result.machine_other = previous.get("machine_other", "")
            result.invariant_runs = previous.get("invariant_runs", 0)
        else:
            run_invariants(env, rounds, invariant_timeout, result)
        run_tests(env, test_timeout, result, tests)
        result.seconds = round(time.monotonic() - start, 1)
        result.targeted = load_results().get(mutant.name, {}).get("targeted", {})
        save_result(result)
        caught = result.invariants or result.tests or result.machine_other
        print(f"{'caught' if caught else 'SURVIVED'} {mutant.name}: invariants={result.invariants} "
              f"machine={result.machine_other or '-'} tests={result.tests} ({result.seconds} s)", flush=True)
        out.append(result)
    return out
