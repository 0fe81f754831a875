"""MiniTwit's DigitalOcean resources, made, found and removed through pydo.

Every `ensure_*` function first looks for what it would make (by tag, name
or fingerprint) and makes it only when it is missing, so provisioning can
be run again after any failure and finishes what the last run left. What
exists is recorded in a local state file that the deploy reads.
"""

import base64
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

log = logging.getLogger(__name__)

API_URL = "https://api.digitalocean.com"
PER_PAGE = 100
IMAGE = "ubuntu-24-04-x64"
SSH_PORT = "22"
WEB_PORTS = ("80", "443")
ANYWHERE = {"addresses": ["0.0.0.0/0", "::/0"]}
APP_DATABASE = "minitwit"
APP_USER = "minitwit"
APP_ROLE = "readWrite"


class CloudError(Exception):
    """DigitalOcean refused a request or a resource never became ready."""


@dataclass(frozen=True)
class Plan:
    """What to provision: names, sizes, and single or scale-out mode."""

    name: str = "minitwit"
    region: str = "fra1"
    size: str = "s-1vcpu-1gb"
    web: int = 1
    db_size: str = "db-s-1vcpu-1gb"
    db_nodes: int = 1
    public_key: str = ""

    @property
    def tag(self):
        """Return the tag that marks every droplet of this deployment."""
        return self.name

    @property
    def scale_out(self):
        """Return whether this plan puts droplets behind a load balancer."""
        return self.web > 1


def connect(env=os.environ):
    """Return a pydo client for the token and API URL in the environment."""
    import pydo

    token = env.get("DIGITALOCEAN_ACCESS_TOKEN")
    if not token:
        raise CloudError("DIGITALOCEAN_ACCESS_TOKEN is not set")

    endpoint = env.get("DIGITALOCEAN_API_URL") or API_URL
    if endpoint != API_URL:
        log.info("using the DigitalOcean API at %s", endpoint)
    return pydo.Client(token=token, endpoint=endpoint, retry_total=3)


def fingerprint(public_key):
    """Return the MD5 fingerprint DigitalOcean shows for a public key."""
    blob = base64.b64decode(public_key.split()[1])
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def _field(answer, key):
    """Return answer[key]; raise CloudError if the API sent an error body."""
    # NOTE: pydo returns 404 bodies instead of raising for many calls.
    if not isinstance(answer, dict) or key not in answer:
        error = answer if isinstance(answer, dict) else {}
        raise CloudError(f"{error.get('id', 'error')}: "
                         f"{error.get('message', answer)}")
    return answer[key]


def _all(list_call, key, **kwargs):
    """Return every item of a paged list, following `links.pages.next`."""
    items, page = [], 1
    while True:
        answer = list_call(page=page, per_page=PER_PAGE, **kwargs)
        items.extend(_field(answer, key) or [])
        if not answer.get("links", {}).get("pages", {}).get("next"):
            return items
        page += 1


def _wait(get, ready, what, poll, timeout):
    """Poll get() until ready(result) holds; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = get()
        if ready(result):
            return result
        if time.monotonic() > deadline:
            raise CloudError(f"{what} not ready after {timeout} s")
        time.sleep(poll)


def _is_missing(error):
    return getattr(error, "status_code", None) == 404


def _found(answer, key):
    """Return answer[key], or None when the API answered 404 not_found."""
    if isinstance(answer, dict) and answer.get("id") == "not_found":
        return None
    return _field(answer, key)


# State file ----------------------------------------------------------------

def state_path(env=os.environ):
    """Return where provisioning records what it made."""
    default = Path(__file__).resolve().parent / ".minitwit-state.json"
    return Path(env.get("MINITWIT_STATE_FILE") or default)


def load_state(path):
    """Return the recorded state, or an empty one."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def save_state(path, state):
    """Record state atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def web_hosts(state):
    """Return the addresses that the deploy should ssh into."""
    if state.get("reserved_ip"):
        return [state["reserved_ip"]]
    return [d["ip"] for d in state.get("droplets", [])]


# Provisioning --------------------------------------------------------------

def ensure_ssh_key(do, plan):
    """Register the operator's public key unless it is there; return id."""
    wanted = fingerprint(plan.public_key)
    for key in _all(do.ssh_keys.list, "ssh_keys"):
        if key["fingerprint"] == wanted:
            return key["id"]

    log.info("registering ssh key %s", wanted)
    answer = do.ssh_keys.create(body={"name": f"{plan.name}-operator",
                                      "public_key": plan.public_key})
    return _field(answer, "ssh_key")["id"]


