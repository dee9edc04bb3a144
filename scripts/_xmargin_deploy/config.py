"""Deployment config: YAML -> validated pydantic models -> on-chain integers.

Pure Python (pydantic, PyYAML); no ape, no network. Every check here runs
before a single transaction is sent, and each problem is reported with the
path of the field, e.g.

    assets[1].asset_weight_initial: must be a multiple of 1e14 (0.0001); got 0.80005

Units in the YAML file (docs/deploy-sepolia.md has a commented example):
  - weights, imf, kink, reserve_factor: decimals ("0.80"), converted to WAD
    (1e18) exactly with Decimal;
  - rates (base_rate, slope_low, slope_high): APR decimals ("0.04" = 4%),
    converted to WAD per second by integer division by 31,536,000 s;
  - min_price / max_price: USD prices, converted with the feed's decimals
    into the feed's answer units;
  - supply_cap / borrow_cap: whole tokens (0 = no cap), converted with the
    token's decimals.

Bounds mirror MarginConfigurator._validate_* and MarginEngine.__init__, so a
config that passes here does not revert on-chain for a parameter reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

WAD = 10**18
YEAR = 365 * 86400  # 31,536,000 s: APR -> per-second rate divisor
BPS_TO_WAD = 10**14  # weights are stored in basis points
IMF_TO_WAD = 10**12  # imf is stored in units of 1e-6
MAX_LIABILITY_WEIGHT = 5 * WAD
MAX_STALENESS = 7 * 86400
MAX_IMF = (2**24 - 1) * IMF_TO_WAD
MAX_ANSWER = 2**64 - 1  # largest stored bound, in units of the bound scale


def bound_scale(feed_decimals: int) -> int:
    """Answer bounds are stored with at most 8 decimals (contracts/modules/
    margin.vy `bound_scale`): 10**(feed decimals - 8) above 8 decimals, else 1."""
    return 10 ** max(feed_decimals - 8, 0)
MAX_CAP = 2**120 - 1
MAX_BORROW_RATE = 10 * WAD // YEAR  # 1,000% APR per second (sum of the three rates)
MAX_BONUS = WAD // 2  # liquidation bonus <= 50%
MAX_LIQUIDATION_GRACE = 86400
MIN_RAMP_DURATION = 3600
MAX_RAMP_DURATION = 90 * 86400
MAX_SEQUENCER_GRACE = 86400
MAX_ASSETS = 64
MAX_DECIMALS = 18
ZERO_ADDRESS = "0x" + "00" * 20
DEPLOYER = "deployer"


class ConfigError(Exception):
    """A config that must not be deployed; `issues` are 'path: problem' lines."""

    def __init__(self, issues: list[str], source: str | None = None):
        self.issues = list(issues)
        self.source = source
        where = f" {source}" if source else ""
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"invalid deployment config{where}:\n{lines}")


# ---------------------------------------------------------------------------
# Scalar types
# ---------------------------------------------------------------------------


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError('must be a decimal number such as "0.80", not a boolean')
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        # repr() is the shortest string that round-trips: 0.8 -> "0.8".
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip().replace("_", ""))
        except InvalidOperation:
            raise ValueError(f'must be a decimal number such as "0.80"; got {value!r}') from None
    else:
        raise ValueError(f'must be a decimal number such as "0.80"; got {value!r}')
    if not result.is_finite():
        raise ValueError(f"must be a finite number; got {value!r}")
    return result


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError(f"must be an integer; got {value!r}")
    try:
        number = _to_decimal(value)
    except ValueError:
        raise ValueError(f"must be an integer; got {value!r}") from None
    if number != number.to_integral_value():
        raise ValueError(f"must be an integer; got {value!r}")
    return int(number)


_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _to_address(value: Any) -> str:
    from eth_utils import is_checksum_address, to_checksum_address

    if not isinstance(value, str) or not _HEX_ADDRESS.match(value):
        raise ValueError(f"must be a 0x-prefixed 20-byte hex address; got {value!r}")
    if value.lower() == ZERO_ADDRESS:
        raise ValueError("is the zero address (a placeholder?): put the real address here")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValueError(f"has an invalid EIP-55 checksum: {value} (expected {to_checksum_address(value)})")
    return to_checksum_address(value)


Dec = Annotated[Decimal, BeforeValidator(_to_decimal)]
Int = Annotated[int, BeforeValidator(_to_int)]
Address = Annotated[str, BeforeValidator(_to_address)]


def to_units(value: Decimal, decimals: int) -> int | None:
    """`value` * 10**decimals as an int, or None if that is not an integer."""
    with localcontext() as ctx:
        ctx.prec = 200
        scaled = value.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            return None
        return int(scaled)


def to_wad(value: Decimal) -> int | None:
    return to_units(value, 18)


def apr_to_per_second(apr: Decimal) -> int:
    """An APR decimal ("0.04") as a per-second WAD rate, rounded down."""
    wad = to_wad(apr)
    assert wad is not None, "validated before"
    return wad // YEAR


def fmt_decimal(value: Decimal | int) -> str:
    text = format(Decimal(value).normalize(), "f")
    return text


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MockToken(_Model):
    """A MockERC20 (open mint) deployed by the script; local networks only."""

    name: str = Field(min_length=1, max_length=64)
    symbol: str | None = Field(default=None, min_length=1, max_length=32)
    decimals: Int = Field(ge=0, le=MAX_DECIMALS)


class MockFeed(_Model):
    """A Chainlink-compatible MockAggregator deployed by the script; local networks only."""

    decimals: Int = Field(default=8, ge=0, le=MAX_DECIMALS)
    price: Dec
    description: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("price")
    @classmethod
    def _positive(cls, v: Decimal) -> Decimal:
        if v <= 0:
            raise ValueError(f"must be > 0; got {fmt_decimal(v)}")
        return v


def _address_shorthand(value: Any) -> Any:
    # `token: "0x..."` is shorthand for `token: {address: "0x..."}`.
    if isinstance(value, str):
        return {"address": value}
    return value


class TokenSpec(_Model):
    address: Address | None = None
    decimals: Int | None = Field(default=None, ge=0, le=MAX_DECIMALS)  # optional, checked on-chain
    mock: MockToken | None = None

    _shorthand = model_validator(mode="before")(_address_shorthand)

    @model_validator(mode="after")
    def _one_source(self) -> "TokenSpec":
        if (self.address is None) == (self.mock is None):
            raise ValueError("give exactly one of `address` or `mock`")
        if self.mock is not None and self.decimals is not None:
            raise ValueError("`decimals` goes inside `mock` for a mock token")
        return self


class FeedSpec(_Model):
    address: Address | None = None
    decimals: Int | None = Field(default=None, ge=0, le=MAX_DECIMALS)  # optional, checked on-chain
    description: str | None = None  # optional, checked against the feed's description()
    mock: MockFeed | None = None

    _shorthand = model_validator(mode="before")(_address_shorthand)

    @model_validator(mode="after")
    def _one_source(self) -> "FeedSpec":
        if (self.address is None) == (self.mock is None):
            raise ValueError("give exactly one of `address` or `mock`")
        if self.mock is not None and (self.decimals is not None or self.description is not None):
            raise ValueError("`decimals`/`description` go inside `mock` for a mock feed")
        return self


class RateModel(_Model):
    """Kinked rate model. Rates are APRs; kink and reserve_factor are fractions."""

    base_rate: Dec = Decimal(0)
    slope_low: Dec
    slope_high: Dec
    kink: Dec
    reserve_factor: Dec

    @field_validator("base_rate", "slope_low", "slope_high")
    @classmethod
    def _rate(cls, v: Decimal) -> Decimal:
        if v < 0:
            raise ValueError(f"must be >= 0; got {fmt_decimal(v)}")
        if to_wad(v) is None:
            raise ValueError(f"has more than 18 decimal places; got {v}")
        return v

    @field_validator("kink")
    @classmethod
    def _kink(cls, v: Decimal) -> Decimal:
        if not 0 < v < 1:
            raise ValueError(f"must be strictly between 0 and 1; got {fmt_decimal(v)}")
        if to_wad(v) is None:
            raise ValueError(f"has more than 18 decimal places; got {v}")
        return v

    @field_validator("reserve_factor")
    @classmethod
    def _reserve(cls, v: Decimal) -> Decimal:
        if not 0 <= v <= 1:
            raise ValueError(f"must be between 0 and 1; got {fmt_decimal(v)}")
        if to_wad(v) is None:
            raise ValueError(f"has more than 18 decimal places; got {v}")
        return v


def _bp_multiple(v: Decimal) -> Decimal:
    wad = to_wad(v)
    if wad is None or wad % BPS_TO_WAD != 0:
        raise ValueError(f"must be a multiple of 1e14 (0.0001); got {v}")
    if v < 0:
        raise ValueError(f"must be >= 0; got {fmt_decimal(v)}")
    return v


class Liquidation(_Model):
    """Bonus paid when this asset is seized in a liquidation (fractions, multiples
    of 0.0001): it grows from min_bonus at the maintenance threshold to
    max_bonus once the health ratio has fallen by full_bonus_depth;
    insurance_share of the bonus goes to the insurance fund."""

    min_bonus: Dec
    max_bonus: Dec
    full_bonus_depth: Dec
    insurance_share: Dec

    @field_validator("min_bonus", "max_bonus", "full_bonus_depth", "insurance_share")
    @classmethod
    def _bp(cls, v: Decimal) -> Decimal:
        return _bp_multiple(v)


class LiquidationSettings(_Model):
    """Deployment-wide liquidation settings (MarginConfigurator.set_liquidation_settings)."""

    dust_threshold: Dec  # USD; a remaining position worth less is dust
    grace_period: Int = Field(default=0, ge=0, le=MAX_LIQUIDATION_GRACE)  # s after a stale feed; 0 = off

    @field_validator("dust_threshold")
    @classmethod
    def _dust(cls, v: Decimal) -> Decimal:
        if v < 0:
            raise ValueError(f"must be >= 0; got {fmt_decimal(v)}")
        if to_wad(v) is None:
            raise ValueError(f"has more than 18 decimal places; got {v}")
        return v


_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


class AssetConfig(_Model):
    symbol: str
    token: TokenSpec
    feed: FeedSpec
    asset_weight_initial: Dec
    asset_weight_maintenance: Dec
    liability_weight_initial: Dec
    liability_weight_maintenance: Dec
    max_staleness: Int
    imf: Dec = Decimal(0)
    min_price: Dec
    max_price: Dec | None = None  # None: the largest answer the engine can store
    supply_cap: Dec = Decimal(0)  # whole tokens; 0 = no cap
    borrow_cap: Dec = Decimal(0)
    rate_model: RateModel
    collateral: bool = True
    borrowable: bool = True
    liquidation: Liquidation | None = None  # needed by engines with liquidations

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str) -> str:
        if not _SYMBOL.match(v):
            raise ValueError(f"must be 1-32 characters of letters, digits, '.', '_' or '-'; got {v!r}")
        return v

    @field_validator(
        "asset_weight_initial", "asset_weight_maintenance", "liability_weight_initial", "liability_weight_maintenance"
    )
    @classmethod
    def _weight(cls, v: Decimal) -> Decimal:
        return _bp_multiple(v)

    @field_validator("max_staleness")
    @classmethod
    def _staleness(cls, v: int) -> int:
        if not 1 <= v <= MAX_STALENESS:
            raise ValueError(f"must be between 1 and {MAX_STALENESS} seconds (7 days); got {v}")
        return v

    @field_validator("imf")
    @classmethod
    def _imf(cls, v: Decimal) -> Decimal:
        wad = to_wad(v)
        if wad is None or wad % IMF_TO_WAD != 0:
            raise ValueError(f"must be a multiple of 1e12 (0.000001); got {v}")
        if not 0 <= wad <= MAX_IMF:
            raise ValueError(f"must be between 0 and {fmt_decimal(Decimal(MAX_IMF) / WAD)}; got {fmt_decimal(v)}")
        return v

    @field_validator("min_price", "max_price")
    @classmethod
    def _price(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0; got {fmt_decimal(v)}")
        return v

    @field_validator("supply_cap", "borrow_cap")
    @classmethod
    def _cap(cls, v: Decimal) -> Decimal:
        if v < 0:
            raise ValueError(f"must be >= 0 (0 = no cap); got {fmt_decimal(v)}")
        return v


class Roles(_Model):
    owner: str = DEPLOYER  # "deployer" or an address (gets a 2-step ownership transfer)
    guardian: str = DEPLOYER  # "deployer" or an address

    @field_validator("owner", "guardian", mode="before")
    @classmethod
    def _role(cls, v: Any) -> str:
        if v == DEPLOYER:
            return v
        try:
            return _to_address(v)
        except ValueError as err:
            raise ValueError(f'must be "deployer" or an address: {v!r} {err}') from None


class Sequencer(_Model):
    feed: Address | None = None  # Chainlink L2 sequencer uptime feed; None on L1
    grace_period: Int = Field(default=0, ge=0, le=MAX_SEQUENCER_GRACE)


class DeployConfig(_Model):
    network: str | None = None  # "ecosystem:network"; checked against the connected network
    roles: Roles = Roles()
    maintenance_ramp_duration: Int
    sequencer: Sequencer = Sequencer()
    liquidation_settings: LiquidationSettings | None = None  # needed by engines with liquidations
    assets: list[AssetConfig] = Field(min_length=1, max_length=MAX_ASSETS)

    @field_validator("network")
    @classmethod
    def _network(cls, v: str | None) -> str | None:
        if v is not None and (v.count(":") != 1 or not all(v.split(":"))):
            raise ValueError(f'must be "ecosystem:network", e.g. "ethereum:sepolia"; got {v!r}')
        return v

    @field_validator("maintenance_ramp_duration")
    @classmethod
    def _ramp(cls, v: int) -> int:
        if not MIN_RAMP_DURATION <= v <= MAX_RAMP_DURATION:
            raise ValueError(f"must be between {MIN_RAMP_DURATION} (1 hour) and {MAX_RAMP_DURATION} (90 days) seconds; got {v}")
        return v

    def asset(self, symbol: str) -> AssetConfig:
        for asset in self.assets:
            if asset.symbol == symbol:
                return asset
        raise KeyError(symbol)

    @property
    def uses_mocks(self) -> bool:
        return any(a.token.mock is not None or a.feed.mock is not None for a in self.assets)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps numbers exact: floats become Decimal (so 0.80 is
    exactly 0.80) and 0x-literals stay strings (YAML 1.1 would read an
    unquoted address as an int)."""


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    text = loader.construct_scalar(node)
    try:
        value = Decimal(str(text).replace("_", ""))
    except InvalidOperation:
        return str(text)  # .inf / .nan: let the field validator reject it
    return value


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = str(loader.construct_scalar(node))
    if text.lower().startswith(("0x", "-0x", "+0x")):
        return text
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _pydantic_issues(err: ValidationError) -> list[str]:
    issues = []
    for e in err.errors(include_url=False):
        if e["type"] == "value_error" and "error" in e.get("ctx", {}):
            message = str(e["ctx"]["error"])
        elif e["type"] == "extra_forbidden":
            message = "unknown field (typo?)"
        elif e["type"] == "missing":
            message = "missing (required)"
        else:
            message = e["msg"]
            value = e.get("input")
            if isinstance(value, (str, int, Decimal)) and not isinstance(value, bool):
                message += f"; got {value!r}" if isinstance(value, str) else f"; got {value}"
        issues.append(f"{_loc(e['loc'])}: {message}")
    return issues


