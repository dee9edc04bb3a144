# pragma version 0.4.3
"""
@title ledger
@license MIT
@notice The state of the xmargin engine and every internal function that
        reads or writes it: asset registry, market indexes and totals,
        account positions and headers, interest accrual, cross-margin health,
        the oracle checks and the one token-transfer helper. Both deployables
        of the engine, MarginEngine and MarginEngineExtension (reached by
        delegatecall), `initializes:` this module and declare no storage of
        their own, so their storage layouts are identical by construction
        (tests/unit/test_engine_layout.py checks it).

        Health, per account and health type T (initial, maintenance,
        liquidation end):
          health_T = sum_i deposit_i * price_i * aw_T,i
                   - sum_i borrow_i  * price_i * lw_T,i      (USD, WAD)
        Collateral counts at the stored deposit index (deposit interest not
        yet accrued is left out: conservative); debt counts at the borrow
        index accrued to the current second. Collateral rounds down, debt up.

        Glossary (WAD = 1e18):
          di, bi   deposit and borrow index of an asset (WAD, start at 1)
          shares   balances are stored as shares: amount = shares * index / WAD
          unit price  USD value (WAD) of one smallest token unit, times 1e18
          insurance fund of an asset = token balance - total deposits
                   + total borrows: it receives the reserve-factor share of
                   interest, rounding dust, the insurance share of
                   liquidation bonuses and forfeited collateral dust (as
                   Compound III's reserves)

        Invariants kept:
          - token balance >= total deposits - total borrows, for every asset
            (the insurance fund is never negative);
          - total borrows <= total deposits after every borrow, withdraw and
            seizure;
          - indexes never fall, except the deposit index by exactly a
            socialised loss; the sums of account shares equal the totals;
          - an account's borrow shares are zero exactly when its debt is
            zero; a bitmap bit is set exactly when that side is non-zero.
@custom:security Tokens move only through `_transfer_in` (measured: fee-on-
        transfer and rebasing tokens are refused) and `_transfer_out`, both
        accepting tokens that return nothing (USDT).
"""

from ethereum.ercs import IERC20

from . import fixed_point
from . import interest_rate
from . import margin
from . import oracle


# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

WAD: constant(uint256) = fixed_point.WAD
MAX_ASSETS: constant(uint256) = 64
MAX_BATCH: constant(uint256) = 16

MASK40: constant(uint256) = 2**40 - 1
MASK60: constant(uint256) = 2**60 - 1
MASK64: constant(uint256) = 2**64 - 1
MASK96: constant(uint256) = 2**96 - 1
MASK120: constant(uint256) = 2**120 - 1
MASK128: constant(uint256) = 2**128 - 1

# Info-word flags (bits 8-15 of the per-token info word).
LISTED: constant(uint256) = 1
PAUSE_DEPOSIT: constant(uint256) = 2
PAUSE_WITHDRAW: constant(uint256) = 4
PAUSE_BORROW: constant(uint256) = 8
PAUSE_TRANSFER: constant(uint256) = 16
BORROWABLE: constant(uint256) = 32
PAUSABLE: constant(uint256) = PAUSE_DEPOSIT | PAUSE_WITHDRAW | PAUSE_BORROW | PAUSE_TRANSFER

# Batch action kinds.
ACTION_DEPOSIT: constant(uint8) = 0
ACTION_WITHDRAW: constant(uint8) = 1
ACTION_BORROW: constant(uint8) = 2
ACTION_REPAY: constant(uint8) = 3
ACTION_TRANSFER: constant(uint8) = 4

MAX_CALLBACK_DATA: constant(uint256) = 1024
# A guardian's liquidation pause lasts at most this long, and a new one can
# start only this long after the last one ended: liquidations can never be
# frozen for good (at most half of any period).
MAX_LIQUIDATION_PAUSE: constant(uint256) = 4 * 3600
MASK32: constant(uint256) = 2**32 - 1

# Longest L2 sequencer grace period accepted at deployment.
MAX_SEQUENCER_GRACE: constant(uint256) = 86400


