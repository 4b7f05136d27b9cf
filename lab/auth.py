"""Users, API tokens, tickets and ACLs for the lab, with Proxmox VE's semantics.

The lab's API server authenticates every request with :meth:`AccessControl.authenticate`
and evaluates each method's schema ``permissions`` with :meth:`AccessControl.check`
(plus :meth:`AccessControl.require` for the checks PVE does in code).  Everything a
client can observe mirrors a PVE 9 node: ticket and CSRF token layout and lifetime,
the ``PVEAPIToken`` header, the privilege set and built-in roles, how ACLs inherit,
privilege-separated tokens, and the error texts PVE puts in the HTTP reason phrase.

Sources mirrored (pve-access-control ``PVE/AccessControl.pm`` and
``PVE/RPCEnvironment.pm``, pve-common ``PVE/Ticket.pm``, ``PVE/Exception.pm`` and
``PVE/Tools.pm``, pve-manager ``PVE/HTTPServer.pm``, pve-http-server
``PVE/APIServer/AnyEvent.pm``) are named where they matter.

Deliberate differences from PVE:

* Tickets are signed with HMAC-SHA256 (a key in the state file), not RSA; the layout
  ``PVE:<userid>:<8 hex digits>::<base64 signature>`` and the 2 h lifetime are PVE's.
* Passwords (PAM users included) are checked against scrypt hashes in the state file.
* Pools and two-factor authentication are not modelled.
* Checks PVE would answer with a plain ``die`` (500) - an unknown user named in a
  ``userid`` parameter, an unknown check shape - are refused with 403, PVE's text.

State file (JSON, mode 0600): users with password hashes, tokens with hashed secrets,
groups, custom roles, ACL entries, and the ticket/CSRF keys.  It never holds a
plaintext password or token secret.  See :meth:`AccessControl.ensure_bootstrap` for the
separate secrets file that does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

ROOT = "root@pam"
TICKET_PREFIX = "PVE"
TICKET_LIFETIME = 2 * 3600  # $ticket_lifetime
AUTH_GRACEPERIOD = 5 * 60  # $auth_graceperiod: tolerated clock skew into the future
COOKIE_NAME = "PVEAuthCookie"
APITOKEN_NAME = "PVEAPIToken"
CSRF_HEADER = "CSRFPreventionToken"

# PVE::Auth::Plugin $user_regex / $realm_regex; token names use the realm regex.
_USER_RE = r"[^\s:/]+"
_REALM_RE = r"[A-Za-z][A-Za-z0-9\.\-_]+"
_USERID_RE = re.compile(rf"({_USER_RE})@({_REALM_RE})")
_TOKENID_RE = re.compile(rf"(({_USER_RE})@({_REALM_RE}))!({_REALM_RE})")

# Calls pve-manager's auth_handler serves without authentication.
NO_AUTH_CALLS = frozenset(
    {
        ("GET", "/access/domains"),
        ("GET", "/access/ticket"),
        ("POST", "/access/ticket"),
        ("POST", "/access/vncticket"),
        ("POST", "/access/openid/login"),
        ("POST", "/access/openid/auth-url"),
    }
)

# $privgroups of pve-access-control for PVE 9 (VM.Monitor gone, VM.GuestAgent.* and
# VM.Replicate in).  root: only root@pam/Administrator; admin/user/audit build roles.
PRIVGROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "VM": {
        "root": (),
        "admin": (
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Allocate",
            "VM.Clone",
            "VM.GuestAgent.Unrestricted",
            "VM.Migrate",
            "VM.Replicate",
            "VM.Snapshot",
            "VM.Snapshot.Rollback",
        ),
        "user": (
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.Backup",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileSystemMgmt",
            "VM.GuestAgent.FileWrite",
            "VM.PowerMgmt",
        ),
        "audit": ("VM.Audit", "VM.GuestAgent.Audit"),
    },
    "Sys": {
        "root": ("Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"),
        "admin": ("Sys.Console", "Sys.Syslog"),
        "user": (),
        "audit": ("Sys.Audit",),
    },
    "Datastore": {
        "root": (),
        "admin": ("Datastore.Allocate", "Datastore.AllocateTemplate"),
        "user": ("Datastore.AllocateSpace",),
        "audit": ("Datastore.Audit",),
    },
    "SDN": {
        "root": (),
        "admin": ("SDN.Allocate", "SDN.Audit"),
        "user": ("SDN.Use",),
        "audit": ("SDN.Audit",),
    },
    "User": {
        "root": ("Realm.Allocate",),
        "admin": ("User.Modify", "Group.Allocate", "Realm.AllocateUser"),
        "user": (),
        "audit": (),
    },
    "Pool": {
        "root": (),
        "admin": ("Pool.Allocate",),
        "user": ("Pool.Audit",),
        "audit": ("Pool.Audit",),
    },
    "Mapping": {
        "root": (),
        "admin": ("Mapping.Modify",),
        "user": ("Mapping.Use",),
        "audit": ("Mapping.Audit",),
    },
}


def _build_roles() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """create_roles(): derive the valid privileges and the built-in ("special") roles."""
    valid = {"Permissions.Modify"}  # not contained in a group
    roles: dict[str, set[str]] = {"NoAccess": set(), "PVEAdmin": set(), "PVEAuditor": set()}
    for cat, groups in PRIVGROUPS.items():
        valid.update(*groups.values())
        managed = {*groups["admin"], *groups["user"], *groups["audit"]}
        roles[f"PVE{cat}Admin"] = set(managed)
        roles["PVEAdmin"] |= managed
        if groups["user"]:
            roles[f"PVE{cat}User"] = {*groups["user"], *groups["audit"]}
        roles["PVEAuditor"] |= set(groups["audit"])
    # only Administrator, root@pam and PVEMappingAdmin may use Mapping.Modify
    roles["PVEAdmin"].discard("Mapping.Modify")
    roles["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
    roles["Administrator"] = set(valid)
    return frozenset(valid), {name: frozenset(privs) for name, privs in roles.items()}


VALID_PRIVS, BUILTIN_ROLES = _build_roles()

# compute_api_permission(): what the GUI 'cap' object reports per top-level path.
_CAP_PRIV_RE = {
    "vms": re.compile(r"VM\.|Permissions\.Modify"),
    "access": re.compile(r"(User|Group)\.|Permissions\.Modify"),
    "storage": re.compile(r"Datastore\.|Permissions\.Modify"),
    "nodes": re.compile(r"Sys\.|Permissions\.Modify"),
    "sdn": re.compile(r"SDN\.|Permissions\.Modify"),
    "dc": re.compile(r"Sys\.Audit|Sys\.Modify|SDN\."),
    "mapping": re.compile(r"Mapping\.|Permissions.Modify"),
}
_CAP_PATHS = ("/", "/nodes", "/access/groups", "/vms", "/storage", "/sdn", "/mapping")

# Lab principals created by ensure_bootstrap().
NOALLOC_ROLE = "LabVMConfigNoAllocate"
NOALLOC_PRIVS = (
    "VM.Audit",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.PowerMgmt",
    "Datastore.Audit",
    "Datastore.AllocateSpace",
    "SDN.Audit",
    "SDN.Use",
    "Sys.Audit",
)
BOOTSTRAP_USERS = (ROOT, "auditor@pve", "ansible@pve", "noalloc@pve")
BOOTSTRAP_TOKENS = (  # (userid, token name, privsep)
    (ROOT, "lab", False),
    ("auditor@pve", "ro", True),
    ("ansible@pve", "provision", True),
    ("noalloc@pve", "test", True),
)
BOOTSTRAP_ACLS = (  # (path, roleid, userid): granted to the user and to its token
    ("/", "PVEAuditor", "auditor@pve"),
    ("/", "PVEAuditor", "ansible@pve"),
    ("/nodes", "PVEAuditor", "ansible@pve"),
    ("/vms", "PVEVMAdmin", "ansible@pve"),
    ("/storage", "PVEDatastoreUser", "ansible@pve"),
    ("/sdn/zones", "PVESDNUser", "ansible@pve"),
    ("/", NOALLOC_ROLE, "noalloc@pve"),
)

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class AuthError(Exception):
    """An authentication (401) or authorization (403) failure, with PVE's wording."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who made a request."""

    userid: str
    tokenid: str | None = None
    via_ticket: bool = False

    @property
    def authid(self) -> str:
        """The id PVE checks permissions for: the token id for token requests."""
        return self.tokenid or self.userid


