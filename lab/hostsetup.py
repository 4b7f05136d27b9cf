"""Prepares this machine to host the lab: packages, bridge, id maps, keys, TLS.

Every step is idempotent and says what it changed. Nothing here enables NAT or
touches ip_forward: lab containers reach this host and each other, nothing else.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lab.config import BRIDGE, BRIDGE_CIDR, NODES, UNPRIV_BASE, UNPRIV_RANGE, LabPaths

HOST_PACKAGES = ("lxc", "debootstrap", "zstd", "uidmap", "openssl", "openssh-client", "iproute2",
                 "rsync")


class HostSetupError(RuntimeError):
    """This machine cannot host the lab; the message says what is missing."""


def say(message: str) -> None:
    print(f"[lab] {message}", flush=True)


def require_root() -> None:
    if os.geteuid() != 0:
        raise HostSetupError("the lab needs root (it creates a bridge and LXC containers); "
                             "run it as root on Debian 12")


def missing_packages(names: tuple[str, ...] = HOST_PACKAGES) -> list[str]:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\\n", *names],
                          capture_output=True, text=True, check=False)
    installed = {line.split()[0] for line in proc.stdout.splitlines()
                 if len(line.split()) > 1 and line.split()[1].startswith("ii")}
    return [n for n in names if n not in installed]


def ensure_packages() -> None:
    missing = missing_packages()
    if not missing:
        return
    say(f"installing {' '.join(missing)} from Debian's packages")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=False, env=env)
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                          env=env, check=False)
    if proc.returncode != 0:
        raise HostSetupError(f"could not install {' '.join(missing)} (apt-get exit "
                             f"{proc.returncode})")


def bridge_present() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}/bridge").exists()


def ensure_bridge() -> None:
    if not bridge_present():
        say(f"creating bridge {BRIDGE} with {BRIDGE_CIDR} (no NAT, no forwarding)")
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
        reattach_container_links()
    addrs = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE], capture_output=True,
                           text=True, check=True).stdout
    if BRIDGE_CIDR not in addrs:
        subprocess.run(["ip", "addr", "add", BRIDGE_CIDR, "dev", BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)


def reattach_container_links() -> None:
    """Running CTs keep their veth when the bridge vanishes; put them back on it."""
    for link in sorted(Path("/sys/class/net").iterdir()):
        if re.fullmatch(r"veth\d+i\d+", link.name) and not (link / "master").exists():
            say(f"reattaching {link.name} to {BRIDGE}")
            subprocess.run(["ip", "link", "set", link.name, "master", BRIDGE], check=True)


def remove_bridge() -> None:
    if bridge_present():
        say(f"removing bridge {BRIDGE}")
        subprocess.run(["ip", "link", "del", BRIDGE], check=True)


def ensure_subids() -> None:
    """Lets root map container ids onto 100000+, as PVE's unprivileged containers do."""
    line = f"root:{UNPRIV_BASE}:{UNPRIV_RANGE}"
    for name in ("/etc/subuid", "/etc/subgid"):
        path = Path(name)
        current = path.read_text().splitlines() if path.exists() else []
        if line not in current:
            say(f"adding '{line}' to {name}")
            path.write_text("\n".join([*current, line]) + "\n")


# Unprivileged containers all map onto the same host uid (UNPRIV_BASE), and each systemd
# inside holds several inotify instances: with Debian's default of 128 per user, the 15th
# or so running container's systemd dies at boot (exit 255, no console output). Raised for
# the lab only while it is up: never lowered, and `lab down` puts back what it found.
KERNEL_LIMITS = {
    "fs.inotify.max_user_instances": 1024,
    "fs.inotify.max_user_watches": 524288,
    "kernel.keys.maxkeys": 2000,
}


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def ensure_kernel_limits(paths: LabPaths) -> None:
    record = paths.root / "host-limits.json"
    found = json.loads(record.read_text()) if record.exists() else {}
    for name, wanted in KERNEL_LIMITS.items():
        current = int(_sysctl_path(name).read_text().split()[0])
        if current >= wanted:
            continue
        found.setdefault(name, current)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(found, indent=2) + "\n")  # before the change: a crash keeps it
        _sysctl_path(name).write_text(f"{wanted}\n")
        say(f"raised {name} from {current} to {wanted} (every lab container runs systemd)")


def restore_kernel_limits(paths: LabPaths) -> None:
    record = paths.root / "host-limits.json"
    if not record.exists():
        return
    for name, value in json.loads(record.read_text()).items():
        _sysctl_path(name).write_text(f"{value}\n")
        say(f"put {name} back to {value}")
    record.unlink()


def ensure_ssh_key(paths: LabPaths) -> None:
    key = paths.ssh_key
    if key.exists():
        return
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pve-lab", "-f", str(key)],
                   check=True)
    say(f"generated the lab SSH key {key}")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def ensure_pki(paths: LabPaths) -> None:
    """A lab CA and the API server's certificate, like PVE's pve-root-ca and pve-ssl."""
    now = datetime.datetime.now(datetime.UTC)
    if not paths.ca_cert.exists() or not paths.ca_key.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name("PVE lab CA"))
                .issuer_name(_name("PVE lab CA")).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        _write_private(paths.ca_key, key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
        paths.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths.server_cert.unlink(missing_ok=True)
        say(f"generated the lab CA {paths.ca_cert}")
    if paths.server_cert.exists() and _valid_for_a_day(paths.server_cert, now):
        return
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    names += [x509.DNSName(node) for node in NODES]
    cert = (x509.CertificateBuilder().subject_name(_name("pve-lab API"))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    _write_private(paths.server_key, key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    paths.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    say(f"issued the API certificate {paths.server_cert}")


def _valid_for_a_day(path: Path, now: datetime.datetime) -> bool:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.not_valid_after_utc > now + datetime.timedelta(days=1)
