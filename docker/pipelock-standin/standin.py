"""pipelock STAND-IN (tests only): enforce a generated pipelock config's api_allowlist with mitmproxy.

The real pipelock image cannot be pulled on the test machines, so the end-to-end tests run this
instead. It reads the same generated pipelock.yaml and applies the parts the tests rely on:

- api_allowlist: a CONNECT (or plain-HTTP request) to a host not on the list is answered 403, with
  pipelock's matching rules (exact host, or `*.example.com` = example.com and its subdomains);
- tls_interception: intercepts with the CA at ca_cert/ca_key (the launcher's start script builds
  mitmproxy's confdir from them) and passes passthrough_domains through untouched;
- reload: re-reads the file when it changes (checked on every connection) and on SIGHUP, like
  pipelock's hot reload, so approved hosts apply without a restart.

Not implemented: DLP, request body scanning, rate limits, SSRF checks. Never use it in production.
Works on mitmproxy 8.1.1 and 12.x.
"""

import logging
import os
import signal

DEFAULT_CONFIG = "/etc/pipelock/pipelock.yaml"
CONFIG_ENV = "PIPELOCK_CONFIG"

_log = logging.getLogger("claude_bottle.pipelock_standin")


def log(level, msg, *args):
    """mitmproxy 8 prints only its own ctx.log; 9 and later route Python logging to the console."""
    try:
        from mitmproxy import ctx, version

        if int(version.VERSION.split(".")[0]) < 9 and getattr(ctx, "log", None) is not None:
            getattr(ctx.log, "warn" if level == "warning" else level)(msg % args)
            return
    except Exception:  # noqa: BLE001 - outside mitmproxy plain logging is fine
        pass
    getattr(_log, level)(msg, *args)


def parse_yaml(text):
    try:
        from ruamel.yaml import YAML

        return YAML(typ="safe").load(text)
    except ImportError:
        import yaml

        return yaml.safe_load(text)


def match_domain(host, pattern):
    """pipelock's scanner.MatchDomain (v2.1.2)."""
    host = host.lower().rstrip(".")
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host == pattern[2:] or host.endswith(pattern[1:])
    return host == pattern


class Policy:
    def __init__(self, doc):
        doc = doc or {}
        self.allowlist = [str(h) for h in doc.get("api_allowlist") or []]
        tls = doc.get("tls_interception") or {}
        self.passthrough = [str(h) for h in tls.get("passthrough_domains") or []]

    def allows(self, host):
        return any(match_domain(host, p) for p in self.allowlist)

    def passes_through(self, host):
        return any(match_domain(host, p) for p in self.passthrough)


class PipelockStandin:
    def __init__(self):
        self.path = os.environ.get(CONFIG_ENV, DEFAULT_CONFIG)
        self.policy = Policy({})
        self.stamp = None
        self.hup = False

    def load(self, loader):
        try:
            signal.signal(signal.SIGHUP, self._on_hup)
        except ValueError:  # not the main thread (unit tests)
            pass
        self.reload(force=True)

    def _on_hup(self, *_):
        self.hup = True

    def _stat(self):
        try:
            st = os.stat(self.path)
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    def reload(self, force=False):
        stamp = self._stat()
        if not force and not self.hup and stamp == self.stamp:
            return
        self.hup = False
        try:
            with open(self.path, encoding="utf-8") as f:
                policy = Policy(parse_yaml(f.read()))
        except Exception as e:  # noqa: BLE001 - keep the last good policy, like pipelock
            log("warning", "pipelock-standin: failed to reload %s: %s", self.path, e)
            return
        self.policy, self.stamp = policy, stamp
        log("warning", "pipelock-standin: loaded %s (%d allowed hosts)", self.path, len(policy.allowlist))

    def running(self):
        log("warning", "pipelock-standin: ready")

    def _refuse(self, flow, host):
        from mitmproxy import http

        log("warning", "pipelock-standin: blocked %s (not in api_allowlist)", host)
        flow.response = http.Response.make(
            403, b"blocked by the pipelock stand-in: host not in api_allowlist\n",
            {"Content-Type": "text/plain", "X-Pipelock-Standin": "blocked"},
        )

    def http_connect(self, flow):
        self.reload()
        host = flow.request.host
        if not self.policy.allows(host):
            self._refuse(flow, host)

    def tls_clienthello(self, data):
        self.reload()
        sni = data.client_hello.sni
        if isinstance(sni, bytes):
            sni = sni.decode("idna", "replace")
        if sni and self.policy.passes_through(sni):
            data.ignore_connection = True

    @staticmethod
    def _is_health(flow):
        """`GET /health` addressed to the proxy's own port (no tunnel), as pipelock serves it. mitmproxy
        12 no longer tells origin form from absolute form, so the port decides."""
        from mitmproxy import ctx

        req = flow.request
        return (
            req.path == "/health"
            and req.port == ctx.options.listen_port
            and not flow.client_conn.tls_established
        )

    def request(self, flow):
        self.reload()
        if self._is_health(flow):
            from mitmproxy import http

            flow.response = http.Response.make(200, b'{"status":"ok","standin":true}\n', {"Content-Type": "application/json"})
            return
        if not self.policy.allows(flow.request.host):
            self._refuse(flow, flow.request.host)


addons = [PipelockStandin()]
