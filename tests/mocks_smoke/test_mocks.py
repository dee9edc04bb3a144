"""Smoke tests for the mock contracts in contracts/mocks/ (titanoboa)."""

from pathlib import Path

import boa
import pytest
from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector as selector

ROOT = Path(__file__).resolve().parents[2]
MOCKS = ROOT / "contracts" / "mocks"

MAX_UINT256 = 2**256 - 1
PHASE_BASE = 1 << 64  # phase 1 of an EACAggregatorProxy
ZERO = "0x0000000000000000000000000000000000000000"


def load(name, *args):
    return boa.load(str(MOCKS / f"{name}.vy"), *args)


@pytest.fixture(autouse=True)
def fresh_env():
    # A fresh Env per test: boa's pytest isolation rolls state back, so
    # contract addresses get reused across tests, while its sstore/sha3
    # debug traces are not rolled back; on a revert boa then fails to render
    # a reused address's HashMap storage (AttributeError: 'IntegerT' object
    # has no attribute 'key_type'). A fresh Env avoids that.
    with boa.swap_env(boa.Env()):
        yield


@pytest.fixture
def alice():
    return boa.env.generate_address("alice")


@pytest.fixture
def bob():
    return boa.env.generate_address("bob")


def events(contract, name):
    return [e for e in contract.get_logs() if type(e).__name__ == name]


# --------------------------------------------------------------------------
# MockERC20
# --------------------------------------------------------------------------


def test_erc20_metadata_mint_transfer(alice, bob):
    t = load("MockERC20", "Wrapped Ether", "WETH", 18)
    assert t.name() == "Wrapped Ether"
    assert t.symbol() == "WETH"
    assert t.decimals() == 18
    assert load("MockERC20", "USD Coin", "USDC", 6).decimals() == 6

    t.mint(alice, 1_000)
    assert t.totalSupply() == 1_000
    assert t.balanceOf(alice) == 1_000

    with boa.env.prank(alice):
        assert t.transfer(bob, 300) is True
    (ev,) = events(t, "Transfer")
    assert (ev.sender, ev.receiver, ev.value) == (alice, bob, 300)
    assert t.balanceOf(alice) == 700
    assert t.balanceOf(bob) == 300

    # self-transfer keeps the balance
    with boa.env.prank(bob):
        t.transfer(bob, 300)
    assert t.balanceOf(bob) == 300

    with boa.env.prank(alice), boa.reverts("ERC20: insufficient balance"):
        t.transfer(bob, 701)


def test_erc20_allowance_semantics(alice, bob):
    t = load("MockERC20", "Token", "TKN", 18)
    t.mint(alice, 1_000)

    with boa.env.prank(alice):
        assert t.approve(bob, 400) is True
    (ev,) = events(t, "Approval")
    assert (ev.owner, ev.spender, ev.value) == (alice, bob, 400)

    with boa.env.prank(bob):
        assert t.transferFrom(alice, bob, 150) is True
        # solmate: no Approval event on transferFrom
        assert events(t, "Approval") == []
    assert t.allowance(alice, bob) == 250
    assert t.balanceOf(bob) == 150

    with boa.env.prank(bob), boa.reverts("ERC20: insufficient allowance"):
        t.transferFrom(alice, bob, 251)

    # infinite allowance is never decremented
    with boa.env.prank(alice):
        t.approve(bob, MAX_UINT256)
    with boa.env.prank(bob):
        t.transferFrom(alice, bob, 500)
    assert t.allowance(alice, bob) == MAX_UINT256
    assert t.balanceOf(alice) == 350

    # allowance is fine, balance is not
    with boa.env.prank(bob), boa.reverts("ERC20: insufficient balance"):
        t.transferFrom(alice, bob, 351)


def test_erc20_burn_only_by_holder(alice, bob):
    t = load("MockERC20", "Token", "TKN", 18)
    t.mint(alice, 1_000)
    with boa.env.prank(bob), boa.reverts("ERC20: caller is not token owner"):
        t.burn(alice, 1)
    with boa.env.prank(alice):
        t.burn(alice, 400)
    (ev,) = events(t, "Transfer")
    assert (ev.sender, ev.receiver, ev.value) == (alice, ZERO, 400)
    assert t.balanceOf(alice) == 600
    assert t.totalSupply() == 600
    with boa.env.prank(alice), boa.reverts("ERC20: burn amount exceeds balance"):
        t.burn(alice, 601)


