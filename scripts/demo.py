"""xmargin demo on a local chain (`make demo` = private anvil + `ape run demo`).

1. Deploys the protocol from deployments/config/local.yaml through the same
   library as `ape run deploy` (mock WETH $2,000, WBTC $60,000, USDC $1),
   including the parameter read-back.
2. Opens accounts: a lender; an ETH-long borrower (WETH -> USDC); the same
   owner's isolated sub-account 1 (USDC -> short WETH); a cross-asset
   borrower (WETH + WBTC -> USDC + WETH); a moderately levered ETH long.
3. Prints every account's health (engine.health, lens.healths,
   lens.balances) and the markets (lens.market).
4. Lets 30 days pass (interest accrues; the feeds keep publishing), moves
   ETH/USD down 20% on the mock feed, and prints both tables again,
   flagging accounts near or below maintenance.
All numbers are read from the chain.
"""

from decimal import Decimal
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, ape_cli_context

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "deployments" / "config" / "local.yaml"
DEMO_RECORD = ROOT / "deployments" / "local" / "demo.json"
MAX_UINT = 2**256 - 1
WAD = 10**18
NEAR_RATIO = Decimal("1.10")  # "near maintenance" below this health ratio


class Demo:
    def __init__(self, cli_ctx, console, result, cfg):
        from ape import Project

        self.ctx = cli_ctx
        self.console = console
        self.project = cli_ctx.local_project if cli_ctx.local_project.path == ROOT else Project(ROOT)
        record = result.record
        self.engine = self.project.MarginEngine.at(record.engine)
        self.lens = self.project.MarginLens.at(record.lens)
        self.deployer = cli_ctx.account_manager.test_accounts[0]
        self.tokens = {}
        self.feeds = {}
        self.decimals = {}
        self.symbol_of = {}
        for a in cfg.assets:
            arec = record.assets[a.symbol]
            self.tokens[a.symbol] = self.project.MockERC20.at(arec.token)
            self.feeds[a.symbol] = self.project.MockAggregator.at(arec.feed)
            self.decimals[a.symbol] = result.plan.listings[a.symbol].token_decimals
            self.symbol_of[arec.token.lower()] = a.symbol
        self.accounts = []  # (label, account, sub_id)

    # --- actions --------------------------------------------------------------
    def units(self, symbol, amount):
        return int(Decimal(str(amount)).scaleb(self.decimals[symbol]))

    def deposit(self, who, symbol, amount, sub_id=0):
        token = self.tokens[symbol]
        units = self.units(symbol, amount)
        token.mint(who, units, sender=who)
        if token.allowance(who, self.engine) != MAX_UINT:
            token.approve(self.engine, MAX_UINT, sender=who)
        self.engine.deposit(token, units, sub_id, sender=who)

    def borrow(self, who, symbol, amount, sub_id=0):
        self.engine.borrow(self.tokens[symbol], self.units(symbol, amount), sub_id, sender=who)

    def open(self, label, who, sub_id, deposits, borrows=()):
        for symbol, amount in deposits:
            self.deposit(who, symbol, amount, sub_id)
        for symbol, amount in borrows:
            self.borrow(who, symbol, amount, sub_id)
        self.accounts.append((label, who, sub_id))

    def set_price(self, symbol, price):
        feed = self.feeds[symbol]
        feed.set_answer(int(Decimal(str(price)).scaleb(feed.decimals())), sender=self.deployer)

    def republish_prices(self):
        for feed in self.feeds.values():
            feed.set_answer(feed.latestAnswer(), sender=self.deployer)

    # --- views ------------------------------------------------------------------
    def fmt_amount(self, symbol, units):
        value = Decimal(units).scaleb(-self.decimals[symbol])
        places = 2 if symbol == "USDC" else 4
        return f"{value:,.{places}f} {symbol}"

    def snapshot(self):
        """Health and balances of every demo account, read from the chain."""
        refs = [(who.address, sub) for _, who, sub in self.accounts]
        lens_healths = self.lens.healths(refs)
        rows = []
        for (label, who, sub), lh in zip(self.accounts, lens_healths):
            initial, maintenance, prices_valid = self.engine.health(who, sub)
            if (initial, maintenance) != (lh.initial, lh.maintenance):
                raise click.ClickException(f"{label}: engine.health and lens.healths disagree")
            deposits, debts = [], []
            for b in self.lens.balances(who, sub):
                symbol = self.symbol_of[b.asset.lower()]
                if b.deposit:
                    deposits.append(self.fmt_amount(symbol, b.deposit))
                if b.borrow:
                    debts.append(self.fmt_amount(symbol, b.borrow))
            rows.append(
                dict(
                    label=label,
                    who=who.address,
                    sub=sub,
                    deposits=deposits,
                    debts=debts,
                    initial=initial,
                    maintenance=maintenance,
                    ratio=lh.ratio,
                    valid=prices_valid and lh.prices_valid,
                )
            )
        return rows

    @staticmethod
    def status(row):
        if not row["valid"]:
            return "[red]price rejected[/]"
        if not row["debts"]:
            return "[dim]no debt[/]"
        if row["maintenance"] < 0:
            return "[bold red]LIQUIDATABLE[/]"
        ratio = Decimal(row["ratio"]) / WAD
        note = "[bold yellow]NEAR maintenance[/]" if ratio < NEAR_RATIO else "[green]healthy[/]"
        if row["initial"] < 0:
            note += "\n[yellow]below initial[/]"
        return note

    def print_accounts(self, title, rows):
        from rich.table import Table

        from scripts._xmargin_deploy.render import fmt_usd

        table = Table(title=title, title_justify="left", show_lines=True)
        table.add_column("account")
        table.add_column("deposits")
        table.add_column("debts")
        table.add_column("initial\nhealth", justify="right")
        table.add_column("maint.\nhealth", justify="right")
        table.add_column("health\nratio", justify="right")
        table.add_column("status", min_width=16)
        for r in rows:
            ratio = "∞" if r["ratio"] == MAX_UINT else f"{Decimal(r['ratio']) / WAD:.3f}"
            table.add_row(
                f"{r['label']}\n[dim]{r['who'][:10]}… sub {r['sub']}[/]",
                "\n".join(r["deposits"]) or "-",
                "\n".join(r["debts"]) or "-",
                fmt_usd(r["initial"]),
                fmt_usd(r["maintenance"]),
                ratio,
                self.status(r),
            )
        self.console.print(table)
        self.console.print(
            "[dim]health = Σ deposit·price·asset weight − Σ debt·price·liability weight (USD); "
            "ratio = maintenance collateral / maintenance debt; below 1 (maintenance health < 0) "
            "the account is liquidatable. Below initial (initial health < 0): no new borrows or withdrawals. "
            f"NEAR: ratio < {NEAR_RATIO}.[/]"
        )

    def print_markets(self, title):
        from rich.table import Table

        from scripts._xmargin_deploy.render import fmt_apr

        table = Table(title=title, title_justify="left")
        for name, justify in (
            ("market", "left"),
            ("price", "right"),
            ("deposits", "right"),
            ("borrows", "right"),
            ("utilisation", "right"),
            ("borrow rate", "right"),
            ("supply rate", "right"),
            ("insurance fund", "right"),
        ):
            table.add_column(name, justify=justify)
        for symbol, token in self.tokens.items():
            m = self.lens.market(token)
            price = Decimal(m.price).scaleb(self.decimals[symbol] - 36)
            table.add_row(
                symbol,
                f"${price:,.2f}" if m.price_valid else "[red]rejected[/]",
                self.fmt_amount(symbol, m.total_deposits),
                self.fmt_amount(symbol, m.total_borrows),
                f"{Decimal(m.utilisation) / WAD * 100:.2f}%",
                fmt_apr(m.borrow_rate).replace(" APR", ""),
                fmt_apr(m.supply_rate).replace(" APR", ""),
                self.fmt_amount(symbol, m.insurance_fund),
            )
        self.console.print(table)


