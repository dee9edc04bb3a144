# pragma version 0.4.3
"""
@title MockAggregator
@license MIT
@notice Chainlink-compatible price feed for local chains and tests only. It
        implements `AggregatorV3Interface` plus the legacy `latestAnswer`,
        `latestTimestamp` and `latestRound` getters and keeps every round, so
        `getRoundData` works for historical rounds and reverts with
        "No data present" for rounds that were never written (like Chainlink).
        Round ids are encoded like a real `EACAggregatorProxy` in phase 1:
        `roundId = (1 << 64) | n`, with n = 1 for the constructor's round and
        incrementing by one per write; `answeredInRound == roundId`. The ids
        emitted in `NewRound` / `AnswerUpdated` are these same phase-encoded
        ids (a real underlying aggregator would emit the bare `n`).
        Storage: `latest_round` (one slot) and one packed word per round
        (`answer` as 128-bit two's complement in bits 255..128 | `startedAt`
        uint64 in bits 127..64 | `updatedAt` uint64 in bits 63..0), so
        `latestRoundData` costs exactly two SLOADs. Consequently answers must
        fit in int128 and timestamps in uint64; writes outside those ranges
        revert.
        `set_answer` and `set_round` are open to anyone (test mock).
        `set_round(answer, started_at, 0)` models an incomplete round
        (`updatedAt == 0`); arbitrary timestamps model stale data.
"""

from ..interfaces import IAggregatorV3

implements: IAggregatorV3


event NewRound:
    roundId: indexed(uint256)
    startedBy: indexed(address)
    startedAt: uint256


event AnswerUpdated:
    current: indexed(int256)
    roundId: indexed(uint256)
    updatedAt: uint256


# phase 1 of an EACAggregatorProxy: roundId = (phaseId << 64) | aggregatorRoundId
PHASE_BASE: constant(uint80) = 2**64
VERSION: constant(uint256) = 4
TS_MASK: constant(uint256) = 2**64 - 1

decimals: public(immutable(uint8))
# bounded like IAggregatorV3.description(); the constructor accepts up to 64 chars
description: public(immutable(String[128]))

latest_round: uint80
rounds: HashMap[uint80, uint256]


@deploy
def __init__(decimals_: uint8, description_: String[64], initial_answer: int256):
    """
    @param decimals_ Decimals of the answer (8 for USD pairs, 18 for ETH pairs).
    @param description_ Feed description, e.g. "ETH / USD".
    @param initial_answer Answer of the first round (id (1 << 64) | 1), with
           startedAt = updatedAt = block.timestamp.
    """
    decimals = decimals_
    description = description_
    self.latest_round = PHASE_BASE
    self._new_round(initial_answer, block.timestamp, block.timestamp)


@internal
def _new_round(answer: int256, started_at: uint256, updated_at: uint256):
    assert answer >= convert(min_value(int128), int256), "MockAggregator: answer out of int128 range"
    assert answer <= convert(max_value(int128), int256), "MockAggregator: answer out of int128 range"
    assert started_at <= TS_MASK, "MockAggregator: startedAt exceeds uint64"
    assert updated_at <= TS_MASK, "MockAggregator: updatedAt exceeds uint64"
    round_id: uint80 = self.latest_round + 1
    self.latest_round = round_id
    # the left shift drops the upper 128 bits of the sign-extended answer
    self.rounds[round_id] = (
        (convert(convert(answer, bytes32), uint256) << 128) | (started_at << 64) | updated_at
    )
    log NewRound(roundId=convert(round_id, uint256), startedBy=msg.sender, startedAt=started_at)
    log AnswerUpdated(current=answer, roundId=convert(round_id, uint256), updatedAt=updated_at)


@internal
@pure
def _answer(word: uint256) -> int256:
    # arithmetic right shift sign-extends the 128-bit answer
    return convert(convert(word, bytes32), int256) >> 128


@internal
@pure
def _started_at(word: uint256) -> uint256:
    return (word >> 64) & TS_MASK


@internal
@pure
def _updated_at(word: uint256) -> uint256:
    return word & TS_MASK


@external
def set_answer(answer: int256):
    """
    @notice Starts and completes a new round with `answer`;
            startedAt = updatedAt = block.timestamp.
    """
    self._new_round(answer, block.timestamp, block.timestamp)


@external
def set_round(answer: int256, started_at: uint256, updated_at: uint256):
    """
    @notice Writes a new round with explicit timestamps. `updated_at == 0`
            models an incomplete round; old timestamps model stale data.
    """
    self._new_round(answer, started_at, updated_at)


@external
@view
def version() -> uint256:
    return VERSION


@external
@view
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    """
    @return (roundId, answer, startedAt, updatedAt, answeredInRound)
    """
    round_id: uint80 = self.latest_round
    word: uint256 = self.rounds[round_id]
    return round_id, self._answer(word), self._started_at(word), self._updated_at(word), round_id


@external
@view
def getRoundData(_roundId: uint80) -> (uint80, int256, uint256, uint256, uint80):
    """
    @return (roundId, answer, startedAt, updatedAt, answeredInRound);
            reverts with "No data present" for an unknown round.
    """
    assert _roundId > PHASE_BASE and _roundId <= self.latest_round, "No data present"
    word: uint256 = self.rounds[_roundId]
    return _roundId, self._answer(word), self._started_at(word), self._updated_at(word), _roundId


@external
@view
def latestAnswer() -> int256:
    return self._answer(self.rounds[self.latest_round])


@external
@view
def latestTimestamp() -> uint256:
    """
    @return updatedAt of the latest round.
    """
    return self._updated_at(self.rounds[self.latest_round])


@external
@view
def latestRound() -> uint256:
    """
    @return Phase-encoded id of the latest round.
    """
    return convert(self.latest_round, uint256)
