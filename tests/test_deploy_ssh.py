"""`fab provision deploy` over real ssh to this machine, with a real nginx.

A throwaway OpenSSH server on 127.0.0.1 stands in for the droplet and the
local fake stands in for DigitalOcean (its reserved IP is 127.0.0.1).
The deploy installs packages, nginx and the app here for real; the app
uses the local FerretDB through MINITWIT_MONGO_URI since MongoDB's own
repository cannot be reached. These tests need root and apt.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

import replay
from tests.fake_digitalocean import FakeDigitalOcean

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="deploys need root"),
]

ROOT = Path(__file__).resolve().parent.parent
FAB = Path(sys.executable).parent / "fab"
SCENARIO = ROOT.parent / "shared" / "data" / "scenario.tsv"
TOKEN = "fake-token"
NOTABLE_LOG = Path("/var/log/nginx/minitwit-notable.log")


def free_port():
    """Return a loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10):
    """Wait until something accepts connections on a loopback port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def ensure_sshd():
    """Install Debian's OpenSSH server unless it is there."""
    if not Path("/usr/sbin/sshd").exists():
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run("apt-get update -q && apt-get install -y -q "
                       "--no-install-recommends openssh-server",
                       shell=True, check=True, env=env,
                       capture_output=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """Run sshd on loopback with its own config; return port and key."""
    ensure_sshd()
    folder = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                        "-f", str(folder / name)], check=True)
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = free_port()
    (folder / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\n"
        f"HostKey {folder}/host_key\n"
        f"AuthorizedKeysFile {folder}/authorized_keys\n"
        f"PidFile {folder}/sshd.pid\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n")

    process = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(folder / "sshd_config")],
        stderr=open(folder / "sshd.log", "wb"))
    wait_for_port(port)
    yield {"port": port, "key": folder / "client_key"}
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """Serve a fake DigitalOcean whose reserved IP is this machine."""
    server = FakeDigitalOcean(token=TOKEN, reserved_ips=["127.0.0.1"])
    server.start(tmp_path_factory.mktemp("fake-do"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site(sshd):
    """Return the deploy's paths and ports; undo what the deploy started."""
    nginx_was_running = _nginx_running()
    root = tempfile.mkdtemp(prefix="minitwit-deploy-", dir="/tmp")
    os.chmod(root, 0o755)
    listen_port = free_port()
    yield {"root": root, "listen": f"127.0.0.1:{listen_port}",
           "url": f"http://127.0.0.1:{listen_port}",
           "app_port": str(free_port())}

    pidfile = Path(root) / "shared" / "gunicorn.pid"
    subprocess.run(["start-stop-daemon", "--stop", "--quiet", "--oknodo",
                    "--retry", "TERM/10/KILL/5", "--pidfile", str(pidfile)])
    Path("/etc/nginx/sites-enabled/minitwit").unlink(missing_ok=True)
    if not nginx_was_running and _nginx_running():
        subprocess.run(["nginx", "-s", "quit"])
    shutil.rmtree(root, ignore_errors=True)


def _nginx_running():
    return subprocess.run(["pgrep", "-x", "nginx"],
                          capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def fab(sshd, fake, site, ferretdb_server, tmp_path_factory):
    """Return a function running `fab` with the test's ssh key and flags."""
    state = tmp_path_factory.mktemp("state") / "state.json"

    def run(*args, source=None):
        env = dict(os.environ, DIGITALOCEAN_API_URL=fake.url,
                   DIGITALOCEAN_ACCESS_TOKEN=TOKEN,
                   REQUESTS_CA_BUNDLE=str(fake.ca_file),
                   DIGITALOCEAN_POLL_SECONDS="0",
                   MINITWIT_STATE_FILE=str(state),
                   MINITWIT_MONGO_URI=ferretdb_server.uri)
        flags = ["--root", site["root"], "--listen", site["listen"],
                 "--app-port", site["app_port"], "--workers", "2"]
        if source:
            flags += ["--source", str(source)]
        args = [a for arg in args
                for a in (flags if arg == "DEPLOY_FLAGS" else [arg])]
        started = time.monotonic()
        result = subprocess.run([str(FAB), "-i", str(sshd["key"]), *args],
                                cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=600)
        result.seconds = time.monotonic() - started
        return result

    return run


@pytest.fixture(scope="module")
def first_deploy(fab, sshd):
    """Provision on the fake and deploy over ssh in one command line."""
    result = fab("provision", "--ssh-key", f"{sshd['key']}.pub",
                 "deploy", "--ssh-port", str(sshd["port"]), "DEPLOY_FLAGS")
    print(f"\nfirst `fab provision deploy`: {result.seconds:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def get(url, timeout=5):
    """Return the status and body of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def gunicorn_pid(site):
    return (Path(site["root"]) / "shared" / "gunicorn.pid").read_text()


def live_release(site):
    return os.readlink(Path(site["root"]) / "current")


def process_environment(pid):
    """Return the environment a running process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if item)


def test_gunicorn_takes_its_settings_from_the_unit(first_deploy, site):
    pid = gunicorn_pid(site).strip()
    log_file = Path(site["root"]) / "shared" / "log" / "gunicorn.log"
    for _ in range(3):
        get(site["url"] + "/health")

    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    env = process_environment(pid)
    workers = subprocess.run(["pgrep", "-P", pid], capture_output=True,
                             text=True).stdout.split()
    assert command[-4:-1] == [b"-c", b"gunicorn.conf.py", b"wsgi:app"]
    assert env["PORT"] == site["app_port"]
    assert env["MINITWIT_WORKERS"] == "2" and len(workers) == 2
    assert env["MINITWIT_ACCESS_LOG"] == "0"
    assert '"GET /health' not in log_file.read_text()


def test_deploy_serves_health_through_nginx(first_deploy, site):
    status, body = get(site["url"] + "/health")

    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    assert "systemd is not running" in first_deploy.stderr
    assert "using an external MongoDB" in first_deploy.stderr


def test_deploy_keeps_secrets_on_the_server_only(first_deploy, site):
    env_file = Path(site["root"]) / "shared" / "minitwit.env"

    assert oct(env_file.stat().st_mode & 0o777) == "0o640"
    assert "MINITWIT_SECRET_KEY=" in env_file.read_text()
    assert "MINITWIT_SECRET_KEY" not in first_deploy.stderr


def test_replayed_scenario_has_no_errors(first_deploy, site):
    actions = list(replay.read_scenario(SCENARIO, limit=1000))

    stats = replay.replay(site["url"] + "/api", actions, timeout=0.3)

    print(f"\nreplay of {len(actions)} actions through nginx:\n{stats}")
    assert len(actions) == 1000
    assert stats.errors == Counter()


def test_second_deploy_changes_nothing(first_deploy, fab, site, sshd):
    pid, release = gunicorn_pid(site), live_release(site)

    result = fab("-H", f"root@127.0.0.1:{sshd['port']}", "deploy",
                 "DEPLOY_FLAGS")

    print(f"\nunchanged deploy: {result.seconds:.1f} s")
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stderr
    assert gunicorn_pid(site) == pid
    assert live_release(site) == release


def test_broken_release_is_rolled_back(first_deploy, fab, site, sshd,
                                       tmp_path):
    release = live_release(site)
    notable_before = NOTABLE_LOG.stat().st_size
    broken = tmp_path / "broken"
    shutil.copytree(ROOT, broken, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "data", "tests", "ferretdb"))
    with open(broken / "wsgi.py", "a") as f:
        f.write("\nraise RuntimeError('this release cannot start')\n")

    result = fab("-H", f"root@127.0.0.1:{sshd['port']}", "deploy",
                 "DEPLOY_FLAGS", source=broken)

    print(f"\nbroken deploy and rollback: {result.seconds:.1f} s")
    assert result.returncode != 0
    assert "DEPLOY FAILED" in result.stderr
    assert "rolled back" in result.stderr
    assert live_release(site) == release
    assert get(site["url"] + "/health")[0] == 200
    with NOTABLE_LOG.open() as log:
        log.seek(notable_before)
        failed = [line for line in log if line.split()[1][0] == "5"
                  and '"GET /health' in line]
    assert failed, "nginx logged none of the failed health checks"
