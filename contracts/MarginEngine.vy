# pragma version 0.4.3
# pragma nonreentrancy on
# pragma optimize gas
"""
@title MarginEngine
@license MIT
@notice The xmargin cross-margin engine. Every address owns up to 256
        sub-accounts; each is one cross-margin account that holds deposits
        (which earn interest and count as collateral) and borrows (which pay
        interest) of any listed assets. One health number per account and
        health type decides what it may do (formulas in the ledger module
        and docs/risk-model.md). Borrow, withdraw and transfer must leave
        initial health >= 0; deposit and repay never depend on price feeds,
        and repay can never be paused.
        An account whose maintenance health is below zero can be
        liquidated by anyone, partially, back to its liquidation-end health,
        at a health-scaled bonus; bad debt is covered by the insurance fund
        and then socialised.

        This contract holds the hot paths (deposit, withdraw, borrow, repay,
        liquidate) and the views. Calls to any other selector are forwarded
        by delegatecall to MarginEngineExtension (operators, transfers,
        batches, bad-debt settlement, configuration writes), as Compound
        III's Comet forwards to CometExt: both share the ledger module's
        storage layout. Extension functions return nothing. The liquidation
        plan is computed by the stateless LiquidationPlanner (staticcall).
@custom:security Trusts the immutable CONFIGURATOR (driven by the protocol
        owner; the only writer of configuration), the guardian (may only
        pause; a liquidation pause expires by itself) and each listed
        Chainlink feed within its answer bounds. Every external and view
        function is non-reentrant (`pragma nonreentrancy on`; the lock is
        shared with the extension), so a token hook cannot re-enter any
        function, views included. The forwarding fallback holds no lock
        itself: the extension's functions take it.
"""

from ethereum.ercs import IERC20

from .modules import fixed_point
from .modules import interest_rate
from .modules import ledger
from .modules import liquidation
from .modules import margin
from .modules import oracle

initializes: ledger

exports: (
    ledger.asset_count,
    ledger.asset_by_id,
    ledger.operators,
    ledger.guardian,
    ledger.CONFIGURATOR,
    ledger.SEQUENCER_FEED,
    ledger.SEQUENCER_GRACE_PERIOD,
)


interface ILiquidationCallback:
    def on_liquidation(
        owner: address,
        sub_id: uint8,
        repay_asset: address,
        repay_amount: uint256,
        seize_asset: address,
        seized_amount: uint256,
        data: Bytes[ledger.MAX_CALLBACK_DATA],
    ): nonpayable


interface ILiquidationPlanner:
    def plan_for(
        collateral_maintenance: uint256,
        debt_maintenance: uint256,
        le_health: int256,
        risk_repay: uint256,
        ramp_repay: uint256,
        risk_seize: uint256,
        ramp_seize: uint256,
        liquidation_word: uint256,
        price_repay: uint256,
        price_seize: uint256,
        debt: uint256,
        deposit: uint256,
        dust: uint256,
        requested: uint256,
        solvent: bool,
        indexes: uint256,
    ) -> liquidation.Plan: view


interface IMarginEngineExtension:
    def CONFIGURATOR() -> address: view
    def SEQUENCER_FEED() -> address: view
    def SEQUENCER_GRACE_PERIOD() -> uint256: view


# The contract that serves every selector not defined here (delegatecall).
EXTENSION: public(immutable(address))
# The stateless LiquidationPlanner (staticcall from liquidate).
PLANNER: public(immutable(address))


# ---------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------

@deploy
def __init__(
    configurator: address,
    guardian: address,
    sequencer_feed: address,
    sequencer_grace_period: uint256,
    extension: address,
    planner: address,
):
    """
    @param configurator The MarginConfigurator.
    @param guardian May pause actions.
    @param sequencer_feed Chainlink L2 sequencer-uptime feed, or empty on L1.
    @param sequencer_grace_period Seconds (<= 1 day).
    @param extension A MarginEngineExtension deployed with the same four
           arguments.
    @param planner A LiquidationPlanner.
    @dev Reverts "config: extension deployed with other arguments",
         "config: planner has no code".
    """
    ledger.__init__(configurator, guardian, sequencer_feed, sequencer_grace_period)
    ext: IMarginEngineExtension = IMarginEngineExtension(extension)
    assert (
        staticcall ext.CONFIGURATOR() == configurator
        and staticcall ext.SEQUENCER_FEED() == sequencer_feed
        and staticcall ext.SEQUENCER_GRACE_PERIOD() == sequencer_grace_period
    ), "config: extension deployed with other arguments"
    EXTENSION = extension
    assert planner.is_contract, "config: planner has no code"
    PLANNER = planner


