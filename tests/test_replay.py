"""Tests of the simulator stand-in against a recording server."""

import http.server
import json
import logging
import os
import threading
import time
import urllib.parse
from collections import Counter, namedtuple

import pytest

import replay

Seen = namedtuple("Seen", "method path query headers body connection")

# Generous, so that a busy machine cannot turn a prompt reply into an error;
# only the timeout test sets its own.
TIMEOUT = 5.0

TAKEN = json.dumps({"status": 400,
                    "error_msg": "The username is already taken"})


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Records each request and answers as the server's `reply` says."""

    # HTTP/1.1 keeps connections open unless the client asks otherwise, so
    # a client that reuses connections would show up in the records.
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection_number = self.server.open_connection()

    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        url = urllib.parse.urlsplit(self.path)
        seen = Seen(self.command, url.path,
                    urllib.parse.parse_qs(url.query), dict(self.headers),
                    body, self.connection_number)
        self.server.record(seen)

        status, payload, delay = self.server.reply(seen)
        time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting

    def log_message(self, format, *args):
        pass


class RecordingServer(http.server.ThreadingHTTPServer):
    """A local HTTP server that remembers what it was sent."""

    daemon_threads = True
    # Room for every client of the load tests to connect at once.
    request_queue_size = 64

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.seen = []
        self.connections = 0
        self.reply = answer_like_the_api
        self._lock = threading.Lock()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/api"

    def open_connection(self):
        with self._lock:
            self.connections += 1
            return self.connections

    def record(self, seen):
        with self._lock:
            self.seen.append(seen)


def answer_like_the_api(seen):
    """Answer 200 with a list to reads and 204 to writes, at once."""
    if seen.method == "GET":
        return 200, b"[]", 0
    return 204, b"", 0


