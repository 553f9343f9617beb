"""Which requests the HTTP output answers: the Host check (DNS rebinding), the Origin check and the token.

DNS rebinding: a web page on ``evil.example`` makes its own name resolve to
this camera's address, and the browser then lets that page read the camera's
answers, since to the browser it is the same site. The request still says
``Host: evil.example``, so answering only requests that name this server
(its address, an IP literal, ``localhost``, this machine's name or
``<name>.local``, or a name in ``http.allowed_hosts``) stops it.

A state-changing request (POST, PUT, DELETE) that a browser sends from a page
of another site carries that site in ``Origin``; it is refused unless the
origin is this server itself. Clients that are not browsers send no Origin
and are not affected.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from urllib.parse import urlsplit

logger = logging.getLogger("edgecam.outputs.http")  # one logger for the whole HTTP output

#: Methods that change something on the server.
STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})

# Paths a browser opens by itself (<img src>, the page, its fetch() calls).
# A browser cannot put an Authorization header on an <img src>, so these also
# accept the token as ``?token=``. The trade-off: a token in a URL can end up
# in browser history, bookmarks and proxy logs. We keep it out of our own
# access log (redacted) and out of Referer headers (Referrer-Policy), and keep
# /metrics header-only since Prometheus can send a bearer token.
_QUERY_TOKEN_PATHS = {"/", "/index.html", "/stream.mjpg", "/snapshot.jpg", "/api/latest", "/api/regions"}


def token_ok(token: bytes | None, headers, query: dict, path: str, query_paths=frozenset()) -> bool:
    """Whether a request for ``path`` carries ``token`` (always, when there is none; /healthz needs none).

    ``query_paths``: more paths that take ``?token=`` (the hub's /api/cameras, which its page fetches)."""
    if token is None or path == "/healthz":
        return True
    given = b""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        given = auth[7:].strip().encode("utf-8", "replace")
    elif "token" in query and (path in _QUERY_TOKEN_PATHS or path in query_paths
                               or path.startswith(("/region/", "/events", "/api/events", "/teach",
                                                   "/api/teach"))):
        given = query["token"][0].encode("utf-8", "replace")
    return hmac.compare_digest(given, token)


def warn_if_open(host: str, port: int) -> None:
    """One WARNING when a server without a token listens where other machines reach it (``http.host``)."""
    if not loopback(host):
        logger.warning("http: the page, the live picture and the events on port %d are open to anyone who can "
                       "reach %s, without a token; set http.token_file to a file holding one (openssl rand -hex 16), "
                       "or http.host: 127.0.0.1", port, host or "this machine")


def loopback(host: str) -> bool:
    """Whether ``host`` (http.host) is reachable from this machine only."""
    if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name (it may resolve to any address) or the empty "any address"


class HostGuard:
    """Decides whether a request's Host and Origin headers may be answered (see the module docstring).

    Args:
        bound: the address the server listens on (``http.host``).
        allowed: ``http.allowed_hosts``: more names (``*`` allows any; ``.example.org`` any name under it).
    """

    def __init__(self, bound: str, allowed=()):
        self.any = "*" in allowed
        names = {"localhost", _norm(bound)}
        try:
            me = socket.gethostname().lower()
        except OSError:
            me = ""
        if me:
            names |= {me, f"{me}.local", me.split(".")[0], f"{me.split('.')[0]}.local"}
        self.names = names | {_norm(a) for a in allowed if not a.startswith(".")}
        self.suffixes = tuple(a.lower() for a in allowed if a.startswith(".")) + (".localhost",)

    def host_ok(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header (None: none sent, as HTTP/1.0 allows) is for us."""
        if host is None or self.any:
            return True
        name = _host_name(host)
        if name is None:
            return False
        if _is_ip(name):
            return True
        return name in self.names or name.endswith(self.suffixes)

    def refusal(self, method: str, headers) -> str | None:
        """None when the request may be answered, else why not (one line, for a 403)."""
        host = headers.get("Host")
        if not self.host_ok(host):
            return (f"Host {host[:100]!r} is not a name of this server (DNS rebinding?); "
                    "add it to http.allowed_hosts if it is")
        origin = headers.get("Origin")
        if method in STATE_CHANGING and origin is not None and not self._same_origin(origin, host):
            return f"{method} from another site (Origin {origin[:100]!r}) refused"
        return None

    @staticmethod
    def _same_origin(origin: str, host: str | None) -> bool:
        try:
            url = urlsplit(origin.strip())
            return url.scheme in ("http", "https") and host is not None and url.netloc.lower() == host.strip().lower()
        except ValueError:
            return False


def _norm(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _host_name(host: str) -> str | None:
    """The name (or IP literal) in a Host header ``name[:port]`` / ``[v6][:port]``; None if malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        inside, sep, port = host[1:].partition("]")
        if not sep or (port and not (port.startswith(":") and port[1:].isascii() and port[1:].isdigit())):
            return None
        return inside
    name, sep, port = host.rpartition(":")
    if not sep:
        name = host
    elif not (port.isascii() and port.isdigit()):
        return None
    return name.rstrip(".") or None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
