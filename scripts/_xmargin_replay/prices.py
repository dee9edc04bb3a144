"""Historical prices for the crash replay: loading, scenario windows, the
intra-hour path and the Chainlink publication rule. Pure Python, no chain.

Data (``../shared/data/prices/``, see its README):

- ``coinbase_<eth|btc>usd_1h_2017-2020.csv``: hourly OHLC candles, newest
  first, a banner line before the header, five duplicated hours (sorted and
  de-duplicated here, first occurrence kept).
- ``chainlink_<eth|btc>_usd_rounds_2023.csv``: every round of the mainnet
  ETH/USD and BTC/USD feeds, newest first, answers with 8 decimals. The
  oldest row is a real invalid round (answer 0, updatedAt 0): it is
  rejected the way an on-chain consumer rejects it (answer <= 0 or
  updatedAt == 0) and counted, never replayed.

Candle path: an hourly candle only says where the price opened, closed and
how far it went either way; replaying only closes would hide intra-hour
crashes. Each candle becomes four anchors, open at :00, the two extremes at
:20 and :40 (low first on an up candle, high first on a down candle: the
usual OHLC path convention) and close at :60, and the path is linear
between anchors, sampled every ``60 / substeps`` minutes (``substeps``
divides 60 and is a multiple of 3, so the extremes are sampled exactly).

Publication: a mock feed only learns a price when the Chainlink rule would
publish it -- a deviation of at least ``deviation_bps`` from the last
published answer, or ``heartbeat`` seconds since it (mainnet ETH/USD and
BTC/USD: 0.5% and 3,600 s). Chainlink-round scenarios publish the recorded
rounds as they are.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT.parent / "shared" / "data" / "prices"
FEED_DECIMALS = 8
HOUR = 3600


class ReplayInputError(ValueError):
    """Bad replay input (missing data, unknown scenario, window outside the
    data); the message says what to do."""


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str  # "coinbase" (hourly candles) or "chainlink" (recorded rounds)
    start: int  # unix seconds, inclusive
    end: int  # unix seconds, exclusive
    description: str


def utc(text: str) -> int:
    """'2020-03-11' or '2020-03-11T06:00' (UTC) -> unix seconds."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ReplayInputError(f"not an ISO date/time: {text!r} (use e.g. 2020-03-11 or 2020-03-11T06:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("black-thursday", "coinbase", utc("2020-03-11"), utc("2020-03-14"),
                 "Black Thursday: ETH 194 -> 90, BTC 7,900 -> 3,800 (Coinbase hourly candles)"),
        Scenario("bear-2018-11", "coinbase", utc("2018-11-14"), utc("2018-11-21"),
                 "November 2018 capitulation: ETH 210 -> 130 (Coinbase hourly candles)"),
        Scenario("chainlink-2023-08", "chainlink", utc("2023-08-16"), utc("2023-08-19"),
                 "17 Aug 2023 flash drop: BTC 29.1k -> 25.4k, ETH 1,810 -> 1,550 (recorded Chainlink rounds)"),
        Scenario("chainlink-2023-06", "chainlink", utc("2023-06-04"), utc("2023-06-07"),
                 "SEC lawsuits week (recorded Chainlink rounds)"),
    )
}
DEFAULT_SCENARIO = "black-thursday"
SYMBOLS = ("WETH", "WBTC")  # replayed assets; USDC stays at $1
_FILES = {
    ("coinbase", "WETH"): "coinbase_ethusd_1h_2017-2020.csv",
    ("coinbase", "WBTC"): "coinbase_btcusd_1h_2017-2020.csv",
    ("chainlink", "WETH"): "chainlink_eth_usd_rounds_2023.csv",
    ("chainlink", "WBTC"): "chainlink_btc_usd_rounds_2023.csv",
}


