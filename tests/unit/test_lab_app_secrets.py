"""A clone's .lab/secrets links to the lab's own app secrets, so clones agree on them."""

from __future__ import annotations

import pytest

from lab.cli import link_app_secrets
from lab.config import LabPaths
from lab.hostsetup import HostSetupError


@pytest.fixture
def paths(tmp_path):
    return LabPaths(tmp_path / "lab")


def test_two_clones_read_the_same_secrets(paths, tmp_path):
    first, second = tmp_path / "a" / ".lab" / "secrets", tmp_path / "b" / ".lab" / "secrets"
    link_app_secrets(paths, first)
    (first / "app_db_password").write_text("s3cret\n")
    link_app_secrets(paths, second)
    assert (second / "app_db_password").read_text() == "s3cret\n"
    assert (paths.app_secrets.stat().st_mode & 0o777) == 0o700


def test_a_real_directory_is_folded_in_without_overwriting_the_labs_copy(paths, tmp_path):
    paths.app_secrets.mkdir(parents=True)
    (paths.app_secrets / "django_secret_key").write_text("the lab's\n")
    old = tmp_path / "clone" / ".lab" / "secrets"
    old.mkdir(parents=True)
    (old / "django_secret_key").write_text("the clone's\n")
    (old / "app_admin_password").write_text("admin\n")

    link_app_secrets(paths, old)

    assert old.is_symlink()
    assert (old / "django_secret_key").read_text() == "the lab's\n"
    assert (old / "app_admin_password").read_text() == "admin\n"


def test_running_twice_changes_nothing(paths, tmp_path):
    link = tmp_path / "clone" / ".lab" / "secrets"
    link_app_secrets(paths, link)
    (link / "x").write_text("1")
    link_app_secrets(paths, link)
    assert (link / "x").read_text() == "1"


def test_a_file_in_the_way_is_refused_and_kept(paths, tmp_path):
    link = tmp_path / "clone" / ".lab" / "secrets"
    link.parent.mkdir(parents=True)
    link.write_text("not a directory")
    with pytest.raises(HostSetupError, match="should be a directory"):
        link_app_secrets(paths, link)
    assert link.read_text() == "not a directory"
