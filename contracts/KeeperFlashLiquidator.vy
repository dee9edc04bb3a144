# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title KeeperFlashLiquidator
@license MIT
@notice Flash liquidations for the xmargin keeper: liquidates without
        holding the repay token. `liquidate` (keeper only) calls
        MarginEngine.liquidate with this contract as receiver and a
        non-empty `data`; the engine sends the seized tokens here, calls
        `on_liquidation`, where they are sold on the DEX for the repay token
        and the engine is approved for the repayment; the engine then pulls
        it. What is left of the repay token (the bonus, net of the swap) is
        sent to the keeper, and must be at least `min_profit`, otherwise
        everything reverts.
        The DEX is any contract with `swap(token_in, amount_in, token_out)
        -> amount_out` that pulls `amount_in` from the caller (an adapter in
        front of a real router; on local chains the test MockDex).
@custom:security Trusts ENGINE (only it may call `on_liquidation`, and only
        during a `liquidate` started here: transient `_active` flag) and DEX
        (approved for exactly the seized amount, allowance reset after).
        Only KEEPER may start a liquidation or sweep tokens. Holds no funds
        between transactions; `sweep` recovers anything sent by mistake.
        Not pausable: the keeper stops by not calling it.
"""

from ethereum.ercs import IERC20


interface IEngine:
    def liquidate(
        owner: address,
        sub_id: uint8,
        repay_asset: address,
        repay_amount: uint256,
        seize_asset: address,
        min_seize_amount: uint256,
        receiver: address,
        data: Bytes[1024],
    ) -> (uint256, uint256): nonpayable


interface IDex:
    def swap(token_in: address, amount_in: uint256, token_out: address) -> uint256: nonpayable


# ---------------------------------------------------------------------------
# Immutables and storage
# ---------------------------------------------------------------------------

ENGINE: public(immutable(address))  # the MarginEngine
DEX: public(immutable(address))  # swap venue (see @notice)
KEEPER: public(immutable(address))  # the only caller of liquidate / sweep; receives the profit

_active: transient(bool)  # a liquidate() started here is running


event FlashLiquidation:
    owner: indexed(address)
    repay_asset: indexed(address)
    seize_asset: indexed(address)
    sub_id: uint8
    repaid: uint256  # repay-token units paid to the engine
    seized: uint256  # seize-token units received and sold
    profit: uint256  # repay-token units sent to the keeper


@deploy
def __init__(engine: address, dex: address, keeper: address):
    """
    @param engine The MarginEngine.
    @param dex Swap venue (`swap(token_in, amount_in, token_out)`).
    @param keeper The keeper's address (caller and profit receiver).
    """
    assert engine != empty(address) and dex != empty(address) and keeper != empty(address), "flash: zero address"
    ENGINE = engine
    DEX = dex
    KEEPER = keeper


# ---------------------------------------------------------------------------
# Externals
# ---------------------------------------------------------------------------

@external
def liquidate(
    owner: address,
    sub_id: uint8,
    repay_asset: address,
    repay_amount: uint256,
    seize_asset: address,
    min_seize_amount: uint256,
    min_profit: uint256,
) -> (uint256, uint256):
    """
    @notice Flash-liquidates `owner`'s sub-account `sub_id`.
    @param repay_asset Debt token repaid.
    @param repay_amount Most repay-token units to repay; max uint256 = as
           much as the engine allows.
    @param seize_asset Collateral token seized and sold.
    @param min_seize_amount Fewest seize-token units accepted (engine check).
    @param min_profit Fewest repay-token units left after repaying.
    @return (repay-token units repaid, repay-token units of profit sent to
            the keeper).
    @dev Reverts: "flash: caller is not the keeper", "flash: profit below
         minimum", "flash: swap short", and every engine reason.
    """
    assert msg.sender == KEEPER, "flash: caller is not the keeper"
    self._active = True
    repaid: uint256 = 0
    seized: uint256 = 0
    repaid, seized = extcall IEngine(ENGINE).liquidate(
        owner, sub_id, repay_asset, repay_amount, seize_asset, min_seize_amount, self, b"\x01"
    )
    self._active = False
    profit: uint256 = staticcall IERC20(repay_asset).balanceOf(self)
    assert profit >= min_profit, "flash: profit below minimum"
    if profit != 0:
        assert extcall IERC20(repay_asset).transfer(KEEPER, profit, default_return_value=True), "flash: transfer failed"
    log FlashLiquidation(
        owner=owner, repay_asset=repay_asset, seize_asset=seize_asset, sub_id=sub_id, repaid=repaid, seized=seized,
        profit=profit,
    )
    return repaid, profit


@external
@reentrant
def on_liquidation(
    owner: address,
    sub_id: uint8,
    repay_asset: address,
    repay_amount: uint256,
    seize_asset: address,
    seized_amount: uint256,
    data: Bytes[1024],
):
    """
    @notice Engine callback: sells the seized tokens for the repay token and
            approves the engine for `repay_amount`. Reentrant by design (it
            runs inside `liquidate`), guarded by the transient flag.
    @dev Reverts: "flash: caller is not the engine", "flash: not started
         here", "flash: swap short".
    """
    assert msg.sender == ENGINE, "flash: caller is not the engine"
    assert self._active, "flash: not started here"
    if seize_asset != repay_asset:
        assert extcall IERC20(seize_asset).approve(DEX, seized_amount, default_return_value=True), "flash: approve failed"
        extcall IDex(DEX).swap(seize_asset, seized_amount, repay_asset)
        assert extcall IERC20(seize_asset).approve(DEX, 0, default_return_value=True), "flash: approve failed"
    assert staticcall IERC20(repay_asset).balanceOf(self) >= repay_amount, "flash: swap short"
    assert extcall IERC20(repay_asset).approve(ENGINE, repay_amount, default_return_value=True), "flash: approve failed"


@external
def sweep(token: address, amount: uint256):
    """
    @notice Sends `amount` of `token` held here to the keeper (recovery).
    """
    assert msg.sender == KEEPER, "flash: caller is not the keeper"
    assert extcall IERC20(token).transfer(KEEPER, amount, default_return_value=True), "flash: transfer failed"
