"""`python -m scripts._xmargin_sim seed --n 10000 --seed 7 --profile mixed`:
builds (or finds in the cache) a deployed + seeded anvil state file and
prints where it is and what it holds."""

from __future__ import annotations

import time
from collections import Counter

import click


@click.group()
def cli() -> None:
    """xmargin simulation helpers."""


@cli.command()
@click.option("--n", "n", default=1_000, show_default=True, help="Sub-accounts to open.")
@click.option("--seed", default=0, show_default=True)
@click.option("--profile", default="mixed", show_default=True, help="mixed | risky | calm | eth_longs")
@click.option("--rebuild", is_flag=True, help="Ignore the cache.")
def seed(n: int, seed: int, profile: str, rebuild: bool) -> None:
    """Build or find a seeded chain state (anvil --load-state file)."""
    from .seed import seeded_state

    t = time.monotonic()
    state = seeded_state(n=n, seed=seed, profile=profile, rebuild=rebuild)
    kinds = Counter(a.kind for a in state.accounts)
    click.echo(f"state:   {state.state_path}")
    click.echo(f"record:  {state.record_path}")
    click.echo(f"head:    block {state.head_block}; {len(state.accounts)} accounts {dict(kinds)}")
    click.echo(f"took:    {time.monotonic() - t:.1f} s")
    click.echo(f"use:     anvil --load-state {state.state_path}")


if __name__ == "__main__":
    cli()
