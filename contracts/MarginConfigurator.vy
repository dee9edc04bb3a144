# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize gas
"""
@title MarginConfigurator
@license MIT
@notice The protocol owner's interface to the MarginEngine. It validates
        every parameter against the bounds below (docs/risk-model.md,
        "Parameters and bounds"), packs it into the engine's storage words
        and is the engine's only configuration writer:
          - lists assets (token + Chainlink feed + weights, caps, rates);
          - sets risk parameters: initial weights apply at once; a
            tightening of maintenance weights ramps in linearly over
            `maintenance_ramp_duration` (Euler v2's LTV ramping), so no
            account turns liquidatable at once;
          - sets rate models, caps, collateral/borrowable flags, liquidation
            bonuses and settings (dust threshold, grace period after a stale
            feed), the guardian, and lifts pauses (the guardian can only
            pause).
        Every setter emits an event with the full new values, so an indexer
        rebuilds the configuration from logs.
@custom:security Owned with a 2-step transfer (snekmate ownable_2step). The
        engine address is set once. Weights are stored in basis points:
        inputs are WAD and must be multiples of 1e14.
"""

from ethereum.ercs import IERC20Detailed
from snekmate.auth import ownable
from snekmate.auth import ownable_2step

from .modules import fixed_point
from .modules import interest_rate
from .modules import liquidation
from .modules import margin

initializes: ownable
initializes: ownable_2step[ownable := ownable]

exports: (
    ownable.owner,
    ownable_2step.pending_owner,
    ownable_2step.transfer_ownership,
    ownable_2step.accept_ownership,
)


interface IMarginEngine:
    def add_asset(asset: address, feed: address, info: uint256, risk: uint256, rate_model: uint256, reserve_factor: uint256, liquidation_word: uint256): nonpayable
    def set_liquidation(asset: address, liquidation_word: uint256): nonpayable
    def set_liquidation_settings(dust_threshold: uint256, grace_period: uint256, paused_until: uint256): nonpayable
    def liquidation_settings() -> (uint256, uint256, uint256): view
    def set_info(asset: address, info: uint256): nonpayable
    def set_risk(asset: address, risk: uint256, ramp: uint256): nonpayable
    def set_rate_model(asset: address, rate_model: uint256, reserve_factor: uint256): nonpayable
    def set_guardian(guardian: address): nonpayable
    def pause(asset: address, actions: uint256): nonpayable
    def asset_id(asset: address) -> uint256: view
    def asset_state(id: uint256) -> AssetState: view


interface IAggregatorDecimals:
    def decimals() -> uint8: view


# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

WAD: constant(uint256) = fixed_point.WAD
MASK120: constant(uint256) = 2**120 - 1

# Info-word flags of the engine (bits 8-15).
BORROWABLE: constant(uint256) = 32
PAUSABLE: constant(uint256) = 2 | 4 | 8 | 16

# Parameter bounds.
MAX_LIABILITY_WEIGHT: constant(uint256) = 5 * WAD
MAX_STALENESS: constant(uint256) = 7 * 86400
MAX_IMF: constant(uint256) = (2**24 - 1) * 10**12
MAX_ANSWER: constant(uint256) = 2**64 - 1
# 1,000% APR expressed per second.
MAX_BORROW_RATE: constant(uint256) = 10 * WAD // (365 * 86400)
MAX_BONUS: constant(uint256) = WAD // 2
MAX_LIQUIDATION_GRACE: constant(uint256) = 86400
MIN_RAMP_DURATION: constant(uint256) = 3600
MAX_RAMP_DURATION: constant(uint256) = 90 * 86400


# ---------------------------------------------------------------------------
# Structs
# ---------------------------------------------------------------------------

struct AssetState:
    asset: address
    info: uint256
    market_a: uint256
    market_b: uint256
    totals: uint256
    rate_model: uint256
    risk: uint256
    ramp: uint256
    liquidation: uint256


struct RateParams:
    base_rate: uint256  # WAD per second
    slope_low: uint256  # WAD per second, reached at the kink
    slope_high: uint256  # WAD per second, added from the kink to 100% utilisation
    kink: uint256  # WAD utilisation, 0 < kink < 1
    reserve_factor: uint256  # WAD share of interest to the insurance fund, <= 1


