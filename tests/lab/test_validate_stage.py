"""Issue 3: the validate stage refuses a bad inventory before anything changes.

Every case copies inventories/lab, changes one field, runs `ansible-playbook site.yml` on the
copy and checks what an operator would see and what the lab would feel:

- the run fails, with a message "<host>: <field> <what is wrong> (got <value>)";
- the check that refused sits in the stage it belongs to (inventory or API), and no play
  after the validate stage started;
- the lab saw no write for the containers of the inventory: the configs (digests) of those
  that exist are unchanged and no task was started for any of them;
- no secret of .lab/credentials.json (nor the wrong one a case plants) is in the output.

The lab is shared with other tests, so "no write" is judged on the containers this inventory
describes (the only ones a later stage of site.yml would touch), not on the whole cluster.
No test here creates a container: in every case site.yml stops in validate, and the passing
inventory runs playbooks/validate.yml alone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import labtools
import pytest
import yaml
from proxmoxer import ProxmoxAPI

pytestmark = pytest.mark.slow

REPO = labtools.REPO
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
VALIDATE = REPO / "playbooks" / "validate.yml"
INVENTORY_PLAY, API_PLAY = (play["name"] for play in yaml.safe_load(VALIDATE.read_text()))
NODES = ("pve1", "pve2")
# The default callback prints every failed assert as one line on its own.
ERROR_LINE = re.compile(r"^\[ERROR\]: Task failed: Action failed: (.*)$", re.MULTILINE)
PLAY_LINE = re.compile(r"^PLAY \[(.*)\] \**$", re.MULTILINE)
WRONG_SECRET = str(uuid.uuid4())  # a well-formed token secret the lab does not know


@pytest.fixture(autouse=True)
def _no_faults_left() -> None:
    """Overrides conftest's: these tests inject no fault, and clearing the faults around
    each of them could cut short a fault another test of the shared lab has just set."""


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str  # stdout and stderr

    @property
    def errors(self) -> list[str]:
        return ERROR_LINE.findall(self.output)

    @property
    def plays(self) -> list[str]:
        return PLAY_LINE.findall(self.output)

    def __str__(self) -> str:
        return f"exit {self.returncode}\n{self.output[-6000:]}"


def run_ansible(inventory: Path, playbook: str, *args: str) -> Run:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), playbook, *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    return Run(proc.returncode, proc.stdout + proc.stderr)


def copy_inventory(tmp: Path) -> Path:
    """inventories/lab, copied two levels below a folder with a `.lab` link to the real one:
    the lab group_vars find the credentials at `{{ inventory_dir }}/../../.lab`."""
    root = tmp / "project"
    shutil.copytree(REPO / "inventories" / "lab", root / "inventories" / "lab")
    (root / ".lab").symlink_to(REPO / ".lab")
    return root / "inventories" / "lab"


def set_field(inventory: Path, file: str, key: str, value: object) -> None:
    path = inventory / file
    data = yaml.safe_load(path.read_text())
    data[key] = value
    path.write_text("---\n" + yaml.safe_dump(data, sort_keys=False))


def inventory_vmids(inventory: Path) -> set[int]:
    return {int(yaml.safe_load(path.read_text())["pve_vmid"])
            for path in (inventory / "host_vars").glob("*.yml")}


LAB_HOSTS = {path.stem for path in (REPO / "inventories" / "lab" / "host_vars").glob("*.yml")}
# The containers of the lab inventory: a later stage would write to them even when a case
# moved one away (duplicate VMID).
LAB_VMIDS = inventory_vmids(REPO / "inventories" / "lab")


def secrets(creds: dict) -> set[str]:
    found = {creds["token_secret"], creds["password"], WRONG_SECRET}
    found |= set(creds.get("tokens", {}).values())
    return {s for s in found if s}


def assert_no_secret(run: Run, creds: dict) -> None:
    """First thing after a run: later failure messages print the output."""
    leaks = sum(secret in run.output for secret in secrets(creds))
    assert leaks == 0, f"{leaks} secret(s) of .lab/credentials.json (or the planted one) in the output"


@dataclass(frozen=True)
class LabWrites:
    """What a write to the containers of an inventory would change."""

    digests: dict[int, str]
    tasks: set[str]

    @classmethod
    def read(cls, pve: ProxmoxAPI, vmids: set[int]) -> LabWrites:
        nodes = {int(r["vmid"]): r["node"] for r in pve.cluster.resources.get(type="vm")}
        digests = {vmid: pve.nodes(nodes[vmid]).lxc(vmid).config.get()["digest"]
                   for vmid in sorted(vmids & nodes.keys())}
        ids = {str(vmid) for vmid in vmids} | {""}  # and node-wide tasks
        tasks = {t["upid"] for node in NODES for t in pve.nodes(node).tasks.get(limit=10000)
                 if str(t.get("id", "")) in ids}
        return cls(digests, tasks)

    def new_since(self, before: LabWrites) -> list[str]:
        changed = [f"CT {vmid}: config digest {before.digests.get(vmid)} -> {digest}"
                   for vmid, digest in self.digests.items() if before.digests.get(vmid) != digest]
        changed += [f"CT {vmid} is gone" for vmid in before.digests.keys() - self.digests.keys()]
        return changed + [f"new task {upid}" for upid in sorted(self.tasks - before.tasks)]


@dataclass(frozen=True)
class Case:
    id: str
    file: str  # in the inventory copy
    key: str
    value: object | Callable[[ProxmoxAPI], object]  # "{tmp}" stands for the test's tmp_path
    host: str  # the host the message names
    field: str  # the field the message names
    got: str  # the value as the message shows it (JSON); also "{token_id}", "{value}"
    stage: str  # the play that must refuse: INVENTORY_PLAY (static) or API_PLAY


def _cores_beyond_node(pve: ProxmoxAPI) -> int:
    cores = int(next(n for n in pve.nodes.get() if n["node"] == "pve1")["maxcpu"]) + 1
    if cores > 64:
        pytest.skip(f"pve1 has {cores - 1} CPUs: no core count passes the static range and exceeds it")
    return cores


CASES = [
    Case("duplicate-vmid", "host_vars/app2.yml", "pve_vmid", 121,
         "app2", "pve_vmid", "121", INVENTORY_PLAY),
    Case("duplicate-ip", "host_vars/app2.yml", "pve_lxc_ip", "10.92.3.121/24",
         "app2", "pve_lxc_ip", '"10.92.3.121"', INVENTORY_PLAY),
    Case("ip-outside-subnet", "host_vars/app1.yml", "pve_lxc_ip", "10.92.4.121/24",
         "app1", "pve_lxc_ip", '"10.92.4.121/24"', INVENTORY_PLAY),
    Case("gateway", "host_vars/app1.yml", "pve_network_gateway", "10.92.3.254",
         "app1", "pve_network_gateway", '"10.92.3.254"', INVENTORY_PLAY),
    Case("bridge", "host_vars/app1.yml", "pve_network_bridge", "vmbr0",
         "app1", "pve_network_bridge", '"vmbr0"', INVENTORY_PLAY),
    Case("unknown-node", "host_vars/app1.yml", "pve_node", "pve3",
         "app1", "pve_node", '"pve3"', INVENTORY_PLAY),
    Case("unknown-node-in-pve-nodes", "group_vars/all/pve.yml", "pve_nodes", ["pve1", "pve2", "pve3"],
         "localhost", "pve_nodes", '"pve3"', API_PLAY),
    Case("missing-template", "host_vars/app1.yml", "pve_lxc_ostemplate",
         "local:vztmpl/debian-12-missing_12.0-1_amd64.tar.zst",
         "app1", "pve_lxc_ostemplate", '"local:vztmpl/debian-12-missing_12.0-1_amd64.tar.zst"', API_PLAY),
    Case("template-storage-missing", "host_vars/app1.yml", "pve_lxc_ostemplate",
         "nostore:vztmpl/debian-12-missing_12.0-1_amd64.tar.zst",
         "app1", "pve_lxc_ostemplate", '"nostore:vztmpl/debian-12-missing_12.0-1_amd64.tar.zst"', API_PLAY),
    Case("storage-missing", "host_vars/app1.yml", "pve_storage", "nostore",
         "app1", "pve_storage", '"nostore"', API_PLAY),
    Case("memory-out-of-range", "host_vars/app1.yml", "pve_lxc_memory", 999999,
         "app1", "pve_lxc_memory", "999999", INVENTORY_PLAY),
    Case("cores-out-of-range", "host_vars/app1.yml", "pve_lxc_cores", 0,
         "app1", "pve_lxc_cores", "0", INVENTORY_PLAY),
    Case("rootfs-out-of-range", "host_vars/app1.yml", "pve_lxc_rootfs_size", 4096,
         "app1", "pve_lxc_rootfs_size", "4096", INVENTORY_PLAY),
    Case("cores-beyond-node", "host_vars/app1.yml", "pve_lxc_cores", _cores_beyond_node,
         "app1", "pve_lxc_cores", "{value}", API_PLAY),
    Case("missing-credentials", "group_vars/all/pve.yml", "lab_credentials_file",
         "{tmp}/missing/credentials.json",
         "localhost", "lab_credentials_file", '"{tmp}/missing/credentials.json"', API_PLAY),
    # Staging and production read the secret through vault: without the vault password,
    # pve_api_token_secret stays an undefined template.
    Case("missing-token-secret", "group_vars/all/pve.yml", "pve_api_token_secret",
         "{{ vault_pve_api_token_secret }}",
         "localhost", "pve_api_token_secret", "no value", API_PLAY),
    Case("unreachable-api", "group_vars/all/pve.yml", "pve_api_port", 1,
         "localhost", "pve_api_port", '"127.0.0.1:1"', API_PLAY),
    Case("wrong-token-secret", "group_vars/all/pve.yml", "pve_api_token_secret", WRONG_SECRET,
         "localhost", "pve_api_token_secret", '"{token_id}", secret not shown', API_PLAY),
]


def message_pattern(host: str, field: str, got: str) -> re.Pattern[str]:
    """<host>: <field> <what is wrong> (got <value>); the field may be one of a pair (a/b)."""
    return re.compile(rf"^{re.escape(host)}: (\S+/)?{re.escape(field)}(/\S+)? .+ \(got {re.escape(got)}\)$")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_inventory_is_refused_before_any_change(case: Case, tmp_path: Path, pve: ProxmoxAPI,
                                                    creds: dict) -> None:
    inventory = copy_inventory(tmp_path)
    value = case.value(pve) if callable(case.value) else case.value
    if isinstance(value, str):
        value = value.replace("{tmp}", str(tmp_path))
    set_field(inventory, case.file, case.key, value)
    vmids = inventory_vmids(inventory) | LAB_VMIDS

    before = LabWrites.read(pve, vmids)
    run = run_ansible(inventory, "site.yml", "-v")
    after = LabWrites.read(pve, vmids)

    assert_no_secret(run, creds)
    assert run.returncode == 2, f"site.yml did not refuse the inventory:\n{run}"
    got = (case.got.replace("{tmp}", str(tmp_path)).replace("{token_id}", creds["token_id"])
           .replace("{value}", str(value)))
    pattern = message_pattern(case.host, case.field, got)
    assert any(pattern.match(e) for e in run.errors), (
        f"no failure message like {pattern.pattern!r}; failures: {run.errors}\n{run}")
    stages = [INVENTORY_PLAY] if case.stage == INVENTORY_PLAY else [INVENTORY_PLAY, API_PLAY]
    assert run.plays == stages, f"refused in the wrong stage, or a later stage started: {run.plays}"
    assert not after.new_since(before), f"the lab saw writes: {after.new_since(before)}"


def test_bridge_missing_on_the_node_is_refused_by_the_api_check(tmp_path: Path, creds: dict) -> None:
    """The lab has vmbr0923 on both nodes and the static check admits no other bridge, so
    the API check alone (tag validate_api) gets a bridge the node does not have."""
    inventory = copy_inventory(tmp_path)
    set_field(inventory, "host_vars/app1.yml", "pve_network_bridge", "vmbr0")
    run = run_ansible(inventory, str(VALIDATE), "--tags", "validate_api", "-v")
    assert_no_secret(run, creds)
    assert run.returncode == 2, str(run)
    pattern = message_pattern("app1", "pve_network_bridge", '"vmbr0"')
    assert any(pattern.match(e) and "is not a bridge on node pve1" in e for e in run.errors), str(run)


STORAGE_FIELDS = ("pve_storage", "pve_lxc_ostemplate")  # the root disk's storage, the template's


def _checked_items(output: str, task: str) -> set[str]:
    """The loop items a task of the API play passed, from the output of the run."""
    assert f"TASK [{task}]" in output, f"no task {task!r} ran"
    section = output.split(f"TASK [{task}]", 1)[1].split("\nTASK [", 1)[0]
    return set(re.findall(r"^ok: \[localhost\] => \(item=(.+?)\)(?: =>|$)", section, re.MULTILINE))


def test_lab_inventory_passes(tmp_path: Path, pve: ProxmoxAPI, creds: dict) -> None:
    """The unchanged lab inventory passes, and every API check ran for every container (the
    bridge check above all: the lab cannot offer a node without the bridge). Runs
    playbooks/validate.yml, not site.yml: a passing site.yml would go on and provision."""
    inventory = copy_inventory(tmp_path)
    vmids = inventory_vmids(inventory)
    before = LabWrites.read(pve, vmids)
    run = run_ansible(inventory, str(VALIDATE), "-vvv")
    after = LabWrites.read(pve, vmids)

    assert_no_secret(run, creds)
    assert run.returncode == 0, str(run)
    assert run.plays == [INVENTORY_PLAY, API_PLAY]
    per_container = ("Check the node of every container is a cluster node",
                     "Check the node of every container is online",
                     "Check the bridge of every container is on its node",
                     "Check the bridge of every container is active",
                     "Check the template of every container is on its node")
    for task in per_container:
        assert _checked_items(run.output, task) == LAB_HOSTS, f"{task}:\n{run}"
    per_field = {"Check every container fits its node": ("pve_lxc_cores", "pve_lxc_memory"),
                 "Check the storages of every container are on its node": STORAGE_FIELDS,
                 "Check the storages of every container are enabled and active": STORAGE_FIELDS,
                 "Check the storages of every container hold what it needs": STORAGE_FIELDS}
    for task, fields in per_field.items():
        expected = {f"{host} {field}" for host in LAB_HOSTS for field in fields}
        assert _checked_items(run.output, task) == expected, f"{task}:\n{run}"
    assert not after.new_since(before), f"the lab saw writes: {after.new_since(before)}"


@pytest.mark.parametrize("env", ["staging", "production"])
def test_example_inventories_pass_the_static_checks_without_network(env: str, tmp_path: Path) -> None:
    """Staging and production are examples no test may contact. Their static checks (tag
    validate_inventory) run in an empty network namespace, under strace: they must pass
    without a single attempt to connect or send to an IP address."""
    if not shutil.which("unshare") or not shutil.which("strace"):
        pytest.skip("needs unshare and strace")
    if subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode:
        pytest.skip("cannot create a network namespace here")
    trace = tmp_path / "network.trace"
    env_vars = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        ["unshare", "--net", "strace", "-f", "-qq", "--seccomp-bpf", "-e", "signal=none",
         "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(trace), str(ANSIBLE_PLAYBOOK),
         "-i", f"inventories/{env}", str(VALIDATE), "--tags", "validate_inventory"],
        cwd=REPO, env=env_vars, capture_output=True, text=True, timeout=300, check=False)
    run = Run(proc.returncode, proc.stdout + proc.stderr)

    assert run.returncode == 0, str(run)
    assert run.plays == [INVENTORY_PLAY, API_PLAY], str(run)
    assert "TASK [" not in run.output.split(f"PLAY [{API_PLAY}]", 1)[1], "an API task ran"
    # A connect or send to an IP address is an attempt to contact (a DNS query included).
    attempts = [line for line in trace.read_text().splitlines() if re.search(r"AF_INET6?\b", line)]
    assert not attempts, "IP connections or sends:\n" + "\n".join(attempts[:20])
