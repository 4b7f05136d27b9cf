"""Fixtures for tests against the running lab (`make test-lab` brings it up first)."""

from __future__ import annotations

from collections.abc import Iterator

import labtools
import molecule_runs
import pytest
import requests
from proxmoxer import ProxmoxAPI

from lab.admin import AdminClient
from lab.config import LabPaths


# Module order. test_site_service.py first: its second site.yml run must change nothing,
# which it shows right after the session's converge (site_converged), before other modules
# deploy releases and inject faults. The molecule runs start in the background when the
# first module of molecule_runs.MOLECULE_ALONGSIDE begins; those modules and
# test_molecule.py come last. Every other module keeps its place (a stable sort).
def _module_rank(item: pytest.Item) -> int:
    name = item.module.__name__
    if name == "test_site_service":
        return 0
    if name in molecule_runs.MOLECULE_ALONGSIDE:
        return 2
    if name == "test_molecule":
        return 3
    return 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_module_rank)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.module.__name__ in molecule_runs.MOLECULE_ALONGSIDE and _molecule_selected(item.session):
        molecule_runs.start()


def _molecule_selected(session: pytest.Session) -> bool:
    return any(item.module.__name__ == "test_molecule" for item in session.items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    molecule_runs.stop()


@pytest.fixture(scope="session")
def creds() -> dict:
    try:
        return labtools.load_credentials()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def pve(creds: dict) -> ProxmoxAPI:
    return labtools.api_for(creds)


@pytest.fixture(scope="session")
def admin() -> AdminClient:
    return AdminClient(LabPaths.default())


@pytest.fixture(autouse=True)
def _no_faults_left(admin: AdminClient) -> Iterator[None]:
    admin.clear_faults()
    yield
    admin.clear_faults()


@pytest.fixture
def raw(creds: dict) -> requests.Session:
    """A bare HTTP session, for what proxmoxer hides (reason phrases, cookies)."""
    session = requests.Session()
    session.trust_env = False  # no proxies; and REQUESTS_CA_BUNDLE would override verify
    session.verify = creds["ca_cert"]
    return session


@pytest.fixture
def ids(pve: ProxmoxAPI) -> Iterator[labtools.Allocator]:
    alloc = labtools.Allocator(pve)
    yield alloc
    alloc.cleanup()


@pytest.fixture(scope="session")
def site_converged() -> dict:
    """The whole service converged on the lab inventory by one full site.yml, once per session.

    The run includes the verify stage, so it is also the first site.yml run of
    test_site_service.py (which checks that a second run changes nothing). The modules that
    need a converged service share this one run instead of each paying for a site.yml;
    each of them puts back what it changes.
    """
    code, result, stderr = labtools.run_playbook("site.yml", None)
    assert code == 0, labtools.failures(result, stderr)
    return result
