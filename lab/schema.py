"""The Proxmox VE API schema: route matching and PVE-exact parameter validation.

The schema file is PVE's own API dump (pve-docs ``apidata.js``).  Validation
follows ``PVE::JSONSchema`` from pve-common (``check_prop``/``check_object``/
``check_type``/``check_format``/``parse_property_string``) and the request
handling of ``PVE::RESTHandler``/``PVE::APIServer``: the same order of checks,
the same first-error-per-parameter rule and the same message wording.  Named
formats are ports of the validators PVE registers with ``register_format``.

Deliberate fidelity notes (these are what PVE does, not what one might expect):

* Top-level booleans accept only ``0``/``1`` (or a real JSON boolean), as
  ``check_type`` does; ``true``/``yes``/``on`` are refused.  Inside property
  strings (``features=nesting=true``) ``parse_boolean`` applies.  Pass
  ``lenient_booleans=True`` to :meth:`ApiSchema.validate` to apply
  ``parse_boolean`` at the top level too.
* Schema patterns are anchored the way PVE anchors them, ``m/^$pattern$/``:
  the anchors are concatenated, not wrapped around a group, and ``$`` also
  matches before a final newline.
* Format errors carry PVE's ``invalid format - `` prefix; the trailing
  newline PVE's ``die`` messages end with is stripped.
"""

from __future__ import annotations

import functools
import json
import re
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "KNOWN_FORMATS",
    "PARAMETER_ERROR_MESSAGE",
    "SCHEMA_PATH",
    "UNCHECKED_FORMATS",
    "ApiSchema",
    "ParameterError",
    "Route",
    "compile_perl_regex",
    "format_property_string",
    "format_size",
    "parse_boolean",
    "parse_property_string",
    "parse_size",
    "perl_regex_to_python",
    "split_list",
]

SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "pve-api-schema.json"

PARAMETER_ERROR_MESSAGE = "Parameter verification failed."

# Named formats met in a schema or a property string that this module has no
# validator for.  Values of such formats are accepted (PVE would check them);
# the set makes the gap visible.  Filled by ApiSchema.load() and at validation.
UNCHECKED_FORMATS: set[str] = set()


class ParameterError(Exception):
    """400 'Parameter verification failed.' with per-parameter messages, as PVE answers."""

    status = 400

    def __init__(self, errors: Mapping[str, str], message: str = PARAMETER_ERROR_MESSAGE) -> None:
        super().__init__(message)
        self.message = message
        self.errors: dict[str, str] = dict(errors)

    def __str__(self) -> str:
        lines = [self.message, *(f"{key}: {msg}" for key, msg in self.errors.items())]
        return "\n".join(lines)


@dataclass(frozen=True)
class Route:
    """One matched API method: the template, the method and the path's parameters."""

    template: str
    method: str
    path_params: dict[str, str] = field(hash=False)
    info: dict[str, Any] = field(hash=False, repr=False)


# --------------------------------------------------------------------------
# Perl compatibility helpers
# --------------------------------------------------------------------------


def _perl_true(value: object) -> bool:
    """Perl truthiness of a scalar: undef, '', '0' and 0 are false."""
    if isinstance(value, list | dict):
        return True
    return value not in (None, "", "0", 0)


def _perl_num(value: object) -> str:
    """How Perl prints a number taken from the schema (16, 0.1, '0')."""
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, float):
        return f"{value:.15g}"
    return str(value)


def _perl_split(pattern: str, text: str) -> list[str]:
    """Perl's split(/re/, text): trailing empty fields are dropped."""
    if text == "":
        return []
    parts = re.split(pattern, text)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def split_list(text: str | None) -> list[str]:
    """PVE::Tools::split_list: NUL-separated, else split on commas, semicolons and blanks."""
    text = text or ""
    if "\0" in text:
        return _perl_split("\0", text)
    text = re.sub(r"[,;]", " ", text).lstrip()
    return _perl_split(r"\s+", text)


def parse_boolean(value: str) -> int | None:
    """PVE::JSONSchema::parse_boolean: 1/on/yes/true -> 1, 0/off/no/false -> 0."""
    if re.search(r"^(1|on|yes|true)$", value, re.IGNORECASE):
        return 1
    if re.search(r"^(0|off|no|false)$", value, re.IGNORECASE):
        return 0
    return None


_SIZE_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(value: str) -> int | None:
    """PVE::JSONSchema::parse_size: '8G' -> bytes, None when not a size."""
    match = re.search(r"^(\d+(\.\d+)?)([KMGT])?$", value)
    if not match:
        return None
    return int(float(match[1]) * _SIZE_UNITS.get(match[3] or "", 1))


def format_size(size: int) -> str:
    """PVE::JSONSchema::format_size: bytes -> the largest exact unit ('8G')."""
    size = int(size)
    for unit in ("", "K", "M", "G"):
        if size % 1024:
            return f"{size}{unit}"
        size //= 1024
    return f"{size}T"


# --------------------------------------------------------------------------
# Perl regular expressions
# --------------------------------------------------------------------------

_FLAG_GROUP_RE = re.compile(r"\(\?\^([a-zA-Z]*):")
_POSIX_CLASS_RE = re.compile(r"\[:(\w+):\]")
_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "lower": "a-z",
    "upper": "A-Z",
    "space": r"\s",
    "xdigit": "0-9A-Fa-f",
    "word": r"\w",
    "blank": r" \t",
    "punct": r"!-/:-@\[-`{-~",
}
_PERL_ESCAPES_OUTSIDE = {
    "z": r"\Z",
    "Z": r"(?=\n?\Z)",
    "h": r"[ \t]",
    "H": r"[^ \t]",
    "e": r"\x1b",
    "v": r"[\n\x0b\f\r\x85\u2028\u2029]",
    "V": r"[^\n\x0b\f\r\x85\u2028\u2029]",
}
_PERL_ESCAPES_INSIDE = {"h": r" \t", "e": r"\x1b"}
_PYTHON_LETTER_ESCAPES = set("aAbBdDfnrsStuUwWxN")


def _flag_group(flags: str) -> str:
    """Perl '(?^flags:' resets to the defaults, then sets flags."""
    on = "".join(flag for flag in "aimsx" if flag in flags)
    off = "".join(flag for flag in "imsx" if flag not in on)
    return f"(?{on}-{off}:" if off else f"(?{on}:"


def _translate_escape(char: str, in_class: bool) -> str:
    table = _PERL_ESCAPES_INSIDE if in_class else _PERL_ESCAPES_OUTSIDE
    if char in table:
        return table[char]
    if char.isascii() and char.isalpha() and char not in _PYTHON_LETTER_ESCAPES:
        raise ValueError(f"unsupported Perl regex escape '\\{char}'")
    return "\\" + char


