# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize gas
"""
@title MarginEngineExtension
@license MIT
@notice The cold paths of the xmargin engine, reached only by delegatecall
        from MarginEngine (whose storage it reads and writes through the
        shared ledger module): operator approvals, collateral transfers
        between sub-accounts, batches with one health check, interest
        accrual on demand, bad-debt settlement, pauses and configuration
        writes. Every function returns nothing (the engine's forwarding
        fallback cannot return data); results are in the events.
@custom:security Each function reverts with "engine: call through the
        engine" when called directly, so this contract's own storage is
        never used. The non-reentrancy lock lives in the engine's transient
        storage, shared with the engine's functions.
"""

from ethereum.ercs import IERC20

from .modules import fixed_point
from .modules import ledger
from .modules import margin
from .modules import oracle

initializes: ledger

exports: (ledger.CONFIGURATOR, ledger.SEQUENCER_FEED, ledger.SEQUENCER_GRACE_PERIOD)

# This contract's own address: delegated calls run with another `self`.
SELF: immutable(address)


# ---------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------

@deploy
def __init__(configurator: address, guardian: address, sequencer_feed: address, sequencer_grace_period: uint256):
    """
    @notice Takes the engine's first four constructor arguments; the engine
            checks they match.
    """
    ledger.__init__(configurator, guardian, sequencer_feed, sequencer_grace_period)
    SELF = self


# ---------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------

@external
def set_operator(operator: address, approved: bool):
    """
    @notice Lets `operator` (a router, a front-end batcher) act for all of the
            caller's sub-accounts: deposit, withdraw, borrow, transfer, batch.
    @param operator The approved contract or address.
    @param approved True to approve, False to revoke.
    """
    self._only_delegated()
    assert operator != msg.sender, "account: cannot approve yourself"
    ledger.operators[msg.sender][operator] = approved
    log ledger.OperatorSet(owner=msg.sender, operator=operator, approved=approved)


@external
def transfer_collateral(
    asset: address,
    amount: uint256,
    from_sub_id: uint8,
    to_sub_id: uint8,
    owner: address = msg.sender,
):
    """
    @notice Moves a deposit between two sub-accounts of one owner. The
            source must keep initial health >= 0 if it has debt.
    @param asset A listed token.
    @param amount Token units; max uint256 moves the whole deposit.
    @param from_sub_id Source sub-account.
    @param to_sub_id Destination sub-account (must differ).
    @param owner Owner of both; the caller must be it or its operator.
    @dev Reverts: "transfer: same sub-account", "pause: transfer paused",
         "transfer: amount exceeds deposit", "health: below initial margin".
    """
    self._only_delegated()
    key: uint256 = ledger._authorize(owner, from_sub_id)
    shares: uint256 = 0
    check: bool = False
    shares, check = ledger._transfer(owner, from_sub_id, to_sub_id, key, asset, amount)
    if check:
        ledger._require_initial_health(key)


@external
def batch(actions: DynArray[ledger.Action, ledger.MAX_BATCH], sub_id: uint8 = 0, owner: address = msg.sender):
    """
    @notice Runs several actions on one sub-account with a single initial
            health check at the end (e.g. deposit collateral and borrow in
            one transaction). Deposits and repays take tokens from the caller.
    @param actions Up to 16 actions, run in order.
    @param sub_id Sub-account of `owner`.
    @param owner Account owner; the caller must be it or its operator.
    @dev Reverts with the failing action's reason, or "batch: unknown action".
    """
    self._only_delegated()
    key: uint256 = ledger._authorize(owner, sub_id)
    check: bool = False
    step_check: bool = False
    unused: uint256 = 0
    for act: ledger.Action in actions:
        if act.kind == ledger.ACTION_DEPOSIT:
            ledger._deposit(owner, sub_id, key, act.asset, act.amount)
        elif act.kind == ledger.ACTION_WITHDRAW:
            unused, step_check = ledger._withdraw(owner, sub_id, key, act.asset, act.amount, act.receiver)
            check = check or step_check
        elif act.kind == ledger.ACTION_BORROW:
            ledger._borrow(owner, sub_id, key, act.asset, act.amount, act.receiver)
            check = True
        elif act.kind == ledger.ACTION_REPAY:
            ledger._repay(owner, sub_id, key, act.asset, act.amount)
        elif act.kind == ledger.ACTION_TRANSFER:
            unused, step_check = ledger._transfer(owner, sub_id, act.to_sub_id, key, act.asset, act.amount)
            check = check or step_check
        else:
            raise "batch: unknown action"
    if check:
        ledger._require_initial_health(key)