def resolve_scenario(name: str | None, start: str | None, end: str | None, source: str | None) -> Scenario:
    """A named scenario, optionally narrowed/moved with --from/--to, or a
    custom window (--from and --to, source defaulting to coinbase)."""
    if name is not None and name not in SCENARIOS:
        raise ReplayInputError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)} (or give --from/--to)")
    if name is None and (start is None) != (end is None):
        raise ReplayInputError("a custom window needs both --from and --to (or pick a --scenario)")
    base = SCENARIOS[name or DEFAULT_SCENARIO]
    if name is None and start is not None:
        src = source or "coinbase"
        if src not in ("coinbase", "chainlink"):
            raise ReplayInputError(f"unknown source {src!r}: coinbase or chainlink")
        base = Scenario("custom", src, base.start, base.end, f"custom window ({src})")
    elif source is not None and source != base.source:
        raise ReplayInputError(f"scenario {base.name} replays {base.source} data, not {source}")
    s_start = utc(start) if start is not None else base.start
    s_end = utc(end) if end is not None else base.end
    if s_end <= s_start:
        raise ReplayInputError(f"empty window: --to ({iso(s_end)}) must be after --from ({iso(s_start)})")
    return Scenario(base.name, base.source, s_start, s_end, base.description)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Candle:
    start: int  # unix seconds, open of the hour
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True)
class Round:
    updated_at: int  # unix seconds
    answer: int  # 8 decimals


def data_file(source: str, symbol: str, data_dir: Path = DATA_DIR) -> Path:
    path = data_dir / _FILES[(source, symbol)]
    if not path.is_file():
        raise ReplayInputError(
            f"price data missing: {path} (the replay reads ../shared/data/prices/; see its README for the files)"
        )
    return path


def load_candles(path: Path) -> list[Candle]:
    """Hourly candles sorted by time, duplicates dropped."""
    with path.open(newline="") as f:
        banner = f.readline()
        if "Unix Timestamp" in banner:  # no banner line
            f.seek(0)
        rows = csv.DictReader(f)
        seen: dict[int, Candle] = {}
        for row in rows:
            ts = int(float(row["Unix Timestamp"]))
            if ts not in seen:
                seen[ts] = Candle(ts, *(Decimal(row[k]) for k in ("Open", "High", "Low", "Close")))
    return [seen[t] for t in sorted(seen)]


def load_rounds(path: Path) -> tuple[list[Round], int]:
    """Valid rounds sorted by updatedAt, and how many were rejected
    (answer <= 0 or updatedAt == 0, as the engine's oracle rejects them)."""
    rounds, rejected = {}, 0
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            answer, updated = int(row["answer"]), int(row["update"])
            if answer <= 0 or updated == 0:
                rejected += 1
                continue
            rounds.setdefault(updated, Round(updated, answer))
    return [rounds[t] for t in sorted(rounds)], rejected


# ---------------------------------------------------------------------------
# Paths and publication
# ---------------------------------------------------------------------------


