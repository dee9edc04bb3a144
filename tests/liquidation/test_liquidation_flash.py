"""Flash liquidation through the on_liquidation callback, re-entrancy
through the callback and through a hook token, and self-liquidation.

tests/liquidation/contracts/FlashLiquidator.vy receives the seized
collateral, sells it on MockDex (which mints the repay token at a set
rate) and approves the engine, holding no repay tokens beforehand.
"""

from fractions import Fraction

import boa
import pytest
from eth_abi import encode
from eth_utils import keccak

from tests.liquidation.helpers import (
    HERE,
    MAX_UINT,
    WAD,
    assert_identity,
    assert_matches_chain,
    checked_liquidation,
    deploy_env,
    liquidate,
    load_state,
    one_event,
    open_account,
    set_prices,
)

MODE_PAY, MODE_NO_PAY, MODE_SHORT, MODE_REENTER, MODE_REVERT = range(5)


def calldata(signature: str, types: list, args: list) -> bytes:
    return keccak(text=signature)[:4] + encode(types, args)


def liquidate_calldata(owner, repay, seize):
    return calldata(
        "liquidate(address,uint8,address,uint256,address,uint256)",
        ["address", "uint8", "address", "uint256", "address", "uint256"],
        [str(owner), 0, str(repay), MAX_UINT, str(seize), 0],
    )


def deposit_calldata(asset, amount, owner):
    return calldata(
        "deposit(address,uint256,uint8,address)", ["address", "uint256", "uint8", "address"], [str(asset), amount, 0, str(owner)]
    )


def health_calldata(owner):
    return calldata("health(address,uint8)", ["address", "uint8"], [str(owner), 0])


def health_ratio_calldata(owner):
    return calldata("health_ratio(address,uint8)", ["address", "uint8"], [str(owner), 0])


@pytest.fixture
def env():
    """Alice (10 WETH / 13,000 USDC) and Bob (10 WETH / 12,000 USDC), both
    liquidatable and solvent at WETH $1,400 (maintenance 11,900 < 14,300 /
    13,200)."""
    e = deploy_env()
    e.alice = open_account(e, "alice", {"WETH": 10}, {"USDC": 13_000})
    e.bob = open_account(e, "bob", {"WETH": 10}, {"USDC": 12_000})
    set_prices(e, WETH=1400)
    e.dex = boa.load_partial(str(HERE / "contracts" / "MockDex.vy")).deploy()
    e.dex.set_rate(e.weth.address, e.usdc.address, 1400 * 10**6)  # 1 WETH -> 1,400 USDC
    e.flash = boa.load_partial(str(HERE / "contracts" / "FlashLiquidator.vy")).deploy(e.engine.address, e.dex.address)
    return e


def snapshot(env, accounts):
    state = load_state(env, accounts)
    tokens = {
        sym: (a.token.balanceOf(env.flash.address), a.token.balanceOf(env.engine.address))
        for sym, a in env.p.assets.items()
    }
    return state, tokens


def test_flash_liquidation_pays_from_the_seized_collateral(env):
    assert env.usdc.token.balanceOf(env.flash.address) == 0
    assert env.weth.token.balanceOf(env.flash.address) == 0
    state = load_state(env, [env.alice])
    expected = state.liquidate(str(env.alice), 0, env.usdc.id, env.weth.id, MAX_UINT)
    data = b"route: WETH->USDC"
    out = env.flash.run(env.alice, 0, env.usdc.address, MAX_UINT, env.weth.address, 0, data)
    ev = one_event(env.flash, "Liquidation")  # logged by the engine inside run()
    assert tuple(out) == (expected.repaid, expected.to_liquidator)
    # The callback saw the plan, and the seized WETH had already arrived.
    assert env.flash.calls() == 1
    assert (env.flash.seen_owner(), env.flash.seen_sub_id()) == (env.alice, 0)
    assert (env.flash.seen_repay_asset(), env.flash.seen_seize_asset()) == (env.usdc.address, env.weth.address)
    assert (env.flash.seen_repay_amount(), env.flash.seen_seized()) == (expected.repaid, expected.to_liquidator)
    assert env.flash.seen_data() == data
    assert env.flash.seen_seize_balance() == expected.to_liquidator
    assert env.flash.seen_repay_balance() == 0
    # It sold all the WETH and keeps the rest of the USDC as profit.
    swapped = expected.to_liquidator * 1400 * 10**6 // WAD
    assert env.flash.swapped_out() == swapped
    assert env.usdc.token.balanceOf(env.flash.address) == swapped - expected.repaid > 0
    assert env.weth.token.balanceOf(env.flash.address) == 0
    assert (ev.liquidator, ev.repaid, ev.seized, ev.to_insurance) == (
        env.flash.address,
        expected.repaid,
        expected.seized,
        expected.to_insurance,
    )
    assert_matches_chain(env, state, [env.alice])
    assert_identity(env)


