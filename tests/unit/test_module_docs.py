"""Every module in library/ documents itself: ansible-doc renders it without warnings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "library").glob("*.py"))
# Modules that talk to the PVE API share its auth options (doc_fragments/pve_api.py).
PVE_MODULES = {m for m in MODULES if "module_utils.pve_api" in (REPO / "library" / f"{m}.py").read_text()}


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_the_module(module):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-M",
                           str(REPO / "library"), module], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    assert "EXAMPLES:" in proc.stdout
    assert "RETURN VALUES:" in proc.stdout
    if module in PVE_MODULES:
        assert "api_token_secret" in proc.stdout, "the doc fragment with the auth options renders"


@pytest.mark.parametrize("module", MODULES)
def test_documentation_declares_check_and_diff_support(module):
    source = (REPO / "library" / f"{module}.py").read_text()
    doc = yaml.safe_load(source.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])
    assert doc["attributes"]["check_mode"]["support"] in {"full", "partial"}
    assert "diff_mode" in doc["attributes"]
    if module in PVE_MODULES:
        assert "pve_api" in doc.get("extends_documentation_fragment", []), \
            "the shared auth options come from doc_fragments/pve_api.py"
