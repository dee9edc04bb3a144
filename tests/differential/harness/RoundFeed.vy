# pragma version 0.4.3
"""
@title RoundFeed
@notice Test-only Chainlink-shaped feed whose `latestRoundData` returns any
        five words set by `set`, including round ids >= 2**80 (declared
        uint256 here, so values the oracle's uint80 abi_decode rejects can be
        returned), or reverts when `down` is set. Unlike MockAggregator it
        has no int128/uint64 limits, so every validation branch of
        oracle.unit_price can be reached. `getRoundData(id)` returns the
        round written for `id` by `set_history` and reverts for any other
        id, for oracle.recently_stale's walk back.
"""

round_id: public(uint256)
answer: public(int256)
started_at: public(uint256)
updated_at: public(uint256)
answered_in: public(uint256)
down: public(bool)
epoch: public(uint256)  # bumped by set_history: forgets the earlier history
history: HashMap[uint256, HashMap[uint256, uint256]]  # epoch -> round id -> updatedAt
known: HashMap[uint256, HashMap[uint256, bool]]  # epoch -> round id -> written


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
def set_history(ids: DynArray[uint256, 32], updated_ats: DynArray[uint256, 32]):
    self.epoch += 1
    for i: uint256 in range(len(ids), bound=32):
        self.history[self.epoch][ids[i]] = updated_ats[i]
        self.known[self.epoch][ids[i]] = True


@external
@view
def getRoundData(round_id: uint80) -> (uint256, int256, uint256, uint256, uint256):
    id: uint256 = convert(round_id, uint256)
    assert self.known[self.epoch][id], "RoundFeed: no data"
    updated_at: uint256 = self.history[self.epoch][id]
    return id, self.answer, updated_at, updated_at, id