def _cross_field_issues(cfg: DeployConfig) -> list[str]:
    issues: list[str] = []
    seen_symbols: dict[str, int] = {}
    seen_tokens: dict[str, int] = {}
    for i, a in enumerate(cfg.assets):
        p = f"assets[{i}]"
        if a.symbol in seen_symbols:
            issues.append(f"{p}.symbol: duplicate of assets[{seen_symbols[a.symbol]}].symbol ({a.symbol})")
        seen_symbols.setdefault(a.symbol, i)
        if a.token.address is not None:
            if a.token.address in seen_tokens:
                issues.append(f"{p}.token.address: same token as assets[{seen_tokens[a.token.address]}]")
            seen_tokens.setdefault(a.token.address, i)
        if a.asset_weight_initial > a.asset_weight_maintenance:
            issues.append(
                f"{p}.asset_weight_initial: must be <= asset_weight_maintenance "
                f"({fmt_decimal(a.asset_weight_maintenance)}); got {fmt_decimal(a.asset_weight_initial)}"
            )
        if a.asset_weight_maintenance > 1:
            issues.append(f"{p}.asset_weight_maintenance: must be <= 1; got {fmt_decimal(a.asset_weight_maintenance)}")
        if a.liability_weight_maintenance < 1:
            issues.append(
                f"{p}.liability_weight_maintenance: must be >= 1; got {fmt_decimal(a.liability_weight_maintenance)}"
            )
        if a.liability_weight_initial < a.liability_weight_maintenance:
            issues.append(
                f"{p}.liability_weight_initial: must be >= liability_weight_maintenance "
                f"({fmt_decimal(a.liability_weight_maintenance)}); got {fmt_decimal(a.liability_weight_initial)}"
            )
        if a.liability_weight_initial > 5:
            issues.append(f"{p}.liability_weight_initial: must be <= 5; got {fmt_decimal(a.liability_weight_initial)}")
        if a.max_price is not None and a.max_price <= a.min_price:
            issues.append(
                f"{p}.max_price: must be > min_price ({fmt_decimal(a.min_price)}); got {fmt_decimal(a.max_price)}"
            )
        rm = a.rate_model
        total = apr_to_per_second(rm.base_rate) + apr_to_per_second(rm.slope_low) + apr_to_per_second(rm.slope_high)
        if total > MAX_BORROW_RATE:
            issues.append(
                f"{p}.rate_model: base_rate + slope_low + slope_high must be <= 10 (1000% APR); got "
                f"{fmt_decimal(rm.base_rate + rm.slope_low + rm.slope_high)}"
            )
        if a.liquidation is not None:
            liq = a.liquidation
            if liq.min_bonus > liq.max_bonus:
                issues.append(
                    f"{p}.liquidation.min_bonus: must be <= max_bonus ({fmt_decimal(liq.max_bonus)}); "
                    f"got {fmt_decimal(liq.min_bonus)}"
                )
            if liq.max_bonus > Decimal("0.5"):
                issues.append(f"{p}.liquidation.max_bonus: must be <= 0.5 (50%); got {fmt_decimal(liq.max_bonus)}")
            if not 0 < liq.full_bonus_depth <= 1:
                issues.append(
                    f"{p}.liquidation.full_bonus_depth: must be in (0, 1]; got {fmt_decimal(liq.full_bonus_depth)}"
                )
            if liq.insurance_share > 1:
                issues.append(
                    f"{p}.liquidation.insurance_share: must be <= 1; got {fmt_decimal(liq.insurance_share)}"
                )
        if a.feed.mock is not None:
            price = a.feed.mock.price
            if price < a.min_price or (a.max_price is not None and price > a.max_price):
                issues.append(
                    f"{p}.feed.mock.price: {fmt_decimal(price)} is outside [min_price, max_price]; "
                    "the engine would reject it"
                )
    if cfg.sequencer.grace_period and cfg.sequencer.feed is None:
        issues.append("sequencer.grace_period: needs sequencer.feed (no feed = L1, no grace period)")
    return issues