# ---------------------------------------------------------------------------
# User operations
# ---------------------------------------------------------------------------

@external
def deposit(asset: address, amount: uint256, sub_id: uint8 = 0, owner: address = msg.sender) -> uint256:
    """
    @notice Deposits `amount` of `asset` from the caller into a sub-account.
            Always allowed whatever the price feeds say; blocked only by a
            deposit pause or the supply cap.
    @param asset A listed token.
    @param amount Token units (token decimals), > 0.
    @param sub_id Sub-account 0-255 of `owner`.
    @param owner Account owner; the caller must be it or its operator.
    @return Deposit shares minted.
    @dev Reverts: "account: caller is not owner or operator", "asset: not
         listed", "pause: deposit paused", "deposit: zero amount",
         "deposit: amount below one share", "cap: supply cap exceeded",
         "token: ..." (see `_transfer_in`).
    """
    key: uint256 = ledger._authorize(owner, sub_id)
    return ledger._deposit(owner, sub_id, key, asset, amount)


@external
def withdraw(
    asset: address,
    amount: uint256,
    sub_id: uint8 = 0,
    receiver: address = msg.sender,
    owner: address = msg.sender,
) -> uint256:
    """
    @notice Withdraws a deposit. With open debt the account must keep
            initial health >= 0 with valid prices.
    @param asset A listed token.
    @param amount Token units; max uint256 withdraws the whole deposit.
    @param sub_id Sub-account of `owner`.
    @param receiver Receives the tokens.
    @param owner Account owner; the caller must be it or its operator.
    @return Token units sent.
    @dev Reverts: "withdraw: zero amount", "withdraw: no deposit",
         "withdraw: amount exceeds deposit", "pause: withdraw paused",
         "market: insufficient liquidity", "health: below initial margin",
         "oracle: ..." reasons.
    """
    key: uint256 = ledger._authorize(owner, sub_id)
    sent: uint256 = 0
    check: bool = False
    sent, check = ledger._withdraw(owner, sub_id, key, asset, amount, receiver)
    if check:
        ledger._require_initial_health(key)
    return sent


@external
def borrow(
    asset: address,
    amount: uint256,
    sub_id: uint8 = 0,
    receiver: address = msg.sender,
    owner: address = msg.sender,
) -> uint256:
    """
    @notice Borrows `amount` of `asset`; the account must keep initial
            health >= 0 with valid prices.
    @param asset A listed, borrowable token.
    @param amount Token units, > 0.
    @param sub_id Sub-account of `owner`.
    @param receiver Receives the tokens.
    @param owner Account owner; the caller must be it or its operator.
    @return Borrow shares minted.
    @dev Reverts: "borrow: zero amount", "borrow: asset not borrowable",
         "pause: borrow paused", "cap: borrow cap exceeded",
         "market: insufficient liquidity", "health: below initial margin",
         "oracle: ..." reasons.
    """
    key: uint256 = ledger._authorize(owner, sub_id)
    shares: uint256 = ledger._borrow(owner, sub_id, key, asset, amount, receiver)
    ledger._require_initial_health(key)
    return shares


@external
def repay(asset: address, amount: uint256, sub_id: uint8 = 0, owner: address = msg.sender) -> uint256:
    """
    @notice Repays debt of any account from the caller's tokens. Never
            paused, never blocked by price feeds.
    @param asset A listed token.
    @param amount Token units; an amount >= the debt (e.g. max uint256)
           repays it all and takes only the debt.
    @param sub_id Sub-account of `owner`.
    @param owner The account whose debt is repaid (anyone may repay).
    @return Token units taken from the caller.
    @dev Reverts: "repay: zero amount", "repay: no debt",
         "repay: amount below one share", "token: ..." reasons.
    """
    return ledger._repay(owner, sub_id, ledger._account_key(owner, sub_id), asset, amount)


# ---------------------------------------------------------------------------
# Liquidation
# ---------------------------------------------------------------------------

