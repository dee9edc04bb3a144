"""Seeded, randomised populations of xmargin accounts on a local anvil.

    from scripts._xmargin_sim import open_population, Sim
    accounts = open_population(w3, record, n=10_000, seed=7, profile="mixed")
    # -> list[SimAccount], lenders first, all mined and checked (status 1)

The same (deployment, n, seed, profile) opens the same accounts with the
same amounts on any fresh deployment at the same prices (`random.Random(seed)`;
addresses are keccak("xmargin.sim.owner:<seed>:<i>")[12:]).

How it is fast (10,000 accounts in well under a minute on 2 cores): owners
are keyless addresses sent from with `anvil_autoImpersonateAccount`, so no
signing; every transaction carries an explicit nonce and gas limit, so anvil
does not estimate; transactions go out as JSON-RPC batches while mining is
off, and the pool is mined in blocks of up to `block_gas` gas (`anvil_mine`).
Four phases, each mined before the next starts:
  1. funding: `SIM_OPERATOR` mints the total of every token to itself and
     approves the engine (6 tx);
  2. every owner approves `SIM_OPERATOR` as its operator (`set_operator`);
  3. `SIM_OPERATOR` opens every sub-account in ONE transaction:
     `engine.batch([deposit..., borrow...], sub_id, owner)` (deposits come
     from the operator's tokens, borrowed tokens go to the owner);
  4. every owner revokes the operator again, so the final state holds no
     approval (about 2 + 1/account transactions per owner in total).
Every receipt is checked through `eth_getBlockReceipts`; a failure raises
`SimError` naming the account. Automine and the block gas
limit are restored afterwards.

Leverage is the share of the initial-margin borrowing capacity in use:
    leverage = Σ borrow_usd·lw_init / Σ collateral_usd·aw_init     (0 < leverage < 1)
so leverage 0.97 sits 3% below the initial-margin limit. A long ETH
position at leverage L becomes liquidatable (maintenance health < 0) once
ETH falls by more than 1 - L·aw_i·lw_m(USDC) / (lw_i(USDC)·aw_m) (≈ 12.9%
at L = 0.97, ≈ 19% at 0.90 with the local.yaml weights). Tiered (IMF)
margin is negligible at these sizes (it starts above ~230,000 WETH).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from eth_abi import encode
from eth_utils import to_checksum_address
from web3 import Web3

from .chain import MAX_UINT, SIM_OPERATOR, Sim, SimError, selector

WAD = 10**18
BATCH = selector("batch((uint8,address,uint256,address,uint8)[],uint8,address)")
SET_OPERATOR = selector("set_operator(address,bool)")
ACTION_DEPOSIT, ACTION_BORROW = 0, 2  # ledger.ACTION_*
MINT = selector("mint(address,uint256)")
APPROVE = selector("approve(address,uint256)")

OPERATOR_GAS = 100_000
BATCH_GAS = 1_500_000
SEED_BLOCK_GAS = 300_000_000  # per mined block while seeding (restored afterwards)


# ---------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A borrower archetype: collateral symbols (with random shares) and
    borrowed symbols (with random shares)."""

    name: str
    collateral: tuple[str, ...]
    debt: tuple[str, ...]


KINDS = {
    "eth_long": Kind("eth_long", ("WETH",), ("USDC",)),
    "btc_long": Kind("btc_long", ("WBTC",), ("USDC",)),
    "eth_short": Kind("eth_short", ("USDC",), ("WETH",)),
    "btc_short": Kind("btc_short", ("USDC",), ("WBTC",)),
    # cross-asset: two or three collaterals, two debts
    "cross": Kind("cross", ("WETH", "WBTC", "USDC"), ("USDC", "WETH")),
    "eth_btc": Kind("eth_btc", ("WETH",), ("WBTC",)),
}


