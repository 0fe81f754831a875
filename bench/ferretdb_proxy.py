"""What the write-serializing proxy in front of the local FerretDB costs.

Starts one local server and runs the same work through the proxy (the
address clients use) and straight to FerretDB's internal listener, then
prints latency and throughput side by side. Figures only, no verdict:

    .venv/bin/python -m bench.ferretdb_proxy [--calls 500] [--processes 4]
"""

import argparse
import multiprocessing
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pymongo
from pymongo import ReturnDocument

import localdb

SPAWN = multiprocessing.get_context("spawn")
TIMEOUT = 300


def start_server(data_dir):
    """Start the server; return it with its proxy and direct URIs."""
    proxy_port, direct_port = localdb.free_port(), localdb.free_port()
    log = open(Path(data_dir) / localdb.LOG_NAME, "ab")
    process = subprocess.Popen(
        [str(localdb.build()), "-listen-addr", f"127.0.0.1:{proxy_port}",
         "-internal-addr", f"127.0.0.1:{direct_port}",
         "-data-dir", str(data_dir)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=localdb.die_with_parent)
    log.close()

    uris = {"proxy": f"mongodb://127.0.0.1:{proxy_port}/",
            "direct": f"mongodb://127.0.0.1:{direct_port}/"}
    for uri in uris.values():
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=30000) as c:
            c.admin.command("ping")
    return process, uris


def seconds_of(call, *args):
    """Return how many seconds call(*args) takes."""
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def latency(uris, calls):
    """Return insert_one and find_one seconds per target and call.

    Calls to the targets alternate, so that whatever else the machine
    does slows both alike.
    """
    clients = {t: pymongo.MongoClient(uri) for t, uri in uris.items()}
    notes = {t: client.bench[f"notes_{t}"] for t, client in clients.items()}
    figures = {name: {t: [] for t in uris}
               for name in ("insert_one", "find_one")}
    for collection in notes.values():
        collection.insert_one({"_id": -1})

    for i in range(calls):
        for t, collection in notes.items():
            figures["insert_one"][t].append(seconds_of(
                collection.insert_one, {"_id": i, "text": "x" * 100}))
    for i in range(calls):
        for t, collection in notes.items():
            figures["find_one"][t].append(
                seconds_of(collection.find_one, {"_id": i}))

    for client in clients.values():
        client.close()
    return figures


def write(db, work, tag):
    """Write once: insert a message, or increment the shared counter."""
    if work == "insert":
        db[f"race_{tag}"].insert_one({"text": "x" * 100})
    else:
        db.counters.find_one_and_update(
            {"_id": tag}, {"$inc": {"value": 1}},
            return_document=ReturnDocument.AFTER)


def race(uri, start, results, work, calls, tag):
    """Write calls times once every process is ready; report seconds."""
    try:
        with pymongo.MongoClient(uri) as client:
            client.admin.command("ping")
            start.wait(TIMEOUT)

            started = time.perf_counter()
            for _ in range(calls):
                write(client.bench, work, tag)
            results.put(time.perf_counter() - started)
    except Exception as error:
        results.put(error)


def throughput(uri, work, processes, calls, tag):
    """Return writes per second of processes writing at once."""
    start, results = SPAWN.Barrier(processes), SPAWN.Queue()
    workers = [SPAWN.Process(target=race, args=(uri, start, results, work,
                                                calls, tag))
               for _ in range(processes)]
    for worker in workers:
        worker.start()

    try:
        seconds = [results.get(timeout=TIMEOUT) for _ in workers]
    finally:
        for worker in workers:
            worker.join(TIMEOUT)

    for outcome in seconds:
        if isinstance(outcome, Exception):
            raise outcome
    return processes * calls / max(seconds)


def counter_value(uri, tag):
    """Return the value the $inc race left in its counter."""
    with pymongo.MongoClient(uri) as client:
        return client.bench.counters.find_one({"_id": tag})["value"]


def percentile(values, fraction):
    """Return the value below which fraction of values lie."""
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def report(name, figures):
    """Print one row per target of median and p95 in milliseconds."""
    print(f"{name} latency, ms        median      p95")
    for target, seconds in figures.items():
        print(f"  {target:<24}{statistics.median(seconds) * 1000:8.3f}"
              f"{percentile(seconds, 0.95) * 1000:9.3f}")


def main(argv=None):
    """Measure both paths and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500,
                        help="calls per latency figure and per process")
    parser.add_argument("--processes", type=int, default=4,
                        help="processes writing at once")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as data_dir:
        process, uris = start_server(data_dir)
        try:
            run(uris, args.calls, args.processes)
        finally:
            process.terminate()
            process.wait(localdb.STOP_TIMEOUT)


def run(uris, calls, processes):
    """Run every measurement against both URIs and print them."""
    for name, figures in latency(uris, calls).items():
        report(name, figures)

    total = processes * calls
    print(f"{processes} processes x {calls} writes at once, per second")
    print(f"  {'target':<14}insert_one    $inc   counter ends at (of {total})")

    # Each target runs twice, in the order A B B A, so that neither gains
    # from going first or last.
    for n, target in enumerate([*uris, *reversed(uris)]):
        inserts, incs, value = race_round(uris[target], processes, calls,
                                          f"{target}{n}")
        print(f"  {target:<14}{inserts:10.0f}{incs:8.0f}   {value}")


def race_round(uri, processes, calls, tag):
    """Race inserts, then $inc on one counter; return rates and its value."""
    # Concurrent upserts of one new document fail without the proxy, so
    # the counter exists before the race.
    with pymongo.MongoClient(uri) as client:
        client.bench.counters.insert_one({"_id": tag, "value": 0})

    inserts = throughput(uri, "insert", processes, calls, tag)
    incs = throughput(uri, "inc", processes, calls, tag)
    return inserts, incs, counter_value(uri, tag)


if __name__ == "__main__":
    main()