def ensure_droplets(do, plan, key_id):
    """Create the missing web droplets of the plan; return all their ids."""
    existing = _all(do.droplets.list, "droplets", tag_name=plan.tag)
    names = {d["name"] for d in existing}
    wanted = [f"{plan.name}-web-{i}" for i in range(1, plan.web + 1)]
    missing = [n for n in wanted if n not in names]
    if not missing:
        return sorted(d["id"] for d in existing)

    log.info("creating droplets %s", ", ".join(missing))
    answer = do.droplets.create(body={
        "names": missing, "region": plan.region, "size": plan.size,
        "image": IMAGE, "ssh_keys": [key_id], "tags": [plan.tag],
        "monitoring": True, "ipv6": True,
    })
    made = _field(answer, "droplets")
    return sorted([d["id"] for d in existing] + [d["id"] for d in made])


def wait_active(do, droplet_ids, poll=5, timeout=600):
    """Wait until every droplet is active; return their names and IPs."""
    droplets = []
    for droplet_id in droplet_ids:
        droplet = _wait(
            lambda i=droplet_id: _field(do.droplets.get(i), "droplet"),
            lambda d: d["status"] == "active",
            f"droplet {droplet_id}", poll, timeout)
        ip = next(n["ip_address"] for n in droplet["networks"]["v4"]
                  if n["type"] == "public")
        droplets.append({"id": droplet_id, "name": droplet["name"],
                         "ip": ip})
    return droplets


def ensure_reserved_ip(do, plan, droplet_id, known_ip=None):
    """Give the droplet a reserved IP, reusing one made before; return it."""
    reserved = _all(do.reserved_ips.list, "reserved_ips")
    for entry in reserved:
        if (entry.get("droplet") or {}).get("id") == droplet_id:
            return entry["ip"]

    ip = next((r["ip"] for r in reserved
               if r["ip"] == known_ip and not r.get("droplet")), None)
    if ip is None:
        log.info("creating a reserved IP in %s", plan.region)
        answer = do.reserved_ips.create(body={"region": plan.region})
        ip = _field(answer, "reserved_ip")["ip"]
    return ip


def assign_reserved_ip(do, ip, droplet_id):
    """Point the reserved IP at the droplet."""
    log.info("assigning reserved IP %s to droplet %s", ip, droplet_id)
    answer = do.reserved_ips_actions.post(
        reserved_ip=ip, body={"type": "assign", "droplet_id": droplet_id})
    _field(answer, "action")


def firewall_rules(plan, lb_id=None):
    """Return the firewall's inbound and outbound rules for the plan."""
    # NOTE: behind a load balancer the droplets serve http to it alone;
    # a single droplet serves the public directly on its reserved IP.
    if plan.scale_out and not lb_id:
        raise ValueError("a scale-out firewall needs the load balancer id")
    web = {"load_balancer_uids": [lb_id]} if plan.scale_out else ANYWHERE

    inbound = [{"protocol": "tcp", "ports": SSH_PORT, "sources": ANYWHERE}]
    inbound += [{"protocol": "tcp", "ports": port, "sources": web}
                for port in WEB_PORTS]
    outbound = [{"protocol": proto, "ports": "0" if proto == "icmp"
                 else "all", "destinations": ANYWHERE}
                for proto in ("tcp", "udp", "icmp")]
    return {"inbound_rules": inbound, "outbound_rules": outbound}


def _rule_key(rule, side):
    """Return a rule in a form that compares equal however it is spelt."""
    # NOTE: the API may write "all ports" as "0" and add empty lists.
    ends = {k: sorted(map(str, v)) if isinstance(v, list) else v
            for k, v in (rule.get(side) or {}).items() if v}
    ports = str(rule.get("ports") or "0")
    return json.dumps([rule["protocol"], "0" if ports == "all" else ports,
                       rule.get("action") or "allow", ends], sort_keys=True)


def _same_rules(firewall, rules):
    """Return whether the firewall already has exactly these rules."""
    return all(
        sorted(_rule_key(r, side) for r in firewall.get(key) or []) ==
        sorted(_rule_key(r, side) for r in rules[key])
        for key, side in (("inbound_rules", "sources"),
                          ("outbound_rules", "destinations")))


def ensure_firewall(do, plan, lb_id=None):
    """Make or correct the cloud firewall of the plan's droplets; return id.

    ssh is open to all; http and https are open to all for one droplet
    and to the load balancer only when there is one.
    """
    name = f"{plan.name}-firewall"
    rules = firewall_rules(plan, lb_id)
    found = next((f for f in _all(do.firewalls.list, "firewalls")
                  if f["name"] == name), None)
    if found is None:
        log.info("creating firewall %s", name)
        answer = do.firewalls.create(body={"name": name,
                                           "tags": [plan.tag], **rules})
        return _field(answer, "firewall")["id"]

    tags = found.get("tags") or []
    if _same_rules(found, rules) and plan.tag in tags:
        return found["id"]

    # NOTE: PUT replaces the whole firewall, so keep what it applies to.
    log.info("updating the rules of firewall %s", name)
    if plan.tag not in tags:
        tags = tags + [plan.tag]
    answer = do.firewalls.update(found["id"], body={
        "name": name, "tags": tags,
        "droplet_ids": found.get("droplet_ids") or [], **rules})
    return _field(answer, "firewall")["id"]


