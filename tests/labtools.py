"""Helpers for tests and benchmarks that talk to the running lab."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from proxmoxer import ProxmoxAPI, ResourceException

REPO = Path(__file__).resolve().parents[1]
CREDENTIALS = REPO / ".lab" / "credentials.json"
# Tests own VMIDs and addresses 150-199; the lab inventory uses 110-149, molecule 200+.
TEST_IDS = range(150, 200)


def load_credentials() -> dict:
    if not CREDENTIALS.exists():
        raise FileNotFoundError(f"{CREDENTIALS} is missing: run `make lab` first")
    return json.loads(CREDENTIALS.read_text())


def api_for(creds: dict, tokenid: str | None = None) -> ProxmoxAPI:
    tokenid = tokenid or creds["token_id"]
    user, name = tokenid.split("!")
    secret = creds["tokens"].get(tokenid, creds["token_secret"])
    return ProxmoxAPI("127.0.0.1", port=8006, user=user, token_name=name, token_value=secret,
                      verify_ssl=creds["ca_cert"], timeout=30)


def token_header(creds: dict, tokenid: str | None = None) -> dict[str, str]:
    tokenid = tokenid or creds["token_id"]
    secret = creds["tokens"].get(tokenid, creds["token_secret"])
    return {"Authorization": f"PVEAPIToken={tokenid}={secret}"}


def wait_task(pve: ProxmoxAPI, node: str, upid: str, timeout: float = 120,
              poll: float = 0.1) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = pve.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            return status
        time.sleep(poll)
    raise AssertionError(f"task {upid} still running after {timeout}s")


def task_log(pve: ProxmoxAPI, node: str, upid: str) -> str:
    return "\n".join(x["t"] for x in pve.nodes(node).tasks(upid).log.get(limit=1000))


def task_ok(pve: ProxmoxAPI, node: str, upid: str, timeout: float = 120,
            poll: float = 0.1) -> None:
    status = wait_task(pve, node, upid, timeout, poll)
    if status["exitstatus"] != "OK":
        raise AssertionError(f"task {upid} failed: {status['exitstatus']}\n"
                             f"{task_log(pve, node, upid)}")


class Allocator:
    """Hands out free test VMIDs (= last octet of the CT's IP) and destroys them after."""

    def __init__(self, pve: ProxmoxAPI, ids: range = TEST_IDS) -> None:
        self.pve = pve
        self.range = ids
        self.ids = itertools.cycle(ids)
        self.created: list[tuple[str, int]] = []

    def take(self, node: str = "pve1") -> int:
        used = {int(r["vmid"]) for r in self.pve.cluster.resources.get(type="vm")}
        used |= {vmid for _, vmid in self.created}
        for _ in self.range:
            vmid = next(self.ids)
            if vmid not in used:
                self.created.append((node, vmid))
                return vmid
        raise AssertionError(f"no free test VMID in {self.range.start}-{self.range.stop - 1}: "
                             "leftovers from an earlier run?")

    def cleanup(self) -> None:
        for node, vmid in self.created:
            destroy_ct(self.pve, node, vmid)


def destroy_ct(pve: ProxmoxAPI, node: str, vmid: int) -> None:
    for _ in range(300):
        try:
            config = pve.nodes(node).lxc(vmid).config.get()
        except Exception:  # noqa: BLE001 - gone already
            return
        if config.get("lock"):
            time.sleep(0.2)
            continue
        try:
            upid = pve.nodes(node).lxc(vmid).delete(force=1, purge=1)
        except ResourceException as exc:
            if "can't lock file" not in str(exc):
                raise
            time.sleep(0.2)  # a task of the test is still running on it
            continue
        wait_task(pve, node, upid)
        return
    raise AssertionError(f"CT {vmid} stayed locked or busy; could not destroy it")


def ct_params(creds: dict, vmid: int, **extra: object) -> dict[str, object]:
    params: dict[str, object] = {
        "vmid": vmid, "ostemplate": creds["ostemplate"], "hostname": f"t{vmid}",
        "net0": f"name=eth0,bridge={creds['bridge']},ip=10.92.3.{vmid}/24,gw=10.92.3.1",
        "memory": 256, "swap": 0, "cores": 1, "rootfs": "local:2",
        "ssh-public-keys": creds["ssh_public_key"], "unprivileged": 1,
    }
    params.update(extra)
    return params


def create_ct(pve: ProxmoxAPI, creds: dict, vmid: int, node: str = "pve1", **extra: object) -> None:
    task_ok(pve, node, pve.nodes(node).lxc.post(**ct_params(creds, vmid, **extra)))


def ssh(creds: dict, ip: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", creds["ssh_private_key"], "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR", f"root@{ip}", command],
        capture_output=True, text=True, timeout=timeout, check=False)


def wait_ssh(creds: dict, ip: str, timeout: float = 30) -> float:
    """Seconds until SSH answers; raises past the timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        # A TCP connect is cheap; only spend an SSH handshake once sshd listens.
        try:
            socket.create_connection((ip, 22), timeout=1).close()
        except OSError:
            time.sleep(0.05)
            continue
        if ssh(creds, ip, "true", timeout=10).returncode == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"SSH to {ip} did not answer within {timeout}s")


def pve_auth_args(creds: dict, tokenid: str | None = None) -> dict[str, object]:
    """The auth options every library/pve_* module takes, for the lab."""
    tokenid = tokenid or creds["token_id"]
    return {"api_host": "127.0.0.1", "api_port": 8006, "api_token_id": tokenid,
            "api_token_secret": creds["tokens"].get(tokenid, creds["token_secret"]),
            "ca_path": creds["ca_cert"]}


def run_module(module: str, args: dict, check: bool = False, diff: bool = False,
               timeout: float = 300) -> dict:
    """Runs one of our modules through `ansible` (the real code path) and returns its result."""
    ansible = Path(sys.executable).parent / "ansible"
    args = dict(args)
    secrets = {}
    # Secrets travel in the environment (the modules' env fallbacks), not on the command
    # line where `ps` would show them.
    for option, variable in (("api_token_secret", "PROXMOX_TOKEN_SECRET"),
                             ("api_password", "PROXMOX_PASSWORD")):
        if option in args:
            secrets[variable] = str(args.pop(option))
    cmd = [str(ansible), "localhost", "-i", str(REPO / "inventories" / "lab"), "-m", module,
           "-a", json.dumps(args)]
    cmd += ["--check"] if check else []
    cmd += ["--diff"] if diff else []
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_NOCOLOR="1", **secrets)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{module}: no JSON from ansible (exit {proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}") from exc
    return data["plays"][0]["tasks"][0]["hosts"]["localhost"]


LAB_HOSTS = {"proxy1": 110, "app1": 121, "app2": 122, "db1": 131, "mon1": 141}


def copy_lab_inventory(tmp: Path) -> Path:
    """A private copy of inventories/lab whose group_vars still find .lab/credentials.json.

    The lab's group_vars locate the credentials at `{{ inventory_dir }}/../../.lab`, so the
    copy sits two levels below a folder holding a `.lab` symlink to the real one.
    """
    root = tmp / "project"
    (root / "inventories").mkdir(parents=True)
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab")
    (root / ".lab").symlink_to(REPO / ".lab")
    return root / "inventories" / "lab"


def run_playbook(playbook: str, inventory: Path | None = None, *args: str,
                 timeout: float = 900) -> tuple[int, dict, str]:
    """ansible-playbook with the JSON callback: (exit code, parsed result, stderr)."""
    binary = Path(sys.executable).parent / "ansible-playbook"
    cmd = [str(binary), "-i", str(inventory or REPO / "inventories" / "lab"), playbook, *args]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        data = {"raw": proc.stdout}
    return proc.returncode, data, proc.stderr


def _failure_detail(res: dict) -> str:
    detail = res.get("msg") or res.get("stderr") or res.get("module_stderr") or ""
    return str(detail)[:1500]


def failures(result: dict, stderr: str = "") -> str:
    """A readable account of a failed run: each failed or unreachable task, host and message."""
    lines = []
    for play in result.get("plays", []):
        for task in play.get("tasks", []):
            for host, res in task.get("hosts", {}).items():
                if res.get("failed") or res.get("unreachable"):
                    lines.append(f"{host}: {task['task']['name']}: {_failure_detail(res)}")
                    lines.extend(f"  item {item.get('item')!r}: {_failure_detail(item)}"
                                 for item in res.get("results", []) if item.get("failed"))
    if "raw" in result:
        lines.append(str(result["raw"])[-2000:])
    lines.append(stderr[-1500:])
    return "\n".join(lines)


def changed_by_host(result: dict) -> dict[str, int]:
    return {host: stats["changed"] for host, stats in result.get("stats", {}).items()}


def task_results(result: dict, name_part: str) -> dict[str, dict]:
    """Per-host results of the first task whose name contains name_part."""
    for play in result.get("plays", []):
        for task in play["tasks"]:
            if name_part in task["task"]["name"]:
                return task["hosts"]
    raise AssertionError(f"no task named like '{name_part}' in the run")