def _perm_exc(what: str | None = None) -> AuthError:
    """PVE::Exception::raise_perm_exc."""
    return AuthError(403, f"Permission check failed ({what})" if what else "Permission check failed")


# -- PVE helpers -------------------------------------------------------------


def requires_auth(method: str, rel_uri: str) -> bool:
    """Whether pve-manager's auth_handler demands a ticket or token for this call."""
    return (method.upper(), rel_uri) not in NO_AUTH_CALLS


def verify_username(userid: object) -> tuple[str, str]:
    """PVE::Auth::Plugin::verify_username: (userid, realm), or ValueError with PVE's text."""
    name = "" if userid is None else str(userid)
    if len(name) < 3:
        raise ValueError(f"user name '{name}' is too short")
    if len(name) > 64:
        raise ValueError(f"user name '{name}' is too long ({len(name)} > 64)")
    match = _USERID_RE.fullmatch(name)
    if not match:
        raise ValueError(f"value '{name}' does not look like a valid user name")
    return name, match.group(2)


def split_tokenid(tokenid: str) -> tuple[str, str] | None:
    """PVE::AccessControl::split_tokenid: ('user@realm', 'name') or None."""
    match = _TOKENID_RE.fullmatch(tokenid)
    return (match.group(1), match.group(4)) if match else None


def normalize_path(path: str | None) -> str | None:
    """PVE::AccessControl::normalize_path."""
    if not path:
        return None
    path = re.sub(r"/+", "/", path)
    path = path.removesuffix("/") or "/"
    if not path.startswith("/"):
        path = "/" + path
    return path if re.fullmatch(r"[A-Za-z0-9.\-_/]+", path) else None


def template_replace(template: str, params: Mapping[str, object]) -> str:
    """PVE::Tools::template_replace: '{name}' from params, '-' when unset or false."""

    def value(match: re.Match[str]) -> str:
        found = params.get(match.group(1))
        return "-" if found in (None, "", "0", 0, False) else str(found)

    return re.sub(r"\{([^}]+)\}", value, template)


