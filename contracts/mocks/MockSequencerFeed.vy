# pragma version 0.4.3
"""
@title MockSequencerFeed
@license MIT
@notice Chainlink L2 sequencer uptime feed for local chains and tests only,
        modelled on Chainlink's `BaseSequencerUptimeFeed`
        (description "L2 Sequencer Uptime Status Feed", version 1,
        decimals 0). `answer` is 0 when the sequencer is up and 1 when it is
        down; `startedAt` is the time the status last CHANGED; `updatedAt` is
        the block.timestamp of the last write to the round.
        Real feeds receive periodic L1->L2 status messages: an unchanged
        status does not open a new round but refreshes `updatedAt`
        ("heartbeat", `RoundUpdated` event). Consumers therefore MUST measure
        the grace period from `startedAt`, never from `updatedAt`. Aave v3's
        PriceOracleSentinel (aave-v3-core) read the 4th return value
        (`updatedAt`, named `lastUpdateTimestamp`) instead, so every
        heartbeat restarted its grace period and blocked borrows and
        liquidations even though the sequencer had been up for a long time.
        `set_status` reproduces this heartbeat behaviour so that bug is
        testable.
        Round ids are phase-encoded as seen through a Chainlink proxy
        (phase 1: `(1 << 64) | n`, n = 1 for the constructor's round);
        `answeredInRound == roundId`. Like the real feed, `latestTimestamp()`
        returns `startedAt`.
        `set_status` and `set_status_at` are open to anyone (test mock).
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


event RoundUpdated:
    status: int256
    updatedAt: uint64


PHASE_BASE: constant(uint80) = 2**64
TS_MASK: constant(uint256) = 2**64 - 1

decimals: public(constant(uint8)) = 0
description: public(constant(String[128])) = "L2 Sequencer Uptime Status Feed"
version: public(constant(uint256)) = 1

latest_round: uint80
# packed round word: status (0 up / 1 down) << 128 | startedAt << 64 | updatedAt
rounds: HashMap[uint80, uint256]


@deploy
def __init__(is_down: bool):
    """
    @param is_down Initial status (False = sequencer up). The first round
           starts at block.timestamp.
    """
    self.latest_round = PHASE_BASE
    self._record_round(is_down, block.timestamp)


@internal
def _record_round(is_down: bool, started_at: uint256):
    assert started_at <= TS_MASK, "MockSequencerFeed: startedAt exceeds uint64"
    round_id: uint80 = self.latest_round + 1
    self.latest_round = round_id
    status: uint256 = convert(is_down, uint256)
    self.rounds[round_id] = (status << 128) | (started_at << 64) | block.timestamp
    log NewRound(roundId=convert(round_id, uint256), startedBy=msg.sender, startedAt=started_at)
    log AnswerUpdated(current=convert(status, int256), roundId=convert(round_id, uint256), updatedAt=started_at)


@external
def set_status(is_down: bool):
    """
    @notice Reports the sequencer status like a real L1->L2 update. If the
            status changed, opens a new round with
            startedAt = updatedAt = block.timestamp; otherwise only refreshes
            the latest round's updatedAt (heartbeat) and keeps startedAt.
    """
    round_id: uint80 = self.latest_round
    word: uint256 = self.rounds[round_id]
    if convert(word >> 128, bool) == is_down:
        self.rounds[round_id] = (word & ~TS_MASK) | block.timestamp
        log RoundUpdated(status=convert(word >> 128, int256), updatedAt=convert(block.timestamp, uint64))
    else:
        self._record_round(is_down, block.timestamp)


@external
def set_status_at(is_down: bool, started_at: uint256):
    """
    @notice Test helper: unconditionally opens a new round with status
            `is_down` and the given `started_at` (updatedAt =
            block.timestamp), even if the status is unchanged or `started_at`
            is older than the current round's (a real feed would instead
            heartbeat or ignore such an update). Use it to place the last
            status change inside or outside a grace period.
    """
    self._record_round(is_down, started_at)


@internal
@view
def _round(round_id: uint80) -> (uint80, int256, uint256, uint256, uint80):
    word: uint256 = self.rounds[round_id]
    return round_id, convert(word >> 128, int256), (word >> 64) & TS_MASK, word & TS_MASK, round_id


@external
@view
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    """
    @return (roundId, answer, startedAt, updatedAt, answeredInRound);
            answer 0 = up, 1 = down; startedAt = last status change.
    """
    return self._round(self.latest_round)


@external
@view
def getRoundData(_roundId: uint80) -> (uint80, int256, uint256, uint256, uint80):
    """
    @return (roundId, answer, startedAt, updatedAt, answeredInRound);
            reverts with "No data present" for an unknown round.
    """
    assert _roundId > PHASE_BASE and _roundId <= self.latest_round, "No data present"
    return self._round(_roundId)


@external
@view
def latestAnswer() -> int256:
    return convert(self.rounds[self.latest_round] >> 128, int256)


@external
@view
def latestTimestamp() -> uint256:
    """
    @return startedAt of the latest round (as the real feed does).
    """
    return (self.rounds[self.latest_round] >> 64) & TS_MASK


@external
@view
def latestRound() -> uint256:
    return convert(self.latest_round, uint256)
