# pragma version 0.4.3
"""
@title MockUSDT
@license MIT
@notice Tether (USDT)-style non-standard ERC-20 for local chains and tests
        only. It reproduces the two USDT quirks that break naive integrations:
        1. `transfer`, `transferFrom` and `approve` return NOTHING (their ABI
           has no outputs), so callers decoding a `bool` revert; integrations
           must use a "safe transfer" wrapper (e.g. `default_return_value=True`
           in Vyper's `extcall`).
        2. `approve` reverts when changing a non-zero allowance to another
           non-zero value; the allowance must be reset to 0 first.
        Like the real `TetherToken`, an allowance of `max_value(uint256)` is
        never decremented by `transferFrom`. Transfers revert (with a reason)
        on insufficient balance or allowance. Fees, pausing and blacklisting
        of the real token are not modelled.
        Real USDT has 6 decimals; pass 6 to the constructor for that (Vyper
        constructors cannot take default arguments, so decimals is explicit).
        `mint` is open to anyone (test token).
"""


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
    @param name_ Token name, e.g. "Tether USD".
    @param symbol_ Token symbol, e.g. "USDT".
    @param decimals_ Token decimals; 6 for real USDT.
    """
    name = name_
    symbol = symbol_
    decimals = decimals_


@external
def approve(spender: address, amount: uint256):
    """
    @notice Sets the allowance of `spender`. Returns nothing. Reverts when both
            the current allowance and `amount` are non-zero (USDT's
            approve-race protection).
    """
    assert amount == 0 or self.allowance[msg.sender][spender] == 0, "USDT: reset allowance to 0 first"
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)


@external
def transfer(receiver: address, amount: uint256):
    """
    @notice Transfers `amount` to `receiver`. Returns nothing.
    """
    bal: uint256 = self.balanceOf[msg.sender]
    assert bal >= amount, "USDT: insufficient balance"
    self.balanceOf[msg.sender] = unsafe_sub(bal, amount)
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=msg.sender, receiver=receiver, value=amount)


@external
def transferFrom(owner: address, receiver: address, amount: uint256):
    """
    @notice Transfers `amount` from `owner` to `receiver` using the caller's
            allowance. Returns nothing. An infinite (max uint256) allowance
            is not decremented.
    """
    allowed: uint256 = self.allowance[owner][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "USDT: insufficient allowance"
        self.allowance[owner][msg.sender] = unsafe_sub(allowed, amount)
    bal: uint256 = self.balanceOf[owner]
    assert bal >= amount, "USDT: insufficient balance"
    self.balanceOf[owner] = unsafe_sub(bal, amount)
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=owner, receiver=receiver, value=amount)


@external
def mint(receiver: address, amount: uint256):
    """
    @notice Mints `amount` tokens to `receiver`. Open to anyone (test token).
    """
    self.totalSupply += amount
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=empty(address), receiver=receiver, value=amount)
