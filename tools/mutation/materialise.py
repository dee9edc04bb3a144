"""Writes a mutant's copy of contracts/ and finds which deployables it affects.

The copy lives at a path fixed by the mutant's name and the hash of the
mutated source (`$XMARGIN_MUTANTS_DIR`, default /tmp/xmargin-mutants), so
titanoboa's disk cache (keyed by file path and content) makes recompiling a
mutant in a later process cheap. The copy holds the modules and interfaces
(needed by every import), the mutated file, and only the deployables whose
import closure contains the mutated file: tests/protocol.py takes every file
the copy lacks from contracts/, so unaffected contracts are not recompiled.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from tools.mutation.catalogue import Mutant

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
MUTANTS_DIR_ENV = "XMARGIN_MUTANTS_DIR"
# Every top-level contract: a mutant's copy must hold each one whose import
# closure holds the mutated file (a deployable missing here would be taken
# unmutated from contracts/, and its mutants would silently do nothing).
DEPLOYABLES = tuple(sorted(p.name for p in CONTRACTS.glob("*.vy")))
# `from .modules import ledger`, `from . import margin`, `from ..interfaces import IAggregatorV3`
IMPORT = re.compile(r"^from\s+(\.+)([\w.]*)\s+import\s+(\w+)", re.MULTILINE)


class MutantError(Exception):
    """The mutant's search text is missing or not unique in its file."""


def _apply(mutant: Mutant, contracts: Path) -> tuple[str, int]:
    """(the mutated source, 1 when every search text occurs exactly once in
    the text the earlier edits left, else the first other count)."""
    source = (contracts / mutant.file).read_text()
    for search, replacement in mutant.edits:
        count = source.count(search)
        if count != 1:
            return source, count
        source = source.replace(search, replacement)
    return source, 1


def occurrences(mutant: Mutant, contracts: Path = CONTRACTS) -> int:
    return _apply(mutant, contracts)[1]


def mutated_source(mutant: Mutant, contracts: Path = CONTRACTS) -> str:
    source, count = _apply(mutant, contracts)
    if count != 1:
        raise MutantError(f"{mutant.name}: search text occurs {count} times in contracts/{mutant.file} (must be once)")
    return source


def imports_of(relative: str, contracts: Path = CONTRACTS) -> set[str]:
    """Contract files (relative to contracts/) that `relative` imports, transitively."""
    seen: set[str] = set()
    todo = [relative]
    while todo:
        current = todo.pop()
        base = (contracts / current).parent
        for dots, package, name in IMPORT.findall((contracts / current).read_text()):
            folder = base
            for _ in range(len(dots) - 1):
                folder = folder.parent
            if package:
                folder = folder / package.replace(".", "/")
            for suffix in (".vy", ".vyi"):
                target = folder / f"{name}{suffix}"
                if target.is_file():
                    rel = str(target.relative_to(contracts))
                    if rel not in seen:
                        seen.add(rel)
                        todo.append(rel)
    return seen


def affected_deployables(mutant: Mutant, contracts: Path = CONTRACTS) -> list[str]:
    return [d for d in DEPLOYABLES if d == mutant.file or mutant.file in imports_of(d, contracts)]


def materialise(mutant: Mutant) -> Path:
    """The directory of the mutant's contracts (created once, then reused)."""
    source = mutated_source(mutant)
    # Keyed by every contract source too: a copy made before another contract
    # changed (e.g. the engine's constructor) must not be reused.
    h = hashlib.sha256(f"{mutant.file}\0{source}".encode())
    for path in sorted(CONTRACTS.rglob("*.vy*")):
        h.update(b"\0" + str(path.relative_to(CONTRACTS)).encode() + b"\0" + path.read_bytes())
    digest = h.hexdigest()[:12]
    root = Path(os.environ.get(MUTANTS_DIR_ENV, Path(tempfile.gettempdir()) / "xmargin-mutants"))
    target = root / f"{mutant.name}-{digest}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{mutant.name}-", dir=root))
    for folder in ("modules", "interfaces"):
        shutil.copytree(CONTRACTS / folder, staging / folder)
    for deployable in affected_deployables(mutant):
        shutil.copy2(CONTRACTS / deployable, staging / deployable)
    (staging / mutant.file).parent.mkdir(parents=True, exist_ok=True)
    (staging / mutant.file).write_text(source)
    try:
        staging.rename(target)  # atomic: a concurrent process may have won
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target