@dataclass(frozen=True)
class Profile:
    """How a population is drawn.

    kinds: borrower archetype -> weight. leverage_min/max: uniform range of
    leverage (see the module docstring); near_limit_share of the borrowers
    instead draw from [near_limit_min, leverage_max]. collateral_usd_min/max:
    log-uniform collateral value per borrower. lender_share: share of the n
    accounts that only deposit (sized to 1.6x the total borrowed, per asset,
    so utilisation stays near 60%). isolated_share: share of borrowers opened
    as sub-account 1..255 of an owner that already has a sub-account 0.
    """

    name: str
    kinds: dict[str, float] = field(
        default_factory=lambda: {"eth_long": 0.35, "btc_long": 0.15, "eth_short": 0.12, "btc_short": 0.03, "cross": 0.30, "eth_btc": 0.05}
    )
    leverage_min: float = 0.20
    leverage_max: float = 0.97
    near_limit_share: float = 0.15
    near_limit_min: float = 0.88
    collateral_usd_min: float = 1_000
    collateral_usd_max: float = 50_000
    lender_share: float = 0.04
    isolated_share: float = 0.10


PROFILES = {
    "mixed": Profile("mixed"),
    "risky": Profile("risky", leverage_min=0.60, near_limit_share=0.50),
    "calm": Profile("calm", leverage_min=0.05, leverage_max=0.60, near_limit_share=0.0),
    # every borrower an ETH long close to the limit: a 15% ETH drop liquidates most
    "eth_longs": Profile("eth_longs", kinds={"eth_long": 1.0}, leverage_min=0.93, leverage_max=0.97, near_limit_share=0.0, isolated_share=0.0),
}


# ---------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------


@dataclass
class SimAccount:
    """One opened sub-account. Amounts in token units by symbol. `owner` is
    a keyless address: act as it through anvil impersonation
    (`Sim.transact(..., sender=owner)`)."""

    owner: str
    sub_id: int
    kind: str  # "lender" or a KINDS key
    leverage: float  # 0 for lenders
    deposits: dict[str, int] = field(default_factory=dict)
    borrows: dict[str, int] = field(default_factory=dict)

    @property
    def ref(self) -> tuple[str, int]:
        return (self.owner, self.sub_id)

    @property
    def is_lender(self) -> bool:
        return self.kind == "lender"


def owner_address(seed: int, index: int) -> str:
    return to_checksum_address(Web3.keccak(text=f"xmargin.sim.owner:{seed}:{index}")[12:])


def _split(rng: random.Random, parts: int) -> list[float]:
    if parts == 1:
        return [1.0]
    cuts = sorted(rng.uniform(0.15, 0.85) for _ in range(parts - 1))
    edges = [0.0, *cuts, 1.0]
    return [b - a for a, b in zip(edges, edges[1:])]


