"""Liquidation strategy: for each liquidatable account pick the (repay
asset, seize asset, amount) that maximises

    profit = value(seized to the liquidator) - value(repaid)
             - price-drift margin (price_drift_bps of the seized value)
             - gas cost (gas limit * (base fee + tip) at the native coin's price)

with the engine's own plan (``risk_model.plan_for``, bit-exact with
``MarginEngine._plan``), worst health first, and say why an account is
skipped. Values are USD WAD, amounts token units; integer math only.

Modes:

* ``inventory``: the keeper holds the repay token and has approved the
  engine; it calls ``engine.liquidate(..., receiver=keeper, data=b"")``.
  The repay amount is capped by the keeper's balance.
* ``flash``: the keeper calls ``KeeperFlashLiquidator.liquidate(...)``; the
  engine sends the seized tokens to that contract, calls its
  ``on_liquidation`` (the engine's non-empty ``data`` path), where it swaps
  them on a DEX for the repay token and approves the repayment; the surplus
  goes to the keeper's address.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import risk_model as rm
from .abi import codec
from .replica import AccountKey, Replica

WAD = rm.WAD
BPS = 10_000


@dataclass(frozen=True)
class Candidate:
    """A planned liquidation. Amounts token units, values USD WAD."""

    key: AccountKey
    owner: str
    sub_id: int
    repay_id: int
    seize_id: int
    repay_asset: str
    seize_asset: str
    requested: int  # repay_amount argument (token units or max uint256)
    repay: int  # planned repay
    seized: int  # planned tokens to the liquidator
    min_seize: int  # min_seize_amount argument
    bonus: int  # WAD
    gross_usd: int  # seized value - repay value - drift margin
    gas_usd: int
    profit_usd: int  # gross - gas
    health: int  # maintenance health, USD WAD (negative)

    @property
    def account_id(self) -> str:
        return f"{self.owner.lower()}:{self.sub_id}"


@dataclass(frozen=True)
class Skip:
    key: AccountKey
    reason: str
    detail: str = ""


def usd(amount: int, unit_price: int, round_up: bool = False) -> int:
    """Token units -> USD WAD with a unit price."""
    return rm.mul_div_up(amount, unit_price, WAD) if round_up else rm.mul_div_down(amount, unit_price, WAD)


class Strategy:
    """Plans liquidations from the replica (see module docstring)."""

    def __init__(
        self,
        replica: Replica,
        *,
        mode: str,
        engine: str,
        keeper_address: str,
        flash_liquidator: str | None,
        price_drift_bps: int,
        min_profit_usd: int,
        native_price_asset: int | None,
        native_price_usd: int | None,
    ):
        self.replica = replica
        self.mode = mode
        self.engine = engine
        self.keeper_address = keeper_address
        self.flash_liquidator = flash_liquidator
        self.drift_bps = price_drift_bps
        self.min_profit = min_profit_usd
        self.native_asset = native_price_asset
        self.native_usd = native_price_usd  # USD WAD per native coin

    # -- prices -------------------------------------------------------------------
    def native_unit_price(self, now: int) -> int:
        """USD WAD per wei * 1e18 (the unit price of an 18-decimal token)."""
        if self.native_asset is not None and self.native_asset in self.replica.markets:
            q = self.replica.quote(self.native_asset, now)
            if q.price:
                return q.price
        if self.native_usd is not None:
            return self.native_usd
        return 0

    def wei_to_usd(self, wei: int, now: int) -> int:
        return wei * self.native_unit_price(now) // WAD

    def usd_to_wei(self, usd_wad: int, now: int) -> int:
        p = self.native_unit_price(now)
        if p == 0:
            return 2**255  # unknown native price: fees are bounded by gas.max_fee_gwei only
        return max(0, usd_wad) * WAD // p

    # -- planning -------------------------------------------------------------------
    def order(self, keys: set[AccountKey]) -> list[AccountKey]:
        """Worst health first: lowest maintenance C/D ratio, then largest debt."""
        h = self.replica.health
        return sorted(keys, key=lambda k: (h[k].ratio, -h[k].debt))

    def plan(
        self,
        key: AccountKey,
        now: int,
        gas_limit: int,
        fee_per_gas: int,
        balances: dict[int, int] | None = None,
    ) -> Candidate | Skip:
        """The most profitable liquidation of ``key`` at block time ``now``,
        or why there is none. ``balances``: the keeper's token balances by
        asset id (inventory mode)."""
        r = self.replica
        acc = r.accounts.get(key)
        if acc is None:
            return Skip(key, "unknown account")
        entry = r.health.get(key)
        quotes = r.quotes(now)
        bad = [i for i in acc.positions if quotes[i].error != rm.ERR_NONE]
        if bad:
            reason = rm.ORACLE_REVERT_REASONS.get(quotes[bad[0]].error, "oracle: price rejected")
            return Skip(key, "price rejected", f"{reason} (asset {bad[0]})")
        if now < r.paused_until:
            return Skip(key, "liquidations paused")
        debts = [i for i, (_, b) in acc.positions.items() if b]
        deposits = [i for i, (d, _) in acc.positions.items() if d]
        if not debts or not deposits:
            return Skip(key, "nothing to seize" if debts else "no debt")
        gas_usd = self.wei_to_usd(gas_limit * fee_per_gas, now)
        best: Candidate | None = None
        last_reason = "no profitable pair"
        for id_r in debts:
            for id_s in deposits:
                requested = rm.MAX_UINT256
                if self.mode == "inventory" and balances is not None:
                    requested = balances.get(id_r, 0)
                    if requested == 0:
                        last_reason = "no inventory of the repay token"
                        continue
                try:
                    p = r.plan(key, id_r, id_s, now, requested)
                except rm.VyperRevert as exc:
                    last_reason = exc.reason if hasattr(exc, "reason") else str(exc)
                    continue
                if p.leaves_dust:
                    last_reason = "inventory too small (would leave dust)"
                    continue
                seized = p.seize - p.to_insurance
                if p.repay == 0 or seized == 0:
                    last_reason = "nothing to seize"
                    continue
                seized_value = usd(seized, quotes[id_s].price)
                repay_value = usd(p.repay, quotes[id_r].price, round_up=True)
                drift = seized_value * self.drift_bps // BPS
                gross = seized_value - repay_value - drift
                profit = gross - gas_usd
                if best is None or profit > best.profit_usd:
                    min_seize = seized * (BPS - self.drift_bps) // BPS
                    best = Candidate(
                        key=key, owner=acc.owner, sub_id=acc.sub_id, repay_id=id_r, seize_id=id_s,
                        repay_asset=r.markets[id_r].asset, seize_asset=r.markets[id_s].asset,
                        requested=requested if requested != rm.MAX_UINT256 else rm.MAX_UINT256,
                        repay=p.repay, seized=seized, min_seize=min_seize, bonus=p.bonus, gross_usd=gross,
                        gas_usd=gas_usd, profit_usd=profit, health=entry.health if entry else 0,
                    )
        if best is None:
            return Skip(key, last_reason)
        if best.profit_usd < self.min_profit or best.profit_usd <= 0:
            return Skip(key, "unprofitable", f"profit {best.profit_usd} USD WAD (gross {best.gross_usd}, gas {best.gas_usd})")
        return best

    # -- calls ----------------------------------------------------------------------
    def call(self, c: Candidate) -> tuple[str, str]:
        """(to, calldata) of the liquidation transaction."""
        if self.mode == "flash":
            assert self.flash_liquidator is not None
            data = codec("KeeperFlashLiquidator").encode(
                "liquidate", c.owner, c.sub_id, c.repay_asset, c.requested, c.seize_asset, c.min_seize, 0
            )
            return self.flash_liquidator, data
        data = codec("MarginEngine").encode(
            "liquidate", c.owner, c.sub_id, c.repay_asset, c.requested, c.seize_asset, c.min_seize, self.keeper_address, b""
        )
        return self.engine, data

    def decode_result(self, data: str) -> tuple[int, int]:
        """(repaid, seized) from the simulated call's return data (flash:
        (repaid, profit in repay-token units))."""
        if self.mode == "flash":
            return tuple(codec("KeeperFlashLiquidator").decode("liquidate", data))  # type: ignore[return-value]
        return tuple(codec("MarginEngine").decode("liquidate", data, 8))  # type: ignore[return-value]