@external
def accrue(asset: address):
    """
    @notice Accrues interest of `asset` to the current second and stores the
            indexes. Anyone may call it; every action accrues its asset too.
    @param asset A listed token.
    """
    self._only_delegated()
    m: ledger.Market = ledger._accrue(ledger._asset_id(ledger._info[asset]), True)
    log ledger.InterestAccrued(
        asset=asset, deposit_index=m.deposit_index, borrow_index=m.borrow_index, timestamp=block.timestamp
    )


# ---------------------------------------------------------------------------
# Bad debt
# ---------------------------------------------------------------------------

@external
def settle_bad_debt(owner: address, sub_id: uint8):
    """
    @notice Writes off the debt of an account whose collateral is gone or
            worth less than the dust threshold. Its remaining deposits go
            to the insurance fund; each debt is covered by that asset's
            insurance fund first, and the rest is socialised to the asset's
            depositors by lowering its deposit index. Anyone may call it.
            A write-off is the last step of a liquidation and acts on
            prices, so it waits like a liquidation: not while liquidations
            are paused, the L2 sequencer is down or in its grace period, or
            a feed of the account is in its grace period after staleness.
    @dev Reverts: "settle: no debt", "liquidation: paused", "oracle:
         sequencer down", "oracle: sequencer grace period", "oracle: ..."
         (every held asset must be priced), "liquidation: price grace
         period", "settle: account is healthy", "settle: collateral above
         dust".
    """
    self._only_delegated()
    key: uint256 = ledger._account_key(owner, sub_id)
    header: uint256 = ledger._headers[key]
    assert (header >> 64) & ledger.MASK64 != 0, "settle: no debt"
    settings: uint256 = ledger._liquidation_settings
    assert block.timestamp >= settings >> 160, "liquidation: paused"
    ledger._require_sequencer()
    # Maintenance health and unweighted value, every price accepted and past
    # the grace period after a stale feed.
    h: ledger.Health = ledger._health(
        key, header, 10, True, (settings >> 128) & ledger.MASK32, ledger.MAX_ASSETS, ledger.MAX_ASSETS
    ).health
    assert h.collateral[1] < h.debt[1], "settle: account is healthy"
    assert h.collateral[3] == 0 or h.collateral[3] < settings & ledger.MASK128, "settle: collateral above dust"
    held: uint256 = (header | header >> 64) & ledger.MASK64
    for id: uint256 in range(ledger.MAX_ASSETS):
        if held >> id == 0:
            break
        if (held >> id) & 1 == 0:
            continue
        self._settle_asset(owner, sub_id, key, id)
    ledger._headers[key] = header & (ledger.MASK64 << 128)


# ---------------------------------------------------------------------------
# Guardian and configurator
# ---------------------------------------------------------------------------

@external
def pause(asset: address, actions: uint256):
    """
    @notice Pauses actions on `asset`. Guardian or configurator.
    @param actions PAUSE_DEPOSIT (2) | PAUSE_WITHDRAW (4) | PAUSE_BORROW (8)
           | PAUSE_TRANSFER (16). Repay cannot be paused.
    @dev Reverts: "pause: caller is not guardian", "pause: invalid actions",
         "asset: not listed".
    """
    self._only_delegated()
    assert msg.sender == ledger.guardian or msg.sender == ledger.CONFIGURATOR, "pause: caller is not guardian"
    assert actions != 0 and actions & ~ledger.PAUSABLE == 0, "pause: invalid actions"
    info: uint256 = ledger._info[asset]
    ledger._asset_id(info)
    info |= actions << 8
    ledger._info[asset] = info
    log ledger.PauseSet(asset=asset, paused=(info >> 8) & ledger.PAUSABLE)


