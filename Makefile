# edgecam: `make run` sets everything up and starts the classifier; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# picamera2 comes from apt on Raspberry Pi OS: let the venv see it when it is there.
VENV_FLAGS ?= $(if $(wildcard /usr/lib/python3/dist-packages/picamera2),--system-site-packages,)
ARGS ?=

.PHONY: run test install clean

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[mqtt,test]'
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m edgecam models fetch mobilenet_v3_small
	$(PY) -m edgecam run $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info

# The service gets its own venv outside /home (the unit's sandbox hides /home),
# installed from this checkout (not editable, so the checkout may move).
SERVICE_VENV ?= /opt/edgecam/venv
# The console script, not python -m: that would import the checkout in the
# current folder instead of the copy installed in the service venv.
EDGECAM ?= $(SERVICE_VENV)/bin/edgecam

$(SERVICE_VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv --system-site-packages $(SERVICE_VENV)
	$(SERVICE_VENV)/bin/python -m pip install --quiet '.[mqtt]'
	touch $@

install-service: $(SERVICE_VENV)/.installed

include systemd/install.mk
