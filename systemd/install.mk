# systemd service targets; included by the main Makefile.
#   sudo make install-service [SERVICE_ARGS="--config my.yaml --no-enable"]
#   sudo make uninstall-service [SERVICE_ARGS=--purge]
#   make install-service SERVICE_ARGS="--root /tmp/stage --dry-run"
# The service runs the Python that runs the installer (its launcher
# /usr/local/bin/edgecam points there), so pick the environment with PYTHON=,
# e.g. sudo make install-service PYTHON=/opt/edgecam/venv/bin/python.
# Not under /home, /root or /tmp: the unit's sandbox hides those.
# `python -m edgecam` rather than `edgecam`: sudo resets PATH.
EDGECAM ?= $(or $(PYTHON),python3) -m edgecam
SERVICE_ARGS ?=

.PHONY: install-service uninstall-service

install-service:
	$(EDGECAM) service install $(SERVICE_ARGS)

uninstall-service:
	$(EDGECAM) service uninstall $(SERVICE_ARGS)
