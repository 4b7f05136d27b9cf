"""library/pve_lxc_snapshot against the lab, through the real `ansible` CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import labtools
import pytest
from proxmoxer import ProxmoxAPI

from lab.admin import AdminClient

MODULE = "pve_lxc_snapshot"
NODE = "pve1"
OUR_IDS = range(175, 190)  # this file's VMIDs (and last octets of the CTs' addresses)


@pytest.fixture
def ct(pve: ProxmoxAPI, creds: dict) -> Iterator[int]:
    """A fresh, stopped CT per test: creating one takes well under a second in the lab, and
    tests that share no snapshots cannot leak state into each other."""
    alloc = labtools.Allocator(pve, ids=OUR_IDS)
    vmid = alloc.take(NODE)
    try:
        labtools.create_ct(pve, creds, vmid, node=NODE)
        yield vmid
    finally:
        alloc.cleanup()


def args(creds: dict, vmid: int, **extra: object) -> dict[str, object]:
    return {**labtools.pve_auth_args(creds), "node": NODE, "vmid": vmid, **extra}


def api_snapshots(pve: ProxmoxAPI, vmid: int) -> list[str]:
    return [s["name"] for s in pve.nodes(NODE).lxc(vmid).snapshot.get() if s["name"] != "current"]


def task_count(pve: ProxmoxAPI, vmid: int) -> int:
    """Every write to a CT's snapshots is a task: no new task means nothing was written."""
    return len(pve.nodes(NODE).tasks.get(vmid=vmid, limit=1000))


def snapshot(pve: ProxmoxAPI, vmid: int, name: str, **extra: object) -> int:
    """Takes a snapshot straight through the API; returns its snaptime."""
    labtools.task_ok(pve, NODE, pve.nodes(NODE).lxc(vmid).snapshot.post(snapname=name, **extra))
    return next(s["snaptime"] for s in pve.nodes(NODE).lxc(vmid).snapshot.get() if s["name"] == name)


def status(pve: ProxmoxAPI, vmid: int) -> str:
    return pve.nodes(NODE).lxc(vmid).status.current.get()["status"]


def start(pve: ProxmoxAPI, vmid: int) -> None:
    labtools.task_ok(pve, NODE, pve.nodes(NODE).lxc(vmid).status.start.post())


def after_second(snaptime: int) -> None:
    """Returns once the clock is past `snaptime`'s second, so that the next snapshot's snaptime
    (1 s resolution, same clock: the lab runs here) is strictly greater. An ordering guarantee,
    not a timing assertion."""
    while int(time.time()) <= snaptime:
        time.sleep(0.05)


# -- refused before the API is contacted ------------------------------------------------
# The API address points at a closed port with retries off: had the module tried to connect,
# the failure would be a connection error instead of the validation message.
UNREACHABLE = {"api_host": "127.0.0.1", "api_port": 9, "api_token_id": "root@pam!lab",
               "api_token_secret": "never-sent", "api_retries": 0, "validate_certs": False}


@pytest.mark.parametrize(("extra", "expected"), [
    ({"snapname": "a"}, "Invalid snapname 'a' for CT '175': PVE wants a letter, then 1 to 39 "
                        "letters, digits, '-' or '_'; got 1 character"),
    ({"snapname": "9lives"}, "Invalid snapname '9lives' for CT '175': PVE wants a letter, then "
                             "1 to 39 letters, digits, '-' or '_'; got '9' first"),
    ({"snapname": "x" * 41}, "; got 41 characters"),
    ({"snapname": "pre release.1"}, "; got ' ', '.'"),
    ({"snapname": "current"}, "Invalid snapname 'current' for CT '175': 'current' is reserved by PVE"),
    ({"snapname": "pre-1", "retention": {"prefix": "pre-", "keep": -1}},
     "retention.keep must be 0 or more, got -1"),
    ({"snapname": "pre-1", "retention": {"prefix": "pre-", "keep": 0}},
     "the new snapshot would be removed at once"),
    ({"state": "absent", "snapname": "pre-1", "retention": {"prefix": "pre-", "keep": 1}},
     "retention is only supported with state=present"),
], ids=["too-short", "digit-first", "too-long", "bad-characters", "reserved", "negative-keep",
        "keep-0-own-prefix", "retention-with-absent"])
