# pragma version 0.4.3
"""
@title FlashLiquidator
@notice Test-only flash liquidator. `run` calls MarginEngine.liquidate with
        itself as receiver and a non-empty `data`, so the engine sends it the
        seized tokens, then calls `on_liquidation`, then pulls the repayment.
        In the callback it sells the seized tokens on a MockDex for the repay
        token and approves the engine for the repay amount; other modes
        misbehave on purpose. It records what it saw in the callback.
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


MODE_PAY: constant(uint256) = 0  # swap everything seized, approve the repay
MODE_NO_PAY: constant(uint256) = 1  # keep the collateral, approve nothing
MODE_SHORT: constant(uint256) = 2  # swap, approve one unit less than the repay
MODE_REENTER: constant(uint256) = 3  # try `reenter_data` on the engine, then pay
MODE_REVERT: constant(uint256) = 4  # revert in the callback

ENGINE: public(immutable(address))
DEX: public(immutable(address))

mode: public(uint256)
reenter_data: public(Bytes[1024])
calls: public(uint256)
seen_owner: public(address)
seen_sub_id: public(uint8)
seen_repay_asset: public(address)
seen_repay_amount: public(uint256)
seen_seize_asset: public(address)
seen_seized: public(uint256)
seen_data: public(Bytes[1024])
seen_seize_balance: public(uint256)  # seize-token balance when the callback starts
seen_repay_balance: public(uint256)  # repay-token balance when the callback starts
swapped_out: public(uint256)
reenter_ok: public(bool)
reenter_return: public(Bytes[1024])


@deploy
def __init__(engine: address, dex: address):
    ENGINE = engine
    DEX = dex


@external
def set_mode(mode: uint256, reenter_data: Bytes[1024]):
    self.mode = mode
    self.reenter_data = reenter_data


@external
def run(
    owner: address,
    sub_id: uint8,
    repay_asset: address,
    repay_amount: uint256,
    seize_asset: address,
    min_seize_amount: uint256,
    data: Bytes[1024],
) -> (uint256, uint256):
    return extcall IEngine(ENGINE).liquidate(
        owner, sub_id, repay_asset, repay_amount, seize_asset, min_seize_amount, self, data
    )


@external
def on_liquidation(
    owner: address,
    sub_id: uint8,
    repay_asset: address,
    repay_amount: uint256,
    seize_asset: address,
    seized_amount: uint256,
    data: Bytes[1024],
):
    assert msg.sender == ENGINE, "flash: caller is not the engine"
    self.calls += 1
    self.seen_owner = owner
    self.seen_sub_id = sub_id
    self.seen_repay_asset = repay_asset
    self.seen_repay_amount = repay_amount
    self.seen_seize_asset = seize_asset
    self.seen_seized = seized_amount
    self.seen_data = data
    self.seen_seize_balance = staticcall IERC20(seize_asset).balanceOf(self)
    self.seen_repay_balance = staticcall IERC20(repay_asset).balanceOf(self)
    mode: uint256 = self.mode
    if mode == MODE_REVERT:
        raise "flash: callback refuses"
    if mode == MODE_NO_PAY:
        return
    if mode == MODE_REENTER:
        ok: bool = False
        ret: Bytes[1024] = b""
        ok, ret = raw_call(ENGINE, self.reenter_data, max_outsize=1024, revert_on_failure=False)
        self.reenter_ok = ok
        self.reenter_return = ret
    assert extcall IERC20(seize_asset).approve(DEX, seized_amount, default_return_value=True)
    self.swapped_out = extcall IDex(DEX).swap(seize_asset, seized_amount, repay_asset)
    allowance: uint256 = repay_amount
    if mode == MODE_SHORT:
        allowance = repay_amount - 1
    assert extcall IERC20(repay_asset).approve(ENGINE, allowance, default_return_value=True)
