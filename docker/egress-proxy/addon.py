"""claude-bottle egress-proxy addon: refuse secrets the agent sends, inject route credentials it never holds.

Loads routes.json (written by the launcher, format version 2):

    {"version": 2,
     "routes": [{"host": "api.github.com", "path_prefix": "/repos/acme/",
                 "auth_scheme": "token", "token_env": "CLAUDE_BOTTLE_TOKEN_0"}],
     "dlp": {"max_body_bytes": 5242880,
             "patterns": [{"name": "GitHub Token", "regex": "gh[pousr]_[A-Za-z0-9_]{36,}"}, ...]}}

Every request the agent sends is scanned first (dlp.py: URL, headers, body, with pipelock's default
patterns); a match is answered 403 and logged, and nothing is injected. pipelock passes credentialed
hosts through without decrypting them (it would refuse the injected credential itself), so for those
hosts this scan is the only one.

For a request over TLS whose *connection* host (the CONNECT authority / SNI that mitmproxy opened the
upstream connection for, never the spoofable Host header) and *normalised* path match a route, it
removes any client-supplied header of the credential's name and sets it from the token in this
process's environment (the slot named by token_env). Plain-HTTP requests never get a credential: it
would cross the internet in the clear. Token values are never logged.

Works on mitmproxy 8.1.1 (Debian bookworm) and 12.x.
"""

import base64
import json
import logging
import os
import posixpath
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dlp  # noqa: E402 - beside this file in the image

ROUTES_VERSION = 2
# What an echoed credential becomes in a response.
REDACTED = "[credential removed by claude-bottle]"
DEFAULT_ROUTES_FILE = "/etc/claude-bottle/egress-proxy/routes.json"
ROUTES_ENV = "CLAUDE_BOTTLE_ROUTES"
# Decoding stops after this many rounds; a path still changing then is not trusted with a credential.
MAX_DECODE_ROUNDS = 4

_log = logging.getLogger("claude_bottle.egress_proxy")


def log(level, msg, *args):
    """mitmproxy 8 prints only its own ctx.log; 9 and later route Python logging to the console."""
    try:
        from mitmproxy import ctx, version

        if int(version.VERSION.split(".")[0]) < 9 and getattr(ctx, "log", None) is not None:
            getattr(ctx.log, "warn" if level == "warning" else level)(msg % args)
            return
    except Exception:  # noqa: BLE001 - outside mitmproxy (unit tests) plain logging is fine
        pass
    getattr(_log, level)(msg, *args)


class RouteError(Exception):
    """routes.json is unusable: the proxy must not start half-configured."""


def credential_header(scheme, token):
    """(header name, value) for an auth scheme: bearer | token | basic | header:<Name>."""
    if scheme == "bearer":
        return "Authorization", "Bearer " + token
    if scheme == "token":
        return "Authorization", "token " + token
    if scheme == "basic":
        return "Authorization", "Basic " + base64.b64encode(token.encode()).decode("ascii")
    if scheme.startswith("header:") and len(scheme) > len("header:"):
        return scheme[len("header:"):], token
    raise RouteError("unknown auth_scheme %r" % scheme)


def normalise_path(raw):
    """The path a server could resolve `raw` to: query dropped, percent-decoding repeated until
    stable, backslashes as slashes, `//` collapsed, `.`/`..` resolved. None when decoding does not
    settle (deliberately ambiguous input gets no credential)."""
    path = raw.split("?", 1)[0].split("#", 1)[0]
    for _ in range(MAX_DECODE_ROUNDS):
        try:
            decoded = urllib.parse.unquote(path, errors="strict") if "%" in path else path
        except UnicodeDecodeError:
            return None  # not UTF-8 once decoded: ambiguous, no credential
        if decoded == path:
            break
        path = decoded
    else:
        return None
    path = path.replace("\\", "/")
    if not path.startswith("/"):
        path = "/" + path
    trailing = path.endswith("/") and path != "/"
    path = posixpath.normpath(path)
    # normpath keeps a leading "//" (POSIX allows it to mean something else); we do not.
    while path.startswith("//"):
        path = path[1:]
    if trailing and path != "/":
        path += "/"
    return path