def _open_class(pattern: str, i: int, out: list[str]) -> int:
    """Copy a character class opening ('[', '[^', a leading ']'), return the next index."""
    out.append("[")
    i += 1
    if pattern.startswith("^", i):
        out.append("^")
        i += 1
    if pattern.startswith("]", i):
        out.append(r"\]")
        i += 1
    return i


def perl_regex_to_python(pattern: str) -> str:
    """Translate a Perl regex (as PVE's schema prints them) to Python ``re`` syntax.

    Handles ``(?^:...)``/``(?^i:...)`` flag groups, POSIX bracket classes and
    the Perl-only escapes ``\\z``, ``\\Z``, ``\\h``, ``\\e``.  The result is not
    anchored.
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(_translate_escape(pattern[i + 1], in_class))
            i += 2
        elif in_class:
            posix = _POSIX_CLASS_RE.match(pattern, i)
            if posix and posix[1] in _POSIX_CLASSES:
                out.append(_POSIX_CLASSES[posix[1]])
                i = posix.end()
                continue
            in_class = char != "]"
            out.append(r"\[" if char == "[" else char)
            i += 1
        elif char == "[":
            i = _open_class(pattern, i, out)
            in_class = True
        elif flags := _FLAG_GROUP_RE.match(pattern, i):
            out.append(_flag_group(flags[1]))
            i = flags.end()
        else:
            out.append(char)
            i += 1
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def compile_perl_regex(pattern: str) -> re.Pattern[str]:
    """Compile a schema pattern anchored as PVE does it: ``m/^$pattern$/``.

    Use ``.search()`` on the result: the anchors are concatenated, so with a
    top-level alternation (``a|b``) each anchor binds to one branch, as in Perl.
    """
    return re.compile("^" + perl_regex_to_python(pattern) + "$")


def _perl_match(pattern: str, value: str) -> bool:
    return compile_perl_regex(pattern).search(value) is not None


@functools.lru_cache(maxsize=512)
def _anchored(regex: str, flags: int = 0) -> re.Pattern[str]:
    """A Python regex anchored like Perl's m/^(?:...)$/."""
    return re.compile(f"^(?:{regex})$", flags)


def _full(regex: str, value: str, flags: int = 0) -> re.Match[str] | None:
    return _anchored(regex, flags).search(value)


# --------------------------------------------------------------------------
# Regular expressions PVE builds its validators from (PVE::Tools, Auth::Plugin)
# --------------------------------------------------------------------------