def split_list(text: object) -> list[str]:
    """PVE::Tools::split_list."""
    raw = "" if text is None else str(text)
    if "\0" in raw:
        return raw.split("\0")
    return re.sub(r"[,;]", " ", raw).split()


def extract_auth_value(header: str | None, key: str) -> str | None:
    """PVE::APIServer::Formatter::extract_auth_value: 'KEY=value' or 'KEY value'."""
    if not header:
        return None
    match = re.search(rf"(?:^|\s){re.escape(key)}(?:=| )([^;]*)", header)
    return unquote(match.group(1)) if match and match.group(1) else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _encode_text(text: str) -> str:
    """PVE::Tools::encode_text: escape ':' and anything outside printable ASCII."""
    return "".join(c if " " <= c <= "~" and c != ":" else f"%{ord(c):02X}" for c in text)


def _hash_password(password: str) -> dict[str, Any]:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return {"scheme": "scrypt", **_SCRYPT, "salt": _b64(salt), "hash": _b64(digest)}


def _check_password(password: str, record: Mapping[str, Any] | None) -> bool:
    if not record or record.get("scheme") != "scrypt":
        return False
    params = {k: int(record[k]) for k in ("n", "r", "p")}
    digest = hashlib.scrypt(password.encode(), salt=_unb64(record["salt"]), dklen=32, **params)
    return hmac.compare_digest(digest, _unb64(record["hash"]))


def _hash_secret(secret: str) -> dict[str, Any]:
    """Token secrets are random UUIDs (122 bits): a salted SHA-256 is enough and fast."""
    salt = secrets.token_bytes(16)
    return {
        "scheme": "sha256",
        "salt": _b64(salt),
        "hash": _b64(hashlib.sha256(salt + secret.encode()).digest()),
    }


def _check_secret(secret: str, record: Mapping[str, Any] | None) -> bool:
    if not record or record.get("scheme") != "sha256":
        return False
    digest = hashlib.sha256(_unb64(record["salt"]) + secret.encode()).digest()
    return hmac.compare_digest(digest, _unb64(record["hash"]))


