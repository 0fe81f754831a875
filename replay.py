"""Simulator stand-in: replays a scenario or loads the API with clients.

Replay sends each action of a scenario file to the simulator API the way
the simulator does: a fresh connection per request, the simulator's
headers, ``?latest=<action id>`` and a 0.3 s timeout that counts as an
error.  Load mode runs concurrent clients with a weighted mix of reads and
writes for a bounded time.  Both end with errors by kind, throughput and
latency percentiles.

    python replay.py BASE_URL [SCENARIO] [--limit N] [--start K]
    python replay.py load BASE_URL --clients N --seconds S [--users U]
"""

import argparse
import http.client
import ipaddress
import json
import logging
import math
import os
import random
import sys
import threading
import time
import urllib.parse
from collections import Counter, namedtuple

logger = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCENARIO = os.path.join(HERE, "..", "shared", "data", "scenario.tsv")
DEFAULT_TIMEOUT = 0.3

HEADERS = {
    "Connection": "close",
    "Content-Type": "application/json",
    "Authorization": "Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh",
}
USERNAME_TAKEN = "The username is already taken"

Action = namedtuple("Action", "id command username args")
Request = namedtuple("Request", "label method path body expected")
Target = namedtuple("Target", "scheme host port prefix")

# How many fields follow the username, per command; the last field of a
# register line is the password whatever it contains.
ARGUMENTS = {"register": 2, "tweet": 1, "follow": 1, "unfollow": 1}


# ---------------------------------------------------------------- scenario

