"""pipelock STAND-IN (tests only): a generated pipelock config enforced with mitmproxy.

The real pipelock image cannot be pulled on the test machines, so the end-to-end tests run this
unless CLAUDE_BOTTLE_E2E_PIPELOCK_IMAGE names a real one. It reads the same generated pipelock.yaml
and behaves like pipelock 2.3.0 wherever a difference could hide a defect of the launcher
(docs/egress.md has the table):

- api_allowlist: a CONNECT (or plain-HTTP request) to a host not on the list is answered 403, with
  pipelock's matching rules (exact host, or `*.example.com` = example.com and its subdomains);
- SSRF: a host that resolves to a private, loopback, link-local or otherwise internal address is
  refused unless the address is in ssrf.ip_allowlist; a name that does not resolve is refused;
- tls_interception: intercepts with the CA at ca_cert/ca_key (start.sh refuses a key that is not
  SEC1 PEM or whose mode is looser than 0640, as pipelock does) and passes passthrough_domains
  through untouched, whatever the tunnel carries (ssh too) (`*.x` there does not match x itself,
  unlike the allowlist);
- DLP with pipelock's default patterns (dlp-patterns.json, from the same table the launcher ships):
  the URL of every request, the headers of pipelock's default `sensitive` list, and the body
  (refused when compressed or over max_body_bytes), of intercepted requests; for a passthrough host
  only the CONNECT request. A match is answered 403 `blocked: …` and logged;
- an intercepted response over tls_interception.max_response_bytes is refused (403), as pipelock
  buffers and scans each one;
- `GET /health` on its port answers JSON with "status": "healthy";
- reload: re-reads the file when it changes (checked on every connection) and on SIGHUP; an invalid
  file keeps the old config, and, as pipelock in strict mode, so does one that adds passthrough
  domains or ssrf.ip_allowlist ranges.

Not implemented: rate limits, entropy checks, response content scanning, seed phrases, the data
budget, and closing intercepted HTTP/1.1 connections after each request.
Never use it in production. Works on mitmproxy 8.1.1 and 12.x.
"""

import ipaddress
import socket
import sys

import json
import logging
import os
import signal

DEFAULT_CONFIG = "/etc/pipelock/pipelock.yaml"
CONFIG_ENV = "PIPELOCK_CONFIG"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dlp  # noqa: E402 - the egress-proxy's module, copied beside this file

PATTERNS_FILE = os.path.join(HERE, "dlp-patterns.json")
# request_body_scanning.sensitive_headers default (header_mode: sensitive).
SENSITIVE_HEADERS = ("authorization", "cookie", "x-api-key", "x-token", "proxy-authorization", "x-goog-api-key")
# pipelock's `internal` default (config/defaults.go), checked for every resolved address.
INTERNAL = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
    "100.64.0.0/10", "224.0.0.0/4", "::1/128", "fc00::/7", "fe80::/10", "::ffff:0:0/96",
)]

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
    """pipelock's allowlist matching: `*.x` matches x and its subdomains."""
    host = host.lower().rstrip(".")
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host == pattern[2:] or host.endswith(pattern[1:])
    return host == pattern


def match_passthrough(host, pattern):
    """pipelock's passthrough matching: `*.x` matches subdomains of x only."""
    host = host.lower().rstrip(".")
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


class Policy:
    def __init__(self, doc):
        doc = doc or {}
        self.allowlist = [str(h) for h in doc.get("api_allowlist") or []]
        tls = doc.get("tls_interception") or {}
        self.passthrough = [str(h) for h in tls.get("passthrough_domains") or []]
        ssrf = doc.get("ssrf") or {}
        self.ip_allowlist = [ipaddress.ip_network(str(n)) for n in ssrf.get("ip_allowlist") or []]
        body = doc.get("request_body_scanning") or {}
        self.max_body = int(body.get("max_body_bytes") or dlp.DEFAULT_MAX_BODY_BYTES)
        # pipelock buffers an intercepted response to scan it and refuses one over this (5 MiB).
        self.max_response = int(tls.get("max_response_bytes") or 5 * 1024 * 1024)

    def allows(self, host):
        return any(match_domain(host, p) for p in self.allowlist)

    def passes_through(self, host):
        return any(match_passthrough(host, p) for p in self.passthrough)

    def loosened_by(self, new):
        """What pipelock's strict mode refuses to reload: more passthrough or SSRF exceptions."""
        added = [d for d in new.passthrough if d not in self.passthrough]
        added += [str(n) for n in new.ip_allowlist if n not in self.ip_allowlist]
        return added

    def ssrf_refusal(self, host):
        """None when `host` may be reached, else pipelock's reason."""
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError as e:
            return "SSRF check failed: DNS resolution error for %s: %s" % (host, e)
        for info in infos:
            ip = ipaddress.ip_address(info[4][0])
            if any(ip in n for n in self.ip_allowlist):
                continue
            if any(ip in n for n in INTERNAL if n.version == ip.version):
                return "SSRF blocked: %s resolves to internal IP %s" % (host, ip)
        return None