def ensure_load_balancer(do, plan, poll=5, timeout=600):
    """Put the tagged droplets behind a load balancer; return id and IP."""
    name = f"{plan.name}-lb"
    found = [b for b in _all(do.load_balancers.list, "load_balancers")
             if b["name"] == name]
    if found:
        balancer = found[0]
    else:
        log.info("creating load balancer %s", name)
        answer = do.load_balancers.create(body={
            "name": name, "region": plan.region, "tag": plan.tag,
            "forwarding_rules": [{
                "entry_protocol": "http", "entry_port": 80,
                "target_protocol": "http", "target_port": 80}],
            "health_check": {
                "protocol": "http", "port": 80, "path": "/health",
                "check_interval_seconds": 10,
                "response_timeout_seconds": 5,
                "healthy_threshold": 3, "unhealthy_threshold": 3},
        })
        balancer = _field(answer, "load_balancer")

    balancer = _wait(
        lambda: _field(do.load_balancers.get(lb_id=balancer["id"]),
                       "load_balancer"),
        lambda b: b["status"] == "active" and b["ip"],
        f"load balancer {name}", poll, timeout)
    return {"id": balancer["id"], "ip": balancer["ip"]}


def ensure_database(do, plan, poll=10, timeout=1800):
    """Make the managed MongoDB cluster, reachable from the droplets only."""
    name = f"{plan.name}-db"
    answer = do.databases.list_clusters(tag_name=plan.tag)
    found = [c for c in _field(answer, "databases") or []
             if c["name"] == name]
    if found:
        cluster = found[0]
    else:
        log.info("creating MongoDB cluster %s", name)
        answer = do.databases.create_cluster(body={
            "name": name, "engine": "mongodb", "version": "8.0",
            "region": plan.region, "size": plan.db_size,
            "num_nodes": plan.db_nodes, "tags": [plan.tag],
        })
        cluster = _field(answer, "database")

    cluster = _wait(
        lambda: _field(do.databases.get_cluster(cluster["id"]), "database"),
        lambda c: c["status"] == "online",
        f"database cluster {name}", poll, timeout)

    rules = [{"type": "tag", "value": plan.tag}]
    current = _field(do.databases.list_firewall_rules(cluster["id"]),
                     "rules")
    if [{"type": r["type"], "value": r["value"]} for r in current] != rules:
        log.info("limiting %s to droplets tagged %s", name, plan.tag)
        do.databases.update_firewall_rules(cluster["id"],
                                           body={"rules": rules})
    return cluster["id"]


def ensure_app_database(do, cluster_id):
    """Make the app's database on the cluster unless it is there."""
    names = [d["name"] for d in
             _field(do.databases.list(cluster_id), "dbs") or []]
    if APP_DATABASE in names:
        return

    log.info("creating database %s on the cluster", APP_DATABASE)
    _field(do.databases.add(cluster_id, body={"name": APP_DATABASE}), "db")


def ensure_app_user(do, cluster_id):
    """Make the app's user, limited to its database, unless it exists."""
    user = _found(do.databases.get_user(cluster_id, APP_USER), "user")
    wanted = {"databases": [APP_DATABASE], "role": APP_ROLE}
    if user is None:
        log.info("creating database user %s (%s on %s)", APP_USER,
                 APP_ROLE, APP_DATABASE)
        answer = do.databases.add_user(cluster_id, body={
            "name": APP_USER,
            "settings": {"mongo_user_settings": wanted}})
        _field(answer, "user")
        return

    settings = (user.get("settings") or {}).get("mongo_user_settings")
    if settings and settings != wanted:
        # TODO: correct the rights through the API; the published API
        # documents no update of a MongoDB user's databases or role.
        log.warning("database user %s exists with other rights (%s); "
                    "left as it is", APP_USER, settings)


def app_uri(connection, user):
    """Return the app's connection string from cluster and user details."""
    scheme = connection.get("protocol") or "mongodb+srv"
    host = connection["host"]
    if scheme == "mongodb" and connection.get("port"):
        host = f"{host}:{connection['port']}"  # +srv URIs take no port

    options = {"tls": "true", "authSource": "admin"}
    query = parse_qs(urlsplit(connection.get("uri") or "").query)
    if query.get("replicaSet"):
        options["replicaSet"] = query["replicaSet"][0]
    credentials = f"{quote(user['name'], safe='')}:" \
                  f"{quote(user['password'], safe='')}"
    return f"{scheme}://{credentials}@{host}/{APP_DATABASE}?" \
           f"{urlencode(options)}"


