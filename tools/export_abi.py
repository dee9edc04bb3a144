"""Exports the JSON ABIs front-ends import, into abi/.

    python tools/export_abi.py            # (re)write abi/
    python tools/export_abi.py --check    # exit 1 if abi/ differs from the contracts
    python tools/export_abi.py --local    # also abi/deployments/local/<network>.json from
                                          # deployments/local/ (`make demo`, git-ignored)

Layout written (every file is generated; do not edit by hand):

  abi/MarginEngine.json          MarginEngine merged with MarginEngineExtension:
                                 the engine forwards unknown selectors to the
                                 extension by delegatecall, so a front-end calls
                                 both through the engine's address with this ABI.
  abi/MarginConfigurator.json, abi/MarginLens.json
  abi/interfaces/ILiquidationCallback.json
                                 what a flash liquidator implements (the
                                 interface is declared inside MarginEngine.vy).
  abi/mocks/<Mock>.json          test tokens and feeds (local chains only).
  abi/deployments/<network>.json addresses of every committed deployment record
                                 deployments/<network>.json (live networks).
  abi/index.json, abi/index.js, abi/package.json
                                 an index, and a tiny ESM package so
                                 `import { MarginEngine } from "@xmargin/abi"` works.
  keeper/abi/MarginEngine.json, keeper/abi/MarginLens.json
                                 the same two files, shipped inside the keeper
                                 package (keeper/abi.py reads them); checked
                                 with abi/ by --check and tests/abi/.

ABIs come from vyper 0.4.3 (`vyper -f abi`, through its Python API), entries
sorted by (type, name, signature) so diffs stay readable. tests/abi/ fails
when the committed files drift from the compiled contracts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
ABI_DIR = ROOT / "abi"
KEEPER_ABI_DIR = ROOT / "keeper" / "abi"
KEEPER_COPIES = ("MarginEngine.json", "MarginLens.json")  # the rest of keeper/abi/ is not compiled from contracts/
DEPLOYMENTS = ROOT / "deployments"

CORE = ("MarginConfigurator", "MarginLens")
MOCKS = ("MockERC20", "MockUSDT", "MockFeeOnTransferToken", "MockHookToken", "MockAggregator", "MockSequencerFeed")
PACKAGE_NAME = "@xmargin/abi"
PACKAGE_VERSION = "0.1.0"
FIX_HINT = "run `python tools/export_abi.py` and commit abi/"


# ---------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------


def _compile_abis(paths: list[Path]) -> dict[Path, list[dict]]:
    """`vyper -f abi` of each file (one compiler session; snekmate is found
    on sys.path like the CLI does)."""
    from vyper.cli.vyper_compile import compile_files

    out = compile_files([str(p) for p in paths], ("abi",), paths=[str(ROOT)])
    return {Path(k).resolve(): v["abi"] for k, v in out.items()}


def _callback_interface_source() -> str:
    """ILiquidationCallback as a standalone .vyi: the block declared in
    MarginEngine.vy, with the ledger constant it names inlined."""
    engine = (CONTRACTS / "MarginEngine.vy").read_text()
    block = re.search(r"^interface ILiquidationCallback:\n((?:    .*\n|\n)+?)(?=\S)", engine, re.M)
    if block is None:
        raise SystemExit("export_abi: `interface ILiquidationCallback:` not found in contracts/MarginEngine.vy")
    ledger = (CONTRACTS / "modules" / "ledger.vy").read_text()
    constants = dict(re.findall(r"^([A-Z_]+): constant\(uint256\) = (\d+)", ledger, re.M))
    body = re.sub(r"ledger\.([A-Z_]+)", lambda m: constants[m.group(1)], block.group(1))
    body = textwrap.dedent(body).strip()
    # `def f(...): <mutability>` (interface block) -> `@external [@view] def f(...): ...` (.vyi)
    functions = re.findall(r"^def (.*?\)(?:\s*->\s*[^:]+)?):\s*(\w+)$", body, re.M | re.S)
    if not functions:
        raise SystemExit("export_abi: ILiquidationCallback has no function declarations")
    out = ["# pragma version 0.4.3"]
    for signature, mutability in functions:
        decorators = "@external\n" + ("" if mutability == "nonpayable" else f"@{mutability}\n")
        out.append(f"{decorators}def {signature}:\n    ...\n")
    return "\n".join(out)


def _sort_key(item: dict) -> tuple:
    inputs = ",".join(i["type"] for i in item.get("inputs", []))
    return (item["type"], item.get("name", ""), inputs)


def _selector_key(item: dict) -> tuple:
    return (item["type"], item.get("name"), tuple(i["type"] for i in item.get("inputs", [])))


def merge_engine_abi(engine: list[dict], extension: list[dict]) -> list[dict]:
    """The engine's ABI plus every extension function/event the engine does
    not declare itself (same name and input types). The extension's
    constructor is dropped: it is deployed on its own, never called through
    the engine."""
    merged = list(engine)
    seen = {_selector_key(item) for item in engine}
    for item in extension:
        if item["type"] == "constructor" or _selector_key(item) in seen:
            continue
        merged.append(item)
        seen.add(_selector_key(item))
    return merged


# ---------------------------------------------------------------------------
# Deployments
# ---------------------------------------------------------------------------


def frontend_deployment(record: dict) -> dict:
    """A deployment record reduced to what a front-end needs."""
    return {
        "network": record["network"],
        "chainId": record["chain_id"],
        "deploymentBlock": record.get("deployment_block"),
        "contracts": {
            "MarginEngine": record.get("engine"),
            "MarginConfigurator": record.get("configurator"),
            "MarginLens": record.get("lens"),
            "MarginEngineExtension": record.get("extension"),
        },
        "assets": {
            symbol: {"token": a.get("token"), "feed": a.get("feed"), "assetId": a.get("asset_id")}
            for symbol, a in sorted(record.get("assets", {}).items(), key=lambda kv: (kv[1].get("asset_id") is None, kv[1].get("asset_id") or 0))
        },
    }


def _committed_records() -> dict[str, dict]:
    """deployments/<network>.json of live networks (deployments/local/ is
    git-ignored and never exported)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(DEPLOYMENTS.glob("*.json"))}


