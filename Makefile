# Fresh machine: `make demo` or `make test`. Everything installs into .venv from requirements.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# DDS stays on this machine: no multicast beyond loopback, in the demo and in tests alike.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

PACKAGE_FILES := setup.py setup.cfg package.xml $(shell git ls-files lma_perception launch config 2>/dev/null)

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.requirements: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# The package itself is a regular (not editable) install so that launch/ and config/ land in
# share/ like a colcon install; it is reinstalled whenever a package file changes.
$(VENV)/.installed: $(VENV)/.requirements $(PACKAGE_FILES)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall .
	$(BIN)/lma-perception ament-install > /dev/null
	rm -rf build *.egg-info
	touch $@

demo: setup
	$(BIN)/lma-perception demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/lma-perception bench model
	$(BIN)/lma-perception bench node_overhead

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