_IPV4_OCTET = r"(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])"
IPV4_RE = rf"(?:(?:{_IPV4_OCTET}\.){{3}}{_IPV4_OCTET})"
_H16 = r"(?:[0-9a-fA-F]{1,4})"
_LS32 = rf"(?:(?:{IPV4_RE}|{_H16}:{_H16}))"
IPV6_RE = (
    "(?:"
    f"(?:(?:(?:{_H16}:){{6}}){_LS32})|"
    f"(?:(?:::(?:{_H16}:){{5}}){_LS32})|"
    f"(?:(?:(?:{_H16})?::(?:{_H16}:){{4}}){_LS32})|"
    f"(?:(?:(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}){_LS32})|"
    f"(?:(?:(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}){_LS32})|"
    f"(?:(?:(?:(?:{_H16}:){{0,3}}{_H16})?::(?:{_H16}:){{1}}){_LS32})|"
    f"(?:(?:(?:(?:{_H16}:){{0,4}}{_H16})?::){_LS32})|"
    f"(?:(?:(?:(?:{_H16}:){{0,5}}{_H16})?::){_H16})|"
    f"(?:(?:(?:(?:{_H16}:){{0,6}}{_H16})?::))"
    ")"
)
IP_RE = f"(?:{IPV4_RE}|{IPV6_RE})"
_EMAIL_USER_RE = r"[\w\+\-\~]+(\.[\w\+\-\~]+)*"
_EMAIL_RE = _EMAIL_USER_RE + r"@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*"
_DNS_LABEL = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)"
_DNS_NAME_RE = rf"({_DNS_LABEL}\.)*{_DNS_LABEL}"
_CONFIGID_RE = r"(?i:[a-z][a-z0-9_-]+)"
_ID_RE = r"(?i:[a-z][a-z0-9\-\_\.]*[a-z0-9])"
_REALM_RE = r"[A-Za-z][A-Za-z0-9\.\-_]+"
_USER_RE = r"[^\s:/]+"
_TOKEN_RE = rf"(({_USER_RE})@({_REALM_RE}))!({_REALM_RE})"
_TAG_RE = r"(?i:[a-z0-9_][a-z0-9_\-\+\.]*)"
_ACCESS_NAME_RE = r"[A-Za-z0-9\.\-_]+"
_IFACE_RE = r"(?i:[a-z][a-z0-9_]{1,20}([:\.]\d+)?)"
_HOST_PORT_RES = (
    rf"({IPV4_RE}|[a-zA-Z0-9\-.]+)(?::(\d+))?",
    rf"\[({IPV6_RE}|{IPV4_RE}|[a-zA-Z0-9\-.]+)\](?::(\d+))?",
    rf"({IPV6_RE})(?:\.(\d+))?",
)
_IPV4_MASKS = frozenset(
    ".".join(str((((1 << 32) - (1 << (32 - bits))) >> shift) & 255) for shift in (24, 16, 8, 0))
    for bits in range(33)
)
# PVE::Storage::DirPlugin content types; 'dir' supports every content type.
_STORAGE_CONTENT_TYPES = frozenset(
    {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none", "import"}
)
_ZONE_TAB = Path("/usr/share/zoneinfo/zone.tab")


# --------------------------------------------------------------------------
# Named formats (PVE's register_format validators)
# --------------------------------------------------------------------------


class _FormatError(Exception):
    """A PVE format validator died with this message."""


def _fail(message: str) -> NoReturn:
    raise _FormatError(message)


@dataclass(frozen=True)
class _Context:
    """Schema-derived data some validators need (the privilege names for pve-priv)."""

    privileges: frozenset[str] | None = None


FormatCheck = Callable[[str, _Context], None]
_FORMATS: dict[str, FormatCheck] = {}


def _register(name: str) -> Callable[[FormatCheck], FormatCheck]:
    def decorate(check: FormatCheck) -> FormatCheck:
        _FORMATS[name] = check
        return check

    return decorate


def _regex_format(regex: str, message: str, flags: int = 0) -> FormatCheck:
    def check(value: str, _ctx: _Context) -> None:
        if not _full(regex, value, flags):
            _fail(message.format(value=value))

    return check


_REGEX_FORMATS: dict[str, tuple[str, str]] = {
    "urlencoded": (r"[-%a-zA-Z0-9_.!~*'()]*", "invalid urlencoded string: {value}"),
    "pve-configid": (_CONFIGID_RE, "invalid configuration ID '{value}'"),
    "pve-storage-id": (_ID_RE, "storage ID '{value}' contains illegal characters"),
    "acme-plugin-id": (_ID_RE, "ACME plugin ID '{value}' contains illegal characters"),
    "pve-bridge-id": (r"[-_.\w\d]+", "invalid bridge ID '{value}'"),
    "pve-vmid": (r"[1-9][0-9]{2,8}", "value does not look like a valid VM ID"),
    "pve-node": (r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)", "value does not look like a valid node name"),
    "mac-addr": (
        r"(?i:[a-f0-9][02468ace](?::[a-f0-9]{2}){5})",
        "value does not look like a valid unicast MAC address",
    ),
    "ipv4": (IPV4_RE, "value does not look like a valid IPv4 address"),
    "ipv6": (IPV6_RE, "value does not look like a valid IPv6 address"),
    "ip": (IP_RE, "value does not look like a valid IP address"),
    "ldap-simple-attr": (r"[a-zA-Z0-9]+", "value '{value}' does not look like a simple ldap attribute name"),
    "email": (_EMAIL_RE, "value does not look like a valid email address"),
    "email-or-username": (
        f"(?:{_EMAIL_RE})|(?:{_EMAIL_USER_RE})",
        "value does not look like a valid email address or user name",
    ),
    "dns-name": (_DNS_NAME_RE, "value does not look like a valid DNS name"),
    "pve-iface": (_IFACE_RE, "invalid network interface name '{value}'"),
    "pve-tag": (_TAG_RE, "invalid characters in tag"),
    "pve-task-status-type": (r"(?i:ok|error|warning|unknown)", "invalid status '{value}'"),
    "pve-tfa-secret": (
        r"v2-0x[0-9a-fA-F]{16,128}|v2-[A-Z2-7=]{16,128}|[A-Z2-7=]{16}|[A-Fa-f0-9]{40}",
        "unable to decode TFA secret",
    ),
    "pve-realm": (_REALM_RE, "value does not look like a valid realm"),
    "pve-groupid": (_ACCESS_NAME_RE, "group name '{value}' contains invalid characters"),
    "pve-roleid": (_ACCESS_NAME_RE, "role name '{value}' contains invalid characters"),
    "pve-poolid": (_ACCESS_NAME_RE, "pool name '{value}' contains invalid characters"),
    "pve-tokenid": (_TOKEN_RE, "value '{value}' does not look like a valid token ID"),
    "pve-volume-id": (r"(?i:[a-z][a-z0-9\-\_\.]*[a-z0-9]:.+)", "unable to parse volume ID '{value}'"),
    "pve-storage-vgname": (
        r"(?i:[a-z0-9][a-z0-9\-\_\.]*[a-z0-9])",
        "lvm name '{value}' contains illegal characters",
    ),
    "pve-storage-options": (r"\S+", "invalid options '{value}'"),
    "pve-storage-format": (r"raw|qcow2|vmdk|subvol", "invalid format '{value}'"),
    "pve-day-of-week": (r"mon|tue|wed|thu|fri|sat|sun", "invalid day '{value}'"),
}
for _name, (_regex, _message) in _REGEX_FORMATS.items():
    _register(_name)(_regex_format(_regex, _message))


@_register("string")
def _check_string(_value: str, _ctx: _Context) -> None:
    """'string' exists so that 'string-list' is a format."""


def _valid(name: str, value: str) -> bool:
    try:
        _FORMATS[name](value, _Context())
    except _FormatError:
        return False
    return True


@_register("ipv4mask")
def _check_ipv4mask(value: str, _ctx: _Context) -> None:
    if value not in _IPV4_MASKS:
        _fail("value does not look like a valid IP netmask")


def _cidr_ok(value: str, ip_regex: str, max_bits: int) -> bool:
    match = _full(rf"{ip_regex}(?:/(?P<bits>\d+))", value)
    return bool(match) and 7 < int(match["bits"]) <= max_bits


@_register("CIDRv4")
def _check_cidrv4(value: str, _ctx: _Context) -> None:
    if not _cidr_ok(value, IPV4_RE, 32):
        _fail("value does not look like a valid IPv4 CIDR network")


@_register("CIDRv6")
def _check_cidrv6(value: str, _ctx: _Context) -> None:
    if not _cidr_ok(value, IPV6_RE, 128):
        _fail("value does not look like a valid IPv6 CIDR network")


@_register("CIDR")
def _check_cidr(value: str, _ctx: _Context) -> None:
    if not (_cidr_ok(value, IPV4_RE, 32) or _cidr_ok(value, IPV6_RE, 128)):
        _fail("value does not look like a valid CIDR network")


@_register("pve-ipv4-config")
def _check_ipv4_config(value: str, _ctx: _Context) -> None:
    if not (_full("dhcp|manual", value) or _cidr_ok(value, IPV4_RE, 32)):
        _fail("value does not look like a valid ipv4 network configuration")


@_register("pve-ipv6-config")
def _check_ipv6_config(value: str, _ctx: _Context) -> None:
    if not (_full("auto|dhcp|manual", value) or _cidr_ok(value, IPV6_RE, 128)):
        _fail("value does not look like a valid ipv6 network configuration")


@_register("address")
def _check_address(value: str, _ctx: _Context) -> None:
    if not (_valid("ip", value) or _valid("dns-name", value)):
        _fail(f"value does not look like a valid address: {value}")


@_register("pve-storage-server")
def _check_storage_server(value: str, _ctx: _Context) -> None:
    if not (_valid("ip", value) or _valid("dns-name", value)):
        _fail("value does not look like a valid server name or IP address")


@_register("pve-storage-portal-dns")
def _check_portal_dns(value: str, _ctx: _Context) -> None:
    if not any(_full(regex, value) for regex in _HOST_PORT_RES):
        _fail("value does not look like a valid portal address")


@_register("pve-storage-path")
def _check_storage_path(value: str, _ctx: _Context) -> None:
    if not re.match(r"/[^;\(\)]+", value):
        _fail("value does not look like a valid absolute path")


@_register("pve-storage-content")
def _check_storage_content(value: str, _ctx: _Context) -> None:
    if value not in _STORAGE_CONTENT_TYPES:
        _fail(f"invalid content type '{value}'")


@_register("pve-dir-override")
def _check_dir_override(value: str, ctx: _Context) -> None:
    # PVE's '([^.]*(?:\.?[^.]+)+)' rewritten without nested quantifiers
    # (same language: isolated dots, not at the end, one non-dot at least).
    match = _full(r"([a-z]+)=(\.?[^.]+(?:\.[^.]+)*)", value)
    if match:
        _check_storage_content(match[1], ctx)
        path = match[2]
        if len(path) < 1023 and all(len(part) < 255 for part in _perl_split("/", path)):
            return
    _fail(f"invalid override '{value}'")


@_register("disk-size")
def _check_disk_size(value: str, _ctx: _Context) -> None:
    if parse_size(value) is None:
        _fail(f"value does not look like a valid disk size: {value}")


def _parse_startup_order(value: str) -> dict[str, str] | None:
    """PVE::JSONSchema::pve_parse_startup_order."""
    if not _perl_true(value):
        return None
    result: dict[str, str] = {}
    for part in _perl_split(",", value):
        if re.search(r"^\s*$", part):
            continue
        if match := re.search(r"^(order=)?(\d+)$", part):
            result["order"] = match[2]
        elif match := re.search(r"^(up|down)=(\d+)$", part):
            result[match[1]] = match[2]
        else:
            return None
    return result


@_register("pve-startup-order")
def _check_startup_order(value: str, _ctx: _Context) -> None:
    if _parse_startup_order(value) is None:
        _fail("unable to parse startup options")


def _check_vlan_tag(tag: str) -> None:
    if not 2 <= int(tag) <= 4094:
        _fail(f"invalid VLAN tag '{tag}'")


@_register("pve-vlan-id-or-range")
def _check_vlan_id_or_range(value: str, _ctx: _Context) -> None:
    match = _full(r"(\d+)(?:-(\d+))?", value)
    if not match:
        _fail(f"invalid VLAN configuration '{value}'")
    start, end = match[1], match[2]
    _check_vlan_tag(start)
    if _perl_true(end):
        _check_vlan_tag(end)
        if int(start) >= int(end):
            _fail(f"VLAN range must go from lower to higher tag '{value}'")


@functools.cache
def _time_zones() -> frozenset[str]:
    """The zones PVE accepts: the third column of zone.tab (tzdata's list if absent)."""
    try:
        lines = _ZONE_TAB.read_text(encoding="utf-8").splitlines()
    except OSError:
        return frozenset(zoneinfo.available_timezones())
    fields = (line.split("\t") for line in lines if not re.match(r"\s*#", line))
    return frozenset(parts[2] for parts in fields if len(parts) > 2)


@_register("timezone")
def _check_timezone(value: str, _ctx: _Context) -> None:
    if value != "UTC" and value not in _time_zones():
        _fail(f"invalid time zone '{value}'")


@_register("pve-ct-timezone")
def _check_ct_timezone(value: str, ctx: _Context) -> None:
    if value != "host":
        _check_timezone(value, ctx)


@_register("pve-userid")
def _check_userid(value: str, _ctx: _Context) -> None:
    name = value if _perl_true(value) else ""
    if len(name) < 3:
        _fail(f"user name '{name}' is too short")
    if len(name) > 64:
        _fail(f"user name '{name}' is too long ({len(name)} > 64)")
    if not _full(rf"({_USER_RE})@({_REALM_RE})", name):
        _fail(f"value '{name}' does not look like a valid user name")


@_register("pve-priv")
def _check_privilege(value: str, ctx: _Context) -> None:
    if ctx.privileges is None:
        UNCHECKED_FORMATS.add("pve-priv")
    elif value not in ctx.privileges:
        _fail(f"invalid privilege '{value}'")


@_register("pve-lxc-mp-string")
def _check_lxc_mp_string(value: str, _ctx: _Context) -> None:
    if re.search(r"/\.\.?/", value) or re.search(r"/\.\.?$", value) or re.search(r"^\.\./", value):
        _fail(f"{value} contains illegal character sequences")


@_register("pve-lxc-dev-string")
def _check_lxc_dev_string(value: str, _ctx: _Context) -> None:
    if re.search(r"/\.\.?(?:/|$)", value) or not re.search(r"^/dev/", value):
        _fail(f"{value} is not a valid device path")


@_register("lxc-ip-with-ll-iface")
def _check_ip_with_ll_iface(value: str, ctx: _Context) -> None:
    match = _full(r"(fe80:[^%]+)%(.*)", value)
    if match and _valid("ip", match[1]) and _valid("pve-iface", match[2]):
        return
    _FORMATS["ip"](value, ctx)


def _parse_idmap(text: str, id_format: str, ctx: _Context) -> None:
    """PVE::JSONSchema::parse_idmap, for storage-pair and bridge-pair."""
    entries: dict[str, str] = {}
    identity, default = False, None
    for entry in split_list(text):
        if entry == "1":
            identity = True
        elif match := _full(r"([^:]+):([^:]+)", entry):
            _check_id_entry(entry, id_format, (match[1], match[2]), ctx)
            if match[1] in entries:
                _fail(f"duplicate mapping for source '{match[1]}'")
            entries[match[1]] = match[2]
        else:
            _check_id_entry(entry, id_format, (entry,), ctx)
            if default is not None:
                _fail("default target ID can only be provided once")
            default = entry
    if identity and (default or entries):
        _fail("identity mapping cannot be combined with other mappings")


def _check_id_entry(entry: str, id_format: str, ids: tuple[str, ...], ctx: _Context) -> None:
    try:
        for one in ids:
            _FORMATS[id_format](one, ctx)
    except _FormatError as err:
        _fail(f"entry '{entry}' contains invalid ID - {err}")


@_register("storage-pair")
def _check_storage_pair(value: str, ctx: _Context) -> None:
    _parse_idmap(value, "pve-storage-id", ctx)


@_register("bridge-pair")
def _check_bridge_pair(value: str, ctx: _Context) -> None:
    _parse_idmap(value, "pve-bridge-id", ctx)


KNOWN_FORMATS: frozenset[str] = frozenset(_FORMATS)

_FORMAT_NAME_RE = re.compile(r"(.*?)(?:-(list|alist|opt))?")


def _split_format_name(name: str) -> tuple[str, str]:
    """'pve-vmid-list' -> ('pve-vmid', 'list'); 'email-opt' -> ('email', 'opt')."""
    match = _FORMAT_NAME_RE.fullmatch(name)
    if match is None:  # cannot happen: the pattern matches every string
        return name, ""
    return match[1], match[2] or ""


# --------------------------------------------------------------------------
# Indexed properties (net[n], mp[n], ...)
# --------------------------------------------------------------------------

_INDEXED_NAME_RE = re.compile(r"([a-z]+)(0|[1-9][0-9]*)")
# Counts PVE defines in code, for families whose description does not say:
# LXC/QEMU $MAX_NETS (net, ipconfig), QEMU $MAX_NUMA, $MAX_HOSTPCI_DEVICES,
# $MAX_VIRTIOFS and PVE::NodeConfig's ACME domain count.
_INDEX_COUNTS = {"net": 32, "ipconfig": 32, "numa": 8, "hostpci": 16, "virtiofs": 10, "acmedomain": 5}
# Mount points, unused disks and devices: $MAX_MOUNT_POINTS etc. are 256.
_DEFAULT_INDEX_COUNT = 256


def _index_limit(family: str, schema: Mapping[str, Any]) -> int:
    """The highest index PVE defines for ``family[n]``."""
    text = f"{schema.get('description', '')} {schema.get('verbose_description', '')}"
    hints = [int(m) for m in re.findall(r"\bn is \d+ to (\d+)", text)]
    hints += [int(m) for m in re.findall(r"\bn can be up to (\d+)", text)]
    hints += [int(m) for m in re.findall(rf"\b{re.escape(family)}\d+\.\.{re.escape(family)}(\d+)", text)]
    if hints:
        return max(hints)
    return _INDEX_COUNTS.get(family, _DEFAULT_INDEX_COUNT) - 1


def _lookup_property(properties: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The schema of ``name``; 'net0' resolves through 'net[n]' when in range."""
    if name in properties and not name.endswith("[n]"):
        return properties[name]
    match = _INDEXED_NAME_RE.fullmatch(name)
    if not match:
        return None
    schema = properties.get(f"{match[1]}[n]")
    if schema is None or int(match[2]) > _index_limit(match[1], schema):
        return None
    return schema


# --------------------------------------------------------------------------
# The validator (PVE::JSONSchema::check_prop and friends)
# --------------------------------------------------------------------------

_INVALID = object()  # a check failed
_UNSET = object()  # no oneOf alternative applied
_IS_INTEGER = re.compile(r"^[+-]?\d+$")
_IS_NUMBER = re.compile(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$")
_DUPLICATE_URI_PARAM = "duplicate parameter (already defined in URI) with conflicting values!"
_NOT_DEFINED = "property is not defined in schema and the schema does not allow additional properties"


def _perl_ref(value: object) -> str:
    """What Perl's ref() would say about a decoded request value."""
    if isinstance(value, bool):
        return "JSON::PP::Boolean"
    if isinstance(value, list):
        return "ARRAY"
    if isinstance(value, dict):
        return "HASH"
    return ""


def _scalar(value: object) -> object:
    """Numbers from a JSON body become the strings Perl would see."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _perl_num(value)
    return value


def _decimal(value: object) -> Decimal | None:
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Validator:
    """Collects PVE-style errors while checking one instance against a schema."""

    def __init__(self, ctx: _Context, *, lenient_booleans: bool = False) -> None:
        self.ctx = ctx
        self.lenient_booleans = lenient_booleans
        self.errors: dict[str, str] = {}

    def add_error(self, path: str, message: str) -> None:
        path = path or "_root"
        message = message.rstrip("\n")
        # PVE joins with a single-quoted '\n': a literal backslash-n.
        self.errors[path] = f"{self.errors[path]}\\n{message}" if path in self.errors else message

    # -- objects -----------------------------------------------------------

    def check_object(
        self, path: str, schema: Mapping[str, Any], value: Mapping[str, Any], additional: object
    ) -> dict[str, object]:
        result: dict[str, object] = {}
        for key, sub in schema.items():
            if key.endswith("[n]"):
                continue
            checked = self.check_prop(value.get(key), sub, _join(path, key), self._instance_type(sub, value))
            if key in value and checked is not _INVALID:
                result[key] = checked
        for key in value:
            self._check_extra_key(path, schema, value, key, additional=additional, result=result)
        return result

    def _check_extra_key(
        self,
        path: str,
        schema: Mapping[str, Any],
        value: Mapping[str, Any],
        key: str,
        *,
        additional: object,
        result: dict[str, object],
    ) -> None:
        """The second half of PVE's check_object: indexed keys, requires, oneOf, extras."""
        new_path, item = _join(path, key), value[key]
        sub = _lookup_property(schema, key)
        if sub is not None:
            if key not in schema:
                checked = self.check_prop(item, sub, new_path)
                if checked is not _INVALID:
                    result[key] = checked
            self._check_requires(path, value, new_path, sub)
            if self._one_of_matches(sub, value):
                return
        if additional is not None and not _perl_true(additional):
            self.add_error(new_path, _NOT_DEFINED)
        elif item is not None:
            result.setdefault(key, item)

    @staticmethod
    def _instance_type(sub: Mapping[str, Any], value: Mapping[str, Any]) -> object:
        type_property = sub.get("type-property")
        return value.get(type_property) if type_property else None

    def _check_requires(
        self, path: str, value: Mapping[str, Any], new_path: str, sub: Mapping[str, Any]
    ) -> None:
        requires = sub.get("requires")
        if isinstance(requires, str) and value.get(requires) is None:
            self.add_error(_join(path, requires), f"missing property - '{new_path}' requires this property")
        elif isinstance(requires, dict):
            self.check_prop(dict(value), requires, path)

    def _one_of_matches(self, sub: Mapping[str, Any], value: Mapping[str, Any]) -> bool:
        if "oneOf" not in sub:
            return True
        instance_type = self._instance_type(sub, value)
        return any(
            "instance-types" not in alt or instance_type in alt["instance-types"] for alt in sub["oneOf"]
        )

    # -- properties --------------------------------------------------------

    def check_prop(
        self, value: object, schema: Mapping[str, Any], path: str, instance_type: object = None
    ) -> object:
        value = _scalar(value)
        optional_for_type, alternative = False, _UNSET
        if "oneOf" in schema:
            optional_for_type, alternative = self._check_one_of(value, schema, path, instance_type)
        if value is None:
            self._check_missing(schema, path, optional_for_type)
            return _INVALID
        checked = self._check_value(value, schema, path)
        if checked is _INVALID or alternative is _UNSET:
            return checked
        return alternative

    def _check_missing(self, schema: Mapping[str, Any], path: str, optional_for_type: bool) -> None:
        if schema.get("type") == "null":
            return
        if optional_for_type or any(_perl_true(schema.get(key)) for key in ("optional", "alias", "group")):
            return
        self.add_error(path, "property is missing and it is not optional")

    def _check_one_of(
        self, value: object, schema: Mapping[str, Any], path: str, instance_type: object
    ) -> tuple[bool, object]:
        """PVE's oneOf: the variant named by the type-property, else any variant."""
        alternatives = schema["oneOf"]
        if "type-property" not in schema:
            for alt in alternatives:
                trial = _Validator(self.ctx, lenient_booleans=self.lenient_booleans)
                checked = trial.check_prop(value, alt, path)
                if not trial.errors:
                    return False, checked
            return False, self.check_prop(value, alternatives[0], path) if alternatives else _UNSET
        if not instance_type:
            return True, _UNSET
        for alt in alternatives:
            if instance_type in alt.get("instance-types", []):
                return _perl_true(alt.get("optional")), self.check_prop(value, alt, path)
        return True, _UNSET

    def _check_value(self, value: object, schema: Mapping[str, Any], path: str) -> object:
        type_ = schema.get("type")
        if not self._check_type(path, type_, value):
            return _INVALID
        if isinstance(value, list):
            return self._check_items(value, schema, path)
        if isinstance(value, dict):
            if "properties" in schema or "additionalProperties" in schema:
                return self.check_object(
                    path, schema.get("properties") or {}, value, schema.get("additionalProperties")
                )
            return value
        if isinstance(value, bool):
            return int(value)
        if not self._check_scalar(str(value), schema, path):
            return _INVALID
        return self._coerce(type_, str(value))

    def _check_items(self, value: list[object], schema: Mapping[str, Any], path: str) -> object:
        items = schema.get("items")
        if not isinstance(items, dict):
            return list(value)
        checked = [self.check_prop(item, items, f"{path}[{index}]") for index, item in enumerate(value)]
        return _INVALID if any(item is _INVALID for item in checked) else checked

    def _check_type(self, path: str, type_: object, value: object) -> bool:
        if not type_ or type_ == "any" or isinstance(type_, dict):
            return True
        if isinstance(type_, list):
            trial = _Validator(self.ctx, lenient_booleans=self.lenient_booleans)
            if any(trial._check_type(path, one, value) for one in type_):
                return True
            return self._type_error(path, f"type check ('{'|'.join(map(str, type_))}') failed")
        ref = _perl_ref(value)
        if type_ == "null":
            return self._type_error(path, "type check ('null') failed - value is not null")
        if type_ in ("array", "object"):
            if ref == ("ARRAY" if type_ == "array" else "HASH"):
                return True
            return self._type_error(path, f"type check ('{type_}') failed")
        if ref:
            if type_ == "boolean" and ref == "JSON::PP::Boolean":
                return True
            return self._type_error(path, f"type check ('{type_}') failed - got {ref}")
        if self._scalar_type_ok(str(type_), str(value)):
            return True
        return self._type_error(path, f"type check ('{type_}') failed - got '{value}'")

    def _scalar_type_ok(self, type_: str, value: str) -> bool:
        if type_ == "boolean":
            if self.lenient_booleans:
                return parse_boolean(value) is not None
            return value in ("0", "1")
        if type_ == "integer":
            return _IS_INTEGER.search(value) is not None
        if type_ == "number":
            return _IS_NUMBER.search(value) is not None
        return True

    def _type_error(self, path: str, message: str) -> bool:
        self.add_error(path, message)
        return False

    def _check_scalar(self, value: str, schema: Mapping[str, Any], path: str) -> bool:
        """Format, pattern, lengths, range and enum, in PVE's order; False on error."""
        checks = (self._check_format, self._check_pattern, self._check_lengths, self._check_range)
        for check in checks:
            message = check(value, schema, path)
            if message is not None:
                self.add_error(path, message)
                return False
        enum = schema.get("enum")
        if enum and value not in [_perl_num(option) for option in enum]:
            options = ", ".join(_perl_num(option) for option in enum)
            self.add_error(path, f"value '{value}' does not have a value in the enumeration '{options}'")
            return False
        return True

    def _check_format(self, value: str, schema: Mapping[str, Any], path: str) -> str | None:
        fmt = schema.get("format")
        if not fmt:
            return None
        try:
            if isinstance(fmt, dict):
                _parse_property_string(fmt, value, path, self.ctx)
            else:
                _check_named_format(str(fmt), value, self.ctx)
        except _FormatError as err:
            return f"invalid format - {str(err).rstrip()}"
        return None

    @staticmethod
    def _check_pattern(value: str, schema: Mapping[str, Any], _path: str) -> str | None:
        pattern = schema.get("pattern")
        if pattern and not _perl_match(str(pattern), value):
            return "value does not match the regex pattern"
        return None

    @staticmethod
    def _check_lengths(value: str, schema: Mapping[str, Any], _path: str) -> str | None:
        if (longest := schema.get("maxLength")) is not None and len(value) > int(longest):
            return f"value may only be {_perl_num(longest)} characters long"
        if (shortest := schema.get("minLength")) is not None and len(value) < int(shortest):
            return f"value must be at least {_perl_num(shortest)} characters long"
        return None

    @staticmethod
    def _check_range(value: str, schema: Mapping[str, Any], _path: str) -> str | None:
        number = _decimal(value) if _IS_NUMBER.search(value) else None
        if number is None:
            return None
        highest, lowest = _decimal(schema.get("maximum")), _decimal(schema.get("minimum"))
        if highest is not None and number > highest:
            return f"value must have a maximum value of {_perl_num(schema['maximum'])}"
        if lowest is not None and number < lowest:
            return f"value must have a minimum value of {_perl_num(schema['minimum'])}"
        return None

    def _coerce(self, type_: object, value: str) -> object:
        if type_ == "boolean":
            return parse_boolean(value)
        if type_ == "integer":
            return int(value)
        if type_ == "number":
            return float(value)
        return value


def _check_named_format(name: str, value: str, ctx: _Context) -> None:
    """PVE::JSONSchema::check_format for a named format; raises _FormatError."""
    if name == "regex":
        return
    base, kind = _split_format_name(name)
    check = _FORMATS.get(base)
    if check is None:
        UNCHECKED_FORMATS.add(name)
        return
    if kind in ("list", "alist"):
        for item in split_list(value):
            check(item, ctx)
    elif kind == "opt":
        if _perl_true(value):
            check(value, ctx)
    else:
        check(value, ctx)


# --------------------------------------------------------------------------
# Property strings
# --------------------------------------------------------------------------

_KEY_VALUE_RE = re.compile(r"^([^=]+)=(.+)$")


def _parse_parts(fmt: Mapping[str, Any], data: str) -> dict[str, str]:
    """The key=value,... splitting of PVE's parse_property_string (before checks)."""
    result: dict[str, str] = {}
    default_key: str | None = None
    for part in _perl_split(",", data):
        if re.search(r"^\s*$", part):
            continue
        if match := _KEY_VALUE_RE.search(part):
            _add_keyed_part(fmt, result, match[1], match[2])
        elif "=" not in part:
            default_key = _add_default_part(fmt, result, part, default_key)
        else:
            _fail("missing key in comma-separated list property")
    return result


def _add_keyed_part(fmt: Mapping[str, Any], result: dict[str, str], key: str, value: str) -> None:
    if key in result:
        _fail(f"duplicate key in comma-separated list property: {key}")
    schema = fmt.get(key) or {}
    if alias := schema.get("alias"):
        if key_alias := schema.get("keyAlias"):
            if key_alias in result:
                _fail(f"key alias '{key_alias}' is already defined")
            result[key_alias] = key
        key = alias
        schema = fmt.get(key) or {}
    if not schema:
        _fail(f"invalid key in comma-separated list property: {key}")
    if schema.get("type") == "boolean" and (flag := parse_boolean(value)) is not None:
        value = str(flag)
    result[key] = value


def _add_default_part(
    fmt: Mapping[str, Any], result: dict[str, str], part: str, default_key: str | None
) -> str:
    if default_key:
        _fail(f"duplicate key in comma-separated list property: {default_key}")
    for key, schema in fmt.items():
        if _perl_true(schema.get("default_key")):
            if _perl_true(result.get(key)):
                _fail(f"duplicate key in comma-separated list property: {key}")
            result[key] = part
            return key
    _fail("value without key, but schema does not define a default key")


def _parse_property_string(fmt: Mapping[str, Any], data: str, path: str, ctx: _Context) -> dict[str, object]:
    """PVE's parse_property_string: split, then check_object; raises _FormatError."""
    parts = _parse_parts(fmt, data)
    validator = _Validator(ctx)
    parsed = validator.check_object(path, fmt, parts, 0)
    if validator.errors:
        lines = "\n".join(f"{key}: {message}" for key, message in validator.errors.items())
        _fail(f"format error\n{lines}")
    return parsed


def parse_property_string(value: str, fmt: Mapping[str, Any], name: str = "") -> dict[str, object]:
    """Parse and check a property string such as a 'net0' or 'rootfs' value.

    Returns the sub-keys with the default key and aliases resolved, integers as
    int, numbers as float and booleans as 0/1.  Raises ParameterError with one
    message for ``name`` (``'_root'`` if empty), worded as PVE words it.
    """
    try:
        return _parse_property_string(fmt, value, name, _Context())
    except _FormatError as err:
        raise ParameterError({name or "_root": f"invalid format - {str(err).rstrip()}"}) from None


def _find_default_key(fmt: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    """The default key and the keyAlias -> alias target pairs of a format."""
    default_key = next((key for key, schema in fmt.items() if _perl_true(schema.get("default_key"))), None)
    key_aliases = {
        schema["keyAlias"]: schema["alias"]
        for schema in fmt.values()
        if schema.get("keyAlias") and schema.get("alias")
    }
    return default_key, key_aliases


def _printable(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return _perl_num(value)


def _format_value(key: str, value: object, sub_format: object) -> str:
    if sub_format == "disk-size":
        size = parse_size(value) if isinstance(value, str) else int(str(value))
        if size is not None:
            return format_size(size)
    text = _printable(value)
    if "," in text:
        raise ParameterError({key: f"illegal value with commas for {key}"})
    return text


def format_property_string(values: Mapping[str, object], fmt: Mapping[str, Any]) -> str:
    """PVE's print_property_string: the default key bare and first, then the
    required keys, then the rest, each group sorted; booleans as 1/0, disk
    sizes in their largest exact unit.  Raises ParameterError on invalid data.
    """
    data = {key: value for key, value in values.items() if value is not None}
    validator = _Validator(_Context())
    validator.check_object("", fmt, {key: _printable(value) for key, value in data.items()}, None)
    if validator.errors:
        raise ParameterError(validator.errors)
    default_key, key_aliases = _find_default_key(fmt)
    required = sorted(key for key in data if key in fmt and not _perl_true(fmt[key].get("optional")))
    order = ([default_key] if default_key else []) + required + sorted(data)
    parts: list[str] = []
    done: set[str] = set()
    for key in order:
        if key in done or key not in data:
            continue
        done.add(key)
        parts.append(_format_part(key, data, fmt, key_aliases, done, bare=key == default_key))
    return ",".join(parts)


def _format_part(
    key: str,
    data: Mapping[str, object],
    fmt: Mapping[str, Any],
    key_aliases: Mapping[str, str],
    done: set[str],
    *,
    bare: bool,
) -> str:
    schema = fmt.get(key)
    combine = key_aliases.get(key)
    if combine and data.get(combine) is not None:
        done.add(combine)
        left = _format_value(key, data[key], (schema or {}).get("format"))
        return f"{left}={_format_value(combine, data[combine], fmt[combine].get('format'))}"
    if schema and schema.get("alias"):
        schema = fmt.get(schema["alias"])
    if not schema:
        raise ParameterError({key: f"invalid key '{key}'"})
    text = _format_value(key, data[key], schema.get("format"))
    return text if bare else f"{key}={text}"


# --------------------------------------------------------------------------
# The schema and its routes
# --------------------------------------------------------------------------

_PARAM_SEGMENT_RE = re.compile(r"^\{([\w-]+)(?::(.*))?\}$")


@dataclass
class _RouteNode:
    template: str = ""
    literals: dict[str, _RouteNode] = field(default_factory=dict)
    params: dict[str, tuple[str, _RouteNode]] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)


def _walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from _walk(node.get("children") or [])


def _segments(path: str) -> list[str]:
    return [segment for segment in path.split("/") if segment]


def _property_formats(schema: Mapping[str, Any]) -> Iterator[str]:
    """Every named format used by a property, its sub-keys, items and variants."""
    fmt = schema.get("format")
    if isinstance(fmt, str):
        yield fmt
    elif isinstance(fmt, dict):
        for sub in fmt.values():
            yield from _property_formats(sub)
    if isinstance(schema.get("items"), dict):
        yield from _property_formats(schema["items"])
    for alternative in schema.get("oneOf") or []:
        yield from _property_formats(alternative)


class ApiSchema:
    """PVE's API tree: match request paths to methods and validate their parameters."""

    def __init__(self, tree: list[dict[str, Any]]) -> None:
        self._root = _RouteNode(template="/")
        self._routes: set[tuple[str, str]] = set()
        for node in _walk(tree):
            self._add(node["path"], node.get("info") or {})
        self._context = _Context(privileges=self._privileges())
        UNCHECKED_FORMATS.update(self.unchecked_formats())

    @classmethod
    def load(cls, path: Path = SCHEMA_PATH) -> ApiSchema:
        """Load (once per process and path) the schema JSON file."""
        return _load_cached(cls, Path(path).resolve())

    # -- routes ------------------------------------------------------------

    def _add(self, template: str, info: Mapping[str, dict[str, Any]]) -> None:
        node = self._root
        for segment in _segments(template):
            node = self._child(node, segment)
        node.template = template
        for method, method_info in info.items():
            node.methods[method.upper()] = method_info
            self._routes.add((template, method.upper()))

    @staticmethod
    def _child(node: _RouteNode, segment: str) -> _RouteNode:
        param = _PARAM_SEGMENT_RE.match(segment)
        if not param:
            return node.literals.setdefault(segment, _RouteNode())
        name, regex = param[1], param[2] or r"\S+"
        if name not in node.params:
            node.params[name] = (regex, _RouteNode())
        return node.params[name][1]

    def _find(self, path: str) -> tuple[_RouteNode, dict[str, str]] | None:
        return self._descend(self._root, _segments(path), {})

    def _descend(
        self, node: _RouteNode, segments: list[str], params: dict[str, str]
    ) -> tuple[_RouteNode, dict[str, str]] | None:
        if not segments:
            return node, params
        head, rest = segments[0], segments[1:]
        if head in node.literals and (found := self._descend(node.literals[head], rest, params)):
            return found
        for name, (regex, child) in node.params.items():
            if _perl_match(regex, head) and (found := self._descend(child, rest, {**params, name: head})):
                return found
        return None

    def match(self, method: str, path: str) -> Route | None:
        """The route for ``method`` on ``path`` (relative to /api2/json, already
        URL-decoded); literal segments win over {param} segments."""
        found = self._find(path)
        if found is None:
            return None
        node, params = found
        info = node.methods.get(method.upper())
        if info is None:
            return None
        return Route(template=node.template, method=method.upper(), path_params=params, info=info)

    def path_exists(self, path: str) -> bool:
        """True if ``path`` matches a schema path that has at least one method."""
        found = self._find(path)
        return found is not None and bool(found[0].methods)

    def routes(self) -> set[tuple[str, str]]:
        """Every (template, method) pair of the schema."""
        return set(self._routes)

    # -- parameters --------------------------------------------------------

    def _privileges(self) -> frozenset[str] | None:
        """The privilege names PVE knows: the properties GET /access/roles/{roleid} returns."""
        route = self.match("GET", "/access/roles/{roleid}")
        returns = (route.info.get("returns") or {}) if route else {}
        names = (returns.get("properties") or {}).keys()
        return frozenset(names) or None

    def _methods(self) -> Iterator[dict[str, Any]]:
        stack = [self._root]
        while stack:
            node = stack.pop()
            yield from node.methods.values()
            stack.extend(node.literals.values())
            stack.extend(child for _regex, child in node.params.values())

    def unchecked_formats(self) -> set[str]:
        """Named formats the schema uses that this module accepts without checking."""
        names: set[str] = set()
        for info in self._methods():
            for schema in ((info.get("parameters") or {}).get("properties") or {}).values():
                names.update(_property_formats(schema))
        bases = {name: _split_format_name(name)[0] for name in names if name != "regex"}
        unchecked = {name for name, base in bases.items() if base not in _FORMATS}
        if self._context.privileges is None:
            unchecked.update(name for name, base in bases.items() if base == "pve-priv")
        return unchecked

    def property_schema(self, route: Route, name: str) -> dict[str, Any] | None:
        """The schema of parameter ``name`` of ``route`` ('net0' via 'net[n]')."""
        properties = (route.info.get("parameters") or {}).get("properties") or {}
        return _lookup_property(properties, name)

    def property_format(self, route: Route, name: str) -> dict[str, Any] | None:
        """The sub-key format of a property-string parameter, None for other parameters."""
        schema = self.property_schema(route, name)
        fmt = schema.get("format") if schema else None
        return fmt if isinstance(fmt, dict) else None

    def validate(
        self, route: Route, params: Mapping[str, object], *, lenient_booleans: bool = False
    ) -> dict[str, object]:
        """Check request parameters (merged with the path's) as PVE does.

        Returns the parameters coerced (integer -> int, number -> float,
        boolean -> 0/1, arrays as lists, everything else, property strings
        included, as given).  Raises ParameterError with every parameter's
        first error.
        """
        merged = self._merge_path_params(route, params)
        parameters = route.info.get("parameters") or {}
        properties = parameters.get("properties") or {}
        merged = _normalize_legacy_formats(merged, properties)
        validator = _Validator(self._context, lenient_booleans=lenient_booleans)
        if "properties" in parameters or "additionalProperties" in parameters:
            result = validator.check_object("", properties, merged, parameters.get("additionalProperties"))
        else:
            result = dict(merged)
        if validator.errors:
            raise ParameterError(validator.errors)
        return result

    @staticmethod
    def _merge_path_params(route: Route, params: Mapping[str, object]) -> dict[str, object]:
        merged: dict[str, object] = dict(route.path_params)
        for key, value in params.items():
            if key in route.path_params and value != route.path_params[key]:
                raise ParameterError({key: _DUPLICATE_URI_PARAM})
            merged[key] = value
        return merged


def _normalize_legacy_formats(params: dict[str, object], properties: Mapping[str, Any]) -> dict[str, object]:
    """PVE::RESTHandler's normalize_legacy_param_formats for form-encoded requests:
    lists for '-list' strings are joined with ',', scalars for arrays are wrapped."""
    result = dict(params)
    for key, value in params.items():
        schema = _lookup_property(properties, key)
        if schema is None or not _perl_true(value):
            continue
        fmt = schema.get("format")
        is_list_format = isinstance(fmt, str) and fmt.endswith("-list")
        if isinstance(value, list) and schema.get("type") == "string" and is_list_format:
            result[key] = ",".join(str(item) for item in value)
        elif not isinstance(value, list) and schema.get("type") == "array":
            result[key] = [value]
    return result


@functools.cache
def _load_cached(cls: type[ApiSchema], path: Path) -> ApiSchema:
    with path.open(encoding="utf-8") as handle:
        return cls(json.load(handle))
