"""Errors a user can act on, each with its own exit code.

Every error that reaches the command line is printed as one line (what went
wrong, where, what to do) and the process exits with the error's code, so that
a supervisor such as systemd can tell "fix your input" from "try again".
"""

from __future__ import annotations

# Exit codes. 2 is "the static input you gave is wrong" (config, model, labels,
# usage): restarting will not help, so the systemd unit lists it (with 5 and 6)
# in RestartPreventExitStatus=. 75 is "temporary: try again later" (sysexits'
# EX_TEMPFAIL), which the unit retries. The others may heal by themselves.
EXIT_OK = 0
EXIT_FAILURE = 1  # an unexpected error in a worker thread
EXIT_CONFIG = 2  # bad config file, bad flag, bad model or labels file
EXIT_MODEL = 2
EXIT_SOURCE = 3  # camera absent, vanished, stream cannot be opened
EXIT_OUTPUT = 4  # log/record/state folder not writable, disk full
EXIT_NETWORK = 5  # MQTT broker refused us (bad credentials), HTTP port busy
EXIT_RUNTIME = 6  # no usable TFLite runtime installed
EXIT_FLEET = 7  # edgecam fleet push: a node refused the model, or did not answer in time
EXIT_TEMPFAIL = 75  # a download failed for a reason that may pass: network down, timeout, server error


class EdgecamError(Exception):
    """An error with a one-line, user-facing message and an exit code."""

    exit_code = EXIT_FAILURE
    #: True once the error was logged where it happened, so that whoever stops
    #: the run because of it does not print the same line again.
    logged = False

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(EdgecamError):
    """The configuration (file or flags) is invalid.

    ``problems`` holds every problem found, one line each, so that a user fixes
    them all in one go instead of one per run.
    """

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[str] | str, path: str | None = None, what: str = "config error"):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.path = path
        where = f"{path}: " if path else ""
        if len(self.problems) == 1:
            msg = f"{what}: {where}{self.problems[0]}"
        else:
            msg = f"{what}: {where}{len(self.problems)} problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(msg)


class ModelError(EdgecamError):
    """A model or labels file is missing, corrupt, or not a usable classifier."""

    exit_code = EXIT_MODEL


class RegistryError(EdgecamError):
    """A registry download or verification failed."""

    exit_code = EXIT_MODEL


class DownloadError(RegistryError):
    """A download failed in a way that may heal by itself: the network or
    server is unreachable, a connection timed out or was cut, the server
    answered 5xx. Exit code 75, so that a supervisor retries later, unlike a
    wrong URL (HTTP 404) or a checksum mismatch, which stay RegistryError."""

    exit_code = EXIT_TEMPFAIL


class RuntimeMissingError(EdgecamError):
    """No usable TFLite runtime could be imported."""

    exit_code = EXIT_RUNTIME


class SourceError(EdgecamError):
    """A frame source could not be opened or failed for good."""

    exit_code = EXIT_SOURCE


class OutputError(EdgecamError):
    """An output (log, recording, state folder) cannot be written."""

    exit_code = EXIT_OUTPUT


class NetworkError(EdgecamError):
    """A network peer refused us in a way retrying cannot fix."""

    exit_code = EXIT_NETWORK


class FleetError(EdgecamError):
    """A fleet push that some node failed (it keeps its model; the command said why, node by node)."""

    exit_code = EXIT_FLEET
