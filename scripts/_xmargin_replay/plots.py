"""PNG plots of a replay report (matplotlib, Agg backend: no display needed).

- prices.png: every WETH and WBTC answer the feeds published (AnswerUpdated
  events), liquidations marked at their blocks' times and feed prices (one
  marker per Liquidation event, by seized asset);
- health.png: borrowers by maintenance health ratio bucket over time
  (stacked), from MarginEngine.weighted_health once per simulated hour;
- insurance.png: insurance fund per asset in USD over time.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from .observer import RATIO_BUCKETS  # noqa: E402


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _style(ax, title: str) -> None:
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_ha("right")


def write_plots(report: dict, liquidation_points: list[tuple[int, str, float]], out_dir: Path) -> list[str]:
    """Writes the three PNGs; returns their file names. `liquidation_points`:
    (timestamp, seized symbol, feed price at the block) per Liquidation event."""
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = report["samples"]
    times = [_dt(s["t"]) for s in samples]
    names = []

    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for ax, symbol, color in zip(axes, ("WETH", "WBTC"), ("tab:blue", "tab:orange")):
        path = report["feed_path"][symbol]
        ax.step([_dt(t) for t, _ in path], [p for _, p in path], where="post", color=color, linewidth=1,
                label=f"{symbol} feed answers ({len(path)})")
        pts = [(t, p) for t, sym, p in liquidation_points if sym == symbol]
        if pts:
            ax.scatter([_dt(t) for t, _ in pts], [p for _, p in pts], marker="v", color="red", s=14, zorder=3,
                       label=f"liquidation seizing {symbol} ({len(pts)})")
        ax.set_ylabel("USD")
        ax.legend(loc="upper right", fontsize=8)
        _style(ax, f"{symbol} price and liquidations")
    fig.suptitle(f"{report['scenario']['name']}: {report['liquidations']['count']} liquidations", fontsize=12)
    fig.tight_layout()
    fig.savefig(out_dir / "prices.png", dpi=110)
    plt.close(fig)
    names.append("prices.png")

    fig, ax = plt.subplots(figsize=(10, 4.5))
    series = list(zip(*[s["ratio_buckets"] for s in samples]))
    colors = ["#d62728", "#ff7f0e", "#ffbb78", "#98df8a", "#2ca02c", "#1f77b4"]
    ax.stackplot(times, *series, labels=[b[2] for b in RATIO_BUCKETS], colors=colors, alpha=0.85)
    ax.set_ylabel("borrowers with debt")
    ax.legend(loc="upper right", fontsize=8, title="maintenance health ratio")
    _style(ax, "Health distribution over time (MarginEngine.weighted_health, hourly)")
    fig.tight_layout()
    fig.savefig(out_dir / "health.png", dpi=110)
    plt.close(fig)
    names.append("health.png")

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for symbol in samples[0]["insurance_fund"]:
        ax.plot(times, [s["insurance_fund"][symbol] * s["prices"][symbol] for s in samples], label=symbol)
    ax.plot(times, [s["insurance_fund_usd"] for s in samples], color="black", linestyle="--", label="total")
    ax.set_ylabel("USD")
    ax.legend(loc="upper left", fontsize=8)
    _style(ax, "Insurance fund balance (MarginLens.market, USD at the feed price)")
    fig.tight_layout()
    fig.savefig(out_dir / "insurance.png", dpi=110)
    plt.close(fig)
    names.append("insurance.png")
    return names
