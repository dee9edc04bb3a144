"""Crash replay inputs (pure, no chain): scenarios and windows, the data
files and their quirks, the OHLC path and Chainlink's publication rule, and
the CLI's messages for bad input."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from scripts._xmargin_replay import prices
from scripts._xmargin_replay.prices import (
    Candle,
    Publisher,
    ReplayInputError,
    build_plan,
    candle_path,
    load_candles,
    load_rounds,
    resolve_scenario,
    utc,
)
from scripts.replay import main as replay_cli

DATA = prices.DATA_DIR


def test_default_scenario_is_black_thursday_hourly():
    sc = resolve_scenario(None, None, None, None)
    assert (sc.name, sc.source) == ("black-thursday", "coinbase")
    assert (sc.start, sc.end) == (utc("2020-03-11"), utc("2020-03-14")) == (1583884800, 1584144000)
    plan = build_plan(sc)
    assert plan.candles == 72 and len(plan.steps) == 72 * 12 + 1 and plan.step_seconds == 300
    # 2020-03-11 00:00 open, 8 decimals
    assert plan.steps[0].prices == {"WETH": 200_50000000, "WBTC": 7894_68000000}
    assert plan.steps[0].updates == plan.steps[0].prices  # the first answer is always published
    # Black Thursday's ETH low ($90.00, 2020-03-13 02:00 candle) is on the path
    assert min(s.prices["WETH"] for s in plan.steps) == 90_00000000


def test_candles_are_sorted_and_deduplicated():
    candles = load_candles(DATA / "coinbase_ethusd_1h_2017-2020.csv")
    starts = [c.start for c in candles]
    assert starts == sorted(set(starts))
    assert len(candles) == 28_965 - 5  # five duplicated hours dropped
    assert candles[0].start == 1498906800  # 2017-07-01 11:00, the oldest row


def test_invalid_chainlink_round_is_rejected_not_replayed():
    rounds, rejected = load_rounds(DATA / "chainlink_eth_usd_rounds_2023.csv")
    assert rejected == 1  # the oldest row: answer 0, updatedAt 0
    assert all(r.answer > 0 and r.updated_at > 0 for r in rounds)
    assert [r.updated_at for r in rounds] == sorted(r.updated_at for r in rounds)
    plan = build_plan(resolve_scenario("chainlink-2023-08", None, None, None))
    assert plan.rejected_rounds == 2 and plan.step_seconds == 0
    # every step publishes at least one recorded round, as recorded
    assert all(s.updates for s in plan.steps)


def test_path_goes_through_open_extremes_close():
    up = Candle(0, Decimal(100), Decimal(130), Decimal(90), Decimal(120))
    down = Candle(3600, Decimal(120), Decimal(125), Decimal(60), Decimal(70))
    path = candle_path([up, down], substeps=6)
    assert [t for t, _ in path] == [i * 600 for i in range(13)]
    # up candle: open, low at :20, high at :40, close; down candle: high first
    assert [p for _, p in path] == [100, 95, 90, 110, 130, 125, 120, 122.5, 125, 92.5, 60, 65, 70]
    with pytest.raises(ReplayInputError, match="substeps must divide 60 and be a multiple of 3"):
        candle_path([up], substeps=5)


def test_chainlink_rule_deviation_and_heartbeat():
    pub = Publisher(deviation_bps=50, heartbeat=3600)
    assert pub.offer(0, 100_000)  # first answer
    assert not pub.offer(60, 100_499)  # 0.499%: no update
    assert pub.offer(120, 100_500)  # 0.5%: update
    assert not pub.offer(3600, 100_500)  # 3,480 s since the last answer
    assert pub.offer(3720, 100_500)  # heartbeat: same answer republished
    assert not pub.offer(3780, 99_999)  # 501 / 100,500 = 0.4985% down: no update
    assert pub.offer(3790, 99_997)  # 503 / 100,500 = 0.5005% down: update
    down = Publisher(deviation_bps=50, heartbeat=3600)
    down.offer(0, 10_000)
    assert not down.offer(1, 9_951) and down.offer(2, 9_950)


def test_unknown_scenario_and_bad_windows_are_clear():
    with pytest.raises(ReplayInputError, match=r"unknown scenario 'flash-crash'; known: black-thursday, "):
        resolve_scenario("flash-crash", None, None, None)
    with pytest.raises(ReplayInputError, match="a custom window needs both --from and --to"):
        resolve_scenario(None, "2020-03-12", None, None)
    with pytest.raises(ReplayInputError, match="empty window"):
        resolve_scenario(None, "2020-03-12", "2020-03-11", None)
    with pytest.raises(ReplayInputError, match="not an ISO date/time: '12/03/2020'"):
        resolve_scenario(None, "12/03/2020", "2020-03-13", None)
    outside = resolve_scenario(None, "2021-01-01", "2021-01-02", "coinbase")
    with pytest.raises(ReplayInputError) as err:
        build_plan(outside)
    assert str(err.value) == (
        "window 2021-01-01 00:00 .. 2021-01-02 00:00 UTC is outside the coinbase_ethusd_1h_2017-2020.csv data for WETH "
        "(2017-07-01 11:00 .. 2020-10-20 08:00 UTC)"
    )
    with pytest.raises(ReplayInputError, match="scenario black-thursday replays coinbase data, not chainlink"):
        resolve_scenario("black-thursday", None, None, "chainlink")


def test_missing_data_file_names_the_path(tmp_path):
    shutil.copy(DATA / "coinbase_ethusd_1h_2017-2020.csv", tmp_path)
    with pytest.raises(ReplayInputError) as err:
        build_plan(resolve_scenario(None, None, None, None), data_dir=tmp_path)
    assert str(err.value).startswith(f"price data missing: {tmp_path / 'coinbase_btcusd_1h_2017-2020.csv'}")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scenario", "nope"], "unknown scenario 'nope'"),
        (["--from", "2019-01-01", "--to", "2019-01-02", "--source", "chainlink"], "is outside the chainlink_eth_usd_rounds_2023.csv data"),
        (["--from", "2020-03-12"], "a custom window needs both --from and --to"),
        (["--keeper-delay-hours", "72"], "--keeper-delay-hours 72 is not inside the window (72 h of price steps)"),
    ],
)
def test_cli_rejects_bad_input_before_starting_anything(args, message):
    result = CliRunner().invoke(replay_cli, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "anvil on" not in result.output  # nothing was started


def test_cli_lists_scenarios():
    result = CliRunner().invoke(replay_cli, ["--list"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()] == list(prices.SCENARIOS)


def test_late_keeper_latency_counts_from_its_start():
    from scripts._xmargin_replay.observer import AccountHealth, LatencyTracker

    below, above = AccountHealth(90, 100, 120, 100, True), AccountHealth(110, 100, 130, 100, True)
    a, b = ("0xA", 0), ("0xB", 0)
    tracker = LatencyTracker()
    tracker.observe(10, [a, b], [below, above])  # a waits from block 10, no keeper yet
    tracker.restart_waits(50)  # the keeper starts at block 50
    tracker.observe(60, [a, b], [below, below])  # b goes under after the start
    tracker.liquidated(a, 53)
    tracker.liquidated(b, 62)
    tracker.liquidated(a, 54)  # same episode: not counted again
    assert tracker.latencies == [3, 2]