@pytest.fixture
def server():
    server = RecordingServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "scenario.tsv"
    path.write_text(
        "0\t0\t1582246860738\tregister\tRoger Histand\t"
        "Roger+Histand@hotmail.com\t]=)[X{Km z\n"
        "1\t5\t1582260561061\tregister\tJörg Ñandú\tjn@dtu.dk\tpw\n"
        "2\t7\t1582266428225\ttweet\tRoger Histand\t“Then I was” here \n"
        "3\t9\t1582270042673\tfollow\tJörg Ñandú\tRoger Histand\n"
        "4\t3\t1582277088408\tunfollow\tJörg Ñandú\tRoger Histand\n",
        encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------- scenario

def test_parse_takes_register_password_from_last_field():
    action = replay.parse_action(
        "0\t0\t1\tregister\tRoger Histand\tr@h.com\t]=)[ X\"{K'm\n")

    assert action == replay.Action(
        0, "register", "Roger Histand", ("r@h.com", "]=)[ X\"{K'm"))


def test_parse_keeps_tweet_text_verbatim():
    action = replay.parse_action("3\t0\t1\ttweet\tAl\t“Hi,” she said. \n")

    assert action.args == ("“Hi,” she said. ",)


def test_parse_splits_on_tabs_only():
    action = replay.parse_action("7\t0\t1\tfollow\tJörg Ñandú\tAl Bo\n")

    assert action == replay.Action(7, "follow", "Jörg Ñandú", ("Al Bo",))


def test_parse_rejects_unknown_command():
    with pytest.raises(ValueError):
        replay.parse_action("7\t0\t1\tdance\tAl\tBo\n")


def test_read_scenario_reads_every_action(scenario):
    actions = list(replay.read_scenario(scenario))

    assert [a.id for a in actions] == [0, 1, 2, 3, 4]
    assert actions[1].username == "Jörg Ñandú"
    assert actions[1].args == ("jn@dtu.dk", "pw")


def test_read_scenario_stops_at_limit(scenario):
    actions = list(replay.read_scenario(scenario, limit=2))

    assert [a.id for a in actions] == [0, 1]


def test_read_scenario_starts_at_id(scenario):
    actions = list(replay.read_scenario(scenario, limit=2, start=3))

    assert [a.id for a in actions] == [3, 4]


def test_read_scenario_names_line_of_malformed_action(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("0\t0\t1\ttweet\tAl\thi\n1\t0\t1\ttweet\n")

    with pytest.raises(ValueError, match=r"bad\.tsv:2:"):
        list(replay.read_scenario(str(path)))


@pytest.mark.skipif(not os.path.exists(replay.DEFAULT_SCENARIO),
                    reason="recorded scenario not present")
def test_read_scenario_counts_recorded_run():
    actions = replay.read_scenario(replay.DEFAULT_SCENARIO)

    assert Counter(a.command for a in actions) == {
        "register": 200, "tweet": 11306, "follow": 9751, "unfollow": 4665}


# ---------------------------------------------------------------- requests

def test_user_path_percent_encodes_spaces_and_unicode():
    assert replay.user_path("Roger Histand") == "Roger%20Histand"
    assert replay.user_path("Jörg Ñandú") == "J%C3%B6rg%20%C3%91and%C3%BA"
    assert replay.user_path("a/b?c+d") == "a%2Fb%3Fc%2Bd"


def test_action_url_carries_latest_and_encoded_name():
    action = replay.Action(42, "tweet", "Jörg Ñandú", ("hi",))

    url = replay.action_url("http://127.0.0.1:8080/api/", action)

    assert url == ("http://127.0.0.1:8080/api/msgs/"
                   "J%C3%B6rg%20%C3%91and%C3%BA?latest=42")


def test_request_for_builds_simulator_bodies():
    register = replay.Action(0, "register", "Al", ("a@b.c", "pw"))
    follow = replay.Action(1, "follow", "Al Bo", ("Cy",))
    unfollow = replay.Action(2, "unfollow", "Al Bo", ("Cy",))

    assert replay.request_for(register).body == {
        "username": "Al", "email": "a@b.c", "pwd": "pw"}
    assert replay.request_for(follow)[1:4] == (
        "POST", "/fllws/Al%20Bo", {"follow": "Cy"})
    assert replay.request_for(unfollow).body == {"unfollow": "Cy"}


def test_request_path_appends_latest_to_existing_query():
    target = replay.parse_base_url("http://localhost/api")
    request = replay.Request("GET /msgs", "GET", "/msgs?no=100", None, 200)

    assert replay.request_path(target, request, 9) == (
        "/api/msgs?no=100&latest=9")


def test_parse_base_url_rejects_other_schemes():
    with pytest.raises(ValueError):
        replay.parse_base_url("ftp://127.0.0.1/api")


# ------------------------------------------------------------------ client

def test_replay_sends_simulator_headers_and_latest(server, scenario):
    stats = replay.replay(server.base_url, replay.read_scenario(scenario),
                          timeout=TIMEOUT)

    assert stats.count == 5 and not stats.errors
    for seen in server.seen:
        assert seen.headers["Connection"] == "close"
        assert seen.headers["Content-Type"] == "application/json"
        assert seen.headers["Authorization"] == (
            "Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh")
    assert [s.query["latest"] for s in server.seen] == [
        ["0"], ["1"], ["2"], ["3"], ["4"]]
    assert [s.path for s in server.seen] == [
        "/api/register", "/api/register", "/api/msgs/Roger%20Histand",
        "/api/fllws/J%C3%B6rg%20%C3%91and%C3%BA",
        "/api/fllws/J%C3%B6rg%20%C3%91and%C3%BA"]


def test_replay_sends_json_bodies(server, scenario):
    replay.replay(server.base_url, replay.read_scenario(scenario),
                  timeout=TIMEOUT)

    bodies = [json.loads(seen.body) for seen in server.seen]
    assert bodies[0] == {"username": "Roger Histand",
                         "email": "Roger+Histand@hotmail.com",
                         "pwd": "]=)[X{Km z"}
    assert bodies[2] == {"content": "“Then I was” here "}
    assert bodies[3] == {"follow": "Roger Histand"}
    assert bodies[4] == {"unfollow": "Roger Histand"}


def test_replay_opens_one_connection_per_request(server, scenario):
    replay.replay(server.base_url, replay.read_scenario(scenario),
                  timeout=TIMEOUT)

    connections = [seen.connection for seen in server.seen]
    assert len(connections) == 5
    assert len(set(connections)) == 5


def test_replay_counts_slow_reply_as_timeout(server, scenario):
    def slow_tweets(seen):
        return 204, b"", 1.0 if "/msgs/" in seen.path else 0

    server.reply = slow_tweets

    stats = replay.replay(server.base_url, replay.read_scenario(scenario),
                          timeout=0.3)

    assert stats.errors == {"timeout": 1}
    assert stats.count == 5


def test_replay_counts_wrong_status_by_command(server, scenario):
    def refuse_follows(seen):
        return (404, b"{}", 0) if "/fllws/" in seen.path else (204, b"", 0)

    server.reply = refuse_follows

    stats = replay.replay(server.base_url, replay.read_scenario(scenario),
                          timeout=TIMEOUT)

    assert stats.errors == {"follow: 404": 1, "unfollow: 404": 1}
    assert stats.failures == {"follow": 1, "unfollow": 1}


def test_replay_tolerates_register_of_taken_username(server, scenario):
    server.reply = lambda seen: (400, TAKEN.encode(), 0)

    stats = replay.replay(server.base_url,
                          replay.read_scenario(scenario, limit=2),
                          timeout=TIMEOUT)

    assert stats.errors == {}
    assert stats.tolerated == {"register: 400 username taken": 2}


def test_replay_counts_other_register_400_as_error(server, scenario):
    body = json.dumps({"status": 400,
                       "error_msg": "You have to enter a password"})
    server.reply = lambda seen: (400, body.encode(), 0)

    stats = replay.replay(server.base_url,
                          replay.read_scenario(scenario, limit=2),
                          timeout=TIMEOUT)

    assert stats.errors == {"register: 400": 2}


def test_replay_counts_refused_connection(scenario):
    closed = RecordingServer()
    base_url = closed.base_url
    closed.server_close()

    stats = replay.replay(base_url, replay.read_scenario(scenario, limit=1),
                          timeout=TIMEOUT)

    assert stats.errors == {"connection error": 1}
    assert stats.latencies == []


def test_replay_with_clients_keeps_each_users_order(server, tmp_path):
    path = tmp_path / "many.tsv"
    lines = [f"{n}\t0\t0\ttweet\tuser {n % 7}\tmessage {n}\n"
             for n in range(140)]
    path.write_text("".join(lines))

    stats = replay.replay(server.base_url,
                          list(replay.read_scenario(str(path))), clients=4,
                          timeout=TIMEOUT)

    assert stats.count == 140 and not stats.errors
    per_user = {}
    for seen in server.seen:
        per_user.setdefault(seen.path, []).append(int(seen.query["latest"][0]))
    assert len(per_user) == 7
    for latests in per_user.values():
        assert latests == sorted(latests)


def test_replay_logs_progress_every_n_requests(server, scenario, caplog):
    with caplog.at_level(logging.INFO, logger="replay"):
        replay.replay(server.base_url, list(replay.read_scenario(scenario)),
                      progress_every=2, timeout=TIMEOUT)

    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" ")[0] for line in lines] == ["2/5", "4/5"]


