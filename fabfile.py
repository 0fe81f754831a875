"""Provision, deploy and destroy MiniTwit on DigitalOcean with Fabric.

    fab provision deploy          one droplet, MongoDB on it
    fab provision --web 3 deploy  three droplets, load balancer, managed DB
    fab destroy

The token comes from DIGITALOCEAN_ACCESS_TOKEN; DIGITALOCEAN_API_URL points
the client at another API (tests use a local fake). What provision makes is
recorded in .minitwit-state.json (MINITWIT_STATE_FILE), which deploy reads.
"""

import logging
import os
from pathlib import Path

from fabric import Connection, task
from invoke.exceptions import Exit

import cloud
import remote

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
KEY_FILES = ("~/.ssh/id_ed25519.pub", "~/.ssh/id_ecdsa.pub",
             "~/.ssh/id_rsa.pub")

logging.basicConfig(
    level=os.environ.get("MINITWIT_LOG_LEVEL", "INFO"),
    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("paramiko").setLevel(logging.WARNING)
logging.getLogger("azure").setLevel(logging.WARNING)


def _public_key(path):
    """Return the operator's ssh public key text."""
    candidates = [path] if path else KEY_FILES
    for candidate in candidates:
        file = Path(candidate).expanduser()
        if file.exists():
            return file.read_text().strip()
    raise Exit(f"no ssh public key found (tried {', '.join(candidates)}); "
               "pass --ssh-key")


def _client():
    """Return the DigitalOcean client, or stop with the reason."""
    try:
        return cloud.connect()
    except cloud.CloudError as e:
        raise Exit(str(e)) from None


def _poll_seconds():
    return float(os.environ.get("DIGITALOCEAN_POLL_SECONDS", "5"))


@task(help={
    "name": "name prefix and tag of every resource (default minitwit)",
    "region": "DigitalOcean region slug (default fra1)",
    "size": "droplet size slug (default s-1vcpu-1gb)",
    "web": "number of web droplets; more than 1 adds a load balancer and "
           "a managed MongoDB cluster instead of MongoDB on the droplet",
    "db_size": "managed database size slug (scale-out only)",
    "ssh_key": "ssh public key file to register (default ~/.ssh/id_*.pub)",
})
def provision(c, name="minitwit", region="fra1", size="s-1vcpu-1gb", web=1,
              db_size="db-s-1vcpu-1gb", ssh_key=None):
    """Make the droplets, firewall, and reserved IP or load balancer."""
    if int(web) < 1:
        raise Exit("--web must be at least 1")
    plan = cloud.Plan(name=name, region=region, size=size, web=int(web),
                      db_size=db_size, public_key=_public_key(ssh_key))
    do = _client()
    path = cloud.state_path()

    try:
        state = cloud.provision(do, plan, path, poll=_poll_seconds())
    except cloud.CloudError as e:
        raise Exit(f"provision stopped: {e}; run it again to finish") \
            from None
    except Exception as e:
        if type(e).__module__.startswith("azure"):
            raise Exit(f"provision stopped: DigitalOcean said "
                       f"{getattr(e, 'status_code', '')} {e}; run it again "
                       "to finish") from None
        raise

    front = state.get("reserved_ip") or state["load_balancer"]["ip"]
    log.info("provisioned %s: web at http://%s/ (state in %s)",
             name, front, path)


def _targets(c, ssh_port):
    """Return the connections to deploy to: -H hosts, else the state's."""
    if isinstance(c, Connection):
        return [c], cloud.load_state(cloud.state_path())

    state = cloud.load_state(cloud.state_path())
    hosts = cloud.web_hosts(state)
    if not hosts:
        raise Exit("nothing provisioned: run `fab provision` first, or "
                   "name a host with -H")
    return [Connection(h, user="root", port=int(ssh_port), config=c.config)
            for h in hosts], state


def _mongo_uri(state):
    """Return the external MongoDB URI, if the deploy should use one."""
    if os.environ.get("MINITWIT_MONGO_URI"):
        return os.environ["MINITWIT_MONGO_URI"]
    if not state.get("database_id"):
        return ""

    try:
        return cloud.database_uri(_client(), state["database_id"])
    except cloud.CloudError as e:
        raise Exit(f"no connection string for the app: {e}") from None


@task(help={
    "source": "folder holding the release to deploy (default: this repo)",
    "root": "deploy root on the host (default /srv/minitwit)",
    "listen": "nginx listen address or port (default 80)",
    "app_port": "loopback port gunicorn binds (default 8000)",
    "workers": "gunicorn worker processes (default 3)",
    "threads": "threads in each gunicorn worker (default 4)",
    "ssh_port": "ssh port of the provisioned droplets (default 22)",
})
def deploy(c, source=None, root="/srv/minitwit", listen="80", app_port=8000,
           workers=3, threads=4, ssh_port=22):
    """Install and start the release on every web host, or roll back."""
    connections, state = _targets(c, ssh_port)
    target = remote.Target(root=root, listen=str(listen),
                           app_port=int(app_port), workers=int(workers),
                           threads=int(threads),
                           mongo_uri=_mongo_uri(state))
    if target.mongo_uri:
        log.info("using an external MongoDB; none is installed on the host")

    for connection in connections:
        try:
            remote.deploy(connection, target, source or HERE)
        except remote.DeployFailed as e:
            raise Exit(f"DEPLOY FAILED on {connection.host}: {e}") from None


@task(help={
    "name": "name prefix and tag used by provision (default minitwit)",
    "yes": "do not ask for confirmation",
})
def destroy(c, name="minitwit", yes=False):
    """Remove the droplets, IP, load balancer, database and firewall."""
    path = cloud.state_path()
    if not yes:
        answer = input(f"Destroy every DigitalOcean resource of '{name}', "
                       "its data included? Type the name to confirm: ")
        if answer.strip() != name:
            raise Exit("not confirmed; nothing removed")

    cloud.destroy(_client(), name, path)
    log.info("destroyed %s", name)
