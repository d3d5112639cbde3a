"""``make demo``: the whole chain on 127.0.0.1 until Ctrl-C, with steady load and fault switches.

    python examples/demo/run.py [--app-port 8000] [--prometheus-port 9090] ...
    python examples/demo/run.py --vmalert        # vmagent + VictoriaMetrics + vmalert instead
    python examples/demo/run.py --ha             # 2 Prometheus replicas + 2 clustered Alertmanagers

Prints the URLs, then every notification the webhook receives. Flip a fault with
``curl -X POST http://127.0.0.1:8000/admin/faults -d '{"latency_ms": 800}'`` and watch it page
within ~15 s; ``curl -X DELETE …/admin/faults`` heals it.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import stack

FAULT_EXAMPLES = [
    '{"latency_ms": 800}', '{"error_rate": 0.5}', '{"cache_bypass": true}',
    '{"slow_query_ms": 300}', '{"hold_connections": 10}',
    '{"leak_threads_per_s": 1, "leak_tasks_per_s": 20}', '{"traffic_drop": 1.0}',
    '{"job_failure_rate": 0.5}', '{"job_delay_ms": 2000}', '{"jobs_paused": true}',
]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("app", 8000), ("prometheus", 9090), ("alertmanager", 9093),
                          ("webhook", 9095), ("sidecar", 9464)):
        parser.add_argument(f"--{name}-port", type=int, default=default,
                            help=f"default {default}; 0 picks a free port")
    parser.add_argument("--rps", type=float, default=20.0, help="load, requests per second")
    parser.add_argument("--duration", type=float, default=3600.0,
                        help="stop the load after this many seconds (default 3600)")
    parser.add_argument("--vmalert", action="store_true",
                        help="evaluate with vmagent + VictoriaMetrics + vmalert")
    parser.add_argument("--ha", action="store_true",
                        help="two Prometheus replicas (a on --prometheus-port, b on "
                        "--prometheus-b-port) and two clustered Alertmanagers")
    for name, default in (("prometheus-b", 9091), ("alertmanager-b", 9193)):
        parser.add_argument(f"--{name}-port", type=int, default=default,
                            help=f"with --ha: default {default}; 0 picks a free port")
    args = parser.parse_args(argv)
    if args.ha and args.vmalert:
        parser.error("--ha and --vmalert are separate set-ups; pick one")
    return args


def banner(running: stack.DemoStack, urls: dict[str, str] | None = None) -> str:
    lines = ["", "watchkeeper demo is up (everything on 127.0.0.1; Ctrl-C stops it):"]
    lines += [f"  {name:17} {url}" for name, url in (urls or running.urls()).items()]
    lines += ["", "Inject a fault (DELETE heals everything):"]
    lines += [f"  curl -X POST {running.app_url}/admin/faults -d '{example}'"
              for example in FAULT_EXAMPLES]
    ui = running.evaluator.url + ("/" if "victoria-metrics" in running.extra else "/alerts")
    lines += [f"  curl -X DELETE {running.app_url}/admin/faults", "",
              f"Alerts: {ui} (rule evaluator) or /api/v1/alerts; "
              f"routing: {running.alertmanager.url}/#/alerts",
              "Notifications received by the webhook are printed below.", ""]
    return "\n".join(lines)


def ha_hint(ha: stack.HAStack) -> str:
    """How to take a replica or a peer away mid-incident and bring it back: SIGSTOP freezes
    it (a hung machine), SIGCONT resumes it; the webhook must still get one page per group."""
    pids = {f"Prometheus {n}": d.proc.pid for n, d in ha.replicas.items()}
    pids |= {f"Alertmanager {n}": d.proc.pid for n, d in ha.peers.items()}
    lines = ["Lose a replica or a peer while a fault is on, then bring it back:"]
    lines += [f"  kill -STOP {pid}; sleep 30; kill -CONT {pid}   # {name}"
              for name, pid in pids.items()]
    return "\n".join([*lines, "See docs/e2e.md, section High availability.", ""])


@contextlib.contextmanager
def start(args: argparse.Namespace,
          ports: stack.Ports) -> Iterator[tuple[stack.DemoStack, dict[str, str],
                                                stack.HAStack | None]]:
    """The stack the flags ask for, the URLs its banner lists, and the HA handles."""
    if args.ha:
        with stack.ha_stack(ports, stack.HAPorts(args.prometheus_b_port,
                                                 args.alertmanager_b_port), echo=True) as ha:
            yield ha.demo, ha.urls(), ha
        return
    starter = stack.vm_stack if args.vmalert else stack.demo_stack
    with starter(ports, echo=True) as running:
        yield running, running.urls(), None


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    ports = stack.Ports(args.app_port, args.prometheus_port, args.alertmanager_port,
                        args.webhook_port, args.sidecar_port)
    # SIGTERM (e.g. from a supervisor) stops as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    evaluator = ("vmagent/VictoriaMetrics/vmalert" if args.vmalert else
                 "2 Prometheus replicas" if args.ha else "Prometheus")
    print("starting Redis, PostgreSQL, the demo service, the sidecar, Alertmanager"
          f"{' (2 clustered peers)' if args.ha else ''} and {evaluator}…", flush=True)
    try:
        with start(args, ports) as (running, urls, ha), loadgen.background(
                running.app_url, rps=args.rps, duration=args.duration):
            print(banner(running, urls), flush=True)
            if ha is not None:
                print(ha_hint(ha), flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopped; every process of the demo has exited.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
