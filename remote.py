"""The deploy's remote steps, each run over one Fabric connection.

Every step looks before it acts: packages already installed, files whose
content is already right and a release already live are left alone, so a
second deploy with nothing changed restarts nothing. Releases live in
folders of their own named by a hash of their content, each with its own
virtualenv; `current` is a symlink that is switched atomically, and the
previous target is switched back if the new release fails its health
check through nginx.
"""

import hashlib
import io
import logging
import re
import secrets
import shlex
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "deploy"
PACKAGES = ("python3", "python3-venv", "nginx", "curl", "ca-certificates",
            "gnupg")
SKIP_IN_RELEASE = {"data", "build", "tests", "__pycache__", "screenshots",
                   "ferretdb", "docs"}
MONGO_KEY_URL = "https://www.mongodb.org/static/pgp/server-8.0.asc"
MONGO_KEYRING = "/usr/share/keyrings/mongodb-server-8.0.gpg"
SAFE_VALUE = re.compile(r'[^"$`\\\n]*')
# systemd's PATH for services; the fallback starts gunicorn with it too.
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DeployFailed(Exception):
    """A release failed its health check (and was rolled back if possible)."""


@dataclass(frozen=True)
class Target:
    """Where and how MiniTwit runs on a host."""

    root: str = "/srv/minitwit"
    listen: str = "80"
    app_port: int = 8000
    workers: int = 3
    threads: int = 4
    user: str = "minitwit"
    mongo_uri: str = ""
    health_timeout: float = 30

    @property
    def env_file(self):
        """Return the path of the environment file with the secrets."""
        return f"{self.root}/shared/minitwit.env"

    @property
    def health_url(self):
        """Return the health URL through nginx, as seen on the host."""
        port = self.listen.rsplit(":", 1)[-1]
        return f"http://127.0.0.1:{port}/health"

    @property
    def pidfile(self):
        """Return the pidfile gunicorn uses where systemd is not running."""
        return f"{self.root}/shared/gunicorn.pid"


# Helpers -------------------------------------------------------------------

def render(name, **values):
    """Return the template deploy/<name> with its {{ marks }} filled in."""
    text = (TEMPLATES / name).read_text()

    def fill(match):
        return str(values[match.group(1)])

    return re.sub(r"\{\{ (\w+) \}\}", fill, text)


def unit_values(target):
    """Return the values that the systemd unit template needs."""
    return {"user": target.user, "root": target.root,
            "env_file": target.env_file, "app_port": target.app_port,
            "workers": target.workers, "threads": target.threads}


def unit_settings(target):
    """Return the rendered unit's settings, each name with its values."""
    unit = render("minitwit.service", **unit_values(target))
    settings = {}
    for name, value in re.findall(r"^(\w+)=(.*)$",
                                  unit.replace("\\\n", ""), re.M):
        settings.setdefault(name, []).append(value)
    return settings


def _sh(c, command, **kwargs):
    """Run a command on the host quietly; return the result."""
    return c.run(command, hide=True, in_stream=False, **kwargs)


def _ok(c, command):
    """Return whether a command on the host succeeds."""
    return _sh(c, command, warn=True).ok


def put_if_changed(c, path, content, mode="644", owner="root:root"):
    """Write a file on the host unless it already has this content."""
    data = content.encode() if isinstance(content, str) else content
    digest = hashlib.sha256(data).hexdigest()
    quoted = shlex.quote(path)
    found = _sh(c, f"sha256sum {quoted} 2>/dev/null || true").stdout.split()
    if found and found[0] == digest:
        return False

    tmp = f"{path}.new"
    c.put(io.BytesIO(data), remote=tmp)
    _sh(c, f"chmod {mode} {shlex.quote(tmp)} && "
           f"chown {owner} {shlex.quote(tmp)} && "
           f"mv -f {shlex.quote(tmp)} {quoted}")
    log.info("%s: wrote %s", c.host, path)
    return True


def has_systemd(c):
    """Return whether systemd runs the host (false in containers)."""
    return _ok(c, "test -d /run/systemd/system")


# System --------------------------------------------------------------------

def install_packages(c, packages=PACKAGES):
    """Install the system packages that are missing."""
    names = " ".join(packages)
    status = _sh(c, f"dpkg-query -W -f='${{Status}}\\n' {names} "
                    "2>/dev/null || true").stdout
    installed = status.count("install ok installed")
    if installed == len(packages):
        return False

    log.info("%s: installing %s", c.host, names)
    _sh(c, "export DEBIAN_FRONTEND=noninteractive && apt-get update -q && "
           f"apt-get install -y -q --no-install-recommends {names}")
    return True