def segment_path(raw):
    """The path as a server that splits on `/` *before* percent-decoding routes it: each segment
    decoded on its own (an encoded slash stays inside its segment), `.`/`..` segments resolved,
    empty segments dropped. None when a segment's decoding does not settle."""
    path = raw.split("?", 1)[0].split("#", 1)[0]
    out = []
    for segment in path.split("/"):
        for _ in range(MAX_DECODE_ROUNDS):
            try:
                decoded = urllib.parse.unquote(segment, errors="strict") if "%" in segment else segment
            except UnicodeDecodeError:
                return None
            if decoded == segment:
                break
            segment = decoded
        else:
            return None
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        # An encoded separator stays part of the segment, re-encoded so it cannot join two.
        out.append(segment.replace("%", "%25").replace("/", "%2F").replace("\\", "%5C"))
    trailing = path.endswith("/") and len(out) > 0
    return "/" + "/".join(out) + ("/" if trailing else "")


def prefix_matches(prefix, path):
    """Segment-aware: /repos/acme matches /repos/acme and /repos/acme/x, not /repos/acmecorp."""
    if prefix is None or prefix == "/":
        return True
    if path is None:
        return False
    if prefix.endswith("/"):
        return path.startswith(prefix) or path == prefix[:-1]
    return path == prefix or path.startswith(prefix + "/")


class Route:
    def __init__(self, entry, environ):
        try:
            self.host = entry["host"].lower().rstrip(".")
            self.path_prefix = entry.get("path_prefix")
            self.scheme = entry["auth_scheme"]
            self.token_env = entry["token_env"]
        except (KeyError, AttributeError, TypeError) as e:
            raise RouteError("a route lacks %s" % e)
        token = environ.get(self.token_env)
        if not token:
            raise RouteError("route %s: token slot %s is not set" % (self.host, self.token_env))
        if any(c in token for c in "\r\n\0"):
            raise RouteError("route %s: token slot %s holds a control character" % (self.host, self.token_env))
        self.header, self._value = credential_header(self.scheme, token)
        self.token = token

    def describe(self):
        return "%s%s [auth:%s]" % (self.host, self.path_prefix or "", self.scheme)


class Config:
    def __init__(self, routes, patterns, max_body):
        self.routes = routes
        self.patterns = patterns
        self.max_body = max_body


def load_config(path, environ):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise RouteError("failed to read %s: %s" % (path, e))
    if not isinstance(doc, dict) or doc.get("version") != ROUTES_VERSION:
        raise RouteError("%s: expected version %d" % (path, ROUTES_VERSION))
    routes = [Route(entry, environ) for entry in doc.get("routes", [])]
    # Longest prefix first: the most specific route wins.
    routes.sort(key=lambda r: len(r.path_prefix or ""), reverse=True)
    try:
        patterns, max_body = dlp.load_patterns(doc.get("dlp"))
    except (dlp.PatternError, ValueError, TypeError) as e:
        raise RouteError("%s: %s" % (path, e))
    return Config(routes, patterns, max_body)


def load_routes(path, environ):
    return load_config(path, environ).routes


def connection_host(flow):
    """The host mitmproxy connected (or tunnelled) to for this flow: the CONNECT authority or SNI.
    In upstream mode server_conn.address is still the target; `via` holds the upstream proxy."""
    server = flow.server_conn
    sni = getattr(server, "sni", None)
    if isinstance(sni, bytes):  # mitmproxy < 7 kept bytes
        sni = sni.decode("idna", "replace")
    address = getattr(server, "address", None)
    host = address[0] if address else sni
    if not host:
        return None
    return str(host).lower().rstrip(".")


def is_tls(flow):
    return flow.request.scheme == "https"


