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
# A config file to install (SERVICE_ARGS may name another: the last --config wins).
SERVICE_CONFIG ?=
# Folders the including Makefile created for the service, removed on uninstall.
SERVICE_REMOVE ?=

.PHONY: install-service uninstall-service

install-service:
	$(EDGECAM) service install $(if $(SERVICE_CONFIG),--config $(SERVICE_CONFIG)) $(SERVICE_ARGS)

# Not for a dry run or a staging tree (--root): those leave this system alone.
_SERVICE_REMOVE = $(if $(filter --dry-run --root --root=%,$(SERVICE_ARGS)),,$(SERVICE_REMOVE))

uninstall-service:
	$(EDGECAM) service uninstall $(SERVICE_ARGS)
	$(if $(_SERVICE_REMOVE),rm -rf $(_SERVICE_REMOVE))
	$(if $(_SERVICE_REMOVE),-rmdir --ignore-fail-on-non-empty $(sort $(dir $(_SERVICE_REMOVE))))