struct ListingParams:
    risk: margin.RiskParams
    rates: RateParams
    supply_cap: uint256  # token units; 0 = no cap
    borrow_cap: uint256  # token units; 0 = no cap
    collateral: bool  # counts with its initial asset weight
    borrowable: bool  # may be borrowed
    liquidation: liquidation.LiquidationParams  # bonus when this asset is seized


# ---------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------

# The engine configured here; set once.
engine: public(IMarginEngine)
# Seconds over which a tightening of maintenance weights ramps in.
maintenance_ramp_duration: public(uint256)


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------

event EngineSet:
    engine: indexed(address)

event AssetConfigured:
    asset: indexed(address)
    asset_id: uint256
    feed: address
    token_decimals: uint256
    feed_decimals: uint256

event RiskParamsSet:
    asset: indexed(address)
    asset_weight_initial: uint256
    asset_weight_maintenance: uint256
    liability_weight_initial: uint256
    liability_weight_maintenance: uint256
    max_staleness: uint256
    imf: uint256
    min_answer: uint256
    max_answer: uint256
    ramp_end: uint256  # 0 when the change applies at once

event RateModelSet:
    asset: indexed(address)
    base_rate: uint256
    slope_low: uint256
    slope_high: uint256
    kink: uint256
    reserve_factor: uint256

event CapsSet:
    asset: indexed(address)
    supply_cap: uint256
    borrow_cap: uint256

event FlagsSet:
    asset: indexed(address)
    collateral: bool
    borrowable: bool

event LiquidationParamsSet:
    asset: indexed(address)
    min_bonus: uint256
    max_bonus: uint256
    full_bonus_depth: uint256
    insurance_share: uint256

event MaintenanceRampDurationSet:
    duration: uint256


# ---------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------

@deploy
def __init__(maintenance_ramp_duration: uint256):
    """
    @param maintenance_ramp_duration Seconds (1 hour to 90 days).
    """
    ownable.__init__()
    ownable_2step.__init__()
    self._set_ramp_duration(maintenance_ramp_duration)


# ---------------------------------------------------------------------------
# Owner
# ---------------------------------------------------------------------------

@external
def set_engine(engine: IMarginEngine):
    """
    @notice Binds the engine, once. The engine must name this contract as
            its CONFIGURATOR.
    """
    ownable._check_owner()
    assert self.engine.address == empty(address), "config: engine already set"
    assert engine.address != empty(address), "config: zero address"
    self.engine = engine
    log EngineSet(engine=engine.address)


@external
def list_asset(asset: address, feed: address, params: ListingParams) -> uint256:
    """
    @notice Lists a token with its Chainlink asset/USD feed.
    @param asset Standard ERC-20 with at most 18 decimals. Fee-on-transfer
           and rebasing tokens must not be listed: the engine refuses every
           transfer in whose balance change differs from the amount.
    @param feed Chainlink AggregatorV3, at most 18 decimals.
    @param params WAD-scaled parameters; bounds in docs/risk-model.md.
    @return The asset id in the engine.
    @dev Reverts: "ownable: caller is not the owner", "config: engine not
         set", "config: zero address", "config: token decimals above 18",
         "config: feed decimals above 18", "config: ..." bounds reasons,
         "config: asset already listed", "config: too many assets".
    """
    ownable._check_owner()
    engine: IMarginEngine = self._engine()
    assert asset != empty(address) and feed != empty(address), "config: zero address"
    token_decimals: uint256 = convert(staticcall IERC20Detailed(asset).decimals(), uint256)
    feed_decimals: uint256 = convert(staticcall IAggregatorDecimals(feed).decimals(), uint256)
    assert token_decimals <= 18, "config: token decimals above 18"
    assert feed_decimals <= 18, "config: feed decimals above 18"
    self._validate_risk(params.risk, feed_decimals)
    self._validate_rates(params.rates)
    self._validate_caps(params.supply_cap, params.borrow_cap)
    self._validate_liquidation(params.liquidation)
    flags: uint256 = 0
    if params.collateral:
        flags = margin.FLAG_COLLATERAL
    info: uint256 = params.supply_cap << 16 | params.borrow_cap << 136
    if params.borrowable:
        info |= BORROWABLE << 8
    extcall engine.add_asset(
        asset,
        feed,
        info,
        margin.pack_risk(params.risk, token_decimals, feed_decimals, flags),
        self._pack_rates(params.rates),
        params.rates.reserve_factor,
        liquidation.pack(params.liquidation),
    )
    id: uint256 = staticcall engine.asset_id(asset)
    log AssetConfigured(asset=asset, asset_id=id, feed=feed, token_decimals=token_decimals, feed_decimals=feed_decimals)
    self._log_risk(asset, params.risk, 0)
    self._log_rates(asset, params.rates)
    log CapsSet(asset=asset, supply_cap=params.supply_cap, borrow_cap=params.borrow_cap)
    log FlagsSet(asset=asset, collateral=params.collateral, borrowable=params.borrowable)
    self._log_liquidation(asset, params.liquidation)
    return id