@click.command(cls=ConnectedProviderCommand, short_help="Deploy xmargin locally and run the demo scenario")
@ape_cli_context()
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Deployment config with mock tokens/feeds for WETH, WBTC and USDC.",
)
def cli(cli_ctx, network, config_path):
    from ape import chain
    from ape.logging import logger

    from scripts._xmargin_deploy import ConfigError, load_config
    from scripts._xmargin_deploy.chain import deploy, engine_function
    from scripts._xmargin_deploy.record import display_path
    from scripts._xmargin_deploy.render import make_console

    if not network.is_dev:
        raise click.ClickException("the demo mints mock tokens and moves mock prices: use a local network")
    logger.set_level("WARNING")  # keep ape's per-transaction lines out of the demo output
    console = make_console(min_width=140)
    try:
        cfg = load_config(config_path)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    missing = {"WETH", "WBTC", "USDC"} - {a.symbol for a in cfg.assets}
    if missing or not all(a.token.mock and a.feed.mock for a in cfg.assets):
        raise click.ClickException("the demo needs mock WETH, WBTC and USDC in the config")

    console.rule(f"[bold]1. Deploy ({display_path(config_path)})")
    accounts = cli_ctx.account_manager.test_accounts
    DEMO_RECORD.unlink(missing_ok=True)  # the demo always starts on a fresh chain
    result = deploy(
        cfg,
        accounts[0],
        project=cli_ctx.local_project,
        record_path=DEMO_RECORD,
        console=console,
        config_path=display_path(config_path),
        show_plan=False,
        show_readback=False,
    )
    if not result.verified:
        raise click.ClickException("deployment read-back does not match the config")
    demo = Demo(cli_ctx, console, result, cfg)

    console.rule("[bold]2. Open positions")
    lender, eth_long, cross, moderate = accounts[1], accounts[2], accounts[3], accounts[4]
    steps = [
        ("lender", lender, 0, [("USDC", 200_000), ("WETH", 40), ("WBTC", 2)], []),
        ("ETH long", eth_long, 0, [("WETH", 10)], [("USDC", 14_000)]),
        ("ETH long · sub 1 (short ETH)", eth_long, 1, [("USDC", 30_000)], [("WETH", 5)]),
        ("cross-asset", cross, 0, [("WETH", 8), ("WBTC", "0.5")], [("USDC", 20_000), ("WETH", 4)]),
        ("moderate ETH long", moderate, 0, [("WETH", 10)], [("USDC", 12_500)]),
    ]
    for label, who, sub, deposits, borrows in steps:
        demo.open(label, who, sub, deposits, borrows)
        what = ", ".join(f"deposit {amount} {symbol}" for symbol, amount in deposits)
        what += "".join(f", borrow {amount} {symbol}" for symbol, amount in borrows)
        console.print(f"  [green]✓[/] {label}: {what}", highlight=False)
    before = demo.snapshot()
    demo.print_accounts("Accounts after opening (ETH $2,000, BTC $60,000, USDC $1)", before)
    demo.print_markets("Markets")

    console.rule("[bold]3. 30 days later, ETH/USD falls 20% ($2,000 → $1,600)")
    chain.mine(deltatime=30 * 86400)
    demo.republish_prices()  # the (mock) oracles keep publishing; otherwise prices go stale
    accrue = engine_function(demo.project, demo.engine.address, "accrue")  # may live in the extension
    for token in demo.tokens.values():
        accrue(token, sender=accounts[0])
    console.print("  [green]✓[/] time +30 days, feeds re-published, interest accrued on every market")
    eth_price = Decimal(demo.feeds["WETH"].latestAnswer()).scaleb(-demo.feeds["WETH"].decimals())
    demo.set_price("WETH", eth_price * Decimal("0.8"))
    console.print(f"  [green]✓[/] mock ETH / USD feed: ${eth_price:,.0f} → ${eth_price * Decimal('0.8'):,.0f}")
    after = demo.snapshot()
    demo.print_accounts("Accounts after the ETH drop", after)
    demo.print_markets("Markets after 30 days (interest accrued; insurance fund = reserve share)")

    console.rule("[bold]Summary")
    for b, a in zip(before, after):
        status_before = Demo.status(b).replace("\n", ", ")
        status_after = Demo.status(a).replace("\n", ", ")
        console.print(
            f"  • {a['label']}: maintenance health {_usd(b['maintenance'])} → {_usd(a['maintenance'])}; "
            f"{status_before} → {status_after}",
            highlight=False,
        )
    liquidatable = [a["label"] for a in after if a["debts"] and a["maintenance"] < 0]
    near = [
        a["label"]
        for a in after
        if a["debts"] and a["maintenance"] >= 0 and Decimal(a["ratio"]) / WAD < NEAR_RATIO
    ]
    console.print(f"Below maintenance (liquidatable): {', '.join(liquidatable) or 'none'}")
    console.print(f"Near maintenance (ratio < {NEAR_RATIO}): {', '.join(near) or 'none'}")
    for a in after:
        if a["sub"] == 0 or a["maintenance"] < 0:
            continue
        main = next((r for r in after if r["who"] == a["who"] and r["sub"] == 0), None)
        if main is not None and main["maintenance"] < 0:
            console.print(
                f"Sub-accounts are isolated: {a['label']} has maintenance health {_usd(a['maintenance'])}, "
                f"yet sub-account 0 of the same owner is liquidatable at {_usd(main['maintenance'])}.",
                highlight=False,
            )
    console.print(f"Deployment file: {display_path(DEMO_RECORD)}")


def _usd(wad):
    from scripts._xmargin_deploy.render import fmt_usd

    return fmt_usd(wad)
