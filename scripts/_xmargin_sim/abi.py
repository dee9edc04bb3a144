"""Contract ABIs for the web3-only tooling, without ape at runtime.

Lookup order for a contract `Name`:
1. `abi/<Name>.json` in the repository (the exported ABIs), if present: a
   JSON list, or an object with an "abi" list;
2. a cache file `.build/xmargin_sim/abi-<hash>.json`, keyed by the hash of
   every `contracts/**/*.vy` file, so an edited contract is recompiled;
3. `vyper -f abi contracts/<path>.vy` (about 2-4 s per contract), written to
   that cache.

`engine_abi()` merges MarginEngine's ABI with MarginEngineExtension's (the
engine delegatecalls unknown selectors to the extension), de-duplicated by
(type, name, input types); events from the shared ledger module appear once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
CACHE_DIR = ROOT / ".build" / "xmargin_sim"

SOURCES = {
    "MarginEngine": "MarginEngine.vy",
    "MarginEngineExtension": "MarginEngineExtension.vy",
    "MarginLens": "MarginLens.vy",
    "MarginConfigurator": "MarginConfigurator.vy",
    "MockERC20": "mocks/MockERC20.vy",
    "MockAggregator": "mocks/MockAggregator.vy",
}


def _sources_hash() -> str:
    h = hashlib.sha256()
    for path in sorted(CONTRACTS.rglob("*.vy*")):
        h.update(str(path.relative_to(CONTRACTS)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _vyper() -> str:
    local = Path(sys.executable).parent / "vyper"
    return str(local) if local.exists() else (shutil.which("vyper") or "vyper")


def _compile(name: str) -> list:
    out = subprocess.run(
        [_vyper(), "-f", "abi", str(CONTRACTS / SOURCES[name])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"vyper -f abi {SOURCES[name]} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def _exported(name: str) -> list | None:
    for path in (ROOT / "abi" / f"{name}.json", ROOT / "abi" / "mocks" / f"{name}.json"):
        if path.is_file():
            data = json.loads(path.read_text())
            return data["abi"] if isinstance(data, dict) else data
    return None


@lru_cache(maxsize=1)
def all_abis() -> dict[str, list]:
    """Every ABI in `SOURCES`, by contract name."""
    found = {n: a for n in SOURCES if (a := _exported(n)) is not None}
    if "MarginEngine" in found and any(i.get("name") == "batch" for i in found["MarginEngine"]):
        found.setdefault("MarginEngineExtension", [])  # the export is already merged
    missing = [n for n in SOURCES if n not in found]
    if not missing:
        return found
    cache = CACHE_DIR / f"abi-{_sources_hash()}.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
    else:
        with ThreadPoolExecutor(max_workers=2) as pool:
            cached = dict(zip(SOURCES, pool.map(_compile, SOURCES)))
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(cached))
        tmp.replace(cache)
    return {n: found.get(n) or cached[n] for n in SOURCES}


def abi(name: str) -> list:
    return all_abis()[name]


def _key(item: dict) -> tuple:
    return (item.get("type"), item.get("name"), tuple(i["type"] for i in item.get("inputs", [])))


def engine_abi() -> list:
    """MarginEngine's ABI plus MarginEngineExtension's functions and events
    (without the extension's constructor)."""
    merged, seen = [], set()
    for item in abi("MarginEngine") + abi("MarginEngineExtension"):
        if item.get("type") == "constructor" and merged and any(m.get("type") == "constructor" for m in merged):
            continue
        if _key(item) in seen:
            continue
        seen.add(_key(item))
        merged.append(item)
    return merged
