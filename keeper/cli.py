"""``xmargin-keeper``: the keeper's command line.

  xmargin-keeper run    --config keeper.toml   # run until SIGINT/SIGTERM
  xmargin-keeper scan   --config keeper.toml [--json]   # one-shot health report
  xmargin-keeper status --config keeper.toml [--json]   # store + node summary
  xmargin-keeper deploy-flash --config keeper.toml --dex 0x...  # deploy KeeperFlashLiquidator

Exit codes: see keeper.errors (0 ok, 1 internal, 2 usage, 65 startup check
failed, 69 node unreachable, 77 key error, 78 bad config).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import click

from .errors import EXIT_INTERNAL, EXIT_NODE_UNREACHABLE, EXIT_OK, ConfigError, KeeperError
from .logs import configure


def _load(config: str | None, overrides: dict) -> "KeeperSettings":  # noqa: F821
    from .config import load_settings

    return load_settings(config, **overrides)


def _fail(exc: KeeperError) -> None:
    lines = exc.issues if isinstance(exc, ConfigError) else [str(exc)]
    click.echo(f"xmargin-keeper: {exc.__class__.__name__}:", err=True)
    for line in lines:
        click.echo(f"  {line}", err=True)
    sys.exit(exc.exit_code)


config_option = click.option(
    "--config", "-c", "config", type=click.Path(dir_okay=False), envvar="XMARGIN_KEEPER_CONFIG",
    help="TOML config file (env: XMARGIN_KEEPER_CONFIG). XMARGIN_KEEPER_* variables override it.",
)


@click.group()
@click.version_option(package_name="xmargin")
def cli() -> None:
    """xmargin liquidation keeper."""


@cli.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Paper mode: plan and simulate, never send a transaction.")
def run(config: str | None, dry_run: bool) -> None:
    """Run the keeper until SIGINT/SIGTERM."""
    try:
        overrides = {"strategy": {"dry_run": True}} if dry_run else {}
        settings = _load(config, overrides)
        configure(settings.log.level, settings.log.json_logs)
        from .bot import Keeper

        keeper = Keeper(settings)
    except KeeperError as exc:
        _fail(exc)
        return

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await keeper.run(stop)

    try:
        asyncio.run(main())
    except KeeperError as exc:
        _fail(exc)
    sys.exit(EXIT_OK)


def _usd(wad: int) -> str:
    return f"{wad / 10**18:,.2f}"


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (integers as decimal strings).")
@click.option("--liquidatable-only", is_flag=True, help="Only accounts with maintenance health < 0.")
def scan(config: str | None, as_json: bool, liquidatable_only: bool) -> None:
    """One-shot health report of every account (sends nothing)."""
    try:
        settings = _load(config, {"store": {"db_path": ":memory:"}, "metrics": {"port": 0}})
        configure(settings.log.level if not as_json else "warning", settings.log.json_logs)
        from .bot import Keeper

        keeper = Keeper(settings)

        async def main():
            try:
                return await keeper.scan()
            finally:
                await keeper.close()

        rows = asyncio.run(main())
    except KeeperError as exc:
        _fail(exc)
        return
    if liquidatable_only:
        rows = [r for r in rows if r.liquidatable]
    if as_json:
        out = [
            dict(owner=r.owner, sub_id=r.sub_id, collateral=str(r.collateral), debt=str(r.debt), health=str(r.health),
                 ratio=str(r.ratio), prices_valid=r.prices_valid, liquidatable=r.liquidatable, plan=r.plan)
            for r in rows
        ]
        click.echo(json.dumps({"block": keeper.state.processed, "accounts": out}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"xmargin accounts at block {keeper.state.processed} (maintenance health, USD)")
    for col in ("owner", "sub", "collateral", "debt", "health", "ratio", "prices", "liquidation"):
        table.add_column(col, justify="right" if col in ("sub", "collateral", "debt", "health", "ratio") else "left")
    for r in rows:
        ratio = "∞" if r.ratio >= 2**255 else f"{r.ratio / 10**18:.4f}"
        style = "red" if r.liquidatable else None
        table.add_row(r.owner, str(r.sub_id), _usd(r.collateral), _usd(r.debt), _usd(r.health), ratio,
                      "ok" if r.prices_valid else "REJECTED", r.plan, style=style)
    console = Console(width=200)
    console.print(table)
    console.print(f"{len(rows)} account(s), {sum(r.liquidatable for r in rows)} liquidatable")


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True)
def status(config: str | None, as_json: bool) -> None:
    """Last processed block, head lag, in-flight transactions, tracked accounts (from the store + node)."""
    try:
        settings = _load(config, {})
        configure("warning", settings.log.json_logs)
        from .store import PENDING, Store
        from .rpc import Rpc, RpcError, RpcUnavailable

        db = settings.store.db_path
        if str(db) != ":memory:" and not Path(db).is_file():
            raise ConfigError(f"store.db_path: {db} does not exist (has the keeper run?)")
        store = Store(db)
        last = store.last_block()
        chain_id, engine = store.identity()
        pending = store.txs(PENDING)
        recent = store.txs()[-10:]
        accounts = store.account_count()
        store.close()

        async def head() -> int | None:
            async with Rpc(settings.chain.rpc_http, timeout=settings.chain.request_timeout, max_retries=1) as rpc:
                try:
                    return await rpc.block_number()
                except (RpcUnavailable, RpcError):
                    return None

        node_head = asyncio.run(head())
    except KeeperError as exc:
        _fail(exc)
        return
    info = {
        "chain_id": chain_id,
        "engine": engine,
        "last_block": last[0] if last else None,
        "last_hash": last[1] if last else None,
        "head": node_head,
        "lag": (node_head - last[0]) if (node_head is not None and last) else None,
        "accounts_tracked": accounts,
        "in_flight": [dict(nonce=t.nonce, kind=t.kind, account=t.account, hash=t.hash, max_fee=str(t.max_fee),
                           tip=str(t.tip), bumps=t.bumps, sent_block=t.sent_block) for t in pending],
        "recent": [dict(nonce=t.nonce, kind=t.kind, status=t.status, account=t.account, hash=t.hash) for t in recent],
    }
    if as_json:
        click.echo(json.dumps(info, indent=1))
    else:
        from rich.console import Console

        c = Console(width=200)
        c.print(f"chain {chain_id}  engine {engine}")
        c.print(f"last processed block {info['last_block']}  node head {node_head if node_head is not None else 'UNREACHABLE'}"
                f"  lag {info['lag']}")
        c.print(f"accounts tracked {accounts}  in-flight txs {len(pending)}")
        for t in info["in_flight"]:
            c.print(f"  nonce {t['nonce']} {t['kind']} {t['account'] or ''} {t['hash']} bumps {t['bumps']}")
    if node_head is None:
        sys.exit(EXIT_NODE_UNREACHABLE)


@cli.command("deploy-flash")
@config_option
@click.option("--dex", required=True, help="Swap venue address (swap(token_in, amount_in, token_out)).")
def deploy_flash(config: str | None, dex: str) -> None:
    """Deploy KeeperFlashLiquidator(engine, dex, keeper) from the keeper's key; prints its address."""
    try:
        settings = _load(config, {})
        configure(settings.log.level, settings.log.json_logs)
        from .flash import deploy_flash_liquidator

        address = asyncio.run(deploy_flash_liquidator(settings, dex))
    except KeeperError as exc:
        _fail(exc)
        return
    click.echo(address)


def main() -> None:
    """Console-script entry point."""
    try:
        cli(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # a bug: log it and use the internal-error code
        click.echo(f"xmargin-keeper: internal error: {exc.__class__.__name__}: {exc}", err=True)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