# ---------------------------------------------------------------------------
# Immutables
# ---------------------------------------------------------------------------

# The only writer of configuration (MarginConfigurator).
CONFIGURATOR: public(immutable(address))
# Chainlink L2 sequencer-uptime feed; empty on L1.
SEQUENCER_FEED: public(immutable(address))
# Seconds after the sequencer comes back before borrow/withdraw reopen.
SEQUENCER_GRACE_PERIOD: public(immutable(uint256))


# ---------------------------------------------------------------------------
# Structs
# ---------------------------------------------------------------------------

struct Action:
    kind: uint8  # ACTION_DEPOSIT ... ACTION_TRANSFER
    asset: address  # token
    amount: uint256  # token units; max uint256 = all (withdraw, repay, transfer)
    receiver: address  # withdraw/borrow: who gets the tokens
    to_sub_id: uint8  # transfer: destination sub-account of the same owner


struct Market:
    deposit_index: uint256  # WAD
    borrow_index: uint256  # WAD; only read when the asset has borrows or for borrow/repay
    deposit_shares: uint256  # total
    borrow_shares: uint256  # total
    market_b: uint256  # raw word: borrow index | last update | reserve factor


struct Health:
    collateral: uint256[4]  # weighted collateral per health type, USD WAD
    debt: uint256[4]  # weighted liabilities per health type, USD WAD
    prices_valid: bool  # every price read was accepted


# The two assets of a liquidation as `_health` valued them (so the plan
# reads no feed, position or index a second time).
struct Picked:
    price_repay: uint256  # unit price of the repay asset (oracle module)
    price_seize: uint256  # unit price of the seize asset
    debt: uint256  # repay asset, token units at the borrow index now (rounded up)
    deposit: uint256  # seize asset, token units at the stored deposit index (rounded down)
    borrow_index: uint256  # WAD, repay asset, accrued to now
    deposit_index: uint256  # WAD, seize asset, stored


# What `_health` returns: one struct (a tuple return costs ~400 gas more).
struct Valuation:
    health: Health
    picked: Picked


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


# ---------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------

# Number of listed assets; ids are 0 .. asset_count - 1.
asset_count: public(uint256)
# Asset id -> token address.
asset_by_id: public(HashMap[uint256, address])
# Token -> info word: id (bits 0-7) | flags (8-15) | supply cap (16-135) | borrow cap (136-255).
_info: HashMap[address, uint256]
# Asset id -> deposit index (bits 0-95) | price feed (96-255).
_market_a: HashMap[uint256, uint256]
# Asset id -> borrow index (0-95) | last accrual time (96-135) | reserve factor (136-195).
_market_b: HashMap[uint256, uint256]
# Asset id -> total deposit shares (0-127) | total borrow shares (128-255).
_totals: HashMap[uint256, uint256]
# Asset id -> packed rate model (interest_rate module).
_rate_model: HashMap[uint256, uint256]
# Asset id -> packed risk word (margin module).
_risk: HashMap[uint256, uint256]
# Asset id -> packed maintenance-weight ramp (margin module).
_ramp: HashMap[uint256, uint256]

# Account key (owner << 8 | sub_id) -> deposit bitmap (0-63) | debt bitmap (64-127)
# | block of the last health-lowering action (128-191).
_headers: HashMap[uint256, uint256]
# (account key << 8 | asset id) -> deposit shares (0-127) | borrow shares (128-255).
_positions: HashMap[uint256, uint256]
# Owner -> operator -> approved to act for all of the owner's sub-accounts.
operators: public(HashMap[address, HashMap[address, bool]])

# May pause actions (only the configurator unpauses).
guardian: public(address)
# Asset id -> liquidation word of the asset when seized (liquidation module).
_liquidation: HashMap[uint256, uint256]
# Dust threshold, USD WAD (bits 0-127) | grace period after a stale feed,
# seconds (128-159) | liquidations paused until, unix seconds (160-199).
_liquidation_settings: uint256


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------

