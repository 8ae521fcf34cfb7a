# CKA Lens: `make run` starts the app, `make test` runs every test. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run shipped shipped-calibrations test lint browser bench gpu-wheels container-test clean

# pip compiles the packages' bytecode on one core; compileall does it on both (21 s less for a fresh venv), leaving out
# the packages' own test folders (a fifth of their code, never imported here). A failure there is a package's file for
# another Python version (torch ships py312-only ones), which pip's own step skips too.
COMPILE := $(PY) -m compileall -q -j 0 -x /tests/ $(VENV)/lib >/dev/null 2>&1 || true

# $(call INSTALL,FILE): the venv made where it is missing, then FILE's packages installed and compiled.
define INSTALL
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -r $(1)
	$(COMPILE)
endef

$(VENV)/.runtime: requirements.txt
	$(call INSTALL,requirements.txt)
	touch $@

# requirements-dev.txt includes requirements.txt: one install (one resolve, one compile) sets up both.
$(VENV)/.dev: requirements.txt requirements-dev.txt
	$(call INSTALL,requirements-dev.txt)
	touch $@ $(VENV)/.runtime

# The server listens at once and warms up behind it (ui.serve), reading the default comparison from data/shipped.
run: $(VENV)/.runtime
	$(PY) -m ui.serve --server.headless true --server.port $(PORT) --browser.gatherUsageStats false

# The default comparison and its ceilings shipped in data/shipped (ui.shipped), computed afresh on the CPU with no
# store read and the app's defaults: run it after changing the engine, the weights' digest or the defaults.
shipped: $(VENV)/.runtime
	CKA_LENS_STORE=off CKA_LENS_SHIPPED=off CKA_LENS_FLOOR_PAIRS= CKA_LENS_CALIBRATION_IMAGES= CUDA_VISIBLE_DEVICES= \
		$(PY) -m ui.shipped

# Only the default networks' calibrations (seconds), keeping the shipped results whose keys still fit: after a change
# of the calibration's rules, the weights' digest or the loader's starting choices that leaves the results alone.
shipped-calibrations: $(VENV)/.runtime
	CKA_LENS_STORE=off CKA_LENS_SHIPPED=off CKA_LENS_FLOOR_PAIRS= CKA_LENS_CALIBRATION_IMAGES= CUDA_VISIBLE_DEVICES= \
		$(PY) -m ui.shipped --calibrations

# Debian's Chromium for the real-browser test (Playwright drives it; it never downloads a browser).
browser:
	@if [ -x /usr/bin/chromium ]; then true; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium missing and cannot be installed here: the browser test will be skipped"; fi

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Two workers for our two cores (pytest-xdist; three were slower from a fresh clone: 564 s against 457 to 503), each
# taking the next test as it finishes one (--maxschedchunk 1: xdist otherwise deals each worker a run of consecutive
# tests first, and one worker got every slow test). Our own packages are compiled first: this machine writes no
# bytecode (PYTHONDONTWRITEBYTECODE=1), so every process the tests start (servers, the command line, the GPU check's
# steps) would compile them again on import.
test: $(VENV)/.dev browser lint gpu-wheels
	$(PY) -m compileall -q -j 0 core models ui cli training bench tests >/dev/null
	$(PY) -m pytest -n 2 --maxschedchunk 1 --durations=15

# Peers go in with --no-deps (bench/requirements.txt lists what they import), so torch/numpy stay as pinned.
bench: $(VENV)/.dev
	$(PY) -m pip install -q --no-deps -r bench/requirements.txt
	$(PY) -c "import importlib.metadata as m, sys; v = m.version('torch'); sys.exit(0 if v.startswith('2.14.1') else f'torch changed: {v}')"
	$(PY) bench/cka_engine.py --json bench/results/cka_engine.json
	$(PY) bench/end_to_end.py --sizes 1000,10000 --peer-sizes 1000 --loading-repeats 3 --timeout 3600 \
		--json bench/results/end_to_end.json

# Wheels for bench/gpu_check.sh, whose GPU machine has no network: for its Python (3.12, x86_64) and for
# this venv's (the CPU dry run in `make test`). Git-ignored; carry bench/gpu_wheels/cp312 to that machine.
GPU_WHEELS := bench/gpu_wheels
GPU_PLATFORMS := --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
$(GPU_WHEELS)/.ready: bench/gpu_requirements.txt $(VENV)/.runtime
	$(PY) -m pip download -q --no-deps --only-binary=:all: -r bench/gpu_requirements.txt -d $(GPU_WHEELS)/cp312 \
		--python-version 3.12 --implementation cp --abi cp312 $(GPU_PLATFORMS)
	$(PY) -m pip download -q --no-deps --only-binary=:all: -r bench/gpu_requirements.txt \
		-d $(GPU_WHEELS)/$$($(PY) -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
	touch $@

gpu-wheels: $(GPU_WHEELS)/.ready

# The Space's image built and visited for real (slow, needs root for dockerd and debootstrap; not in `make test`).
container-test: $(VENV)/.dev browser
	$(PY) tests/container/drive.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
