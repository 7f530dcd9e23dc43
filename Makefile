# Set-up is part of every target: a fresh machine needs only python3.11 and make.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# DAGSTER_HOME is not set here: an exported one is used as it is, else the entry points put the
# instance in <data dir>/dagster/<profile> (proj_assets/platform/instance_home.py).
export PROJ_PROFILE ?= demo

.PHONY: install lint demo test test-slow ui validate bench clean-data status instance-home browser redis netns-tools cluster-up cluster-env cluster-down

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first, alone and pinned: 2.13.0 is the CPU wheel; a looser spec pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# GROUPS="market scaling" limits the demo to those domains (their upstream must exist).
demo: $(STAMP)
	$(PY) -m proj_assets.entrypoints.demo $(foreach g,$(GROUPS),--group $(g))

# The rules CI enforces before any test: formatting, lint and types (docs/architecture.md).
lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The cluster tests run in a pytest process of their own, after the rest of the suite: they load
# the code location under a cluster profile, and that module state must not leak into other tests.
test: $(STAMP) redis netns-tools lint
	$(PY) -m pytest -m "not slow" -n 2 -q --ignore=proj_tests/cluster
	$(PY) -m pytest proj_tests/cluster -m "not slow" -q

test-slow: $(STAMP) browser
	$(PY) -m pytest -m slow -q

validate: $(STAMP)
	$(VENV)/bin/dagster definitions validate -w workspace.yaml

# The status report (markdown) from the instance at DAGSTER_HOME.
status: $(STAMP)
	$(PY) -m proj_assets.entrypoints.cli status

# The instance of this profile and data dir, prepared: `export DAGSTER_HOME=$$(make -s instance-home)`.
# No set-up step: its output is read by $(...), and any other target installs first.
instance-home:
	@$(PY) -m proj_assets.entrypoints.cli instance-home

# Headless Chromium for the UI test: the Debian package (needs root), never a browser download.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# Redis for cluster mode and its test: Debian's redis-server package (needs root), never a download.
redis:
	@command -v redis-server >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)

# `ip` for the multi-host cluster test (worker hosts as network namespaces): Debian's iproute2 (needs root).
netns-tools:
	@command -v ip >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2)

# Cluster mode on this host (docs/scaling-out.md): PostgreSQL 15, Redis, the daemon and WORKERS
# Celery workers on 127.0.0.1 (PROJ_CLUSTER_BIND=<address> PROJ_CLUSTER_ALLOW=<cidr> for worker
# hosts), free ports, passwords generated; `eval "$$(make -s cluster-env)"` then uses it.
WORKERS ?= 2
cluster-up: $(STAMP) redis
	$(PY) -m proj_cluster up --workers $(WORKERS)

cluster-env:
	@$(PY) -m proj_cluster env

cluster-down:
	$(PY) -m proj_cluster down

# `dg dev` (webserver on 127.0.0.1:$(UI_PORT) + daemon); Ctrl-C or SIGTERM stops it and its children.
UI_PORT ?= 3000
ui: $(STAMP)
	$(PY) -m proj_assets.entrypoints.ui --port $(UI_PORT)

clean-data:
	rm -rf data/dagster data/warehouse data/artifacts data/optuna
