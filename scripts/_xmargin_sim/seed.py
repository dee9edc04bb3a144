"""Deployed and pre-seeded chains as cached anvil state files.

    state = seeded_state(n=1000, seed=7, profile="mixed")
    with Anvil.start(load_state=state.state_path) as node:
        sim = Sim(node.url, state.record)
        sim.republish_prices()          # cached states may be older than max_staleness
        state.accounts                  # list[SimAccount], as opened

`deployed_state()` deploys the protocol from deployments/config/local.yaml
with `ape run deploy` (a subprocess: about 20-40 s the first time, compiling)
on a private anvil and dumps the chain; `seeded_state(...)` loads that,
opens a population with `open_population` and dumps again. Both are cached
under `.build/xmargin_sim/states/`, keyed by the hash of the contracts, the
config, the simulator's own sources and the parameters, so a second call is
a file lookup. Files are written atomically; concurrent builders (pytest-xdist
workers) take an exclusive lock (fcntl) on the cache entry.

The CLI prints or builds entries:

    python -m scripts._xmargin_sim seed --n 10000 --seed 7 --profile mixed
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from scripts._xmargin_deploy.record import DeploymentRecord

from .abi import CACHE_DIR, ROOT, _sources_hash
from .anvil import Anvil
from .chain import Sim, SimError, load_record
from .population import Profile, SimAccount, open_population

LOCAL_CONFIG = ROOT / "deployments" / "config" / "local.yaml"
STATES = CACHE_DIR / "states"


def deploy_local(url: str, record_path: str | Path, config: str | Path = LOCAL_CONFIG, account: str = "TEST::0") -> DeploymentRecord:
    """Deploys with `ape run deploy --network ethereum:local:foundry` against
    the node at `url` (APE_FOUNDRY_HOST) and returns the written record.
    Raises SimError with ape's output if the deployment fails."""
    record_path = Path(record_path)
    env = os.environ | {"APE_FOUNDRY_HOST": url, "COLUMNS": "200"}
    ape = Path(sys.executable).parent / "ape"
    done = subprocess.run(
        [str(ape), "run", "deploy", "--network", "ethereum:local:foundry", "--config", str(config), "--account", account, "--deployment-file", str(record_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 or not record_path.is_file():
        raise SimError(f"ape run deploy failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return load_record(record_path)


@dataclass
class SeededState:
    """A cached chain: `state_path` (anvil --load-state), `record_path`
    (deployment record JSON) and the accounts opened on it (empty for a
    bare deployment)."""

    state_path: Path
    record_path: Path
    accounts: list[SimAccount]
    head_block: int

    @property
    def record(self) -> DeploymentRecord:
        return load_record(self.record_path)


def _own_hash(*names: str) -> str:
    """Hash of the local config and of the named simulator modules."""
    h = hashlib.sha256(LOCAL_CONFIG.read_bytes())
    for name in names:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:12]


@contextmanager
def _locked(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load_entry(folder: Path) -> SeededState | None:
    meta = folder / "meta.json"
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text())
    return SeededState(
        state_path=folder / "state.json",
        record_path=folder / "record.json",
        accounts=[SimAccount(**a) for a in data["accounts"]],
        head_block=data["head_block"],
    )


def _save_entry(folder: Path, node: Anvil, accounts: list[SimAccount]) -> SeededState:
    node.dump_state(folder / "state.json")
    meta = {"head_block": node.block_number(), "accounts": [asdict(a) for a in accounts]}
    tmp = folder / ".meta.json.tmp"
    tmp.write_text(json.dumps(meta))
    tmp.replace(folder / "meta.json")  # written last: its presence marks a complete entry
    return _load_entry(folder)


def deployed_state(rebuild: bool = False) -> SeededState:
    """The protocol deployed from local.yaml on a fresh anvil (cached)."""
    folder = STATES / f"deployed-{_sources_hash()}-{_own_hash()}"
    with _locked(folder):
        if not rebuild and (entry := _load_entry(folder)):
            return entry
        with Anvil.start() as node:
            deploy_local(node.url, folder / "record.json")
            return _save_entry(folder, node, [])


def seeded_state(n: int, seed: int = 0, profile: Profile | str = "mixed", rebuild: bool = False) -> SeededState:
    """`deployed_state()` plus `open_population(n, seed, profile)` (cached)."""
    base = deployed_state()
    name = profile if isinstance(profile, str) else f"{profile.name}-{hashlib.sha256(repr(profile).encode()).hexdigest()[:8]}"
    folder = STATES / f"seeded-{_sources_hash()}-{_own_hash('population.py', 'chain.py')}-{name}-n{n}-s{seed}"
    with _locked(folder):
        if not rebuild and (entry := _load_entry(folder)):
            return entry
        (folder / "record.json").write_text(base.record_path.read_text())
        with Anvil.start(load_state=base.state_path) as node:
            sim = Sim(node.url, base.record_path)
            sim.republish_prices()
            accounts = open_population(sim, None, n, seed, profile)
            return _save_entry(folder, node, accounts)