def test_erc20_total_supply_overflow_reverts(alice):
    t = load("MockERC20", "Token", "TKN", 18)
    t.mint(alice, MAX_UINT256)
    with boa.reverts():
        t.mint(alice, 1)


# --------------------------------------------------------------------------
# MockUSDT
# --------------------------------------------------------------------------

CALLER_SRC = """
# pragma version 0.4.3
from ethereum.ercs import IERC20

@external
def raw_transfer(token: address, to: address, amount: uint256) -> uint256:
    ok: bool = False
    ret: Bytes[64] = b""
    ok, ret = raw_call(
        token,
        abi_encode(to, amount, method_id=method_id("transfer(address,uint256)")),
        max_outsize=64,
        revert_on_failure=False,
    )
    assert ok, "call failed"
    return len(ret)

@external
def strict_transfer(token: address, to: address, amount: uint256):
    assert extcall IERC20(token).transfer(to, amount)

@external
def safe_transfer(token: address, to: address, amount: uint256):
    assert extcall IERC20(token).transfer(to, amount, default_return_value=True)
"""


def test_usdt_no_return_values(alice):
    usdt = load("MockUSDT", "Tether USD", "USDT", 6)
    assert usdt.decimals() == 6
    assert usdt.name() == "Tether USD"
    assert load("MockUSDT", "Tether USD", "USDT", 18).decimals() == 18

    abi = {f["name"]: f for f in usdt.abi if f.get("type") == "function"}
    for fn in ("transfer", "transferFrom", "approve"):
        assert abi[fn]["outputs"] == []

    caller = boa.loads(CALLER_SRC)
    usdt.mint(caller, 1_000)
    # returndatasize == 0
    assert caller.raw_transfer(usdt, alice, 100) == 0
    assert usdt.balanceOf(alice) == 100
    # a bool-expecting caller reverts, a "safe" caller works
    with boa.reverts():
        caller.strict_transfer(usdt, alice, 100)
    caller.safe_transfer(usdt, alice, 100)
    assert usdt.balanceOf(alice) == 200
    assert usdt.balanceOf(caller) == 800


def test_usdt_approve_rule_and_transfer_from(alice, bob):
    usdt = load("MockUSDT", "Tether USD", "USDT", 6)
    usdt.mint(alice, 1_000_000)  # 1 USDT

    with boa.env.prank(alice):
        assert usdt.approve(bob, 500_000) is None
        with boa.reverts("USDT: reset allowance to 0 first"):
            usdt.approve(bob, 600_000)
        usdt.approve(bob, 0)
        assert usdt.allowance(alice, bob) == 0
        usdt.approve(bob, 600_000)
        assert usdt.allowance(alice, bob) == 600_000

    with boa.env.prank(bob):
        assert usdt.transferFrom(alice, bob, 200_000) is None
    assert usdt.allowance(alice, bob) == 400_000
    assert usdt.balanceOf(bob) == 200_000
    assert usdt.balanceOf(alice) == 800_000

    with boa.env.prank(bob), boa.reverts("USDT: insufficient allowance"):
        usdt.transferFrom(alice, bob, 400_001)

    with boa.env.prank(alice):
        usdt.approve(bob, 0)
        usdt.approve(bob, MAX_UINT256)
    with boa.env.prank(bob):
        usdt.transferFrom(alice, bob, 800_000)
    assert usdt.allowance(alice, bob) == MAX_UINT256
    with boa.env.prank(alice), boa.reverts("USDT: insufficient balance"):
        usdt.transfer(bob, 1)


# --------------------------------------------------------------------------
# MockFeeOnTransferToken
# --------------------------------------------------------------------------