@external
def pause_liquidations(duration: uint256):
    """
    @notice Pauses liquidations for `duration` seconds, at most 4 hours; a
            new pause can start only 4 hours after the last one ended, so
            liquidations are never frozen for good. Guardian only.
    @dev Reverts: "pause: caller is not guardian", "pause: duration above
         4 hours", "pause: cooling down from the last pause".
    """
    self._only_delegated()
    assert msg.sender == ledger.guardian, "pause: caller is not guardian"
    assert duration != 0, "pause: zero duration"
    assert duration <= ledger.MAX_LIQUIDATION_PAUSE, "pause: duration above 4 hours"
    settings: uint256 = ledger._liquidation_settings
    until: uint256 = settings >> 160
    assert until == 0 or block.timestamp >= until + ledger.MAX_LIQUIDATION_PAUSE, "pause: cooling down from the last pause"
    ledger._write_liquidation_settings(settings & ledger.MASK128, (settings >> 128) & ledger.MASK32, block.timestamp + duration)


@external
def add_asset(
    asset: address,
    feed: address,
    info: uint256,
    risk: uint256,
    rate_model: uint256,
    reserve_factor: uint256,
    liquidation_word: uint256,
):
    """
    @notice Lists an asset with packed, validated configuration.
            Configurator only.
    @param info Info word; its id and listed bits are set here.
    """
    self._only_delegated()
    ledger._only_configurator()
    assert (ledger._info[asset] >> 8) & ledger.LISTED == 0, "config: asset already listed"
    id: uint256 = ledger.asset_count
    assert id < ledger.MAX_ASSETS, "config: too many assets"
    ledger.asset_count = id + 1
    ledger.asset_by_id[id] = asset
    ledger._info[asset] = (info & ~255) | id | ledger.LISTED << 8
    ledger._risk[id] = risk
    ledger._rate_model[id] = rate_model
    ledger._market_a[id] = ledger.WAD | convert(feed, uint256) << 96
    ledger._market_b[id] = ledger.WAD | block.timestamp << 96 | reserve_factor << 136
    ledger._liquidation[id] = liquidation_word
    log ledger.AssetListed(asset=asset, asset_id=id, feed=feed)


@external
def set_info(asset: address, info: uint256):
    """
    @notice Sets flags (borrowable, pauses) and caps of a listed asset; the
            id and listed bits are kept. Configurator only.
    """
    self._only_delegated()
    ledger._only_configurator()
    old: uint256 = ledger._info[asset]
    ledger._asset_id(old)
    new: uint256 = (info & ~(255 | ledger.LISTED << 8)) | (old & 255) | ledger.LISTED << 8
    ledger._info[asset] = new
    log ledger.PauseSet(asset=asset, paused=(new >> 8) & ledger.PAUSABLE)


@external
def set_risk(asset: address, risk: uint256, ramp: uint256):
    """
    @notice Sets the risk and ramp words of a listed asset. Configurator only.
    """
    self._only_delegated()
    ledger._only_configurator()
    id: uint256 = ledger._asset_id(ledger._info[asset])
    ledger._risk[id] = risk
    ledger._ramp[id] = ramp


@external
def set_rate_model(asset: address, rate_model: uint256, reserve_factor: uint256):
    """
    @notice Accrues at the old rates, then sets the rate model and reserve
            factor. Configurator only.
    """
    self._only_delegated()
    ledger._only_configurator()
    id: uint256 = ledger._asset_id(ledger._info[asset])
    m: ledger.Market = ledger._accrue(id, True)
    log ledger.InterestAccrued(
        asset=asset, deposit_index=m.deposit_index, borrow_index=m.borrow_index, timestamp=block.timestamp
    )
    ledger._rate_model[id] = rate_model
    ledger._market_b[id] = (ledger._market_b[id] & (2**136 - 1)) | reserve_factor << 136