@external
def liquidate(
    owner: address,
    sub_id: uint8,
    repay_asset: address,
    repay_amount: uint256,
    seize_asset: address,
    min_seize_amount: uint256,
    receiver: address = msg.sender,
    data: Bytes[ledger.MAX_CALLBACK_DATA] = b"",
) -> (uint256, uint256):
    """
    @notice Repays part of an unhealthy account's debt in `repay_asset` and
            seizes its `seize_asset` deposit at a health-scaled bonus. The
            repaid amount is capped so that the account comes back to its
            liquidation-end health (never further), except that a rest
            below the dust threshold is closed in full.

            When the two assets are the same, `receiver` is the caller and
            `data` is empty, only the net amount moves (seized - repaid out,
            or repaid - seized in). Otherwise the seized tokens leave first,
            so with the same asset the pool must cover them before the
            repayment arrives ("market: insufficient liquidity").

            Flash liquidation: with non-empty `data`, the seized tokens are
            sent to `receiver` first, then the engine calls
            `on_liquidation(...)` on the caller (ILiquidationCallback), and
            only then pulls the repayment from the caller; if it has not
            arrived, everything reverts.
    @param owner Owner of the liquidated sub-account.
    @param sub_id The liquidated sub-account.
    @param repay_asset The debt repaid (token).
    @param repay_amount Most token units the liquidator will repay; max
           uint256 repays as much as allowed.
    @param seize_asset The deposit seized (token).
    @param min_seize_amount Fewest token units the liquidator accepts.
    @param receiver Receives the seized tokens.
    @param data Passed to the callback; empty means no callback.
    @return (repaid, seized to the liquidator), token units.
    @dev Reverts: "liquidation: self-liquidation", "liquidation: paused",
         "liquidation: zero repay amount", "liquidation: no debt in repay
         asset", "liquidation: no deposit in seize asset", "liquidation:
         cool-off (same block as a health-lowering action)", "liquidation:
         account is healthy", "liquidation: price grace period", "oracle:
         sequencer down", "oracle: sequencer grace period", "oracle: ...",
         "liquidation: seizing this asset lowers the health ratio",
         "liquidation: leaves dust", "liquidation: nothing to seize",
         "liquidation: repay below one share",
         "liquidation: seized amount below minimum", "market: insufficient
         liquidity", "token: ...".
    """
    self._check(msg.sender != owner, "liquidation: self-liquidation")
    self._check(repay_amount != 0, "liquidation: zero repay amount")
    key: uint256 = ledger._account_key(owner, sub_id)
    header: uint256 = ledger._headers[key]
    id_r: uint256 = ledger._asset_id(ledger._info[repay_asset])
    id_s: uint256 = ledger._asset_id(ledger._info[seize_asset])
    self._check((header >> (64 + id_r)) & 1 != 0, "liquidation: no debt in repay asset")
    self._check((header >> id_s) & 1 != 0, "liquidation: no deposit in seize asset")
    self._check((header >> 128) & ledger.MASK64 != block.number, "liquidation: cool-off (same block as a health-lowering action)")
    settings: uint256 = ledger._liquidation_settings
    self._check(block.timestamp >= settings >> 160, "liquidation: paused")
    ledger._require_sequencer()
    p: liquidation.Plan = self._plan(key, header, id_r, id_s, repay_amount, settings)
    self._check(not p.lowers_ratio, "liquidation: seizing this asset lowers the health ratio")
    self._check(not p.leaves_dust, "liquidation: leaves dust")
    self._check(p.repay != 0 and p.seize > p.to_insurance, "liquidation: nothing to seize")
    seized: uint256 = p.seize - p.to_insurance
    self._check(seized >= min_seize_amount, "liquidation: seized amount below minimum")

    # Repay side. Round down: burn at most the shares the payment is worth,
    # unless the whole debt is paid.
    m: ledger.Market = ledger._accrue(id_r, True)
    pkey: uint256 = key << 8 | id_r
    pos: uint256 = ledger._positions[pkey]
    repaid_shares: uint256 = p.repay * ledger.WAD // m.borrow_index
    if p.repay >= fixed_point.mul_div_up(pos >> 128, m.borrow_index, ledger.WAD):
        repaid_shares = pos >> 128
    self._check(repaid_shares != 0, "liquidation: repay below one share")
    ledger._totals[id_r] = m.deposit_shares | (m.borrow_shares - repaid_shares) << 128
    ledger._positions[pkey] = pos - (repaid_shares << 128)
    if repaid_shares == pos >> 128:
        header &= ~(1 << (64 + id_r))
    borrow_index: uint256 = m.borrow_index

    # Seize side (re-read: the two assets may be the same). Round up: the
    # account gives at least the seized amount's worth, capped at its deposit.
    # A plan that takes the whole deposit (valued at the stored index) burns
    # every share: the interest accrued since goes to the insurance fund.
    m = ledger._accrue(id_s, False)
    pkey = key << 8 | id_s
    pos = ledger._positions[pkey]
    seized_shares: uint256 = pos & ledger.MASK128
    if not p.seize_all:
        seized_shares = min(fixed_point.mul_div_up(p.seize, ledger.WAD, m.deposit_index), seized_shares)
    total_shares: uint256 = m.deposit_shares - seized_shares
    # Same asset, same party, no callback: only the net flow moves below.
    nets: bool = id_s == id_r and len(data) == 0 and receiver == msg.sender
    if id_s == id_r and not nets:
        # The seized tokens leave before the repayment arrives: the pool must
        # pay them with the repaid debt still lent out (rounded up, as a
        # borrow). `borrow_index` is this asset's, accrued above.
        assert fixed_point.mul_div_down(total_shares, m.deposit_index, ledger.WAD) >= fixed_point.mul_div_up(
            m.borrow_shares + repaid_shares, borrow_index, ledger.WAD
        ), "market: insufficient liquidity"
    elif m.borrow_shares != 0:
        # _accrue read the borrow index because the asset has borrows.
        assert fixed_point.mul_div_down(total_shares, m.deposit_index, ledger.WAD) >= fixed_point.mul_div_up(
            m.borrow_shares, m.borrow_index, ledger.WAD
        ), "market: insufficient liquidity"
    ledger._totals[id_s] = total_shares | m.borrow_shares << 128
    ledger._positions[pkey] = pos - seized_shares
    if seized_shares == pos & ledger.MASK128:
        header &= ~(1 << id_s)
    ledger._headers[key] = header

    if nets:
        # Same asset, same party: only the net flow moves, so a pool lent out
        # to its last unit can still be liquidated (the repayment funds the
        # seizure) and the liquidator needs no inventory when seized >= repay.
        if seized > p.repay:
            ledger._transfer_out(seize_asset, receiver, seized - p.repay)
        elif p.repay > seized:
            ledger._transfer_in(repay_asset, msg.sender, p.repay - seized)
    else:
        ledger._transfer_out(seize_asset, receiver, seized)
        if len(data) != 0:
            extcall ILiquidationCallback(msg.sender).on_liquidation(
                owner, sub_id, repay_asset, p.repay, seize_asset, seized, data
            )
        ledger._transfer_in(repay_asset, msg.sender, p.repay)
    log ledger.Liquidation(
        owner=owner,
        liquidator=msg.sender,
        sub_id=sub_id,
        repay_asset=repay_asset,
        seize_asset=seize_asset,
        repaid=p.repay,
        repaid_shares=repaid_shares,
        seized=p.seize,
        seized_shares=seized_shares,
        to_insurance=p.to_insurance,
        bonus=p.bonus,
        borrow_index=borrow_index,
        deposit_index=m.deposit_index,
    )
    return p.repay, seized