event Deposit:
    owner: indexed(address)
    asset: indexed(address)
    sub_id: uint8
    caller: address
    amount: uint256  # token units received
    shares: uint256  # deposit shares minted
    deposit_index: uint256  # WAD, after accrual

event Withdraw:
    owner: indexed(address)
    asset: indexed(address)
    sub_id: uint8
    receiver: address
    amount: uint256  # token units sent
    shares: uint256  # deposit shares burned
    deposit_index: uint256

event Borrow:
    owner: indexed(address)
    asset: indexed(address)
    sub_id: uint8
    receiver: address
    amount: uint256  # token units sent
    shares: uint256  # borrow shares minted
    borrow_index: uint256  # WAD, after accrual

event Repay:
    owner: indexed(address)
    asset: indexed(address)
    sub_id: uint8
    payer: address
    amount: uint256  # token units received
    shares: uint256  # borrow shares burned
    borrow_index: uint256

event TransferCollateral:
    owner: indexed(address)
    asset: indexed(address)
    from_sub_id: uint8
    to_sub_id: uint8
    amount: uint256  # token units at the current deposit index
    shares: uint256  # deposit shares moved
    deposit_index: uint256

# Logged where the engine accrues without another event naming the indexes
# (accrue(), set_rate_model): with the op events' indexes, every accrual
# point is in the logs.
event InterestAccrued:
    asset: indexed(address)
    deposit_index: uint256
    borrow_index: uint256
    timestamp: uint256

event Liquidation:
    owner: indexed(address)
    liquidator: indexed(address)
    sub_id: uint8
    repay_asset: address
    seize_asset: address
    repaid: uint256  # token units of repay_asset paid by the liquidator
    repaid_shares: uint256  # borrow shares burned
    seized: uint256  # token units of seize_asset taken from the account
    seized_shares: uint256  # deposit shares burned
    to_insurance: uint256  # part of `seized` kept as insurance fund
    bonus: uint256  # WAD
    borrow_index: uint256  # WAD, repay asset after accrual
    deposit_index: uint256  # WAD, seize asset after accrual

event CollateralForfeited:
    owner: indexed(address)
    asset: indexed(address)
    sub_id: uint8
    amount: uint256  # token units moved to the insurance fund
    shares: uint256
    deposit_index: uint256

event BadDebtSettled:
    owner: indexed(address)
    asset: indexed(address)
    sub_id: uint8
    debt: uint256  # token units written off
    shares: uint256  # borrow shares burned
    borrow_index: uint256

event InsuranceFundUsed:
    asset: indexed(address)
    amount: uint256  # token units

event LossSocialised:
    asset: indexed(address)
    amount: uint256  # token units taken from depositors
    deposit_index: uint256  # WAD, after the loss

event LiquidationSettingsSet:
    dust_threshold: uint256  # USD WAD
    grace_period: uint256  # seconds
    paused_until: uint256  # unix seconds

event OperatorSet:
    owner: indexed(address)
    operator: indexed(address)
    approved: bool

event AssetListed:
    asset: indexed(address)
    asset_id: uint256
    feed: address

event PauseSet:
    asset: indexed(address)
    paused: uint256  # PAUSE_* flags now in force

event GuardianSet:
    guardian: indexed(address)


# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------

@deploy
def __init__(configurator: address, guardian: address, sequencer_feed: address, sequencer_grace_period: uint256):
    """
    @param configurator The MarginConfigurator, the only writer of configuration.
    @param guardian May pause actions.
    @param sequencer_feed Chainlink L2 sequencer-uptime feed, or empty on L1.
    @param sequencer_grace_period Seconds after the sequencer is back up
           before borrow, withdraw, transfer and liquidation reopen (<= 1 day).
    """
    assert configurator != empty(address), "config: zero configurator"
    assert sequencer_grace_period <= MAX_SEQUENCER_GRACE, "config: sequencer grace period too long"
    CONFIGURATOR = configurator
    SEQUENCER_FEED = sequencer_feed
    SEQUENCER_GRACE_PERIOD = sequencer_grace_period
    self.guardian = guardian
    log GuardianSet(guardian=guardian)