class EgressProxy:
    def __init__(self, environ=None):
        self.environ = os.environ if environ is None else environ
        self.routes = []
        self.patterns = []
        self.max_body = dlp.DEFAULT_MAX_BODY_BYTES

    def load(self, loader):
        loader.add_option(
            name="routes_file",
            typespec=str,
            default=os.environ.get(ROUTES_ENV, DEFAULT_ROUTES_FILE),
            help="claude-bottle routes.json (credential injection rules)",
        )

    def configure(self, updated):
        from mitmproxy import ctx

        if "routes_file" in updated:
            self.set_config(load_config(ctx.options.routes_file, self.environ))

    def set_config(self, config):
        self.set_routes(config.routes)
        self.patterns, self.max_body = config.patterns, config.max_body

    def set_routes(self, routes):
        self.routes = routes
        for r in routes:
            log("info", "egress-proxy: route %s", r.describe())

    def running(self):
        # The readiness line the launcher waits for.
        log(
            "warning",
            "egress-proxy: ready (%d credentialed routes, %d DLP patterns)",
            len(self.routes),
            len(self.patterns),
        )

    def route_for(self, flow):
        if not self.routes or not is_tls(flow):
            return None
        host = connection_host(flow)
        if host is None:
            return None
        # Servers differ on whether an encoded slash separates segments: a credential goes only where
        # both readings put the request under the route's prefix (`/user/..%2Frepos/acme/x` is
        # /repos/acme/x to one and under /user/ to the other, so it gets no /repos/acme/ token).
        path = normalise_path(flow.request.path)
        split = segment_path(flow.request.path)
        for route in self.routes:
            if route.host != host:
                continue
            if prefix_matches(route.path_prefix, path) and prefix_matches(route.path_prefix, split):
                return route
        return None

    def scan(self, flow, route):
        """A dlp.Finding for what the agent sent, or None. The header a route replaces is not
        scanned: it never leaves (a placeholder, or whatever the agent put there)."""
        req = flow.request
        return dlp.scan_request(
            self.patterns,
            self.max_body,
            req.pretty_url if hasattr(req, "pretty_url") else req.url,
            list(req.headers.items(multi=True)),
            req.raw_content or b"",
            req.headers.get("content-type", ""),
            req.headers.get("content-encoding", ""),
            skip_headers=(route.header,) if route else (),
        )

    def _refuse(self, flow, reason, kind):
        """403 to the agent, one log line naming method, host and why (never a path or a value:
        the secret may be in the path)."""
        from mitmproxy import http

        host = connection_host(flow) or flow.request.host
        log("warning", "egress-proxy: blocked %s %s: request %s", flow.request.method, host, reason)
        flow.response = http.Response.make(
            403,
            ("blocked by claude-bottle's egress-proxy: request %s (%s)\n" % (reason, kind)).encode(),
            {"Content-Type": "text/plain", "X-Claude-Bottle-Blocked": kind},
        )

    def request(self, flow):
        # Fail closed: mitmproxy forwards a flow whose hook raised, unscanned, so any error here
        # becomes a refusal instead.
        try:
            self._request(flow)
        except Exception as e:  # noqa: BLE001
            flow.metadata.pop("claude_bottle_route", None)
            self._refuse(flow, "could not be checked (%s)" % type(e).__name__, "error")

    def _request(self, flow):
        route = self.route_for(flow)
        req = flow.request
        if req.method.upper() == "TRACE":
            # TRACE echoes the request, injected credential included, back to the agent.
            return self._refuse(flow, "uses TRACE", "method")
        if route is not None and "upgrade" in (req.headers.get("connection", "").lower()):
            # What flows after an upgrade (WebSocket, raw TCP) is not scanned: no credential for it.
            return self._refuse(flow, "asks for a protocol upgrade on a credentialed route", "upgrade")
        finding = self.scan(flow, route)
        if finding is not None:
            return self._refuse(flow, str(finding), "dlp")
        if route is None:
            return
        # Whatever the agent put there is replaced, never merged.
        while route.header in req.headers:
            del req.headers[route.header]
        req.headers[route.header] = route._value
        flow.metadata["claude_bottle_route"] = route
        log("info", "egress-proxy: injected %s for %s", route.header, route.describe())

    def response(self, flow):
        """An upstream that echoes the injected credential (a debug endpoint, an error page) must
        not hand it to the agent: it is replaced in the response's headers and body."""
        route = flow.metadata.get("claude_bottle_route")
        resp = flow.response
        if route is None or resp is None:
            return
        try:
            secrets = {route._value, route.token}
            for key, value in list(resp.headers.items(multi=True)):
                if any(sec in value for sec in secrets):
                    resp.headers[key] = REDACTED
            content = resp.content
            if content and any(sec.encode() in content for sec in secrets):
                for sec in sorted(secrets, key=len, reverse=True):
                    content = content.replace(sec.encode(), REDACTED.encode())
                resp.content = content
                log("warning", "egress-proxy: the response of %s echoed the credential; removed", route.describe())
        except Exception as e:  # noqa: BLE001 - never hand over what could not be checked
            from mitmproxy import http

            flow.response = http.Response.make(
                502, ("claude-bottle's egress-proxy could not check the response (%s)\n" % type(e).__name__).encode(),
                {"Content-Type": "text/plain"},
            )


addons = [EgressProxy()]
