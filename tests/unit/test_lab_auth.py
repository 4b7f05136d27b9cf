"""Unit tests for lab/auth.py: PVE authentication, tickets, tokens and ACL checks."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from lab.auth import (
    BUILTIN_ROLES,
    VALID_PRIVS,
    AccessControl,
    AuthError,
    Principal,
    requires_auth,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "lab" / "data" / "pve-api-schema.json"
T0 = 1_750_000_000

AUDITOR = Principal("auditor@pve", "auditor@pve!ro")
ANSIBLE = Principal("ansible@pve", "ansible@pve!provision")
NOALLOC = Principal("noalloc@pve", "noalloc@pve!test")
ROOT_TOKEN = Principal("root@pam", "root@pam!lab")
ROOT_TICKET = Principal("root@pam", None, via_ticket=True)


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lab(tmp_path: Path, clock: Clock) -> tuple[AccessControl, dict]:
    ac = AccessControl(tmp_path / "priv" / "access.json", clock=clock)
    creds = ac.ensure_bootstrap(tmp_path / "priv" / "secrets.json")
    return ac, creds


def denied(status: int, message: str):
    """Context manager: AuthError with exactly this status and message."""

    class _Expect:
        def __enter__(self) -> None:
            return None

        def __exit__(self, kind, err, tb) -> bool:
            assert isinstance(err, AuthError), f"expected AuthError, got {err!r}"
            assert (err.status, err.message) == (status, message)
            return True

    return _Expect()


def token_header(tokenid: str, secret: str) -> dict[str, str]:
    return {"Authorization": f"PVEAPIToken={tokenid}={secret}"}


# -- roles -------------------------------------------------------------------


def test_builtin_roles_are_pve9s() -> None:
    assert set(BUILTIN_ROLES) == {
        "Administrator",
        "NoAccess",
        "PVEAdmin",
        "PVEAuditor",
        "PVEDatastoreAdmin",
        "PVEDatastoreUser",
        "PVEMappingAdmin",
        "PVEMappingUser",
        "PVEPoolAdmin",
        "PVEPoolUser",
        "PVESDNAdmin",
        "PVESDNUser",
        "PVESysAdmin",
        "PVETemplateUser",
        "PVEUserAdmin",
        "PVEVMAdmin",
        "PVEVMUser",
    }
    assert BUILTIN_ROLES["PVEAuditor"] == {
        "Datastore.Audit",
        "Mapping.Audit",
        "Pool.Audit",
        "SDN.Audit",
        "Sys.Audit",
        "VM.Audit",
        "VM.GuestAgent.Audit",
    }
    assert BUILTIN_ROLES["PVEVMUser"] == {
        "VM.Audit",
        "VM.Backup",
        "VM.Config.CDROM",
        "VM.Config.Cloudinit",
        "VM.Console",
        "VM.GuestAgent.Audit",
        "VM.GuestAgent.FileRead",
        "VM.GuestAgent.FileSystemMgmt",
        "VM.GuestAgent.FileWrite",
        "VM.PowerMgmt",
    }
    assert BUILTIN_ROLES["PVESysAdmin"] == {"Sys.Audit", "Sys.Console", "Sys.Syslog"}
    assert BUILTIN_ROLES["PVEDatastoreUser"] == {"Datastore.AllocateSpace", "Datastore.Audit"}
    assert BUILTIN_ROLES["PVETemplateUser"] == {"VM.Clone", "VM.Audit"}
    assert BUILTIN_ROLES["NoAccess"] == frozenset()
    assert BUILTIN_ROLES["Administrator"] == VALID_PRIVS
    root_only = {"Sys.Modify", "Sys.PowerMgmt", "Sys.Incoming", "Sys.AccessNetwork", "Realm.Allocate"}
    assert not BUILTIN_ROLES["PVEAdmin"] & (root_only | {"Permissions.Modify", "Mapping.Modify"})
    assert "Mapping.Modify" in BUILTIN_ROLES["PVEMappingAdmin"]
    assert "VM.Allocate" in BUILTIN_ROLES["PVEVMAdmin"]
    assert "VM.Monitor" not in VALID_PRIVS  # dropped in PVE 9


def _walk(nodes: list[dict]) -> Iterator[tuple[str, str, dict]]:
    for node in nodes:
        for method, info in (node.get("info") or {}).items():
            yield node["path"], method, info
        yield from _walk(node.get("children") or [])


def _schema_methods() -> list[tuple[str, str, dict]]:
    return list(_walk(json.loads(SCHEMA.read_text())))


def _privs_in(check: object) -> Iterator[str]:
    if isinstance(check, list):
        for item in check:
            if isinstance(item, str) and "." in item and item[0].isupper():
                yield item
            yield from _privs_in(item)


def test_every_privilege_the_schema_names_is_known() -> None:
    named = {
        p for _, _, info in _schema_methods() for p in _privs_in((info.get("permissions") or {}).get("check"))
    }
    assert named
    assert named <= VALID_PRIVS


# -- bootstrap -----------------------------------------------------------------


def test_bootstrap_creates_the_lab_principals(lab) -> None:
    _, creds = lab
    assert set(creds["passwords"]) == {"root@pam", "auditor@pve", "ansible@pve", "noalloc@pve"}
    assert set(creds["tokens"]) == {
        "root@pam!lab",
        "auditor@pve!ro",
        "ansible@pve!provision",
        "noalloc@pve!test",
    }


def test_bootstrap_is_idempotent_and_stable_across_instances(tmp_path: Path, clock: Clock) -> None:
    state, secrets_file = tmp_path / "access.json", tmp_path / "secrets.json"
    first = AccessControl(state, clock=clock).ensure_bootstrap(secrets_file)
    before = state.read_bytes(), secrets_file.read_bytes()
    again = AccessControl(state, clock=clock)
    assert again.ensure_bootstrap(secrets_file) == first
    assert again.ensure_bootstrap(secrets_file) == first
    assert (state.read_bytes(), secrets_file.read_bytes()) == before
    assert json.loads(secrets_file.read_text()) == first
    assert len(again.acl_entries()) == len(AccessControl(state).acl_entries())


def test_bootstrap_reuses_recorded_secrets_after_state_loss(tmp_path: Path) -> None:
    state, secrets_file = tmp_path / "access.json", tmp_path / "secrets.json"
    first = AccessControl(state).ensure_bootstrap(secrets_file)
    state.unlink()
    ac = AccessControl(state)
    assert ac.ensure_bootstrap(secrets_file) == first
    tokenid = "ansible@pve!provision"
    got = ac.authenticate("GET", token_header(tokenid, first["tokens"][tokenid]), {})
    assert got == ANSIBLE


def test_bootstrap_rotates_secrets_it_cannot_vouch_for(tmp_path: Path) -> None:
    state, secrets_file = tmp_path / "access.json", tmp_path / "secrets.json"
    first = AccessControl(state).ensure_bootstrap(secrets_file)
    secrets_file.unlink()
    ac = AccessControl(state)
    second = ac.ensure_bootstrap(secrets_file)
    assert second["tokens"]["root@pam!lab"] != first["tokens"]["root@pam!lab"]
    assert second["passwords"]["root@pam"] != first["passwords"]["root@pam"]
    with denied(401, "invalid token value!"):
        ac.authenticate("GET", token_header("root@pam!lab", first["tokens"]["root@pam!lab"]), {})
    assert ac.authenticate("GET", token_header("root@pam!lab", second["tokens"]["root@pam!lab"]), {})


def test_state_and_secrets_files_are_private_and_state_has_no_plaintext(tmp_path: Path, lab) -> None:
    _, creds = lab
    state, secrets_file = tmp_path / "priv" / "access.json", tmp_path / "priv" / "secrets.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    text = state.read_text()
    for secret in [*creds["passwords"].values(), *creds["tokens"].values()]:
        assert secret not in text
    assert "scrypt" in text


# -- login and tickets -------------------------------------------------------------


def test_login_returns_pves_ticket_answer(lab) -> None:
    ac, creds = lab
    answer = ac.login("root@pam", creds["passwords"]["root@pam"])
    assert set(answer) == {"username", "ticket", "CSRFPreventionToken", "cap"}
    assert answer["username"] == "root@pam"
    assert answer["ticket"].startswith(f"PVE:root@pam:{T0:08X}::")
    assert answer["CSRFPreventionToken"].startswith(f"{T0:08X}:")
    assert answer["cap"]["vms"]["VM.Allocate"] == 1
    assert answer["cap"]["dc"] == {
        "Sys.Audit": 1,
        "Sys.Modify": 1,
        "SDN.Allocate": 1,
        "SDN.Audit": 1,
        "SDN.Use": 1,
    }
    auditor = ac.login("auditor", creds["passwords"]["auditor@pve"], realm="pve")
    assert auditor["username"] == "auditor@pve"
    assert auditor["cap"]["vms"] == {"VM.Audit": 1, "VM.GuestAgent.Audit": 1}
    assert auditor["cap"]["nodes"] == {"Sys.Audit": 1}


@pytest.mark.parametrize(
    ("username", "password", "realm"),
    [
        ("root@pam", "wrong", None),
        ("nobody@pve", "wrong", None),
        ("root@pam", "", "pam"),  # PVE appends the realm: 'root@pam@pam'
        ("x", "", None),
    ],
)
def test_login_failure_is_401(lab, username: str, password: str, realm: str | None) -> None:
    ac, creds = lab
    if password == "":
        password = creds["passwords"]["root@pam"]
    with denied(401, "authentication failure"):
        ac.login(username, password, realm)


def test_ticket_round_trip_by_cookie_and_header(lab) -> None:
    ac, creds = lab
    ticket = ac.login("ansible@pve", creds["passwords"]["ansible@pve"])["ticket"]
    expected = Principal("ansible@pve", None, via_ticket=True)
    assert ac.authenticate("GET", {}, {"PVEAuthCookie": ticket}) == expected
    assert ac.authenticate("GET", {}, {"PVEAuthCookie": quote(ticket, safe="")}) == expected
    assert ac.authenticate("GET", {"authorization": f"PVEAuthCookie={ticket}"}, {}) == expected


def test_ticket_expires_after_two_hours(lab, clock: Clock) -> None:
    ac, creds = lab
    ticket = ac.login("root@pam", creds["passwords"]["root@pam"])["ticket"]
    clock.now = T0 + 7199
    assert ac.authenticate("GET", {}, {"PVEAuthCookie": ticket}).userid == "root@pam"
    clock.now = T0 + 7200
    with denied(401, "permission denied - invalid PVE ticket"):
        ac.authenticate("GET", {}, {"PVEAuthCookie": ticket})
    clock.now = T0 - 300  # issued more than the 5 min grace period in the future
    with denied(401, "permission denied - invalid PVE ticket"):
        ac.authenticate("GET", {}, {"PVEAuthCookie": ticket})


def test_tampered_or_foreign_tickets_are_refused(tmp_path: Path, lab) -> None:
    ac, creds = lab
    ticket = ac.login("auditor@pve", creds["passwords"]["auditor@pve"])["ticket"]
    plain, signature = ticket.split("::")
    forged = [
        plain.replace("auditor@pve", "root@pam") + "::" + signature,
        plain.replace(f"{T0:08X}", f"{T0 + 3600:08X}") + "::" + signature,
        plain + "::" + signature[:-4] + "AAA=",
        plain + "::",
        "garbage",
    ]
    other = AccessControl(tmp_path / "other.json")
    other.ensure_bootstrap(tmp_path / "other-secrets.json")
    forged.append(other._assemble_ticket("root@pam"))
    for bad in forged:
        with denied(401, "permission denied - invalid PVE ticket"):
            ac.authenticate("GET", {}, {"PVEAuthCookie": bad})


def test_ticket_of_disabled_user_is_refused(lab) -> None:
    ac, _ = lab
    ac.add_user("gone@pve", "secret-pw", enable=False)
    ticket = ac._assemble_ticket("gone@pve")
    with denied(401, "user 'gone@pve' is disabled"):
        ac.authenticate("GET", {}, {"PVEAuthCookie": ticket})


def test_no_credentials_is_no_ticket(lab) -> None:
    ac, _ = lab
    with denied(401, "No ticket"):
        ac.authenticate("GET", {"Authorization": "Basic Zm9vOmJhcg=="}, {})


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_csrf_token_required_for_writes_with_a_ticket(lab, method: str) -> None:
    ac, creds = lab
    answer = ac.login("root@pam", creds["passwords"]["root@pam"])
    cookies = {"PVEAuthCookie": answer["ticket"]}
    with denied(401, "Permission denied - invalid csrf token"):
        ac.authenticate(method, {}, cookies)
    other = ac.login("auditor@pve", creds["passwords"]["auditor@pve"])["CSRFPreventionToken"]
    with denied(401, "Permission denied - invalid csrf token"):
        ac.authenticate(method, {"CSRFPreventionToken": other}, cookies)
    good = {"csrfpreventiontoken": answer["CSRFPreventionToken"]}
    assert ac.authenticate(method, good, cookies) == ROOT_TICKET


def test_csrf_not_required_for_tokens(lab) -> None:
    ac, creds = lab
    header = token_header("root@pam!lab", creds["tokens"]["root@pam!lab"])
    assert ac.authenticate("POST", header, {}) == ROOT_TOKEN
    assert ac.authenticate("DELETE", header, {}) == ROOT_TOKEN


# -- API tokens ----------------------------------------------------------------


def test_token_auth(lab) -> None:
    ac, creds = lab
    secret = creds["tokens"]["auditor@pve!ro"]
    assert ac.authenticate("GET", token_header("auditor@pve!ro", secret), {}) == AUDITOR
    spaced = {"Authorization": f"PVEAPIToken auditor@pve!ro={secret}"}
    assert ac.authenticate("GET", spaced, {}) == AUDITOR


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("auditor@pve!ro=00000000-0000-0000-0000-000000000000", "invalid token value!"),
        ("auditor@pve!nope=x", "no such token 'nope' for user 'auditor@pve'"),
        ("ghost@pve!ro=x", "no such user ('ghost@pve')"),
        ("auditor@pve!ro:x", "no tokenid specified"),
        (
            "auditor@pve=x",
            "'auditor@pve' is not a valid token ID - not able to split into user and token parts",
        ),
    ],
)
def test_bad_token_is_401(lab, value: str, message: str) -> None:
    ac, _ = lab
    with denied(401, message):
        ac.authenticate("GET", {"Authorization": f"PVEAPIToken={value}"}, {})


def test_token_expiry_and_disabled_owner(lab, clock: Clock) -> None:
    ac, _ = lab
    ac.add_user("temp@pve")
    secret = ac.add_token("temp@pve", "short", expire=T0 + 60)
    header = token_header("temp@pve!short", secret)
    assert ac.authenticate("GET", header, {}).tokenid == "temp@pve!short"
    clock.now = T0 + 61
    with denied(401, "token 'short' access expired"):
        ac.authenticate("GET", header, {})
    ac.add_user("off@pve", enable=False)
    off = ac.add_token("off@pve", "tk")
    with denied(401, "user 'off@pve' is disabled"):
        ac.authenticate("GET", token_header("off@pve!tk", off), {})


def test_ticket_wins_over_token(lab) -> None:
    ac, creds = lab
    headers = token_header("root@pam!lab", creds["tokens"]["root@pam!lab"])
    with denied(401, "permission denied - invalid PVE ticket"):
        ac.authenticate("GET", headers, {"PVEAuthCookie": "PVE:x@pve:00000000::AAAA"})


def test_tokens_refused_where_the_schema_disallows_them(lab) -> None:
    ac, _ = lab
    message = (
        "Permission check failed (URI '/access/ticket' not available with API token, need proper ticket."
    )
    with denied(403, message):
        ac.check_token_allowed(ROOT_TOKEN, "/access/ticket", None)
    ac.check_token_allowed(ROOT_TOKEN, "/nodes", 1)
    ac.check_token_allowed(ROOT_TICKET, "/access/ticket", None)
    assert not requires_auth("POST", "/access/ticket")
    assert requires_auth("GET", "/nodes")


# -- privileges ------------------------------------------------------------------


def test_privsep_token_gets_the_intersection(lab) -> None:
    ac, _ = lab
    ac.add_user("split@pve")
    ac.add_token("split@pve", "sep", privsep=True)
    ac.add_token("split@pve", "full", privsep=False)
    ac.add_token("split@pve", "bare", privsep=True)
    ac.set_acl("/vms", "PVEVMUser", users=["split@pve"])
    ac.set_acl("/vms", "PVEVMAdmin", tokens=["split@pve!sep"])
    ac.set_acl("/storage", "PVEDatastoreAdmin", tokens=["split@pve!sep"])
    sep = Principal("split@pve", "split@pve!sep")
    assert ac.user_privs(sep, "/vms/100") == BUILTIN_ROLES["PVEVMUser"]
    assert ac.user_privs(sep, "/storage/local") == set()
    assert not ac.has_privs(sep, "/vms/100", ["VM.Allocate"])
    full = Principal("split@pve", "split@pve!full")
    assert ac.user_privs(full, "/vms/100") == BUILTIN_ROLES["PVEVMUser"]
    assert ac.user_privs(Principal("split@pve", "split@pve!bare"), "/vms/100") == set()


def test_bootstrap_tokens_have_their_acls(lab) -> None:
    ac, _ = lab
    assert ac.user_privs(AUDITOR, "/vms/100") == BUILTIN_ROLES["PVEAuditor"]
    assert ac.has_privs(ANSIBLE, "/vms/100", ["VM.Allocate", "VM.Config.Disk"])
    assert ac.has_privs(ANSIBLE, "/storage/local", ["Datastore.AllocateSpace"])
    assert ac.has_privs(ANSIBLE, "/sdn/zones/localnetwork/vmbr0", ["SDN.Use"])
    assert ac.has_privs(ANSIBLE, "/nodes/pve1", ["Sys.Audit"])
    assert not ac.has_privs(ANSIBLE, "/nodes/pve1", ["Sys.Modify"])
    assert ac.user_privs(ROOT_TOKEN, "/") == VALID_PRIVS
    assert ac.user_privs(ROOT_TICKET, "/anything") == VALID_PRIVS


def test_propagate_false_is_not_inherited_and_specific_paths_win(lab) -> None:
    ac, _ = lab
    ac.add_user("flat@pve")
    ac.set_acl("/vms", "PVEVMAdmin", users=["flat@pve"], propagate=False)
    ac.set_acl("/", "PVEAuditor", users=["flat@pve"])
    flat = Principal("flat@pve")
    assert "VM.Allocate" in ac.user_privs(flat, "/vms")
    # /vms does not propagate, so /vms/100 inherits from / only
    assert ac.user_privs(flat, "/vms/100") == BUILTIN_ROLES["PVEAuditor"]
    ac.set_acl("/vms/101", "NoAccess", users=["flat@pve"])
    assert ac.user_privs(flat, "/vms/101") == set()
    assert ac.user_privs(flat, "/nodes/pve1") == BUILTIN_ROLES["PVEAuditor"]


def test_group_acls_and_user_acls_override_groups(lab) -> None:
    ac, _ = lab
    ac.add_group("ops")
    ac.add_user("member@pve", groups=["ops"])
    ac.set_acl("/storage", "PVEDatastoreAdmin", groups=["ops"])
    member = Principal("member@pve")
    assert "Datastore.Allocate" in ac.user_privs(member, "/storage/local")
    ac.set_acl("/storage", "PVEDatastoreUser", users=["member@pve"])
    assert ac.user_privs(member, "/storage/local") == BUILTIN_ROLES["PVEDatastoreUser"]
    ac.set_acl("/storage", "PVEDatastoreUser", users=["member@pve"], delete=True)
    assert "Datastore.Allocate" in ac.user_privs(member, "/storage/local")


def test_noalloc_token_is_refused_vm_allocate(lab) -> None:
    ac, _ = lab
    with denied(403, "Permission check failed (/vms/100, VM.Allocate)"):
        ac.require(NOALLOC, "/vms/100", ["VM.Allocate"])
    with denied(403, "Permission check failed (/vms/100, VM.Allocate)"):
        ac.check(NOALLOC, {"check": ["perm", "/vms/{vmid}", ["VM.Allocate"]]}, {"vmid": 100})
    ac.require(NOALLOC, "/vms/100", ["VM.Audit", "VM.Config.Disk", "VM.Config.CPU"])
    ac.require(NOALLOC, "/storage/local", ["Datastore.AllocateSpace"])
    ac.require(ANSIBLE, "/vms/100", ["VM.Allocate"])


def test_require_any_of_wording(lab) -> None:
    ac, _ = lab
    with denied(403, "Permission check failed (/vms/100, VM.Allocate|VM.Clone)"):
        ac.require(AUDITOR, "/vms/100/", ["VM.Allocate", "VM.Clone"], any_of=True)
    ac.require(AUDITOR, "/vms/100", ["VM.Allocate", "VM.Audit"], any_of=True)


# -- schema permission shapes ------------------------------------------------------


def test_check_perm_shape(lab) -> None:
    ac, _ = lab
    perm = {"check": ["perm", "/vms/{vmid}", ["VM.Audit"]]}
    ac.check(AUDITOR, perm, {"vmid": "100", "node": "pve1"})
    with denied(403, "Permission check failed (/vms/100, VM.Allocate)"):
        ac.check(AUDITOR, {"check": ["perm", "/vms/{vmid}", ["VM.Audit", "VM.Allocate"]]}, {"vmid": 100})
    with denied(403, "Permission check failed (/nodes/-, Sys.Modify)"):
        ac.check(AUDITOR, {"check": ["perm", "/nodes/{node}", ["Sys.Modify"]]}, {})


def test_check_any_shape(lab) -> None:
    ac, _ = lab
    perm = {"check": ["perm", "/vms/{vmid}", ["VM.Config.Disk", "VM.Config.CPU"], "any", 1]}
    ac.check(NOALLOC, perm, {"vmid": "100"})
    with denied(403, "Permission check failed (/vms/100, VM.Config.Disk|VM.Config.CPU)"):
        ac.check(AUDITOR, perm, {"vmid": "100"})


def test_check_and_shape(lab) -> None:
    ac, _ = lab
    perm = {
        "check": [
            "and",
            ["perm", "/vms/{vmid}", ["VM.Audit"]],
            ["perm", "/storage/{storage}", ["Datastore.AllocateSpace"]],
        ]
    }
    ac.check(ANSIBLE, perm, {"vmid": 100, "storage": "local"})
    with denied(403, "Permission check failed (/storage/local, Datastore.AllocateSpace)"):
        ac.check(AUDITOR, perm, {"vmid": 100, "storage": "local"})


def test_check_or_shape(lab) -> None:
    ac, _ = lab
    perm = {
        "check": [
            "or",
            ["perm", "/mapping/notifications", ["Mapping.Modify"]],
            ["perm", "/mapping/notifications", ["Mapping.Audit"]],
        ]
    }
    ac.check(AUDITOR, perm, {})
    with denied(403, "Permission check failed"):
        ac.check(NOALLOC, perm, {})


def test_check_require_param_shape(lab) -> None:
    ac, _ = lab
    clone = {
        "check": [
            "and",
            ["perm", "/vms/{vmid}", ["VM.Clone"]],
            [
                "or",
                ["perm", "/vms/{newid}", ["VM.Allocate"]],
                ["perm", "/pool/{pool}", ["VM.Allocate"], "require_param", "pool"],
            ],
        ]
    }
    ac.check(ANSIBLE, clone, {"vmid": 100, "newid": 101})
    with denied(403, "Permission check failed (/vms/100, VM.Clone)"):
        ac.check(NOALLOC, clone, {"vmid": 100, "newid": 101})
    with denied(403, "Permission check failed"):
        ac.check(ANSIBLE, {"check": clone["check"][2][2]}, {"vmid": 100})


def test_check_world_all_and_root_only(lab) -> None:
    ac, _ = lab
    ac.check(None, {"user": "world"}, {})
    ac.check(AUDITOR, {"user": "world", "description": "login box"}, {})
    ac.check(AUDITOR, {"user": "all"}, {})
    with denied(403, "Permission check failed (user != null)"):
        ac.check(None, {"user": "all"}, {})
    ac.check(ROOT_TICKET, None, {})
    ac.check(ROOT_TICKET, {"check": ["perm", "/", ["Sys.Modify"]]}, {})
    for who in (ROOT_TOKEN, AUDITOR):
        with denied(403, "Permission check failed (user != root@pam)"):
            ac.check(who, None, {})
    with denied(403, "Permission check failed"):
        ac.check(AUDITOR, {"description": "checked in code only"}, {})


def test_check_userid_shapes(lab) -> None:
    ac, _ = lab
    me = Principal("auditor@pve", None, via_ticket=True)
    tfa = {"check": ["or", ["userid-param", "self"], ["userid-group", ["User.Modify", "Sys.Audit"]]]}
    ac.check(me, tfa, {"userid": "auditor@pve"})
    ac.check(me, tfa, {"userid": "ansible@pve"})  # Sys.Audit on / covers /access/groups
    ac.add_group("devs")
    ac.add_user("dev@pve", groups=["devs"])
    ac.add_user("lead@pve")
    ac.set_acl("/access/groups/devs", "PVEUserAdmin", users=["lead@pve"])
    lead = Principal("lead@pve", None, via_ticket=True)
    group_only = {"check": ["userid-group", ["User.Modify"]]}
    ac.check(lead, group_only, {"userid": "dev@pve"})
    with denied(403, "Permission check failed"):
        ac.check(lead, group_only, {"userid": "auditor@pve"})
    update = {"check": ["userid-group", ["User.Modify"], "groups_param", "update"]}
    ac.check(lead, update, {"userid": "dev@pve", "groups": "devs"})
    with denied(403, "Permission check failed (/access/groups/admins, User.Modify)"):
        ac.check(lead, update, {"userid": "dev@pve", "groups": "devs,admins"})
    with denied(403, "Permission check failed (/access/groups, User.Modify)"):
        ac.check(lead, update, {"userid": "dev@pve"})
    with denied(403, "no such user ('ghost@pve')"):
        ac.check(lead, group_only, {"userid": "ghost@pve"})
    # a token is never 'self', even for its owner's userid
    with denied(403, "Permission check failed"):
        ac.check(NOALLOC, {"check": ["userid-param", "self"]}, {"userid": "noalloc@pve"})
    create = {"check": ["and", ["userid-param", "Realm.AllocateUser"], ["userid-group", ["User.Modify"]]]}
    with denied(403, "Permission check failed (/access/realm/pve, Realm.AllocateUser)"):
        ac.check(lead, create, {"userid": "dev@pve"})


def test_check_perm_modify_shape(lab) -> None:
    ac, _ = lab
    perm = {"check": ["perm-modify", "{path}"]}
    ac.check(ANSIBLE, perm, {"path": "/vms/100"})  # VM.Allocate on the VM is enough
    with denied(403, "Permission check failed (/vms/100, Permissions.Modify|VM.Allocate)"):
        ac.check(AUDITOR, perm, {"path": "/vms/100"})
    with denied(403, "Permission check failed (/storage, Permissions.Modify)"):
        ac.check(ANSIBLE, perm, {"path": "/storage"})


@pytest.mark.parametrize(
    "check",
    [["frobnicate", "/"], "perm", [["perm"]], ["perm", "/vms"], ["userid-param", "other"]],
)
def test_unknown_shapes_are_denied(lab, check: object) -> None:
    ac, _ = lab
    with pytest.raises(AuthError) as err:
        ac.check(AUDITOR, {"check": check}, {"userid": "auditor@pve"})
    assert err.value.status == 403
    assert "unknown" in err.value.message


def test_every_schema_method_is_understood(lab) -> None:
    ac, _ = lab
    me = Principal("auditor@pve", None, via_ticket=True)
    who = [ROOT_TICKET, ROOT_TOKEN, AUDITOR, ANSIBLE, NOALLOC, me, None]
    base = {
        "node": "pve1",
        "vmid": "100",
        "newid": "101",
        "storage": "local",
        "userid": "ansible@pve",
        "groups": "devs",
        "path": "/vms/100",
    }
    methods = _schema_methods()
    assert len(methods) > 500
    allowed, refused = 0, []
    for path, _, info in methods:
        params = dict(base)
        for name in re.findall(r"\{([^}]+)\}", path):
            params.setdefault(name, "x")
        for principal in who:
            try:
                ac.check(principal, info.get("permissions"), params)
                allowed += 1
            except AuthError as err:  # anything else propagates and fails the test
                refused.append((err.status, err.message, path, info.get("permissions")))
    assert allowed
    assert refused
    assert {status for status, *_ in refused} == {403}
    assert not [r for r in refused if "unknown" in r[1]]
