"""Deployment plan: what to send, computed from the config and a snapshot of
the chain (`ChainState`). Pure Python: the ape layer (chain.py) reads the
chain into a ChainState, calls `build_plan`, prints it, and executes the
steps; tests can build plans from hand-made states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .config import DEPLOYER, DeployConfig, ListingParams, listing_issues, to_listing_params


class RecordStatus(str, Enum):
    NONE = "none"  # no deployment file yet
    CURRENT = "current"  # file matches this chain
    STALE = "stale"  # file describes another chain (e.g. a restarted anvil)


@dataclass
class AssetState:
    """What the chain says about one configured asset."""

    token: str | None = None  # config address or recorded mock; None: nothing to use yet
    token_has_code: bool = False
    token_decimals: int | None = None  # on-chain decimals()
    feed: str | None = None
    feed_has_code: bool = False
    feed_decimals: int | None = None
    feed_description: str | None = None
    listed: bool = False  # among the engine's listed assets (asset_by_id)


ENGINE_ARGS = ("configurator", "guardian", "sequencer_feed", "sequencer_grace_period", "extension", "planner")
EXTENSION_ARGS = ("configurator", "guardian", "sequencer_feed", "sequencer_grace_period")
LISTING_FIELDS = ("risk", "rates", "supply_cap", "borrow_cap", "collateral", "borrowable", "liquidation")


@dataclass
class Capabilities:
    """What the compiled contracts take, read from their ABIs (chain.py), so
    the deployment follows the contracts: an engine with an extension,
    listing structs with liquidation parameters, liquidation settings."""

    engine_args: tuple[str, ...] = ENGINE_ARGS
    extension_args: tuple[str, ...] | None = EXTENSION_ARGS  # None: no MarginEngineExtension contract
    listing_fields: tuple[str, ...] = LISTING_FIELDS
    has_liquidation_settings: bool = True  # MarginConfigurator.set_liquidation_settings exists

    @property
    def needs_extension(self) -> bool:
        return "extension" in self.engine_args

    @property
    def needs_planner(self) -> bool:
        return "planner" in self.engine_args

    @property
    def listing_needs_liquidation(self) -> bool:
        return "liquidation" in self.listing_fields

    def issues(self) -> list[str]:
        out = []
        for name in self.engine_args:
            if name not in ENGINE_ARGS:
                out.append(f"contracts: MarginEngine's constructor takes `{name}`, unknown to scripts/_xmargin_deploy")
        for name in self.extension_args or ():
            if name not in EXTENSION_ARGS:
                out.append(
                    f"contracts: MarginEngineExtension's constructor takes `{name}`, unknown to scripts/_xmargin_deploy"
                )
        for name in self.listing_fields:
            if name not in LISTING_FIELDS:
                out.append(f"contracts: list_asset's ListingParams has `{name}`, unknown to scripts/_xmargin_deploy")
        if self.needs_extension and self.extension_args is None:
            out.append("contracts: MarginEngine takes an extension but there is no MarginEngineExtension contract")
        return out


@dataclass
class ChainState:
    network: str  # ecosystem:network
    is_dev: bool  # local network or fork: mocks allowed, no confirmation
    chain_id: int
    deployer: str  # the sending account
    record_status: RecordStatus = RecordStatus.NONE
    record_deployer: str | None = None
    configurator: str | None = None  # recorded address that has code
    engine: str | None = None
    lens: str | None = None
    extension: str | None = None  # recorded MarginEngineExtension with code
    planner: str | None = None  # recorded LiquidationPlanner with code
    liquidation_settings_done: bool = False  # the record holds a set_liquidation_settings transaction
    caps: Capabilities = field(default_factory=Capabilities)
    recorded_without_code: list[str] = field(default_factory=list)  # names of recorded contracts without code
    configurator_engine: str | None = None  # configurator.engine() (None = not set)
    configurator_owner: str | None = None
    configurator_pending_owner: str | None = None
    sequencer_has_code: bool = True  # cfg.sequencer.feed has code (True when no feed)
    assets: dict[str, AssetState] = field(default_factory=dict)


@dataclass
class Step:
    kind: str  # deploy_configurator | deploy_extension | deploy_planner | deploy_engine | deploy_lens | set_engine
    #            | set_liquidation_settings | deploy_mock_token | deploy_mock_feed | list_asset
    #            | transfer_ownership
    description: str
    symbol: str | None = None


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)  # blocking: nothing is sent
    notes: list[str] = field(default_factory=list)
    listings: dict[str, ListingParams] = field(default_factory=dict)  # converted params per symbol
    owner: str = ""  # resolved roles
    guardian: str = ""
    already_deployed: bool = False  # core contracts exist
    to_list: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def transaction_count(self) -> int:
        return len(self.steps)


ZERO = "0x" + "00" * 20


def resolve_role(value: str, deployer: str) -> str:
    return deployer if value == DEPLOYER else value


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def build_plan(cfg: DeployConfig, state: ChainState) -> Plan:
    plan = Plan()
    deployer = state.record_deployer if state.record_status is RecordStatus.CURRENT and state.record_deployer else state.deployer
    plan.owner = resolve_role(cfg.roles.owner, deployer)
    plan.guardian = resolve_role(cfg.roles.guardian, deployer)

    if state.record_status is RecordStatus.STALE:
        if state.is_dev:
            plan.notes.append("the deployment file describes another chain (restarted local node?): deploying afresh")
        else:
            plan.issues.append(
                "deployment file: it describes another chain or its contracts have no code here; "
                "refusing to overwrite it (check the network/RPC, or move the file away to redeploy)"
            )
            return plan
    if state.record_status is RecordStatus.CURRENT and state.recorded_without_code:
        names = ", ".join(state.recorded_without_code)
        if state.is_dev:
            plan.notes.append(f"recorded {names} has no code on this chain: deploying it again")
        else:
            plan.issues.append(f"deployment file: recorded {names} has no code on {state.network}; refusing to continue")
            return plan

    caps = state.caps
    plan.issues += caps.issues()
    if plan.issues:
        return plan

    def unused(path: str, what: str) -> None:
        message = f"{path}: ignored, {what}"
        if state.is_dev:
            plan.notes.append(message)
        else:
            plan.issues.append(f"{message} (remove it from a live-network config)")

    # --- core contracts -------------------------------------------------------
    have_configurator = state.configurator is not None
    have_engine = state.engine is not None
    have_lens = state.lens is not None
    if have_engine and not have_configurator:
        plan.issues.append("deployment file: an engine without its configurator; fix or remove the file")
        return plan
    plan.already_deployed = have_configurator and have_engine and have_lens
    if not have_configurator:
        plan.steps.append(Step("deploy_configurator", f"deploy MarginConfigurator(ramp={cfg.maintenance_ramp_duration}s)"))
    if not have_engine and caps.needs_extension and state.extension is None:
        plan.steps.append(
            Step("deploy_extension", "deploy MarginEngineExtension(configurator, guardian, sequencer_feed, grace)")
        )
    if not have_engine and caps.needs_planner and state.planner is None:
        plan.steps.append(Step("deploy_planner", "deploy LiquidationPlanner()"))
    if not have_engine:
        seq = cfg.sequencer.feed or ZERO
        if not state.sequencer_has_code:
            plan.issues.append(f"sequencer.feed: no contract code at {seq} on {state.network}")
        plan.steps.append(
            Step(
                "deploy_engine",
                f"deploy MarginEngine(configurator, guardian={plan.guardian}, sequencer_feed={seq}, "
                f"grace={cfg.sequencer.grace_period}s"
                + (", extension" if caps.needs_extension else "")
                + (", planner" if caps.needs_planner else "")
                + ")",
            )
        )
    if not have_lens:
        plan.steps.append(Step("deploy_lens", "deploy MarginLens(engine)"))
    if not (have_engine and _same(state.configurator_engine, state.engine)):
        if have_engine and state.configurator_engine not in (None, ZERO):
            plan.issues.append(
                f"configurator: bound to engine {state.configurator_engine}, not the recorded {state.engine}"
            )
        else:
            plan.steps.append(Step("set_engine", "configurator.set_engine(engine)"))
    if caps.has_liquidation_settings:
        ls = cfg.liquidation_settings
        if ls is None:
            plan.issues.append(
                "liquidation_settings: missing; this MarginConfigurator needs {dust_threshold, grace_period}"
            )
        elif not (have_engine and state.liquidation_settings_done):
            plan.steps.append(
                Step(
                    "set_liquidation_settings",
                    f"configurator.set_liquidation_settings(dust=${ls.dust_threshold}, grace={ls.grace_period}s)",
                )
            )
    elif cfg.liquidation_settings is not None:
        unused("liquidation_settings", "this MarginConfigurator has no liquidation settings")

    # --- assets -----------------------------------------------------------------
    for i, a in enumerate(cfg.assets):
        s = state.assets.get(a.symbol, AssetState())
        p = f"assets[{i}]"
        if a.token.mock is not None:
            token_decimals = a.token.mock.decimals
            if s.token is None or not s.token_has_code:
                plan.steps.append(
                    Step(
                        "deploy_mock_token",
                        f"deploy MockERC20({a.token.mock.name!r}, {a.token.mock.symbol or a.symbol!r}, {token_decimals})",
                        a.symbol,
                    )
                )
        else:
            token_decimals = s.token_decimals
            if not s.token_has_code:
                plan.issues.append(f"{p}.token.address: no contract code at {a.token.address} on {state.network}")
            elif token_decimals is None:
                plan.issues.append(f"{p}.token.address: decimals() failed on {a.token.address}")
            elif a.token.decimals is not None and a.token.decimals != token_decimals:
                plan.issues.append(
                    f"{p}.token.decimals: config says {a.token.decimals} but the token reports {token_decimals}"
                )
            elif token_decimals > 18:
                plan.issues.append(f"{p}.token.address: {token_decimals} decimals (the engine takes at most 18)")
        if a.feed.mock is not None:
            feed_decimals = a.feed.mock.decimals
            if s.feed is None or not s.feed_has_code:
                plan.steps.append(
                    Step(
                        "deploy_mock_feed",
                        f"deploy MockAggregator({feed_decimals}, {a.feed.mock.description or a.symbol + ' / USD'!r}, "
                        f"price={a.feed.mock.price})",
                        a.symbol,
                    )
                )
        else:
            feed_decimals = s.feed_decimals
            if not s.feed_has_code:
                plan.issues.append(f"{p}.feed.address: no contract code at {a.feed.address} on {state.network}")
            elif feed_decimals is None:
                plan.issues.append(f"{p}.feed.address: decimals() failed on {a.feed.address}")
            elif a.feed.decimals is not None and a.feed.decimals != feed_decimals:
                plan.issues.append(f"{p}.feed.decimals: config says {a.feed.decimals} but the feed reports {feed_decimals}")
            elif feed_decimals > 18:
                plan.issues.append(f"{p}.feed.address: {feed_decimals} decimals (the engine takes at most 18)")
            if (
                s.feed_has_code
                and a.feed.description is not None
                and (s.feed_description is None or _norm(s.feed_description) != _norm(a.feed.description))
            ):
                plan.issues.append(
                    f"{p}.feed.description: config expects {a.feed.description!r} but the feed says "
                    f"{s.feed_description!r}"
                )
        if token_decimals is None or feed_decimals is None or token_decimals > 18 or feed_decimals > 18:
            continue
        problems = listing_issues(i, a, token_decimals, feed_decimals)
        if caps.listing_needs_liquidation and a.liquidation is None:
            problems.append(
                f"{p}.liquidation: missing; this MarginConfigurator lists assets with "
                "{min_bonus, max_bonus, full_bonus_depth, insurance_share}"
            )
        elif not caps.listing_needs_liquidation and a.liquidation is not None:
            unused(f"{p}.liquidation", "this MarginConfigurator lists assets without liquidation parameters")
        if problems:
            plan.issues += problems
            continue
        plan.listings[a.symbol] = to_listing_params(a, token_decimals, feed_decimals, caps.listing_needs_liquidation)
        if s.listed:
            plan.notes.append(f"{a.symbol}: already listed (not changed)")
        else:
            plan.to_list.append(a.symbol)
            plan.steps.append(Step("list_asset", f"configurator.list_asset({a.symbol})", a.symbol))

    # --- ownership ----------------------------------------------------------------
    needs_owner = any(s.kind in ("set_engine", "set_liquidation_settings", "list_asset") for s in plan.steps)
    current_owner = state.configurator_owner if have_configurator else state.deployer
    if needs_owner and have_configurator and not _same(current_owner, state.deployer):
        plan.issues.append(
            f"configurator: its owner is {current_owner}, not the sending account {state.deployer}; "
            "run with --account set to the owner"
        )
    if not _same(plan.owner, current_owner):
        if have_configurator and _same(state.configurator_pending_owner, plan.owner):
            plan.notes.append(f"ownership transfer to {plan.owner} is pending: it must call accept_ownership()")
        elif _same(current_owner, state.deployer):
            plan.steps.append(
                Step("transfer_ownership", f"configurator.transfer_ownership({plan.owner}) (2-step; owner must accept)")
            )
        else:
            plan.notes.append(f"configurator owner is {current_owner}, config says {plan.owner}: not changed")
    return plan
