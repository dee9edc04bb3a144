"""MarginConfigurator.set_liquidation_params (the bonus of an asset when it
is seized) and the engine's set_liquidation it drives: owner only, every
bound with its exact reason, the event and the stored word (read back
through the lens), and the new bonus is the one liquidations then pay."""

import boa
import pytest

from tests.liquidation.helpers import deploy_env, lens_preview, liquidate, one_event, open_account, set_prices
from tests.protocol import MAX_UINT, WAD, AssetSpec, Protocol

NOT_OWNER = "ownable: caller is not the owner"
NOT_CONFIGURATOR = "config: caller is not configurator"
BP = 10**14
DEFAULT = (2 * 10**16, 10 * 10**16, 10 * 10**16, 10 * 10**16)  # AssetSpec defaults


@pytest.fixture
def p():
    return Protocol.deploy()


@pytest.fixture
def eth(p):
    return p.list_asset(AssetSpec("ETH", price=2000))


def set_params(p, asset, params, caller=None):
    with boa.env.prank(caller or p.owner):
        p.configurator.set_liquidation_params(asset.address, params)


@pytest.mark.parametrize(
    "params,reason",
    [
        ((2 * 10**16 + 1, 10 * 10**16, WAD // 10, 0), "config: liquidation parameters must be multiples of 1e14 (1 bp)"),
        ((0, 10 * 10**16 + 1, WAD // 10, 0), "config: liquidation parameters must be multiples of 1e14 (1 bp)"),
        ((0, 10 * 10**16, WAD // 10 + 1, 0), "config: liquidation parameters must be multiples of 1e14 (1 bp)"),
        ((0, 10 * 10**16, WAD // 10, 1), "config: liquidation parameters must be multiples of 1e14 (1 bp)"),
        ((5 * 10**16, 4 * 10**16, WAD // 10, 0), "config: need bonus min <= max <= 50%"),
        ((0, WAD // 2 + BP, WAD // 10, 0), "config: need bonus min <= max <= 50%"),
        ((0, 10 * 10**16, 0, 0), "config: full bonus depth must be in (0, 1]"),
        ((0, 10 * 10**16, WAD + BP, 0), "config: full bonus depth must be in (0, 1]"),
        ((0, 10 * 10**16, WAD // 10, WAD + BP), "config: insurance share above 1"),
    ],
)
def test_set_liquidation_params_rejects_out_of_bounds_values(p, eth, params, reason):
    with boa.reverts(reason):
        set_params(p, eth, params)
    assert tuple(p.lens.asset_config(eth.address).liquidation) == DEFAULT


def test_set_liquidation_params_at_the_bounds_is_stored_and_logged(p, eth):
    params = (WAD // 2, WAD // 2, WAD, WAD)  # every bound at its limit
    word_before = p.engine.asset_state(eth.id).liquidation
    set_params(p, eth, params)
    ev = one_event(p.configurator, "LiquidationParamsSet")
    assert ev.asset == eth.address
    assert (ev.min_bonus, ev.max_bonus, ev.full_bonus_depth, ev.insurance_share) == params
    assert tuple(p.lens.asset_config(eth.address).liquidation) == params
    assert p.engine.asset_state(eth.id).liquidation != word_before
    # Zero bonuses are accepted too (min = max = 0, no insurance share).
    set_params(p, eth, (0, 0, BP, 0))
    assert tuple(p.lens.asset_config(eth.address).liquidation) == (0, 0, BP, 0)


def test_set_liquidation_params_is_owner_only_and_the_engine_setter_configurator_only(p, eth):
    stranger = boa.env.generate_address("stranger")
    with boa.reverts(NOT_OWNER):
        set_params(p, eth, DEFAULT, caller=stranger)
    for who in (stranger, p.owner, p.guardian):
        with boa.env.prank(who), boa.reverts(NOT_CONFIGURATOR):
            p.engine.set_liquidation(eth.address, 0)
    assert tuple(p.lens.asset_config(eth.address).liquidation) == DEFAULT


def test_set_liquidation_params_of_an_unlisted_asset_reverts(p, eth):
    unlisted = boa.env.generate_address("unlisted")
    with boa.env.prank(p.owner), boa.reverts("asset: not listed"):
        p.configurator.set_liquidation_params(unlisted, DEFAULT)


def test_liquidations_pay_the_bonus_set_by_the_owner():
    """Alice (10 WETH / 13,000 USDC) at WETH $1,400 is liquidatable and
    solvent; with min = max bonus the bonus is flat, so preview and
    liquidation report exactly the configured bonus."""
    env = deploy_env()
    alice = open_account(env, "alice", {"WETH": 10}, {"USDC": 13_000})
    set_prices(env, WETH=1400)
    bonuses = []
    for bonus in (3 * 10**16, 6 * 10**16):
        set_params(env.p, env.weth, (bonus, bonus, WAD // 10, 0))
        bonuses.append(lens_preview(env, alice, 0, "USDC", "WETH"))
        assert bonuses[-1][2] == bonus
    # A larger bonus seizes more WETH for each USDC repaid.
    (repay_lo, seize_lo, _), (repay_hi, seize_hi, _) = bonuses
    assert seize_hi * repay_lo > seize_lo * repay_hi
    repaid, seized = liquidate(env, env.liquidator, alice, "USDC", MAX_UINT, "WETH")
    ev = one_event(env.engine, "Liquidation")
    assert ev.bonus == 6 * 10**16
    assert (repaid, seized) == (repay_hi, seize_hi)
    assert ev.to_insurance == 0  # insurance share set to 0