# ---------------------------------------------------------------------------
# Internal functions
# ---------------------------------------------------------------------------

@internal
@pure
def _account_key(owner: address, sub_id: uint8) -> uint256:
    return convert(owner, uint256) << 8 | convert(sub_id, uint256)


@internal
@view
def _authorize(owner: address, sub_id: uint8) -> uint256:
    if msg.sender != owner:
        assert self.operators[owner][msg.sender], "account: caller is not owner or operator"
    return self._account_key(owner, sub_id)


@internal
@pure
def _asset_id(info: uint256) -> uint256:
    assert (info >> 8) & LISTED != 0, "asset: not listed"
    return info & 255


@internal
def _deposit(owner: address, sub_id: uint8, key: uint256, asset: address, amount: uint256) -> uint256:
    info: uint256 = self._info[asset]
    id: uint256 = self._asset_id(info)
    assert (info >> 8) & PAUSE_DEPOSIT == 0, "pause: deposit paused"
    assert amount != 0, "deposit: zero amount"
    m: Market = self._accrue(id, False)
    # Round down: the depositor is credited at most what it paid.
    shares: uint256 = amount * WAD // m.deposit_index
    assert shares != 0, "deposit: amount below one share"
    total_shares: uint256 = m.deposit_shares + shares
    assert total_shares <= MASK128, "market: share overflow"
    cap: uint256 = (info >> 16) & MASK120
    if cap != 0:
        assert fixed_point.mul_div_down(total_shares, m.deposit_index, WAD) <= cap, "cap: supply cap exceeded"
    self._totals[id] = total_shares | m.borrow_shares << 128
    pkey: uint256 = key << 8 | id
    pos: uint256 = self._positions[pkey]
    if pos & MASK128 == 0:
        self._headers[key] = self._headers[key] | 1 << id
    # (pos & MASK128) + shares <= total_shares <= MASK128: no carry into the borrow half.
    self._positions[pkey] = unsafe_add(pos, shares)
    self._transfer_in(asset, msg.sender, amount)
    log Deposit(
        owner=owner, asset=asset, sub_id=sub_id, caller=msg.sender, amount=amount, shares=shares, deposit_index=m.deposit_index
    )
    return shares


@internal
def _withdraw(
    owner: address, sub_id: uint8, key: uint256, asset: address, amount: uint256, receiver: address
) -> (uint256, bool):
    info: uint256 = self._info[asset]
    id: uint256 = self._asset_id(info)
    assert (info >> 8) & PAUSE_WITHDRAW == 0, "pause: withdraw paused"
    assert amount != 0, "withdraw: zero amount"
    m: Market = self._accrue(id, False)
    pkey: uint256 = key << 8 | id
    pos: uint256 = self._positions[pkey]
    held: uint256 = pos & MASK128
    assert held != 0, "withdraw: no deposit"
    shares: uint256 = 0
    sent: uint256 = amount
    if amount == max_value(uint256):
        shares = held
        # Round down: the user receives at most its deposit.
        sent = fixed_point.mul_div_down(held, m.deposit_index, WAD)
    else:
        # Round up: burn at least the shares the amount is worth.
        shares = fixed_point.mul_div_up(amount, WAD, m.deposit_index)
        assert shares <= held, "withdraw: amount exceeds deposit"
    total_shares: uint256 = m.deposit_shares - shares
    if m.borrow_shares != 0:
        assert fixed_point.mul_div_down(total_shares, m.deposit_index, WAD) >= fixed_point.mul_div_up(
            m.borrow_shares, m.borrow_index, WAD
        ), "market: insufficient liquidity"
    self._totals[id] = total_shares | m.borrow_shares << 128
    self._positions[pkey] = pos - shares
    header: uint256 = self._headers[key]
    new_header: uint256 = header
    if held == shares:
        new_header &= ~(1 << id)
    has_debt: bool = (header >> 64) & MASK64 != 0
    if has_debt:
        new_header = (new_header & ~(MASK64 << 128)) | block.number << 128
    if new_header != header:
        self._headers[key] = new_header
    if sent != 0:
        self._transfer_out(asset, receiver, sent)
    log Withdraw(
        owner=owner, asset=asset, sub_id=sub_id, receiver=receiver, amount=sent, shares=shares, deposit_index=m.deposit_index
    )
    return sent, has_debt