def test_fee_on_transfer(alice, bob):
    fot = load("MockFeeOnTransferToken", "Fee Token", "FEE", 18, 100)  # 1 %
    assert fot.fee_bps() == 100
    assert fot.decimals() == 18
    fot.mint(alice, 10_000)
    assert fot.balanceOf(alice) == 10_000  # mint charges no fee

    with boa.env.prank(alice):
        assert fot.transfer(bob, 1_000) is True
    burn_ev, transfer_ev = events(fot, "Transfer")
    assert (burn_ev.sender, burn_ev.receiver, burn_ev.value) == (alice, ZERO, 10)
    assert (transfer_ev.sender, transfer_ev.receiver, transfer_ev.value) == (alice, bob, 990)
    assert fot.balanceOf(alice) == 9_000
    assert fot.balanceOf(bob) == 990
    assert fot.totalSupply() == 9_990

    # transferFrom spends the full amount of allowance, receiver gets net
    with boa.env.prank(alice):
        fot.approve(bob, 5_000)
    with boa.env.prank(bob):
        fot.transferFrom(alice, bob, 5_000)
    assert fot.allowance(alice, bob) == 0
    assert fot.balanceOf(alice) == 4_000
    assert fot.balanceOf(bob) == 990 + 4_950
    assert fot.totalSupply() == 9_990 - 50

    # fee rounds down: 99 * 1% = 0
    assert fot.fee_for(99) == 0
    with boa.env.prank(alice):
        fot.transfer(bob, 99)
    assert fot.balanceOf(bob) == 990 + 4_950 + 99

    with boa.env.prank(alice), boa.reverts("FoT: insufficient balance"):
        fot.transfer(bob, 4_000 - 99 + 1)

    with boa.reverts("FoT: fee exceeds 100%"):
        load("MockFeeOnTransferToken", "Fee Token", "FEE", 18, 10_001)


# --------------------------------------------------------------------------
# MockHookToken
# --------------------------------------------------------------------------

VICTIM_SRC = """
# pragma version 0.4.3
from ethereum.ercs import IERC20

token: public(IERC20)
deposits: public(HashMap[address, uint256])
pings: public(uint256)

@deploy
def __init__(token: IERC20):
    self.token = token

@external
@nonreentrant
def deposit(amount: uint256):
    extcall self.token.transferFrom(msg.sender, self, amount)
    self.deposits[msg.sender] += amount

@external
@nonreentrant
def withdraw():
    amount: uint256 = self.deposits[msg.sender]
    self.deposits[msg.sender] = 0
    extcall self.token.transfer(msg.sender, amount)

@external
def ping() -> uint256:
    self.pings += 1
    return 42
"""


def test_hook_token_blocked_reentry(alice):
    tok = load("MockHookToken", "Hook Token", "HOOK")
    assert tok.decimals() == 18
    victim = boa.loads(VICTIM_SRC, tok)
    tok.mint(alice, 1_000)
    with boa.env.prank(alice):
        tok.approve(victim, MAX_UINT256)

    # re-enter the victim's guarded withdraw() from inside deposit()
    tok.set_hook(victim, selector("withdraw()"))
    assert tok.hook_target() == victim.address
    assert tok.hook_data() == selector("withdraw()")
    with boa.env.prank(alice):
        victim.deposit(100)
    # the top-level call was to the victim; its logs include the token's
    (ev,) = events(victim, "HookExecuted")
    assert (ev.target, ev.success) == (victim.address, False)
    assert tok.hook_calls() == 1
    assert tok.last_hook_success() is False
    # Vyper's @nonreentrant lock reverts without a reason string
    assert tok.last_hook_return() == b""
    # the outer transfer still happened
    assert tok.balanceOf(victim) == 100
    assert victim.deposits(alice) == 100


def test_hook_token_successful_hook_and_return_data(alice, bob):
    tok = load("MockHookToken", "Hook Token", "HOOK")
    victim = boa.loads(VICTIM_SRC, tok)
    tok.mint(alice, 1_000)

    tok.set_hook(victim, selector("ping()"))
    with boa.env.prank(alice):
        tok.transfer(bob, 10)
    assert tok.last_hook_success() is True
    assert abi_decode(["uint256"], tok.last_hook_return()) == (42,)
    assert victim.pings() == 1
    assert tok.balanceOf(bob) == 10

    tok.clear_hook()
    assert tok.hook_target() == ZERO
    with boa.env.prank(alice):
        tok.transfer(bob, 10)
    assert victim.pings() == 1
    assert tok.hook_calls() == 1


