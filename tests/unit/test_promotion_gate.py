"""The promotion gate: production takes only releases verified on staging, or an override
that names its approver, which is logged. Runs playbooks/promotion.yml against the
production inventory: it reads controller files only and contacts no host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def gate(records: Path, version: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"),
         "-i", str(REPO / "inventories" / "production"), str(REPO / "playbooks" / "promotion.yml"),
         "-e", f"promotion_record_root={records}",
         "-e", f"app_version={version}", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)


def staging_ran(records: Path, version: str, passed: bool) -> None:
    path = records / "staging" / "verifications.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps({"inventory": "staging", "version": version, "time": "2031-05-01T12:00:00Z",
                              "passed": passed, "report_dir": "/reports"}) + "\n")


def decisions(records: Path) -> list[dict]:
    path = records / "production" / "promotions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_release_never_verified_on_staging_is_refused(tmp_path):
    done = gate(tmp_path, "2.0.0")
    assert done.returncode != 0
    assert "release 2.0.0 has not passed verification on staging" in done.stdout
    assert decisions(tmp_path) == []


def test_a_release_that_failed_on_staging_is_refused(tmp_path):
    staging_ran(tmp_path, "2.0.0", passed=False)
    staging_ran(tmp_path, "1.9.0", passed=True)
    assert gate(tmp_path, "2.0.0").returncode != 0


def test_a_release_verified_on_staging_goes_through_and_is_logged(tmp_path):
    staging_ran(tmp_path, "2.0.0", passed=True)
    done = gate(tmp_path, "2.0.0")
    assert done.returncode == 0, done.stdout
    [decision] = decisions(tmp_path)
    assert (decision["version"], decision["verified_on"]) == ("2.0.0", "2031-05-01T12:00:00Z")
    assert decision["override"] is None


def test_an_override_naming_its_approver_goes_through_and_is_logged(tmp_path):
    done = gate(tmp_path, "2.0.1", "-e", json.dumps({"promotion_override_approver": "Jane Doe",
                                                    "promotion_override_reason": "INC-1234 hotfix"}))
    assert done.returncode == 0, done.stdout
    [decision] = decisions(tmp_path)
    assert decision["override"] == {"approver": "Jane Doe", "reason": "INC-1234 hotfix"}


@pytest.mark.parametrize("extra", [("-e", "promotion_override_approver=Jane Doe"),
                                   ("-e", "promotion_override_reason=hotfix")])
def test_an_override_without_approver_or_reason_is_refused(tmp_path, extra):
    done = gate(tmp_path, "2.0.1", *extra)
    assert done.returncode != 0
    assert "needs both promotion_override_approver" in done.stdout
    assert decisions(tmp_path) == []
