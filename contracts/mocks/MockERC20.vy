# pragma version 0.4.3
"""
@title MockERC20
@license MIT
@notice Minimal, gas-lean ERC-20 for local chains and tests only, with
        solmate `ERC20` semantics:
        - `transfer` / `transferFrom` / `approve` return True and revert on
          insufficient balance or allowance (with a reason string);
        - an allowance of `max_value(uint256)` is treated as infinite and is
          never decremented by `transferFrom`;
        - `transferFrom` does not emit `Approval`;
        - no zero-address checks (transfers to `empty(address)` are allowed,
          as in solmate).
        `mint` is open to anyone (test token); `burn` can only be called by
        the holder of the tokens being burnt.
        Storage is limited to `balanceOf`, `allowance` and `totalSupply`;
        name, symbol and decimals are immutables, so the hot paths perform the
        same storage accesses as a solmate token (it is used in a gas
        benchmark against solmate-based peers).
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


name: public(immutable(String[64]))
symbol: public(immutable(String[32]))
decimals: public(immutable(uint8))

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)


@deploy
def __init__(name_: String[64], symbol_: String[32], decimals_: uint8):
    """
    @param name_ Token name.
    @param symbol_ Token symbol.
    @param decimals_ Token decimals (e.g. 18, 8 or 6).
    """
    name = name_
    symbol = symbol_
    decimals = decimals_


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transfer(receiver: address, amount: uint256) -> bool:
    bal: uint256 = self.balanceOf[msg.sender]
    assert bal >= amount, "ERC20: insufficient balance"
    self.balanceOf[msg.sender] = unsafe_sub(bal, amount)
    # cannot overflow: the sum of all balances is bounded by totalSupply
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=msg.sender, receiver=receiver, value=amount)
    return True


@external
def transferFrom(owner: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[owner][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "ERC20: insufficient allowance"
        self.allowance[owner][msg.sender] = unsafe_sub(allowed, amount)
    bal: uint256 = self.balanceOf[owner]
    assert bal >= amount, "ERC20: insufficient balance"
    self.balanceOf[owner] = unsafe_sub(bal, amount)
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=owner, receiver=receiver, value=amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    """
    @notice Mints `amount` tokens to `receiver`. Open to anyone (test token).
    """
    # checked: reverts if totalSupply would overflow, which also bounds
    # every individual balance
    self.totalSupply += amount
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@external
def burn(owner: address, amount: uint256):
    """
    @notice Burns `amount` tokens held by `owner`. Only `owner` itself may
            burn its tokens (no allowance-based burning).
    """
    assert msg.sender == owner, "ERC20: caller is not token owner"
    bal: uint256 = self.balanceOf[owner]
    assert bal >= amount, "ERC20: burn amount exceeds balance"
    self.balanceOf[owner] = unsafe_sub(bal, amount)
    # cannot underflow: totalSupply >= balanceOf[owner] >= amount
    self.totalSupply = unsafe_sub(self.totalSupply, amount)
    log Transfer(sender=owner, receiver=empty(address), value=amount)
