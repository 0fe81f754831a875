"""The OpenAPI document matches what the simulator API does.

Schemathesis generates requests from openapi.json, valid ones and
invalid ones, sends them to the app over a real FerretDB, and checks each
answer against the document: no 5xx, only documented statuses, bodies of
the documented shape, invalid input refused.
"""

import json
import uuid

import pytest
import schemathesis
from conftest import SIMULATOR_AUTH, make_app
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

import simapi
import store


@pytest.fixture
def openapi_app(ferretdb_client, monkeypatch):
    """Return the root app over a fresh database on the real server."""
    # NOTE: this checks shapes, not speed; on a busy machine the first
    # database call can miss its 0.25 s and turn an answer into a 503.
    monkeypatch.setattr(simapi, "REACH_BUDGET", 5.0)
    name = f"test_{uuid.uuid4().hex[:12]}"
    db = ferretdb_client[name]
    store.ensure_indexes(db)
    yield make_app(db)
    ferretdb_client.drop_database(name)


# NOTE: the contract answers missing credentials with 403 where this check
# insists on 401, and a taken username with 400 rather than 409; the
# generator repeats names, so 400 is a fair answer to a registration.
# tests/test_simapi.py checks both answers.
# The API ignores query parameters it does not know, as most servers do.
CONFIG = SchemathesisConfig.from_dict({
    "generation": {"allow-extra-parameters": False},
    "checks": {"missing_required_header": {"enabled": False}},
    "operations": [{
        "include-path": "/register",
        "checks": {"positive_data_acceptance": {
            "expected-statuses": ["2xx", "400"]}},
    }],
})

schema = schemathesis.openapi.from_path(simapi.OPENAPI, config=CONFIG)


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_openapi_document(case, openapi_app):
    # NOTE: some checks send follow-up requests through the schema itself.
    case.operation.schema.app = openapi_app
    case.call_and_validate(app=openapi_app,
                           headers={"Authorization": SIMULATOR_AUTH})


def test_the_served_document_is_the_committed_file(api):
    res = api.get("/openapi.json", auth=None)
    assert res.status_int == 200
    assert res.content_type == "application/json"
    assert res.json == json.loads(simapi.OPENAPI.read_text())


def test_the_document_names_every_route_of_the_api(api):
    documented = set(json.loads(simapi.OPENAPI.read_text())["paths"])
    routes = {route.rule.removeprefix("/api").replace("<username:path>",
                                                      "{username}")
              for route in api.app.app.bottle.routes
              if route.rule.startswith("/api/")}
    assert routes == documented