def test_hook_token_fires_once_per_transfer(alice, bob):
    tok = load("MockHookToken", "Hook Token", "HOOK")
    tok.mint(tok.address, 50)
    tok.mint(alice, 1_000)
    # the hook makes the token transfer its own tokens -> nested transfer;
    # the nested transfer must not fire the hook again
    call = selector("transfer(address,uint256)") + bytes(12) + bytes.fromhex(bob[2:]) + (7).to_bytes(32, "big")
    tok.set_hook(tok, call)
    with boa.env.prank(alice):
        tok.transfer(bob, 1)
    assert len(events(tok, "HookExecuted")) == 1
    assert tok.hook_calls() == 1
    assert tok.last_hook_success() is True
    assert abi_decode(["bool"], tok.last_hook_return()) == (True,)
    assert tok.balanceOf(bob) == 8
    assert tok.balanceOf(tok) == 43

    # a failing hook does not block the outer transfer and records the reason
    tok.set_hook(tok, selector("transfer(address,uint256)") + bytes(12) + bytes.fromhex(bob[2:]) + (10**6).to_bytes(32, "big"))
    with boa.env.prank(alice):
        tok.transfer(bob, 1)
    assert tok.last_hook_success() is False
    ret = tok.last_hook_return()
    assert ret[:4] == selector("Error(string)")
    assert abi_decode(["string"], ret[4:]) == ("ERC20: insufficient balance",)
    assert tok.balanceOf(bob) == 9


# --------------------------------------------------------------------------
# MockAggregator
# --------------------------------------------------------------------------


def test_aggregator_initial_round():
    now = boa.env.timestamp
    agg = load("MockAggregator", 8, "ETH / USD", 2_000 * 10**8)
    assert agg.decimals() == 8
    assert agg.description() == "ETH / USD"
    assert agg.version() == 4
    rid = PHASE_BASE | 1
    assert agg.latestRoundData() == (rid, 2_000 * 10**8, now, now, rid)
    assert agg.latestRound() == rid
    assert agg.latestAnswer() == 2_000 * 10**8
    assert agg.latestTimestamp() == now
    assert agg.getRoundData(rid) == (rid, 2_000 * 10**8, now, now, rid)


def test_aggregator_set_answer_rounds_and_events():
    agg = load("MockAggregator", 8, "ETH / USD", 2_000 * 10**8)
    t0 = boa.env.timestamp
    boa.env.time_travel(seconds=3_600)
    t1 = boa.env.timestamp
    assert t1 == t0 + 3_600

    agg.set_answer(1_900 * 10**8)
    new_round, answer_updated = agg.get_logs()
    rid2 = PHASE_BASE | 2
    assert type(new_round).__name__ == "NewRound"
    assert (new_round.roundId, new_round.startedBy, new_round.startedAt) == (rid2, boa.env.eoa, t1)
    assert type(answer_updated).__name__ == "AnswerUpdated"
    assert (answer_updated.current, answer_updated.roundId, answer_updated.updatedAt) == (1_900 * 10**8, rid2, t1)

    assert agg.latestRoundData() == (rid2, 1_900 * 10**8, t1, t1, rid2)
    assert agg.latestRound() == rid2
    # historical round is still readable
    assert agg.getRoundData(PHASE_BASE | 1) == (PHASE_BASE | 1, 2_000 * 10**8, t0, t0, PHASE_BASE | 1)

    # negative answers round-trip through the packed word
    agg.set_answer(-123_456_789)
    assert agg.latestAnswer() == -123_456_789
    agg.set_answer(2**127 - 1)
    assert agg.latestAnswer() == 2**127 - 1
    agg.set_answer(-(2**127))
    assert agg.latestAnswer() == -(2**127)
    with boa.reverts("MockAggregator: answer out of int128 range"):
        agg.set_answer(2**127)
    with boa.reverts("MockAggregator: answer out of int128 range"):
        agg.set_answer(-(2**127) - 1)
    assert agg.latestRound() == PHASE_BASE | 5


def test_aggregator_unknown_round_reverts():
    agg = load("MockAggregator", 8, "BTC / USD", 60_000 * 10**8)
    for bad in (0, 1, 2, PHASE_BASE, PHASE_BASE | 2, (2 << 64) | 1):
        with boa.reverts("No data present"):
            agg.getRoundData(bad)
    agg.set_answer(1)
    assert agg.getRoundData(PHASE_BASE | 2)[1] == 1