def test_invalid_parameters_are_refused_before_any_api_call(extra, expected):
    result = labtools.run_module(MODULE, {**UNREACHABLE, "node": NODE, "vmid": 175, **extra})
    assert result.get("failed"), result
    assert expected in result["msg"]
    assert "connect" not in result["msg"]


# -- present ----------------------------------------------------------------------------
def test_create_then_second_run_is_a_no_op(pve, creds, ct):
    first = labtools.run_module(MODULE, args(creds, ct, snapname="pre-1",
                                             description="before release 1"), diff=True)
    assert first["changed"] is True, first
    assert first["created"] == ["pre-1"]
    assert first["deleted"] == []
    [snap] = first["snapshots"]
    assert snap["name"] == "pre-1"
    assert snap["description"] == "before release 1"
    assert isinstance(snap["snaptime"], int)
    assert snap["parent"] is None
    assert first["current_parent"] == "pre-1"
    assert first["diff"]["before"]["snapshots"] == []
    assert first["diff"]["after"]["snapshots"] == ["pre-1"]
    assert api_snapshots(pve, ct) == ["pre-1"]

    tasks = task_count(pve, ct)
    second = labtools.run_module(MODULE, args(creds, ct, snapname="pre-1",
                                              description="before release 1"), diff=True)
    assert second["changed"] is False, second
    assert second["created"] == []
    assert second["snapshots"] == first["snapshots"]
    assert second["diff"]["before"] == second["diff"]["after"]
    assert task_count(pve, ct) == tasks
    assert creds["token_secret"] not in json.dumps(first) + json.dumps(second)


def test_check_mode_predicts_and_writes_nothing(pve, creds, ct):
    snapshot(pve, ct, "base")
    tasks = task_count(pve, ct)

    create = labtools.run_module(MODULE, args(creds, ct, snapname="next"), check=True, diff=True)
    assert create["changed"] is True, create
    assert create["created"] == ["next"]
    assert [s["name"] for s in create["snapshots"]] == ["base", "next"]
    assert create["diff"]["after"]["snapshots"] == ["base", "next"]

    remove = labtools.run_module(MODULE, args(creds, ct, state="absent", snapname="base"),
                                 check=True)
    assert remove["changed"] is True, remove
    assert remove["deleted"] == ["base"]
    assert remove["snapshots"] == []

    rollback = labtools.run_module(MODULE, args(creds, ct, state="rollback", snapname="base"),
                                   check=True)
    assert rollback["changed"] is True, rollback
    assert rollback["rolled_back"] is True
    assert rollback["started"] is False  # it was stopped, so it would stay stopped

    assert task_count(pve, ct) == tasks
    assert api_snapshots(pve, ct) == ["base"]


# -- rollback -----------------------------------------------------------------------------
def test_rollback_restores_files_and_restarts_a_running_ct(pve, creds, ct):
    ip = f"10.92.3.{ct}"
    start(pve, ct)
    labtools.wait_ssh(creds, ip)
    assert labtools.ssh(creds, ip, "echo before > /root/marker && sync").returncode == 0
    created = labtools.run_module(MODULE, args(creds, ct, snapname="good"))
    assert created["changed"] is True, created
    assert labtools.ssh(creds, ip, "echo after > /root/marker && sync").returncode == 0

    result = labtools.run_module(MODULE, args(creds, ct, state="rollback", snapname="good"),
                                 diff=True)
    assert result["changed"] is True, result
    assert result["rolled_back"] is True
    assert result["was_running"] is True
    assert result["started"] is True
    assert result["diff"]["after"]["rolled_back_to"] == "good"
    assert status(pve, ct) == "running"
    labtools.wait_ssh(creds, ip)
    assert labtools.ssh(creds, ip, "cat /root/marker").stdout.strip() == "before"


def test_rollback_leaves_a_stopped_ct_stopped_unless_asked_to_start(pve, creds, ct):
    snapshot(pve, ct, "base")
    stays = labtools.run_module(MODULE, args(creds, ct, state="rollback", snapname="base"))
    assert stays["changed"] is True, stays
    assert (stays["was_running"], stays["started"]) == (False, False)
    assert status(pve, ct) == "stopped"

    started = labtools.run_module(MODULE, args(creds, ct, state="rollback", snapname="base",
                                               start=True))
    assert (started["was_running"], started["started"]) == (False, True), started
    assert status(pve, ct) == "running"