def parse_action(line):
    """Return the Action of one tab-separated scenario line."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 6 or fields[3] not in ARGUMENTS:
        raise ValueError(f"not a scenario action: {line[:80]!r}")

    action_id, command, username = int(fields[0]), fields[3], fields[4]
    rest = fields[5:]
    if command == "register":
        args = ("\t".join(rest[:-1]), rest[-1])
    else:
        # NOTE: the format has no quoting, so a stray tab is part of
        # the text or name rather than a new field.
        args = ("\t".join(rest),)
    return Action(action_id, command, username, args)


def read_scenario(path, limit=None, start=0):
    """Yield the actions of a scenario file, from id `start`, at most
    `limit` of them."""
    taken = 0
    with open(path, encoding="utf-8", newline="\n") as lines:
        for number, line in enumerate(lines, 1):
            if limit is not None and taken >= limit:
                return
            if not line.strip():
                continue
            try:
                action = parse_action(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
            if action.id < start:
                continue
            taken += 1
            yield action


# ---------------------------------------------------------------- requests

def user_path(username):
    """Return a username percent-encoded as one path segment."""
    return urllib.parse.quote(username, safe="")


def request_for(action):
    """Return the API request that carries a scenario action."""
    user = user_path(action.username)
    if action.command == "register":
        email, password = action.args
        body = {"username": action.username, "email": email, "pwd": password}
        return Request("register", "POST", "/register", body, 204)
    if action.command == "tweet":
        body = {"content": action.args[0]}
        return Request("tweet", "POST", "/msgs/" + user, body, 204)
    body = {action.command: action.args[0]}
    return Request(action.command, "POST", "/fllws/" + user, body, 204)


def parse_base_url(base_url):
    """Return the Target of a base URL such as http://127.0.0.1:8080/api."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base URL must be http(s)://host[:port][/path]")

    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Target(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def request_path(target, request, latest):
    """Return the path and query a request is sent to."""
    separator = "&" if "?" in request.path else "?"
    return f"{target.prefix}{request.path}{separator}latest={latest:d}"


def action_url(base_url, action):
    """Return the full URL the simulator sends an action to."""
    target = parse_base_url(base_url)
    host = target.host if ":" not in target.host else f"[{target.host}]"
    path = request_path(target, request_for(action), action.id)
    return f"{target.scheme}://{host}:{target.port}{path}"


# ------------------------------------------------------------------ client

def send(target, request, latest, timeout):
    """Send one request on a connection of its own; return status, body."""
    if target.scheme == "https":
        connection = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(
            target.host, target.port, timeout=timeout)
    body = None if request.body is None else json.dumps(request.body)
    try:
        connection.request(request.method,
                           request_path(target, request, latest),
                           body=body, headers=HEADERS)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def is_username_taken(status, payload):
    """Tell whether a reply is the register error the simulator tolerates."""
    if status != 400:
        return False
    try:
        return json.loads(payload).get("error_msg") == USERNAME_TAKEN
    except (ValueError, AttributeError):
        return False


def judge(request, status, payload, latency, timeout):
    """Return the error kind of a reply (or None) and whether the simulator
    would tolerate it."""
    if status == request.expected:
        error, tolerated = None, False
    elif request.label == "register" and is_username_taken(status, payload):
        error, tolerated = None, True
    else:
        return f"{request.label}: {status}", False

    # The socket timeout bounds each read, not the whole reply; the
    # simulator counts any reply slower than its timeout as an error.
    if latency > timeout:
        error = "slow"
    return error, tolerated


def perform(target, request, latest, timeout, stats):
    """Send a request, judge its reply and record it in `stats`."""
    started = time.perf_counter()
    try:
        status, payload = send(target, request, latest, timeout)
    except TimeoutError:
        return stats.record(request.label, time.perf_counter() - started,
                            "timeout")
    except (OSError, http.client.HTTPException) as exc:
        logger.debug("%s latest=%d: %r", request.label, latest, exc)
        # A refused or broken connection says nothing about speed.
        return stats.record(request.label, None, "connection error")
    latency = time.perf_counter() - started

    error, tolerated = judge(request, status, payload, latency, timeout)
    if error:
        logger.debug("%s latest=%d: %s %r", request.label, latest, error,
                     payload[:200])
    return stats.record(request.label, latency, error, tolerated)


# ------------------------------------------------------------------- stats

def percentile(values, p):
    """Return the nearest-rank p-th percentile of sorted values, or None."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[min(rank, len(values)) - 1]


class Stats:
    """Counts, errors by kind and latencies of a run, safe across threads."""

    def __init__(self):
        self.count = 0
        self.errors = Counter()
        self.tolerated = Counter()
        self.latencies = []
        self.elapsed = 0.0
        self.counts = Counter()
        self.failures = Counter()
        self.latencies_by = {}
        self._lock = threading.Lock()

    def record(self, label, latency, error=None, tolerated=False):
        """Record one request; return the number recorded so far."""
        with self._lock:
            self.count += 1
            self.counts[label] += 1
            if error:
                self.errors[error] += 1
                self.failures[label] += 1
            if tolerated:
                self.tolerated[label + ": 400 username taken"] += 1
            if latency is not None:
                self.latencies.append(latency)
                self.latencies_by.setdefault(label, []).append(latency)
            return self.count

    @property
    def total_errors(self):
        """Return the number of requests that counted as errors."""
        return sum(self.errors.values())

    @property
    def rps(self):
        """Return requests per second over the elapsed time."""
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, p, label=None):
        """Return the p-th percentile latency in seconds, or None."""
        values = self.latencies if label is None else self.latencies_by.get(
            label, [])
        return percentile(sorted(values), p)

    def report(self):
        """Return a human-readable summary of the run."""
        lines = [f"{self.count} requests in {self.elapsed:.2f} s: "
                 f"{self.rps:.1f} req/s"]
        lines.append("latency ms: " + self._latency_line(None))
        lines.append(f"errors: {self.total_errors}")
        for kind, number in sorted(self.errors.items()):
            lines.append(f"  {kind}: {number}")
        for kind, number in sorted(self.tolerated.items()):
            lines.append(f"tolerated {kind}: {number}")
        if len(self.counts) > 1:
            lines.append("per action:")
            for label in sorted(self.counts):
                lines.append(
                    f"  {label:<14} {self.counts[label]:7d} requests "
                    f"{self.failures[label]:5d} errors  "
                    + self._latency_line(label))
        return "\n".join(lines)

    def __str__(self):
        return self.report()

    def _latency_line(self, label):
        """Return p50, p90, p99 and max latency in milliseconds."""
        parts = []
        for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
            value = self.percentile(p, label)
            shown = "-" if value is None else f"{value * 1000:.1f}"
            parts.append(f"{name} {shown}")
        return " ".join(parts)


# ------------------------------------------------------------------ replay

def lanes_by_user(actions, clients):
    """Split actions into `clients` lanes, each user's actions in one lane."""
    lanes = [[] for _ in range(clients)]
    lane_of = {}
    for action in actions:
        lane = lane_of.setdefault(action.username, len(lane_of) % clients)
        lanes[lane].append(action)
    return lanes


def replay(base_url, actions, timeout=DEFAULT_TIMEOUT, clients=1,
           progress_every=1000):
    """Send scenario actions to the API and return the run's Stats.

    With several clients each user's actions stay in order in one lane,
    but lanes run side by side: an action may reach the server before
    another user's earlier register, and `latest` no longer rises
    monotonically.
    """
    target = parse_base_url(base_url)
    stats = Stats()
    total = len(actions) if hasattr(actions, "__len__") else None
    started = time.perf_counter()

    def run(lane):
        for action in lane:
            done = perform(target, request_for(action), action.id, timeout,
                           stats)
            if progress_every and done % progress_every == 0:
                log_progress(stats, done, total, started)

    if clients <= 1:
        run(actions)
    else:
        workers = [threading.Thread(target=run, args=(lane,), daemon=True)
                   for lane in lanes_by_user(actions, clients)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    stats.elapsed = time.perf_counter() - started
    return stats


def log_progress(stats, done, total, started):
    """Log how far a run has come."""
    elapsed = time.perf_counter() - started
    of_total = "" if total is None else f"/{total}"
    logger.info("%d%s requests, %d errors, %.1f req/s", done, of_total,
                stats.total_errors, done / elapsed if elapsed else 0.0)


# -------------------------------------------------------------------- load

LOAD_MIX = (
    ("tweet", 50),
    ("follow", 20),
    ("unfollow", 10),
    ("GET /msgs", 10),
    ("GET /msgs/<u>", 5),
    ("GET /fllws/<u>", 5),
)


class Tickets:
    """Hands out rising `latest` values, at most `limit` of them."""

    def __init__(self, limit, first=1):
        self._next = first
        self._last = first + limit - 1
        self._lock = threading.Lock()

    def take(self):
        """Return the next value, or None when the limit is reached."""
        with self._lock:
            if self._next > self._last:
                return None
            self._next += 1
            return self._next - 1


def is_loopback(host):
    """Tell whether a host name or address is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_users(count):
    """Return `count` fresh user names with spaces and non-ASCII letters."""
    tag = f"{random.getrandbits(24):06x}"
    return [f"Lœad Tëster {tag} {number}" for number in range(count)]


def register_request(username):
    """Return the register request for a load-mode user."""
    email = username.replace(" ", ".") + "@example.com"
    body = {"username": username, "email": email, "pwd": "load test"}
    return Request("register", "POST", "/register", body, 204)


def load_request(label, username, other):
    """Return the load-mode request of one kind for a user."""
    user = user_path(username)
    if label == "tweet":
        body = {"content": f"Load test message from {username}"}
        return Request(label, "POST", "/msgs/" + user, body, 204)
    if label in ("follow", "unfollow"):
        return Request(label, "POST", "/fllws/" + user, {label: other}, 204)
    if label == "GET /msgs":
        return Request(label, "GET", "/msgs?no=100", None, 200)
    if label == "GET /msgs/<u>":
        return Request(label, "GET", f"/msgs/{user}?no=100", None, 200)
    return Request(label, "GET", f"/fllws/{user}?no=100", None, 200)


def load_client(target, users, rng, tickets, stop, stats, timeout):
    """Send weighted random requests until stopped or out of tickets."""
    labels = [label for label, _ in LOAD_MIX]
    weights = [weight for _, weight in LOAD_MIX]
    while not stop.is_set():
        latest = tickets.take()
        if latest is None:
            stop.set()
            return
        label = rng.choices(labels, weights)[0]
        username, other = rng.sample(users, 2)
        perform(target, load_request(label, username, other), latest,
                timeout, stats)


def load(base_url, clients=4, seconds=10.0, users=20, max_requests=100000,
         timeout=DEFAULT_TIMEOUT, seed=None, allow_remote=False,
         progress_interval=5.0):
    """Register `users`, then run `clients` concurrent clients for at most
    `seconds` and `max_requests` requests; return the run's Stats."""
    target = parse_base_url(base_url)
    if not (allow_remote or is_loopback(target.host)):
        raise ValueError("load mode only targets loopback hosts unless "
                         "remote hosts are explicitly allowed")
    if users < 2:
        raise ValueError("load mode needs at least two users")

    stats = Stats()
    tickets = Tickets(max_requests)
    started = time.perf_counter()
    names = register_pool(target, load_users(users), tickets, stats,
                          timeout)
    if len(names) < 2:
        logger.error("fewer than two users registered; no load sent")
        stats.elapsed = time.perf_counter() - started
        return stats

    stop = threading.Event()
    rng = random.Random(seed)
    workers = [threading.Thread(
        target=load_client, daemon=True,
        args=(target, names, random.Random(rng.random()), tickets, stop,
              stats, timeout)) for _ in range(clients)]
    for worker in workers:
        worker.start()
    wait_for_end(stop, started + seconds, progress_interval, stats, started)
    for worker in workers:
        worker.join()

    stats.elapsed = time.perf_counter() - started
    return stats


def wait_for_end(stop, deadline, interval, stats, started):
    """Log progress every `interval` until stopped, then stop at deadline."""
    while not stop.wait(max(0.0, min(interval,
                                     deadline - time.perf_counter()))):
        if time.perf_counter() >= deadline:
            stop.set()
        else:
            log_progress(stats, stats.count, None, started)


def register_pool(target, names, tickets, stats, timeout):
    """Register load-mode users; return the names that exist afterwards."""
    registered = []
    for name in names:
        latest = tickets.take()
        if latest is None:
            break
        errors_before = stats.total_errors
        perform(target, register_request(name), latest, timeout, stats)
        if stats.total_errors == errors_before:
            registered.append(name)
    return registered


# --------------------------------------------------------------------- CLI

def replay_arguments(argv):
    """Parse the replay command line."""
    parser = argparse.ArgumentParser(
        prog="replay.py",
        description="Replay a simulator scenario against the API. "
                    "Run 'replay.py load -h' for load mode.")
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:8080/api")
    parser.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO,
                        help="scenario file (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="send at most N actions")
    parser.add_argument("--start", type=int, default=0,
                        help="skip actions with an id below K")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--clients", type=int, default=1,
                        help="lanes in parallel, each user in one lane")
    parser.add_argument("--progress", type=int, default=1000,
                        help="log a line every N requests (0: never)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log every error with its reply")
    return parser.parse_args(argv)


def load_arguments(argv):
    """Parse the load-mode command line."""
    parser = argparse.ArgumentParser(
        prog="replay.py load",
        description="Run concurrent clients with a mix of reads and "
                    "writes against the API for a bounded time.")
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:8080/api")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--max-requests", type=int, default=100000)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a host other than loopback")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log every error with its reply")
    return parser.parse_args(argv)


def main(argv=None):
    """Run replay or load mode; return 1 when any request was an error."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:
        args = load_arguments(argv[1:])
    else:
        args = replay_arguments(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr, format="%(message)s")

    try:
        if argv[:1] == ["load"]:
            stats = load(args.base_url, args.clients, args.seconds,
                         args.users, args.max_requests, args.timeout,
                         args.seed, args.allow_remote)
        else:
            actions = list(read_scenario(args.scenario, args.limit,
                                         args.start))
            stats = replay(args.base_url, actions, args.timeout,
                           args.clients, args.progress)
    except (OSError, ValueError) as exc:
        logger.error("replay.py: %s", exc)
        return 2
    print(stats.report())
    return 1 if stats.total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