def database_uri(do, cluster_id):
    """Return the app user's connection string to the cluster (a secret)."""
    cluster = _field(do.databases.get_cluster(cluster_id), "database")
    user = _found(do.databases.get_user(cluster_id, APP_USER), "user")
    if user is None:
        raise CloudError(f"database user {APP_USER} is missing; run "
                         "`fab provision` again")
    if not user.get("password"):
        raise CloudError(f"the API shows no password for database user "
                         f"{APP_USER}; the token needs the "
                         "database:view_credentials scope")
    return app_uri(cluster["connection"], user)


def provision(do, plan, path, poll=5):
    """Make whatever the plan needs that does not exist; record it all."""
    state = load_state(path)
    if state and (state.get("web", 1) > 1) != plan.scale_out:
        raise CloudError("the recorded deployment has another shape; "
                         "destroy it first")
    state.update(name=plan.name, tag=plan.tag, region=plan.region,
                 web=plan.web)

    def record(**fields):
        state.update(fields)
        save_state(path, state)

    record(ssh_key_id=ensure_ssh_key(do, plan))
    droplet_ids = ensure_droplets(do, plan, state["ssh_key_id"])
    record(droplets=[{"id": i} for i in droplet_ids])
    record(droplets=wait_active(do, droplet_ids, poll=poll))

    if plan.scale_out:
        # The balancer comes first: the firewall names it as the only
        # source of http, and the slow database is made last.
        record(load_balancer=ensure_load_balancer(do, plan, poll=poll))
        record(firewall_id=ensure_firewall(
            do, plan, lb_id=state["load_balancer"]["id"]))
        record(database_id=ensure_database(do, plan, poll=poll))
        ensure_app_database(do, state["database_id"])
        ensure_app_user(do, state["database_id"])
        return state

    record(firewall_id=ensure_firewall(do, plan))
    droplet_id = droplet_ids[0]
    ip = ensure_reserved_ip(do, plan, droplet_id, state.get("reserved_ip"))
    record(reserved_ip=ip)
    reserved = _field(do.reserved_ips.get(ip), "reserved_ip")
    if (reserved.get("droplet") or {}).get("id") != droplet_id:
        assign_reserved_ip(do, ip, droplet_id)
    return state


# Teardown ------------------------------------------------------------------

def _delete(call, what, *args, **kwargs):
    """Run one delete call; a resource already gone is fine."""
    from azure.core.exceptions import HttpResponseError

    try:
        answer = call(*args, **kwargs)
    except HttpResponseError as e:
        if not _is_missing(e):
            raise
        return
    if isinstance(answer, dict) and answer.get("id") == "not_found":
        return
    log.info("removed %s", what)


def destroy(do, name, path):
    """Remove everything provisioning made for the named deployment."""
    state = load_state(path)
    tag = state.get("tag", name)

    for balancer in _all(do.load_balancers.list, "load_balancers"):
        if balancer["name"] == f"{name}-lb":
            _delete(do.load_balancers.delete, balancer["name"],
                    lb_id=balancer["id"])

    clusters = _field(do.databases.list_clusters(tag_name=tag),
                      "databases") or []
    for cluster in clusters:
        if cluster["name"] == f"{name}-db":
            _delete(do.databases.destroy_cluster, cluster["name"],
                    cluster["id"])

    for firewall in _all(do.firewalls.list, "firewalls"):
        if firewall["name"] == f"{name}-firewall":
            _delete(do.firewalls.delete, firewall["name"], firewall["id"])

    droplet_ids = {d["id"] for d in
                   _all(do.droplets.list, "droplets", tag_name=tag)}
    ours = [r for r in _all(do.reserved_ips.list, "reserved_ips")
            if (r.get("droplet") or {}).get("id") in droplet_ids
            or r["ip"] == state.get("reserved_ip")]
    for reserved in ours:
        if reserved.get("droplet"):
            do.reserved_ips_actions.post(reserved_ip=reserved["ip"],
                                         body={"type": "unassign"})

    if droplet_ids:
        _delete(do.droplets.destroy_by_tag, f"droplets tagged {tag}",
                tag_name=tag)
    for reserved in ours:
        _delete(do.reserved_ips.delete, f"reserved IP {reserved['ip']}",
                reserved["ip"])
    _delete(do.tags.delete, f"tag {tag}", tag_id=tag)

    Path(path).unlink(missing_ok=True)
