# pragma version 0.4.3
"""
@title oracle
@license MIT
@notice Chainlink AggregatorV3 adapter: reads `latestRoundData`, validates
        the round and normalises the answer to a unit price.

        unit price = answer * 10**(36 - feed decimals - token decimals):
        the USD value (WAD) of one smallest token unit, times 1e18, so that
        value_usd_wad = amount * unit_price / 1e18 for any token decimals.

        A round is rejected (error code, never a revert here) when:
          ERR_CALL        the feed call reverted or returned short data
          ERR_NOT_POSITIVE answer <= 0
          ERR_BOUNDS      answer outside [min_answer, max_answer]
          ERR_INCOMPLETE  updatedAt == 0 or answeredInRound < roundId
          ERR_STALE       block.timestamp - updatedAt > max staleness
        Callers that act (borrow, withdraw, transfer) revert with the
        matching reason; views report validity instead of reverting.

        L2 sequencer uptime (Chainlink's feed: answer 0 = up, 1 = down):
        reading `startedAt` (when the status last changed), not `updatedAt`
        (refreshed on heartbeats), which is the known bug of Aave v3's
        PriceOracleSentinel.
@custom:security Trusts each listed feed for its asset's price within its
        bounds; a feed that reverts or lies outside bounds makes the asset's
        price invalid, which blocks borrow/withdraw but not deposit/repay.
"""

ERR_NONE: constant(uint256) = 0
ERR_CALL: constant(uint256) = 1
ERR_NOT_POSITIVE: constant(uint256) = 2
ERR_BOUNDS: constant(uint256) = 3
ERR_INCOMPLETE: constant(uint256) = 4
ERR_STALE: constant(uint256) = 5

ROUND_DATA_SIZE: constant(uint256) = 160
# Most previous rounds oracle.recently_stale reads (see its @dev).
MAX_GRACE_ROUNDS: constant(uint256) = 16


@internal
@view
def latest_round(feed: address) -> (bool, uint256, int256, uint256, uint256, uint256):
    """
    @notice latestRoundData without reverting.
    @return (call ok, roundId, answer, startedAt, updatedAt, answeredInRound)
    """
    ok: bool = False
    data: Bytes[ROUND_DATA_SIZE] = b""
    ok, data = raw_call(
        feed,
        method_id("latestRoundData()"),
        max_outsize=ROUND_DATA_SIZE,
        is_static_call=True,
        revert_on_failure=False,
    )
    if not ok or len(data) < ROUND_DATA_SIZE:
        return False, 0, 0, 0, 0, 0
    # Decoded as uint256, not uint80: an out-of-range word must not revert
    # (views never revert); it only fails the completeness check.
    round_id: uint256 = 0
    answer: int256 = 0
    started_at: uint256 = 0
    updated_at: uint256 = 0
    answered_in: uint256 = 0
    round_id, answer, started_at, updated_at, answered_in = abi_decode(
        data, (uint256, int256, uint256, uint256, uint256)
    )
    return True, round_id, answer, started_at, updated_at, answered_in


@internal
@view
def unit_price(
    feed: address,
    min_answer: uint256,
    max_answer: uint256,
    max_staleness: uint256,
    exponent: uint256,
) -> (uint256, uint256):
    """
    @notice Validated unit price of an asset.
    @param feed AggregatorV3 address.
    @param min_answer Lowest accepted answer (feed decimals).
    @param max_answer Highest accepted answer (feed decimals).
    @param max_staleness Seconds a round may age (the heartbeat plus margin).
    @param exponent 36 - feed decimals - token decimals.
    @return (unit price, error code). The price is the normalised answer
            whenever the answer is positive, also when the round is rejected
            for bounds, completeness or staleness (views show it, flagged);
            it is 0 for ERR_CALL and ERR_NOT_POSITIVE.
    """
    # latestRoundData read in place (as `latest_round`): one internal call
    # less on every priced asset of every health check.
    ok: bool = False
    data: Bytes[ROUND_DATA_SIZE] = b""
    ok, data = raw_call(
        feed,
        method_id("latestRoundData()"),
        max_outsize=ROUND_DATA_SIZE,
        is_static_call=True,
        revert_on_failure=False,
    )
    if not ok or len(data) < ROUND_DATA_SIZE:
        return 0, ERR_CALL
    round_id: uint256 = 0
    answer: int256 = 0
    started_at: uint256 = 0
    updated_at: uint256 = 0
    answered_in: uint256 = 0
    round_id, answer, started_at, updated_at, answered_in = abi_decode(
        data, (uint256, int256, uint256, uint256, uint256)
    )
    if answer <= 0:
        return 0, ERR_NOT_POSITIVE
    raw: uint256 = convert(answer, uint256)
    # exponent <= 36; a positive int256 times 1e36 can still overflow, so the
    # raw answer is clamped to 2**128 first (any such answer fails the bounds).
    price: uint256 = min(raw, 2**128) * 10**exponent
    if raw < min_answer or raw > max_answer:
        return price, ERR_BOUNDS
    if updated_at == 0 or answered_in < round_id:
        return price, ERR_INCOMPLETE
    if block.timestamp > updated_at + max_staleness:
        return price, ERR_STALE
    return price, ERR_NONE


