"""MarginConfigurator validation, access control, pausing, events, asset
count limits and rate-model changes."""

import boa
import pytest

from tests.protocol import (
    MAX_UINT,
    PAUSE_BORROW,
    PAUSE_DEPOSIT,
    PAUSE_TRANSFER,
    PAUSE_WITHDRAW,
    WAD,
    YEAR,
    ZERO_ADDRESS,
    AssetSpec,
    Protocol,
    deployer,
    load_mock,
    per_second,
)

BP = 10**14
DAY = 86400
MAX_IMF = (2**24 - 1) * 10**12
MAX_RATE = 10 * WAD // YEAR  # 1000% APR per second
MASK96 = 2**96 - 1
NOT_OWNER = "ownable: caller is not the owner"
NOT_CONFIGURATOR = "config: caller is not configurator"

RISK = (8 * 10**17, 85 * 10**16, 12 * 10**17, 11 * 10**17, 3600, 0, 1, 2**64 - 1)
RATES = (0, per_second(4 * 10**16), per_second(75 * 10**16), 8 * 10**17, 10**17)
LIQUIDATION = (2 * 10**16, 10 * 10**16, 10 * 10**16, 10 * 10**16)  # min/max bonus, full-bonus depth, insurance share


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def listing(risk=RISK, rates=RATES, supply_cap=0, borrow_cap=0, collateral=True, borrowable=True):
    return (risk, rates, supply_cap, borrow_cap, collateral, borrowable, LIQUIDATION)


def with_risk(**changes):
    names = ["aw_i", "aw_m", "lw_i", "lw_m", "staleness", "imf", "lo", "hi"]
    values = dict(zip(names, RISK))
    values.update(changes)
    return tuple(values[n] for n in names)


def with_rates(**changes):
    names = ["base", "slope_low", "slope_high", "kink", "rf"]
    values = dict(zip(names, RATES))
    values.update(changes)
    return tuple(values[n] for n in names)


def events(contract, name):
    return [e for e in contract.get_logs() if type(e).__name__ == name]


def new_token(decimals=18, symbol="TKN"):
    return load_mock("MockERC20", symbol, symbol, decimals)


def new_feed(decimals=8, answer=10**8):
    return load_mock("MockAggregator", decimals, "TKN / USD", answer)


@pytest.fixture
def p():
    return Protocol.deploy()


@pytest.fixture
def stranger():
    return boa.env.generate_address("stranger")


def list_raw(p, params, token=None, feed=None):
    token = token or new_token()
    feed = feed or new_feed()
    with boa.env.prank(p.owner):
        return p.configurator.list_asset(token.address, feed.address, params)


# ---------------------------------------------------------------------------
# Risk bounds
# ---------------------------------------------------------------------------

W = "config: weights must be multiples of 1e14 (1 bp)"
AW = "config: need asset weight initial <= maintenance <= 1"
LW = "config: need liability weight 1 <= maintenance <= initial"
L5 = "config: liability weight above 5"
ST = "config: max staleness out of range"
IMF_R = "config: imf out of range"
AB = "config: answer bounds invalid"

BAD_RISK = [
    (with_risk(aw_i=8 * 10**17 + 1), W),
    (with_risk(aw_m=85 * 10**16 + 10**13), W),
    (with_risk(lw_i=12 * 10**17 + 1), W),
    (with_risk(lw_m=11 * 10**17 - 1), W),
    (with_risk(aw_i=8501 * BP), AW),  # initial above maintenance
    (with_risk(aw_m=10001 * BP), AW),  # maintenance above 1
    (with_risk(aw_i=WAD, aw_m=10001 * BP), AW),
    (with_risk(lw_m=9999 * BP), LW),  # maintenance below 1
    (with_risk(lw_m=12001 * BP), LW),  # maintenance above initial
    (with_risk(lw_i=50001 * BP), L5),
    (with_risk(lw_i=10 * WAD), L5),
    (with_risk(staleness=0), ST),
    (with_risk(staleness=7 * DAY + 1), ST),
    (with_risk(imf=10**12 + 1), IMF_R),
    (with_risk(imf=5 * 10**11), IMF_R),
    (with_risk(imf=MAX_IMF + 10**12), IMF_R),
    (with_risk(lo=0), AB),
    (with_risk(lo=100, hi=100), AB),
    (with_risk(lo=101, hi=100), AB),
    (with_risk(hi=2**64), AB),
]

