"""Deploys the whole xmargin protocol on titanoboa, for tests and benchmarks.

`Protocol` is the one place that knows the deployment order: configurator,
extension, engine (naming both), lens, then `set_engine` and the liquidation
settings. `protocol.engine` is one handle with the engine's and the
extension's ABIs at the engine's address (the engine forwards unknown
selectors to the extension by delegatecall). Assets are listed
with `list_asset`, which deploys a mock token and a Chainlink-compatible mock
feed unless real ones are passed. Amounts are in token units; weights, rates
and factors are WAD (1e18 = 1.0).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import boa

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
# Mutation testing deploys a modified copy of contracts/ (tools/mutation):
# XMARGIN_CONTRACTS_DIR (absolute, or relative to the repository root) names
# it; files it lacks are taken from contracts/.
CONTRACTS_DIR_ENV = "XMARGIN_CONTRACTS_DIR"

WAD = 10**18
YEAR = 365 * 86400
ZERO_ADDRESS = "0x" + "00" * 20
MAX_UINT = 2**256 - 1

# Engine info-word flags and batch action kinds (see MarginEngine.vy).
PAUSE_DEPOSIT, PAUSE_WITHDRAW, PAUSE_BORROW, PAUSE_TRANSFER = 2, 4, 8, 16
ACTION_DEPOSIT, ACTION_WITHDRAW, ACTION_BORROW, ACTION_REPAY, ACTION_TRANSFER = range(5)


def per_second(apr_wad: int) -> int:
    """An annual rate (WAD) as a per-second rate (WAD), rounded down."""
    return apr_wad // YEAR


@dataclass
class AssetSpec:
    """Parameters of one listed asset; defaults are a blue-chip collateral."""

    symbol: str
    decimals: int = 18
    price: float = 1.0  # USD, for the mock feed
    feed_decimals: int = 8
    asset_weight_initial: int = 8 * 10**17
    asset_weight_maintenance: int = 85 * 10**16
    liability_weight_initial: int = 12 * 10**17
    liability_weight_maintenance: int = 11 * 10**17
    max_staleness: int = 3600
    imf: int = 0
    min_answer: int | None = None  # feed decimals; default: the smallest accepted bound
    max_answer: int | None = None  # feed decimals; default: the largest accepted bound
    base_rate: int = 0
    slope_low: int = per_second(4 * 10**16)  # 4% APR at the kink
    slope_high: int = per_second(75 * 10**16)  # +75% APR from kink to 100%
    kink: int = 8 * 10**17
    reserve_factor: int = 10**17
    supply_cap: int = 0
    borrow_cap: int = 0
    collateral: bool = True
    borrowable: bool = True
    min_bonus: int = 2 * 10**16  # 2% at the maintenance threshold
    max_bonus: int = 10 * 10**16  # 10% ...
    full_bonus_depth: int = 10 * 10**16  # ... once the health ratio is 0.90
    insurance_share: int = 10 * 10**16  # 10% of the bonus to the insurance fund
    token_kind: str = "erc20"  # erc20 | usdt | fee | hook

    def listing_params(self) -> tuple:
        risk = (
            self.asset_weight_initial,
            self.asset_weight_maintenance,
            self.liability_weight_initial,
            self.liability_weight_maintenance,
            self.max_staleness,
            self.imf,
            self.min_answer if self.min_answer is not None else self.bound_scale,
            self.max_answer if self.max_answer is not None else (2**64 - 1) * self.bound_scale,
        )
        rates = (self.base_rate, self.slope_low, self.slope_high, self.kink, self.reserve_factor)
        liquidation = (self.min_bonus, self.max_bonus, self.full_bonus_depth, self.insurance_share)
        return (risk, rates, self.supply_cap, self.borrow_cap, self.collateral, self.borrowable, liquidation)

    @property
    def bound_scale(self) -> int:
        """Answer bounds are stored with at most 8 decimals (margin.bound_scale)."""
        return 10 ** max(self.feed_decimals - 8, 0)

    def answer(self, price: float | None = None) -> int:
        return round((self.price if price is None else price) * 10**self.feed_decimals)


@dataclass
class Asset:
    spec: AssetSpec
    token: object
    feed: object
    id: int

    @property
    def address(self) -> str:
        return self.token.address

    def units(self, amount: float) -> int:
        """Whole tokens -> token units."""
        return round(amount * 10**self.spec.decimals)

    def set_price(self, price: float) -> None:
        """Publishes a new Chainlink round at the current block time."""
        self.feed.set_answer(self.spec.answer(price))


class EngineHandle:
    """The engine's address seen through both ABIs: MarginEngine's own
    functions, and MarginEngineExtension's (forwarded by delegatecall).
    `get_logs()` returns the logs of the last call made through either."""

    def __init__(self, core, extension_at_core):
        self._core = core
        self._ext = extension_at_core
        self._last = core

    @property
    def address(self):
        return self._core.address

    def __getattr__(self, name):
        target = self._core if hasattr(self._core, name) else self._ext
        attr = getattr(target, name)
        if callable(attr):
            self._last = target
        return attr

    def get_logs(self, *args, **kwargs):
        return self._last.get_logs(*args, **kwargs)

    def decode_log(self, log_entry):
        """Events at the engine's address may be declared by either contract."""
        try:
            return self._core.decode_log(log_entry)
        except ValueError:
            return self._ext.decode_log(log_entry)