class PipelockStandin:
    def __init__(self):
        self.path = os.environ.get(CONFIG_ENV, DEFAULT_CONFIG)
        self.policy = Policy({})
        self.stamp = None
        self.hup = False
        self.loaded = False
        with open(PATTERNS_FILE, encoding="utf-8") as f:
            self.patterns, _ = dlp.load_patterns(json.load(f))

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
        loosened = self.policy.loosened_by(policy) if self.loaded else []
        if loosened:
            self.stamp = stamp
            log("warning", "pipelock-standin: reload rejected (strict mode forbids loosening: %s)", ", ".join(loosened))
            return
        self.policy, self.stamp, self.loaded = policy, stamp, True
        log("warning", "pipelock-standin: loaded %s (%d allowed hosts)", self.path, len(policy.allowlist))

    def running(self):
        log("warning", "pipelock-standin: ready")

    def _refuse(self, flow, host, reason, connect=False):
        from mitmproxy import http

        log("warning", "pipelock-standin: blocked %s: %s", host, reason)
        flow.response = http.Response.make(
            403, ("%sblocked: %s\n" % ("CONNECT " if connect else "", reason)).encode(),
            {"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"},
        )

    def _host_refusal(self, host):
        if not self.policy.allows(host):
            return "domain not in allowlist: %s" % host
        return self.policy.ssrf_refusal(host)

    def _sensitive_headers(self, flow):
        return [(k, v) for k, v in flow.request.headers.items(multi=True) if k.lower() in SENSITIVE_HEADERS]

    def http_connect(self, flow):
        self.reload()
        host = flow.request.host
        reason = self._host_refusal(host)
        if reason is None:
            finding = dlp.scan_request(self.patterns, self.policy.max_body, host, self._sensitive_headers(flow), b"", "", "")
            reason = finding and "request header contains secret"
        if reason:
            self._refuse(flow, host, reason, connect=True)

    def next_layer(self, nextlayer):
        """A tunnel to a passthrough host carries its bytes untouched, whatever they are: pipelock
        splices the CONNECT stream of a passthrough domain without looking at it, so ssh (whose
        client speaks first, and not TLS) passes as HTTPS does. mitmproxy would otherwise try to
        read the stream as HTTP."""
        address = nextlayer.context.server.address
        if not address or not self.policy.passes_through(str(address[0])):
            return
        from mitmproxy.proxy import layers

        nextlayer.layer = layers.TCPLayer(nextlayer.context, ignore=True)

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

            flow.response = http.Response.make(200, b'{"status":"healthy","standin":true}\n', {"Content-Type": "application/json"})
            return
        req = flow.request
        reason = self._host_refusal(req.host)
        if reason is None:
            finding = dlp.scan_request(
                self.patterns, self.policy.max_body, req.pretty_url, self._sensitive_headers(flow),
                req.raw_content or b"", req.headers.get("content-type", ""), req.headers.get("content-encoding", ""),
            )
            if finding is not None:
                reason = {"URL": "DLP match in URL", "body": "request body contains secret"}.get(finding.where, "request header contains secret")
                reason = "%s (%s)" % (reason, finding)
        if reason:
            self._refuse(flow, req.host, reason)

    def response(self, flow):
        resp = flow.response
        if resp is None or self._is_health(flow) or not flow.client_conn.tls_established:
            return
        if len(resp.raw_content or b"") > self.policy.max_response:
            self._refuse(flow, flow.request.host, "response exceeds max_response_bytes (%d)" % self.policy.max_response)


addons = [PipelockStandin()]
