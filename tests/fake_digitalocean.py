"""A local fake of the parts of DigitalOcean's v2 API that provisioning uses.

It follows the published shapes: list answers carry `links` and `meta`
where the real API pages them, creates answer 201 or 202 as the real
endpoints do, errors are `{"id", "message"}`, and droplets, load balancers
and database clusters pass through their `new`/`creating` state before
they are ready. Everything lives in memory; the server listens on
127.0.0.1 only, over TLS with a throwaway certificate, since the client
refuses to send a bearer token over plain HTTP (clients trust it through
REQUESTS_CA_BUNDLE).
"""

import base64
import hashlib
import itertools
import json
import re
import ssl
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

NOT_FOUND = ("not_found",
             "The resource you were accessing could not be found.")


class ApiError(Exception):
    """An error answer: HTTP status, error id and message."""

    def __init__(self, status, error_id, message):
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message


class FakeDigitalOcean:
    """The in-memory account and the HTTP server that serves it."""

    def __init__(self, token="fake-token", polls_until_ready=2,
                 reserved_ips=None, droplet_ips=None):
        self.token = token
        self.polls_until_ready = polls_until_ready
        self.ssh_keys = {}
        self.droplets = {}
        self.tags = {}
        self.reserved_ips = {}
        self.firewalls = {}
        self.load_balancers = {}
        self.databases = {}
        self.db_firewalls = {}
        self.db_users = {}
        self.requests = []
        self.failures = []
        self._ids = itertools.count(1000)
        self._reserved_pool = iter(reserved_ips or
                                   (f"127.0.2.{n}" for n in range(1, 255)))
        self._droplet_pool = iter(droplet_ips or
                                  (f"127.0.1.{n}" for n in range(1, 255)))
        self._lock = threading.Lock()
        self._server = None

    # Server ----------------------------------------------------------------

    def start(self, folder):
        """Serve HTTPS on an unused loopback port; return the base URL."""
        self.ca_file = _make_certificate(Path(folder))
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, Path(folder) / "key.pem")
        self._server.socket = context.wrap_socket(self._server.socket,
                                                  server_side=True)
        thread = threading.Thread(target=self._server.serve_forever,
                                  daemon=True)
        thread.start()
        return self.url

    def stop(self):
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self):
        """Return the base URL the server answers on."""
        host, port = self._server.server_address
        return f"https://{host}:{port}"

    def fail_next(self, method, path, status=422,
                  error_id="unprocessable_entity", message="failed"):
        """Make the next request whose path matches a regex fail once."""
        self.failures.append((method, path, status, error_id, message))

    def writes(self):
        """Return the (method, path) of every request that changed state."""
        return [(m, p) for m, p in self.requests if m != "GET"]

    # Dispatch --------------------------------------------------------------

    def handle(self, method, path, query, body, auth):
        """Answer one request: return (status, JSON-able body or None)."""
        self.requests.append((method, path))
        if auth != f"Bearer {self.token}":
            raise ApiError(401, "unauthorized", "Unable to authenticate you")

        for i, (f_method, f_path, status, error_id, message) in enumerate(
                self.failures):
            if f_method == method and re.fullmatch(f_path, path):
                del self.failures[i]
                raise ApiError(status, error_id, message)

        for route_method, pattern, name in ROUTES:
            match = re.fullmatch(pattern, path)
            if route_method == method and match:
                with self._lock:
                    return getattr(self, name)(query, body, *match.groups())
        raise ApiError(404, *NOT_FOUND)

    def _next_id(self):
        return next(self._ids)

    def _page(self, key, items, query, path):
        """Return one page of items with the real API's links and meta."""
        per_page = int(query.get("per_page", 20))
        page = int(query.get("page", 1))
        start = (page - 1) * per_page
        body = {key: items[start:start + per_page],
                "links": {}, "meta": {"total": len(items)}}
        last = max(1, -(-len(items) // per_page))
        pages = {}
        if page < last:
            pages["next"] = f"{self.url}{path}?page={page + 1}" \
                            f"&per_page={per_page}"
            pages["last"] = f"{self.url}{path}?page={last}" \
                            f"&per_page={per_page}"
        if page > 1:
            pages["first"] = f"{self.url}{path}?page=1&per_page={per_page}"
            pages["prev"] = f"{self.url}{path}?page={page - 1}" \
                            f"&per_page={per_page}"
        if pages:
            body["links"]["pages"] = pages
        return body

    def _tick(self, resource, ready_status, on_ready):
        """Count a poll; make the resource ready after enough of them."""
        resource["_polls"] = resource.get("_polls", 0) + 1
        if (resource["status"] != ready_status
                and resource["_polls"] >= self.polls_until_ready):
            resource["status"] = ready_status
            on_ready(resource)

    @staticmethod
    def _public(resource):
        return {k: v for k, v in resource.items() if not k.startswith("_")}

    def _tag_droplet(self, droplet, tags):
        for tag in tags:
            self.tags.setdefault(tag, {"name": tag})
        droplet["tags"] = list(tags)

    # SSH keys --------------------------------------------------------------

    def list_keys(self, query, body):
        keys = list(self.ssh_keys.values())
        return 200, self._page("ssh_keys", keys, query, "/v2/account/keys")

    def create_key(self, query, body):
        _require(body, "name", "public_key")
        fingerprint = _fingerprint(body["public_key"])
        if any(k["fingerprint"] == fingerprint
               for k in self.ssh_keys.values()):
            raise ApiError(422, "unprocessable_entity",
                           "SSH Key is already in use on your account")
        key = {"id": self._next_id(), "fingerprint": fingerprint,
               "public_key": body["public_key"], "name": body["name"]}
        self.ssh_keys[key["id"]] = key
        return 201, {"ssh_key": key}

    def delete_key(self, query, body, key_id):
        if self.ssh_keys.pop(int(key_id), None) is None:
            raise ApiError(404, *NOT_FOUND)
        return 204, None

    # Droplets --------------------------------------------------------------

    def list_droplets(self, query, body):
        droplets = [self._public(d) for d in self.droplets.values()
                    if "tag_name" not in query
                    or query["tag_name"] in d["tags"]]
        return 200, self._page("droplets", droplets, query, "/v2/droplets")

    def create_droplets(self, query, body):
        _require(body, "region", "size", "image")
        names = body.get("names") or [body.get("name")]
        if not all(names):
            raise ApiError(422, "unprocessable_entity",
                           "Name is required")
        for fingerprint in body.get("ssh_keys", []):
            if not any(fingerprint in (k["fingerprint"], k["id"])
                       for k in self.ssh_keys.values()):
                raise ApiError(422, "unprocessable_entity",
                               "SSH key not found")
        made = [self._new_droplet(name, body) for name in names]
        actions = [{"id": self._next_id(), "rel": "create",
                    "href": f"{self.url}/v2/actions/{d['id']}"}
                   for d in made]
        if "names" in body:
            return 202, {"droplets": made, "links": {"actions": actions}}
        return 202, {"droplet": made[0], "links": {"actions": actions}}

    def _new_droplet(self, name, body):
        droplet = {
            "id": self._next_id(), "name": name, "status": "new",
            "memory": 1024, "vcpus": 1, "disk": 25, "locked": False,
            "created_at": "2020-02-21T00:00:00Z",
            "image": {"slug": body["image"], "distribution": "Ubuntu"},
            "size_slug": body["size"],
            "region": {"slug": body["region"], "name": body["region"]},
            "networks": {"v4": [], "v6": []},
            "tags": [], "volume_ids": [],
            "vpc_uuid": str(uuid.uuid4()),
        }
        self._tag_droplet(droplet, body.get("tags", []))
        self.droplets[droplet["id"]] = droplet
        return self._public(droplet)

    def get_droplet(self, query, body, droplet_id):
        droplet = self.droplets.get(int(droplet_id))
        if droplet is None:
            raise ApiError(404, *NOT_FOUND)
        self._tick(droplet, "active", self._give_networks)
        return 200, {"droplet": self._public(droplet)}

    def _give_networks(self, droplet):
        droplet["networks"]["v4"] = [
            {"ip_address": next(self._droplet_pool), "netmask": "255.255.0.0",
             "gateway": "127.0.0.1", "type": "public"},
            {"ip_address": f"10.110.0.{droplet['id'] % 250}",
             "netmask": "255.255.240.0", "gateway": "10.110.0.1",
             "type": "private"},
        ]

    def delete_droplet(self, query, body, droplet_id):
        if self.droplets.pop(int(droplet_id), None) is None:
            raise ApiError(404, *NOT_FOUND)
        return 204, None

    def delete_droplets_by_tag(self, query, body):
        if "tag_name" not in query:
            raise ApiError(422, "unprocessable_entity",
                           "tag_name is required")
        for droplet_id in [d["id"] for d in self.droplets.values()
                           if query["tag_name"] in d["tags"]]:
            del self.droplets[droplet_id]
        return 204, None

    # Tags ------------------------------------------------------------------

    def create_tag(self, query, body):
        _require(body, "name")
        tag = self.tags.setdefault(body["name"], {"name": body["name"]})
        return 201, {"tag": tag}

    def get_tag(self, query, body, name):
        if name not in self.tags:
            raise ApiError(404, *NOT_FOUND)
        count = sum(name in d["tags"] for d in self.droplets.values())
        return 200, {"tag": {"name": name, "resources": {
            "count": count, "droplets": {"count": count}}}}

    def delete_tag(self, query, body, name):
        if self.tags.pop(name, None) is None:
            raise ApiError(404, *NOT_FOUND)
        return 204, None

    # Reserved IPs ----------------------------------------------------------

    def list_reserved_ips(self, query, body):
        ips = [self._reserved_view(r) for r in self.reserved_ips.values()]
        return 200, self._page("reserved_ips", ips, query,
                               "/v2/reserved_ips")

    def _reserved_view(self, reserved):
        droplet = self.droplets.get(reserved["_droplet_id"])
        return {"ip": reserved["ip"], "region": reserved["region"],
                "droplet": self._public(droplet) if droplet else None,
                "locked": False, "project_id": reserved["project_id"]}

    def create_reserved_ip(self, query, body):
        if "droplet_id" in body:
            droplet = self.droplets.get(body["droplet_id"])
            if droplet is None:
                raise ApiError(422, "unprocessable_entity",
                               "Droplet not found")
            region = droplet["region"]
        elif "region" in body:
            region = {"slug": body["region"], "name": body["region"]}
        else:
            raise ApiError(422, "unprocessable_entity",
                           "Region or droplet is required")
        reserved = {"ip": next(self._reserved_pool), "region": region,
                    "_droplet_id": body.get("droplet_id"),
                    "project_id": str(uuid.uuid4())}
        self.reserved_ips[reserved["ip"]] = reserved
        return 202, {"reserved_ip": self._reserved_view(reserved),
                     "links": {"droplets": [], "actions": []}}

    def get_reserved_ip(self, query, body, ip):
        if ip not in self.reserved_ips:
            raise ApiError(404, *NOT_FOUND)
        return 200, {"reserved_ip":
                     self._reserved_view(self.reserved_ips[ip])}

    def delete_reserved_ip(self, query, body, ip):
        if self.reserved_ips.pop(ip, None) is None:
            raise ApiError(404, *NOT_FOUND)
        return 204, None

    def reserved_ip_action(self, query, body, ip):
        reserved = self.reserved_ips.get(ip)
        if reserved is None:
            raise ApiError(404, *NOT_FOUND)
        if body.get("type") == "assign":
            if body.get("droplet_id") not in self.droplets:
                raise ApiError(422, "unprocessable_entity",
                               "Droplet not found")
            reserved["_droplet_id"] = body["droplet_id"]
        elif body.get("type") == "unassign":
            reserved["_droplet_id"] = None
        else:
            raise ApiError(422, "unprocessable_entity",
                           "Unknown action type")
        action = {"id": self._next_id(), "status": "in-progress",
                  "type": f"{body['type']}_ip", "resource_type":
                  "reserved_ip", "region_slug": reserved["region"]["slug"]}
        return 201, {"action": action}

    # Firewalls -------------------------------------------------------------

    def list_firewalls(self, query, body):
        return 200, self._page("firewalls", list(self.firewalls.values()),
                               query, "/v2/firewalls")

    def create_firewall(self, query, body):
        _require(body, "name")
        if not (body.get("inbound_rules") or body.get("outbound_rules")):
            raise ApiError(400, "bad_request",
                           "At least one rule must be specified")
        firewall = {"id": str(uuid.uuid4()), "name": body["name"],
                    "status": "waiting", "created_at": "2020-02-21T00:00:00Z",
                    "pending_changes": [],
                    "inbound_rules": body.get("inbound_rules", []),
                    "outbound_rules": body.get("outbound_rules", []),
                    "droplet_ids": body.get("droplet_ids", []),
                    "tags": body.get("tags", [])}
        self._check_firewall_sources(firewall)
        self.firewalls[firewall["id"]] = firewall
        return 202, {"firewall": firewall}

    def update_firewall(self, query, body, firewall_id):
        firewall = self.firewalls.get(firewall_id)
        if firewall is None:
            raise ApiError(404, *NOT_FOUND)
        _require(body, "name")
        if not (body.get("inbound_rules") or body.get("outbound_rules")):
            raise ApiError(400, "bad_request",
                           "At least one rule must be specified")
        # The whole firewall is replaced: what the body omits is reset.
        changed = dict(firewall, name=body["name"],
                       inbound_rules=body.get("inbound_rules", []),
                       outbound_rules=body.get("outbound_rules", []),
                       droplet_ids=body.get("droplet_ids", []),
                       tags=body.get("tags", []))
        self._check_firewall_sources(changed)
        self.firewalls[firewall_id] = changed
        return 200, {"firewall": changed}

    def _check_firewall_sources(self, firewall):
        for rule in firewall["inbound_rules"]:
            for lb_id in (rule.get("sources") or {}).get(
                    "load_balancer_uids", []):
                if lb_id not in self.load_balancers:
                    raise ApiError(422, "unprocessable_entity",
                                   f"load balancer {lb_id} not found")

    def delete_firewall(self, query, body, firewall_id):
        if self.firewalls.pop(firewall_id, None) is None:
            raise ApiError(404, *NOT_FOUND)
        return 204, None

    # Load balancers --------------------------------------------------------

    def list_load_balancers(self, query, body):
        lbs = [self._public(b) for b in self.load_balancers.values()]
        return 200, self._page("load_balancers", lbs, query,
                               "/v2/load_balancers")

    def create_load_balancer(self, query, body):
        _require(body, "name", "forwarding_rules")
        if not (body.get("region") or body.get("droplet_ids") is not None
                or body.get("tag")):
            raise ApiError(422, "unprocessable_entity",
                           "Region is required")
        balancer = {"id": str(uuid.uuid4()), "name": body["name"],
                    "ip": "", "status": "new",
                    "created_at": "2020-02-21T00:00:00Z",
                    "forwarding_rules": body["forwarding_rules"],
                    "health_check": body.get("health_check", {}),
                    "region": {"slug": body.get("region")},
                    "tag": body.get("tag", ""),
                    "droplet_ids": body.get("droplet_ids", [])}
        self.load_balancers[balancer["id"]] = balancer
        return 202, {"load_balancer": self._public(balancer)}

    def get_load_balancer(self, query, body, lb_id):
        balancer = self.load_balancers.get(lb_id)
        if balancer is None:
            raise ApiError(404, *NOT_FOUND)
        self._tick(balancer, "active", self._give_lb_ip)
        return 200, {"load_balancer": self._public(balancer)}

    def _give_lb_ip(self, balancer):
        balancer["ip"] = next(self._reserved_pool)

    def delete_load_balancer(self, query, body, lb_id):
        if self.load_balancers.pop(lb_id, None) is None:
            raise ApiError(404, *NOT_FOUND)
        return 204, None

    # Databases -------------------------------------------------------------

    def list_databases(self, query, body):
        clusters = [self._public(c) for c in self.databases.values()
                    if "tag_name" not in query
                    or query["tag_name"] in c["tags"]]
        return 200, {"databases": clusters}

    def create_database(self, query, body):
        _require(body, "name", "engine", "region", "size", "num_nodes")
        if any(c["name"] == body["name"] for c in self.databases.values()):
            raise ApiError(422, "unprocessable_entity",
                           "name is already in use")
        host = f"{body['name']}-do-user-1-0.db.invalid"
        password = uuid.uuid4().hex
        replica_set = body["name"]
        cluster = {
            "id": str(uuid.uuid4()), "name": body["name"],
            "engine": body["engine"], "version": body.get("version", "8"),
            "num_nodes": body["num_nodes"], "size": body["size"],
            "region": body["region"], "status": "creating",
            "tags": body.get("tags", []), "db_names": ["admin"],
            "created_at": "2020-02-21T00:00:00Z",
            "connection": {
                "protocol": "mongodb+srv", "host": host, "port": 27017,
                "user": "doadmin", "password": password,
                "database": "admin", "ssl": True,
                "uri": f"mongodb+srv://doadmin:{password}@{host}/admin"
                       f"?tls=true&authSource=admin&replicaSet={replica_set}",
            },
        }
        self.databases[cluster["id"]] = cluster
        self.db_firewalls[cluster["id"]] = []
        self.db_users[cluster["id"]] = {"doadmin": {
            "name": "doadmin", "role": "primary", "password": password}}
        return 201, {"database": self._public(cluster)}

    def get_database(self, query, body, cluster_id):
        cluster = self.databases.get(cluster_id)
        if cluster is None:
            raise ApiError(404, *NOT_FOUND)
        self._tick(cluster, "online", lambda c: None)
        return 200, {"database": self._public(cluster)}

    def get_database_firewall(self, query, body, cluster_id):
        if cluster_id not in self.databases:
            raise ApiError(404, *NOT_FOUND)
        return 200, {"rules": self.db_firewalls[cluster_id]}

    def put_database_firewall(self, query, body, cluster_id):
        if cluster_id not in self.databases:
            raise ApiError(404, *NOT_FOUND)
        self.db_firewalls[cluster_id] = [
            dict(rule, uuid=str(uuid.uuid4()), cluster_uuid=cluster_id)
            for rule in body.get("rules", [])]
        return 204, None

    def delete_database(self, query, body, cluster_id):
        if self.databases.pop(cluster_id, None) is None:
            raise ApiError(404, *NOT_FOUND)
        self.db_firewalls.pop(cluster_id, None)
        self.db_users.pop(cluster_id, None)
        return 204, None

    def _cluster(self, cluster_id):
        cluster = self.databases.get(cluster_id)
        if cluster is None:
            raise ApiError(404, *NOT_FOUND)
        return cluster

    def list_dbs(self, query, body, cluster_id):
        names = self._cluster(cluster_id)["db_names"]
        return 200, {"dbs": [{"name": n} for n in names]}

    def add_db(self, query, body, cluster_id):
        cluster = self._cluster(cluster_id)
        _require(body, "name")
        if body["name"] in cluster["db_names"]:
            raise ApiError(422, "unprocessable_entity",
                           "database name is already taken")
        cluster["db_names"].append(body["name"])
        return 201, {"db": {"name": body["name"]}}

    def get_db(self, query, body, cluster_id, name):
        if name not in self._cluster(cluster_id)["db_names"]:
            raise ApiError(404, *NOT_FOUND)
        return 200, {"db": {"name": name}}

    def list_db_users(self, query, body, cluster_id):
        self._cluster(cluster_id)
        return 200, {"users": list(self.db_users[cluster_id].values())}

    def add_db_user(self, query, body, cluster_id):
        self._cluster(cluster_id)
        _require(body, "name")
        users = self.db_users[cluster_id]
        if body["name"] in users:
            raise ApiError(422, "unprocessable_entity",
                           "user name is already taken")
        settings = (body.get("settings") or {}).get("mongo_user_settings")
        if settings and settings.get("role") not in (
                None, "readOnly", "readWrite", "dbAdmin"):
            raise ApiError(422, "unprocessable_entity",
                           "role must be readOnly, readWrite or dbAdmin")
        user = {"name": body["name"], "role": "normal",
                "password": uuid.uuid4().hex}
        if settings:
            user["settings"] = {"mongo_user_settings": settings}
        users[user["name"]] = user
        return 201, {"user": user}

    def get_db_user(self, query, body, cluster_id, name):
        self._cluster(cluster_id)
        user = self.db_users[cluster_id].get(name)
        if user is None:
            raise ApiError(404, *NOT_FOUND)
        return 200, {"user": user}


ID = r"([^/]+)"
ROUTES = [
    ("GET", r"/v2/account/keys", "list_keys"),
    ("POST", r"/v2/account/keys", "create_key"),
    ("DELETE", rf"/v2/account/keys/{ID}", "delete_key"),
    ("GET", r"/v2/droplets", "list_droplets"),
    ("POST", r"/v2/droplets", "create_droplets"),
    ("DELETE", r"/v2/droplets", "delete_droplets_by_tag"),
    ("GET", rf"/v2/droplets/{ID}", "get_droplet"),
    ("DELETE", rf"/v2/droplets/{ID}", "delete_droplet"),
    ("POST", r"/v2/tags", "create_tag"),
    ("GET", rf"/v2/tags/{ID}", "get_tag"),
    ("DELETE", rf"/v2/tags/{ID}", "delete_tag"),
    ("GET", r"/v2/reserved_ips", "list_reserved_ips"),
    ("POST", r"/v2/reserved_ips", "create_reserved_ip"),
    ("GET", rf"/v2/reserved_ips/{ID}", "get_reserved_ip"),
    ("DELETE", rf"/v2/reserved_ips/{ID}", "delete_reserved_ip"),
    ("POST", rf"/v2/reserved_ips/{ID}/actions", "reserved_ip_action"),
    ("GET", r"/v2/firewalls", "list_firewalls"),
    ("POST", r"/v2/firewalls", "create_firewall"),
    ("PUT", rf"/v2/firewalls/{ID}", "update_firewall"),
    ("DELETE", rf"/v2/firewalls/{ID}", "delete_firewall"),
    ("GET", r"/v2/load_balancers", "list_load_balancers"),
    ("POST", r"/v2/load_balancers", "create_load_balancer"),
    ("GET", rf"/v2/load_balancers/{ID}", "get_load_balancer"),
    ("DELETE", rf"/v2/load_balancers/{ID}", "delete_load_balancer"),
    ("GET", r"/v2/databases", "list_databases"),
    ("POST", r"/v2/databases", "create_database"),
    ("GET", rf"/v2/databases/{ID}", "get_database"),
    ("GET", rf"/v2/databases/{ID}/firewall", "get_database_firewall"),
    ("PUT", rf"/v2/databases/{ID}/firewall", "put_database_firewall"),
    ("GET", rf"/v2/databases/{ID}/dbs", "list_dbs"),
    ("POST", rf"/v2/databases/{ID}/dbs", "add_db"),
    ("GET", rf"/v2/databases/{ID}/dbs/{ID}", "get_db"),
    ("GET", rf"/v2/databases/{ID}/users", "list_db_users"),
    ("POST", rf"/v2/databases/{ID}/users", "add_db_user"),
    ("GET", rf"/v2/databases/{ID}/users/{ID}", "get_db_user"),
    ("DELETE", rf"/v2/databases/{ID}", "delete_database"),
]


def _require(body, *fields):
    missing = [f for f in fields if not body.get(f)]
    if missing:
        raise ApiError(422, "unprocessable_entity",
                       f"{missing[0]} is required")


def _make_certificate(folder):
    """Write a self-signed certificate for 127.0.0.1; return its path."""
    cert = folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(folder / "key.pem"), "-out", str(cert)],
        check=True, capture_output=True)
    return cert


def _fingerprint(public_key):
    """Return an MD5-style colon fingerprint, as the API shows keys."""
    try:
        blob = base64.b64decode(public_key.split()[1])
    except (IndexError, ValueError):
        raise ApiError(422, "unprocessable_entity",
                       "Key invalid, key should be of the format "
                       "`type key [comment]`") from None
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into calls on the fake and answers JSON."""

    fake = None

    def _serve(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
            status, answer = self.fake.handle(
                self.command, url.path, query, body,
                self.headers.get("Authorization"))
        except json.JSONDecodeError:
            status, answer = 400, {"id": "bad_request",
                                   "message": "invalid JSON"}
        except ApiError as e:
            status, answer = e.status, {"id": e.error_id,
                                        "message": e.message}

        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, *args):
        pass