@pytest.mark.parametrize(
    "mode,reason",
    [
        (MODE_NO_PAY, "ERC20: insufficient allowance"),
        (MODE_SHORT, "ERC20: insufficient allowance"),
        (MODE_REVERT, "flash: callback refuses"),
    ],
    ids=["no-pay", "one-unit-short", "callback-reverts"],
)
def test_a_callback_that_does_not_pay_reverts_everything(env, mode, reason):
    env.flash.set_mode(mode, b"")
    before = snapshot(env, [env.alice])
    with boa.reverts(reason):
        env.flash.run(env.alice, 0, env.usdc.address, MAX_UINT, env.weth.address, 0, b"\x01")
    after = snapshot(env, [env.alice])
    assert after[1] == before[1]  # no token moved
    assert_matches_chain(env, before[0], [env.alice])  # no storage word changed
    assert env.flash.calls() == 0  # its own writes rolled back too
    # A paying callback then works on the same account.
    env.flash.set_mode(MODE_PAY, b"")
    env.flash.run(env.alice, 0, env.usdc.address, MAX_UINT, env.weth.address, 0, b"\x01")
    assert env.flash.calls() == 1


def test_without_data_there_is_no_callback(env):
    """Empty data: no callback; the flash contract has no USDC, so the pull fails."""
    with boa.reverts("ERC20: insufficient allowance"):
        env.flash.run(env.alice, 0, env.usdc.address, MAX_UINT, env.weth.address, 0, b"")
    # An EOA asking for a callback cannot answer it: reverts.
    env.p.fund(env.liquidator, env.usdc, 10**12)
    with boa.env.prank(env.liquidator):
        with boa.reverts():
            env.engine.liquidate(env.alice, 0, env.usdc.address, MAX_UINT, env.weth.address, 0, env.liquidator, b"\x01")


def test_seized_tokens_go_to_the_receiver(env):
    keeper_vault = boa.env.generate_address("vault")
    expected, _, _ = checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH", receiver=keeper_vault)
    assert env.weth.token.balanceOf(keeper_vault) == expected.to_liquidator
    assert env.weth.token.balanceOf(env.liquidator) == 0


@pytest.mark.parametrize("target", ["liquidate", "deposit", "engine-view"])
def test_the_callback_cannot_reenter_the_engine(env, target):
    if target == "liquidate":
        data = liquidate_calldata(env.bob, env.usdc.address, env.weth.address)
    elif target == "deposit":
        data = deposit_calldata(env.weth.address, 1, env.flash.address)
    else:
        data = health_calldata(env.alice)
    env.flash.set_mode(MODE_REENTER, data)
    state = load_state(env, [env.alice, env.bob])
    expected = state.liquidate(str(env.alice), 0, env.usdc.id, env.weth.id, MAX_UINT)
    out = env.flash.run(env.alice, 0, env.usdc.address, MAX_UINT, env.weth.address, 0, b"\x01")
    assert not env.flash.reenter_ok()
    assert env.flash.reenter_return() == b""  # the non-reentrancy lock: no reason
    assert tuple(out) == (expected.repaid, expected.to_liquidator)
    assert_matches_chain(env, state, [env.alice, env.bob])  # bob untouched
    # Outside a liquidation the same view works.
    assert env.engine.health(env.alice)[2]


# ---------------------------------------------------------------------------
# Hook token (ERC-777-style tokensToSend hook) re-entering during a liquidation
# ---------------------------------------------------------------------------


def hook_env(hook_as: str):
    """HOOK (18 decimals, $100) as alice's collateral or as her debt; bob
    is a second liquidatable account the hook may try to liquidate."""
    env = deploy_env(symbols=("WETH", "USDC", "HOOK"), overrides={"HOOK": dict(token_kind="hook", price=100.0)},
                     liquidity={"WETH": 1_000, "USDC": 5_000_000, "HOOK": 100_000})
    if hook_as == "collateral":
        env.alice = open_account(env, "alice", {"HOOK": 100}, {"USDC": 6_500})
        set_prices(env, HOOK=75)  # 6,375 < 7,150
        env.pair = ("USDC", "HOOK")
    else:
        env.alice = open_account(env, "alice", {"WETH": 10}, {"HOOK": 130})
        set_prices(env, HOOK=130)  # 17,000 < 18,590
        env.pair = ("HOOK", "WETH")
    env.bob = open_account(env, "bob", {"WETH": 10}, {"USDC": 13_000})
    set_prices(env, WETH=1300) if hook_as == "collateral" else None
    return env


