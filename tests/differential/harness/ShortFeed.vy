# pragma version 0.4.3
"""
@title ShortFeed
@notice Test-only feed whose `latestRoundData` returns 64 bytes instead of
        160: the oracle module must report ERR_CALL (short return data).
"""


@external
@view
def latestRoundData() -> (uint256, int256):
    return 1, 100
