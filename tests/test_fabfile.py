"""The fabfile's provision and destroy against a local fake DigitalOcean."""

import json
import os
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.fake_digitalocean import FakeDigitalOcean

ROOT = Path(__file__).resolve().parent.parent
FAB = Path(sys.executable).parent / "fab"
TOKEN = "fake-token"


@pytest.fixture(autouse=True)
def no_real_api(monkeypatch):
    """Point every client at a dead loopback port unless a test says more."""
    monkeypatch.setenv("DIGITALOCEAN_API_URL", "https://127.0.0.1:9")
    monkeypatch.delenv("DIGITALOCEAN_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("MINITWIT_MONGO_URI", raising=False)


@pytest.fixture
def fake(tmp_path):
    """Serve a fresh fake DigitalOcean account on loopback."""
    server = FakeDigitalOcean(token=TOKEN)
    server.start(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def public_key(tmp_path_factory):
    """Return the path of a throwaway ssh public key."""
    folder = tmp_path_factory.mktemp("key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                    "-f", str(folder / "id")], check=True)
    return folder / "id.pub"


@pytest.fixture
def fab(fake, public_key, tmp_path):
    """Return a function that runs `fab` against the fake."""
    state = tmp_path / "state.json"

    def run(*args, token=TOKEN, stdin=""):
        env = dict(os.environ, DIGITALOCEAN_API_URL=fake.url,
                   REQUESTS_CA_BUNDLE=str(fake.ca_file),
                   MINITWIT_STATE_FILE=str(state),
                   DIGITALOCEAN_POLL_SECONDS="0")
        if token:
            env["DIGITALOCEAN_ACCESS_TOKEN"] = token
        args = [a.replace("KEY", str(public_key)) for a in args]
        result = subprocess.run([str(FAB), *args], cwd=ROOT, env=env,
                                input=stdin, capture_output=True,
                                text=True, timeout=120)
        result.state = json.loads(state.read_text()) \
            if state.exists() else None
        return result

    return run


@pytest.fixture
def api_env(fake, monkeypatch):
    """Point clients made in this process at the fake."""
    monkeypatch.setenv("DIGITALOCEAN_API_URL", fake.url)
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca_file))


def _inbound(firewall):
    """Return the firewall's inbound sources by port."""
    return {r["ports"]: r["sources"] for r in firewall["inbound_rules"]}


def test_list_shows_one_line_for_each_task():
    result = subprocess.run([str(FAB), "--list"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    lines = {line.split()[0]: line for line in result.stdout.splitlines()
             if line.startswith("  ")}

    assert set(lines) == {"deploy", "destroy", "provision"}
    assert all(len(line.split()) > 3 for line in lines.values())


def test_provision_help_explains_every_flag():
    result = subprocess.run([str(FAB), "--help", "provision"], cwd=ROOT,
                            capture_output=True, text=True, check=True)

    for flag in ("--name", "--region", "--size", "--web", "--ssh-key"):
        line = next(x for x in result.stdout.splitlines() if flag in x)
        assert len(line.split()) > 2, line


def test_provision_refuses_to_run_without_token(fab, fake):
    result = fab("provision", "--ssh-key", "KEY", token=None)

    assert result.returncode != 0
    assert "DIGITALOCEAN_ACCESS_TOKEN" in result.stderr
    assert fake.requests == []


def test_provision_makes_droplet_reserved_ip_and_firewall(fab, fake):
    result = fab("provision", "--ssh-key", "KEY")

    assert result.returncode == 0, result.stderr
    [droplet] = fake.droplets.values()
    assert droplet["status"] == "active"
    assert droplet["tags"] == ["minitwit"]
    assert droplet["image"]["slug"] == "ubuntu-24-04-x64"
    [reserved] = fake.reserved_ips.values()
    assert reserved["_droplet_id"] == droplet["id"]
    [firewall] = fake.firewalls.values()
    assert firewall["tags"] == ["minitwit"]
    anywhere = {"addresses": ["0.0.0.0/0", "::/0"]}
    assert _inbound(firewall) == {"22": anywhere, "80": anywhere,
                                  "443": anywhere}
    assert len(fake.ssh_keys) == 1
    assert result.state["reserved_ip"] == reserved["ip"]
    assert result.state["droplets"][0]["id"] == droplet["id"]


def test_second_provision_creates_nothing(fab, fake):
    fab("provision", "--ssh-key", "KEY")
    writes_before = len(fake.writes())

    result = fab("provision", "--ssh-key", "KEY")

    assert result.returncode == 0, result.stderr
    assert fake.writes()[writes_before:] == []


def test_provision_finds_registered_key_on_a_later_page(fab, fake,
                                                        public_key):
    for n in range(150):
        fake.ssh_keys[n] = {"id": n, "name": f"k{n}",
                            "fingerprint": f"00:{n:02x}", "public_key": ""}
    fake.handle("POST", "/v2/account/keys", {},
                {"name": "mine", "public_key": public_key.read_text()},
                f"Bearer {TOKEN}")

    result = fab("provision", "--ssh-key", "KEY")

    assert result.returncode == 0, result.stderr
    assert len(fake.ssh_keys) == 151
    assert ("POST", "/v2/account/keys") not in fake.writes()[1:]


def test_api_error_midway_stops_and_a_rerun_completes(fab, fake):
    fake.fail_next("POST", r"/v2/reserved_ips/[^/]+/actions",
                   message="Droplet already has a pending event.")

    failed = fab("provision", "--ssh-key", "KEY")
    rerun = fab("provision", "--ssh-key", "KEY")

    assert failed.returncode != 0
    assert "Droplet already has a pending event." in failed.stderr
    assert failed.state["reserved_ip"]
    assert rerun.returncode == 0, rerun.stderr
    assert len(fake.droplets) == 1 and len(fake.reserved_ips) == 1
    [droplet] = fake.droplets.values()
    [reserved] = fake.reserved_ips.values()
    assert reserved["_droplet_id"] == droplet["id"]
    assert rerun.state["reserved_ip"] == failed.state["reserved_ip"]


def test_destroy_removes_what_provision_made(fab, fake):
    fab("provision", "--ssh-key", "KEY")

    result = fab("destroy", "--yes")

    assert result.returncode == 0, result.stderr
    assert not fake.droplets and not fake.reserved_ips
    assert not fake.firewalls and "minitwit" not in fake.tags
    assert result.state is None


def test_destroy_without_confirmation_removes_nothing(fab, fake):
    fab("provision", "--ssh-key", "KEY")

    result = fab("destroy", stdin="no\n")

    assert result.returncode != 0
    assert len(fake.droplets) == 1 and len(fake.reserved_ips) == 1
    assert result.state is not None


def test_scale_out_makes_droplets_balancer_and_database(fab, fake):
    result = fab("provision", "--ssh-key", "KEY", "--web", "3")

    assert result.returncode == 0, result.stderr
    assert sorted(d["name"] for d in fake.droplets.values()) == \
        ["minitwit-web-1", "minitwit-web-2", "minitwit-web-3"]
    assert not fake.reserved_ips
    [balancer] = fake.load_balancers.values()
    assert balancer["tag"] == "minitwit"
    assert balancer["health_check"]["path"] == "/health"
    [cluster] = fake.databases.values()
    assert cluster["engine"] == "mongodb"
    assert fake.db_firewalls[cluster["id"]][0]["value"] == "minitwit"
    assert len(result.state["droplets"]) == 3
    assert result.state["load_balancer"]["ip"] == balancer["ip"]


def test_scale_out_second_run_creates_nothing_and_destroy_clears(fab, fake):
    fab("provision", "--ssh-key", "KEY", "--web", "2")
    writes_before = len(fake.writes())

    again = fab("provision", "--ssh-key", "KEY", "--web", "2")
    writes_again = fake.writes()[writes_before:]
    gone = fab("destroy", "--yes")

    assert again.returncode == 0, again.stderr
    assert writes_again == []
    assert gone.returncode == 0, gone.stderr
    assert not (fake.droplets or fake.load_balancers or fake.databases
                or fake.firewalls)


def test_scale_out_firewall_lets_http_in_from_the_balancer_only(fab, fake):
    result = fab("provision", "--ssh-key", "KEY", "--web", "2")

    assert result.returncode == 0, result.stderr
    [balancer] = fake.load_balancers.values()
    [firewall] = fake.firewalls.values()
    only_balancer = {"load_balancer_uids": [balancer["id"]]}
    assert _inbound(firewall) == {
        "22": {"addresses": ["0.0.0.0/0", "::/0"]},
        "80": only_balancer, "443": only_balancer}
    assert firewall["tags"] == ["minitwit"]


def test_open_firewall_of_an_earlier_run_is_updated_once(fab, fake):
    anywhere = {"addresses": ["0.0.0.0/0", "::/0"]}
    _, answer = fake.create_firewall({}, {
        "name": "minitwit-firewall", "tags": ["minitwit"],
        "inbound_rules": [{"protocol": "tcp", "ports": port,
                           "sources": anywhere}
                          for port in ("22", "80", "443")],
        "outbound_rules": [{"protocol": "tcp", "ports": "all",
                            "destinations": anywhere}]})
    firewall_id = answer["firewall"]["id"]

    first = fab("provision", "--ssh-key", "KEY", "--web", "2")
    writes_before = len(fake.writes())
    again = fab("provision", "--ssh-key", "KEY", "--web", "2")

    assert first.returncode == 0 and again.returncode == 0, first.stderr
    firewall_writes = [w for w in fake.writes() if "firewalls" in w[1]]
    assert firewall_writes == [("PUT", f"/v2/firewalls/{firewall_id}")]
    assert fake.writes()[writes_before:] == []
    [firewall] = fake.firewalls.values()
    [balancer] = fake.load_balancers.values()
    assert _inbound(firewall)["80"] == \
        {"load_balancer_uids": [balancer["id"]]}
    assert _inbound(firewall)["22"] == anywhere
    assert firewall["tags"] == ["minitwit"]
    assert first.state["firewall_id"] == firewall_id


def test_scale_out_makes_the_app_user_once_and_deploy_connects_as_it(
        fab, fake, api_env):
    import fabfile

    first = fab("provision", "--ssh-key", "KEY", "--web", "2")
    again = fab("provision", "--ssh-key", "KEY", "--web", "2")
    uri = fabfile._mongo_uri(again.state)

    assert first.returncode == 0 and again.returncode == 0, first.stderr
    [cluster] = fake.databases.values()
    users = fake.db_users[cluster["id"]]
    app = users["minitwit"]
    assert app["settings"]["mongo_user_settings"] == \
        {"databases": ["minitwit"], "role": "readWrite"}
    assert "minitwit" in cluster["db_names"]
    path = f"/v2/databases/{cluster['id']}"
    assert fake.writes().count(("POST", f"{path}/users")) == 1
    assert fake.writes().count(("POST", f"{path}/dbs")) == 1

    parts = urlsplit(uri)
    assert parts.scheme == "mongodb+srv"
    assert parts.username == "minitwit"
    assert unquote(parts.password) == app["password"]
    assert parts.hostname == cluster["connection"]["host"]
    assert parts.path == "/minitwit"
    assert parse_qs(parts.query) == {
        "tls": ["true"], "authSource": ["admin"],
        "replicaSet": ["minitwit-db"]}

    admin_password = users["doadmin"]["password"]
    assert "doadmin" not in uri and admin_password not in uri
    assert not any("doadmin" in p for _, p in fake.requests)
    state_text = json.dumps(again.state)
    assert app["password"] not in state_text
    assert admin_password not in state_text


def test_app_uri_quotes_the_password_and_keeps_a_plain_port():
    import cloud

    uri = cloud.app_uri(
        {"protocol": "mongodb", "host": "db.example", "port": 25060,
         "uri": "mongodb://doadmin:x@db.example:25060/admin"},
        {"name": "minitwit", "password": "p/w@:%"})

    assert uri == ("mongodb://minitwit:p%2Fw%40%3A%25@db.example:25060/"
                   "minitwit?tls=true&authSource=admin")


def test_deploy_stops_when_the_api_hides_the_app_password(fab, fake,
                                                         api_env):
    from invoke.exceptions import Exit

    import fabfile

    result = fab("provision", "--ssh-key", "KEY", "--web", "2")
    [cluster] = fake.databases.values()
    del fake.db_users[cluster["id"]]["minitwit"]["password"]

    with pytest.raises(Exit, match="database:view_credentials"):
        fabfile._mongo_uri(result.state)


def test_scale_out_deploys_to_every_droplet():
    import cloud

    assert cloud.web_hosts({"droplets": [{"ip": "a"}, {"ip": "b"}]}) == \
        ["a", "b"]


def test_growing_a_single_droplet_deployment_is_refused(fab, fake):
    fab("provision", "--ssh-key", "KEY")

    result = fab("provision", "--ssh-key", "KEY", "--web", "3")

    assert result.returncode != 0
    assert "destroy it first" in result.stderr
    assert len(fake.droplets) == 1


def unit_environment(settings):
    """Return the variables a unit's Environment= lines set."""
    return dict(assignment.split("=", 1)
                for line in settings["Environment"]
                for assignment in shlex.split(line))


def test_unit_leaves_every_gunicorn_setting_to_the_config_file():
    import remote

    target = remote.Target(root="/srv/minitwit", app_port=8123, workers=2,
                           threads=3)
    unit = remote.render("minitwit.service", **remote.unit_values(target))
    settings = remote.unit_settings(target)
    with mock.patch.dict(os.environ, unit_environment(settings),
                         clear=True):
        config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    assert "{{" not in unit
    assert settings["ExecStart"][0].split() == [
        "/srv/minitwit/current/.venv/bin/gunicorn", "-c", "gunicorn.conf.py",
        "wsgi:app"]
    assert settings["WorkingDirectory"] == ["/srv/minitwit/current"]
    assert config["bind"] == "127.0.0.1:8123"
    assert (config["workers"], config["threads"]) == (2, 3)
    assert config["worker_class"] == "gthread"
    assert config["accesslog"] is None


def fake_gunicorn(path, record):
    """Write a gunicorn stand-in that records its arguments and env."""
    path.parent.mkdir(parents=True)
    path.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >{record}.args\n'
                    f"env >{record}.env\n")
    path.chmod(0o755)


def test_fallback_runs_the_units_command_in_the_units_environment(
        tmp_path):
    import remote

    target = remote.Target(root=str(tmp_path), app_port=8123, workers=2)
    settings = remote.unit_settings(target)
    record = tmp_path / "record"
    fake_gunicorn(tmp_path / "current" / ".venv" / "bin" / "gunicorn",
                  record)
    (tmp_path / "shared" / "log").mkdir(parents=True)
    Path(target.env_file).write_text('MINITWIT_SECRET_KEY="s3cret"\n'
                                     'MINITWIT_ACCESS_LOG="1"\n')

    subprocess.run(remote.fallback_argv(target), cwd=tmp_path / "current",
                   env={"FROM_THE_SSH_SESSION": "1"}, check=True)
    args = record.with_suffix(".args").read_text().split()
    env = dict(line.split("=", 1) for line
               in record.with_suffix(".env").read_text().splitlines())

    assert args == settings["ExecStart"][0].split()[1:]
    expected = {**unit_environment(settings), "MINITWIT_ACCESS_LOG": "1",
                "MINITWIT_SECRET_KEY": "s3cret"}
    assert expected.items() <= env.items()
    assert "FROM_THE_SSH_SESSION" not in env
    assert (f"--chuid minitwit --chdir {tmp_path}/current "
            "--exec /usr/bin/env -- -i") in remote.fallback_command(target)


@pytest.mark.skipif(not shutil.which("systemd-analyze"),
                    reason="systemd-analyze is not installed")
def test_rendered_unit_passes_systemd_analyze(tmp_path):
    import remote

    target = remote.Target(root=str(tmp_path))
    gunicorn = tmp_path / "current" / ".venv" / "bin" / "gunicorn"
    gunicorn.parent.mkdir(parents=True)
    gunicorn.write_text("#!/bin/sh\n")
    gunicorn.chmod(0o755)
    unit = tmp_path / "minitwit.service"
    unit.write_text(remote.render("minitwit.service",
                                  **remote.unit_values(target)))

    result = subprocess.run(["systemd-analyze", "verify", str(unit)],
                            capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


def test_release_hash_ignores_local_clutter(tmp_path):
    import remote

    (tmp_path / "wsgi.py").write_text("app = None\n")
    _, before = remote.pack_release(tmp_path)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x").write_text("x")
    (tmp_path / ".minitwit-state.json").write_text("{}")
    _, after = remote.pack_release(tmp_path)
    (tmp_path / "wsgi.py").write_text("app = 1\n")
    _, changed = remote.pack_release(tmp_path)

    assert before == after != changed
