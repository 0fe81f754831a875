"""The API under faults: a database that goes away or hangs, restarts.

Against the real server (gunicorn over FerretDB): while the database is
stopped or frozen (SIGSTOP), every request gets a JSON 503 instead of
hanging, and the app recovers by itself once the database is back. A
replay that runs across restarts of the app and a crash of the database
loses no write that was acknowledged. Latencies are printed, not judged.
"""

import json
import os
import signal
import threading
import time
import urllib.request

import pymongo
import pytest

import replay

pytestmark = pytest.mark.slow

# NOTE: far above the 0.3 s budget, only to tell a slow answer from a hang.
HANG = 5.0
RECOVERY_TRIES = 100


@pytest.fixture(scope="module")
def target(stack):
    return replay.parse_base_url(stack.base_url + "/api")


def get(path):
    return replay.Request("GET", "GET", path, None, 200)


def post(path, body):
    return replay.Request("POST", "POST", path, body, 204)


def probes(name):
    """Return one request of each kind, for a user called name."""
    newcomer = f"{name} {time.monotonic_ns()}"
    return [get("/latest"), get("/msgs"), get("/msgs/" + name),
            get("/fllws/" + name), post("/msgs/" + name, {"content": "x"}),
            post("/fllws/" + name, {"follow": name}),
            replay.register_request(newcomer)]


def current_latest(stack):
    """Return the recorded `latest`, asking without changing it."""
    url = stack.base_url + "/api/latest"
    with urllib.request.urlopen(url, timeout=HANG) as answer:
        return json.load(answer)["latest"]


def timed_send(target, request, latest=1):
    started = time.perf_counter()
    status, body = replay.send(target, request, latest, HANG)
    return status, body, time.perf_counter() - started


def assert_unavailable_everywhere(target, what):
    """Assert that every kind of request answers a JSON 503."""
    latencies = []
    for request in probes("faulty"):
        status, body, latency = timed_send(target, request)
        assert status == 503, (request, body)
        assert json.loads(body)["status"] == 503
        latencies.append(latency)
    shown = " ".join(f"{latency * 1000:.0f}" for latency in latencies)
    print(f"{what}: 503 after {shown} ms")


def wait_until_served(target, in_a_row=10):
    """Return how long until GET /latest answers 200 in_a_row times.

    Each worker process has its own client, which notices on its own that
    the database is back, so one answer says little about the others.
    """
    started = time.perf_counter()
    served = 0
    for _ in range(RECOVERY_TRIES):
        status, _, _ = timed_send(target, get("/latest"))
        served = served + 1 if status == 200 else 0
        if served == in_a_row:
            return time.perf_counter() - started
        if not served:
            time.sleep(0.1)
    pytest.fail(f"not recovered after {RECOVERY_TRIES} tries")


@pytest.fixture(scope="module")
def faulty_user(target):
    status, _, _ = timed_send(target, replay.register_request("faulty"))
    assert status == 204


def test_a_stopped_database_answers_503_then_recovers(stack, target,
                                                      faulty_user):
    stack.db_server.stop()
    try:
        assert_unavailable_everywhere(target, "database stopped")
    finally:
        stack.db_server.start()

    print(f"served again {wait_until_served(target):.2f} s after start")
    for request in probes("faulty"):
        assert timed_send(target, request)[0] in (200, 204)


def test_a_hung_database_answers_503_then_recovers(stack, target,
                                                   faulty_user):
    pid = stack.db_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        assert_unavailable_everywhere(target, "database frozen")
    finally:
        os.kill(pid, signal.SIGCONT)

    print(f"served again {wait_until_served(target):.2f} s after thaw")
    for request in probes("faulty"):
        assert timed_send(target, request)[0] in (200, 204)


def test_the_app_starts_while_the_database_is_down(stack, target,
                                                  faulty_user):
    # Regression: a worker whose start-up index creation failed did not
    # boot, and gunicorn then stopped altogether.
    stack.stop_app()
    stack.db_server.stop()

    # NOTE: start_app waits for a healthy app, which needs the database,
    # and both servers die with the thread that started them, so the
    # steps of start_app are taken here one by one.
    stack.app = stack._spawn_app()
    time.sleep(3)
    assert stack.app_running
    stack.db_server.start()
    stack._wait_healthy(30)

    print(f"served {wait_until_served(target):.2f} s after the database")
    for request in probes("faulty"):
        assert timed_send(target, request)[0] in (200, 204)


class Sender(threading.Thread):
    """Sends actions in order, one at a time, noting what was answered."""

    def __init__(self, target, actions):
        super().__init__(daemon=True)
        self.target = target
        self.actions = actions
        self.answers = {}
        self.acknowledged = threading.Semaphore(0)

    def run(self):
        for action in self.actions:
            try:
                status, _ = replay.send(self.target,
                                        replay.request_for(action),
                                        action.id, HANG)
            except OSError:
                status = None
            self.answers[action.id] = status
            if status == 204:
                self.acknowledged.release()
            # NOTE: a pause keeps each outage to a handful of actions.
            time.sleep(0.005)

    def wait_for_acknowledged(self, count):
        for _ in range(count):
            assert self.acknowledged.acquire(timeout=30)

    def last_acknowledged(self):
        return max((i for i, s in list(self.answers.items()) if s == 204),
                   default=-1)


def scenario(users=20, rounds=40):
    """Return actions: registrations, then tweets and follows by each."""
    names = [f"Restart Tëster {i}" for i in range(users)]
    actions = [("register", name, (f"r{i}@example.com", "pw"))
               for i, name in enumerate(names)]
    for r in range(rounds):
        for i, name in enumerate(names):
            if (i + r) % 3:
                actions.append(("tweet", name, (f"{name} no. {r}",)))
            else:
                whom = names[(i + r + 1) % users]
                actions.append(("follow", name, (whom,)))
    return [replay.Action(number, *action)
            for number, action in enumerate(actions, 1000)]


def test_restarts_during_a_replay_lose_no_acknowledged_write(stack, target):
    actions = scenario()
    sender = Sender(target, actions)
    sender.start()

    sender.wait_for_acknowledged(150)
    before_stop = sender.last_acknowledged()
    stack.stop_app()
    stack.start_app()
    assert current_latest(stack) >= before_stop

    sender.wait_for_acknowledged(150)
    stack.db_server.kill()
    stack.db_server.start()
    sender.wait_for_acknowledged(150)
    stack.stop_app()
    stack.start_app()
    sender.join()

    answers = sender.answers
    print("answers during the restarts:", sorted(
        {s: list(answers.values()).count(s) for s in answers.values()}
        .items(), key=str))
    assert_acknowledged_writes_kept(stack, actions, answers)
    assert answers[actions[-1].id] == 204
    assert current_latest(stack) == actions[-1].id


def assert_acknowledged_writes_kept(stack, actions, answers):
    client = pymongo.MongoClient(stack.db_server.uri)
    db = client.minitwit
    try:
        users = {u["username"]: u for u in db.users.find()}
        ids = {u["_id"]: name for name, u in users.items()}
        texts = {(ids.get(m["author_id"]), m["text"])
                 for m in db.messages.find()}
        for action in actions:
            if answers[action.id] != 204:
                continue
            if action.command == "register":
                assert action.username in users
            elif action.command == "tweet":
                assert (action.username, action.args[0]) in texts
            else:
                followed = {ids[i] for i in users[action.username]["follows"]}
                assert action.args[0] in followed
    finally:
        client.close()
