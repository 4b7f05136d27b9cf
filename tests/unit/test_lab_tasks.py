"""Worker tasks: UPIDs in PVE's format, status, logs, failures, restarts."""

from __future__ import annotations

import re
import threading
import time

import pytest

from lab.faults import Faults
from lab.tasks import TaskFailed, TaskManager, make_upid, parse_upid


def wait(manager: TaskManager, upid: str) -> None:
    deadline = time.monotonic() + 5
    while manager.get(upid).status == "running":
        assert time.monotonic() < deadline, "task did not finish"
        time.sleep(0.01)


def test_upid_format_matches_pve():
    upid = make_upid("pve1", 0x1A2B, 0x3C4D, 0x65000000, "vzcreate", "100", "root@pam!lab")
    assert upid == "UPID:pve1:00001A2B:00003C4D:65000000:vzcreate:100:root@pam!lab:"
    assert parse_upid(upid)["type"] == "vzcreate"
    with pytest.raises(ValueError, match="unable to parse worker upid"):
        parse_upid("UPID:broken")


def test_task_runs_in_background_and_ends_ok(tmp_path):
    manager = TaskManager(tmp_path)
    gate = threading.Event()
    upid = manager.start("pve1", "vzstart", "100", "root@pam", lambda log: (
        log.write("starting"), gate.wait(5)))
    assert re.fullmatch(r"UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzstart:100:root@pam:", upid)
    assert manager.get(upid).status == "running"
    gate.set()
    wait(manager, upid)
    task = manager.get(upid)
    assert (task.status, task.exitstatus) == ("stopped", "OK")
    assert manager.log_lines(upid) == ["starting", "TASK OK"]


def test_failed_task_carries_the_error(tmp_path):
    manager = TaskManager(tmp_path)

    def worker(log):
        log.write("doing it")
        raise TaskFailed("bridge 'vmbr9' does not exist")

    upid = manager.start("pve1", "vzstart", "100", "root@pam", worker)
    wait(manager, upid)
    assert manager.get(upid).exitstatus == "bridge 'vmbr9' does not exist"
    assert manager.log_lines(upid)[-1] == "TASK ERROR: bridge 'vmbr9' does not exist"


def test_finished_tasks_survive_and_running_ones_end_failed_on_restart(tmp_path):
    manager = TaskManager(tmp_path)
    done = manager.start("pve1", "vzstop", "101", "root@pam", lambda log: None)
    wait(manager, done)
    hang = threading.Event()
    running = manager.start("pve1", "vzstart", "102", "root@pam", lambda log: hang.wait(5))
    restarted = TaskManager(tmp_path)  # the server died with `running` still in flight
    hang.set()
    assert restarted.get(done).exitstatus == "OK"
    assert (restarted.get(running).status, restarted.get(running).exitstatus) == (
        "stopped", "unexpected status")


def test_faults_are_used_up_and_refuse_typos():
    faults = Faults()
    faults.configure({"fail_tasks": 2, "api_error": {"status": 503, "count": 1, "path": "^/version"}})
    assert faults.take_task_failure()
    assert faults.take_task_failure()
    assert faults.take_task_failure() is None
    assert faults.take_api_error("GET", "/nodes") is None
    assert faults.take_api_error("GET", "/version").status == 503
    assert faults.take_api_error("GET", "/version") is None
    with pytest.raises(ValueError, match="fail_taks"):
        faults.configure({"fail_taks": 1})


def test_task_faults_scoped_to_a_vmid_spare_other_containers():
    faults = Faults()
    faults.configure({"fail_tasks": 1, "vmid": 150})
    assert faults.take_task_failure(151) is None
    assert faults.take_task_failure(150)
    assert faults.take_task_failure(150) is None
