# pragma version 0.4.3
"""
@title MockDex
@notice Test-only "DEX" for flash liquidations: `swap` takes `amount_in` of
        `token_in` from the caller and mints `amount_in * rate / 1e18` of
        `token_out` to it (the mock tokens' `mint` is open). Rates are set by
        the test, in token_out units per token_in unit, WAD.
"""

from ethereum.ercs import IERC20


interface IMintable:
    def mint(receiver: address, amount: uint256): nonpayable


rate: public(HashMap[address, HashMap[address, uint256]])


@external
def set_rate(token_in: address, token_out: address, rate_wad: uint256):
    self.rate[token_in][token_out] = rate_wad


@external
def swap(token_in: address, amount_in: uint256, token_out: address) -> uint256:
    assert extcall IERC20(token_in).transferFrom(msg.sender, self, amount_in, default_return_value=True), "dex: pull failed"
    out: uint256 = amount_in * self.rate[token_in][token_out] // 10**18
    extcall IMintable(token_out).mint(msg.sender, out)
    return out
