"""Keeper configuration: a TOML file, overridden by ``XMARGIN_KEEPER_*``
environment variables (pydantic-settings).

Nested fields are set from the environment with a double underscore, e.g.
``XMARGIN_KEEPER_GAS__TIP_GWEI=2`` or ``XMARGIN_KEEPER_STRATEGY__DRY_RUN=true``.
Precedence (highest first): keyword arguments (tests), environment, TOML
file, defaults. See ``keeper/example.toml`` and ``docs/keeper.md``.

Amounts are exact decimals given as strings in TOML (``"1.5"``), converted
to integers once (gwei -> wei, USD -> USD WAD) by the properties below; the
keeper never computes with floats.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from .errors import ConfigError

WAD = 10**18
GWEI = 10**9
ENV_PREFIX = "XMARGIN_KEEPER_"


def _address(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    v = str(value)
    if not (v.startswith("0x") and len(v) == 42):
        raise ValueError(f"{field}: must be a 0x-prefixed 20-byte hex address")
    try:
        int(v, 16)
    except ValueError:
        raise ValueError(f"{field}: must be a 0x-prefixed 20-byte hex address") from None
    return v


def _decimal(value: Any, field: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{field}: not a decimal number: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"{field}: must be a finite number >= 0")
    return d


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssetAddresses(_Section):
    """One listed asset of the deployment."""

    token: str
    feed: str
    asset_id: int = Field(ge=0, le=63)

    @field_validator("token", "feed")
    @classmethod
    def _check_address(cls, v: str, info: Any) -> str:
        return _address(v, info.field_name)  # type: ignore[return-value]


class ChainSettings(_Section):
    """Node access."""

    rpc_http: str = "http://127.0.0.1:8545"  # JSON-RPC over HTTP: every call and the fallback for heads/logs
    rpc_ws: str | None = None  # websocket for newHeads + logs subscriptions; None: HTTP polling only
    chain_id: int | None = None  # expected chain id; None: taken from the deployment record
    request_timeout: float = Field(default=10.0, gt=0)  # seconds per RPC call
    max_retries: int = Field(default=3, ge=0)  # retries of a failed read call (exponential back-off)

    @field_validator("rpc_http")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @field_validator("rpc_ws")
    @classmethod
    def _ws(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return v


class DeploymentSettings(_Section):
    """Where the protocol lives: a deployment record written by
    ``ape run deploy`` (``record``), explicit addresses, or both (explicit
    values win)."""

    record: Path | None = None  # deployments/<network>.json or deployments/local/<network>.json
    engine: str | None = None
    lens: str | None = None
    configurator: str | None = None
    deployment_block: int | None = Field(default=None, ge=0)  # first block scanned for events
    assets: dict[str, AssetAddresses] = Field(default_factory=dict)  # symbol -> addresses

    @field_validator("engine", "lens", "configurator")
    @classmethod
    def _check_address(cls, v: str | None, info: Any) -> str | None:
        return _address(v, info.field_name)


class AccountSettings(_Section):
    """The keeper's signing key. Exactly one of ``keystore`` / ``ape_alias``
    (not needed for ``strategy.dry_run`` or ``scan``/``status``). The
    password is read from the environment variable named by
    ``password_env``; a raw private key is never accepted."""

    keystore: Path | None = None  # encrypted JSON keystore (geth/ape format)
    ape_alias: str | None = None  # ape account alias: ~/.ape/accounts/<alias>.json
    password_env: str = "XMARGIN_KEEPER_PASSWORD"  # name of the env var holding the keystore password
    address: str | None = None  # expected address; startup fails if the key differs

    @field_validator("address")
    @classmethod
    def _check_address(cls, v: str | None) -> str | None:
        return _address(v, "address")

    @model_validator(mode="after")
    def _one_source(self) -> "AccountSettings":
        if self.keystore is not None and self.ape_alias is not None:
            raise ValueError("set keystore or ape_alias, not both")
        return self


class StrategySettings(_Section):
    """What to liquidate and how."""

    mode: Literal["inventory", "flash"] = "inventory"  # inventory: keeper holds repay tokens; flash: callback contract
    flash_liquidator: str | None = None  # KeeperFlashLiquidator address (mode = flash)
    dry_run: bool = False  # paper mode: plan, simulate, log, never send a transaction
    min_profit_usd: str = "0"  # skip when expected profit (USD) is below this
    price_drift_bps: int = Field(default=50, ge=0, le=5000)  # margin taken off the bonus value for price moves, bp of the seized value
    gas_limit: int = Field(default=900_000, ge=21_000)  # used when eth_estimateGas fails; also the cost estimate's fallback
    native_price_symbol: str | None = None  # listed asset priced like the native coin (e.g. WETH) for gas in USD
    native_price_usd: str | None = None  # fixed native coin price, USD (used when native_price_symbol is unset)
    max_candidates_per_block: int = Field(default=32, ge=1)  # liquidations sent per block at most
    approve_max: bool = True  # inventory mode: approve the engine for max uint256 once per token

    @field_validator("flash_liquidator")
    @classmethod
    def _check_address(cls, v: str | None) -> str | None:
        return _address(v, "flash_liquidator")

    @field_validator("min_profit_usd", "native_price_usd")
    @classmethod
    def _dec(cls, v: str | None, info: Any) -> str | None:
        if v is None:
            return v
        _decimal(v, info.field_name)
        return str(v)

    @model_validator(mode="after")
    def _flash_needs_contract(self) -> "StrategySettings":
        if self.mode == "flash" and self.flash_liquidator is None:
            raise ValueError("mode = flash needs flash_liquidator (a KeeperFlashLiquidator address)")
        return self

    @property
    def min_profit_wad(self) -> int:
        """min_profit_usd as USD WAD."""
        return int(_decimal(self.min_profit_usd, "min_profit_usd") * WAD)


class GasSettings(_Section):
    """EIP-1559 fees. Replacement: after ``bump_after_blocks`` without a
    receipt, fee cap and tip each rise by ``bump_percent`` (>= 12.5, above
    geth's 10% replacement rule), as long as gas_limit * fee cap stays <=
    the expected profit; otherwise the nonce is cancelled (a 0-value
    self-transfer) after ``abandon_after_blocks``."""

    tip_gwei: str = "1"  # max priority fee
    max_fee_gwei: str = "500"  # absolute fee-cap ceiling
    base_fee_multiplier_percent: int = Field(default=200, ge=100)  # fee cap = base fee * this / 100 + tip
    bump_percent: str = "12.5"  # per replacement, fee cap and tip
    bump_after_blocks: int = Field(default=2, ge=1)
    abandon_after_blocks: int = Field(default=8, ge=1)

    @field_validator("tip_gwei", "max_fee_gwei", "bump_percent")
    @classmethod
    def _dec(cls, v: str, info: Any) -> str:
        _decimal(v, info.field_name)
        return str(v)

    @field_validator("bump_percent")
    @classmethod
    def _bump(cls, v: str) -> str:
        if Decimal(v) < Decimal("12.5"):
            raise ValueError("must be >= 12.5 (a replacement must beat the pooled tx by 10%+; 12.5% is the safe margin)")
        return v

    @property
    def tip_wei(self) -> int:
        return int(Decimal(self.tip_gwei) * GWEI)

    @property
    def max_fee_wei(self) -> int:
        return int(Decimal(self.max_fee_gwei) * GWEI)

    @property
    def bump_permille(self) -> int:
        """bump_percent in tenths of a percent (12.5% -> 125), rounded up."""
        d = Decimal(self.bump_percent) * 10
        return int(d) + (1 if d != int(d) else 0)


class SyncSettings(_Section):
    """Event scanning and state refresh."""

    poll_interval: float = Field(default=1.0, gt=0)  # seconds between head polls (HTTP) / watchdog ticks (ws)
    resync_interval: float = Field(default=300.0, gt=0)  # seconds between full on-chain checks of every account
    log_chunk_blocks: int = Field(default=5_000, ge=1)  # eth_getLogs range, halved on error down to 1 block
    max_reorg_depth: int = Field(default=64, ge=1)  # block hashes kept for reorg detection
    head_lag_unhealthy: int = Field(default=5, ge=1)  # /health is red when the processed block is this far behind
    confirmations: int = Field(default=0, ge=0)  # process blocks this far behind the head


class StoreSettings(_Section):
    db_path: Path = Path("keeper.sqlite")  # sqlite file (created); ":memory:" for tests


class MetricsSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)  # 0 disables the /metrics + /health server


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_logs: bool = True  # structlog JSON lines; false: human console output


class KeeperSettings(BaseSettings):
    """The whole keeper configuration (see module docstring)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", nested_model_default_partial_update=True
    )

    chain: ChainSettings = Field(default_factory=ChainSettings)
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)
    account: AccountSettings = Field(default_factory=AccountSettings)
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    gas: GasSettings = Field(default_factory=GasSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _TOML_FILE.get("path")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


_TOML_FILE: dict[str, Path | None] = {"path": None}


class Deployment(BaseModel):
    """The resolved protocol addresses (record + explicit overrides)."""

    chain_id: int | None
    engine: str
    lens: str
    configurator: str | None
    deployment_block: int
    assets: dict[str, AssetAddresses]


def _format_validation_error(err: ValidationError) -> list[str]:
    issues = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        issues.append(f"{loc}: {msg}" if loc else msg)
    return issues


def load_settings(path: str | os.PathLike | None = None, **overrides: Any) -> KeeperSettings:
    """Reads the TOML file at ``path`` (None: environment and defaults only),
    applies ``XMARGIN_KEEPER_*`` env vars and ``overrides`` (section dicts).
    Raises :class:`ConfigError` listing every problem as ``field: message``."""
    toml_path = None
    if path is not None:
        toml_path = Path(path)
        if not toml_path.is_file():
            raise ConfigError(f"config file not found: {toml_path}")
        import tomllib

        try:
            tomllib.loads(toml_path.read_text(encoding="utf8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml_path}: not valid TOML: {exc}") from None
    _TOML_FILE["path"] = toml_path
    try:
        settings = KeeperSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None
    finally:
        _TOML_FILE["path"] = None
    if toml_path is not None:
        _resolve_relative(settings, toml_path.parent)
    return settings


def _resolve_relative(settings: KeeperSettings, base: Path) -> None:
    """Relative file paths in the TOML file are relative to the file."""
    d = settings.deployment
    if d.record is not None and not d.record.is_absolute():
        d.record = (base / d.record).resolve()
    a = settings.account
    if a.keystore is not None and not a.keystore.is_absolute():
        a.keystore = (base / a.keystore).resolve()
    s = settings.store
    if str(s.db_path) != ":memory:" and not s.db_path.is_absolute():
        s.db_path = (base / s.db_path).resolve()


def resolve_deployment(settings: KeeperSettings) -> Deployment:
    """Merges the deployment record (if any) with explicit addresses.
    Raises :class:`ConfigError` when the record is unreadable or a required
    address (engine, lens, at least one asset) is missing."""
    d = settings.deployment
    data: dict[str, Any] = {}
    if d.record is not None:
        if not d.record.is_file():
            raise ConfigError(f"deployment.record: file not found: {d.record}")
        try:
            data = json.loads(d.record.read_text(encoding="utf8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"deployment.record: not a JSON deployment record: {exc}") from None
    assets: dict[str, AssetAddresses] = {}
    issues: list[str] = []
    for symbol, a in (data.get("assets") or {}).items():
        if not a.get("token") or not a.get("feed") or a.get("asset_id") is None:
            continue  # an asset not listed yet
        try:
            assets[symbol] = AssetAddresses(token=a["token"], feed=a["feed"], asset_id=a["asset_id"])
        except ValidationError as exc:
            issues += [f"deployment.record.assets.{symbol}.{m}" for m in _format_validation_error(exc)]
    assets.update(d.assets)
    engine = d.engine or data.get("engine")
    lens = d.lens or data.get("lens")
    block = d.deployment_block if d.deployment_block is not None else data.get("deployment_block")
    if engine is None:
        issues.append("deployment.engine: missing (set it or deployment.record)")
    if lens is None:
        issues.append("deployment.lens: missing (set it or deployment.record)")
    if not assets:
        issues.append("deployment.assets: no listed asset (set them or deployment.record)")
    chain_id = settings.chain.chain_id if settings.chain.chain_id is not None else data.get("chain_id")
    if issues:
        raise ConfigError(issues)
    try:
        engine = _address(engine, "deployment.engine")
        lens = _address(lens, "deployment.lens")
        configurator = _address(d.configurator or data.get("configurator"), "deployment.configurator")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    ids = [a.asset_id for a in assets.values()]
    if len(set(ids)) != len(ids):
        raise ConfigError("deployment.assets: two assets share an asset_id")
    return Deployment(
        chain_id=chain_id,
        engine=engine,
        lens=lens,
        configurator=configurator,
        deployment_block=int(block or 0),
        assets=assets,
    )
