"""Print the simulator API's speed with 1 and with 8 clients side by side.

Each run starts its own FerretDB and gunicorn over a fresh data directory
(serve.Stack) and replays the same simulator actions the way the
simulator does: a new connection per request, a 0.3 s timeout counted as
an error. Registrations, with their Argon2id password hash, are among
them. Figures only; nothing here passes or fails.

    .venv/bin/python bench/api_latency.py [--actions N] [--clients 1 8]
"""

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import replay  # noqa: E402
from serve import Stack  # noqa: E402

LABELS = ("register", "tweet", "follow", "unfollow")


def scenario_actions(count):
    """Return the first actions of the recorded scenario, or made-up ones."""
    if os.path.exists(replay.DEFAULT_SCENARIO):
        return list(replay.read_scenario(replay.DEFAULT_SCENARIO, count))
    return made_up_actions(count)


def made_up_actions(count, users=200):
    """Return actions shaped like the scenario: registers, then a mix."""
    names = [f"Bench Üser {i}" for i in range(users)]
    actions = [("register", n, (f"u{i}@example.com", "pw"))
               for i, n in enumerate(names)]
    number = 0
    while len(actions) < count:
        number += 1
        name = names[number % users]
        other = names[(number * 7) % users]
        kind = ("tweet", "tweet", "follow", "unfollow")[number % 4]
        args = (f"{name} says {number}",) if kind == "tweet" else (other,)
        actions.append((kind, name, args))
    return [replay.Action(i, *a) for i, a in enumerate(actions[:count])]


def measure(actions, clients):
    """Replay actions with `clients` lanes on a fresh stack; return Stats."""
    with tempfile.TemporaryDirectory(prefix="minitwit-bench-") as data_dir:
        with Stack(data_dir, app_log=Path(data_dir) / "app.log") as stack:
            return replay.replay(stack.base_url + "/api", actions,
                                 clients=clients, progress_every=0)


def row(name, values):
    return f"{name:<18}" + "".join(f"{v:>12}" for v in values)


def milliseconds(stats, p, label=None):
    value = stats.percentile(p, label)
    return "-" if value is None else f"{value * 1000:.1f}"


def report(results):
    """Print the runs side by side."""
    print(row("clients", [str(c) for c in results]))
    runs = list(results.values())
    print(row("requests", [str(s.count) for s in runs]))
    print(row("req/s", [f"{s.rps:.1f}" for s in runs]))
    for name, p in (("p50 ms", 50), ("p90 ms", 90), ("p99 ms", 99),
                    ("max ms", 100)):
        print(row(name, [milliseconds(s, p) for s in runs]))
    print(row("errors", [str(s.total_errors) for s in runs]))
    for label in LABELS:
        print(row(f"{label} p99 ms", [milliseconds(s, 99, label)
                                      for s in runs]))
    for clients, stats in results.items():
        for kind, number in sorted(stats.errors.items()):
            print(f"  {clients} clients: {number} x {kind}")


def main(argv=None):
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=3000,
                        help="scenario actions per run (%(default)s)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    actions = scenario_actions(args.actions)
    registers = sum(a.command == "register" for a in actions)
    print(f"{len(actions)} actions ({registers} registrations), "
          f"{os.cpu_count()} cores")
    results = {clients: measure(actions, clients)
               for clients in args.clients}
    report(results)


if __name__ == "__main__":
    main()