GOOD_RISK = [
    with_risk(aw_i=0, aw_m=0),  # no collateral value at all
    with_risk(aw_i=WAD, aw_m=WAD),
    with_risk(aw_i=1 * BP, aw_m=1 * BP),
    with_risk(lw_i=WAD, lw_m=WAD),
    with_risk(lw_i=5 * WAD, lw_m=5 * WAD),
    with_risk(staleness=1),
    with_risk(staleness=7 * DAY),
    with_risk(imf=10**12),
    with_risk(imf=MAX_IMF),
    with_risk(lo=1, hi=2),
    with_risk(lo=2**64 - 2, hi=2**64 - 1),
]


@pytest.mark.parametrize("risk,reason", BAD_RISK)
def test_list_asset_rejects_risk(p, risk, reason):
    with boa.reverts(reason):
        list_raw(p, listing(risk=risk))
    assert p.engine.asset_count() == 0


@pytest.mark.parametrize("risk,reason", BAD_RISK)
def test_set_risk_params_rejects(p, risk, reason):
    asset = p.list_asset(AssetSpec("ETH", price=2000))
    with boa.env.prank(p.owner), boa.reverts(reason):
        p.configurator.set_risk_params(asset.address, risk)


@pytest.mark.parametrize("risk", GOOD_RISK)
def test_risk_bounds_accepted_and_round_trip(p, risk):
    token = new_token()
    asset_id = list_raw(p, listing(risk=risk), token=token)
    cfg = p.lens.asset_config(token.address)
    assert cfg.asset_id == asset_id
    assert tuple(cfg.risk) == risk
    # and through set_risk_params
    with boa.env.prank(p.owner):
        p.configurator.set_risk_params(token.address, risk)
    assert tuple(p.lens.asset_config(token.address).risk) == risk


# ---------------------------------------------------------------------------
# Rate and cap bounds
# ---------------------------------------------------------------------------

KINK = "config: kink must be in (0, 1)"
RATE = "config: borrow rate above 1000% APR"
RF = "config: reserve factor above 1"
CAP = "config: cap above 2**120 - 1"

