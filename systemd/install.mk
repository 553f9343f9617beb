# systemd service targets; included by the main Makefile.
#   sudo make install-service [SERVICE_ARGS="--config my.yaml --no-enable"]
#   sudo make uninstall-service [SERVICE_ARGS=--purge]
#   make install-service SERVICE_ARGS="--root /tmp/stage --dry-run"
# The service runs the Python that runs the installer (its launcher
# /usr/local/bin/edgecam points there). Through the main Makefile that is the
# service's own venv, SERVICE_VENV (default /opt/edgecam/venv; not under /home,
# /root or /tmp: the unit's sandbox hides those), which it builds first and
# whose console script it sets EDGECAM to: PYTHON= there only names the Python
# that creates that venv. Used on its own (make -f systemd/install.mk), this
# file runs EDGECAM, by default $(PYTHON) or python3 with `-m edgecam` (sudo
# resets PATH): set PYTHON= or EDGECAM= to the environment the service runs from.
EDGECAM ?= $(or $(PYTHON),python3) -m edgecam
SERVICE_ARGS ?=

.PHONY: install-service uninstall-service

install-service:
	$(EDGECAM) service install $(SERVICE_ARGS)

uninstall-service:
	$(EDGECAM) service uninstall $(SERVICE_ARGS)