@external
def set_guardian(guardian: address):
    """
    @notice Configurator only.
    """
    self._only_delegated()
    ledger._only_configurator()
    ledger.guardian = guardian
    log ledger.GuardianSet(guardian=guardian)


@external
def set_liquidation(asset: address, liquidation_word: uint256):
    """
    @notice Sets the bonus parameters of `asset` when seized. Configurator only.
    """
    self._only_delegated()
    ledger._only_configurator()
    ledger._liquidation[ledger._asset_id(ledger._info[asset])] = liquidation_word


@external
def set_liquidation_settings(dust_threshold: uint256, grace_period: uint256, paused_until: uint256):
    """
    @notice Dust threshold (USD WAD), grace period after a stale feed
            (seconds) and the end of a liquidation pause (unix seconds; the
            configurator passes the current one, or now to lift a pause).
            Configurator only.
    """
    self._only_delegated()
    ledger._only_configurator()
    ledger._write_liquidation_settings(dust_threshold, grace_period, paused_until)


# ---------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------

@internal
def _settle_asset(owner: address, sub_id: uint8, key: uint256, id: uint256):
    """
    @notice Forfeits the account's deposit of `id` to the insurance fund and
            writes off its debt: insurance fund first, then depositors.
    """
    asset: address = ledger.asset_by_id[id]
    m: ledger.Market = ledger._accrue(id, True)
    pkey: uint256 = key << 8 | id
    pos: uint256 = ledger._positions[pkey]
    deposit_shares: uint256 = pos & ledger.MASK128
    borrow_shares: uint256 = pos >> 128
    ledger._positions[pkey] = 0
    # Burning deposit shares without moving tokens adds them to the fund.
    total_deposit_shares: uint256 = m.deposit_shares - deposit_shares
    total_borrow_shares: uint256 = m.borrow_shares - borrow_shares
    if deposit_shares != 0:
        log ledger.CollateralForfeited(
            owner=owner,
            asset=asset,
            sub_id=sub_id,
            amount=fixed_point.mul_div_down(deposit_shares, m.deposit_index, ledger.WAD),
            shares=deposit_shares,
            deposit_index=m.deposit_index,
        )
    if borrow_shares != 0:
        debt: uint256 = fixed_point.mul_div_up(borrow_shares, m.borrow_index, ledger.WAD)
        # Fund = balance + borrows - deposits, before this write-off.
        fund: int256 = convert(staticcall IERC20(asset).balanceOf(self), int256) + convert(
            fixed_point.mul_div_up(m.borrow_shares, m.borrow_index, ledger.WAD), int256
        ) - convert(fixed_point.mul_div_down(total_deposit_shares, m.deposit_index, ledger.WAD), int256)
        used: uint256 = 0
        if fund > 0:
            used = min(convert(fund, uint256), debt)
        loss: uint256 = debt - used
        if used != 0:
            log ledger.InsuranceFundUsed(asset=asset, amount=used)
        if loss != 0:
            # Round the index cut up: depositors bear at least the loss, so
            # the fund is never drawn below zero by rounding.
            cut: uint256 = fixed_point.mul_div_up(loss, ledger.WAD, total_deposit_shares)
            assert cut < m.deposit_index, "settle: loss exceeds deposits"
            m.deposit_index -= cut
            ledger._market_a[id] = (ledger._market_a[id] & ~ledger.MASK96) | m.deposit_index
            log ledger.LossSocialised(asset=asset, amount=loss, deposit_index=m.deposit_index)
        log ledger.BadDebtSettled(owner=owner, asset=asset, sub_id=sub_id, debt=debt, shares=borrow_shares, borrow_index=m.borrow_index)
    ledger._totals[id] = total_deposit_shares | total_borrow_shares << 128


@internal
@view
def _only_delegated():
    assert self != SELF, "engine: call through the engine"
