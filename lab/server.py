"""Runs the lab: the PVE API on https://127.0.0.1:8006 and the admin socket.

The admin interface (fault injection, health) listens on a Unix socket that only
root can open; it is not part of the PVE API and not reachable over the network.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask, Response, jsonify, request

from lab.api import create_app
from lab.auth import AccessControl
from lab.backend import LxcBackend
from lab.cluster import Cluster
from lab.config import API_HOST, API_PORT, LabPaths
from lab.faults import Faults
from lab.schema import ApiSchema
from lab.tasks import TaskManager


def create_admin_app(faults: Faults) -> Flask:
    app = Flask("pvelab-admin")

    @app.get("/health")
    def health() -> Response:
        return jsonify(ok=True, pid=os.getpid())

    @app.get("/faults")
    def show() -> Response:
        return jsonify(faults.show())

    @app.post("/faults")
    def configure() -> Response | tuple[Response, int]:
        try:
            return jsonify(faults.configure(request.get_json(force=True) or {}))
        except (TypeError, ValueError) as exc:
            return jsonify(error=str(exc)), 400

    @app.delete("/faults")
    def clear() -> Response:
        faults.clear()
        return jsonify(faults.show())

    return app


def serve(paths: LabPaths) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("pvelab")
    schema = ApiSchema.load()
    auth = AccessControl(paths.access_state)
    faults = Faults()
    cluster = Cluster(paths, schema, TaskManager(paths.tasks), LxcBackend(paths), faults)
    cluster.recover(log.info)

    # cheroot keeps HTTP/1.1 connections alive (clients poll tasks; a TLS handshake per
    # request would dominate) and passes PVE's reason phrases through unchanged.
    api = wsgi.Server((API_HOST, API_PORT), create_app(schema, auth, cluster), numthreads=16,
                      server_name="pve-api-daemon/3.0")
    api.ssl_adapter = BuiltinSSLAdapter(str(paths.server_cert), str(paths.server_key))
    paths.admin_socket.parent.mkdir(parents=True, exist_ok=True)
    paths.admin_socket.unlink(missing_ok=True)
    admin = wsgi.Server(str(paths.admin_socket), create_admin_app(faults), numthreads=2)
    old_umask = os.umask(0o077)
    try:
        admin.prepare()  # binds the socket: root-only through the umask
    finally:
        os.umask(old_umask)
    threading.Thread(target=admin.serve, name="admin", daemon=True).start()

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        threading.Thread(target=api.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tmp = paths.pidfile.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, paths.pidfile)
    log.info("PVE lab API on https://%s:%d/api2/json (pid %d)", API_HOST, API_PORT, os.getpid())
    try:
        api.safe_start()
    finally:
        admin.stop()
        paths.admin_socket.unlink(missing_ok=True)
        if paths.pidfile.exists() and paths.pidfile.read_text().strip() == str(os.getpid()):
            paths.pidfile.unlink()
