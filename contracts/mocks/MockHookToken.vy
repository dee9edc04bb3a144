# pragma version 0.4.3
"""
@title MockHookToken
@license MIT
@notice 18-decimal ERC-20 with an ERC-777-style "tokensToSend" hook, for
        local chains and re-entrancy tests only. When a hook is configured
        (`set_hook(target, data)`), every `transfer` and `transferFrom` first
        - before any allowance or balance is read or written - performs
        `raw_call(target, data)` with `revert_on_failure=False`, then records
        the outcome in `last_hook_success` / `last_hook_return` (the raw
        return or revert data, truncated to 1024 bytes) and increments
        `hook_calls`. A test can thus drive a token transfer from inside the
        victim protocol and afterwards assert that the re-entrant call was
        blocked (`last_hook_success == False`, revert reason in
        `last_hook_return`).
        The hook fires at most once per outermost transfer: transfers that
        happen while the hook call is in flight (e.g. the re-entered victim
        moving this same token) do not fire it again, so it cannot recurse.
        The hook stays armed for subsequent transfers until `clear_hook()`.
        The hook call is made from this token's address with all available
        gas and no ETH. `set_hook`, `clear_hook` and `mint` are open to
        anyone (test token).
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


event HookExecuted:
    target: indexed(address)
    success: bool


MAX_HOOK_DATA: constant(uint256) = 1024
MAX_HOOK_RETURN: constant(uint256) = 1024

name: public(immutable(String[64]))
symbol: public(immutable(String[32]))
decimals: public(constant(uint8)) = 18

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)

hook_target: public(address)
hook_data: public(Bytes[MAX_HOOK_DATA])
last_hook_success: public(bool)
last_hook_return: public(Bytes[MAX_HOOK_RETURN])
hook_calls: public(uint256)
_hook_in_flight: bool


@deploy
def __init__(name_: String[64], symbol_: String[32]):
    """
    @param name_ Token name.
    @param symbol_ Token symbol.
    """
    name = name_
    symbol = symbol_


@external
def set_hook(target: address, data: Bytes[MAX_HOOK_DATA]):
    """
    @notice Arms the hook: each subsequent transfer calls `target` with
            calldata `data` before moving balances.
    """
    self.hook_target = target
    self.hook_data = data


@external
def clear_hook():
    """
    @notice Disarms the hook. Recorded results are kept.
    """
    self.hook_target = empty(address)
    self.hook_data = b""


@internal
def _run_hook():
    target: address = self.hook_target
    if target == empty(address) or self._hook_in_flight:
        return
    self._hook_in_flight = True
    success: bool = False
    response: Bytes[MAX_HOOK_RETURN] = b""
    success, response = raw_call(
        target,
        self.hook_data,
        max_outsize=MAX_HOOK_RETURN,
        revert_on_failure=False,
    )
    self._hook_in_flight = False
    self.last_hook_success = success
    self.last_hook_return = response
    self.hook_calls += 1
    log HookExecuted(target=target, success=success)


@internal
def _move(sender: address, receiver: address, amount: uint256):
    bal: uint256 = self.balanceOf[sender]
    assert bal >= amount, "ERC20: insufficient balance"
    self.balanceOf[sender] = unsafe_sub(bal, amount)
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=sender, receiver=receiver, value=amount)


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._run_hook()
    self._move(msg.sender, receiver, amount)
    return True


@external
def transferFrom(owner: address, receiver: address, amount: uint256) -> bool:
    self._run_hook()
    allowed: uint256 = self.allowance[owner][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "ERC20: insufficient allowance"
        self.allowance[owner][msg.sender] = unsafe_sub(allowed, amount)
    self._move(owner, receiver, amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    """
    @notice Mints `amount` tokens to `receiver`; does not fire the hook.
            Open to anyone (test token).
    """
    self.totalSupply += amount
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=empty(address), receiver=receiver, value=amount)
