"""Every route the lab serves exists in the official PVE schema with that method."""

from __future__ import annotations

import re

import pytest

from lab.api import HANDLERS
from lab.schema import ApiSchema


@pytest.fixture(scope="module")
def schema() -> ApiSchema:
    return ApiSchema.load()


def test_every_lab_route_is_in_the_official_schema(schema):
    routes = schema.routes()
    missing = sorted(f"{method} {template}" for template, method in HANDLERS
                     if (template, method) not in routes)
    assert not missing, f"routes the lab serves that PVE does not have: {missing}"


def test_the_routes_the_issue_names_are_served():
    wanted = {
        ("POST", "/access/ticket"), ("GET", "/version"), ("GET", "/nodes"),
        ("GET", "/nodes/{node}/status"), ("GET", "/nodes/{node}/network"),
        ("GET", "/nodes/{node}/storage"), ("GET", "/nodes/{node}/storage/{storage}/content"),
        ("GET", "/cluster/resources"), ("GET", "/cluster/nextid"),
        ("GET", "/nodes/{node}/lxc"), ("POST", "/nodes/{node}/lxc"),
        ("GET", "/nodes/{node}/lxc/{vmid}/config"), ("PUT", "/nodes/{node}/lxc/{vmid}/config"),
        ("GET", "/nodes/{node}/lxc/{vmid}/status/current"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/start"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/stop"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/reboot"),
        ("DELETE", "/nodes/{node}/lxc/{vmid}"),
        ("GET", "/nodes/{node}/lxc/{vmid}/snapshot"), ("POST", "/nodes/{node}/lxc/{vmid}/snapshot"),
        ("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}"),
        ("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback"),
        ("GET", "/nodes/{node}/tasks/{upid}/status"), ("GET", "/nodes/{node}/tasks/{upid}/log"),
    }
    served = {(method, template) for template, method in HANDLERS}
    assert wanted <= served, sorted(wanted - served)


def test_concrete_paths_resolve_to_the_handlers_templates(schema):
    for template, method in HANDLERS:
        concrete = re.sub(r"\{(\w+)\}", lambda m: {"vmid": "100", "node": "pve1"}.get(
            m.group(1), "x"), template)
        route = schema.match(method, concrete)
        assert route is not None
        assert route.template == template