def test_aggregator_incomplete_and_stale_rounds():
    agg = load("MockAggregator", 18, "stETH / ETH", 10**18)
    boa.env.time_travel(seconds=100_000)
    now = boa.env.timestamp

    # incomplete round: updatedAt == 0
    agg.set_round(99 * 10**16, now - 10, 0)
    new_round, answer_updated = agg.get_logs()
    assert new_round.startedAt == now - 10
    assert answer_updated.updatedAt == 0
    rid = PHASE_BASE | 2
    assert agg.latestRoundData() == (rid, 99 * 10**16, now - 10, 0, rid)
    assert agg.latestTimestamp() == 0

    # stale round: updated a day ago
    agg.set_round(98 * 10**16, now - 86_400, now - 86_400)
    _, answer, started, updated, _ = agg.latestRoundData()
    assert (answer, started, updated) == (98 * 10**16, now - 86_400, now - 86_400)
    assert now - updated == 86_400

    with boa.reverts("MockAggregator: updatedAt exceeds uint64"):
        agg.set_round(1, now, 2**64)
    with boa.reverts("MockAggregator: startedAt exceeds uint64"):
        agg.set_round(1, 2**64, now)


# --------------------------------------------------------------------------
# MockSequencerFeed
# --------------------------------------------------------------------------


def test_sequencer_feed_status_and_started_at():
    t0 = boa.env.timestamp
    feed = load("MockSequencerFeed", False)
    assert feed.decimals() == 0
    assert feed.version() == 1
    assert feed.description() == "L2 Sequencer Uptime Status Feed"
    r1 = PHASE_BASE | 1
    assert feed.latestRoundData() == (r1, 0, t0, t0, r1)

    # heartbeat with unchanged status: no new round, startedAt kept,
    # updatedAt refreshed
    boa.env.time_travel(seconds=600)
    t1 = boa.env.timestamp
    feed.set_status(False)
    (ev,) = feed.get_logs()
    assert type(ev).__name__ == "RoundUpdated"
    assert (ev.status, ev.updatedAt) == (0, t1)
    assert feed.latestRoundData() == (r1, 0, t0, t1, r1)
    assert feed.latestTimestamp() == t0  # real feed: latestTimestamp == startedAt

    # sequencer goes down -> new round
    boa.env.time_travel(seconds=60)
    t2 = boa.env.timestamp
    feed.set_status(True)
    new_round, answer_updated = feed.get_logs()
    r2 = PHASE_BASE | 2
    assert feed.latestRoundData() == (r2, 1, t2, t2, r2)
    assert feed.latestAnswer() == 1
    assert (new_round.roundId, new_round.startedAt) == (r2, t2)
    assert (answer_updated.current, answer_updated.roundId, answer_updated.updatedAt) == (1, r2, t2)

    # back up -> new round; then a heartbeat keeps startedAt
    boa.env.time_travel(seconds=60)
    t3 = boa.env.timestamp
    feed.set_status(False)
    boa.env.time_travel(seconds=3_600)
    t4 = boa.env.timestamp
    feed.set_status(False)
    r3 = PHASE_BASE | 3
    assert feed.latestRoundData() == (r3, 0, t3, t4, r3)
    assert feed.latestRound() == r3

    # history
    assert feed.getRoundData(r1) == (r1, 0, t0, t1, r1)
    assert feed.getRoundData(r2) == (r2, 1, t2, t2, r2)
    with boa.reverts("No data present"):
        feed.getRoundData(PHASE_BASE | 4)
    with boa.reverts("No data present"):
        feed.getRoundData(PHASE_BASE)


def test_sequencer_feed_set_status_at():
    feed = load("MockSequencerFeed", True)
    assert feed.latestAnswer() == 1
    now = boa.env.timestamp
    # force a new round even though the status is the same as before
    feed.set_status_at(True, now - 500)
    r2 = PHASE_BASE | 2
    assert feed.latestRoundData() == (r2, 1, now - 500, now, r2)
    # sequencer came up 30 minutes ago
    feed.set_status_at(False, now - 1_800)
    r3 = PHASE_BASE | 3
    assert feed.latestRoundData() == (r3, 0, now - 1_800, now, r3)
    assert feed.latestTimestamp() == now - 1_800
    with boa.reverts("MockSequencerFeed: startedAt exceeds uint64"):
        feed.set_status_at(False, 2**64)