@internal
def _borrow(owner: address, sub_id: uint8, key: uint256, asset: address, amount: uint256, receiver: address) -> uint256:
    info: uint256 = self._info[asset]
    id: uint256 = self._asset_id(info)
    assert (info >> 8) & BORROWABLE != 0, "borrow: asset not borrowable"
    assert (info >> 8) & PAUSE_BORROW == 0, "pause: borrow paused"
    assert amount != 0, "borrow: zero amount"
    m: Market = self._accrue(id, True)
    # Round up: the borrower owes at least what it received.
    shares: uint256 = fixed_point.mul_div_up(amount, WAD, m.borrow_index)
    total_shares: uint256 = m.borrow_shares + shares
    assert total_shares <= MASK128, "market: share overflow"
    total_borrow: uint256 = fixed_point.mul_div_up(total_shares, m.borrow_index, WAD)
    assert total_borrow <= fixed_point.mul_div_down(m.deposit_shares, m.deposit_index, WAD), "market: insufficient liquidity"
    cap: uint256 = (info >> 136) & MASK120
    if cap != 0:
        assert total_borrow <= cap, "cap: borrow cap exceeded"
    self._totals[id] = m.deposit_shares | total_shares << 128
    pkey: uint256 = key << 8 | id
    # Borrow half <= total_shares <= MASK128: the add cannot overflow 256 bits.
    self._positions[pkey] = unsafe_add(self._positions[pkey], shares << 128)
    header: uint256 = self._headers[key]
    self._headers[key] = (header & ~(MASK64 << 128)) | 1 << (64 + id) | block.number << 128
    self._transfer_out(asset, receiver, amount)
    log Borrow(owner=owner, asset=asset, sub_id=sub_id, receiver=receiver, amount=amount, shares=shares, borrow_index=m.borrow_index)
    return shares


@internal
def _repay(owner: address, sub_id: uint8, key: uint256, asset: address, amount: uint256) -> uint256:
    id: uint256 = self._asset_id(self._info[asset])
    assert amount != 0, "repay: zero amount"
    m: Market = self._accrue(id, True)
    pkey: uint256 = key << 8 | id
    pos: uint256 = self._positions[pkey]
    owed_shares: uint256 = pos >> 128
    assert owed_shares != 0, "repay: no debt"
    # Round up: the debt is at least its exact value.
    debt: uint256 = fixed_point.mul_div_up(owed_shares, m.borrow_index, WAD)
    shares: uint256 = owed_shares
    paid: uint256 = debt
    if amount < debt:
        # Round down: burn at most the shares the payment is worth.
        shares = amount * WAD // m.borrow_index
        assert shares != 0, "repay: amount below one share"
        paid = amount
    self._totals[id] = m.deposit_shares | (m.borrow_shares - shares) << 128
    self._positions[pkey] = pos - (shares << 128)
    if shares == owed_shares:
        self._headers[key] = self._headers[key] & ~(1 << (64 + id))
    self._transfer_in(asset, msg.sender, paid)
    log Repay(owner=owner, asset=asset, sub_id=sub_id, payer=msg.sender, amount=paid, shares=shares, borrow_index=m.borrow_index)
    return paid