@view
@external
def liquidation_settings() -> (uint256, uint256, uint256):
    """
    @return (dust threshold USD WAD, grace period after a stale feed in
            seconds, liquidations paused until unix seconds).
    """
    settings: uint256 = ledger._liquidation_settings
    return settings & ledger.MASK128, (settings >> 128) & ledger.MASK32, settings >> 160


@view
@external
def health(owner: address, sub_id: uint8 = 0) -> (int256, int256, bool):
    """
    @notice Initial and maintenance health of a sub-account.
    @return (initial health, maintenance health, all prices valid), USD WAD.
            Never reverts: a rejected price is still used when positive
            (and 0 otherwise) and the flag is False.
    """
    key: uint256 = ledger._account_key(owner, sub_id)
    h: ledger.Health = ledger._health(key, ledger._headers[key], 3, False, 0, ledger.MAX_ASSETS, ledger.MAX_ASSETS).health
    return (
        convert(h.collateral[0], int256) - convert(h.debt[0], int256),
        convert(h.collateral[1], int256) - convert(h.debt[1], int256),
        h.prices_valid,
    )


@view
@external
def position(owner: address, sub_id: uint8, asset: address) -> (uint256, uint256):
    """
    @notice Raw (deposit shares, borrow shares) of a sub-account in `asset`.
    """
    id: uint256 = ledger._asset_id(ledger._info[asset])
    pos: uint256 = ledger._positions[ledger._account_key(owner, sub_id) << 8 | id]
    return pos & ledger.MASK128, pos >> 128