def ensure_user(c, target):
    """Create the system user the app runs as, unless it exists."""
    if _ok(c, f"id -u {target.user}"):
        return False
    _sh(c, f"useradd --system --home-dir {target.root} "
           f"--shell /usr/sbin/nologin {target.user}")
    return True


def ensure_folders(c, target):
    """Create the release, shared and data folders with their owners."""
    root = shlex.quote(target.root)
    _sh(c, f"install -d -m 755 {root} {root}/releases {root}/shared && "
           f"install -d -m 750 -o {target.user} -g {target.user} "
           f"{root}/shared/data {root}/shared/log")


# MongoDB on the droplet ----------------------------------------------------

def install_mongodb(c, target):
    """Install MongoDB 8.0 from MongoDB's apt repository, loopback only."""
    listing = (TEMPLATES / "mongodb-org.list").read_text()
    if not _ok(c, f"test -s {MONGO_KEYRING}"):
        _sh(c, f"curl -fsSL {MONGO_KEY_URL} | "
               f"gpg --dearmor --yes -o {MONGO_KEYRING}")
    added = put_if_changed(
        c, "/etc/apt/sources.list.d/mongodb-org-8.0.list", listing)
    if added or not _ok(c, "dpkg-query -W mongodb-org"):
        _sh(c, "export DEBIAN_FRONTEND=noninteractive && apt-get update -q "
               "&& apt-get install -y -q mongodb-org")

    changed = put_if_changed(c, "/etc/mongod.conf", render("mongod.conf"))
    action = "restart" if changed else "start"
    _sh(c, f"systemctl enable mongod && systemctl {action} mongod")
    _sh(c, "for i in $(seq 30); do "
           "mongosh --quiet --eval 'db.runCommand({ping: 1})' "
           ">/dev/null 2>&1 && exit 0; sleep 1; done; exit 1")

    script = f"{target.root}/shared/mongo-users.js"
    put_if_changed(c, script, render("mongo-users.js",
                                     env_file=target.env_file), mode="600")
    _sh(c, f"mongosh --quiet mongodb://127.0.0.1:27017/admin {script}")


# Environment file ----------------------------------------------------------

def read_env(c, target):
    """Return the host's environment file as a dict (empty if none)."""
    text = _sh(c, f"cat {shlex.quote(target.env_file)} 2>/dev/null "
                  "|| true").stdout
    env = {}
    for line in text.splitlines():
        match = re.fullmatch(r'(\w+)="(.*)"', line)
        if match:
            env[match.group(1)] = match.group(2)
    return env


def ensure_env_file(c, target):
    """Write the environment file, making missing secrets on the host."""
    env = read_env(c, target)
    env.setdefault("MINITWIT_SECRET_KEY", secrets.token_hex(32))
    env["MINITWIT_DATA_DIR"] = f"{target.root}/shared/data"

    if target.mongo_uri:
        env["MINITWIT_MONGO_URI"] = target.mongo_uri
    else:
        env.setdefault("MINITWIT_MONGO_ADMIN_PASSWORD", secrets.token_hex(24))
        env.setdefault("MINITWIT_MONGO_PASSWORD", secrets.token_hex(24))
        env["MINITWIT_MONGO_URI"] = (
            f"mongodb://minitwit:{env['MINITWIT_MONGO_PASSWORD']}"
            "@127.0.0.1:27017/minitwit?authSource=admin")

    for key, value in env.items():
        if not SAFE_VALUE.fullmatch(value):
            raise ValueError(f"{key} holds a character the environment "
                             "file cannot quote")
    text = "".join(f'{k}="{v}"\n' for k, v in sorted(env.items()))
    return put_if_changed(c, target.env_file, text, mode="640",
                          owner=f"root:{target.user}")


# Releases ------------------------------------------------------------------

def _belongs_in_release(relative):
    """Return whether a file of the source tree ships in a release."""
    parts = relative.parts
    return not (set(parts) & SKIP_IN_RELEASE
                or any(part.startswith(".") for part in parts)
                or relative.suffix == ".pyc")


