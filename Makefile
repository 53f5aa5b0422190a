# Fresh machine: `make demo` or `make test`. Everything installs into .venv from requirements.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# DDS stays on this machine: no multicast beyond loopback, in the demo and in tests alike.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

PACKAGE_FILES := setup.py setup.cfg package.xml $(shell git ls-files lma_perception launch config 2>/dev/null)

# ROS 2 launch and command-line tools (launch, launch_ros, launch_testing, ros2cli, colcon) as
# wheels, where this machine has them: then `make test` also runs the launch tests, `ros2 launch`
# of every launch file and `colcon build` + `colcon test`. Without them those tests skip.
ROS_TOOLS ?= ../shared/ros-tools
ROS_TOOLS_WHEELS := $(wildcard $(ROS_TOOLS)/wheels/*.whl)

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.requirements: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Installed together with requirements.txt, so that its pins hold.
$(VENV)/.ros-tools: $(VENV)/.requirements $(ROS_TOOLS)/requirements.txt $(ROS_TOOLS_WHEELS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r requirements.txt -r $(ROS_TOOLS)/requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(ROS_TOOLS_WHEELS)
	touch $@

# The package itself is a regular (not editable) install so that launch/ and config/ land in
# share/ like a colcon install; it is reinstalled whenever a package file changes.
$(VENV)/.installed: $(VENV)/.requirements $(if $(ROS_TOOLS_WHEELS),$(VENV)/.ros-tools) $(PACKAGE_FILES)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall .
	$(BIN)/lma-perception ament-install > /dev/null
	rm -rf build *.egg-info
	touch $@

demo: setup
	$(BIN)/lma-perception demo

# -rs: say why a test skipped (no ROS launch tools, no GPU).
test: setup
	$(BIN)/python -m pytest -q -rs

bench: setup
	$(BIN)/lma-perception bench model
	$(BIN)/lma-perception bench node_overhead

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
