"""Gas regression gate: no operation may cost more than 2% over the baseline.

    python -m benchmarks.gas.check_regression              # re-runs the scenario (make gas-check)
    python -m benchmarks.gas.check_regression --results F  # compares a fresh results file instead

The baseline is the committed benchmarks/gas/results.json (written by
`make bench-gas`). Every operation of the baseline, the marginal-cost
figures included, is compared with the fresh run: exit 1 if any costs more
than baseline * 1.02 (the offending rows are printed) or is missing; exit 0
otherwise. Improvements pass, with a hint to lower the baseline by running
`make bench-gas` and committing the updated results. Gas is deterministic, so
any change at all comes from the code (or from a different anvil/hardfork or
vyper, which are printed when they differ from the baseline's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

from .run_gas import RESULTS_JSON, ROOT

TOLERANCE = 0.02


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def compare(baseline: dict, fresh: dict, tolerance: float) -> tuple[list, list, list, list]:
    """(regressions, improvements, missing, new) over the flat `gas` maps."""
    base, now = baseline["gas"], fresh["gas"]
    regressions, improvements, missing = [], [], []
    for op_id, b in base.items():
        if op_id not in now:
            missing.append(op_id)
            continue
        n = now[op_id]
        if n > b * (1 + tolerance):
            regressions.append((op_id, b, n))
        elif n < b:
            improvements.append((op_id, b, n))
    new = [op_id for op_id in now if op_id not in base]
    return regressions, improvements, missing, new


def _label(results: dict, op_id: str) -> str:
    tx = results.get("transactions", {}).get(op_id, {})
    return tx.get("label", op_id)


def _rows(items, results) -> list[str]:
    lines = [f"  {'operation':<30} {'baseline':>10} {'now':>10} {'change':>10} {'%':>8}  label"]
    for op_id, b, n in items:
        lines.append(f"  {op_id:<30} {b:>10,} {n:>10,} {n - b:>+10,} {100 * (n - b) / b:>+7.2f}%  {_label(results, op_id)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=RESULTS_JSON, help="committed results (default: %(default)s)")
    parser.add_argument("--results", type=Path, help="fresh results file; default: re-run the scenario now")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="allowed growth (default: 0.02 = 2%%)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every operation, not just the summary")
    args = parser.parse_args(argv)

    if not args.baseline.is_file():
        print(f"gas-check: FAIL: no baseline {_rel(args.baseline)}; create it with `make bench-gas` and commit it")
        return 1
    baseline = json.loads(args.baseline.read_text())

    t0 = time.monotonic()
    if args.results is not None:
        fresh = json.loads(args.results.read_text())
        source = _rel(args.results)
    else:
        from .run_gas import run_scenario

        def quiet(msg: str = "", *a, **k) -> None:  # keep only the (slow) compile notices
            if args.verbose or str(msg).startswith("compil"):
                print(msg, *a, **k)

        try:
            fresh = run_scenario(log=quiet)
        except Exception as exc:  # noqa: BLE001 - any failure of the scenario fails the gate
            traceback.print_exc()
            print(f"gas-check: FAIL: the gas scenario did not run through: {type(exc).__name__}: {exc}")
            print("gas-check: (benchmarks/gas/run_gas.py drives the engine's ABI; adapt it if the ABI changed on purpose)")
            return 1
        source = f"a fresh run ({time.monotonic() - t0:.0f}s)"

    regressions, improvements, missing, new = compare(baseline, fresh, args.tolerance)
    env_diff = [
        f"{key} {baseline.get(key)} -> {fresh.get(key)}"
        for key in ("vyper", "anvil", "hardfork")
        if baseline.get(key) != fresh.get(key)
    ]
    failed = bool(regressions or missing)

    if args.verbose:
        every = [(op_id, b, fresh["gas"].get(op_id, 0)) for op_id, b in baseline["gas"].items() if op_id in fresh["gas"]]
        print("\n".join(_rows(every, fresh)))
    if env_diff:
        print(f"gas-check: note: environment differs from the baseline's: {', '.join(env_diff)}")
    if regressions:
        print(f"gas-check: FAIL: {len(regressions)} operation(s) cost more than {args.tolerance:.0%} over {_rel(args.baseline)}:")
        print("\n".join(_rows(regressions, fresh)))
    if missing:
        print(f"gas-check: FAIL: operation(s) of the baseline missing from {source}: {', '.join(missing)}")
    if new:
        print(f"gas-check: note: operation(s) not in the baseline: {', '.join(new)} (add them with `make bench-gas`)")
    if improvements:
        print(f"gas-check: {len(improvements)} operation(s) cheaper than the baseline:")
        print("\n".join(_rows(improvements, fresh)))
        print("gas-check: hint: update the baseline with `make bench-gas` and commit benchmarks/gas/results.json and RESULTS.md")
    worst = max(((fresh["gas"][o] - b) / b for o, b in baseline["gas"].items() if o in fresh["gas"]), default=0.0)
    print(
        f"gas-check: {'FAIL' if failed else 'OK'}: {len(baseline['gas'])} operations of {_rel(args.baseline)} "
        f"vs {source}; worst change {100 * worst:+.2f}% (limit +{100 * args.tolerance:.0f}%)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
