"""The deployment record: `deployments/<network>.json` (live networks, meant to
be committed) or `deployments/local/<network>.json` (local chains and forks,
git-ignored). Pure Python; written after every transaction, so an interrupted
deployment resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ROOT / "deployments"


class AssetRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token: str | None = None
    feed: str | None = None
    mock_token: bool = False
    mock_feed: bool = False
    asset_id: int | None = None  # set once listed
    listed_block: int | None = None


class TxRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    step: str
    hash: str
    block: int | None = None


class DeploymentRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    network: str  # ecosystem:network
    chain_id: int
    genesis_hash: str | None = None  # tells a restarted local chain from the recorded one
    deployer: str
    config: str | None = None  # path of the config file, relative to the repo
    deployment_block: int | None = None  # block of the first transaction
    configurator: str | None = None
    extension: str | None = None  # MarginEngineExtension (engines that delegate to one)
    planner: str | None = None  # LiquidationPlanner (engines that call one)
    engine: str | None = None
    lens: str | None = None
    assets: dict[str, AssetRecord] = Field(default_factory=dict)
    transactions: list[TxRecord] = Field(default_factory=list)
    updated_at: str | None = None

    @property
    def core_complete(self) -> bool:
        return bool(self.configurator and self.engine and self.lens)


def record_name(ecosystem: str, network: str) -> str:
    return network if ecosystem == "ethereum" else f"{ecosystem}-{network}"


def default_record_path(ecosystem: str, network: str, is_dev: bool, root: Path = DEPLOYMENTS) -> Path:
    """deployments/<network>.json, or deployments/local/<network>.json for dev chains."""
    folder = root / "local" if is_dev else root
    return folder / f"{record_name(ecosystem, network)}.json"


def load_record(path: Path) -> DeploymentRecord | None:
    if not path.is_file():
        return None
    return DeploymentRecord.model_validate_json(path.read_text(encoding="utf8"))


def save_record(record: DeploymentRecord, path: Path) -> None:
    """Atomic write (temp file + rename), so a crash never leaves half a file."""
    record.updated_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(record.model_dump(mode="json"), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf8") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