def test_rollback_to_a_missing_snapshot_fails_clearly(pve, creds, ct):
    snapshot(pve, ct, "exists")
    tasks = task_count(pve, ct)
    result = labtools.run_module(MODULE, args(creds, ct, state="rollback", snapname="ghost"))
    assert result.get("failed"), result
    assert result["msg"] == (f"Failed to roll back CT '{ct}' on node '{NODE}' to snapshot 'ghost': "
                             "the snapshot does not exist (snapshots: exists)")
    assert result["rolled_back"] is False
    assert task_count(pve, ct) == tasks


# -- absent ---------------------------------------------------------------------------------
def test_absent_removes_and_is_idempotent(pve, creds, ct):
    snapshot(pve, ct, "old")
    snapshot(pve, ct, "other")
    first = labtools.run_module(MODULE, args(creds, ct, state="absent", snapname="old"), diff=True)
    assert first["changed"] is True, first
    assert first["deleted"] == ["old"]
    assert first["diff"]["before"]["snapshots"] == ["old", "other"]
    assert first["diff"]["after"]["snapshots"] == ["other"]
    assert api_snapshots(pve, ct) == ["other"]
    # PVE re-parents the children of a removed snapshot.
    assert first["snapshots"] == [{"name": "other", "description": "", "parent": None,
                                   "snaptime": first["snapshots"][0]["snaptime"]}]

    second = labtools.run_module(MODULE, args(creds, ct, state="absent", snapname="old"))
    assert second["changed"] is False, second
    assert second["deleted"] == []
    assert api_snapshots(pve, ct) == ["other"]


# -- retention ------------------------------------------------------------------------------
def test_retention_keeps_the_newest_with_the_prefix_and_nothing_else(pve, creds, ct):
    # Names deliberately out of alphabetical order, and a branch: after the rollback, rel-b
    # sits higher in the snapshot tree than rel-a and rel-d but is newer by snaptime.
    snapshot(pve, ct, "rel-c")
    snapshot(pve, ct, "nightly-1")
    snapshot(pve, ct, "rel-a")
    snapshot(pve, ct, "rel-d")
    last = snapshot(pve, ct, "release-x")  # starts with "rel", not with "rel-"
    labtools.task_ok(pve, NODE, pve.nodes(NODE).lxc(ct).snapshot("nightly-1").rollback.post())
    after_second(last)
    snapshot(pve, ct, "rel-b")
    before = api_snapshots(pve, ct)
    tasks = task_count(pve, ct)
    retention = {"prefix": "rel-", "keep": 2}

    predicted = labtools.run_module(MODULE, args(creds, ct, snapname="rel-e", retention=retention),
                                    check=True, diff=True)
    assert predicted["changed"] is True, predicted
    assert predicted["created"] == ["rel-e"]
    assert predicted["deleted"] == ["rel-c", "rel-a", "rel-d"]
    assert task_count(pve, ct) == tasks
    assert api_snapshots(pve, ct) == before

    applied = labtools.run_module(MODULE, args(creds, ct, snapname="rel-e", retention=retention),
                                  diff=True)
    assert applied["changed"] is True, applied
    assert applied["created"] == ["rel-e"]
    assert applied["deleted"] == predicted["deleted"]
    assert sorted(api_snapshots(pve, ct)) == ["nightly-1", "rel-b", "rel-e", "release-x"]
    assert [s["name"] for s in applied["snapshots"]] == [s["name"] for s in predicted["snapshots"]]
    assert applied["diff"]["after"] == predicted["diff"]["after"]

    # Retention on its own (no snapname): keep only the newest.
    pruned = labtools.run_module(MODULE, args(creds, ct, retention={"prefix": "rel-", "keep": 1}))
    assert pruned["changed"] is True, pruned
    assert (pruned["created"], pruned["deleted"]) == ([], ["rel-b"])
    assert sorted(api_snapshots(pve, ct)) == ["nightly-1", "rel-e", "release-x"]

    again = labtools.run_module(MODULE, args(creds, ct, retention={"prefix": "rel-", "keep": 1}))
    assert again["changed"] is False, again
    assert again["deleted"] == []