def candle_path(candles: list[Candle], substeps: int) -> list[tuple[int, Decimal]]:
    """(time, price) every 3600/substeps s through open, extremes, close."""
    if substeps <= 0 or 60 % substeps or substeps % 3:
        raise ReplayInputError(f"substeps must divide 60 and be a multiple of 3 (3, 6, 12, ...); got {substeps}")
    out: list[tuple[int, Decimal]] = []
    third = substeps // 3
    for c in candles:
        first, second = (c.low, c.high) if c.close >= c.open else (c.high, c.low)
        anchors = [c.open, first, second, c.close]
        for i in range(substeps):
            seg, k = divmod(i, third)
            a, b = anchors[seg], anchors[seg + 1]
            out.append((c.start + i * HOUR // substeps, a + (b - a) * k / third))
    if candles:
        last = candles[-1]
        out.append((last.start + HOUR, last.close))
    return out


def to_answer(price: Decimal) -> int:
    """USD -> 8-decimal feed answer, rounded half-even (a feed answer, not an amount)."""
    return int(price.scaleb(FEED_DECIMALS).to_integral_value())


@dataclass
class Publisher:
    """The Chainlink rule for one feed: publish on a deviation of at least
    deviation_bps from the last answer, or after heartbeat seconds."""

    deviation_bps: int = 50
    heartbeat: int = HOUR
    last_answer: int | None = None
    last_time: int | None = None

    def offer(self, t: int, answer: int) -> bool:
        if self.last_answer is None or t - self.last_time >= self.heartbeat or (
            abs(answer - self.last_answer) * 10_000 >= self.deviation_bps * self.last_answer
        ):
            self.last_answer, self.last_time = answer, t
            return True
        return False


@dataclass
class Step:
    """One price step: the simulated time, every asset's market price, and
    the feed answers published at this step (symbol -> 8-decimal answer)."""

    t: int
    prices: dict[str, int]  # market price now (8 decimals), published or not
    updates: dict[str, int] = field(default_factory=dict)


@dataclass
class PricePlan:
    scenario: Scenario
    steps: list[Step]
    step_seconds: int  # simulated seconds between steps (coinbase) / 0 for round times
    rejected_rounds: int = 0
    candles: int = 0

    @property
    def updates(self) -> int:
        return sum(len(s.updates) for s in self.steps)

    def start_prices(self) -> dict[str, int]:
        return dict(self.steps[0].prices)


def _window_check(name: str, symbol: str, first: int, last: int, scenario: Scenario) -> None:
    if scenario.start < first or scenario.end > last:
        raise ReplayInputError(
            f"window {iso(scenario.start)} .. {iso(scenario.end)} UTC is outside the {name} data for {symbol} "
            f"({iso(first)} .. {iso(last)} UTC)"
        )


def build_plan(
    scenario: Scenario,
    *,
    substeps: int = 12,
    deviation_bps: int = 50,
    heartbeat: int = HOUR,
    data_dir: Path = DATA_DIR,
) -> PricePlan:
    """Every price step of the scenario with the answers published at each."""
    series: dict[str, list[tuple[int, int]]] = {}
    rejected = candles_n = 0
    for symbol in SYMBOLS:
        path = data_file(scenario.source, symbol, data_dir)
        if scenario.source == "coinbase":
            candles = load_candles(path)
            _window_check(path.name, symbol, candles[0].start, candles[-1].start + HOUR, scenario)
            window = [c for c in candles if scenario.start <= c.start < scenario.end]
            gaps = [b.start for a, b in zip(window, window[1:]) if b.start - a.start != HOUR]
            if gaps:
                raise ReplayInputError(f"{path.name}: hours missing before {iso(gaps[0])} UTC in the window")
            candles_n = max(candles_n, len(window))
            series[symbol] = [(t, to_answer(p)) for t, p in candle_path(window, substeps)]
        else:
            rounds, bad = load_rounds(path)
            rejected += bad
            _window_check(path.name, symbol, rounds[0].updated_at, rounds[-1].updated_at, scenario)
            before = [r for r in rounds if r.updated_at < scenario.start]
            window = [r for r in rounds if scenario.start <= r.updated_at < scenario.end]
            # the round in force at the start, republished at the start
            series[symbol] = [(scenario.start, before[-1].answer)] + [(r.updated_at, r.answer) for r in window]

    times = sorted({t for s in series.values() for t, _ in s})
    steps: list[Step] = []
    cursor = {s: 0 for s in series}
    current: dict[str, int] = {}
    publishers = {s: Publisher(deviation_bps, heartbeat) for s in series}
    for t in times:
        step = Step(t, {})
        for symbol, points in series.items():
            i = cursor[symbol]
            if i < len(points) and points[i][0] == t:
                current[symbol] = points[i][1]
                cursor[symbol] = i + 1
                if scenario.source == "chainlink":
                    step.updates[symbol] = points[i][1]  # a recorded round: published as is
            step.prices[symbol] = current.get(symbol, series[symbol][0][1])
            if scenario.source == "coinbase" and publishers[symbol].offer(t, step.prices[symbol]):
                step.updates[symbol] = step.prices[symbol]
        steps.append(step)
    return PricePlan(
        scenario=scenario,
        steps=steps,
        step_seconds=HOUR // substeps if scenario.source == "coinbase" else 0,
        rejected_rounds=rejected,
        candles=candles_n,
    )