@dataclass
class Protocol:
    """The deployed protocol: engine, configurator, lens and listed assets."""

    owner: str
    guardian: str
    engine: EngineHandle
    configurator: object
    lens: object
    extension: object
    sequencer: object | None = None
    assets: dict[str, Asset] = field(default_factory=dict)

    @classmethod
    def deploy(
        cls,
        owner: str | None = None,
        guardian: str | None = None,
        ramp_duration: int = 86400,
        sequencer_feed: str = ZERO_ADDRESS,
        sequencer_grace_period: int = 0,
        dust_threshold: int = 10 * WAD,
        liquidation_grace_period: int = 0,
    ) -> "Protocol":
        owner = owner or boa.env.generate_address("owner")
        guardian = guardian or boa.env.generate_address("guardian")
        with boa.env.prank(owner):
            configurator = deployer("MarginConfigurator.vy").deploy(ramp_duration)
            args = (configurator.address, guardian, sequencer_feed, sequencer_grace_period)
            extension = deployer("MarginEngineExtension.vy").deploy(*args)
            planner = deployer("LiquidationPlanner.vy").deploy()
            core = deployer("MarginEngine.vy").deploy(*args, extension.address, planner.address)
            lens = deployer("MarginLens.vy").deploy(core.address)
            configurator.set_engine(core.address)
            configurator.set_liquidation_settings(dust_threshold, liquidation_grace_period)
        with warnings.catch_warnings():
            # The engine's code is not the extension's: expected for a handle.
            warnings.filterwarnings("ignore", message="casted bytecode does not match")
            extension_at_core = deployer("MarginEngineExtension.vy").at(core.address)
        engine = EngineHandle(core, extension_at_core)
        # Logs at the engine's address decode through both ABIs.
        boa.env.register_contract(core.address, engine)
        return cls(
            owner=owner, guardian=guardian, engine=engine, configurator=configurator, lens=lens, extension=extension
        )

    @classmethod
    def deploy_with_sequencer(cls, grace_period: int = 3600, **kwargs) -> "Protocol":
        """A deployment for an L2: a mock sequencer-uptime feed that is up
        since long enough ago that the grace period has passed."""
        sequencer = load_mock("MockSequencerFeed", False)
        boa.env.time_travel(seconds=grace_period + 1)
        protocol = cls.deploy(sequencer_feed=sequencer.address, sequencer_grace_period=grace_period, **kwargs)
        protocol.sequencer = sequencer
        return protocol

    def list_asset(self, spec: AssetSpec, token=None, feed=None) -> Asset:
        if token is None:
            token = deploy_token(spec)
        if feed is None:
            feed = load_mock("MockAggregator", spec.feed_decimals, f"{spec.symbol} / USD", spec.answer())
        with boa.env.prank(self.owner):
            asset_id = self.configurator.list_asset(token.address, feed.address, spec.listing_params())
        asset = Asset(spec=spec, token=token, feed=feed, id=asset_id)
        self.assets[spec.symbol] = asset
        return asset

    def __getitem__(self, symbol: str) -> Asset:
        return self.assets[symbol]

    def fund(self, who: str, asset: Asset, amount: int) -> None:
        """Mints `amount` token units to `who` and approves the engine."""
        asset.token.mint(who, amount)
        with boa.env.prank(who):
            asset.token.approve(self.engine.address, MAX_UINT)

    def refresh_prices(self) -> None:
        """Re-publishes every feed's latest answer at the current time (after a time warp)."""
        for asset in self.assets.values():
            asset.feed.set_answer(asset.feed.latestAnswer())


def contracts_dir() -> Path:
    """$XMARGIN_CONTRACTS_DIR resolved against the repository root, else contracts/."""
    override = os.environ.get(CONTRACTS_DIR_ENV)
    return (ROOT / override).resolve() if override else CONTRACTS


def contract_path(relative_path: str) -> Path:
    """Where `relative_path` (e.g. "MarginEngine.vy") is compiled from:
    $XMARGIN_CONTRACTS_DIR (read at each call, so a process can switch
    between copies) when set and holding that file, else contracts/. A
    mutant copy thus holds only the deployables its change affects."""
    candidate = contracts_dir() / relative_path
    return candidate if candidate.is_file() else CONTRACTS / relative_path


def deployer(relative_path: str):
    """Compiles a contract once per process and source path;
    `.deploy(*args)` deploys it."""
    return _compiled(str(contract_path(relative_path)))


@lru_cache(maxsize=None)
def _compiled(path: str):
    return boa.load_partial(path)


def load_mock(name: str, *args):
    return deployer(f"mocks/{name}.vy").deploy(*args)


def deploy_token(spec: AssetSpec):
    if spec.token_kind == "erc20":
        return load_mock("MockERC20", spec.symbol, spec.symbol, spec.decimals)
    if spec.token_kind == "usdt":
        return load_mock("MockUSDT", spec.symbol, spec.symbol, spec.decimals)
    if spec.token_kind == "fee":
        return load_mock("MockFeeOnTransferToken", spec.symbol, spec.symbol, spec.decimals, 100)
    if spec.token_kind == "hook":
        return load_mock("MockHookToken", spec.symbol, spec.symbol)
    raise ValueError(f"unknown token kind {spec.token_kind!r}")
