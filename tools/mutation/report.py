"""Renders docs/mutation.md from tools/mutation/results.json."""

from __future__ import annotations

from tools.mutation.catalogue import MUTANTS
from tools.mutation.materialise import ROOT
from tools.mutation.run import invariant_names, load_results

DOC = ROOT / "docs" / "mutation.md"

INTRO = """# Mutation testing

A test suite proves something only if it fails when the code is wrong.
`tools/mutation` re-opens deliberate bugs - one per *mutant* - in a copy of
`contracts/`, and checks that the invariant machine (`tests/invariants`,
docs/invariants.md) and the regression tests catch each one.

- **Catalogue**: `tools/mutation/catalogue.py`. A mutant is
  `(name, file, exact search text, replacement, description, targets)`;
  the search text must occur exactly once in its file
  (`tests/exploits/test_mutant_catalogue.py` checks it in CI, so the
  catalogue cannot rot silently when the contracts change).
- **Copies**: `tools/mutation/materialise.py` writes the mutated file, the
  modules and only the deployables that import the mutated file to
  `$XMARGIN_MUTANTS_DIR` (default `/tmp/xmargin-mutants/<name>-<hash>`).
  `tests/protocol.py` compiles from `$XMARGIN_CONTRACTS_DIR` when it holds
  the file and from `contracts/` otherwise, so unaffected contracts are not
  recompiled; titanoboa's disk cache makes a second compile of the same
  copy cheap.
- **Exploit regressions**: every file in `tests/exploits/` has
  `test_*_vulnerable_variant_*` checks that deploy a named mutant and show
  the attack then succeeds (docs/exploits.md).

## Running it

```
python -m tools.mutation list                 # the catalogue
python -m tools.mutation check                # search texts still unique (also a CI test)
python -m tools.mutation run [NAMES...]       # all mutants, or the named ones
      [--rounds 2] [--skip-invariants] [--skip-done]
python -m tools.mutation report               # re-render this file from results.json
python -m tools.mutation.compile_all          # compile every mutant (warms the cache)
```

Per mutant, `run` does:

1. the protocol invariant machine, `HYPOTHESIS_PROFILE=dev` (20 sequences
   of 50 steps), no shrinking, `-x`; the failing invariant is read from the
   traceback (the last frame in `tests/invariants/machine.py` that is a
   `@named_invariant`). It is then re-run with the invariants caught so far
   switched off (`XMARGIN_SKIP_INVARIANTS`), up to `--rounds` times, to find
   further invariants that catch the same bug;
2. the exploit regressions (without their vulnerable-variant checks) and a
   fast subset of the unit and liquidation tests (`tools/mutation/run.py`
   `TESTS`) with `-x`: the first failing test is recorded.

It is not part of CI: each mutant costs its compile (10-20 s on an idle
machine, minutes on a loaded one) plus the runs. Results are written to
`tools/mutation/results.json` after each mutant.
"""


def variant_checks() -> dict[str, list[str]]:
    """Mutant -> the exploit modules whose vulnerable-variant check deploys it."""
    import re

    found: dict[str, list[str]] = {}
    for module in sorted((ROOT / "tests" / "exploits").glob("test_*.py")):
        for name in re.findall(r'vulnerable\("([\w-]+)"\)', module.read_text()):
            found.setdefault(name, []).append(module.stem)
    return found


def _cell(items: list[str]) -> str:
    return "<br>".join(f"`{i}`" for i in items) if items else "-"


def write_report() -> None:
    results = load_results()
    names = invariant_names()
    lines = [INTRO, "## Results", ""]
    ran = [m for m in MUTANTS if m.name in results]
    caught = [m for m in ran if results[m.name]["invariants"] or results[m.name]["tests"] or results[m.name]["machine_other"]]
    lines.append(
        f"{len(MUTANTS)} mutants in the catalogue; {len(ran)} run; {len(caught)} caught; "
        f"{len(ran) - len(caught)} survived; {len(MUTANTS) - len(ran)} not run yet."
    )
    variants = variant_checks()
    lines.append(
        f"{sum(1 for m in MUTANTS if m.name in variants)} mutants are also deployed by an exploit module's "
        "vulnerable-variant check (last column), which runs in CI and shows the attack succeeds on them."
    )
    lines += ["", "| mutant | file | bug | invariants that caught it | first failing test | s | vulnerable-variant check |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in MUTANTS:
        r = results.get(m.name)
        shown = _cell(variants.get(m.name, []))
        if r is None:
            lines.append(f"| `{m.name}` | {m.file} | {m.description} | not run | not run | | {shown} |")
            continue
        inv = list(r["invariants"])
        if r["machine_other"]:
            inv.append(f"(machine: {r['machine_other']})")
        tests = [t.split("::")[0].rsplit("/", 1)[-1] + "::" + t.split("::")[-1] for t in r["tests"]]
        note = f" ({r['note']})" if r.get("note") else ""
        lines.append(f"| `{m.name}` | {m.file} | {m.description} | {_cell(inv)}{note} | {_cell(tests)} | {r['seconds']:.0f} | {shown} |")
    tests_only = [m.name for m in ran if results[m.name]["tests"] and not results[m.name]["invariants"]
                  and not results[m.name]["machine_other"] and results[m.name]["invariant_runs"]]
    survived = [m.name for m in ran if m not in caught]
    lines += ["", "Caught by the tests but not by the invariant machine at this budget "
              "(candidates for a longer machine run or a new rule): " + (", ".join(f"`{n}`" for n in tests_only) or "none") + ".",
              "", "Survived everything (a missing test): " + (", ".join(f"`{n}`" for n in survived) or "none") + "."]
    if names:
        lines += ["", "## Invariants and the mutants they caught", "", "| invariant | mutants |", "| --- | --- |"]
        for name in names:
            hits = [m.name for m in ran if name in results[m.name]["invariants"]]
            lines.append(f"| `{name}` | {_cell(hits)} |")
        missed = [n for n in names if not any(n in results[m.name]["invariants"] for m in ran)]
        lines += ["", f"Invariants no mutant run so far has tripped ({len(missed)} of {len(names)}): "
                  + (", ".join(f"`{n}`" for n in missed) or "none") + "."]
    DOC.write_text("\n".join(lines) + "\n")