@internal
def _transfer(owner: address, from_sub_id: uint8, to_sub_id: uint8, key: uint256, asset: address, amount: uint256) -> (uint256, bool):
    info: uint256 = self._info[asset]
    id: uint256 = self._asset_id(info)
    assert from_sub_id != to_sub_id, "transfer: same sub-account"
    assert (info >> 8) & PAUSE_TRANSFER == 0, "pause: transfer paused"
    assert amount != 0, "transfer: zero amount"
    m: Market = self._accrue(id, False)
    pkey: uint256 = key << 8 | id
    pos: uint256 = self._positions[pkey]
    held: uint256 = pos & MASK128
    shares: uint256 = held
    if amount != max_value(uint256):
        # Round up, as a withdrawal: the source gives at least the amount's worth.
        shares = fixed_point.mul_div_up(amount, WAD, m.deposit_index)
    assert shares != 0 and shares <= held, "transfer: amount exceeds deposit"
    self._positions[pkey] = pos - shares
    to_key: uint256 = self._account_key(owner, to_sub_id)
    to_pkey: uint256 = to_key << 8 | id
    to_pos: uint256 = self._positions[to_pkey]
    if to_pos & MASK128 == 0:
        self._headers[to_key] = self._headers[to_key] | 1 << id
    # The destination's deposit half stays <= total deposit shares <= MASK128.
    self._positions[to_pkey] = unsafe_add(to_pos, shares)
    header: uint256 = self._headers[key]
    new_header: uint256 = header
    if shares == held:
        new_header &= ~(1 << id)
    has_debt: bool = (header >> 64) & MASK64 != 0
    if has_debt:
        new_header = (new_header & ~(MASK64 << 128)) | block.number << 128
    if new_header != header:
        self._headers[key] = new_header
    log TransferCollateral(
        owner=owner,
        asset=asset,
        from_sub_id=from_sub_id,
        to_sub_id=to_sub_id,
        amount=fixed_point.mul_div_down(shares, m.deposit_index, WAD),
        shares=shares,
        deposit_index=m.deposit_index,
    )
    return shares, has_debt


@internal
def _accrue(id: uint256, need_borrow_index: bool) -> Market:
    """
    @notice Accrues `id` to now and stores it. Without borrows nothing
            accrues and nothing is written, except that a borrow/repay path
            (`need_borrow_index`) restarts the clock so that the first
            borrow does not pay for time without borrows.
    """
    a: uint256 = self._market_a[id]
    totals: uint256 = self._totals[id]
    m: Market = Market(
        deposit_index=a & MASK96,
        borrow_index=0,
        deposit_shares=totals & MASK128,
        borrow_shares=totals >> 128,
        market_b=0,
    )
    if m.borrow_shares == 0 and not need_borrow_index:
        return m
    b: uint256 = self._market_b[id]
    m.market_b = b
    m.borrow_index = b & MASK96
    last: uint256 = (b >> 96) & MASK40
    if last == block.timestamp:
        return m
    if m.borrow_shares != 0:
        new_di: uint256 = 0
        new_bi: uint256 = 0
        new_di, new_bi = interest_rate.accrue(
            self._rate_model[id],
            (b >> 136) & MASK60,
            m.deposit_index,
            m.borrow_index,
            m.deposit_shares,
            m.borrow_shares,
            block.timestamp - last,
        )
        assert new_di <= MASK96 and new_bi <= MASK96, "market: index overflow"
        if new_di != m.deposit_index:
            self._market_a[id] = (a & ~MASK96) | new_di
            m.deposit_index = new_di
        m.borrow_index = new_bi
    b = (b & ~(MASK96 | MASK40 << 96)) | m.borrow_index | block.timestamp << 96
    self._market_b[id] = b
    m.market_b = b
    return m


@internal
@view
def _ramp_of(id: uint256, risk: uint256) -> uint256:
    if margin.flags(risk) & margin.FLAG_RAMPING != 0:
        return self._ramp[id]
    return 0