def parse_config(data: Any, source: str | None = None) -> DeployConfig:
    """Validates a config mapping (as loaded from YAML); raises ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping"], source)
    try:
        cfg = DeployConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_pydantic_issues(err), source) from None
    issues = _cross_field_issues(cfg)
    # Decimal-dependent checks that can run now (mock token / feed decimals known).
    for i, a in enumerate(cfg.assets):
        token_decimals = a.token.mock.decimals if a.token.mock else a.token.decimals
        feed_decimals = a.feed.mock.decimals if a.feed.mock else a.feed.decimals
        issues += listing_issues(i, a, token_decimals, feed_decimals)
    if issues:
        raise ConfigError(issues, source)
    return cfg


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (SafeLoader subclass)


def load_config(path: str | Path) -> DeployConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf8")
    except OSError as err:
        raise ConfigError([f"cannot read the file: {err.strerror}"], str(path)) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError([f"not valid YAML: {err}"], str(path)) from None
    return parse_config(data, str(path))


# ---------------------------------------------------------------------------
# Conversion to on-chain values
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ListingParams:
    """The exact integers passed to MarginConfigurator.list_asset."""

    asset_weight_initial: int
    asset_weight_maintenance: int
    liability_weight_initial: int
    liability_weight_maintenance: int
    max_staleness: int
    imf: int
    min_answer: int
    max_answer: int
    base_rate: int
    slope_low: int
    slope_high: int
    kink: int
    reserve_factor: int
    supply_cap: int
    borrow_cap: int
    collateral: bool
    borrowable: bool
    token_decimals: int
    feed_decimals: int
    min_bonus: int | None = None  # liquidation parameters (None: not configured)
    max_bonus: int | None = None
    full_bonus_depth: int | None = None
    insurance_share: int | None = None

    @property
    def has_liquidation(self) -> bool:
        return self.min_bonus is not None

    def struct_values(self) -> dict:
        """The list_asset `ListingParams` struct as nested {field: value};
        chain.py orders it by the compiled ABI."""
        values: dict = {
            "risk": {
                "asset_weight_initial": self.asset_weight_initial,
                "asset_weight_maintenance": self.asset_weight_maintenance,
                "liability_weight_initial": self.liability_weight_initial,
                "liability_weight_maintenance": self.liability_weight_maintenance,
                "max_staleness": self.max_staleness,
                "imf": self.imf,
                "min_answer": self.min_answer,
                "max_answer": self.max_answer,
            },
            "rates": {
                "base_rate": self.base_rate,
                "slope_low": self.slope_low,
                "slope_high": self.slope_high,
                "kink": self.kink,
                "reserve_factor": self.reserve_factor,
            },
            "supply_cap": self.supply_cap,
            "borrow_cap": self.borrow_cap,
            "collateral": self.collateral,
            "borrowable": self.borrowable,
        }
        if self.has_liquidation:
            values["liquidation"] = {
                "min_bonus": self.min_bonus,
                "max_bonus": self.max_bonus,
                "full_bonus_depth": self.full_bonus_depth,
                "insurance_share": self.insurance_share,
            }
        return values

    def as_tuple(self) -> tuple:
        """The `ListingParams` struct argument of list_asset."""
        risk = (
            self.asset_weight_initial,
            self.asset_weight_maintenance,
            self.liability_weight_initial,
            self.liability_weight_maintenance,
            self.max_staleness,
            self.imf,
            self.min_answer,
            self.max_answer,
        )
        rates = (self.base_rate, self.slope_low, self.slope_high, self.kink, self.reserve_factor)
        out = (risk, rates, self.supply_cap, self.borrow_cap, self.collateral, self.borrowable)
        if self.has_liquidation:
            out += ((self.min_bonus, self.max_bonus, self.full_bonus_depth, self.insurance_share),)
        return out

    def expected_readback(self) -> dict[str, int | bool]:
        """Field name of MarginLens.asset_config (risk.* flattened) -> expected value."""
        return {
            "token_decimals": self.token_decimals,
            "feed_decimals": self.feed_decimals,
            "risk.asset_weight_initial": self.asset_weight_initial,
            "risk.asset_weight_maintenance": self.asset_weight_maintenance,
            "risk.liability_weight_initial": self.liability_weight_initial,
            "risk.liability_weight_maintenance": self.liability_weight_maintenance,
            "risk.max_staleness": self.max_staleness,
            "risk.imf": self.imf,
            "risk.min_answer": self.min_answer,
            "risk.max_answer": self.max_answer,
            "supply_cap": self.supply_cap,
            "borrow_cap": self.borrow_cap,
            "base_rate": self.base_rate,
            "slope_low": self.slope_low,
            "slope_high": self.slope_high,
            "kink": self.kink,
            "reserve_factor": self.reserve_factor,
            "collateral": self.collateral,
            "borrowable": self.borrowable,
        } | (
            {
                "liquidation.min_bonus": self.min_bonus,
                "liquidation.max_bonus": self.max_bonus,
                "liquidation.full_bonus_depth": self.full_bonus_depth,
                "liquidation.insurance_share": self.insurance_share,
            }
            if self.has_liquidation
            else {}
        )


def listing_issues(index: int, a: AssetConfig, token_decimals: int | None, feed_decimals: int | None) -> list[str]:
    """Checks that need the token/feed decimals (skipped while unknown)."""
    p = f"assets[{index}]"
    issues = []
    if feed_decimals is not None:
        scale = bound_scale(feed_decimals)
        bound_decimals = min(feed_decimals, 8)
        min_answer = to_units(a.min_price, feed_decimals)
        if min_answer is None or min_answer < 1 or min_answer % scale:
            issues.append(
                f"{p}.min_price: {fmt_decimal(a.min_price)} must be a positive multiple of "
                f"{fmt_decimal(Decimal(1).scaleb(-bound_decimals))} (bounds keep {bound_decimals} decimals)"
            )
        elif min_answer // scale > MAX_ANSWER:
            issues.append(f"{p}.min_price: above the largest storable answer")
        if a.max_price is not None:
            max_answer = to_units(a.max_price, feed_decimals)
            if max_answer is None or max_answer % scale:
                issues.append(
                    f"{p}.max_price: {fmt_decimal(a.max_price)} must be a multiple of "
                    f"{fmt_decimal(Decimal(1).scaleb(-bound_decimals))} (bounds keep {bound_decimals} decimals)"
                )
            elif max_answer // scale > MAX_ANSWER:
                limit = fmt_decimal(Decimal(MAX_ANSWER).scaleb(-bound_decimals))
                issues.append(f"{p}.max_price: must be <= {limit} (2**64 - 1 units of {bound_decimals} decimals)")
        if a.feed.mock is not None and to_units(a.feed.mock.price, feed_decimals) is None:
            issues.append(f"{p}.feed.mock.price: not a whole number of feed units ({feed_decimals} decimals)")
    if token_decimals is not None:
        for name in ("supply_cap", "borrow_cap"):
            units = to_units(getattr(a, name), token_decimals)
            if units is None:
                issues.append(f"{p}.{name}: not a whole number of token units ({token_decimals} decimals)")
            elif units > MAX_CAP:
                issues.append(f"{p}.{name}: above 2**120 - 1 token units")
    return issues


def to_listing_params(
    a: AssetConfig, token_decimals: int, feed_decimals: int, with_liquidation: bool = True
) -> ListingParams:
    """Converts a validated asset config; call listing_issues first."""
    rm = a.rate_model
    liq = a.liquidation if with_liquidation else None
    return ListingParams(
        asset_weight_initial=to_wad(a.asset_weight_initial),
        asset_weight_maintenance=to_wad(a.asset_weight_maintenance),
        liability_weight_initial=to_wad(a.liability_weight_initial),
        liability_weight_maintenance=to_wad(a.liability_weight_maintenance),
        max_staleness=a.max_staleness,
        imf=to_wad(a.imf),
        min_answer=to_units(a.min_price, feed_decimals),
        max_answer=MAX_ANSWER * bound_scale(feed_decimals) if a.max_price is None else to_units(a.max_price, feed_decimals),
        base_rate=apr_to_per_second(rm.base_rate),
        slope_low=apr_to_per_second(rm.slope_low),
        slope_high=apr_to_per_second(rm.slope_high),
        kink=to_wad(rm.kink),
        reserve_factor=to_wad(rm.reserve_factor),
        supply_cap=to_units(a.supply_cap, token_decimals),
        borrow_cap=to_units(a.borrow_cap, token_decimals),
        collateral=a.collateral,
        borrowable=a.borrowable,
        token_decimals=token_decimals,
        feed_decimals=feed_decimals,
        min_bonus=None if liq is None else to_wad(liq.min_bonus),
        max_bonus=None if liq is None else to_wad(liq.max_bonus),
        full_bonus_depth=None if liq is None else to_wad(liq.full_bonus_depth),
        insurance_share=None if liq is None else to_wad(liq.insurance_share),
    )


def mock_initial_answer(a: AssetConfig) -> int:
    assert a.feed.mock is not None
    return to_units(a.feed.mock.price, a.feed.mock.decimals)


def mock_feed_description(a: AssetConfig) -> str:
    assert a.feed.mock is not None
    return a.feed.mock.description or f"{a.symbol} / USD"


def network_issues(cfg: DeployConfig, network_choice: str, is_dev: bool) -> list[str]:
    """Checks against the connected network ("ecosystem:network")."""
    issues = []
    if cfg.network is not None and cfg.network != network_choice:
        issues.append(f"network: the config is for {cfg.network} but the connected network is {network_choice}")
    if not is_dev:
        for i, a in enumerate(cfg.assets):
            if a.token.mock is not None:
                issues.append(
                    f"assets[{i}].token.mock: mock tokens are only allowed on local networks (connected: {network_choice})"
                )
            if a.feed.mock is not None:
                issues.append(
                    f"assets[{i}].feed.mock: mock feeds are only allowed on local networks (connected: {network_choice})"
                )
    return issues