BAD_RATES = [
    (with_rates(kink=0), KINK),
    (with_rates(kink=WAD), KINK),
    (with_rates(kink=2 * WAD), KINK),
    (with_rates(base=MAX_RATE + 1, slope_low=0, slope_high=0), RATE),
    (with_rates(base=MAX_RATE // 3, slope_low=MAX_RATE // 3, slope_high=MAX_RATE - 2 * (MAX_RATE // 3) + 1), RATE),
    (with_rates(rf=WAD + 1), RF),
]

GOOD_RATES = [
    with_rates(kink=1),
    with_rates(kink=WAD - 1),
    with_rates(base=MAX_RATE, slope_low=0, slope_high=0),
    with_rates(base=MAX_RATE // 3, slope_low=MAX_RATE // 3, slope_high=MAX_RATE - 2 * (MAX_RATE // 3)),
    with_rates(base=0, slope_low=0, slope_high=0),
    with_rates(rf=WAD),
    with_rates(rf=0),
]


@pytest.mark.parametrize("rates,reason", BAD_RATES)
def test_rates_rejected(p, rates, reason):
    with boa.reverts(reason):
        list_raw(p, listing(rates=rates))
    asset = p.list_asset(AssetSpec("ETH"))
    with boa.env.prank(p.owner), boa.reverts(reason):
        p.configurator.set_rate_model(asset.address, rates)


@pytest.mark.parametrize("rates", GOOD_RATES)
def test_rates_accepted_and_round_trip(p, rates):
    token = new_token()
    list_raw(p, listing(rates=rates), token=token)
    cfg = p.lens.asset_config(token.address)
    assert (cfg.base_rate, cfg.slope_low, cfg.slope_high, cfg.kink, cfg.reserve_factor) == rates


def test_max_rate_constant():
    assert MAX_RATE == 317_097_919_837  # 10e18 // 31_536_000


@pytest.mark.parametrize("supply_cap,borrow_cap", [(2**120, 0), (0, 2**120), (2**128, 2**128)])
def test_caps_rejected(p, supply_cap, borrow_cap):
    with boa.reverts(CAP):
        list_raw(p, listing(supply_cap=supply_cap, borrow_cap=borrow_cap))
    asset = p.list_asset(AssetSpec("ETH"))
    with boa.env.prank(p.owner), boa.reverts(CAP):
        p.configurator.set_caps(asset.address, supply_cap, borrow_cap)


def test_caps_at_max_accepted(p):
    token = new_token()
    list_raw(p, listing(supply_cap=2**120 - 1, borrow_cap=2**120 - 1), token=token)
    cfg = p.lens.asset_config(token.address)
    assert (cfg.supply_cap, cfg.borrow_cap) == (2**120 - 1, 2**120 - 1)
    with boa.env.prank(p.owner):
        p.configurator.set_caps(token.address, 0, 2**120 - 1)
    cfg = p.lens.asset_config(token.address)
    assert (cfg.supply_cap, cfg.borrow_cap) == (0, 2**120 - 1)


# ---------------------------------------------------------------------------
# Listing errors
# ---------------------------------------------------------------------------


def test_asset_already_listed(p):
    token = new_token()
    list_raw(p, listing(), token=token)
    with boa.reverts("config: asset already listed"):
        list_raw(p, listing(), token=token)
    assert p.engine.asset_count() == 1


def test_token_decimals_above_18(p):
    with boa.reverts("config: token decimals above 18"):
        list_raw(p, listing(), token=new_token(decimals=19))
    # 18 and 0 are fine
    list_raw(p, listing(), token=new_token(decimals=18))
    list_raw(p, listing(), token=new_token(decimals=0))


def test_feed_decimals_above_18(p):
    with boa.reverts("config: feed decimals above 18"):
        list_raw(p, listing(), feed=new_feed(decimals=19, answer=10**19))


def test_zero_addresses(p):
    with boa.env.prank(p.owner):
        with boa.reverts("config: zero address"):
            p.configurator.list_asset(ZERO_ADDRESS, new_feed().address, listing())
        with boa.reverts("config: zero address"):
            p.configurator.list_asset(new_token().address, ZERO_ADDRESS, listing())


def test_engine_already_set(p):
    with boa.env.prank(p.owner), boa.reverts("config: engine already set"):
        p.configurator.set_engine(p.engine.address)


def test_engine_not_set():
    owner = boa.env.generate_address("owner")
    with boa.env.prank(owner):
        configurator = deployer("MarginConfigurator.vy").deploy(DAY)
        with boa.reverts("config: engine not set"):
            configurator.list_asset(new_token().address, new_feed().address, listing())
        with boa.reverts("config: zero address"):
            configurator.set_engine(ZERO_ADDRESS)


def test_ramp_duration_bounds_at_deployment():
    with boa.reverts("config: ramp duration out of range"):
        deployer("MarginConfigurator.vy").deploy(3599)
    with boa.reverts("config: ramp duration out of range"):
        deployer("MarginConfigurator.vy").deploy(90 * DAY + 1)


def test_engine_rejects_zero_configurator():
    with boa.reverts("config: zero configurator"):
        deployer("MarginEngineExtension.vy").deploy(ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, 0)


# ---------------------------------------------------------------------------
# Access control
# ---------------------------------------------------------------------------


def test_owner_only_configurator_functions(p, stranger):
    asset = p.list_asset(AssetSpec("ETH"))
    a = asset.address
    calls = [
        lambda: p.configurator.set_engine(p.engine.address),
        lambda: p.configurator.list_asset(new_token().address, new_feed().address, listing()),
        lambda: p.configurator.set_risk_params(a, RISK),
        lambda: p.configurator.set_rate_model(a, RATES),
        lambda: p.configurator.set_caps(a, 1, 1),
        lambda: p.configurator.set_flags(a, False, False),
        lambda: p.configurator.pause(a, PAUSE_BORROW),
        lambda: p.configurator.unpause(a, PAUSE_BORROW),
        lambda: p.configurator.set_guardian(stranger),
        lambda: p.configurator.set_maintenance_ramp_duration(7200),
    ]
    for who in (stranger, p.guardian):
        for call in calls:
            with boa.env.prank(who), boa.reverts(NOT_OWNER):
                call()
    assert p.configurator.owner() == p.owner


def test_configurator_only_engine_functions(p, stranger):
    asset = p.list_asset(AssetSpec("ETH"))
    a = asset.address
    calls = [
        lambda: p.engine.add_asset(new_token().address, new_feed().address, 0, 0, 0, 0, 0),
        lambda: p.engine.set_info(a, 0),
        lambda: p.engine.set_risk(a, 0, 0),
        lambda: p.engine.set_rate_model(a, 0, 0),
        lambda: p.engine.set_guardian(stranger),
    ]
    for who in (stranger, p.owner, p.guardian):
        for call in calls:
            with boa.env.prank(who), boa.reverts(NOT_CONFIGURATOR):
                call()
    assert p.engine.CONFIGURATOR() == p.configurator.address


def test_ownership_transfer_is_two_step(p, stranger):
    with boa.env.prank(p.owner):
        p.configurator.transfer_ownership(stranger)
    assert p.configurator.owner() == p.owner
    assert p.configurator.pending_owner() == stranger
    with boa.env.prank(stranger):
        p.configurator.accept_ownership()
    assert p.configurator.owner() == stranger
    with boa.env.prank(p.owner), boa.reverts(NOT_OWNER):
        p.configurator.set_maintenance_ramp_duration(7200)


# ---------------------------------------------------------------------------
# Pausing
# ---------------------------------------------------------------------------


@pytest.fixture
def market(p):
    eth = p.list_asset(AssetSpec("ETH", price=2000))
    usdc = p.list_asset(AssetSpec("USDC", decimals=6, slope_low=0, slope_high=0))
    alice = boa.env.generate_address("alice")
    p.fund(alice, eth, 10 * 10**18)
    p.fund(alice, usdc, 10_000 * 10**6)
    with boa.env.prank(alice):
        p.engine.deposit(eth.address, 5 * 10**18)
        p.engine.deposit(usdc.address, 5_000 * 10**6)
        p.engine.borrow(usdc.address, 1_000 * 10**6)
    return eth, usdc, alice


def test_guardian_pause_each_action(p, market):
    eth, usdc, alice = market
    cases = [
        (PAUSE_DEPOSIT, lambda: p.engine.deposit(eth.address, 1), "pause: deposit paused"),
        (PAUSE_WITHDRAW, lambda: p.engine.withdraw(eth.address, 1), "pause: withdraw paused"),
        (PAUSE_BORROW, lambda: p.engine.borrow(eth.address, 1), "pause: borrow paused"),
        (PAUSE_TRANSFER, lambda: p.engine.transfer_collateral(eth.address, 1, 0, 1), "pause: transfer paused"),
    ]
    for flag, action, reason in cases:
        with boa.env.prank(p.guardian):
            p.engine.pause(eth.address, flag)
        (ev,) = events(p.engine, "PauseSet")
        assert (ev.asset, ev.paused) == (eth.address, flag)
        assert p.lens.asset_config(eth.address).paused == flag
        with boa.env.prank(alice), boa.reverts(reason):
            action()
        # the other asset is unaffected
        with boa.env.prank(alice):
            p.engine.deposit(usdc.address, 1)
        with boa.env.prank(p.owner):
            p.configurator.unpause(eth.address, flag)
        assert p.lens.asset_config(eth.address).paused == 0
        with boa.env.prank(alice):
            action()


def test_pause_everything_repay_still_works(p, market):
    eth, usdc, alice = market
    all_flags = PAUSE_DEPOSIT | PAUSE_WITHDRAW | PAUSE_BORROW | PAUSE_TRANSFER
    with boa.env.prank(p.guardian):
        p.engine.pause(usdc.address, all_flags)
    assert p.lens.asset_config(usdc.address).paused == 30
    with boa.env.prank(alice):
        assert p.engine.repay(usdc.address, 400 * 10**6) == 400 * 10**6
        assert p.engine.repay(usdc.address, MAX_UINT) == 600 * 10**6
    assert p.engine.position(alice, 0, usdc.address) == (5_000 * 10**6, 0)


def test_pause_accumulates_and_partial_unpause(p, market):
    eth, _, _ = market
    with boa.env.prank(p.guardian):
        p.engine.pause(eth.address, PAUSE_BORROW)
        p.engine.pause(eth.address, PAUSE_DEPOSIT | PAUSE_WITHDRAW)
    assert p.lens.asset_config(eth.address).paused == PAUSE_BORROW | PAUSE_DEPOSIT | PAUSE_WITHDRAW
    with boa.env.prank(p.owner):
        p.configurator.unpause(eth.address, PAUSE_DEPOSIT)
    (ev,) = events(p.configurator, "PauseSet")  # logged by the engine inside the configurator's call
    assert ev.paused == PAUSE_BORROW | PAUSE_WITHDRAW
    assert p.lens.asset_config(eth.address).paused == PAUSE_BORROW | PAUSE_WITHDRAW
    # unpausing what is not paused is a no-op
    with boa.env.prank(p.owner):
        p.configurator.unpause(eth.address, PAUSE_TRANSFER)
    assert p.lens.asset_config(eth.address).paused == PAUSE_BORROW | PAUSE_WITHDRAW
    # flags and caps survive a pause round trip
    cfg = p.lens.asset_config(eth.address)
    assert (cfg.borrowable, cfg.supply_cap, cfg.borrow_cap) == (True, 0, 0)


def test_pause_access(p, market, stranger):
    eth, _, _ = market
    for who in (stranger, p.owner):
        with boa.env.prank(who), boa.reverts("pause: caller is not guardian"):
            p.engine.pause(eth.address, PAUSE_BORROW)
    # the owner pauses through the configurator
    with boa.env.prank(p.owner):
        p.configurator.pause(eth.address, PAUSE_BORROW)
    assert p.lens.asset_config(eth.address).paused == PAUSE_BORROW
    # only the configurator (owner) unpauses: the guardian cannot
    with boa.env.prank(p.guardian):
        with boa.reverts(NOT_OWNER):
            p.configurator.unpause(eth.address, PAUSE_BORROW)
        with boa.reverts(NOT_CONFIGURATOR):
            p.engine.set_info(eth.address, 0)
    assert p.lens.asset_config(eth.address).paused == PAUSE_BORROW


@pytest.mark.parametrize("actions", [0, 1, 32, 64, 1 | PAUSE_BORROW, 2**255])
def test_pause_invalid_actions(p, market, actions):
    eth, _, _ = market
    with boa.env.prank(p.guardian), boa.reverts("pause: invalid actions"):
        p.engine.pause(eth.address, actions)
    with boa.env.prank(p.owner):
        with boa.reverts("pause: invalid actions"):
            p.configurator.unpause(eth.address, actions)
        with boa.reverts("pause: invalid actions"):
            p.configurator.pause(eth.address, actions)


def test_pause_unlisted_asset(p):
    with boa.env.prank(p.guardian), boa.reverts("asset: not listed"):
        p.engine.pause(new_token().address, PAUSE_BORROW)


def test_set_guardian(p, market, stranger):
    eth, _, _ = market
    with boa.env.prank(p.owner):
        p.configurator.set_guardian(stranger)
    (ev,) = events(p.configurator, "GuardianSet")
    assert ev.guardian == stranger
    assert p.engine.guardian() == stranger
    with boa.env.prank(p.guardian), boa.reverts("pause: caller is not guardian"):
        p.engine.pause(eth.address, PAUSE_BORROW)
    with boa.env.prank(stranger):
        p.engine.pause(eth.address, PAUSE_BORROW)
    assert p.lens.asset_config(eth.address).paused == PAUSE_BORROW


# ---------------------------------------------------------------------------
# Many assets
# ---------------------------------------------------------------------------


def test_twenty_assets_mixed_decimals_in_one_account(p):
    alice = boa.env.generate_address("alice")
    assets = []
    for i in range(20):
        dec = (6, 8, 18)[i % 3]
        feed_dec = (8, 18)[i % 2]
        price = i % 9 + 1  # $1 .. $9 (an 18-decimal feed cannot exceed max_answer 2**64 - 1, ~$18.4)
        a = p.list_asset(AssetSpec(f"T{i}", decimals=dec, feed_decimals=feed_dec, price=price))
        assert a.id == i
        assets.append(a)
    assert p.engine.asset_count() == 20
    expected_init = expected_maint = 0
    for i, a in enumerate(assets):
        amount = (i + 1) * 10 ** a.spec.decimals + 7  # i + 1 tokens and 7 units
        p.fund(alice, a, amount)
        with boa.env.prank(alice):
            p.engine.deposit(a.address, amount)
        unit_price = (i % 9 + 1) * 10**a.spec.feed_decimals * 10 ** (36 - a.spec.feed_decimals - a.spec.decimals)
        value = amount * unit_price // WAD
        expected_init += value * 8 // 10
        expected_maint += value * 85 // 100
    assert p.engine.account_header(alice, 0)[0] == 2**20 - 1
    assert p.engine.health(alice) == (expected_init, expected_maint, True)
    # sum of (i + 1) tokens * $(i % 9 + 1) for i < 20 = $1034, plus 7 units of each
    assert sum((i + 1) * (i % 9 + 1) for i in range(20)) == 1034
    assert 827 * WAD < expected_init < 828 * WAD  # 1034 * 0.8 = 827.2
    # borrow the 20th asset (id 19, $2) against all of them
    lender = boa.env.generate_address("lender")
    unit = 10 ** assets[19].spec.decimals  # 8 decimals
    assert unit == 10**8
    p.fund(lender, assets[19], 1_000 * unit)
    with boa.env.prank(lender):
        p.engine.deposit(assets[19].address, 1_000 * unit)
    with boa.env.prank(alice):
        p.engine.borrow(assets[19].address, 300 * unit)  # $600, initial 720 (no interest in this block)
    assert p.engine.health(alice) == (expected_init - 720 * WAD, expected_maint - 660 * WAD, True)
    assert len(p.lens.balances(alice)) == 20


def test_too_many_assets(p):
    alice = boa.env.generate_address("alice")
    for i in range(64):
        p.list_asset(AssetSpec(f"T{i}", decimals=(6, 8, 18)[i % 3]))
    assert p.engine.asset_count() == 64
    with boa.reverts("config: too many assets"):
        p.list_asset(AssetSpec("T64"))
    assert p.engine.asset_count() == 64
    # the last id (63) works in health: bit 63 of the deposit bitmap
    last = p.assets["T63"]
    first = p.assets["T0"]
    for a in (first, last):
        p.fund(alice, a, 10 ** a.spec.decimals)
        with boa.env.prank(alice):
            p.engine.deposit(a.address, 10 ** a.spec.decimals)
    assert p.engine.account_header(alice, 0)[0] == 1 | 1 << 63
    assert p.engine.health(alice) == (16 * 10**17, 17 * 10**17, True)


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------


def test_list_asset_events(p):
    token = new_token(decimals=6)
    feed = new_feed(decimals=18, answer=10**18)
    risk = (7000 * BP, 7500 * BP, 13000 * BP, 12000 * BP, 7200, 3 * 10**15, 5 * 10**10, 10**19)
    rates = (per_second(10**16), per_second(5 * 10**16), per_second(10**18), 9 * 10**17, 2 * 10**17)
    params = listing(risk=risk, rates=rates, supply_cap=10**12, borrow_cap=5 * 10**11, collateral=False, borrowable=True)
    with boa.env.prank(p.owner):
        asset_id = p.configurator.list_asset(token.address, feed.address, params)
    logs = p.configurator.get_logs()
    names = [type(e).__name__ for e in logs]
    wanted = ["AssetListed", "AssetConfigured", "RiskParamsSet", "RateModelSet", "CapsSet", "FlagsSet"]
    assert [n for n in names if n in wanted] == wanted  # each once, in this order
    listed, configured, risk_ev, rates_ev, caps_ev, flags_ev = (e for e in logs if type(e).__name__ in wanted)
    assert (listed.asset, listed.asset_id, listed.feed) == (token.address, asset_id, feed.address)
    assert (configured.asset, configured.asset_id, configured.feed, configured.token_decimals, configured.feed_decimals) == (
        token.address,
        0,
        feed.address,
        6,
        18,
    )
    assert (
        risk_ev.asset,
        risk_ev.asset_weight_initial,
        risk_ev.asset_weight_maintenance,
        risk_ev.liability_weight_initial,
        risk_ev.liability_weight_maintenance,
        risk_ev.max_staleness,
        risk_ev.imf,
        risk_ev.min_answer,
        risk_ev.max_answer,
        risk_ev.ramp_end,
    ) == (token.address, *risk, 0)
    assert (rates_ev.asset, rates_ev.base_rate, rates_ev.slope_low, rates_ev.slope_high, rates_ev.kink, rates_ev.reserve_factor) == (
        token.address,
        *rates,
    )
    assert (caps_ev.asset, caps_ev.supply_cap, caps_ev.borrow_cap) == (token.address, 10**12, 5 * 10**11)
    assert (flags_ev.asset, flags_ev.collateral, flags_ev.borrowable) == (token.address, False, True)


def test_setter_events(p):
    asset = p.list_asset(AssetSpec("ETH"))
    a = asset.address
    risk = (6000 * BP, 9000 * BP, 20000 * BP, 15000 * BP, 100, 10**12, 2, 3 * 10**10)
    with boa.env.prank(p.owner):
        p.configurator.set_risk_params(a, risk)
    (ev,) = events(p.configurator, "RiskParamsSet")
    t = boa.env.evm.patch.timestamp
    assert (
        ev.asset,
        ev.asset_weight_initial,
        ev.asset_weight_maintenance,
        ev.liability_weight_initial,
        ev.liability_weight_maintenance,
        ev.max_staleness,
        ev.imf,
        ev.min_answer,
        ev.max_answer,
        ev.ramp_end,
    ) == (a, *risk, t + DAY)  # lw_maint 1.1 -> 1.5 ramps

    rates = (1, 2, 3, 5 * 10**17, 0)
    with boa.env.prank(p.owner):
        p.configurator.set_rate_model(a, rates)
    (ev,) = events(p.configurator, "RateModelSet")
    assert (ev.asset, ev.base_rate, ev.slope_low, ev.slope_high, ev.kink, ev.reserve_factor) == (a, *rates)

    with boa.env.prank(p.owner):
        p.configurator.set_caps(a, 123, 45)
    (ev,) = events(p.configurator, "CapsSet")
    assert (ev.asset, ev.supply_cap, ev.borrow_cap) == (a, 123, 45)

    with boa.env.prank(p.owner):
        p.configurator.set_flags(a, False, False)
    (ev,) = events(p.configurator, "FlagsSet")
    assert (ev.asset, ev.collateral, ev.borrowable) == (a, False, False)

    cfg = p.lens.asset_config(a)
    assert tuple(cfg.risk) == risk
    assert (cfg.base_rate, cfg.slope_low, cfg.slope_high, cfg.kink, cfg.reserve_factor) == rates
    assert (cfg.supply_cap, cfg.borrow_cap, cfg.collateral, cfg.borrowable) == (123, 45, False, False)


def test_flags_take_effect(p, market):
    eth, usdc, alice = market
    with boa.env.prank(p.owner):
        p.configurator.set_flags(usdc.address, True, False)
    with boa.env.prank(alice), boa.reverts("borrow: asset not borrowable"):
        p.engine.borrow(usdc.address, 1)
    # collateral off: ETH's initial weight counts 0, maintenance weight still counts
    with boa.env.prank(p.owner):
        p.configurator.set_flags(eth.address, False, True)
    # USDC 5000 at 0.8 / 0.85; ETH 5 * 2000 at 0 / 0.85; debt 1000 at 1.2 / 1.1
    assert p.engine.health(alice) == (4_000 * WAD - 1_200 * WAD, 4_250 * WAD + 8_500 * WAD - 1_100 * WAD, True)


def test_set_risk_params_keeps_collateral_flag(p, market):
    eth, usdc, alice = market
    with boa.env.prank(p.owner):
        p.configurator.set_flags(eth.address, False, True)
        p.configurator.set_risk_params(eth.address, (7 * 10**17, 9 * 10**17, 12 * 10**17, 11 * 10**17, 3600, 0, 1, 2**64 - 1))
    cfg = p.lens.asset_config(eth.address)
    assert (cfg.collateral, cfg.risk.asset_weight_initial, cfg.asset_weight_maintenance_now) == (False, 7 * 10**17, 9 * 10**17)
    # ETH still counts 0 initially, 0.9 for maintenance
    assert p.engine.health(alice) == (4_000 * WAD - 1_200 * WAD, 4_250 * WAD + 9_000 * WAD - 1_100 * WAD, True)


# ---------------------------------------------------------------------------
# Rate model changes accrue at the old rate first
# ---------------------------------------------------------------------------


def accrue_ref(rates, di, bi, ds, bs, dt):
    base, slope_low, slope_high, kink, rf = rates
    if bs == 0 or dt == 0:
        return di, bi
    td = ds * di // WAD
    tb = ceil_div(bs * bi, WAD)
    u = 0 if tb == 0 else (WAD if tb >= td else tb * WAD // td)
    if u <= kink:
        r = base + slope_low * u // kink
    else:
        r = base + slope_low + slope_high * (u - kink) // (WAD - kink)
    nbi = bi + ceil_div(bi * r * dt, WAD)
    interest = ceil_div(bs * nbi, WAD) - tb
    ndi = di + (interest * (WAD - rf) // WAD) * WAD // ds
    return ndi, nbi


def test_set_rate_model_accrues_at_old_rate_first(p):
    old = (per_second(2 * 10**16), per_second(4 * 10**16), per_second(75 * 10**16), 8 * 10**17, 10**17)
    new = (per_second(10**17), per_second(2 * 10**17), per_second(10**18), 9 * 10**17, 3 * 10**17)
    usdc = p.list_asset(
        AssetSpec(
            "USDC",
            decimals=6,
            base_rate=old[0],
            slope_low=old[1],
            slope_high=old[2],
            kink=old[3],
            reserve_factor=old[4],
            max_staleness=7 * DAY,
        )
    )
    eth = p.list_asset(AssetSpec("ETH", price=2000, max_staleness=7 * DAY))
    lender, alice = boa.env.generate_address("lender"), boa.env.generate_address("alice")
    p.fund(lender, usdc, 10_000 * 10**6)
    p.fund(alice, eth, 10 * 10**18)
    with boa.env.prank(lender):
        p.engine.deposit(usdc.address, 10_000 * 10**6)
    with boa.env.prank(alice):
        p.engine.deposit(eth.address, 10 * 10**18)
        p.engine.borrow(usdc.address, 8_500 * 10**6)  # u = 0.85 > kink 0.8
    ds, bs = 10_000 * 10**6, 8_500 * 10**6

    dt1 = 10 * DAY
    boa.env.time_travel(seconds=dt1)
    di1, bi1 = accrue_ref(old, WAD, WAD, ds, bs, dt1)
    with boa.env.anchor():  # what accrue() would store now
        p.engine.accrue(usdc.address)
        s = p.engine.asset_state(usdc.id)
        accrued = (s.market_a & MASK96, s.market_b & MASK96)
    assert accrued == (di1, bi1)
    assert bi1 > WAD and di1 > WAD

    with boa.env.prank(p.owner):
        p.configurator.set_rate_model(usdc.address, new)
    s = p.engine.asset_state(usdc.id)
    assert (s.market_a & MASK96, s.market_b & MASK96) == (di1, bi1)
    assert (s.market_b >> 96) & (2**40 - 1) == boa.env.evm.patch.timestamp
    assert (s.market_b >> 136) == new[4]

    dt2 = 5 * DAY
    boa.env.time_travel(seconds=dt2)
    di2, bi2 = accrue_ref(new, di1, bi1, ds, bs, dt2)
    m = p.lens.market(usdc.address)
    assert (m.deposit_index, m.borrow_index) == (di2, bi2)
    # the old model over the same 5 days would give a lower borrow index
    assert accrue_ref(old, di1, bi1, ds, bs, dt2)[1] < bi2
    p.engine.accrue(usdc.address)
    s = p.engine.asset_state(usdc.id)
    assert (s.market_a & MASK96, s.market_b & MASK96) == (di2, bi2)