@internal
@view
def sequencer_status(feed: address, grace_period: uint256) -> (bool, bool):
    """
    @notice Whether an L2 sequencer is up and past its grace period.
    @param feed Chainlink sequencer-uptime feed, or empty for L1 (always up).
    @param grace_period Seconds after coming back up before risk-increasing
           actions reopen.
    @return (up and past its grace period, down).
    """
    if feed == empty(address):
        return True, False
    ok: bool = False
    round_id: uint256 = 0
    answer: int256 = 0
    started_at: uint256 = 0
    updated_at: uint256 = 0
    answered_in: uint256 = 0
    ok, round_id, answer, started_at, updated_at, answered_in = self.latest_round(feed)
    # A failing or "down" sequencer feed counts as down (fail closed).
    if not ok or answer != 0 or started_at == 0 or started_at > block.timestamp:
        return False, True
    return block.timestamp - started_at > grace_period, False


@internal
@view
def recently_stale(feed: address, max_staleness: uint256, grace_period: uint256) -> bool:
    """
    @notice True while the feed is inside the grace period that follows a
            stale stretch: some round published less than `grace_period`
            seconds ago came more than `max_staleness` seconds after the
            round before it. Liquidations then wait, so that users can cure
            first (Aave's PriceOracleSentinel rule, applied to price feeds).
    @dev Walks back from the latest round with getRoundData(roundId - 1)
         while the round it stands on is younger than `grace_period`, so
         that later rounds (Chainlink publishes on every deviation) do not
         end the grace early. Bounded at MAX_GRACE_ROUNDS previous rounds:
         a stale gap followed by more rounds than that inside the grace
         window no longer blocks (fail open: a feed busy enough to publish
         that many fresh prices is live again, and failing closed would
         halt liquidations for as long as a volatile market keeps the
         window full). The walk stops, not stale, at the first round of a
         phase (roundId & (2**64 - 1) <= 1: no previous round reachable
         through the proxy), at an id >= 2**80, and when getRoundData
         reverts or returns short data.
    """
    ok: bool = False
    round_id: uint256 = 0
    answer: int256 = 0
    started_at: uint256 = 0
    updated_at: uint256 = 0
    answered_in: uint256 = 0
    ok, round_id, answer, started_at, updated_at, answered_in = self.latest_round(feed)
    if not ok or round_id >= 2**80:
        return False
    data: Bytes[ROUND_DATA_SIZE] = b""
    previous_updated_at: uint256 = 0
    for i: uint256 in range(MAX_GRACE_ROUNDS):
        # Rounds published before the grace window cannot start a grace.
        if block.timestamp >= updated_at + grace_period or round_id & (2**64 - 1) <= 1:
            return False
        round_id -= 1
        ok, data = raw_call(
            feed,
            abi_encode(convert(round_id, uint80), method_id=method_id("getRoundData(uint80)")),
            max_outsize=ROUND_DATA_SIZE,
            is_static_call=True,
            revert_on_failure=False,
        )
        if not ok or len(data) < ROUND_DATA_SIZE:
            return False
        previous_updated_at = abi_decode(data, (uint256, int256, uint256, uint256, uint256))[3]
        if updated_at > previous_updated_at + max_staleness:
            return True
        updated_at = previous_updated_at
    return False
