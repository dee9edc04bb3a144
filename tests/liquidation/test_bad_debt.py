"""Bad-debt settlement (MarginEngineExtension.settle_bad_debt through the
engine): forfeited collateral dust goes to the insurance fund, each debt is
covered by its asset's insurance fund first and the rest is socialised by
cutting the deposit index (rounded up); events carry the amounts; the
account ends empty and every asset's books still balance.

Expected values are written out (simple cases) and come from
tests/liquidation/model.py (State.settle_bad_debt), whose storage words are
compared with the chain's after every settlement.
"""

import boa
import pytest

from tests.liquidation.helpers import (
    MAX_UINT,
    WAD,
    assert_identity,
    assert_matches_chain,
    checked_liquidation,
    deploy_env,
    load_state,
    mdd,
    mdu,
    open_account,
    set_prices,
)

EVENT_NAMES = ("CollateralForfeited", "InsuranceFundUsed", "LossSocialised", "BadDebtSettled")


def checked_settle(env, owner, sub=0, others=()):
    """Settles and compares the events and every storage word with the model."""
    state = load_state(env, [(owner, sub), *others])
    expected = state.settle_bad_debt(str(owner), sub)
    env.engine.settle_bad_debt(owner, sub)
    got = [e for e in env.engine.get_logs() if type(e).__name__ in EVENT_NAMES]
    assert [type(e).__name__ for e in got] == [e.name for e in expected]
    for ev, exp in zip(got, expected):
        assert str(ev.asset) == exp.asset
        for key, value in exp.values.items():
            if key != "cut":
                assert getattr(ev, key) == value, (exp.name, key)
        if exp.name in ("CollateralForfeited", "BadDebtSettled"):
            assert (str(ev.owner), ev.sub_id) == (str(owner), sub)
    assert_matches_chain(env, state, [(owner, sub), *others])
    assert_account_empty(env, owner, sub)
    assert_identity(env)
    return {e.name: e for e in expected}, got


def assert_account_empty(env, owner, sub=0):
    deposit_bits, debt_bits, _ = env.engine.account_header(owner, sub)
    assert (deposit_bits, debt_bits) == (0, 0)
    for a in env.p.assets.values():
        assert env.engine.position(owner, sub, a.address) == (0, 0)
    assert env.engine.health(owner, sub)[:2] == (0, 0)


def insolvent_after_liquidation(env):
    """10 WETH / 13,000 USDC, WETH to $1,000: insolvent; the liquidation
    takes all 10 WETH at the 10% bonus for 10,000 / 1.1 = 9,090.909091 USDC,
    leaving 3,909.090909 USDC of debt and no collateral."""
    alice = open_account(env, "alice", {"WETH": 10}, {"USDC": 13_000})
    set_prices(env, WETH=1000)
    expected, _, _ = checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")
    assert (expected.bonus, expected.seized, expected.repaid) == (10**17, 10 * WAD, 9_090_909_091)
    assert env.engine.position(alice, 0, env.usdc.address) == (0, 3_909_090_909)
    assert env.engine.account_header(alice, 0)[:2] == (0, 1 << env.usdc.id)
    return alice


def donate(env, sym, units):
    """Tokens sent to the engine directly: they are insurance fund."""
    env.p[sym].token.mint(env.engine.address, units)


def usdc_balance(env, who):
    (b,) = [b for b in env.lens.balances(who) if b.asset == env.usdc.address]
    return b


def usdc_totals(env):
    m = env.lens.market(env.usdc.address)
    return m.total_deposits, m.deposit_index, m.deposit_shares, m.insurance_fund