def pack_release(source):
    """Return the release tarball of a source tree and its content hash."""
    source = Path(source)
    files = sorted(
        p for p in source.rglob("*")
        if p.is_file() and _belongs_in_release(p.relative_to(source)))

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in files:
            info = tar.gettarinfo(path, path.relative_to(source).as_posix())
            info.mtime, info.uid, info.gid = 0, 0, 0
            info.uname = info.gname = "root"
            with path.open("rb") as f:
                tar.addfile(info, f)

    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return buffer.getvalue(), digest.hexdigest()[:12]


def upload_release(c, target, source):
    """Unpack the release into its own folder with its own virtualenv."""
    data, name = pack_release(source)
    folder = f"{target.root}/releases/{name}"
    if _ok(c, f"test -e {folder}/.complete"):
        return name

    log.info("%s: uploading release %s", c.host, name)
    archive = f"{target.root}/releases/{name}.tar.gz"
    c.put(io.BytesIO(data), remote=archive)
    _sh(c, f"rm -rf {folder} && mkdir -p {folder} && "
           f"tar -xzf {archive} -C {folder} && rm -f {archive}")
    _sh(c, f"/usr/bin/python3 -m venv {folder}/.venv && "
           f"{folder}/.venv/bin/pip install -q --disable-pip-version-check "
           f"-r {folder}/requirements.txt && "
           f"{folder}/.venv/bin/python -m compileall -q {folder} "
           ">/dev/null; "
           f"touch {folder}/.complete")
    return name


def live_release(c, target):
    """Return the release `current` points at, or None."""
    result = _sh(c, f"readlink {target.root}/current", warn=True)
    return Path(result.stdout.strip()).name if result.ok else None


def switch_release(c, target, name):
    """Point `current` at a release atomically."""
    root = target.root
    _sh(c, f"ln -sfn releases/{name} {root}/current.new && "
           f"mv -T {root}/current.new {root}/current")
    log.info("%s: current -> %s", c.host, name)


def prune_releases(c, target, keep=5):
    """Remove the oldest releases beyond `keep`, never the live one."""
    live = live_release(c, target)
    listed = _sh(c, f"ls -1t {target.root}/releases").stdout.split()
    old = [n for n in listed if n != live][keep:]
    for name in old:
        _sh(c, f"rm -rf {target.root}/releases/{name}")


# Services ------------------------------------------------------------------

def install_unit(c, target, release):
    """Check the systemd unit against the release, then install it."""
    unit = render("minitwit.service", **unit_values(target))
    if _ok(c, "command -v systemd-analyze"):
        # NOTE: checked as it will be once `current` points at the release.
        staged = unit.replace(f"{target.root}/current",
                              f"{target.root}/releases/{release}")
        folder = _sh(c, "mktemp -d").stdout.strip()
        c.put(io.BytesIO(staged.encode()), f"{folder}/minitwit.service")
        _sh(c, f"systemd-analyze verify {folder}/minitwit.service; "
               f"status=$?; rm -rf {folder}; exit $status")

    return put_if_changed(c, "/etc/systemd/system/minitwit.service", unit)


def install_site(c, target):
    """Install the nginx site and check nginx's whole configuration."""
    site = render("nginx-site.conf", listen=target.listen,
                  app_port=target.app_port)
    changed = put_if_changed(c, "/etc/nginx/sites-available/minitwit", site)
    link = "/etc/nginx/sites-enabled/minitwit"
    if not _ok(c, f"test -L {link}"):
        _sh(c, f"ln -sfn /etc/nginx/sites-available/minitwit {link}")
        changed = True
    if _ok(c, "test -e /etc/nginx/sites-enabled/default"):
        _sh(c, "rm -f /etc/nginx/sites-enabled/default")
        changed = True
    _sh(c, "nginx -t -q")
    return changed


def fallback_argv(target):
    """Return the command running the unit's ExecStart in its environment."""
    unit = unit_settings(target)
    environment = [assignment for line in unit.get("Environment", ())
                   for assignment in shlex.split(line)]
    start = " ".join(unit["ExecStart"][0].split())
    log_file = f"{target.root}/shared/log/gunicorn.log"
    # NOTE: as under systemd, the environment file's values win over the
    # unit's Environment= lines, and nothing of the ssh session leaks in.
    script = (f"set -a; . {unit['EnvironmentFile'][0]}; set +a; "
              f"exec {start} >>{log_file} 2>&1")
    return ["/usr/bin/env", "-i", f"PATH={SERVICE_PATH}", *environment,
            "/bin/sh", "-c", script]