@external
def set_risk_params(asset: address, params: margin.RiskParams):
    """
    @notice Sets weights, size factor (imf), staleness and answer bounds.
            Initial weights and every loosening apply at once; a lower
            maintenance asset weight or a higher maintenance liability
            weight ramps in linearly from the weight in force now over
            `maintenance_ramp_duration`.
    @param asset A listed token.
    @param params WAD-scaled; bounds in docs/risk-model.md.
    """
    ownable._check_owner()
    engine: IMarginEngine = self._engine()
    state: AssetState = staticcall engine.asset_state(staticcall engine.asset_id(asset))
    self._validate_risk(params, margin.feed_decimals(state.risk))
    ramp: uint256 = 0
    if margin.flags(state.risk) & margin.FLAG_RAMPING != 0:
        ramp = state.ramp
    aw_now: uint256 = 0
    lw_now: uint256 = 0
    aw_now, lw_now = margin.maintenance_weights(state.risk, ramp)
    flags: uint256 = margin.flags(state.risk) & margin.FLAG_COLLATERAL
    new_ramp: uint256 = 0
    ramp_end: uint256 = 0
    old: margin.RiskParams = margin.unpack_risk(state.risk)
    if (
        ramp != 0
        and params.asset_weight_maintenance == old.asset_weight_maintenance
        and params.liability_weight_maintenance == old.liability_weight_maintenance
    ):
        # Same maintenance targets: a ramp in progress goes on unchanged.
        new_ramp = ramp
        ramp_end = margin.ramp_end(ramp)
        flags |= margin.FLAG_RAMPING
    elif params.asset_weight_maintenance < aw_now or params.liability_weight_maintenance > lw_now:
        ramp_end = block.timestamp + self.maintenance_ramp_duration
        # Start values in bp: the asset weight rounds down and the liability
        # weight up, so the ramp never starts looser than the weights in force.
        new_ramp = margin.pack_ramp(
            max(aw_now // margin.BPS_TO_WAD, params.asset_weight_maintenance // margin.BPS_TO_WAD),
            min(fixed_point.mul_div_up(lw_now, 1, margin.BPS_TO_WAD), params.liability_weight_maintenance // margin.BPS_TO_WAD),
            block.timestamp,
            ramp_end,
        )
        flags |= margin.FLAG_RAMPING
    extcall engine.set_risk(
        asset,
        margin.pack_risk(params, margin.token_decimals(state.risk), margin.feed_decimals(state.risk), flags),
        new_ramp,
    )
    self._log_risk(asset, params, ramp_end)


@external
def set_rate_model(asset: address, rates: RateParams):
    """
    @notice Sets the kinked rate model and reserve factor; the engine accrues
            interest at the old rates first.
    """
    ownable._check_owner()
    self._validate_rates(rates)
    extcall self._engine().set_rate_model(asset, self._pack_rates(rates), rates.reserve_factor)
    self._log_rates(asset, rates)


@external
def set_caps(asset: address, supply_cap: uint256, borrow_cap: uint256):
    """
    @notice Supply and borrow caps in token units (0 = no cap). A cap below
            the current total only blocks increases.
    """
    ownable._check_owner()
    self._validate_caps(supply_cap, borrow_cap)
    engine: IMarginEngine = self._engine()
    info: uint256 = (staticcall engine.asset_state(staticcall engine.asset_id(asset))).info
    extcall engine.set_info(asset, (info & (2**16 - 1)) | supply_cap << 16 | borrow_cap << 136)
    log CapsSet(asset=asset, supply_cap=supply_cap, borrow_cap=borrow_cap)


@external
def set_flags(asset: address, collateral: bool, borrowable: bool):
    """
    @notice Collateral off: the initial asset weight counts as 0 (no new
            borrowing against the asset) while its maintenance weight keeps
            protecting existing positions. Borrowable off: no new borrows.
    """
    ownable._check_owner()
    engine: IMarginEngine = self._engine()
    state: AssetState = staticcall engine.asset_state(staticcall engine.asset_id(asset))
    collateral_bit: uint256 = margin.FLAG_COLLATERAL << 122
    risk: uint256 = state.risk & ~collateral_bit
    if collateral:
        risk |= collateral_bit
    borrowable_bit: uint256 = BORROWABLE << 8
    info: uint256 = state.info & ~borrowable_bit
    if borrowable:
        info |= borrowable_bit
    extcall engine.set_risk(asset, risk, state.ramp)
    extcall engine.set_info(asset, info)
    log FlagsSet(asset=asset, collateral=collateral, borrowable=borrowable)


@external
def pause(asset: address, actions: uint256):
    """
    @notice Pauses actions on `asset` (see MarginEngine.pause).
    """
    ownable._check_owner()
    extcall self._engine().pause(asset, actions)


@external
def unpause(asset: address, actions: uint256):
    """
    @notice Lifts pauses on `asset`; only the owner can.
    @param actions PAUSE_DEPOSIT (2) | PAUSE_WITHDRAW (4) | PAUSE_BORROW (8)
           | PAUSE_TRANSFER (16).
    """
    ownable._check_owner()
    assert actions != 0 and actions & ~PAUSABLE == 0, "pause: invalid actions"
    engine: IMarginEngine = self._engine()
    info: uint256 = (staticcall engine.asset_state(staticcall engine.asset_id(asset))).info
    extcall engine.set_info(asset, info & ~(actions << 8))


@external
def set_liquidation_params(asset: address, params: liquidation.LiquidationParams):
    """
    @notice Bonus of `asset` when it is seized: it grows from `min_bonus` to
            `max_bonus` as the account's maintenance health ratio falls by
            `full_bonus_depth` below 1; `insurance_share` of it goes to the
            insurance fund. WAD, multiples of 1e14; bonus <= 50%.
    """
    ownable._check_owner()
    self._validate_liquidation(params)
    extcall self._engine().set_liquidation(asset, liquidation.pack(params))
    self._log_liquidation(asset, params)


@external
def set_liquidation_settings(dust_threshold: uint256, grace_period: uint256):
    """
    @notice Deployment-wide liquidation settings.
    @param dust_threshold USD WAD below which a remaining position is dust:
           a liquidation may close it in full, must not leave it on one side,
           and an account whose collateral is worth less can be settled as
           bad debt.
    @param grace_period Seconds liquidations wait after a price feed was
           stale (<= 1 day; 0 disables the check).
    """
    ownable._check_owner()
    assert grace_period <= MAX_LIQUIDATION_GRACE, "config: liquidation grace period above 1 day"
    engine: IMarginEngine = self._engine()
    dust: uint256 = 0
    grace: uint256 = 0
    paused_until: uint256 = 0
    dust, grace, paused_until = staticcall engine.liquidation_settings()
    extcall engine.set_liquidation_settings(dust_threshold, grace_period, paused_until)


@external
def unpause_liquidations():
    """
    @notice Ends a guardian's liquidation pause now. Owner only.
    """
    ownable._check_owner()
    engine: IMarginEngine = self._engine()
    dust: uint256 = 0
    grace: uint256 = 0
    paused_until: uint256 = 0
    dust, grace, paused_until = staticcall engine.liquidation_settings()
    extcall engine.set_liquidation_settings(dust, grace, min(paused_until, block.timestamp))


@external
def set_guardian(guardian: address):
    ownable._check_owner()
    extcall self._engine().set_guardian(guardian)


@external
def set_maintenance_ramp_duration(duration: uint256):
    """
    @param duration Seconds, 1 hour to 90 days.
    """
    ownable._check_owner()
    self._set_ramp_duration(duration)


# ---------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------

@internal
@view
def _engine() -> IMarginEngine:
    engine: IMarginEngine = self.engine
    assert engine.address != empty(address), "config: engine not set"
    return engine


@internal
def _set_ramp_duration(duration: uint256):
    assert duration >= MIN_RAMP_DURATION and duration <= MAX_RAMP_DURATION, "config: ramp duration out of range"
    self.maintenance_ramp_duration = duration
    log MaintenanceRampDurationSet(duration=duration)


@internal
@pure
def _pack_rates(r: RateParams) -> uint256:
    return interest_rate.pack(r.base_rate, r.slope_low, r.slope_high, r.kink)


@internal
@pure
def _validate_risk(p: margin.RiskParams, feed_decimals: uint256):
    bp: uint256 = margin.BPS_TO_WAD
    assert (
        p.asset_weight_initial % bp == 0
        and p.asset_weight_maintenance % bp == 0
        and p.liability_weight_initial % bp == 0
        and p.liability_weight_maintenance % bp == 0
    ), "config: weights must be multiples of 1e14 (1 bp)"
    assert p.asset_weight_initial <= p.asset_weight_maintenance and p.asset_weight_maintenance <= WAD, "config: need asset weight initial <= maintenance <= 1"
    assert WAD <= p.liability_weight_maintenance and p.liability_weight_maintenance <= p.liability_weight_initial, "config: need liability weight 1 <= maintenance <= initial"
    assert p.liability_weight_initial <= MAX_LIABILITY_WEIGHT, "config: liability weight above 5"
    assert p.max_staleness != 0 and p.max_staleness <= MAX_STALENESS, "config: max staleness out of range"
    assert p.imf % 10**12 == 0 and p.imf <= MAX_IMF, "config: imf out of range"
    # Bounds are stored with at most 8 decimals (margin.bound_scale).
    scale: uint256 = margin.bound_scale(feed_decimals)
    assert (
        p.min_answer != 0
        and p.min_answer < p.max_answer
        and p.min_answer % scale == 0
        and p.max_answer % scale == 0
        and p.max_answer // scale <= MAX_ANSWER
    ), "config: answer bounds invalid"


@internal
@pure
def _validate_rates(r: RateParams):
    assert r.kink != 0 and r.kink < WAD, "config: kink must be in (0, 1)"
    assert r.base_rate + r.slope_low + r.slope_high <= MAX_BORROW_RATE, "config: borrow rate above 1000% APR"
    assert r.reserve_factor <= WAD, "config: reserve factor above 1"


@internal
@pure
def _validate_liquidation(p: liquidation.LiquidationParams):
    bp: uint256 = margin.BPS_TO_WAD
    assert (
        p.min_bonus % bp == 0 and p.max_bonus % bp == 0 and p.full_bonus_depth % bp == 0 and p.insurance_share % bp == 0
    ), "config: liquidation parameters must be multiples of 1e14 (1 bp)"
    assert p.min_bonus <= p.max_bonus and p.max_bonus <= MAX_BONUS, "config: need bonus min <= max <= 50%"
    assert p.full_bonus_depth != 0 and p.full_bonus_depth <= WAD, "config: full bonus depth must be in (0, 1]"
    assert p.insurance_share <= WAD, "config: insurance share above 1"


@internal
def _log_liquidation(asset: address, p: liquidation.LiquidationParams):
    log LiquidationParamsSet(
        asset=asset,
        min_bonus=p.min_bonus,
        max_bonus=p.max_bonus,
        full_bonus_depth=p.full_bonus_depth,
        insurance_share=p.insurance_share,
    )


@internal
@pure
def _validate_caps(supply_cap: uint256, borrow_cap: uint256):
    assert supply_cap <= MASK120 and borrow_cap <= MASK120, "config: cap above 2**120 - 1"


@internal
def _log_risk(asset: address, p: margin.RiskParams, ramp_end: uint256):
    log RiskParamsSet(
        asset=asset,
        asset_weight_initial=p.asset_weight_initial,
        asset_weight_maintenance=p.asset_weight_maintenance,
        liability_weight_initial=p.liability_weight_initial,
        liability_weight_maintenance=p.liability_weight_maintenance,
        max_staleness=p.max_staleness,
        imf=p.imf,
        min_answer=p.min_answer,
        max_answer=p.max_answer,
        ramp_end=ramp_end,
    )


@internal
def _log_rates(asset: address, r: RateParams):
    log RateModelSet(
        asset=asset,
        base_rate=r.base_rate,
        slope_low=r.slope_low,
        slope_high=r.slope_high,
        kink=r.kink,
        reserve_factor=r.reserve_factor,
    )
