# pragma version 0.4.3
"""
@title RoundFeed
@notice Test-only Chainlink-shaped feed whose `latestRoundData` returns any
        five words set by `set`, including round ids >= 2**80 (declared
        uint256 here, so values the oracle's uint80 abi_decode rejects can be
        returned), or reverts when `down` is set. Unlike MockAggregator it
        has no int128/uint64 limits, so every validation branch of
        oracle.unit_price can be reached. `getRoundData` returns the
        "previous" round set by `set_previous` for any id (or reverts when
        `previous_down`), for oracle.recently_stale.
"""

round_id: public(uint256)
answer: public(int256)
started_at: public(uint256)
updated_at: public(uint256)
answered_in: public(uint256)
down: public(bool)
previous_updated_at: public(uint256)
previous_down: public(bool)


@external
def set(round_id: uint256, answer: int256, started_at: uint256, updated_at: uint256, answered_in: uint256, down: bool):
    self.round_id = round_id
    self.answer = answer
    self.started_at = started_at
    self.updated_at = updated_at
    self.answered_in = answered_in
    self.down = down


@external
@view
def latestRoundData() -> (uint256, int256, uint256, uint256, uint256):
    assert not self.down, "RoundFeed: down"
    return self.round_id, self.answer, self.started_at, self.updated_at, self.answered_in


@external
def set_previous(updated_at: uint256, down: bool):
    self.previous_updated_at = updated_at
    self.previous_down = down


@external
@view
def getRoundData(round_id: uint80) -> (uint256, int256, uint256, uint256, uint256):
    assert not self.previous_down, "RoundFeed: no data"
    return convert(round_id, uint256), self.answer, self.previous_updated_at, self.previous_updated_at, convert(round_id, uint256)