@view
@external
def account_header(owner: address, sub_id: uint8) -> (uint256, uint256, uint256):
    """
    @notice (deposit bitmap, debt bitmap, block of the last health-lowering
            action) of a sub-account; bit i stands for asset id i.
    """
    header: uint256 = ledger._headers[ledger._account_key(owner, sub_id)]
    return header & ledger.MASK64, (header >> 64) & ledger.MASK64, (header >> 128) & ledger.MASK64


@view
@external
def asset_id(asset: address) -> uint256:
    """
    @notice Id (0-63) of a listed asset. Reverts "asset: not listed".
    """
    return ledger._asset_id(ledger._info[asset])


@view
@external
def asset_state(id: uint256) -> ledger.AssetState:
    """
    @notice Raw packed words of asset `id` (layouts in the storage section
            and the margin / interest_rate modules), for the lens, the
            configurator and keepers' replicas: one call per asset.
    """
    asset: address = ledger.asset_by_id[id]
    return ledger.AssetState(
        asset=asset,
        info=ledger._info[asset],
        market_a=ledger._market_a[id],
        market_b=ledger._market_b[id],
        totals=ledger._totals[id],
        rate_model=ledger._rate_model[id],
        risk=ledger._risk[id],
        ramp=ledger._ramp[id],
        liquidation=ledger._liquidation[id],
    )


@view
@external
def weighted_health(owner: address, sub_id: uint8, asset_mask: uint256, kinds: uint256) -> ledger.Health:
    """
    @notice Weighted collateral and liabilities of the sub-account's assets
            selected by `asset_mask` (bit i = asset id i), for the health
            types in `kinds` (bit 0 initial, 1 maintenance, 2 liquidation
            end, 3 unweighted value). For the lens.
    """
    key: uint256 = ledger._account_key(owner, sub_id)
    header: uint256 = ledger._headers[key]
    return ledger._health(
        key, header & (asset_mask | asset_mask << 64), kinds, False, 0, ledger.MAX_ASSETS, ledger.MAX_ASSETS
    ).health


@view
@external
def sequencer_ok() -> bool:
    """
    @notice True when no sequencer feed is set, or the sequencer is up and
            past its grace period.
    """
    return ledger._sequencer_ok()


# ---------------------------------------------------------------------------
# Forwarding to the extension
# ---------------------------------------------------------------------------

@payable
@external
@reentrant
def __default__():
    """
    @notice Forwards every other selector to EXTENSION by delegatecall and
            bubbles up its revert reason. Extension functions return nothing.
    """
    assert msg.value == 0, "engine: no ether"
    ok: bool = False
    out: Bytes[1024] = b""
    ok, out = raw_call(EXTENSION, msg.data, max_outsize=1024, is_delegate_call=True, revert_on_failure=False)
    if not ok:
        raw_revert(out)


# ---------------------------------------------------------------------------
# Internal
# ---------------------------------------------------------------------------

@internal
@view
def _plan(key: uint256, header: uint256, id_r: uint256, id_s: uint256, requested: uint256, settings: uint256) -> liquidation.Plan:
    """
    @notice Amounts of a liquidation of `key` repaying `id_r` and seizing
            `id_s`, at stored deposit indexes and borrow indexes accrued to
            now (the lens's preview computes the same). Reverts when the
            account is healthy or a price is rejected.
    """
    v: ledger.Valuation = ledger._health(key, header, 14, True, (settings >> 128) & ledger.MASK32, id_r, id_s)
    h: ledger.Health = v.health
    # The caller checked both header bits: `_health` picked both assets.
    p: ledger.Picked = v.picked
    assert h.collateral[1] < h.debt[1], "liquidation: account is healthy"
    risk_r: uint256 = ledger._risk[id_r]
    risk_s: uint256 = ledger._risk[id_s]
    return staticcall ILiquidationPlanner(PLANNER).plan_for(
        h.collateral[1],
        h.debt[1],
        convert(h.collateral[2], int256) - convert(h.debt[2], int256),
        risk_r,
        ledger._ramp_of(id_r, risk_r),
        risk_s,
        ledger._ramp_of(id_s, risk_s),
        ledger._liquidation[id_s],
        p.price_repay,
        p.price_seize,
        p.debt,
        p.deposit,
        settings & ledger.MASK128,
        requested,
        h.collateral[3] >= h.debt[3],
        p.deposit_index << 128 | p.borrow_index,
    )


@internal
@pure
def _check(ok: bool, reason: String[64]):
    """
    @notice `assert ok, reason` in one shared place: the liquidation path's
            checks cost less bytecode this way (EIP-170 headroom).
    """
    if not ok:
        raise reason