# -- failures and reading -------------------------------------------------------------------
def test_a_locked_ct_is_reported_naming_ct_and_snapshot(pve, creds, ct, admin: AdminClient):
    # PVE refuses writes to a locked CT (a backup, say); the client retries, then gives up.
    # The fault only matches this CT's path, but another session's fixture may clear all
    # faults before our request: the snapshot then exists, and the run is repeated.
    for _attempt in range(5):
        admin.set_faults(api_error={"status": 500, "message": "CT is locked (backup)", "count": 5,
                                    "method": "POST", "path": f"^/nodes/{NODE}/lxc/{ct}/snapshot$"})
        result = labtools.run_module(MODULE, args(creds, ct, snapname="blocked", api_retries=1))
        if "blocked" not in api_snapshots(pve, ct):
            break
        labtools.task_ok(pve, NODE, pve.nodes(NODE).lxc(ct).snapshot("blocked").delete())
    else:
        pytest.fail("the injected API fault was cleared by other sessions five times in a row")
    assert result.get("failed"), result
    assert result["msg"].startswith(f"Failed to create snapshot 'blocked' of CT '{ct}' on node "
                                    f"'{NODE}': ")
    assert "CT is locked (backup)" in result["msg"]


def snapshot_task_statuses(pve: ProxmoxAPI, vmid: int) -> list[str]:
    """Exit statuses of the CT's finished snapshot tasks, newest first."""
    return [t["status"] for t in pve.nodes(NODE).tasks.get(vmid=vmid, limit=1000)
            if t["type"] == "vzsnapshot" and "status" in t]


def test_failed_task_is_reported_with_its_log(pve, creds, ct, admin: AdminClient):
    # `fail_tasks` is lab-wide: a task of another session sharing the lab may take the fault
    # (or that session's fixture clear it) before our task starts. The task list tells which
    # happened: only when our own task ended OK is the run repeated; a task of ours that failed
    # while the module reported success is a bug and fails below.
    for _attempt in range(5):
        admin.set_faults(fail_tasks=1, fail_message="lab fault injection: snapshot storage full",
                         vmid=ct)
        result = labtools.run_module(MODULE, args(creds, ct, snapname="doomed"))
        if snapshot_task_statuses(pve, ct)[0] != "OK":
            break
        labtools.task_ok(pve, NODE, pve.nodes(NODE).lxc(ct).snapshot("doomed").delete())
    else:
        pytest.fail("the injected task failure was taken by other sessions five times in a row")
    assert result.get("failed"), result
    msg = result["msg"]
    assert msg.startswith(f"Failed to create snapshot 'doomed' of CT '{ct}' on node '{NODE}': ")
    assert "task log:" in msg
    assert "TASK ERROR: lab fault injection: snapshot storage full" in msg
    assert result["created"] == []
    assert api_snapshots(pve, ct) == []
    assert "lock" not in pve.nodes(NODE).lxc(ct).config.get()
    assert creds["token_secret"] not in json.dumps(result)

    retried = labtools.run_module(MODULE, args(creds, ct, snapname="doomed"))
    assert retried["changed"] is True, retried
    assert api_snapshots(pve, ct) == ["doomed"]


def test_list_reads_with_an_auditor_token_which_cannot_write(pve, creds, ct):
    snapshot(pve, ct, "first", description="the first one")
    snapshot(pve, ct, "second")
    auditor = {**args(creds, ct), **labtools.pve_auth_args(creds, "auditor@pve!ro")}

    listed = labtools.run_module(MODULE, {**auditor, "state": "list"})
    assert listed["changed"] is False, listed
    assert [set(s) for s in listed["snapshots"]] == [{"name", "description", "snaptime", "parent"}] * 2
    first, second = listed["snapshots"]
    assert (first["name"], first["description"], first["parent"]) == ("first", "the first one", None)
    assert (second["name"], second["description"], second["parent"]) == ("second", "", "first")
    assert first["snaptime"] <= second["snaptime"]
    assert listed["current_parent"] == "second"
    assert listed["created"] == listed["deleted"] == []

    tasks = task_count(pve, ct)
    denied = labtools.run_module(MODULE, {**auditor, "snapname": "third"})
    assert denied.get("failed"), denied
    assert denied["msg"].startswith(f"Failed to create snapshot 'third' of CT '{ct}' on node '{NODE}': ")
    assert "403" in denied["msg"]
    assert "VM.Snapshot" in denied["msg"]
    assert task_count(pve, ct) == tasks
    assert api_snapshots(pve, ct) == ["first", "second"]
    secret = creds["tokens"]["auditor@pve!ro"]
    assert secret not in json.dumps(listed) + json.dumps(denied)
