"""PVE's container config file format: parse, write, digest.

A container config is what PVE keeps in /etc/pve/nodes/<node>/lxc/<vmid>.conf:
the description as leading `#` comments, `key: value` lines in sorted order, an
optional `[pve:pending]` section and one `[name]` section per snapshot. The
digest PVE hands out with GET .../config is the SHA-1 of that raw text.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

PENDING_SECTION = "pve:pending"
_SECTION = re.compile(r"^\[([^\]]+)\]\s*$")
_LINE = re.compile(r"^([a-z][a-z0-9_-]*):\s*(.*?)\s*$")


class ConfigFormatError(ValueError):
    """A config file that does not parse."""


@dataclass
class CtConfig:
    """One container's config: current keys, pending changes, snapshots."""

    values: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    pending_delete: list[str] = field(default_factory=list)
    snapshots: dict[str, dict[str, str]] = field(default_factory=dict)

    def render(self) -> str:
        out = _render_section(self.values, with_description=True)
        if self.pending or self.pending_delete:
            pending = dict(self.pending)
            if self.pending_delete:
                pending["delete"] = ",".join(self.pending_delete)
            out += f"\n[{PENDING_SECTION}]\n" + _render_section(pending, with_description=False)
        for name, snap in self.snapshots.items():
            out += f"\n[{name}]\n" + _render_section(snap, with_description=True)
        return out

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.render().encode()).hexdigest()  # noqa: S324 - PVE's digest is SHA-1

    def with_pending(self) -> dict[str, str]:
        """The values a restart would apply: what GET config shows by default."""
        merged = {k: v for k, v in self.values.items() if k not in self.pending_delete}
        merged.update(self.pending)
        return merged


def _encode_description_line(line: str) -> str:
    return quote(line, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _render_section(values: dict[str, str], with_description: bool) -> str:
    lines = []
    if with_description and values.get("description"):
        lines += ["#" + _encode_description_line(x) for x in values["description"].split("\n")]
    for key in sorted(values):
        if key == "description" and with_description:
            continue
        lines.append(f"{key}: {values[key]}")
    return "".join(line + "\n" for line in lines)


def parse(text: str, source: str = "<config>") -> CtConfig:
    conf = CtConfig()
    section: dict[str, str] = conf.values
    name = ""
    description: dict[str, list[str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if match := _SECTION.match(raw):
            name = match.group(1)
            section = {} if name == PENDING_SECTION else conf.snapshots.setdefault(name, {})
            if name == PENDING_SECTION:
                conf.pending = section
            continue
        if raw.startswith("#"):
            description.setdefault(name, []).append(unquote(raw[1:]))
            continue
        match = _LINE.match(raw)
        if not match:
            raise ConfigFormatError(f"{source} line {number}: cannot parse '{raw}'")
        section[match.group(1)] = match.group(2)
    for owner, lines in description.items():
        target = conf.values if owner == "" else conf.snapshots.get(owner)
        if target is not None:
            target["description"] = "\n".join(lines)
    if "delete" in conf.pending:
        conf.pending_delete = [x for x in conf.pending.pop("delete").split(",") if x]
    return conf


def load(path: Path) -> CtConfig:
    return parse(path.read_text(), str(path))


def save(path: Path, conf: CtConfig) -> None:
    """Atomic replace, like pmxcfs: readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(conf.render())
    os.replace(tmp, path)
