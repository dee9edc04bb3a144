"""Human formatting and rich tables for plans and read-back checks (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from .config import MAX_ANSWER, WAD, YEAR, DeployConfig, ListingParams, bound_scale, fmt_decimal
from .plan import Plan


def make_console(min_width: int = 120) -> Console:
    """A rich Console; when output is not a terminal (make, CI logs) it is
    at least `min_width` wide instead of rich's 80, so tables do not fold."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(min_width, console.width))
    return console


def short_address(address: str) -> str:
    return f"{address[:8]}…{address[-6:]}" if address and len(address) == 42 else str(address)


def fmt_wad(value: int) -> str:
    return fmt_decimal(Decimal(value) / WAD)


def fmt_apr(per_second: int) -> str:
    """A per-second WAD rate as an APR percentage (integer division makes it a hair low)."""
    return f"{Decimal(per_second * YEAR) / WAD * 100:.2f}% APR"


def fmt_units(value: int, decimals: int, places: int | None = None) -> str:
    amount = Decimal(value).scaleb(-decimals)
    if places is not None:
        return f"{amount:,.{places}f}"
    return f"{amount.normalize():,f}"


def fmt_usd(wad: int) -> str:
    sign = "-" if wad < 0 else ""
    return f"{sign}${Decimal(abs(wad)) / WAD:,.2f}"


def fmt_cap(units: int, decimals: int) -> str:
    return "no cap" if units == 0 else fmt_units(units, decimals)


def fmt_answer(answer: int, decimals: int) -> str:
    if answer == MAX_ANSWER * bound_scale(decimals):
        return "max (2**64-1 stored units)"
    return "$" + fmt_units(answer, decimals)


def human(name: str, value: Any, token_decimals: int, feed_decimals: int) -> str:
    """Formats one MarginLens.asset_config field for people."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int):
        return str(value)
    key = name.split(".")[-1]
    if key.startswith(("asset_weight", "liability_weight")) or key in ("imf", "kink", "reserve_factor"):
        return fmt_wad(value)
    if key in ("min_bonus", "max_bonus", "insurance_share"):
        return f"{Decimal(value) / WAD * 100:.2f}%"
    if key == "full_bonus_depth":
        return fmt_wad(value)
    if key in ("base_rate", "slope_low", "slope_high"):
        return fmt_apr(value)
    if key in ("min_answer", "max_answer"):
        return fmt_answer(value, feed_decimals)
    if key in ("supply_cap", "borrow_cap"):
        return fmt_cap(value, token_decimals)
    if key == "max_staleness":
        return f"{value:,} s"
    return str(value)


# config-side source text of each read-back field, for the dry-run table
_CONFIG_FIELD = {
    "risk.asset_weight_initial": "asset_weight_initial",
    "risk.asset_weight_maintenance": "asset_weight_maintenance",
    "risk.liability_weight_initial": "liability_weight_initial",
    "risk.liability_weight_maintenance": "liability_weight_maintenance",
    "risk.max_staleness": "max_staleness",
    "risk.imf": "imf",
    "risk.min_answer": "min_price",
    "risk.max_answer": "max_price",
    "supply_cap": "supply_cap",
    "borrow_cap": "borrow_cap",
    "base_rate": "rate_model.base_rate",
    "slope_low": "rate_model.slope_low",
    "slope_high": "rate_model.slope_high",
    "kink": "rate_model.kink",
    "reserve_factor": "rate_model.reserve_factor",
    "collateral": "collateral",
    "borrowable": "borrowable",
    "liquidation.min_bonus": "liquidation.min_bonus",
    "liquidation.max_bonus": "liquidation.max_bonus",
    "liquidation.full_bonus_depth": "liquidation.full_bonus_depth",
    "liquidation.insurance_share": "liquidation.insurance_share",
}


def _config_value(cfg_asset: Any, path: str) -> str:
    value: Any = cfg_asset
    for part in path.split("."):
        value = getattr(value, part)
    if value is None:
        return "(default)"
    if isinstance(value, Decimal):
        return fmt_decimal(value)
    return str(value)


def print_plan(console: Console, plan: Plan, cfg: DeployConfig, *, show_params: bool = True) -> None:
    for note in plan.notes:
        console.print(f"[cyan]•[/] {note}")
    if plan.steps:
        table = Table(title=f"Plan: {len(plan.steps)} transaction(s)", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("step")
        for n, step in enumerate(plan.steps, 1):
            table.add_row(str(n), step.description)
        console.print(table)
    else:
        console.print("[green]Nothing to send:[/] the deployment matches the plan.")
    if not show_params:
        return
    for symbol in plan.to_list:
        params = plan.listings[symbol]
        a = cfg.asset(symbol)
        table = Table(
            title=f"{symbol} listing parameters (token {params.token_decimals} dec, feed {params.feed_decimals} dec)",
            title_justify="left",
        )
        table.add_column("parameter")
        table.add_column("config")
        table.add_column("on-chain integer", justify="right")
        table.add_column("means")
        for name, value in params.expected_readback().items():
            if name in ("token_decimals", "feed_decimals"):
                continue
            table.add_row(
                name.removeprefix("risk.").replace("liquidation.", "liq. "),
                _config_value(a, _CONFIG_FIELD[name]),
                str(value),
                human(name, value, params.token_decimals, params.feed_decimals),
            )
        console.print(table)


def print_issues(console: Console, title: str, issues: list[str]) -> None:
    console.print(f"[bold red]{title}[/]")
    for issue in issues:
        console.print(f"  [red]-[/] {issue}", highlight=False)


@dataclass
class Check:
    """One parameter read back from the chain and compared with the config."""

    scope: str  # "protocol" or an asset symbol
    name: str
    expected: Any
    actual: Any
    ok: bool
    display: str  # human form of the on-chain value
    expected_display: str = ""


def print_checks(console: Console, checks: list[Check], symbols: list[str]) -> None:
    ok_mark, bad_mark = "[green]✓[/]", "[bold red]✗[/]"
    protocol = [c for c in checks if c.scope == "protocol"]
    if protocol:
        table = Table(title="Read-back: protocol", title_justify="left")
        table.add_column("parameter")
        table.add_column("on-chain")
        table.add_column("", justify="center")
        for c in protocol:
            table.add_row(c.name, c.display, ok_mark if c.ok else bad_mark)
        console.print(table)
    by_asset = {s: {c.name: c for c in checks if c.scope == s} for s in symbols}
    names: list[str] = []
    for s in symbols:
        for name in by_asset[s]:
            if name not in names:
                names.append(name)
    if names:
        table = Table(title="Read-back: assets (MarginLens.asset_config vs config)", title_justify="left")
        table.add_column("parameter")
        for s in symbols:
            table.add_column(s, justify="right")
        for name in names:
            row = [name.removeprefix("risk.").replace("liquidation.", "liq. ")]
            for s in symbols:
                c = by_asset[s].get(name)
                row.append("" if c is None else f"{c.display} {ok_mark if c.ok else bad_mark}")
            table.add_row(*row)
        console.print(table)
    bad = [c for c in checks if not c.ok]
    if bad:
        print_issues(
            console,
            "On-chain values differ from the config:",
            [f"{c.scope}.{c.name}: on-chain {c.display}, config {c.expected_display or c.expected}" for c in bad],
        )