def test_judge_counts_reply_later_than_timeout_as_slow():
    request = replay.Request("tweet", "POST", "/msgs/a", {}, 204)

    assert replay.judge(request, 204, b"", 0.5, 0.3) == ("slow", False)
    assert replay.judge(request, 204, b"", 0.1, 0.3) == (None, False)


# ------------------------------------------------------------------- stats

def test_stats_percentiles_use_nearest_rank():
    stats = replay.Stats()
    for ms in range(1, 101):
        stats.record("tweet", ms / 1000)

    assert stats.percentile(50) == 0.050
    assert stats.percentile(99) == 0.099
    assert stats.percentile(100) == 0.100
    assert replay.Stats().percentile(50) is None


def test_report_lists_errors_by_kind():
    stats = replay.Stats()
    stats.record("tweet", 0.01, "tweet: 404")
    stats.record("follow", 0.01, "timeout")
    stats.record("follow", 0.01)
    stats.elapsed = 2.0

    report = str(stats)

    assert "3 requests in 2.00 s: 1.5 req/s" in report
    assert "errors: 2\n  timeout: 1\n  tweet: 404: 1" in report
    assert "p50 10.0" in report


# --------------------------------------------------------------------- CLI

def test_main_exits_0_after_clean_replay(server, scenario, capsys):
    status = replay.main([server.base_url, scenario, "--limit", "3",
                          "--timeout", "5"])

    assert status == 0
    assert len(server.seen) == 3
    assert "errors: 0" in capsys.readouterr().out


def test_main_exits_1_when_requests_failed(server, scenario, capsys):
    server.reply = lambda seen: (500, b"", 0)

    status = replay.main([server.base_url, scenario, "--start", "2",
                          "--timeout", "5"])

    assert status == 1
    assert len(server.seen) == 3
    assert "tweet: 500: 1" in capsys.readouterr().out


# -------------------------------------------------------------------- load

def test_load_registers_users_before_the_mix(server):
    stats = replay.load(server.base_url, clients=3, seconds=60, users=5,
                        max_requests=50, seed=1, timeout=TIMEOUT)

    assert stats.count == 50 and not stats.errors
    registers = [s for s in server.seen if s.path == "/api/register"]
    assert server.seen[:5] == registers
    names = {json.loads(s.body)["username"] for s in registers}
    assert len(names) == 5


def test_load_sends_every_kind_with_distinct_latest(server):
    stats = replay.load(server.base_url, clients=4, seconds=60, users=4,
                        max_requests=400, seed=2, timeout=TIMEOUT)

    latests = [int(s.query["latest"][0]) for s in server.seen]
    assert sorted(latests) == list(range(1, 401))
    assert set(stats.counts) == {
        "register", "tweet", "follow", "unfollow", "GET /msgs",
        "GET /msgs/<u>", "GET /fllws/<u>"}
    assert len({s.connection for s in server.seen}) == 400


def test_load_stops_after_its_seconds(server):
    stats = replay.load(server.base_url, clients=2, seconds=0.5, users=2,
                        max_requests=10**9, timeout=TIMEOUT)

    assert stats.counts["register"] == 2
    assert stats.count < 10**9


def test_load_counts_errors_per_action(server):
    def refuse_reads(seen):
        return (500, b"", 0) if seen.method == "GET" else (204, b"", 0)

    server.reply = refuse_reads

    stats = replay.load(server.base_url, clients=2, seconds=60, users=3,
                        max_requests=300, seed=3, timeout=TIMEOUT)

    reads = ("GET /msgs", "GET /msgs/<u>", "GET /fllws/<u>")
    assert set(stats.errors) == {label + ": 500" for label in reads}
    assert stats.total_errors == sum(stats.counts[label] for label in reads)
    assert "per action:" in stats.report()


def test_load_refuses_hosts_other_than_loopback():
    with pytest.raises(ValueError, match="loopback"):
        replay.load("http://192.0.2.1/api", clients=1, seconds=1)
