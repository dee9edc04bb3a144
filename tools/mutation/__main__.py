"""`python -m tools.mutation {list,check,run,report}` (see tools/mutation/run.py)."""

from __future__ import annotations

import sys

import click

from tools.mutation.catalogue import MUTANTS, by_name
from tools.mutation.materialise import affected_deployables, occurrences
from tools.mutation.report import write_report
from tools.mutation.run import run


@click.group()
def cli() -> None:
    """Mutation testing of the xmargin contracts."""


@cli.command("list")
def list_mutants() -> None:
    """Every mutant: name, file, what it breaks."""
    for m in MUTANTS:
        click.echo(f"{m.name:42} {m.file:28} {m.description}")


@cli.command()
def check() -> None:
    """Each mutant's search text occurs exactly once in contracts/."""
    bad = [(m.name, n) for m in MUTANTS if (n := occurrences(m)) != 1]
    for name, n in bad:
        click.echo(f"{name}: search text occurs {n} times", err=True)
    if bad:
        sys.exit(1)
    click.echo(f"{len(MUTANTS)} mutants, each search text found once; "
               f"{sum(len(affected_deployables(m)) for m in MUTANTS)} deployable compiles in all")


@cli.command("run")
@click.argument("names", nargs=-1)
@click.option("--rounds", default=2, show_default=True, help="Invariant-machine runs per mutant (each skips the invariants already caught).")
@click.option("--invariant-timeout", default=900, show_default=True, help="Seconds per invariant-machine run.")
@click.option("--test-timeout", default=1200, show_default=True, help="Seconds for the test run.")
@click.option("--skip-invariants", is_flag=True, help="Only the regression tests (the machine results of an earlier run are kept).")
@click.option("--skip-done", is_flag=True, help="Leave out mutants already in results.json.")
def run_cmd(names, rounds, invariant_timeout, test_timeout, skip_invariants, skip_done) -> None:
    """Runs the invariants and tests against the mutants (all, or NAMES);
    results go to tools/mutation/results.json, then docs/mutation.md."""
    from tools.mutation.run import load_results

    mutants = [by_name(n) for n in names] if names else list(MUTANTS)
    if skip_done:
        done = load_results()
        mutants = [m for m in mutants if m.name not in done]
    run(mutants, rounds, invariant_timeout, test_timeout, skip_invariants)
    write_report()


@cli.command("attribute")
@click.argument("names", nargs=-1)
@click.option("--target", "targets", multiple=True, help="Invariant(s) to check instead of each mutant's `invariants`.")
@click.option("--skip-done", is_flag=True, help="Leave out (mutant, invariant) pairs already in results.json.")
@click.option("--no-keep-going", is_flag=True, help="Without XMARGIN_KEEP_GOING: stop at the first rule-level result check.")
@click.option("--timeout", default=900, show_default=True, help="Seconds per machine run.")
def attribute_cmd(names, targets, skip_done, no_keep_going, timeout) -> None:
    """Per mutant (all with aimed invariants, or NAMES), runs the protocol
    machine once per aimed invariant with only it checked
    (XMARGIN_ONLY_INVARIANTS, XMARGIN_KEEP_GOING=1); results go to
    tools/mutation/results.json ("targeted"), then docs/mutation.md."""
    from tools.mutation.run import attribute, load_results, save_targeted

    mutants = [by_name(n) for n in names] if names else [m for m in MUTANTS if m.invariants]
    done = load_results()
    for m in mutants:
        todo = list(targets or m.invariants)
        if skip_done:
            todo = [t for t in todo if t not in done.get(m.name, {}).get("targeted", {})]
        if not todo:
            continue
        save_targeted(m.name, attribute(m, todo, timeout, keep_going=not no_keep_going))
        write_report()


@cli.command()
def report() -> None:
    """Renders docs/mutation.md from tools/mutation/results.json."""
    write_report()


if __name__ == "__main__":
    cli()
