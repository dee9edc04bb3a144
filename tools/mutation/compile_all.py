"""Compiles every mutant's affected deployables (warms titanoboa's disk
cache, proves each mutant is valid Vyper): `python -m tools.mutation.compile_all [names]`."""

import sys
import time

import boa

from tools.mutation.catalogue import MUTANTS
from tools.mutation.materialise import affected_deployables, materialise


def main(names: list[str]) -> int:
    failed = 0
    for mutant in MUTANTS:
        if names and mutant.name not in names:
            continue
        start = time.monotonic()
        folder = materialise(mutant)
        try:
            for deployable in affected_deployables(mutant):
                boa.load_partial(str(folder / deployable)).compiler_data.bytecode  # noqa: B018
        except Exception as exc:  # report every broken mutant, then fail
            failed += 1
            print(f"FAIL {mutant.name}: {type(exc).__name__}: {str(exc).splitlines()[0]}", flush=True)
            continue
        print(f"ok   {mutant.name} ({time.monotonic() - start:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
