# edgecam: `make run` sets everything up and starts the classifier; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# picamera2 comes from apt on Raspberry Pi OS: when $(PYTHON) sees it, the venv
# must see the system's packages too (asked of the Python, not a fixed path).
HAS_PICAMERA2 = $(shell $(PYTHON) -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("picamera2") is None)' 2>/dev/null && echo yes)
VENV_FLAGS ?= $(if $(HAS_PICAMERA2),--system-site-packages,)
# Exactly one OpenCV: the GUI wheel (opencv-python: windows) where the desktop
# libraries it loads are there, the headless wheel where they are not (Pi OS
# Lite, servers: opencv-python would fail to import there). OPENCV=gui|headless
# overrides; the service always gets the headless one.
GUI_LIBS := libGL.so.1 libgthread-2.0.so.0 libxcb.so.1
OPENCV ?= $(if $(shell for lib in $(GUI_LIBS); do /sbin/ldconfig -p 2>/dev/null | grep -q "[[:space:]]$$lib " || echo missing; done),headless,gui)
ARGS ?=
comma := ,

.PHONY: run test install clean check-pi

# install_venv VENV,EXTRAS,OPENCV,EDITABLE[,SOURCE]: a venv with edgecam (from
# SOURCE, default this checkout) and one OpenCV, keeping the system's NumPy when
# the venv sees it (tools/pin_system_numpy.py says why).
# (-B: under sudo, no root-owned __pycache__ in your checkout.)
# Quiet unless something fails: pip's output goes to VENV/install.log, shown
# only when a step fails (it holds setuptools' editable-install notice, a boxed
# "!!" warning every flat-layout project gets, and pip's own chatter).
LOGGED = >>$(1)/install.log 2>&1 || { cat $(1)/install.log; echo "make: installing into $(1) failed (above: pip's output, also in $(1)/install.log)"; exit 1; }
define install_venv
	@echo "installing edgecam and its dependencies into $(1) (pip's output: $(1)/install.log)"
	@$(PYTHON) -m venv $(VENV_FLAGS) $(1)
	@: > $(1)/install.log
	@$(1)/bin/python -m pip install --upgrade pip $(LOGGED)
	@$(1)/bin/python -B tools/pin_system_numpy.py > $(1)/constraints.txt
	@$(1)/bin/python -m pip uninstall --yes $(if $(filter gui,$(3)),opencv-python-headless,opencv-python) >>$(1)/install.log 2>&1 || true
	@$(1)/bin/python -m pip install -c $(1)/constraints.txt $(4) '$(or $(5),.)[$(2),$(3)]' $(LOGGED)
	@$(if $(filter gui,$(3)),$(1)/bin/python -c 'import cv2' 2>/dev/null || { \
	  echo "OpenCV with GUI cannot load here (no desktop libraries?): installing the headless one instead"; \
	  $(1)/bin/python -m pip uninstall --yes opencv-python $(LOGGED); \
	  $(1)/bin/python -m pip install -c $(1)/constraints.txt $(4) '$(or $(5),.)[$(2)$(comma)headless]' $(LOGGED); })
	@$(1)/bin/python -c 'import cv2, numpy; print("installed in $(1): OpenCV", cv2.__version__, "NumPy", numpy.__version__)'
endef

$(VENV)/.installed: setup.py pyproject.toml tools/pin_system_numpy.py
	$(call install_venv,$(VENV),mqtt$(comma)test,$(OPENCV),-e)
	@touch $@

install: $(VENV)/.installed

# The interactive first run: the camera, else (no camera, say a server or a
# laptop with its webcam off) the demo slideshow, saying which. Only here:
# `source: auto` in a config (the service) stays an error without a camera.
run: $(VENV)/.installed
	$(PY) -m edgecam models fetch mobilenet_v3_small
	$(PY) -m edgecam run --demo-fallback $(ARGS)

# Two workers (pytest-xdist), each taking whole test files: the systemd and install suites, which mostly
# wait on systemd's timers and pip, run beside other files. Whole files, because their module fixtures
# (one container, one venv) must stay in one worker. Not --dist loadgroup: with pytest 9.2 it silently
# stops grouping (pytest-xdist issue #1386). `pytest tests` alone runs everything in one process.
test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist loadfile tests

clean:
	rm -rf $(VENV) build *.egg-info

# The README's Raspberry Pi install and first runs, tried in arm64 Debian
# Bookworm and Trixie roots under qemu (as root; slow: tens of minutes the first
# time, not part of `make test`). tools/check-pi/check-pi says how and what.
check-pi: $(VENV)/.installed
	tools/check-pi/check-pi

# The service gets its own venv outside /home (the unit's sandbox hides /home),
# installed from this checkout (not editable, so the checkout may move), with
# the headless OpenCV: it never opens a window.
SERVICE_VENV ?= /opt/edgecam/venv
# The console script, not python -m: that would import the checkout in the
# current folder instead of the copy installed in the service venv.
EDGECAM ?= $(SERVICE_VENV)/bin/edgecam

# Rebuilt whenever the sources change, so that a re-install after `git pull` runs the new code.
SERVICE_SOURCES := setup.py pyproject.toml README.md models/models.yaml systemd/edgecam.service \
	$(wildcard edgecam/*.py edgecam/*/*.py edgecam/*/*/*.py)
SERVICE_BUILD := $(SERVICE_VENV).build

# pip builds inside the source tree (build/, *.egg-info): build a copy, so that
# sudo leaves no root-owned files in your checkout.
$(SERVICE_VENV)/.installed: VENV_FLAGS = --system-site-packages
$(SERVICE_VENV)/.installed: $(SERVICE_SOURCES) tools/pin_system_numpy.py
	rm -rf $(SERVICE_BUILD) && mkdir -p $(SERVICE_BUILD)
	cp -r --parents $(SERVICE_SOURCES) $(SERVICE_BUILD)/
	$(call install_venv,$(SERVICE_VENV),mqtt,headless,,$(SERVICE_BUILD))
	rm -rf $(SERVICE_BUILD)
	touch $@

install-service: $(SERVICE_VENV)/.installed
# The checkout's config.yaml (if any) becomes /etc/edgecam/config.yaml unless
# one is there already; SERVICE_ARGS="--config my.yaml" picks another.
SERVICE_CONFIG ?= $(wildcard $(CURDIR)/config.yaml)
# The venv is ours: uninstalling the service removes it too.
SERVICE_REMOVE ?= $(SERVICE_VENV) $(SERVICE_BUILD)

include systemd/install.mk
