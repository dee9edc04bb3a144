"""The world the invariant machines run in: the protocol, its listed assets,
role-named actors with funded wallets, and a flash liquidator.

Two ways to build it, both returning a `World` the machine drives the same
way:

  * `deploy_world()` -- the one place the titanoboa deployment happens
    (through tests/protocol.py's `Protocol`, so a contracts-directory
    override there, e.g. for mutants, applies here unchanged): four assets
    with token decimals 6, 8 and 18 and one USDT-style token
    (contracts/mocks/MockUSDT.vy), a liquidation grace period after stale
    feeds, and supply/borrow caps on two assets;
  * `fork_world(record)` -- the protocol deployed by `ape run deploy` with
    deployments/config/local.yaml on an anvil chain, seen through
    `boa.fork(...)`; the addresses come from the deployment record.

A World is built once per test, outside hypothesis's per-example anchor
(titanoboa's pytest plugin rolls every example back to this state).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from dataclasses import dataclass, field

import boa
from eth_abi import encode as abi_encode
from eth_utils import keccak

from keeper import risk_model as rm
from tests.protocol import CONTRACTS, MAX_UINT, WAD, AssetSpec, EngineHandle, Protocol, deployer

# Role-named actors; each uses sub-accounts 0 and 1, and sub-accounts 7+ for
# same-block round trips (empty between steps, unless a pause refused a leg).
ACTORS = ("lender", "borrower", "trader", "whale", "attacker", "liquidator")
SUBS = (0, 1)
ROUND_TRIP_SUBS = tuple(range(7, 7 + 64))
FUNDING_USD = 10**13  # each actor's wallet per asset, USD worth
LIQUIDATION_GRACE = 1800  # seconds liquidations wait after a stale feed (titanoboa world)
FLASH_REENTER_MODE = 3  # FlashLiquidator.MODE_REENTER

FLASH_DIR = CONTRACTS.parent / "tests" / "liquidation" / "contracts"


def asset_specs() -> list[AssetSpec]:
    """USDC (6), WBTC (8), WETH (18) collateral and USDT (6, USDT-style
    token); caps on WBTC and USDT (token units)."""
    return [
        AssetSpec("USDC", decimals=6, price=1.0, asset_weight_initial=9 * 10**17, asset_weight_maintenance=95 * 10**16,
                  liability_weight_initial=11 * 10**17, liability_weight_maintenance=105 * 10**16,
                  min_bonus=10**16, max_bonus=5 * 10**16),
        AssetSpec("WBTC", decimals=8, price=60_000.0, imf=5 * 10**14, supply_cap=5_000 * 10**8,
                  borrow_cap=2_000 * 10**8),
        AssetSpec("WETH", decimals=18, price=3_000.0, min_bonus=0, max_bonus=8 * 10**16),
        AssetSpec("USDT", decimals=6, price=1.0, token_kind="usdt", supply_cap=10**9 * 10**6,
                  borrow_cap=5 * 10**8 * 10**6),
    ]


@dataclass
class ListedAsset:
    symbol: str
    decimals: int
    token: object
    feed: object
    id: int

    @property
    def address(self) -> str:
        return self.token.address


@dataclass
class World:
    engine: object
    configurator: object
    lens: object
    owner: str
    guardian: str
    assets: list[ListedAsset]
    actors: dict[str, str]  # role -> address
    flash: object  # FlashLiquidator
    dex: object  # MockDex used by the flash liquidator
    baseline: list[rm.AssetState] = field(default_factory=list)  # asset_state of each asset at build time
    wallets: dict = field(default_factory=dict)  # (actor, asset id) -> token balance at build time
    balances: dict = field(default_factory=dict)  # asset id -> engine's token balance at build time
    rounds: dict = field(default_factory=dict)  # asset id -> (previous, latest) RoundData at build time
    settings: tuple = ()  # engine.liquidation_settings() at build time
    forked: bool = False

    @property
    def accounts(self) -> list[tuple[str, int]]:
        return [(a, s) for a in self.actors.values() for s in SUBS]


def _fund_actors(world: World) -> None:
    """Mints each actor FUNDING_USD worth of every asset and approves the
    engine (USDT-style tokens accept an approval only from zero)."""
    for a in world.assets:
        state = rm.AssetState.from_tuple(world.engine.asset_state(a.id))
        answer = a.feed.latestAnswer()
        fdec = rm.feed_decimals(state.risk)
        amount = FUNDING_USD * 10**fdec // max(1, answer) * 10**a.decimals
        for who in world.actors.values():
            a.token.mint(who, amount)
            with boa.env.prank(who):
                a.token.approve(world.engine.address, MAX_UINT)


@lru_cache(maxsize=None)
def _test_contract(name: str):
    return boa.load_partial(str(FLASH_DIR / f"{name}.vy"))


def _flash_liquidator(engine_address: str):
    dex = _test_contract("MockDex").deploy()
    flash = _test_contract("FlashLiquidator").deploy(engine_address, dex.address)
    # Re-entry attempt in the callback: the engine's health view (a
    # mid-liquidation read is the read-only re-entrancy the lock prevents).
    flash.set_mode(FLASH_REENTER_MODE, _selector("health(address,uint8)") + abi_encode(["address", "uint8"], [engine_address, 0]))
    return flash, dex


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _finish(world: World) -> World:
    _fund_actors(world)
    world.baseline = [rm.AssetState.from_tuple(world.engine.asset_state(a.id)) for a in world.assets]
    world.wallets = {(who, a.id): a.token.balanceOf(who) for who in world.actors.values() for a in world.assets}
    world.balances = {a.id: a.token.balanceOf(world.engine.address) for a in world.assets}
    for a in world.assets:
        latest = rm.RoundData.from_tuple(a.feed.latestRoundData())
        previous = None
        if latest.round_id & rm.MASK64 > 1:
            previous = rm.RoundData.from_tuple(a.feed.getRoundData(latest.round_id - 1))
        world.rounds[a.id] = (previous, latest)
    world.settings = tuple(world.engine.liquidation_settings())
    return world


def deploy_world() -> World:
    """The protocol deployed on titanoboa through tests/protocol.py."""
    p = Protocol.deploy(liquidation_grace_period=LIQUIDATION_GRACE)
    listed = []
    for spec in asset_specs():
        a = p.list_asset(spec)
        listed.append(ListedAsset(spec.symbol, spec.decimals, a.token, a.feed, a.id))
    actors = {role: str(boa.env.generate_address(role)).lower() for role in ACTORS}
    flash, dex = _flash_liquidator(p.engine.address)
    return _finish(World(p.engine, p.configurator, p.lens, p.owner, p.guardian, listed, actors, flash, dex))


def fork_world(record: dict) -> World:
    """The protocol of an `ape run deploy` record, on the current (forked)
    titanoboa env: engine, extension, configurator, lens and the listed
    mock tokens/feeds at the recorded addresses. The deployer is owner and
    guardian (local.yaml: both "deployer")."""
    deployer_address = record["deployer"]
    with warnings.catch_warnings():
        # ape-vyper's build of the contracts is not byte-identical to
        # titanoboa's, so every cast warns; the ABIs and the deployed code's
        # behaviour are what the machine checks.
        warnings.filterwarnings("ignore", message="casted bytecode does not match")
        core = deployer("MarginEngine.vy").at(record["engine"])
        ext = deployer("MarginEngineExtension.vy").at(record["engine"])
        configurator = deployer("MarginConfigurator.vy").at(record["configurator"])
        lens = deployer("MarginLens.vy").at(record["lens"])
    engine = EngineHandle(core, ext)
    boa.env.register_contract(core.address, engine)
    listed = []
    for symbol, rec in record["assets"].items():
        token = deployer("mocks/MockERC20.vy").at(rec["token"])
        feed = deployer("mocks/MockAggregator.vy").at(rec["feed"])
        listed.append(ListedAsset(symbol, token.decimals(), token, feed, rec["asset_id"]))
    listed.sort(key=lambda a: a.id)
    actors = {role: str(boa.env.generate_address(role)).lower() for role in ACTORS}
    flash, dex = _flash_liquidator(core.address)
    world = World(engine, configurator, lens, deployer_address, deployer_address, listed, actors, flash, dex, forked=True)
    return _finish(world)


__all__ = ["ACTORS", "SUBS", "ROUND_TRIP_SUBS", "World", "ListedAsset", "deploy_world", "fork_world", "WAD"]
