"""`watchkeeper backtest`: arguments, the run, and what is printed or written."""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime
from pathlib import Path

from watchkeeper.backtest import engine, report, source
from watchkeeper.backtest.client import MAX_POINTS, BacktestError, Client
from watchkeeper.backtest.promql import PromQLError, parse_duration


def add_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--prometheus", required=True, metavar="URL",
                         help="Prometheus or VictoriaMetrics base URL holding the history")
    command.add_argument("--from", dest="start", metavar="T",
                         help="range start: RFC 3339 or Unix seconds")
    command.add_argument("--to", dest="end", metavar="T",
                         help="range end: RFC 3339 or Unix seconds (default now)")
    command.add_argument("--since", metavar="DURATION",
                         help="range start relative to --to, e.g. 7d (instead of --from)")
    command.add_argument("--step", default="1m",
                         help="evaluation interval to replay (default 1m)")
    command.add_argument("--out", metavar="DIR",
                         help="write index.html and one picture per service into DIR")
    command.add_argument("--json", action="store_true", help="print episodes as JSON")
    command.add_argument("--service", action="append", default=[],
                         help="only this service's alerts (repeatable)")
    command.add_argument("--max-points", type=int, default=MAX_POINTS,
                         help=f"points per series per query (default {MAX_POINTS}, "
                         "Prometheus' limit)")
    command.add_argument("--timeout", type=float, default=120.0, help="seconds per request")


def parse_time(value: str, option: str) -> float:
    """Unix seconds from ``1700000000``, ``1700000000.5`` or RFC 3339."""
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise BacktestError(f"{option} expects RFC 3339 (2026-11-23T00:00:00Z) or Unix "
                            f"seconds, got {value!r}") from None
    if moment.tzinfo is None:
        raise BacktestError(f"{option} {value!r} has no time zone; add Z or an offset")
    return moment.timestamp()


def _duration(value: str, option: str) -> float:
    try:
        return parse_duration(value)
    except PromQLError:
        raise BacktestError(f"{option} expects a duration such as 30s, 1m or 7d, "
                            f"got {value!r}") from None


def window(args: argparse.Namespace, now: float | None = None) -> engine.Window:
    end = parse_time(args.end, "--to") if args.end else (now or time.time())
    if args.start and args.since:
        raise BacktestError("give --from or --since, not both")
    if args.start:
        start = parse_time(args.start, "--from")
    elif args.since:
        start = end - _duration(args.since, "--since")
    else:
        raise BacktestError("give the range: --from T (and --to T), or --since 7d")
    return engine.Window.of(start, end, _duration(args.step, "--step"))


def run(args: argparse.Namespace, ext_vars: dict[str, str]) -> int:
    span = window(args)
    client = Client(args.prometheus, timeout=args.timeout, max_points=args.max_points)
    rules = source.rule_set(args.spec, ext_vars)
    plan = engine.plan(rules, span, args.service)
    engine.check_data(client, plan)
    episodes = engine.run(client, plan)
    if args.out:
        from watchkeeper.backtest import pictures

        index = pictures.write_report(Path(args.out), client, plan, episodes)
        if not args.json:
            print(f"wrote {index}", flush=True)
    if args.json:
        print(json.dumps(report.document(episodes, span, len(plan.alerts)), indent=1))
    else:
        print(report.text(episodes, span, len(plan.alerts)))
    return 0
