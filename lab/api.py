"""The PVE REST API (`/api2/json`) on Flask, answering in PVE's formats.

Every request is matched against the official schema (unknown path: 501),
authenticated (ticket cookie + CSRF token, or API token), validated against the
schema's parameters (400 with per-parameter `errors`), checked against the
schema's permissions (403 "Permission check failed (...)"), then handed to the
cluster. Errors carry their message in the HTTP reason phrase, as PVE's do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, request

from lab.auth import AccessControl, AuthError, Principal, requires_auth
from lab.cluster import ApiError, Cluster
from lab.config import NODES, PVE_VERSION, STORAGE
from lab.schema import ApiSchema, ParameterError, Route

Handler = Callable[["Call"], object]
HANDLERS: dict[tuple[str, str], Handler] = {}


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[(template, method)] = func
        return func
    return register


@dataclass
class Call:
    cluster: Cluster
    auth: AccessControl
    principal: Principal | None
    params: dict[str, object]

    @property
    def node(self) -> str:
        node = str(self.params["node"])
        self.cluster.check_node(node)
        return node

    @property
    def vmid(self) -> int:
        return int(self.params["vmid"])  # type: ignore[arg-type]

    @property
    def who(self) -> Principal:
        """The authenticated caller; every route but the login form has one."""
        if self.principal is None:
            raise AuthError(401, "No ticket")
        return self.principal

    @property
    def user(self) -> str:
        return self.who.tokenid or self.who.userid

    def can(self, path: str, privs: list[str]) -> bool:
        return self.principal is not None and self.auth.has_privs(self.principal, path, privs)


def pve_response(status: int, message: str, data: object = None,
                 errors: dict[str, str] | None = None) -> Response:
    """PVE puts the message in the reason phrase; the body keeps data and errors."""
    reason = " ".join(message.split())[:300].encode("latin-1", "replace").decode("latin-1")
    body: dict[str, object] = {"data": data}
    if errors:
        body["errors"] = errors
    if status >= 400:
        body["message"] = message.rstrip("\n") + "\n"
    return Response(json.dumps(body), status=f"{status} {reason}", mimetype="application/json")


def _request_params() -> dict[str, str | list[str]]:
    source = request.args if request.method in ("GET", "DELETE") else request.form
    params: dict[str, str | list[str]] = {}
    if request.method in ("POST", "PUT") and request.is_json:
        body = request.get_json(silent=True) or {}
        return {k: v if isinstance(v, list) else str(v) for k, v in body.items()}
    for key in source:
        values = source.getlist(key)
        params[key] = values if len(values) > 1 else values[0]
    return params


def create_app(schema: ApiSchema, auth: AccessControl, cluster: Cluster) -> Flask:
    app = Flask("pvelab")

    @app.route("/api2/json", defaults={"path": ""}, methods=["GET", "POST", "PUT", "DELETE"])
    @app.route("/api2/json/<path:path>", methods=["GET", "POST", "PUT", "DELETE"])
    def dispatch(path: str) -> Response:
        full = "/" + path.rstrip("/") if path else "/"
        matched = schema.match(request.method, full)
        if matched is None:
            return pve_response(501, f"Method '{request.method} {full}' not implemented")
        handler = HANDLERS.get((matched.template, matched.method))
        if handler is None:
            return pve_response(501, f"Method '{request.method} {full}' not implemented "
                                     "by the PVE lab")
        try:
            return pve_response(200, "OK", _handle(matched, handler, auth, cluster, schema))
        except AuthError as exc:
            return pve_response(exc.status, exc.message)
        except ParameterError as exc:
            return pve_response(400, "Parameter verification failed.", errors=exc.errors)
        except ApiError as exc:
            return pve_response(exc.status, exc.message, errors=exc.errors)

    return app


def _handle(matched: Route, handler: Handler, auth: AccessControl, cluster: Cluster,
            schema: ApiSchema) -> object:
    permissions = matched.info.get("permissions") or {}
    principal = None
    rel_uri = request.path.removeprefix("/api2/json")
    if requires_auth(request.method, matched.template):
        principal = auth.authenticate(request.method, request.headers, request.cookies)
        auth.check_token_allowed(principal, rel_uri, matched.info.get("allowtoken"))
    raw = _request_params()
    params = schema.validate(matched, {**raw, **matched.path_params})
    if principal is not None:
        auth.check(principal, permissions, params)
    fault = cluster.faults.take_api_error(request.method, rel_uri)
    if fault:
        raise ApiError(fault.status, fault.message)
    return handler(Call(cluster, auth, principal, params))


# -- access --------------------------------------------------------------------
@route("GET", "/access/ticket")
def _ticket_form(call: Call) -> object:
    return None


@route("POST", "/access/ticket")
def _login(call: Call) -> object:
    return call.auth.login(str(call.params["username"]), str(call.params["password"]),
                           str(call.params["realm"]) if call.params.get("realm") else None)


@route("GET", "/version")
def _version(call: Call) -> object:
    return dict(PVE_VERSION)


# -- nodes and cluster -----------------------------------------------------------
@route("GET", "/nodes")
def _nodes(call: Call) -> object:
    return [dict(call.cluster.node_entry(n), id=f"node/{n}", type="node", ssl_fingerprint="")
            for n in NODES]


@route("GET", "/nodes/{node}/status")
def _node_status(call: Call) -> object:
    return call.cluster.node_status(call.node)


@route("GET", "/nodes/{node}/network")
def _network(call: Call) -> object:
    return call.cluster.network(call.node, call.params.get("type"))  # type: ignore[arg-type]


@route("GET", "/nodes/{node}/storage")
def _storage(call: Call) -> object:
    node = call.node
    wanted = call.params.get("storage")
    content = call.params.get("content")
    entry = call.cluster.storage_status()
    if wanted not in (None, STORAGE) or (content and content not in str(entry["content"])):
        return []
    if not call.can(f"/storage/{STORAGE}", ["Datastore.Audit"]) and not call.can(
            f"/storage/{STORAGE}", ["Datastore.AllocateSpace"]):
        return []
    return [dict(entry, node=node)]


@route("GET", "/nodes/{node}/storage/{storage}/content")
def _storage_content(call: Call) -> object:
    vmid = call.params.get("vmid")
    items = call.cluster.storage_content(call.node, str(call.params["storage"]),
                                         call.params.get("content"),  # type: ignore[arg-type]
                                         int(vmid) if vmid is not None else None)  # type: ignore[arg-type]
    return [i for i in items if "vmid" not in i or call.can(f"/vms/{i['vmid']}", ["VM.Audit"])]


@route("GET", "/cluster/resources")
def _resources(call: Call) -> object:
    kind = call.params.get("type")
    items = call.cluster.resources(kind)  # type: ignore[arg-type]
    return [i for i in items if i.get("type") != "lxc" or call.can(f"/vms/{i['vmid']}", ["VM.Audit"])]


@route("GET", "/cluster/nextid")
def _nextid(call: Call) -> object:
    wanted = call.params.get("vmid")
    return call.cluster.nextid(int(wanted) if wanted is not None else None)  # type: ignore[arg-type]


@route("GET", "/nodes/{node}/tasks")
def _tasks(call: Call) -> object:
    limit = int(call.params.get("limit", 50))  # type: ignore[arg-type]
    tasks = [t.as_list_entry() for t in reversed(call.cluster.tasks.list(call.node))]
    vmid = call.params.get("vmid")
    if vmid is not None:
        tasks = [t for t in tasks if t["id"] == str(vmid)]
    return tasks[:limit]


def _task(call: Call):
    upid = str(call.params["upid"])
    task = call.cluster.tasks.get(upid)
    if task is None or task.node != call.node:
        raise ApiError(500, f"no such task '{upid}'")
    own = task.user in (call.who.userid, call.who.tokenid)
    if not own and not call.can(f"/nodes/{task.node}", ["Sys.Audit"]):
        raise AuthError(403, f"Permission check failed (/nodes/{task.node}, Sys.Audit)")
    return task


@route("GET", "/nodes/{node}/tasks/{upid}/status")
def _task_status(call: Call) -> object:
    return _task(call).as_status()


@route("GET", "/nodes/{node}/tasks/{upid}/log")
def _task_log(call: Call) -> object:
    task = _task(call)
    lines = call.cluster.tasks.log_lines(task.upid)
    start = int(call.params.get("start", 0))  # type: ignore[arg-type]
    limit = int(call.params.get("limit", 50))  # type: ignore[arg-type]
    return [{"n": n + 1, "t": line} for n, line in enumerate(lines)][start:start + limit]


# -- containers ----------------------------------------------------------------
@route("GET", "/nodes/{node}/lxc")
def _lxc_list(call: Call) -> object:
    return [ct for ct in call.cluster.list_cts(call.node)
            if call.can(f"/vms/{ct['vmid']}", ["VM.Audit"])]


@route("POST", "/nodes/{node}/lxc")
def _lxc_create(call: Call) -> object:
    storage = str(call.params.get("storage") or STORAGE)
    rootfs = str(call.params.get("rootfs") or "")
    if ":" in rootfs.split(",", 1)[0]:
        storage = rootfs.split(",", 1)[0].split(":", 1)[0]
    call.auth.require(call.who, f"/vms/{call.vmid}", ["VM.Allocate"])
    call.auth.require(call.who, f"/storage/{storage}", ["Datastore.AllocateSpace"])
    if not call.params.get("unprivileged"):
        call.auth.require(call.who, "/", ["Sys.Modify"])
    return call.cluster.create(call.node, call.params, call.user)


@route("GET", "/nodes/{node}/lxc/{vmid}")
def _lxc_index(call: Call) -> object:
    call.cluster.load(call.node, call.vmid)
    return [{"subdir": s} for s in ("config", "status", "snapshot", "pending", "resize")]


@route("DELETE", "/nodes/{node}/lxc/{vmid}")
def _lxc_destroy(call: Call) -> object:
    return call.cluster.destroy(call.node, call.vmid, call.user, bool(call.params.get("force")))


@route("GET", "/nodes/{node}/lxc/{vmid}/config")
def _lxc_config(call: Call) -> object:
    snapshot = call.params.get("snapshot")
    return call.cluster.get_config(call.node, call.vmid, bool(call.params.get("current")),
                                   str(snapshot) if snapshot else None)


@route("PUT", "/nodes/{node}/lxc/{vmid}/config")
def _lxc_update(call: Call) -> object:
    call.cluster.update_config(call.node, call.vmid, call.params)
    return None


@route("GET", "/nodes/{node}/lxc/{vmid}/pending")
def _lxc_pending(call: Call) -> object:
    return call.cluster.get_pending(call.node, call.vmid)


@route("PUT", "/nodes/{node}/lxc/{vmid}/resize")
def _lxc_resize(call: Call) -> object:
    return call.cluster.resize(call.node, call.vmid, str(call.params["disk"]),
                               str(call.params["size"]), call.user)


@route("GET", "/nodes/{node}/lxc/{vmid}/status")
def _lxc_status_index(call: Call) -> object:
    call.cluster.load(call.node, call.vmid)
    return [{"subdir": s} for s in ("current", "start", "stop", "shutdown", "reboot")]


@route("GET", "/nodes/{node}/lxc/{vmid}/status/current")
def _lxc_status(call: Call) -> object:
    return call.cluster.status(call.node, call.vmid)


@route("POST", "/nodes/{node}/lxc/{vmid}/status/start")
def _lxc_start(call: Call) -> object:
    return call.cluster.start(call.node, call.vmid, call.user)


@route("POST", "/nodes/{node}/lxc/{vmid}/status/stop")
def _lxc_stop(call: Call) -> object:
    return call.cluster.stop(call.node, call.vmid, call.user)


@route("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown")
def _lxc_shutdown(call: Call) -> object:
    timeout = int(call.params.get("timeout", 60))  # type: ignore[arg-type]
    return call.cluster.shutdown(call.node, call.vmid, call.user, timeout,
                                 bool(call.params.get("forceStop")))


@route("POST", "/nodes/{node}/lxc/{vmid}/status/reboot")
def _lxc_reboot(call: Call) -> object:
    timeout = int(call.params.get("timeout", 60))  # type: ignore[arg-type]
    return call.cluster.reboot(call.node, call.vmid, call.user, timeout)


@route("GET", "/nodes/{node}/lxc/{vmid}/snapshot")
def _snap_list(call: Call) -> object:
    return call.cluster.list_snapshots(call.node, call.vmid)


@route("POST", "/nodes/{node}/lxc/{vmid}/snapshot")
def _snap_create(call: Call) -> object:
    description = call.params.get("description")
    return call.cluster.snapshot(call.node, call.vmid, str(call.params["snapname"]),
                                 str(description) if description else None, call.user)


@route("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}")
def _snap_index(call: Call) -> object:
    snapname = str(call.params["snapname"])
    names = [s["name"] for s in call.cluster.list_snapshots(call.node, call.vmid)]
    if snapname not in names or snapname == "current":
        raise ApiError(500, f"snapshot '{snapname}' does not exist")
    return [{"cmd": "rollback"}, {"cmd": "config"}]


@route("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}")
def _snap_delete(call: Call) -> object:
    return call.cluster.delete_snapshot(call.node, call.vmid, str(call.params["snapname"]),
                                        call.user)


@route("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback")
def _snap_rollback(call: Call) -> object:
    return call.cluster.rollback(call.node, call.vmid, str(call.params["snapname"]),
                                 bool(call.params.get("start")), call.user)