@pytest.mark.parametrize("target", ["liquidate", "deposit", "engine-view", "lens-view"])
@pytest.mark.parametrize("hook_as", ["collateral", "debt"])
def test_hook_token_cannot_reenter_during_a_liquidation(hook_as, target):
    env = hook_env(hook_as)
    token = env.p["HOOK"].token
    repay_sym, seize_sym = env.pair
    if target == "liquidate":
        other_pair = ("USDC", "WETH") if hook_as == "collateral" else ("HOOK", "WETH")
        hook_target = env.engine.address
        data = liquidate_calldata(env.bob if hook_as == "collateral" else env.alice,
                                  env.p[other_pair[0]].address, env.p[other_pair[1]].address)
    elif target == "deposit":
        hook_target, data = env.engine.address, deposit_calldata(token.address, 10**18, token.address)
    elif target == "engine-view":
        hook_target, data = env.engine.address, health_calldata(env.alice)
    else:
        hook_target, data = env.lens.address, health_ratio_calldata(env.alice)
    # Outside a liquidation the views answer (from the token's address too).
    assert env.engine.health(env.alice)[1] < 0
    token.set_hook(hook_target, data)
    calls_before = token.hook_calls()
    expected, _, _ = checked_liquidation(env, env.alice, repay_sym, MAX_UINT, seize_sym)
    # The hook ran once, inside the liquidation's HOOK transfer, and was refused.
    assert token.hook_calls() == calls_before + 1
    assert token.last_hook_success() is False
    assert token.last_hook_return() == b""
    # The outer liquidation is exactly the model's (checked above) and the books balance.
    assert expected.repaid > 0
    assert_identity(env)
    token.clear_hook()


# ---------------------------------------------------------------------------
# Self-liquidation
# ---------------------------------------------------------------------------


def account_value(state, owner) -> Fraction:
    """Unweighted net value of the account (USD, exact)."""
    total = Fraction(0)
    for id, (d, b) in state.positions.get((str(owner), 0), {}).items():
        m = state.markets[id]
        total += Fraction(d * m.di, WAD) * Fraction(m.price, WAD)
        total -= Fraction(b * m.borrow_index_now(state.now), WAD) * Fraction(m.price, WAD)
    return total


def wallet_value(env, state, who) -> Fraction:
    return sum(
        (Fraction(a.token.balanceOf(who) * state.markets[a.id].price, WAD) for a in env.p.assets.values()), Fraction(0)
    )


def test_the_owner_cannot_liquidate_itself(env):
    env.p.fund(env.alice, env.usdc, 10**12)
    with boa.reverts("liquidation: self-liquidation"):
        liquidate(env, env.alice, env.alice, "USDC", MAX_UINT, "WETH", fund=False)


@pytest.mark.parametrize("who", ["operator", "second-address"])
def test_self_liquidation_through_another_address_is_unprofitable(env, who):
    """An operator of alice, or a second address she controls, may
    liquidate her: together they gain nothing. The bonus the liquidator
    earns comes out of alice's own collateral, and the insurance share of it
    is lost: the combined net worth changes by exactly -to_insurance."""
    helper = boa.env.generate_address(who)
    if who == "operator":
        with boa.env.prank(env.alice):
            env.engine.set_operator(helper, True)
    env.p.fund(helper, env.usdc, 20_000 * 10**6)
    before = load_state(env, [env.alice])
    wallet_before = wallet_value(env, before, helper)
    worth_before = account_value(before, env.alice) + wallet_before
    expected, _, after = checked_liquidation(env, env.alice, "USDC", MAX_UINT, "WETH", liquidator=helper, fund=False)
    worth_after = account_value(after, env.alice) + wallet_value(env, after, helper)
    change = worth_after - worth_before
    p_weth = Fraction(after.markets[env.weth.id].price, WAD)
    assert change == -expected.to_insurance * p_weth
    assert change <= 0 and expected.to_insurance > 0
    # The helper's gain is exactly alice's loss beyond the insurance share.
    helper_gain = wallet_value(env, after, helper) - wallet_before
    alice_loss = account_value(before, env.alice) - account_value(after, env.alice)
    assert helper_gain > 0 and alice_loss == helper_gain + expected.to_insurance * p_weth
