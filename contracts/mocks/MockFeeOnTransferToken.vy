# pragma version 0.4.3
"""
@title MockFeeOnTransferToken
@license MIT
@notice Deflationary ("fee-on-transfer") ERC-20 for local chains and tests
        only. Every `transfer` and `transferFrom` burns a fee of
        `fee_bps` basis points of `amount` (rounded down), so the recipient
        receives `amount - fee` while the sender is debited the full `amount`
        and `totalSupply` drops by `fee`. Protocols must therefore measure
        the balance delta instead of trusting `amount`.
        Two `Transfer` events are emitted when the fee is non-zero:
        (sender -> empty(address), fee) and (sender -> receiver, amount - fee).
        `transferFrom` spends the full `amount` of allowance; an allowance of
        `max_value(uint256)` is never decremented. `mint` is open to anyone
        and charges no fee.
"""

from ethereum.ercs import IERC20

implements: IERC20


event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256


event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256


MAX_BPS: constant(uint256) = 10_000

name: public(immutable(String[64]))
symbol: public(immutable(String[32]))
decimals: public(immutable(uint8))
fee_bps: public(immutable(uint256))

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)


@deploy
def __init__(name_: String[64], symbol_: String[32], decimals_: uint8, fee_bps_: uint256):
    """
    @param name_ Token name.
    @param symbol_ Token symbol.
    @param decimals_ Token decimals.
    @param fee_bps_ Fee burnt on each transfer, in basis points (<= 10_000).
    """
    assert fee_bps_ <= MAX_BPS, "FoT: fee exceeds 100%"
    name = name_
    symbol = symbol_
    decimals = decimals_
    fee_bps = fee_bps_


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    bal: uint256 = self.balanceOf[sender]
    assert bal >= amount, "FoT: insufficient balance"
    fee: uint256 = amount * fee_bps // MAX_BPS
    net: uint256 = unsafe_sub(amount, fee)
    self.balanceOf[sender] = unsafe_sub(bal, amount)
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], net)
    if fee != 0:
        # cannot underflow: fee <= amount <= bal <= totalSupply
        self.totalSupply = unsafe_sub(self.totalSupply, fee)
        log Transfer(sender=sender, receiver=empty(address), value=fee)
    log Transfer(sender=sender, receiver=receiver, value=net)


@external
@view
def fee_for(amount: uint256) -> uint256:
    """
    @notice Fee that a transfer of `amount` would burn.
    """
    return amount * fee_bps // MAX_BPS


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(owner: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[owner][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "FoT: insufficient allowance"
        self.allowance[owner][msg.sender] = unsafe_sub(allowed, amount)
    self._transfer(owner, receiver, amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    """
    @notice Mints `amount` tokens to `receiver` (no fee). Open to anyone.
    """
    self.totalSupply += amount
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=empty(address), receiver=receiver, value=amount)
