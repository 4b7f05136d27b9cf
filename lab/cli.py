"""`python -m lab up|down|status|template|serve|fault` - what the make targets wrap."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from lab import hostsetup, template
from lab.admin import AdminClient, AdminError
from lab.config import API_HOST, API_PORT, BRIDGE, NODES, REPO_ROOT, STORAGE, LabPaths
from lab.hostsetup import HostSetupError, say

CREDENTIALS = REPO_ROOT / ".lab" / "credentials.json"
API_URL = f"https://{API_HOST}:{API_PORT}/api2/json"


def server_pid(paths: LabPaths) -> int | None:
    """The running server's PID, only if that PID really is our server."""
    try:
        pid = int(paths.pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"lab" in cmdline and b"serve" in cmdline else None


def process_alive(pid: int) -> bool:
    """True for a live process; a zombie (PID 1 here may never reap it) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def server_healthy(paths: LabPaths) -> bool:
    try:
        AdminClient(paths, timeout=2).health()
        resp = requests.get(f"{API_URL}/access/ticket", verify=str(paths.ca_cert), timeout=3)
    except (AdminError, requests.RequestException):
        return False
    return resp.status_code == 200


def stop_server(paths: LabPaths) -> None:
    pid = server_pid(paths)
    if pid is None:
        return
    say(f"stopping the API server (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not process_alive(pid):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    paths.pidfile.unlink(missing_ok=True)


def start_server(paths: LabPaths) -> None:
    stop_server(paths)
    paths.server_log.parent.mkdir(parents=True, exist_ok=True)
    paths.pidfile.parent.mkdir(parents=True, exist_ok=True)
    log = paths.server_log.open("a")
    subprocess.Popen([sys.executable, "-m", "lab", "serve"], cwd=REPO_ROOT, stdout=log,
                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                     env=dict(os.environ, PVE_LAB_DIR=str(paths.root)))
    for _ in range(150):
        if server_healthy(paths):
            say(f"API server up on {API_URL} (pid {server_pid(paths)}, log {paths.server_log})")
            return
        time.sleep(0.2)
    tail = paths.server_log.read_text().splitlines()[-15:]
    raise HostSetupError("the API server did not come up within 30s; last log lines:\n"
                         + "\n".join(tail))


def write_credentials(paths: LabPaths, secrets: dict[str, dict[str, str]]) -> None:
    data = {
        "api_url": API_URL, "user": "root@pam", "password": secrets["passwords"]["root@pam"],
        "token_id": "root@pam!lab", "token_secret": secrets["tokens"]["root@pam!lab"],
        "ca_cert": str(paths.ca_cert), "nodes": list(NODES), "bridge": BRIDGE,
        "storage": STORAGE, "ssh_private_key": str(paths.ssh_key),
        "ssh_public_key": paths.ssh_key.with_suffix(".pub").read_text().strip(),
        "ostemplate": f"{STORAGE}:vztmpl/{template.current_template(paths).name}",
        # Least-privilege principals for tests (auditor, provisioner, no VM.Allocate).
        "tokens": secrets["tokens"],
        "admin_socket": str(paths.admin_socket),
    }
    CREDENTIALS.parent.mkdir(exist_ok=True, mode=0o700)
    fd = os.open(CREDENTIALS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    say(f"wrote {CREDENTIALS.relative_to(REPO_ROOT)}")


def link_app_secrets(paths: LabPaths, link: Path) -> None:
    """Make ``link`` (a clone's .lab/secrets) a symlink to the lab's app secrets.

    A real directory left there by an older clone is folded in first: its files move to
    the lab's directory where that has none of the same name (the lab's copy is what the
    containers were last converged with), then the directory is removed.
    """
    shared = paths.app_secrets
    shared.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shared.mkdir(exist_ok=True, mode=0o700)
    if link.is_symlink():
        if link.resolve() == shared.resolve():
            return
        link.unlink()
    elif link.is_dir():
        for item in sorted(link.iterdir()):
            target = shared / item.name
            if item.is_file() and not target.exists():
                os.replace(item, target)
        shutil.rmtree(link)
    elif link.exists():
        raise HostSetupError(f"{link} should be a directory or a link to {shared}; "
                             "move it away and run `make lab` again")
    link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    link.symlink_to(shared)
    say(f"{link.relative_to(REPO_ROOT) if link.is_relative_to(REPO_ROOT) else link} "
        f"-> {shared} (the lab's service secrets)")


def cmd_up(paths: LabPaths, _args: argparse.Namespace) -> int:
    from lab.auth import AccessControl  # noqa: PLC0415 - keeps `status` light

    hostsetup.require_root()
    hostsetup.ensure_packages()
    hostsetup.ensure_bridge()
    hostsetup.ensure_subids()
    hostsetup.ensure_kernel_limits(paths)
    hostsetup.ensure_ssh_key(paths)
    hostsetup.ensure_pki(paths)
    template.build(paths)
    before = _mtime(paths.access_state)
    secrets = AccessControl(paths.access_state).ensure_bootstrap(paths.secrets)
    if server_pid(paths) is None or not server_healthy(paths):
        start_server(paths)
    elif before != _mtime(paths.access_state) or _code_newer_than(paths.pidfile):
        say("restarting the API server: its code or access state changed since it started")
        start_server(paths)
    else:
        say(f"API server already running (pid {server_pid(paths)})")
    write_credentials(paths, secrets)
    link_app_secrets(paths, CREDENTIALS.parent / "secrets")
    return 0


def _mtime(path: Path) -> float | None:
    return path.stat().st_mtime if path.exists() else None


def _code_newer_than(pidfile: Path) -> bool:
    started = _mtime(pidfile) or 0.0
    code = Path(__file__).parent
    return any(p.stat().st_mtime > started for p in [*code.glob("*.py"), code / "data"])


def cmd_down(paths: LabPaths, _args: argparse.Namespace) -> int:
    from lab.backend import LxcBackend  # noqa: PLC0415

    hostsetup.require_root()
    stop_server(paths)
    backend = LxcBackend(paths)
    for vmid in sorted(backend.known_vmids()):
        say(f"removing CT {vmid}")
        backend.destroy(vmid)
    if paths.rootfs.is_dir():
        for mount in paths.rootfs.iterdir():
            subprocess.run(["umount", "-l", str(mount)], check=False, stderr=subprocess.DEVNULL)
    hostsetup.remove_bridge()
    hostsetup.restore_kernel_limits(paths)
    keep = {paths.root / "storage", paths.base}
    for child in paths.root.iterdir() if paths.root.exists() else []:
        if child not in keep:
            subprocess.run(["rm", "-rf", "--one-file-system", str(child)], check=True)
    for child in paths.storage.iterdir() if paths.storage.exists() else []:
        if child.name != "template":
            subprocess.run(["rm", "-rf", "--one-file-system", str(child)], check=True)
    CREDENTIALS.unlink(missing_ok=True)
    say("lab removed (the template cache is kept)")
    return 0


def cmd_status(paths: LabPaths, args: argparse.Namespace) -> int:
    from lab.backend import LxcBackend  # noqa: PLC0415

    pid = server_pid(paths)
    healthy = pid is not None and server_healthy(paths)
    tpl = template.current_template(paths)
    backend = LxcBackend(paths)
    cts = []
    for node in NODES:
        folder = paths.node_config_dir(node)
        for conf in sorted(folder.glob("*.conf")) if folder.is_dir() else []:
            vmid = int(conf.stem)
            cts.append({"vmid": vmid, "node": node, "status": backend.state(vmid)})
    status = {"server": {"pid": pid, "healthy": healthy, "url": API_URL},
              "bridge": {"name": BRIDGE, "present": hostsetup.bridge_present()},
              "template": {"volid": f"{STORAGE}:vztmpl/{tpl.name}", "cached": tpl.exists()},
              "credentials": str(CREDENTIALS) if CREDENTIALS.exists() else None,
              "containers": cts}
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(f"server     {'up' if healthy else 'DOWN'}"
              f"{f' (pid {pid})' if pid else ''} {API_URL}")
        print(f"bridge     {BRIDGE} {'present' if status['bridge']['present'] else 'MISSING'}")
        print(f"template   {tpl.name} {'cached' if tpl.exists() else 'NOT BUILT'}")
        for ct in cts:
            print(f"CT {ct['vmid']:<9} {ct['node']:<5} {ct['status']}")
    return 0 if healthy and status["bridge"]["present"] else 3


def cmd_template(paths: LabPaths, args: argparse.Namespace) -> int:
    hostsetup.require_root()
    hostsetup.ensure_packages()
    print(template.build(paths, force=args.rebuild))
    return 0


def cmd_serve(paths: LabPaths, _args: argparse.Namespace) -> int:
    from lab.server import serve  # noqa: PLC0415

    serve(paths)
    return 0


def cmd_fault(paths: LabPaths, args: argparse.Namespace) -> int:
    client = AdminClient(paths)
    if args.action == "clear":
        result = client.clear_faults()
    elif args.action == "show":
        result = client.faults()
    else:
        spec: dict[str, object] = {}
        if args.fail_tasks:
            spec["fail_tasks"] = args.fail_tasks
        if args.slow_tasks:
            spec.update(slow_tasks=args.slow_tasks, slow_seconds=args.slow_seconds)
        if args.vmid is not None:
            spec["vmid"] = args.vmid
        if args.api_errors:
            spec["api_error"] = {"count": args.api_errors, "status": args.status,
                                 "path": args.path, "method": args.method}
        result = client.set_faults(**spec)
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="set up the host, build the template, start the API (idempotent)")
    sub.add_parser("down", help="remove every container, the bridge and the server")
    status = sub.add_parser("status", help="show the lab; exit 3 when it is not up")
    status.add_argument("--json", action="store_true")
    tpl = sub.add_parser("template", help="build the container template if its list changed")
    tpl.add_argument("--rebuild", action="store_true", help="build even if cached")
    sub.add_parser("serve", help="run the API server in the foreground")
    fault = sub.add_parser("fault", help="fault injection through the admin socket")
    fault.add_argument("action", choices=["set", "clear", "show"])
    fault.add_argument("--fail-tasks", type=int, default=0, help="the next N tasks fail")
    fault.add_argument("--slow-tasks", type=int, default=0, help="the next N tasks are slow")
    fault.add_argument("--slow-seconds", type=float, default=5.0)
    fault.add_argument("--vmid", type=int, default=None, help="task faults only for this CT")
    fault.add_argument("--api-errors", type=int, default=0, help="the next N API calls fail")
    fault.add_argument("--status", type=int, default=500)
    fault.add_argument("--path", default=None, help="regex on the API path")
    fault.add_argument("--method", default=None)
    args = parser.parse_args(argv)
    handlers = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "template": cmd_template,
                "serve": cmd_serve, "fault": cmd_fault}
    try:
        return handlers[args.command](LabPaths.default(), args)
    except (HostSetupError, template.TemplateError, AdminError) as exc:
        print(f"lab {args.command}: {exc}", file=sys.stderr)
        return 2
