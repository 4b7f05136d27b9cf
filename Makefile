# Operators' entry points. Everything installs what it needs on first use:
# Debian packages (as root), the .venv from requirements.txt, and the lab.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY := $(BIN)/python
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help site test lab lab-down lab-status lint unit test-rules test-lab bench venv host-deps

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# rsync: the lab's snapshot copy, which the unit tests exercise before any lab exists.
host-deps: ## Debian packages the controller needs (python3-venv, git, ssh client, rsync)
	@if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || ! command -v ssh >/dev/null \
	    || ! command -v rsync >/dev/null; then \
	  echo "[make] installing python3, python3-venv, openssh-client and rsync from Debian"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    python3 python3-venv openssh-client git rsync; \
	fi

venv: $(VENV)/.installed ## the Python virtualenv from requirements.txt

# host-deps is order-only: checked on every run (cheap), without forcing a venv rebuild.
$(VENV)/.installed: requirements.txt | host-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(BIN)/ansible-galaxy collection install -r requirements.yml
	touch $@

lab: venv ## set up and start the local Proxmox lab (idempotent)
	$(PY) -m lab up

lab-down: venv ## remove every lab container, the bridge and the server
	$(PY) -m lab down

lab-status: venv ## show the lab (exit 3 when it is not up)
	$(PY) -m lab status

site: lab ## run site.yml on the lab
	$(BIN)/ansible-playbook site.yml

lint: venv ## yamllint, ansible-lint, ruff
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint
	$(BIN)/ruff check .

unit: venv ## unit tests (no lab needed)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# promtool and amtool for the rule tests, from Debian's packages but not installed: an
# installed prometheus package would start a server on this machine. The .debs are
# downloaded once into .cache/tools and unpacked there (dpkg-deb -x).
TOOLS := $(CURDIR)/.cache/tools
PROMTOOL := $(TOOLS)/root/usr/bin/promtool
AMTOOL := $(TOOLS)/root/usr/bin/amtool
RENDERED_RULES := $(CURDIR)/.cache/monitoring/rendered

$(TOOLS)/.prometheus-tools:
	mkdir -p $(TOOLS)/debs $(TOOLS)/root
	cd $(TOOLS)/debs && { apt-get download -q prometheus prometheus-alertmanager \
	  || { apt-get update -q && apt-get download -q prometheus prometheus-alertmanager; }; }
	for deb in $(TOOLS)/debs/*.deb; do dpkg-deb -x "$$deb" $(TOOLS)/root; done
	$(PROMTOOL) --version >/dev/null && $(AMTOOL) --version >/dev/null
	touch $@

test-rules: venv $(TOOLS)/.prometheus-tools ## alert rules: rendered, checked, unit-tested (promtool, amtool)
	rm -rf $(RENDERED_RULES)
	$(BIN)/ansible-playbook -i localhost, tests/rules/render.yml -e rendered_dir=$(RENDERED_RULES)
	$(PROMTOOL) check rules $(RENDERED_RULES)/scheduler.rules.yml
	$(AMTOOL) check-config $(RENDERED_RULES)/alertmanager.yml
	$(PROMTOOL) test rules tests/rules/*.test.yml
	$(BIN)/pytest tests/rules $(PYTEST_ARGS)

test-lab: lab ## integration tests against the running lab
	$(BIN)/pytest tests/lab $(PYTEST_ARGS)

test: lint unit test-rules test-lab ## everything CI runs

bench: lab ## benchmarks, one JSON object per figure
	@for script in bench/*.py; do \
	  [ "$$script" = bench/benchlib.py ] && continue; \
	  echo "# $$script" >&2; $(PY) "$$script"; \
	done
