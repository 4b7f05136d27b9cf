"""PVE worker tasks: UPIDs, background execution, status and logs.

Each API call that PVE runs as a worker (create, start, snapshot, ...) becomes a
task here: it gets a UPID in PVE's format, runs on a thread pool so the server
keeps answering, appends to its own log file and ends `stopped` with exitstatus
`OK` or the error message. Finished tasks survive a restart of the server; tasks
that were running when the server died are marked failed on the next start.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path


class TaskFailed(Exception):
    """Raised inside a worker to end it with a clean PVE-style error line."""


@dataclass
class Task:
    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str
    status: str = "running"
    exitstatus: str | None = None
    endtime: int | None = None

    def as_status(self) -> dict[str, object]:
        data: dict[str, object] = {k: v for k, v in asdict(self).items() if v is not None}
        data.pop("endtime", None)
        return data

    def as_list_entry(self) -> dict[str, object]:
        data: dict[str, object] = {
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.type, "id": self.id, "user": self.user,
        }
        if self.status == "stopped":
            data["status"] = self.exitstatus
            data["endtime"] = self.endtime
        return data


def make_upid(node: str, pid: int, pstart: int, starttime: int, kind: str, ident: str,
              user: str) -> str:
    """UPID:$node:$pid:$pstart:$starttime:$type:$id:$user: - hex fields as PVE writes them."""
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{ident}:{user}:"


def parse_upid(upid: str) -> dict[str, str]:
    parts = upid.split(":")
    if len(parts) != 9 or parts[0] != "UPID" or parts[8] != "":
        raise ValueError(f"unable to parse worker upid '{upid}'")
    return {"node": parts[1], "pid": parts[2], "type": parts[5], "id": parts[6], "user": parts[7]}


class TaskLog:
    """The log a worker writes; PVE shows it through .../tasks/{upid}/log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock, self.path.open("a") as fh:
            for part in str(line).splitlines() or [""]:
                fh.write(part + "\n")


Worker = Callable[[TaskLog], None]


class TaskManager:
    def __init__(self, state_dir: Path, max_workers: int = 16) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="pve-task")
        self._pids = itertools.count(os.getpid() * 16 % 0x3FFFFF)
        self._boot = int(time.monotonic() * 100)
        self._load()

    # Persistence ---------------------------------------------------------------
    def _index(self) -> Path:
        return self.dir / "index.json"

    def _load(self) -> None:
        if not self._index().exists():
            return
        for entry in json.loads(self._index().read_text()):
            task = Task(**entry)
            if task.status == "running":
                # The server died under it, like a node crash under a PVE worker.
                task.status, task.exitstatus = "stopped", "unexpected status"
                task.endtime = int(time.time())
                TaskLog(self.log_path(task.upid)).write("TASK ERROR: unexpected status")
            self._tasks[task.upid] = task
        self._save()

    def _save(self) -> None:
        entries = [asdict(t) for t in list(self._tasks.values())[-2000:]]
        tmp = self._index().with_suffix(".tmp")
        tmp.write_text(json.dumps(entries))
        os.replace(tmp, self._index())

    def log_path(self, upid: str) -> Path:
        return self.dir / (upid.replace(":", "_").replace("!", "_").replace("@", "_") + ".log")

    # API -----------------------------------------------------------------------
    def start(self, node: str, kind: str, ident: str, user: str, worker: Worker,
              on_end: Callable[[Task], None] | None = None) -> str:
        now = int(time.time())
        with self._lock:
            task = Task(upid="", node=node, pid=next(self._pids), pstart=self._boot + now % 100000,
                        starttime=now, type=kind, id=ident, user=user)
            task.upid = make_upid(node, task.pid, task.pstart, now, kind, ident, user)
            self._tasks[task.upid] = task
            self._save()
        self._pool.submit(self._run, task, worker, on_end)
        return task.upid

    def _run(self, task: Task, worker: Worker, on_end: Callable[[Task], None] | None) -> None:
        log = TaskLog(self.log_path(task.upid))
        try:
            worker(log)
            exitstatus = "OK"
        except TaskFailed as exc:
            exitstatus = str(exc).strip().splitlines()[0] if str(exc).strip() else "failed"
            log.write(f"TASK ERROR: {str(exc).strip()}")
        except Exception as exc:  # noqa: BLE001 - a worker's failure is the task's result
            exitstatus = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            log.write(f"TASK ERROR: {str(exc).strip() or repr(exc)}")
            (self.dir / "worker-errors.log").open("a").write(traceback.format_exc())
        else:
            log.write("TASK OK")
        with self._lock:
            task.status, task.exitstatus, task.endtime = "stopped", exitstatus, int(time.time())
            self._save()
        if on_end:
            on_end(task)

    def get(self, upid: str) -> Task | None:
        with self._lock:
            return self._tasks.get(upid)

    def list(self, node: str) -> list[Task]:
        with self._lock:
            return [t for t in self._tasks.values() if t.node == node]

    def running_for(self, ident: str) -> list[Task]:
        with self._lock:
            return [t for t in self._tasks.values() if t.id == ident and t.status == "running"]

    def log_lines(self, upid: str) -> list[str]:
        path = self.log_path(upid)
        return path.read_text().splitlines() if path.exists() else []

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