def test_insurance_fund_covers_the_whole_debt():
    env = deploy_env()
    alice = insolvent_after_liquidation(env)
    donate(env, "USDC", 5_000 * 10**6)
    deposits, di, shares, fund = usdc_totals(env)
    assert fund == 5_000 * 10**6
    exp, got = checked_settle(env, alice, others=[env.lender])
    debt = 3_909_090_909
    assert exp["InsuranceFundUsed"].values == {"amount": debt}
    assert "LossSocialised" not in exp
    assert exp["BadDebtSettled"].values == {"debt": debt, "shares": debt, "borrow_index": WAD}
    # Depositors lose nothing; the fund pays.
    assert usdc_totals(env) == (deposits, di, shares, fund - debt)


@pytest.mark.parametrize("donation", [0, 1_000 * 10**6])
def test_fund_first_then_socialised_to_depositors(donation):
    env = deploy_env()
    alice = insolvent_after_liquidation(env)
    if donation:
        donate(env, "USDC", donation)
    deposits, di, shares, fund = usdc_totals(env)
    assert (di, fund) == (WAD, donation)
    lender_before = usdc_balance(env, env.lender)
    exp, got = checked_settle(env, alice, others=[env.lender])
    debt = 3_909_090_909
    loss = debt - donation
    # Written out: the cut rounds up, so depositors bear at least the loss.
    cut = -(-loss * WAD // shares)
    assert cut * shares >= loss * WAD > (cut - 1) * shares
    if donation:
        assert exp["InsuranceFundUsed"].values == {"amount": donation}
    else:
        assert "InsuranceFundUsed" not in exp  # an empty fund is not "used"
    assert exp["LossSocialised"].values["amount"] == loss
    assert exp["LossSocialised"].values["deposit_index"] == WAD - cut
    ev = next(e for e in got if type(e).__name__ == "LossSocialised")
    assert (ev.amount, ev.deposit_index) == (loss, WAD - cut)
    assert exp["BadDebtSettled"].values["debt"] == debt

    deposits_after, di_after, shares_after, fund_after = usdc_totals(env)
    assert (di_after, shares_after) == (WAD - cut, shares)
    drop = deposits - deposits_after
    assert drop == shares * WAD // WAD - shares * (WAD - cut) // WAD
    assert loss <= drop <= loss + 1  # USDC: total shares < 1e18, so within one unit
    # The fund is drawn to zero, never below (the rounding stays in it).
    assert fund_after == drop - loss >= 0
    # The lender (the only other USDC depositor) bears it.
    lender_after = usdc_balance(env, env.lender)
    assert lender_after.deposit_shares == lender_before.deposit_shares
    assert lender_after.deposit == mdd(lender_before.deposit_shares, WAD - cut, WAD)


def test_socialised_loss_of_an_18_decimal_asset_rounds_by_at_most_shares_over_1e18():
    """WETH debt written off against 1,000 WETH of deposits (1e21 shares):
    one wei of index cut is 1,000 wei of deposits, so the drop exceeds the
    loss by less than shares / 1e18 + 1 wei."""
    env = deploy_env()
    bob = open_account(env, "bob", {"USDC": 20_000}, {"WETH": 6.5})
    set_prices(env, WETH=3500)  # debt 22,750 > 20,000: insolvent
    checked_liquidation(env, bob, "WETH", MAX_UINT, "USDC")
    assert env.engine.account_header(bob, 0)[:2] == (0, 1 << env.weth.id)
    m = env.lens.market(env.weth.address)
    shares, deposits = m.deposit_shares, m.total_deposits
    assert shares > WAD
    exp, _ = checked_settle(env, bob, others=[env.lender])
    loss = exp["LossSocialised"].values["amount"]
    cut = mdu(loss, WAD, shares)
    assert exp["LossSocialised"].values["deposit_index"] == WAD - cut
    drop = deposits - env.lens.market(env.weth.address).total_deposits
    assert loss <= drop < loss + shares // WAD + 1


def test_collateral_dust_goes_to_the_insurance_fund():
    """0.004 WETH ($8 -> $4 after the fall) against 5 USDC: maintenance
    3.4 < 5.5 and the collateral is below the $10 dust threshold: it is
    forfeited to the WETH insurance fund, the USDC debt is written off."""
    env = deploy_env()
    carol = open_account(env, "carol", {"WETH": 0.004}, {"USDC": 5})
    set_prices(env, WETH=1000)
    assert env.engine.health(carol)[1] == 34 * 10**17 - 55 * 10**17
    weth_fund = env.lens.market(env.weth.address).insurance_fund
    weth_deposits = env.lens.market(env.weth.address).total_deposits
    exp, _ = checked_settle(env, carol, others=[env.lender])
    assert exp["CollateralForfeited"].values == {"amount": 4 * 10**15, "shares": 4 * 10**15, "deposit_index": WAD}
    assert exp["BadDebtSettled"].values["debt"] == 5 * 10**6
    m = env.lens.market(env.weth.address)
    assert m.insurance_fund == weth_fund + 4 * 10**15
    assert m.total_deposits == weth_deposits - 4 * 10**15
    # The USDC fund was empty: the 5 USDC were socialised.
    assert exp["LossSocialised"].values["amount"] == 5 * 10**6


def test_multiple_assets_each_settled_against_its_own_fund():
    """Dust collateral in two assets, debt in two assets: both deposits
    forfeited, the WBTC debt covered by the WBTC fund, the USDC debt
    socialised (empty USDC fund); events in asset-id order."""
    env = deploy_env()
    dave = open_account(env, "dave", {"WETH": 0.002, "USDC": 4}, {"USDC": 2, "WBTC": 0.00005})
    set_prices(env, WETH=1000, WBTC=100_000)
    assert env.engine.health(dave)[1] < 0
    donate(env, "WBTC", 10**6)  # 0.01 WBTC of fund
    exp, got = checked_settle(env, dave, others=[env.lender])
    names = [(type(e).__name__, str(e.asset)) for e in got]
    weth, wbtc, usdc = str(env.weth.address), str(env.wbtc.address), str(env.usdc.address)
    assert names == [
        ("CollateralForfeited", weth),
        ("InsuranceFundUsed", wbtc),
        ("BadDebtSettled", wbtc),
        ("CollateralForfeited", usdc),
        ("InsuranceFundUsed", usdc),
        ("BadDebtSettled", usdc),
    ]
    # USDC: the forfeited 4 USDC joined the fund first and cover the 2 USDC debt.
    used = [e for e in got if type(e).__name__ == "InsuranceFundUsed"]
    assert [e.amount for e in used] == [5_000, 2 * 10**6]


def test_settle_reverts():
    env = deploy_env()
    alice = open_account(env, "alice", {"WETH": 10}, {"USDC": 13_000})
    with boa.reverts("settle: no debt"):
        env.engine.settle_bad_debt(env.lender, 0)
    with boa.reverts("settle: no debt"):
        env.engine.settle_bad_debt(boa.env.generate_address("nobody"), 0)
    with boa.reverts("settle: account is healthy"):
        env.engine.settle_bad_debt(alice, 0)
    set_prices(env, WETH=1000)
    # Insolvent but with $10,000 of collateral: liquidate first.
    with boa.reverts("settle: collateral above dust"):
        env.engine.settle_bad_debt(alice, 0)
    with boa.env.prank(env.p.guardian):
        env.engine.pause_liquidations(600)
    with boa.reverts("liquidation: paused"):
        env.engine.settle_bad_debt(alice, 0)
    boa.env.time_travel(seconds=601)
    env.p.refresh_prices()
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")
    # Collateral must be priced: a stale feed blocks the settlement.
    boa.env.time_travel(seconds=3601)
    with boa.reverts("oracle: stale price"):
        env.engine.settle_bad_debt(alice, 0)
    env.p.refresh_prices()
    checked_settle(env, alice, others=[env.lender])
    # Settled once: nothing left.
    with boa.reverts("settle: no debt"):
        env.engine.settle_bad_debt(alice, 0)


@pytest.mark.parametrize("usdc,settles", [(10, False), (9.999999, True)])
def test_collateral_at_the_dust_threshold_is_not_dust(usdc, settles):
    """$10 of USDC collateral (the threshold) against 0.0033 WETH of debt,
    unhealthy after WETH rises to $2,600: not dust. One unit less: dust."""
    env = deploy_env()
    erin = open_account(env, "erin", {"USDC": usdc}, {"WETH": 0.0033})
    set_prices(env, WETH=2600)  # 8.58 * 1.1 > 0.85 * 10
    assert env.engine.health(erin)[1] < 0
    if settles:
        exp, _ = checked_settle(env, erin, others=[env.lender])
        assert exp["CollateralForfeited"].values["amount"] == 9_999_999
    else:
        with boa.reverts("settle: collateral above dust"):
            env.engine.settle_bad_debt(erin, 0)


def test_healthy_small_account_cannot_be_settled():
    """$8 of collateral against $1 of debt is healthy: nobody may take it."""
    env = deploy_env()
    frank = open_account(env, "frank", {"WETH": 0.004}, {"USDC": 1})
    assert env.engine.health(frank)[1] > 0
    with boa.reverts("settle: account is healthy"):
        env.engine.settle_bad_debt(frank, 0)


def test_zero_dust_threshold_still_settles_an_account_without_collateral():
    env = deploy_env(dust_threshold=0)
    alice = insolvent_after_liquidation(env)
    exp, _ = checked_settle(env, alice, others=[env.lender])
    assert exp["BadDebtSettled"].values["debt"] == 3_909_090_909


def test_settlement_with_interest_and_insurance_from_reserves():
    """With interest on, the reserve factor fills the USDC insurance fund
    over a year; the write-off then draws that fund (amounts from the model)."""
    env = deploy_env(rates=True)
    open_account(env, "borrower", {"WETH": 500}, {"USDC": 500_000})
    alice = open_account(env, "alice", {"WETH": 10}, {"USDC": 13_000})
    boa.env.time_travel(seconds=365 * 86400)
    env.p.refresh_prices()
    set_prices(env, WETH=1000)
    fund = env.lens.market(env.usdc.address).insurance_fund
    assert fund > 0
    checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")
    exp, _ = checked_settle(env, alice, others=[env.lender])
    debt = exp["BadDebtSettled"].values["debt"]
    assert exp["InsuranceFundUsed"].values["amount"] == min(fund, debt)
    assert debt > 3_909_090_909  # interest accrued on the rest


# BUG: a liquidation that "takes all" of a deposit leaves the deposit's
# unaccrued interest behind. plan_for values the seizable deposit at the
# STORED deposit index (MarginEngine._plan: positions * market_a index),
# while the seize side first accrues the market and then burns
# mul_div_up(seize, WAD, new index) shares - fewer than the position. Here,
# after 30 days of WETH interest (others borrow 70% of the WETH), the
# insolvent account keeps 0.01773 WETH shares (~$17.77 > the $10 dust), its
# WETH bit stays set, and settle_bad_debt refuses ("settle: collateral above
# dust") until someone liquidates a $17 position - which no keeper does when
# gas exceeds the ~$1.7 bonus, so the bad debt is never written off.
# Expected: the deposit runs out => every deposit share is seized.
def test_taking_the_whole_deposit_takes_its_accrued_interest_too():
    env = deploy_env(rates=True)
    open_account(env, "other", {"USDC": 4_000_000}, {"WETH": 700})
    alice = open_account(env, "alice", {"WETH": 10}, {"USDC": 13_000})
    boa.env.time_travel(seconds=30 * 86400)
    env.p.refresh_prices()
    set_prices(env, WETH=1000)
    expected, before, _ = checked_liquidation(env, alice, "USDC", MAX_UINT, "WETH")
    assert expected.seized == before.deposit_amount(str(alice), 0, env.weth.id)  # "all" at the stored index
    assert env.engine.position(alice, 0, env.weth.address)[0] == 0
    checked_settle(env, alice, others=[env.lender])
