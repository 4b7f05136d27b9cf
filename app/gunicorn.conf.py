"""Gunicorn settings for the attendant scheduler.

Run from anywhere with the release's venv:

    <release>/venv/bin/gunicorn --config <release>/src/gunicorn.conf.py --bind 10.92.3.11:8000

Command-line flags override this file; the environment variables below override
its defaults. With PROMETHEUS_MULTIPROC_DIR set (it must be set before gunicorn
starts, and be writable by the service user), every worker writes its metrics
there and /metrics adds them up; the hooks below keep that directory right.
"""

import os
from pathlib import Path

from prometheus_client import multiprocess

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

wsgi_app = "scheduler.wsgi:application"
# Not resolved: started through a `current` symlink, a reload follows the symlink.
chdir = os.path.dirname(os.path.abspath(__file__))
bind = [address.strip() for address in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")]
workers = int(os.environ.get("GUNICORN_WORKERS") or 2 * (os.cpu_count() or 1) + 1)
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT") or 30)
keepalive = 5
proc_name = "attendant-scheduler"
errorlog = "-"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None  # "-" for the journal; nginx logs requests already
# Heartbeat files on tmpfs: a container's disk can stall a worker's heartbeat.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - gunicorn's advice, not a temp file
# Gunicorn 25+ opens a control socket under $XDG_RUNTIME_DIR or ~/.gunicorn by default;
# a service account may have neither and nothing here uses it, so it is opt-in.
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]


def on_starting(server):
    """A new master counts from zero: remove the metric files of the previous run."""
    if not MULTIPROC_DIR:
        return
    directory = Path(MULTIPROC_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """Drop a dead worker's live gauges; its counters stay in the totals."""
    if MULTIPROC_DIR:
        multiprocess.mark_process_dead(worker.pid)
