#!/usr/bin/env python3
"""Fail if any deployable Vyper contract exceeds the EVM code-size limits.

Compiles every deployable under contracts/ with the installed vyper (the same
compiler ape-vyper uses) and checks:

* runtime bytecode  <= 24,576 bytes (EIP-170)   -- the limit this gate enforces
* initcode          <= 49,152 bytes (EIP-3860)  -- checked too; deploys fail past it

Deployables are all ``contracts/**/*.vy`` files except those under
``contracts/modules/`` (library modules, not standalone-compilable) and
``contracts/interfaces/`` (``.vyi`` files are never deployables).  Mocks are
included: the demo and tests deploy them on anvil, which enforces EIP-170.

Compilation mirrors ape-vyper's invocation of the vyper CLI: each file's own
``# pragma`` lines decide version/optimization/evm-version, and the search
path is sys.path (so ``from snekmate... import`` works), the current dir and
the project root.

Usage:  python tools/check_bytecode_size.py [FILE.vy ...]
Exit status: 0 ok (or nothing to check), 1 over a limit or compile error.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

EIP170_RUNTIME_LIMIT = 24_576
EIP3860_INITCODE_LIMIT = 2 * EIP170_RUNTIME_LIMIT

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
SKIP_DIRS = ("modules", "interfaces")


def find_deployables() -> list[Path]:
    if not CONTRACTS.is_dir():
        return []
    found = []
    for path in sorted(CONTRACTS.rglob("*.vy")):
        rel = path.relative_to(CONTRACTS)
        if rel.parts[0] in SKIP_DIRS:
            continue
        found.append(path)
    return found


def search_paths() -> list[Path]:
    # Same order/precedence as `vyper.cli.vyper_compile.get_search_paths` with
    # `-p <project root>` (what ape-vyper passes): later entries win.
    paths = [Path(p) for p in reversed(sys.path)]
    paths.append(Path("."))
    paths.append(ROOT)
    return paths


def compile_sizes(path: Path, input_bundle) -> tuple[int, int]:
    """(deployed runtime size, initcode size) in bytes. The deployed runtime
    is the compiled runtime plus the immutables' data section, which Vyper
    appends at deployment (its `code_layout`): that sum is what EIP-170
    limits."""
    import vyper

    file_input = input_bundle.load_file(path.relative_to(ROOT))
    out = vyper.compile_from_file_input(
        file_input,
        input_bundle=input_bundle,
        output_formats=["bytecode", "bytecode_runtime", "layout"],
    )
    runtime = bytes.fromhex(out["bytecode_runtime"].removeprefix("0x"))
    initcode = bytes.fromhex(out["bytecode"].removeprefix("0x"))
    immutables = sum(v["length"] for v in _flatten_layout(out["layout"].get("code_layout", {})))
    return len(runtime) + immutables, len(initcode)


def _flatten_layout(layout: dict) -> list[dict]:
    """Leaf entries of a (possibly module-nested) Vyper layout dict."""
    leaves = []
    for value in layout.values():
        if isinstance(value, dict) and "length" in value and "offset" in value:
            leaves.append(value)
        elif isinstance(value, dict):
            leaves.extend(_flatten_layout(value))
    return leaves


def main(argv: list[str]) -> int:
    os.chdir(ROOT)  # ape-vyper compiles from the project root as well
    import warnings

    import vyper
    from vyper.compiler.input_bundle import FilesystemInputBundle

    try:  # the table below reports sizes; don't repeat vyper's own size warning
        from vyper.warnings import ContractSizeLimit

        warnings.simplefilter("ignore", ContractSizeLimit)
    except ImportError:
        pass

    if argv:
        files = [Path(a).resolve() for a in argv]
    else:
        files = find_deployables()

    if not files:
        print(f"check_bytecode_size: no deployable contracts found under {CONTRACTS.relative_to(ROOT)}/ - nothing to check")
        return 0

    bundle = FilesystemInputBundle(search_paths())
    rows = []
    failed = False
    t0 = time.monotonic()
    for path in files:
        name = str(path.relative_to(ROOT))
        try:
            runtime, initcode = compile_sizes(path, bundle)
        except Exception as exc:  # compile error: report and fail
            failed = True
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            rows.append((name, None, None, f"COMPILE ERROR: {type(exc).__name__}: {first_line}"))
            print(f"\n--- {name} failed to compile ---\n{exc}\n", file=sys.stderr)
            continue
        status = "ok"
        if runtime > EIP170_RUNTIME_LIMIT:
            status = "OVER EIP-170 LIMIT"
            failed = True
        elif initcode > EIP3860_INITCODE_LIMIT:
            status = "OVER EIP-3860 INITCODE LIMIT"
            failed = True
        rows.append((name, runtime, initcode, status))

    width = max(len("contract"), *(len(r[0]) for r in rows))
    header = f"{'contract':<{width}}  {'runtime':>8}  {'headroom':>9}  {'used':>6}  {'initcode':>8}  status"
    print(f"vyper {vyper.__version__}; EIP-170 runtime limit {EIP170_RUNTIME_LIMIT} bytes")
    print(header)
    print("-" * len(header))
    for name, runtime, initcode, status in rows:
        if runtime is None:
            print(f"{name:<{width}}  {'-':>8}  {'-':>9}  {'-':>6}  {'-':>8}  {status}")
            continue
        headroom = EIP170_RUNTIME_LIMIT - runtime
        used = 100.0 * runtime / EIP170_RUNTIME_LIMIT
        print(f"{name:<{width}}  {runtime:>8}  {headroom:>9}  {used:>5.1f}%  {initcode:>8}  {status}")
    print(f"checked {len(rows)} contract(s) in {time.monotonic() - t0:.1f}s: {'FAIL' if failed else 'OK'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
