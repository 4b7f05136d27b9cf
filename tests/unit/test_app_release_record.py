"""The controller's release record: what a rollback goes back to, and what it restores."""

from __future__ import annotations

import importlib.util
import json
import stat
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("app_release_record",
                                               REPO / "library" / "app_release_record.py")
record_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record_module)

BACKUP = {"host": "db1", "path": "/var/backups/postgresql/scheduler-pre-0.2.0.dump"}


def fresh() -> dict:
    return {"releases": [], "events": []}


def deploy(record: dict, *versions: str, backups: dict | None = None) -> dict:
    for version in versions:
        record_module.deployed(record, version, (backups or {}).get(version), "", keep=20)
    return record


def test_rollback_goes_to_the_release_below_the_top():
    plan = record_module.plan(deploy(fresh(), "0.1.0", "0.2.0"), None)
    assert (plan["current"], plan["target"]) == ("0.2.0", "0.1.0")
    assert (plan["undone"], plan["restore"]) == (["0.2.0"], None)


def test_a_rerun_of_the_current_release_is_not_a_new_release():
    record = deploy(fresh(), "0.1.0", "0.2.0")
    assert record_module.deployed(record, "0.2.0", None, "", keep=20) is False
    assert record_module.plan(record, None)["target"] == "0.1.0"


def test_undoing_a_release_that_migrated_restores_its_pre_migration_backup():
    record = deploy(fresh(), "0.1.0", "0.2.0", "0.3.0", backups={"0.2.0": BACKUP})
    assert record_module.plan(record, None)["restore"] is None  # 0.3.0 did not migrate
    plan = record_module.plan(record, "0.1.0")
    assert plan["undone"] == ["0.3.0", "0.2.0"]
    assert plan["restore"] == {"release": "0.2.0", **BACKUP}


def test_the_oldest_undone_migration_is_the_backup_restored():
    older = {"host": "db1", "path": "/b/pre-0.2.0"}
    newer = {"host": "db1", "path": "/b/pre-0.3.0"}
    record = deploy(fresh(), "0.1.0", "0.2.0", "0.3.0", backups={"0.2.0": older, "0.3.0": newer})
    assert record_module.plan(record, "0.1.0")["restore"]["path"] == "/b/pre-0.2.0"


@pytest.mark.parametrize(("versions", "target", "message"), [
    ((), None, "no release has been deployed"),
    (("0.1.0",), None, "0.1.0 is the only release deployed"),
    (("0.1.0", "0.2.0"), "0.2.0", "already the current release"),
    (("0.1.0", "0.2.0"), "0.0.9", "releases to go back to: 0.1.0"),
])
def test_nothing_to_roll_back_to_is_refused_with_the_reason(versions, target, message):
    with pytest.raises(record_module.RecordError, match=message):
        record_module.plan(deploy(fresh(), *versions), target)


def test_a_rollback_pops_the_stack_and_logs_what_it_undid():
    record = deploy(fresh(), "0.1.0", "0.2.0", "0.3.0")
    assert record_module.rolled_back(record, "0.1.0", "verification failed") is True
    assert [entry["version"] for entry in record["releases"]] == ["0.1.0"]
    assert record["events"][-1]["undone"] == ["0.3.0", "0.2.0"]
    assert record["events"][-1]["reason"] == "verification failed"
    assert record_module.rolled_back(record, "0.1.0", "") is False  # a re-run changes nothing


def test_the_record_file_is_private_and_survives_a_reload(tmp_path):
    path = tmp_path / "lab" / "releases.json"
    record = deploy(fresh(), "0.1.0", "0.2.0", backups={"0.2.0": BACKUP})
    record_module.save(str(path), record)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert record_module.plan(record_module.load(str(path)), None)["restore"]["path"] == BACKUP["path"]


def test_a_damaged_record_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "releases.json"
    path.write_text(json.dumps({"releases": "0.1.0"}))
    with pytest.raises(record_module.RecordError, match=str(path)):
        record_module.load(str(path))