def _write_private_json(path: Path, data: object) -> None:
    """Atomically replace path with data as JSON, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _new_state() -> dict[str, Any]:
    return {
        "version": 1,
        "keys": {"ticket": _b64(secrets.token_bytes(32)), "csrf": _b64(secrets.token_bytes(32))},
        "users": {},
        "groups": {},
        "roles": {},
        "acl": [],
    }


def _new_user(enable: bool = True, expire: int = 0, comment: str = "") -> dict[str, Any]:
    return {
        "enable": int(enable),
        "expire": int(expire),
        "comment": comment,
        "password": None,
        "tokens": {},
    }


def _path_prefixes(path: str) -> list[str]:
    """'/vms/100' -> ['/', '/vms', '/vms/100'], the ACL tree walk of roles()."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _options(items: Sequence[object]) -> dict[str, object]:
    return {str(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


# -- access control ----------------------------------------------------------


class AccessControl:
    """The lab's user.cfg + priv/ + RPCEnvironment permission engine, in one JSON file."""

    def __init__(self, state_file: Path, clock: Callable[[], float] = time.time) -> None:
        self._path = Path(state_file)
        self._clock = clock
        self._lock = threading.RLock()
        self._state = self._load()
        if not self._path.exists():
            self._save()  # keep the ticket keys stable across restarts

    # -- persistence ---------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        state = _read_json(self._path) or _new_state()
        for key, default in _new_state().items():
            state.setdefault(key, default)
        state["users"].setdefault(ROOT, _new_user())  # userconfig_force_defaults
        return state

    def reload(self) -> None:
        """Re-read the state file (after another process changed it)."""
        with self._lock:
            self._state = self._load()

    def _save(self) -> None:
        _write_private_json(self._path, self._state)

    def _now(self) -> int:
        return int(self._clock())

    # -- management ----------------------------------------------------------

    def add_user(
        self,
        userid: str,
        password: str | None = None,
        *,
        enable: bool = True,
        expire: int = 0,
        groups: Iterable[str] = (),
        comment: str = "",
    ) -> None:
        """Create a user (ValueError if it exists or a group is unknown)."""
        verify_username(userid)
        with self._lock:
            if userid in self._state["users"]:
                raise ValueError(f"user '{userid}' already exists")
            wanted = list(groups)
            for group in wanted:
                if group not in self._state["groups"]:
                    raise ValueError(f"no such group '{group}'")
            self._state["users"][userid] = _new_user(enable, expire, comment)
            if password is not None:
                self._state["users"][userid]["password"] = _hash_password(password)
            for group in wanted:
                self._state["groups"][group]["users"].append(userid)
            self._save()

    def set_password(self, userid: str, password: str) -> None:
        with self._lock:
            self._user(userid)["password"] = _hash_password(password)
            self._save()

    def add_group(self, groupid: str, comment: str = "") -> None:
        if not re.fullmatch(r"[A-Za-z0-9.\-_]+", groupid):
            raise ValueError(f"group name '{groupid}' contains invalid characters")
        with self._lock:
            if groupid in self._state["groups"]:
                raise ValueError(f"group '{groupid}' already exists")
            self._state["groups"][groupid] = {"users": [], "comment": comment}
            self._save()

    def add_role(self, roleid: str, privs: Iterable[str]) -> None:
        """Create a custom role; built-in role ids and unknown privileges are refused."""
        wanted = sorted(set(privs))
        for priv in wanted:
            if priv not in VALID_PRIVS:
                raise ValueError(f"invalid privilege '{priv}'")
        with self._lock:
            if roleid in BUILTIN_ROLES or roleid in self._state["roles"]:
                raise ValueError(f"role '{roleid}' already exists")
            self._state["roles"][roleid] = wanted
            self._save()

    def add_token(
        self, userid: str, name: str, *, privsep: bool = True, expire: int = 0, comment: str = ""
    ) -> str:
        """Create an API token and return its secret (shown once, as PVE does)."""
        if not split_tokenid(f"{userid}!{name}"):
            raise ValueError(f"value '{userid}!{name}' does not look like a valid token ID")
        secret = str(uuid.uuid4())
        with self._lock:
            tokens = self._user(userid)["tokens"]
            if name in tokens:
                raise ValueError(f"Token '{name}' for user '{userid}' already exists.")
            tokens[name] = {
                "privsep": int(privsep),
                "expire": int(expire),
                "comment": comment,
                "secret": _hash_secret(secret),
            }
            self._save()
        return secret

    def remove_token(self, userid: str, name: str) -> None:
        with self._lock:
            tokens = self._user(userid)["tokens"]
            if tokens.pop(name, None) is None:
                raise ValueError(f"no such token '{name}' for user '{userid}'")
            tokenid = f"{userid}!{name}"
            self._state["acl"] = [e for e in self._state["acl"] if e["ugid"] != tokenid]
            self._save()

    def set_acl(
        self,
        path: str,
        roleid: str,
        *,
        users: Iterable[str] = (),
        groups: Iterable[str] = (),
        tokens: Iterable[str] = (),
        propagate: bool = True,
        delete: bool = False,
    ) -> None:
        """PUT /access/acl: grant (or with delete=True revoke) roleid on path."""
        norm = normalize_path(path)
        if norm is None:
            raise ValueError(f"invalid ACL path '{path}'")
        targets = [("user", u) for u in users] + [("group", g) for g in groups]
        targets += [("token", t) for t in tokens]
        with self._lock:
            if roleid not in self._all_roles():
                raise ValueError(f"role '{roleid}' does not exist")
            for kind, ugid in targets:
                self._set_acl_entry(norm, kind, ugid, roleid, propagate=propagate, delete=delete)
            self._save()

    def _set_acl_entry(
        self, path: str, kind: str, ugid: str, roleid: str, *, propagate: bool, delete: bool
    ) -> None:
        self._check_acl_subject(kind, ugid)
        same = {"path": path, "type": kind, "ugid": ugid, "roleid": roleid}
        acl = [e for e in self._state["acl"] if {k: e[k] for k in same} != same]
        if not delete:
            acl.append({**same, "propagate": int(propagate)})
        self._state["acl"] = acl

    def _check_acl_subject(self, kind: str, ugid: str) -> None:
        if kind == "group" and ugid not in self._state["groups"]:
            raise ValueError(f"group '{ugid}' does not exist")
        if kind == "user" and ugid not in self._state["users"]:
            raise ValueError(f"user '{ugid}' does not exist")
        if kind == "token" and self._token(ugid) is None:
            raise ValueError(f"no such token '{ugid}'")

    def roles(self) -> dict[str, list[str]]:
        """Every role (built-in and custom) with its sorted privileges."""
        with self._lock:
            return {name: sorted(privs) for name, privs in sorted(self._all_roles().items())}

    def acl_entries(self) -> list[dict[str, Any]]:
        """ACL entries as GET /access/acl lists them (path, type, ugid, roleid, propagate)."""
        with self._lock:
            return [dict(e) for e in self._state["acl"]]

    # -- bootstrap -----------------------------------------------------------

    def ensure_bootstrap(self, secrets_file: Path) -> dict[str, dict[str, str]]:
        """Create the lab principals if missing and return their working credentials.

        Principals: root@pam (token root@pam!lab, privsep=0); auditor@pve and token
        auditor@pve!ro with PVEAuditor on /; ansible@pve and token ansible@pve!provision
        with PVEAuditor on / and /nodes, PVEVMAdmin on /vms, PVEDatastoreUser on
        /storage and PVESDNUser on /sdn/zones (what creating a container on a bridge
        needs); noalloc@pve and token noalloc@pve!test with the custom role
        LabVMConfigNoAllocate on / (audit and configure, no VM.Allocate).  Tokens other
        than root's are privilege-separated and get the same ACLs as their user.

        The state file keeps only hashes.  The plaintext lives in ``secrets_file``
        (JSON, mode 0600) - the lab's answer to "the password printed at install
        time" - and that file is the source of truth for these principals:

        * a principal that is missing is created, with its secret from the secrets
          file when one is recorded there (so secrets survive a lost state file),
          otherwise with a fresh random one;
        * a principal whose stored hash does not match the recorded secret (or whose
          secret is not recorded) gets a fresh one, so the answer always works;
        * otherwise nothing changes, so repeated runs return identical values.

        Returns ``{"passwords": {userid: password}, "tokens": {tokenid: secret}}``
        for every bootstrap principal - the same content the secrets file holds.
        """
        with self._lock:
            known = _read_json(Path(secrets_file)) or {}
            creds: dict[str, dict[str, str]] = {"passwords": {}, "tokens": {}}
            changed = self._ensure_noalloc_role()
            for userid in BOOTSTRAP_USERS:
                old = known.get("passwords", {}).get(userid)
                creds["passwords"][userid], dirty = self._ensure_password(userid, old)
                changed |= dirty
            for userid, name, privsep in BOOTSTRAP_TOKENS:
                tokenid = f"{userid}!{name}"
                old = known.get("tokens", {}).get(tokenid)
                creds["tokens"][tokenid], dirty = self._ensure_token(userid, name, privsep, old)
                changed |= dirty
            changed |= self._ensure_bootstrap_acls()
            if changed:
                self._save()
            if known != creds:
                _write_private_json(Path(secrets_file), creds)
            return creds

    def _ensure_noalloc_role(self) -> bool:
        if self._state["roles"].get(NOALLOC_ROLE) == sorted(NOALLOC_PRIVS):
            return False
        self._state["roles"][NOALLOC_ROLE] = sorted(NOALLOC_PRIVS)
        return True

    def _ensure_password(self, userid: str, known: str | None) -> tuple[str, bool]:
        users = self._state["users"]
        user = users.setdefault(userid, _new_user())
        if known and _check_password(known, user.get("password")):
            return known, False
        password = known if known and user.get("password") is None else secrets.token_urlsafe(18)
        user["password"] = _hash_password(password)
        return password, True

    def _ensure_token(self, userid: str, name: str, privsep: bool, known: str | None) -> tuple[str, bool]:
        tokens = self._state["users"][userid]["tokens"]
        token = tokens.get(name)
        if token and known and _check_secret(known, token.get("secret")):
            return known, False
        secret = known if known and token is None else str(uuid.uuid4())
        if token is None:
            token = tokens[name] = {
                "privsep": int(privsep),
                "expire": 0,
                "comment": "lab bootstrap",
            }
        token["secret"] = _hash_secret(secret)
        return secret, True

    def _ensure_bootstrap_acls(self) -> bool:
        tokens = {userid: f"{userid}!{name}" for userid, name, _ in BOOTSTRAP_TOKENS}
        changed = False
        for path, roleid, userid in BOOTSTRAP_ACLS:
            for kind, ugid in (("user", userid), ("token", tokens[userid])):
                entry = {"path": path, "type": kind, "ugid": ugid, "roleid": roleid, "propagate": 1}
                if entry not in self._state["acl"]:
                    self._state["acl"].append(entry)
                    changed = True
        return changed

    # -- authentication ------------------------------------------------------

    def login(self, username: str, password: str, realm: str | None = None) -> dict[str, Any]:
        """POST /access/ticket: the ticket answer, or AuthError(401, 'authentication failure')."""
        userid = f"{username}@{realm}" if realm else username  # PVE appends the realm as is
        with self._lock:
            try:
                self._check_user_enabled(userid)
                ok = _check_password(password, self._state["users"][userid].get("password"))
            except AuthError:
                ok = False
            if not ok:
                raise AuthError(401, "authentication failure")
            return {
                "username": userid,
                "ticket": self._assemble_ticket(userid),
                "CSRFPreventionToken": self._assemble_csrf(userid),
                "cap": self.compute_api_permission(userid),
            }

    def authenticate(self, method: str, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Principal:
        """pve-http-server + pve-manager auth_handler: ticket first, then API token.

        A ticket comes from the PVEAuthCookie cookie or an ``Authorization:
        PVEAuthCookie=...`` header; only without one is ``Authorization:
        PVEAPIToken=USER@REALM!TOKENID=SECRET`` looked at (``PVEAPIToken SECRET`` with a
        space works too; the secret is always after the last '=').  Every method but
        GET with a ticket needs a matching CSRFPreventionToken header; tokens never do.
        """
        auth_header = _header(headers, "Authorization")
        ticket = unquote(cookies.get(COOKIE_NAME) or "") or extract_auth_value(auth_header, COOKIE_NAME)
        with self._lock:
            if not ticket:
                api_token = extract_auth_value(auth_header, APITOKEN_NAME)
                if api_token:
                    return self._verify_token(api_token)
                raise AuthError(401, "No ticket")
            userid = self._verify_ticket(ticket)
            self._check_user_enabled(userid)
            if method.upper() != "GET":
                self._verify_csrf(userid, _header(headers, CSRF_HEADER))
            return Principal(userid=userid, tokenid=None, via_ticket=True)

    def _verify_token(self, api_token: str) -> Principal:
        """PVE::AccessControl::verify_token."""
        match = re.fullmatch(r"(.*)=(.*)", api_token)
        if not match:
            raise AuthError(401, "no tokenid specified")
        tokenid, value = match.groups()
        parts = split_tokenid(tokenid)
        if not parts:
            raise AuthError(
                401,
                f"'{tokenid}' is not a valid token ID - not able to split into user and token parts",
            )
        userid, name = parts
        self._check_user_enabled(userid)
        token = self._state["users"][userid]["tokens"].get(name)
        if token is None:
            raise AuthError(401, f"no such token '{name}' for user '{userid}'")
        if token.get("expire") and token["expire"] < self._now():
            raise AuthError(401, f"token '{name}' access expired")
        if not _check_secret(value, token.get("secret")):
            raise AuthError(401, "invalid token value!")
        return Principal(userid=userid, tokenid=tokenid, via_ticket=False)

    def _check_user_enabled(self, userid: str) -> None:
        """PVE::AccessControl::check_user_enabled, failures as 401."""
        try:
            verify_username(userid)
        except ValueError as err:
            raise AuthError(401, str(err)) from None
        user = self._state["users"].get(userid)
        if user is None:
            raise AuthError(401, f"no such user ('{userid}')")
        if not user.get("enable"):
            raise AuthError(401, f"user '{userid}' is disabled")
        if user.get("expire") and user["expire"] < self._now():
            raise AuthError(401, f"user '{userid}' access expired")

    def _key(self, name: str) -> bytes:
        return _unb64(self._state["keys"][name])

    def _assemble_ticket(self, userid: str) -> str:
        """PVE::Ticket::assemble_rsa_ticket layout, HMAC instead of RSA."""
        plain = f"{TICKET_PREFIX}:{_encode_text(userid)}:{self._now():08X}"
        signature = hmac.new(self._key("ticket"), plain.encode(), hashlib.sha256).digest()
        return f"{plain}::{_b64(signature)}"

    def _verify_ticket(self, ticket: str) -> str:
        """PVE::Ticket::verify_rsa_ticket with PVE's age window (-5 min, 2 h)."""
        invalid = AuthError(401, f"permission denied - invalid {TICKET_PREFIX} ticket")
        match = re.fullmatch(rf"({TICKET_PREFIX}:\S+)::([^:\s]+)", ticket)
        if not match:
            raise invalid
        plain, signature = match.groups()
        expected = hmac.new(self._key("ticket"), plain.encode(), hashlib.sha256).digest()
        try:
            given = base64.b64decode(signature, validate=True)
        except ValueError:
            raise invalid from None
        fields = re.fullmatch(rf"{TICKET_PREFIX}:(?:(\S+):)?([0-9A-F]{{8}})", plain)
        if not hmac.compare_digest(expected, given) or not fields or not fields.group(1):
            raise invalid
        age = self._now() - int(fields.group(2), 16)
        if not -AUTH_GRACEPERIOD < age < TICKET_LIFETIME:
            raise invalid
        return unquote(fields.group(1))

    def _csrf_digest(self, timestamp: str, userid: str) -> str:
        mac = hmac.new(self._key("csrf"), f"{timestamp}:{userid}".encode(), hashlib.sha256)
        return _b64(mac.digest()).rstrip("=")  # Digest::SHA::hmac_sha256_base64 has no padding

    def _assemble_csrf(self, userid: str) -> str:
        timestamp = f"{self._now():08X}"
        return f"{timestamp}:{self._csrf_digest(timestamp, userid)}"

    def _verify_csrf(self, userid: str, token: str | None) -> None:
        """PVE::Ticket::verify_csrf_prevention_token."""
        match = re.fullmatch(r"([A-Z0-9]{8}):(\S+)", token or "")
        if match and re.fullmatch(r"[0-9A-F]{8}", match.group(1)):
            timestamp, signature = match.groups()
            age = self._now() - int(timestamp, 16)
            fresh = -AUTH_GRACEPERIOD < age < TICKET_LIFETIME
            if fresh and hmac.compare_digest(self._csrf_digest(timestamp, userid), signature):
                return
        raise AuthError(401, "Permission denied - invalid csrf token")

    # -- privileges ----------------------------------------------------------

    def _user(self, userid: str) -> dict[str, Any]:
        user = self._state["users"].get(userid)
        if user is None:
            raise ValueError(f"no such user ('{userid}')")
        return user

    def _token(self, tokenid: str) -> dict[str, Any] | None:
        parts = split_tokenid(tokenid)
        if not parts:
            return None
        user = self._state["users"].get(parts[0])
        return user["tokens"].get(parts[1]) if user else None

    def _all_roles(self) -> dict[str, frozenset[str]]:
        custom = {name: frozenset(privs) for name, privs in self._state["roles"].items()}
        return {**custom, **BUILTIN_ROLES}

    def _acl_roles(self, ugid: str, path: str, final: bool) -> dict[str, int]:
        """Roles the ACL entries on exactly `path` give ugid (user/token first, then groups)."""
        entries = [e for e in self._state["acl"] if e["path"] == path and (final or e["propagate"])]
        own = {e["roleid"]: e["propagate"] for e in entries if e["type"] != "group" and e["ugid"] == ugid}
        if own:
            return own
        groups = self._state["groups"]
        return {
            e["roleid"]: e["propagate"]
            for e in entries
            if e["type"] == "group" and ugid in groups.get(e["ugid"], {}).get("users", ())
        }

    def _roles(self, ugid: str, path: str) -> dict[str, int]:
        """PVE::AccessControl::roles: the most specific ACL level wins; NoAccess trumps."""
        if ugid == ROOT:
            return {"Administrator": 1}
        parts = split_tokenid(ugid)
        if parts:
            token = self._token(ugid)
            if token is None:
                return {}
            if not token["privsep"]:
                return self._roles(parts[0], path)
        roles: dict[str, int] = {}
        prefixes = _path_prefixes(path)
        for depth, prefix in enumerate(prefixes):
            found = self._acl_roles(ugid, prefix, final=depth == len(prefixes) - 1)
            if found:
                roles = found  # overwrite what was inherited
        if "NoAccess" in roles:
            return {"NoAccess": roles["NoAccess"]}
        return roles

    def _permissions(self, authid: str, path: str) -> dict[str, int]:
        """RPCEnvironment::permissions: privilege -> propagate flag for authid on path."""
        all_roles = self._all_roles()
        if authid == ROOT:
            return dict.fromkeys(all_roles["Administrator"], 1)
        if normalize_path(path) != path:
            return {}  # PVE: an ACL check on no (valid) path finds nothing
        parts = split_tokenid(authid)
        owner_privs: dict[str, int] = {}
        if parts:
            token = self._token(authid)
            if token is None:
                return {}
            owner_privs = self._permissions(parts[0], path)
            if not token["privsep"]:
                return owner_privs
        elif not _USERID_RE.fullmatch(authid):
            return {}
        privs: dict[str, int] = {}
        for role, propagate in self._roles(authid, path).items():
            for priv in all_roles.get(role, ()):
                privs[priv] = privs.get(priv) or propagate
        if parts and parts[0] != ROOT:
            privs = {p: int(bool(owner_privs[p] and v)) for p, v in privs.items() if p in owner_privs}
        return privs

    def user_privs(self, principal: Principal, path: str) -> set[str]:
        """The privileges principal has on path (token privileges for token requests)."""
        norm = normalize_path(path)
        with self._lock:
            return set(self._permissions(principal.authid, norm)) if norm else set()

    def has_privs(self, principal: Principal, path: str, privs: list[str]) -> bool:
        """Whether principal has every one of privs on path."""
        return set(privs) <= self.user_privs(principal, path)

    def require(self, principal: Principal, path: str, privs: list[str], any_of: bool = False) -> None:
        """RPCEnvironment::check / check_any for checks PVE does in code; 403 when missing."""
        with self._lock:
            self._check_full(principal.authid, normalize_path(path) or path, privs, any_of, noerr=False)

    def compute_api_permission(self, authid: str) -> dict[str, dict[str, int]]:
        """RPCEnvironment::compute_api_permission: the 'cap' of the ticket answer."""
        with self._lock:
            cap: dict[str, dict[str, int]] = {key: {} for key in _CAP_PRIV_RE}
            paths = dict.fromkeys([*_CAP_PATHS, *(e["path"] for e in self._state["acl"])])
            for path in paths:
                match = re.match(r"/(\w+)", path)
                toplevel = match.group(1) if match else "dc"
                regex = _CAP_PRIV_RE.get(toplevel)
                if regex is None:
                    continue
                for priv in self._permissions(authid, path):
                    if regex.match(priv):
                        cap[toplevel][priv] = 1
            return cap

    def _check_privs_known(self, privs: Sequence[str]) -> None:
        for priv in privs:
            if priv not in VALID_PRIVS:
                raise ValueError(f"invalid privilege '{priv}'")  # verify_privname

    def _check(self, authid: str, path: str, privs: Sequence[str], noerr: bool) -> bool:
        """RPCEnvironment::check: every privilege."""
        self._check_privs_known(privs)
        have = self._permissions(authid, path)
        for priv in privs:
            if priv not in have:
                if noerr:
                    return False
                raise _perm_exc(f"{path}, {priv}")
        return True

    def _check_any(self, authid: str, path: str, privs: Sequence[str], noerr: bool) -> bool:
        """RPCEnvironment::check_any: at least one privilege."""
        self._check_privs_known(privs)
        have = self._permissions(authid, path)
        if any(priv in have for priv in privs):
            return True
        if noerr:
            return False
        raise _perm_exc(f"{path}, {'|'.join(privs)}")

    def _check_full(self, authid: str, path: str, privs: Sequence[str], any_of: bool, noerr: bool) -> bool:
        if any_of:
            return self._check_any(authid, path, privs, noerr)
        return self._check(authid, path, privs, noerr)

    # -- schema permissions ----------------------------------------------------

    def check(
        self,
        principal: Principal | None,
        permissions: Mapping[str, Any] | None,
        params: Mapping[str, object],
    ) -> None:
        """RPCEnvironment::check_api2_permissions for one method's schema permissions.

        params are the URI and body parameters ({vmid}, {node}, userid, groups, ...).
        root@pam (by ticket) passes everything; a method without permissions is
        root@pam only (its tokens included, as in PVE); ``user: world`` and ``user:
        all`` pass; ``check`` is evaluated.  Raises AuthError(403) with PVE's text.
        """
        authid = principal.authid if principal else None
        perm = permissions
        if perm is not None and perm.get("user") == "world":
            return  # PVE serves these without looking at credentials at all
        if authid is None:
            raise _perm_exc("user != null")
        if authid == ROOT:
            return
        if perm is None:
            raise _perm_exc("user != root@pam")
        if perm.get("user") == "all":
            return
        if perm.get("check"):
            with self._lock:
                self._exec(perm["check"], authid, params, noerr=False)
            return
        raise _perm_exc()

    def check_token_allowed(self, principal: Principal, rel_uri: str, allowtoken: object) -> None:
        """pve-manager rest_handler: methods without ``allowtoken`` refuse API tokens."""
        if principal.tokenid and not allowtoken:
            # PVE's text ends in a newline inside the parentheses; the reason phrase
            # is its first line, so the closing parenthesis never reaches the client.
            raise AuthError(
                403,
                f"Permission check failed (URI '{rel_uri}' not available with API token, need proper ticket.",
            )

    def _exec(self, check: object, authid: str, params: Mapping[str, object], noerr: bool) -> bool:
        """RPCEnvironment::exec_api2_perm_check."""
        if not isinstance(check, list) or not check or not isinstance(check[0], str):
            raise _perm_exc(f"unknown permission test {json.dumps(check)}")
        handler = {
            "and": self._exec_and,
            "or": self._exec_or,
            "perm": self._exec_perm,
            "userid-group": self._exec_userid_group,
            "userid-param": self._exec_userid_param,
            "perm-modify": self._exec_perm_modify,
        }.get(check[0])
        if handler is None:
            raise _perm_exc(f"unknown permission test '{check[0]}'")
        return handler(check, authid, params, noerr)

    def _exec_and(self, check: list[Any], authid: str, params: Mapping[str, object], noerr: bool) -> bool:
        # As in PVE, sub-tests of 'and' always raise: noerr is not passed down.
        for sub in check[1:]:
            self._exec(sub, authid, params, noerr=False)
        return True

    def _exec_or(self, check: list[Any], authid: str, params: Mapping[str, object], noerr: bool) -> bool:
        if any(self._exec(sub, authid, params, noerr=True) for sub in check[1:]):
            return True
        if noerr:
            return False
        raise _perm_exc()

    def _exec_perm(self, check: list[Any], authid: str, params: Mapping[str, object], noerr: bool) -> bool:
        if len(check) < 3 or not isinstance(check[1], str) or not isinstance(check[2], list):
            raise _perm_exc(f"unknown permission test {json.dumps(check)}")
        options = _options(check[3:])
        required = options.get("require_param")
        if required and params.get(str(required)) is None:
            if noerr:
                return False
            raise _perm_exc()
        path = template_replace(check[1], params)
        return self._check_full(
            authid, normalize_path(path) or path, check[2], bool(options.get("any")), noerr
        )

    def _user_exists(self, userid: object, noerr: bool) -> bool:
        """RPCEnvironment::check_user_exist."""
        try:
            name, _ = verify_username(userid)
        except ValueError as err:
            if noerr:
                return False
            raise AuthError(403, str(err)) from None
        if name in self._state["users"]:
            return True
        if noerr:
            return False
        raise AuthError(403, f"no such user ('{name}')")

    def _exec_userid_group(
        self, check: list[Any], authid: str, params: Mapping[str, object], noerr: bool
    ) -> bool:
        """'userid-group': privs on /access/groups, or on a group of the target user."""
        if len(check) < 2 or not isinstance(check[1], list):
            raise _perm_exc(f"unknown permission test {json.dumps(check)}")
        privs: list[str] = check[1]
        groups_param = _options(check[2:]).get("groups_param")
        userid = params.get("userid")
        check_existing = groups_param != "create"
        if check_existing and not self._user_exists(userid, noerr):
            return False
        if self._check_any(authid, "/access/groups", privs, noerr=True):
            return True
        groups = [
            g for g in self._state["groups"] if self._check_any(authid, f"/access/groups/{g}", privs, True)
        ]
        wanted = "|".join(privs)
        if groups_param:
            requested = split_list(params.get("groups"))
            if not requested:
                raise _perm_exc(f"/access/groups, {wanted}")
            for group in requested:
                if group not in groups:
                    raise _perm_exc(f"/access/groups/{group}, {wanted}")
        if check_existing:
            members = {u for g in groups for u in self._state["groups"][g]["users"]}
            if userid not in members:
                if noerr:
                    return False
                raise _perm_exc()
        return True

    def _exec_userid_param(
        self, check: list[Any], authid: str, params: Mapping[str, object], noerr: bool
    ) -> bool:
        """'userid-param': 'self' (the caller is {userid}) or Realm.AllocateUser on its realm."""
        try:
            userid, realm = verify_username(params.get("userid"))
        except ValueError as err:
            raise AuthError(403, str(err)) from None
        subtest = check[1] if len(check) > 1 else None
        if subtest == "self":
            if not self._user_exists(userid, noerr):
                return False
            if authid == userid:  # a token id never equals a user id, as in PVE
                return True
            if noerr:
                return False
            raise _perm_exc()
        if subtest == "Realm.AllocateUser":
            return self._check(authid, f"/access/realm/{realm}", ["Realm.AllocateUser"], noerr)
        raise _perm_exc(f"unknown userid-param test {json.dumps(subtest)}")

    def _exec_perm_modify(
        self, check: list[Any], authid: str, params: Mapping[str, object], noerr: bool
    ) -> bool:
        """'perm-modify': RPCEnvironment::check_perm_modify on the ACL path being changed."""
        if len(check) < 2 or not isinstance(check[1], str):
            raise _perm_exc(f"unknown permission test {json.dumps(check)}")
        path = normalize_path(template_replace(check[1], params))
        if path is None:
            # PVE returns 0 here, which its caller ignores; refuse instead.
            raise _perm_exc("invalid ACL path")
        privs = ["Permissions.Modify"]
        for prefix, priv in (
            ("/storage/", "Datastore.Allocate"),
            ("/vms/", "VM.Allocate"),
            ("/pool/", "Pool.Allocate"),
        ):
            if path.startswith(prefix) and len(path) > len(prefix):
                privs.append(priv)
        return self._check_any(authid, path, privs, noerr)