def fallback_command(target):
    """Return a shell line that starts the unit's service without systemd."""
    unit = unit_settings(target)
    program, *arguments = fallback_argv(target)
    return (f"start-stop-daemon --start --background --make-pidfile "
            f"--pidfile {target.pidfile} --chuid {unit['User'][0]} "
            f"--chdir {unit['WorkingDirectory'][0]} --exec {program} "
            f"-- {shlex.join(arguments)}")


def app_running(c, target, systemd):
    """Return whether the app service runs."""
    if systemd:
        return _ok(c, "systemctl is-active --quiet minitwit")
    return _ok(c, f"start-stop-daemon --status --pidfile {target.pidfile}")


def restart_app(c, target, systemd, reload_units=False):
    """(Re)start gunicorn: systemctl, or start-stop-daemon without it."""
    if systemd:
        if reload_units:
            _sh(c, "systemctl daemon-reload")
        _sh(c, "systemctl enable --quiet minitwit && "
               "systemctl restart minitwit")
        return

    log.warning("%s: systemd is not running; starting gunicorn from the "
                "unit's ExecStart with start-stop-daemon", c.host)
    _sh(c, f"start-stop-daemon --stop --quiet --oknodo --retry TERM/20/KILL/5 "
           f"--pidfile {target.pidfile} && rm -f {target.pidfile}")
    _sh(c, fallback_command(target))


def reload_nginx(c, systemd):
    """Start nginx, or make a running nginx read its configuration again."""
    if systemd:
        _sh(c, "systemctl enable --quiet nginx && "
               "(systemctl is-active --quiet nginx && systemctl reload nginx"
               " || systemctl start nginx)")
        return

    log.warning("%s: systemd is not running; controlling nginx directly",
                c.host)
    if _ok(c, "test -s /run/nginx.pid && kill -0 $(cat /run/nginx.pid)"):
        _sh(c, "nginx -s reload")
    else:
        _sh(c, "nginx")


def healthy(c, target):
    """Return whether /health answers 200 through nginx before timeout."""
    deadline = time.monotonic() + target.health_timeout
    while time.monotonic() < deadline:
        if _ok(c, f"curl -fsS -m 2 -o /dev/null {target.health_url}"):
            return True
        time.sleep(0.5)
    return False


# The whole deploy ----------------------------------------------------------

def deploy(c, target, source):
    """Bring one host to the release in `source`; roll back on failure."""
    started = time.monotonic()
    systemd = has_systemd(c)
    install_packages(c)
    ensure_user(c, target)
    ensure_folders(c, target)
    env_changed = ensure_env_file(c, target)
    if not target.mongo_uri:
        install_mongodb(c, target)

    name = upload_release(c, target, source)
    previous = live_release(c, target)
    unit_changed = install_unit(c, target, name)
    site_changed = install_site(c, target)

    if site_changed or not _ok(c, "pgrep -x nginx >/dev/null"):
        reload_nginx(c, systemd)
    if (name == previous and not (env_changed or unit_changed)
            and app_running(c, target, systemd) and healthy(c, target)):
        log.info("%s: release %s already live; nothing to do", c.host, name)
        return {"release": name, "changed": False}

    switch_release(c, target, name)
    restart_app(c, target, systemd, reload_units=unit_changed)
    if not healthy(c, target):
        rollback(c, target, systemd, name, previous)

    prune_releases(c, target)
    log.info("%s: release %s live in %.1f s", c.host, name,
             time.monotonic() - started)
    return {"release": name, "changed": True}


def app_log_tail(c, target, systemd, lines=20):
    """Return the last lines the app service logged."""
    if systemd:
        command = f"journalctl -u minitwit -n {lines} --no-pager"
    else:
        command = f"tail -n {lines} {target.root}/shared/log/gunicorn.log"
    return _sh(c, command, warn=True).stdout.rstrip()


def rollback(c, target, systemd, failed, previous):
    """Switch back to the previous release and raise DeployFailed."""
    log.error("%s: release %s failed its health check at %s; the app's "
              "last log lines:\n%s", c.host, failed, target.health_url,
              app_log_tail(c, target, systemd))
    if not previous or previous == failed:
        raise DeployFailed(f"release {failed} failed its health check and "
                           "there is no earlier release to return to")

    switch_release(c, target, previous)
    restart_app(c, target, systemd)
    back = "and is healthy" if healthy(c, target) else "BUT IS NOT HEALTHY"
    raise DeployFailed(f"release {failed} failed its health check; "
                       f"rolled back to {previous} {back}")