def plan_population(sim: Sim, n: int, seed: int, profile: Profile | str = "mixed") -> list[SimAccount]:
    """Draws n accounts (no transactions): lenders first, then borrowers.
    Amounts are computed from the current feed prices and initial weights."""
    if isinstance(profile, str):
        try:
            profile = PROFILES[profile]
        except KeyError:
            raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}") from None
    if n < 2:
        raise ValueError("a population needs at least 2 accounts (a lender and a borrower)")
    rng = random.Random(seed)
    assets = sim.assets
    price = {s: sim.price(s) for s in assets}
    missing = {s for k in profile.kinds for s in KINDS[k].collateral + KINDS[k].debt} - set(assets)
    if missing:
        raise SimError(f"profile {profile.name} needs assets {sorted(missing)} that are not listed")

    def units(symbol: str, usd: float) -> int:
        return int(Decimal(repr(usd)) / price[symbol] * Decimal(10) ** assets[symbol].token_decimals)

    def usd(symbol: str, amount: int) -> Decimal:
        return Decimal(amount) / Decimal(10) ** assets[symbol].token_decimals * price[symbol]

    n_lenders = max(1, round(n * profile.lender_share))
    n_borrowers = n - n_lenders
    kind_names = list(profile.kinds)
    weights = [profile.kinds[k] for k in kind_names]
    borrowers: list[SimAccount] = []
    owners_with_subs: dict[str, set[int]] = {}
    next_owner = n_lenders
    lo, hi = math.log(profile.collateral_usd_min), math.log(profile.collateral_usd_max)
    for _ in range(n_borrowers):
        kind = KINDS[rng.choices(kind_names, weights)[0]]
        if rng.random() < profile.near_limit_share:
            leverage = rng.uniform(profile.near_limit_min, profile.leverage_max)
        else:
            leverage = rng.uniform(profile.leverage_min, profile.leverage_max)
        leverage = round(leverage, 4)
        if owners_with_subs and rng.random() < profile.isolated_share:
            owner = rng.choice(list(owners_with_subs))
            used = owners_with_subs[owner]
            sub_id = rng.choice([s for s in range(1, 256) if s not in used])
        else:
            owner, sub_id = owner_address(seed, next_owner), 0
            next_owner += 1
        owners_with_subs.setdefault(owner, set()).add(sub_id)
        total = math.exp(rng.uniform(lo, hi))
        collaterals = kind.collateral if kind.name != "cross" else kind.collateral[: rng.choice((2, 3))]
        deposits = {s: units(s, total * share) for s, share in zip(collaterals, _split(rng, len(collaterals)))}
        capacity = sum(usd(s, a) * assets[s].asset_weight_initial for s, a in deposits.items()) / WAD
        debt_shares = _split(rng, len(kind.debt))
        # Σ borrow_usd_j·lw_j = leverage·capacity, with borrow_usd_j = B·share_j
        weighted = sum(Decimal(repr(sh)) * assets[s].liability_weight_initial / WAD for s, sh in zip(kind.debt, debt_shares))
        borrow_usd = Decimal(repr(leverage)) * capacity / weighted
        borrows = {s: units(s, float(borrow_usd * Decimal(repr(sh)))) for s, sh in zip(kind.debt, debt_shares)}
        borrows = {s: a for s, a in borrows.items() if a > 0}
        borrowers.append(SimAccount(owner, sub_id, kind.name, leverage, deposits, borrows))

    demand = {s: sum(b.borrows.get(s, 0) for b in borrowers) for s in assets}
    lenders = []
    shares = [rng.uniform(0.5, 1.5) for _ in range(n_lenders)]
    norm = sum(shares)
    for i, share in enumerate(shares):
        deposits = {}
        for s in assets:
            floor_units = units(s, 100_000.0)  # every asset has some liquidity
            deposits[s] = int((demand[s] * 16 // 10 + floor_units) * share / norm) + 1
        lenders.append(SimAccount(owner_address(seed, i), 0, "lender", 0.0, deposits, {}))
    return lenders + borrowers


# ---------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------


def _tx(sender: str, to: str, data: bytes, nonce: int, gas: int) -> dict:
    return {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(gas), "nonce": hex(nonce)}


class _Sender:
    """Sends prepared transactions with mining off, in chunks that fit one
    block (anvil's pool slows down badly with thousands of pending
    transactions), mines each chunk with `anvil_mine` and checks every
    receipt through `eth_getBlockReceipts`."""

    def __init__(self, sim: Sim, block_gas: int, max_chunk: int = 400):
        self.sim = sim
        self.rpc = sim.rpc
        self.block_gas = block_gas
        self.max_chunk = max_chunk

    def run(self, txs: list[dict], labels: list[str]) -> int:
        """Returns the number of blocks mined; raises SimError on any failure."""
        if not txs:
            return 0
        per_block = max(1, min(self.max_chunk, self.block_gas // max(int(t["gas"], 16) for t in txs)))
        blocks = 0
        for start in range(0, len(txs), per_block):
            part, part_labels = txs[start : start + per_block], labels[start : start + per_block]
            hashes = self.rpc.batch([("eth_sendTransaction", [tx]) for tx in part])
            self.rpc.call("anvil_mine", "0x1")
            blocks += 1
            status = self.rpc.call("txpool_status")
            if int(status["pending"], 16) + int(status["queued"], 16):
                raise SimError(f"seeding left transactions in the pool: {status}")
            receipts = self.rpc.call("eth_getBlockReceipts", "latest") or []
            status_of = {r["transactionHash"]: int(r["status"], 16) for r in receipts}
            failed = [(label, h, tx) for label, h, tx in zip(part_labels, hashes, part) if status_of.get(h) != 1]
            if failed:
                label, h, tx = failed[0]
                head = hex(int(self.rpc.call("eth_blockNumber"), 16))
                reason = self.sim._reason(tx, {"blockNumber": head}) if h in status_of else "not mined"
                raise SimError(f"{len(failed)} seeding transaction(s) failed; first: {label} ({h}): {reason}")
        return blocks


def open_population(
    w3: Any,
    record: Any,
    n: int,
    seed: int = 0,
    profile: Profile | str = "mixed",
    *,
    block_gas: int = SEED_BLOCK_GAS,
) -> list[SimAccount]:
    """Opens a seeded random population of n sub-accounts and returns them
    (lenders first). `w3`: a Web3 over HTTP, a URL or a `Sim`; `record`: a
    DeploymentRecord, dict or JSON path (ignored when `w3` is a `Sim`).
    Raises `SimError` if any transaction fails (nothing is retried), and
    ValueError for an unknown profile or n < 2. The chain's automine setting
    and block gas limit are restored afterwards."""
    sim = w3 if isinstance(w3, Sim) else Sim(w3, record)
    accounts = plan_population(sim, n, seed, profile)
    rpc = sim.rpc
    automine = rpc.call("anvil_getAutomine")
    interval = rpc.call("anvil_getIntervalMining") if sim._has_interval_query() else 0
    gas_limit = int(rpc.call("eth_getBlockByNumber", "latest", False)["gasLimit"], 16)
    rpc.call("evm_setAutomine", False)
    if interval:
        rpc.call("evm_setIntervalMining", 0)
    rpc.call("evm_setBlockGasLimit", hex(block_gas))
    try:
        _open(sim, accounts, block_gas)
    finally:
        rpc.call("evm_setBlockGasLimit", hex(gas_limit))
        rpc.call("evm_setAutomine", bool(automine))
        if interval:
            rpc.call("evm_setIntervalMining", interval)
    return accounts


def _open(sim: Sim, accounts: list[SimAccount], block_gas: int) -> None:
    rpc, engine = sim.rpc, sim.record.engine
    sender = _Sender(sim, block_gas)
    token = {s: a.token for s, a in sim.assets.items()}
    owners = sorted({a.owner for a in accounts})
    rpc.batch([("anvil_setBalance", [o, hex(10**21)]) for o in owners + [SIM_OPERATOR]])
    op_nonce = int(rpc.call("eth_getTransactionCount", SIM_OPERATOR, "pending"), 16)

    # 1. funding: mint every token's total to the operator, approve the engine
    totals = {s: sum(a.deposits.get(s, 0) for a in accounts) for s in token}
    txs, labels = [], []
    for s, total in totals.items():
        if total:
            txs.append(_tx(SIM_OPERATOR, token[s], MINT + encode(["address", "uint256"], [SIM_OPERATOR, total]), op_nonce, 100_000))
            txs.append(_tx(SIM_OPERATOR, token[s], APPROVE + encode(["address", "uint256"], [engine, MAX_UINT]), op_nonce + 1, 100_000))
            labels += [f"mint {s}", f"approve {s}"]
            op_nonce += 2
    sender.run(txs, labels)

    # 2. owners approve the operator
    nonces = dict(zip(owners, (int(x, 16) for x in rpc.batch([("eth_getTransactionCount", [o, "pending"]) for o in owners]))))

    def operator_txs(approved: bool) -> tuple[list[dict], list[str]]:
        data = SET_OPERATOR + encode(["address", "bool"], [SIM_OPERATOR, approved])
        txs = []
        for o in owners:
            txs.append(_tx(o, engine, data, nonces[o], OPERATOR_GAS))
            nonces[o] += 1
        return txs, [f"set_operator({approved}) by {o}" for o in owners]

    sender.run(*operator_txs(True))

    # 3. one batch per sub-account: deposits from the operator, borrows to the owner
    txs, labels = [], []
    for a in accounts:
        actions = [(ACTION_DEPOSIT, token[s], amount, a.owner, 0) for s, amount in a.deposits.items()]
        actions += [(ACTION_BORROW, token[s], amount, a.owner, 0) for s, amount in a.borrows.items()]
        data = BATCH + encode(["(uint8,address,uint256,address,uint8)[]", "uint8", "address"], [actions, a.sub_id, a.owner])
        txs.append(_tx(SIM_OPERATOR, engine, data, op_nonce, BATCH_GAS))
        labels.append(f"open {a.kind} {a.owner} sub {a.sub_id} (leverage {a.leverage}): {a.deposits} -> {a.borrows}")
        op_nonce += 1
    sender.run(txs, labels)

    # 4. owners revoke the operator
    sender.run(*operator_txs(False))
