"""Crash replay: real market prices through a live deployment and keeper.

    python -m scripts.replay                          # Black Thursday, 500 accounts (= make replay)
    python -m scripts.replay --scenario chainlink-2023-08
    python -m scripts.replay --from 2020-03-12 --to 2020-03-13T12:00 --accounts 200
    python -m scripts.replay --list

Starts a private anvil, deploys with `ape run deploy`
(deployments/config/local.yaml), opens a seeded random population, starts
`xmargin-keeper run` as a separate process, replays the prices of
../shared/data/prices/ through the mock Chainlink feeds, and writes
report.md, report.json and PNG plots (default out/replay/<scenario>/). The
node and the keeper are stopped on every exit path, Ctrl-C included.
Logic: scripts/_xmargin_replay/ (prices, runner, report, plots).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--scenario", default=None, help="Named window (see --list); default black-thursday.")
@click.option("--from", "start", default=None, help="Window start, UTC ISO date/time (e.g. 2020-03-12 or 2020-03-12T06:00).")
@click.option("--to", "end", default=None, help="Window end (exclusive), UTC ISO date/time.")
@click.option("--source", type=click.Choice(["coinbase", "chainlink"]), default=None,
              help="Data for a custom --from/--to window: coinbase hourly candles (2017-07..2020-10) or chainlink rounds (2023-04..2024-01).")
@click.option("--accounts", default=500, show_default=True, type=click.IntRange(2, 20_000), help="Population size.")
@click.option("--seed", default=1, show_default=True, type=int, help="Population seed.")
@click.option("--profile", default="mixed", show_default=True, help="Population profile (scripts/_xmargin_sim).")
@click.option("--substeps", default=12, show_default=True, type=int, help="Price steps per hourly candle (divides 60, multiple of 3).")
@click.option("--blocks-per-step", default=2, show_default=True, type=click.IntRange(1, 50))
@click.option("--block-wall", default=0.08, show_default=True, type=click.FloatRange(0, 5), help="Wall seconds between blocks on steps with a new answer.")
@click.option("--keeper", type=click.Choice(["process", "none"]), default="process", show_default=True,
              help="none: replay without a keeper (shows what would be left undone).")
@click.option("--keeper-delay-hours", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Start the keeper process only after this many hours of the window (a late keeper: accounts fall insolvent first).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder (default out/replay/<scenario>).")
@click.option("--keep-run-dir", is_flag=True, help="Keep the run folder (node/keeper logs, configs) after success.")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
def main(scenario, start, end, source, accounts, seed, profile, substeps, blocks_per_step, block_wall, keeper,
         keeper_delay_hours, out_dir, keep_run_dir, list_only):
    from scripts._xmargin_replay.prices import SCENARIOS, ReplayInputError, build_plan, iso, resolve_scenario
    from scripts._xmargin_replay.processes import install_signal_handlers

    console = Console(soft_wrap=True)
    if list_only:
        for s in SCENARIOS.values():
            click.echo(f"{s.name:20} {iso(s.start)} .. {iso(s.end)} UTC  {s.source:9}  {s.description}")
        return
    try:
        sc = resolve_scenario(scenario, start, end, source)
        plan = build_plan(sc, substeps=substeps)  # bad data / window fail here, before anything starts
        window_hours = (plan.steps[-1].t - plan.steps[0].t) / 3600
        if keeper_delay_hours >= window_hours:
            raise ReplayInputError(f"--keeper-delay-hours {keeper_delay_hours:g} is not inside the window ({window_hours:g} h of price steps)")
    except ReplayInputError as err:
        raise click.UsageError(str(err)) from None
    install_signal_handlers()
    sys.exit(run(sc, console, out_dir or ROOT / "out" / "replay" / sc.name, accounts=accounts, seed=seed, profile=profile,
                 substeps=substeps, blocks_per_step=blocks_per_step, block_wall=block_wall, keeper=keeper,
                 keeper_delay_hours=keeper_delay_hours, keep_run_dir=keep_run_dir))


def run(sc, console: Console, out_dir: Path, **kw) -> int:
    from scripts._xmargin_replay.plots import write_plots
    from scripts._xmargin_replay.report import analyse, write_report
    from scripts._xmargin_replay.runner import ReplayError, ReplayOptions, run_replay

    started = time.monotonic()
    options = ReplayOptions(scenario=sc, **kw)
    console.print(f"[bold]replay[/] {sc.name}: {sc.description}")
    try:
        report = run_replay(options, console, analyse)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]: node and keeper stopped")
        return 130
    except ReplayError as err:
        console.print(f"[red]replay failed:[/] {err}")
        return 1
    points = [(e["t"], e["seize"], e["seize_price"]) for e in report["liquidation_events"]]
    plots = write_plots(report, points, out_dir)
    wall = time.monotonic() - started
    md, js = write_report(report, out_dir, wall, plots)
    print_headline(console, report, wall)
    console.print(f"report: {md} , {js} , plots: {', '.join(plots)}")
    below = report["end"]["accounts_below_maintenance"]
    if below and options.keeper == "process":
        console.print(f"[red]{below} account(s) still below maintenance at the end[/] (expected 0 with the keeper running)")
        return 1
    return 0


def print_headline(console: Console, r: dict, wall: float) -> None:
    t = Table(title=f"replay {r['scenario']['name']} ({wall:.0f} s)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    li, bd, lat = r["liquidations"], r["bad_debt"], r["keeper_latency_blocks"]
    t.add_row("liquidations", f"{li['count']} ({li['accounts']} accounts)")
    t.add_row("volume repaid", f"${li['volume_usd']:,.0f}")
    t.add_row("bad debt", f"${bd['usd']:,.0f} ({bd['events']} events)")
    t.add_row("insurance fund used", f"${sum(a['usd'] for a in r['insurance_fund_used'].values()):,.0f}")
    t.add_row("losses socialised", f"${sum(a['usd'] for a in r['losses_socialised'].values()):,.0f}")
    t.add_row("keeper latency (median/p90/max blocks)", f"{lat['median']}/{lat['p90']}/{lat['max']}" if lat.get("episodes") else "n/a")
    t.add_row("gas per liquidation (mean)", f"{r['gas']['liquidation']['mean']:,}")
    t.add_row("below maintenance at end", str(r["end"]["accounts_below_maintenance"]))
    console.print(t)


if __name__ == "__main__":
    main()