# ---------------------------------------------------------------------------
# Building the tree
# ---------------------------------------------------------------------------


def _dump(data) -> str:
    return json.dumps(data, indent=2) + "\n"


def _index_js(entries: dict[str, str]) -> str:
    lines = ["// Generated by tools/export_abi.py -- do not edit.", ""]
    for name, path in entries.items():
        lines.append(f'import {name} from "./{path}" with {{ type: "json" }};')
    lines += ["", f"export {{ {', '.join(entries)} }};", ""]
    return "\n".join(lines)


def build() -> dict[str, str]:
    """Every file of abi/ (relative path -> text)."""
    with tempfile.TemporaryDirectory() as tmp:
        callback = Path(tmp) / "ILiquidationCallback.vyi"
        callback.write_text(_callback_interface_source())
        sources = {
            "MarginEngine": CONTRACTS / "MarginEngine.vy",
            "MarginEngineExtension": CONTRACTS / "MarginEngineExtension.vy",
            **{n: CONTRACTS / f"{n}.vy" for n in CORE},
            **{n: CONTRACTS / "mocks" / f"{n}.vy" for n in MOCKS},
            "ILiquidationCallback": callback,
        }
        abis = _compile_abis(list(sources.values()))
        abi = {name: abis[path.resolve()] for name, path in sources.items()}

    files: dict[str, list] = {
        "MarginEngine.json": merge_engine_abi(abi["MarginEngine"], abi["MarginEngineExtension"]),
        **{f"{n}.json": abi[n] for n in CORE},
        "interfaces/ILiquidationCallback.json": abi["ILiquidationCallback"],
        **{f"mocks/{n}.json": abi[n] for n in MOCKS},
    }
    out = {path: _dump(sorted(items, key=_sort_key)) for path, items in files.items()}
    deployments = {net: frontend_deployment(rec) for net, rec in _committed_records().items()}
    for net, dep in deployments.items():
        out[f"deployments/{net}.json"] = _dump(dep)

    modules = {Path(p).stem: p for p in files}
    out["index.json"] = _dump(
        {
            "package": PACKAGE_NAME,
            "compiler": "vyper 0.4.3",
            "note": "MarginEngine.json includes MarginEngineExtension (called through the engine address).",
            "abis": modules,
            "deployments": {net: f"deployments/{net}.json" for net in deployments},
        }
    )
    out["index.js"] = _index_js(modules)
    out["package.json"] = _dump(
        {
            "name": PACKAGE_NAME,
            "version": PACKAGE_VERSION,
            "description": "xmargin contract ABIs and deployment addresses (generated by tools/export_abi.py).",
            "type": "module",
            "main": "index.js",
            "exports": {".": "./index.js", "./*.json": "./*.json", "./package.json": "./package.json"},
            "files": ["*.json", "index.js", "interfaces/", "mocks/", "deployments/"],
        }
    )
    return out


