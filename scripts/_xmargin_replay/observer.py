"""Live observations during the replay, read from the chain head.

Reading health at past blocks is slow on anvil (seconds per few hundred
calls once the state is old), so the replay reads it while it happens: one
JSON-RPC batch of `MarginEngine.weighted_health` per observed block (all
borrowers, ~0.1 s for 500), issued while the keeper works on that block.

- `HealthObserver.observe()`: per account, maintenance collateral and debt
  (USD WAD, weighted) and unweighted collateral/debt value, prices valid;
- `LatencyTracker`: when each account was first seen below maintenance
  after a feed update, and the blocks until its first liquidation;
- hourly samples: health-ratio buckets and the insurance fund
  (`MarginLens.market`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

WAD = 10**18
ALL_ASSETS = 2**64 - 1
KINDS_MAINTENANCE_AND_VALUE = (1 << 1) | (1 << 3)
NO_DEBT_RATIO = float("inf")
RATIO_BUCKETS = [(0, 1.0, "< 1.00 (below maintenance)"), (1.0, 1.1, "1.00-1.10"), (1.1, 1.25, "1.10-1.25"),
                 (1.25, 1.5, "1.25-1.50"), (1.5, 2.0, "1.50-2.00"), (2.0, float("inf"), ">= 2.00")]
_WEIGHTED_HEALTH = function_signature_to_4byte_selector("weighted_health(address,uint8,uint256,uint256)")
_MARKET = function_signature_to_4byte_selector("market(address)")


@dataclass(frozen=True)
class AccountHealth:
    collateral: int  # maintenance-weighted collateral, USD WAD
    debt: int  # maintenance-weighted debt, USD WAD
    collateral_value: int  # unweighted, USD WAD
    debt_value: int
    prices_valid: bool

    @property
    def below_maintenance(self) -> bool:
        return self.collateral < self.debt

    @property
    def ratio(self) -> float:
        return self.collateral / self.debt if self.debt else NO_DEBT_RATIO


class HealthObserver:
    def __init__(self, rpc, engine: str, refs: list[tuple[str, int]]):
        self.rpc = rpc
        self.engine = engine
        self.refs = [(to_checksum_address(o), s) for o, s in refs]
        self._calls = [
            ("eth_call", [{"to": engine, "data": "0x" + (_WEIGHTED_HEALTH + encode(
                ["address", "uint8", "uint256", "uint256"], [o, s, ALL_ASSETS, KINDS_MAINTENANCE_AND_VALUE])).hex()}, "latest"])
            for o, s in self.refs
        ]

    def observe(self) -> list[AccountHealth]:
        out = []
        for raw in self.rpc.batch(self._calls):
            w = [int(raw[2 + 64 * i: 2 + 64 * (i + 1)], 16) for i in range(9)]
            # Health(collateral[4], debt[4], prices_valid): index 1 maintenance, 3 value
            out.append(AccountHealth(w[1], w[5], w[3], w[7], bool(w[8])))
        return out


def markets(rpc, lens: str, tokens: dict[str, str]) -> dict[str, tuple[int, int]]:
    """symbol -> (insurance fund in token units, unit price USD WAD * 1e18) from MarginLens.market."""
    symbols = list(tokens)
    results = rpc.batch([("eth_call", [{"to": lens, "data": "0x" + (_MARKET + encode(["address"], [tokens[s]])).hex()}, "latest"])
                         for s in symbols])
    out = {}
    for s, raw in zip(symbols, results):
        w = raw[2:]
        word = lambda i: int(w[64 * i: 64 * (i + 1)], 16)  # noqa: E731
        fund = word(11)
        if fund >= 2**255:
            fund -= 2**256
        out[s] = (fund, word(13))
    return out


@dataclass
class LatencyTracker:
    """Episodes: an account seen below maintenance at an observed block
    (after a feed update) starts an episode; its first Liquidation event
    ends the wait (latency = liquidation block - that block); the episode
    closes when the account is seen at or above maintenance again. A
    liquidation in the observed update block itself (the observation, taken
    after the block, already shows the account restored) counts as 0."""

    since: dict[tuple[str, int], int] = field(default_factory=dict)  # ref -> first observed block below maintenance
    served: set = field(default_factory=set)  # refs of open episodes already liquidated
    latencies: list[int] = field(default_factory=list)
    unobserved: int = 0  # first liquidations of accounts never seen below maintenance (went under between observations)
    last_seen: dict = field(default_factory=dict)  # ref -> (block, below maintenance) of the last observation
    unobserved_examples: list = field(default_factory=list)

    def observe(self, block: int, refs: list[tuple[str, int]], healths: list[AccountHealth]) -> None:
        for ref, h in zip(refs, healths):
            self.last_seen[ref] = (block, h.below_maintenance, h.ratio)
            if h.below_maintenance and h.debt:
                self.since.setdefault(ref, block)
            else:
                self.since.pop(ref, None)
                self.served.discard(ref)

    def restart_waits(self, block: int) -> None:
        """A late keeper starts at `block`: accounts already waiting count
        their latency from there (the wait before it is the keeper's absence,
        reported separately as KeeperStart)."""
        for ref in self.since:
            self.since[ref] = max(self.since[ref], block)

    def liquidated(self, ref: tuple[str, int], block: int) -> None:
        if ref in self.served:
            return
        self.served.add(ref)
        if ref in self.since:
            self.latencies.append(block - self.since[ref])
        elif self.last_seen.get(ref, (None,))[0] == block:
            # observed (after the block) already liquidated: a pending keeper
            # transaction landed in the update's own block, after the update
            self.latencies.append(0)
        else:
            self.unobserved += 1
            if len(self.unobserved_examples) < 20:
                self.unobserved_examples.append((f"{ref[0]}:{ref[1]}", block, self.last_seen.get(ref)))

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        if not lat:
            return {"episodes": 0, "unobserved": self.unobserved}
        hist: dict[str, int] = {}
        for v in lat:
            hist[str(v)] = hist.get(str(v), 0) + 1
        return {
            "episodes": len(lat),
            "min": lat[0],
            "median": statistics.median(lat),
            "p90": lat[min(len(lat) - 1, int(0.9 * len(lat)))],
            "max": lat[-1],
            "mean": round(sum(lat) / len(lat), 2),
            "histogram": dict(sorted(hist.items(), key=lambda kv: int(kv[0]))),
            "unobserved": self.unobserved,
            "unobserved_examples": self.unobserved_examples,
        }


def sample(t: int, block: int, healths: list[AccountHealth], fund: dict[str, tuple[int, int]], decimals: dict[str, int]) -> dict:
    """One point of the health-distribution and insurance-fund plots."""
    buckets = [0] * len(RATIO_BUCKETS)
    ratios = []
    for h in healths:
        if not h.debt:
            continue
        r = h.ratio
        ratios.append(r)
        for i, (lo, hi, _) in enumerate(RATIO_BUCKETS):
            if lo <= r < hi:
                buckets[i] += 1
                break
    insurance = {s: f / 10 ** decimals[s] for s, (f, _) in fund.items()}
    prices = {s: p * 10 ** decimals[s] / WAD / WAD for s, (_, p) in fund.items()}
    return {
        "t": t,
        "block": block,
        "ratio_buckets": buckets,
        "with_debt": len(ratios),
        "below_maintenance": buckets[0],
        "median_ratio": round(statistics.median(ratios), 4) if ratios else None,
        "insurance_fund": insurance,
        "insurance_fund_usd": round(sum(insurance[s] * prices[s] for s in insurance), 2),
        "prices": prices,
    }
