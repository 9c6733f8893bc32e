# LaWAM for ROS 2: the two commands are `make demo` and `make test`; both bootstrap first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

SYSTEM ?= franka_pick_place
DURATION ?= 60
CHECKPOINT ?=
RUN ?= $(shell date +%Y%m%d-%H%M%S)
DEMO_DIR := outputs/demo/$(RUN)
PYTEST_ARGS ?=

.PHONY: all bootstrap build demo test benchmarks clean

all: test

# Idempotent: venv, pinned dependencies, wheel fix-ups, colcon build (seconds when nothing changed).
bootstrap:
	@tools/bootstrap.sh

build: bootstrap

# Run a whole system headless for DURATION wall-clock seconds; outputs land in outputs/demo/<run>/.
demo: bootstrap
	@. tools/env.sh && mkdir -p $(DEMO_DIR) && \
	  { lawam launch $(SYSTEM) demo_output:=$(abspath $(DEMO_DIR)) $(if $(CHECKPOINT),checkpoint:=$(if $(filter preset:%,$(CHECKPOINT)),$(CHECKPOINT),$(abspath $(CHECKPOINT)))) --duration $(DURATION) --log-dir $(DEMO_DIR)/logs \
	    || { status=$$?; rmdir $(DEMO_DIR)/logs $(DEMO_DIR) 2>/dev/null; exit $$status; }; } && \
	  echo "demo outputs: $(abspath $(DEMO_DIR))" && ls $(DEMO_DIR)

test: bootstrap
	@. tools/env.sh && python -m pytest $(PYTEST_ARGS)

benchmarks: bootstrap
	@. tools/env.sh && for b in benchmarks/*.py; do \
		case $$b in */ablations.py) continue;; esac; echo "== $$b"; python $$b; done  # ablations: hours, run by hand

clean:
	rm -rf build install log outputs
