"""Simulation helpers for keeper tests, the crash replay and benchmarks:
web3.py only (no ape at runtime).

Stable API (used by scripts/replay.py, tests/keeper/ and benchmarks/keeper/):

    open_population(w3, record, n, seed=0, profile="mixed") -> list[SimAccount]
    Sim(w3, record): set_price(symbol, price), set_round(...),
        republish_prices(), fund(address, {symbol: units}), healths(refs),
        liquidatable(refs), transact(to, data, sender=...)
    Anvil.start(block_time=..., load_state=...) / Anvil.dump_state(path)
    deploy_local(url, record_path) -> DeploymentRecord   (`ape run deploy`)
    seeded_state(n, seed, profile) -> SeededState         (cached state file)

See each module's docstring: population.py (profiles, leverage), chain.py
(Sim), anvil.py (process), seed.py (deployment + cached seeded states).
"""

from .anvil import Anvil, free_port
from .chain import SIM_OPERATOR, AssetInfo, Sim, SimError, load_record
from .population import KINDS, PROFILES, Profile, SimAccount, open_population, plan_population
from .rpc import Rpc, RpcError


def set_price(w3, record, symbol: str, price) -> dict:
    """Module-level shortcut for `Sim(w3, record).set_price(symbol, price)`."""
    return Sim(w3, record).set_price(symbol, price)


__all__ = [
    "Anvil",
    "AssetInfo",
    "KINDS",
    "PROFILES",
    "Profile",
    "Rpc",
    "RpcError",
    "SIM_OPERATOR",
    "Sim",
    "SimAccount",
    "SimError",
    "free_port",
    "load_record",
    "open_population",
    "plan_population",
    "set_price",
]