LOCAL_PREFIX = "deployments/local/"  # exported on request only, git-ignored, never checked


def local_deployments() -> dict[str, str]:
    """abi/deployments/local/<network>.json of every local record
    (deployments/local/*.json, written by `ape run deploy` on dev chains)."""
    return {f"{LOCAL_PREFIX}{p.stem}.json": _dump(frontend_deployment(json.loads(p.read_text())))
            for p in sorted((DEPLOYMENTS / "local").glob("*.json"))}


def keeper_copies(files: dict[str, str]) -> dict[str, str]:
    """The keeper package's copies (keeper/abi/) of the engine and lens ABIs."""
    return {name: files[name] for name in KEEPER_COPIES}


def keeper_diff(files: dict[str, str], root: Path = KEEPER_ABI_DIR) -> list[str]:
    """Problems of the keeper's copies against the export (empty = in sync)."""
    problems = []
    for name, text in keeper_copies(files).items():
        path = root / name
        if not path.is_file() or path.read_text() != text:
            problems.append(f"keeper/abi/{name}: differs from the compiled contracts")
    return problems


def diff(expected: dict[str, str], root: Path = ABI_DIR) -> list[str]:
    """Problems of `root` against `expected` (empty = in sync); local
    deployment exports are ignored."""
    problems = []
    for rel, text in sorted(expected.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"abi/{rel}: missing")
        elif path.read_text() != text:
            problems.append(f"abi/{rel}: differs from the compiled contracts")
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in expected and not rel.startswith(("README", LOCAL_PREFIX)):
            problems.append(f"abi/{rel}: not produced by the export (stale file)")
    return problems


def write(files: dict[str, str], root: Path = ABI_DIR, prune: bool = True) -> None:
    """Writes `files` under `root`; with `prune`, deletes files the export no
    longer produces (never local deployment exports)."""
    for rel in diff(files, root) if prune else []:
        if rel.endswith("(stale file)"):
            (root / rel.split(":")[0].removeprefix("abi/")).unlink()
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if abi/ differs from the contracts; write nothing")
    parser.add_argument("--local", action="store_true",
                        help="also export deployments/local/*.json to abi/deployments/local/ (git-ignored)")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        problems = diff(files) + keeper_diff(files)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print(f"ABI drift: {FIX_HINT}", file=sys.stderr)
            return 1
        print(f"abi/ is in sync ({len(files)} files)")
        return 0
    write(files)
    write(keeper_copies(files), KEEPER_ABI_DIR, prune=False)
    print(f"wrote {len(files)} files under abi/ and {len(KEEPER_COPIES)} under keeper/abi/")
    if args.local:
        local = local_deployments()
        write(local, prune=False)
        print(f"wrote {len(local)} local deployment file(s): " + (", ".join(f"abi/{k}" for k in local) or "none found in deployments/local/"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
