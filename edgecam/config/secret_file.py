"""Reading a secret (HTTP token, MQTT password) from the file the config names.

Secrets live in files (``chmod 600``), never in the config itself; a file
that cannot be used is bad input (exit 2), named by its config key.
"""

from __future__ import annotations

from edgecam.errors import ConfigError


def read_secret(key: str, path: str, *, strip: str | None = None, allow_empty: bool = False,
                hint: str = "put the secret in it") -> str:
    """The text of ``path`` without surrounding ``strip`` characters (None: whitespace).

    Raises ConfigError naming ``key`` when the file is unreadable, not UTF-8,
    or (unless ``allow_empty``) empty.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip(strip)
    except OSError as e:
        raise ConfigError(f"{key}: cannot read {path} ({e.strerror or e}); {hint}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text; {hint}") from None
    if not text and not allow_empty:
        raise ConfigError(f"{key}: {path} is empty; {hint}")
    return text