@internal
@view
def _health(
    key: uint256, header: uint256, kinds: uint256, strict: bool, grace: uint256, pick_repay: uint256, pick_seize: uint256
) -> Valuation:
    """
    @notice Weighted collateral and debt of an account for the health types
            in `kinds` (bit 0 INITIAL, bit 1 MAINTENANCE, bit 2
            LIQUIDATION_END, bit 3 VALUE: unweighted).
            Collateral counts at the stored deposit index (deposit interest
            not yet accrued is left out: conservative); debt counts at the
            borrow index accrued to now.
    @param strict Revert with the oracle's reason on a rejected price
           (actions); otherwise flag it (views).
    @param grace With `strict`, also revert "liquidation: price grace
           period" while a feed's first round after a stale gap is younger
           than `grace` seconds (0 skips the check).
    @param pick_repay Asset id whose price, debt and borrow index go to the
           returned `Picked` (MAX_ASSETS: none); `pick_seize` likewise for
           the price, deposit and deposit index.
    """
    v: Valuation = empty(Valuation)
    v.health.prices_valid = True
    held: uint256 = (header | header >> 64) & MASK64
    for id: uint256 in range(MAX_ASSETS):
        if held >> id == 0:
            break
        if (held >> id) & 1 == 0:
            continue
        pos: uint256 = self._positions[key << 8 | id]
        a: uint256 = self._market_a[id]
        risk: uint256 = self._risk[id]
        ramp: uint256 = 0
        if (risk >> 122) & margin.FLAG_RAMPING != 0:
            ramp = self._ramp[id]
        price: uint256 = 0
        err: uint256 = 0
        # The risk word decoded in place (layout in the margin module):
        # answer bounds (times the bound scale), max staleness, unit-price
        # exponent.
        feed_decimals: uint256 = (risk >> 117) & 31
        scale: uint256 = 1
        if feed_decimals > 8:
            scale = 10 ** (feed_decimals - 8)
        price, err = oracle.unit_price(
            convert(a >> 96, address),
            ((risk >> 128) & MASK64) * scale,
            (risk >> 192) * scale,
            (risk >> 64) & margin.MASK24,
            36 - feed_decimals - ((risk >> 112) & 31),
        )
        if err != oracle.ERR_NONE:
            if strict:
                self._revert_oracle(err)
            v.health.prices_valid = False
        if grace != 0:
            assert not oracle.recently_stale(convert(a >> 96, address), margin.max_staleness(risk), grace), "liquidation: price grace period"
        deposit_amount: uint256 = 0
        debt_amount: uint256 = 0
        if pos & MASK128 != 0:
            # Round down: collateral is never overstated.
            deposit_amount = (pos & MASK128) * (a & MASK96) // WAD
        if id == pick_seize:
            v.picked.price_seize = price
            v.picked.deposit = deposit_amount
            v.picked.deposit_index = a & MASK96
        if pos >> 128 != 0:
            # Borrow index accrued to now (reusing the market word
            # already read). Round up: debt is never understated. Ceil in
            # place here and below (fixed_point.mul_div_up without its
            # internal call): the floor plus one when a remainder is left;
            # unsafe_add cannot overflow, the floor of p / WAD being < 2**197.
            b: uint256 = self._market_b[id]
            bi: uint256 = b & MASK96
            if (b >> 96) & MASK40 != block.timestamp:
                di_now: uint256 = 0
                di_now, bi = interest_rate.indexes_now(a, b, self._totals[id], self._rate_model[id])
            product: uint256 = (pos >> 128) * bi
            debt_amount = unsafe_add(product // WAD, convert(product % WAD != 0, uint256))
            if id == pick_repay:
                v.picked.price_repay = price
                v.picked.debt = debt_amount
                v.picked.borrow_index = bi
        # The asset's value once (same roundings as margin.contribution:
        # collateral down, debt up), then times each requested weight.
        coll_value: uint256 = 0
        debt_value: uint256 = 0
        if debt_amount != 0:
            product: uint256 = debt_amount * price
            debt_value = unsafe_add(product // WAD, convert(product % WAD != 0, uint256))
        # `margin.health_weights` per type, with the maintenance weights
        # computed once per asset (liquidation asks for three types).
        aw_m: uint256 = 0
        lw_m: uint256 = 0
        if kinds & 6 != 0:
            aw_m, lw_m = margin.maintenance_weights(risk, ramp)
        for kind: uint256 in range(4):
            if kinds >> kind == 0:
                break
            if (kinds >> kind) & 1 == 0:
                continue
            aw: uint256 = WAD  # VALUE: unweighted
            lw: uint256 = WAD
            if kind == margin.INITIAL:
                aw, lw = margin.health_weights(risk, ramp, kind, deposit_amount, debt_amount)
            elif kind == margin.MAINTENANCE:
                aw = aw_m
                lw = lw_m
            elif kind == margin.LIQUIDATION_END:
                aw, lw = margin.liquidation_end_weights(risk, aw_m, lw_m)
            if aw != 0 and deposit_amount != 0:
                if coll_value == 0:
                    coll_value = deposit_amount * price // WAD
                v.health.collateral[kind] += coll_value * aw // WAD
            if debt_value != 0:
                # Round up (liability).
                product: uint256 = debt_value * lw
                v.health.debt[kind] += unsafe_add(product // WAD, convert(product % WAD != 0, uint256))
    return v


@internal
@view
def _sequencer_ok() -> bool:
    up: bool = False
    down: bool = False
    up, down = oracle.sequencer_status(SEQUENCER_FEED, SEQUENCER_GRACE_PERIOD)
    return up


@internal
@view
def _require_initial_health(key: uint256):
    """
    @notice Reverts unless the account's initial health is >= 0 with every
            price accepted and the sequencer (if any) up past its grace period.
    """
    self._require_sequencer()
    h: Health = self._health(key, self._headers[key], 1, True, 0, MAX_ASSETS, MAX_ASSETS).health
    assert h.collateral[0] >= h.debt[0], "health: below initial margin"


@internal
@view
def _require_sequencer():
    """
    @notice Reverts while an L2 sequencer is down or inside its grace period.
    """
    if SEQUENCER_FEED != empty(address):
        up: bool = False
        down: bool = False
        up, down = oracle.sequencer_status(SEQUENCER_FEED, SEQUENCER_GRACE_PERIOD)
        assert not down, "oracle: sequencer down"
        assert up, "oracle: sequencer grace period"


@internal
@pure
def _revert_oracle(err: uint256):
    assert err != oracle.ERR_CALL, "oracle: feed call failed"
    assert err != oracle.ERR_NOT_POSITIVE, "oracle: non-positive price"
    assert err != oracle.ERR_BOUNDS, "oracle: price out of bounds"
    assert err != oracle.ERR_INCOMPLETE, "oracle: incomplete round"
    raise "oracle: stale price"


@internal
def _write_liquidation_settings(dust_threshold: uint256, grace_period: uint256, paused_until: uint256):
    assert dust_threshold <= MASK128 and grace_period <= MASK32, "config: liquidation settings out of range"
    self._liquidation_settings = dust_threshold | grace_period << 128 | paused_until << 160
    log LiquidationSettingsSet(dust_threshold=dust_threshold, grace_period=grace_period, paused_until=paused_until)


@internal
@view
def _only_configurator():
    assert msg.sender == CONFIGURATOR, "config: caller is not configurator"


@internal
def _transfer_in(asset: address, payer: address, amount: uint256):
    """
    @notice The only place tokens come in. Accepts tokens that return
            nothing (USDT) and refuses any token whose balance change differs
            from `amount` (fee-on-transfer, rebasing).
    """
    before: uint256 = staticcall IERC20(asset).balanceOf(self)
    assert extcall IERC20(asset).transferFrom(payer, self, amount, default_return_value=True), "token: transferFrom returned false"
    assert staticcall IERC20(asset).balanceOf(self) == before + amount, "token: balance change differs from amount"


@internal
def _transfer_out(asset: address, receiver: address, amount: uint256):
    """
    @notice The only place tokens go out. Accepts tokens that return nothing.
    """
    assert receiver != empty(address), "token: zero receiver"
    assert extcall IERC20(asset).transfer(receiver, amount, default_return_value=True), "token: transfer returned false"
