"""Tests of addon.py against mitmproxy's own test flows (mitmproxy.test.tflow / taddons).

Run with `python3 -m pytest docker/egress-proxy` where mitmproxy is importable (Debian's 8.1.1 in the
egress-proxy image, or 12.x from a venv).
"""

import base64
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import addon  # noqa: E402
import dlp  # noqa: E402
from mitmproxy.test import taddons, tflow  # noqa: E402

TOKEN = "ghp_" + "x" * 36
ENV = {"CLAUDE_BOTTLE_TOKEN_0": TOKEN, "CLAUDE_BOTTLE_TOKEN_1": "user:pa ss"}
with open(os.path.join(os.path.dirname(__file__), "dlp-patterns.json"), encoding="utf-8") as f:
    DLP = json.load(f)
# Secrets of the agent's own (never a route's token): what the scan must refuse.
AWS_KEY = "AKIA" + "ABCDEFGHIJKLMNOP"
GH_OTHER = "ghp_" + "y" * 36
ROUTES = {
    "version": 2,
    "dlp": DLP,
    "routes": [
        {"host": "api.github.com", "path_prefix": "/repos/acme/", "auth_scheme": "token", "token_env": "CLAUDE_BOTTLE_TOKEN_0"},
        {"host": "api.anthropic.com", "auth_scheme": "bearer", "token_env": "CLAUDE_BOTTLE_TOKEN_0"},
        {"host": "basic.example", "auth_scheme": "basic", "token_env": "CLAUDE_BOTTLE_TOKEN_1"},
        {"host": "key.example", "path_prefix": "/v1", "auth_scheme": "header:X-Api-Key", "token_env": "CLAUDE_BOTTLE_TOKEN_0"},
    ],
}


@pytest.fixture
def proxy(tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(ROUTES))
    egress = addon.EgressProxy(environ=ENV)
    with taddons.context(egress) as tctx:
        tctx.configure(egress, routes_file=str(path))
        yield egress


def flow(connect_host, path, scheme="https", host_header=None):
    """A flow whose upstream connection goes to connect_host, as after a CONNECT."""
    f = tflow.tflow()
    f.request.scheme = scheme
    f.request.host = connect_host
    f.request.port = 443 if scheme == "https" else 80
    f.request.path = path
    f.request.headers["Host"] = host_header or connect_host
    f.server_conn.address = (connect_host, f.request.port)
    if hasattr(f.server_conn, "sni"):
        f.server_conn.sni = connect_host if scheme == "https" else None
    return f


def auth(f, name="Authorization"):
    return f.request.headers.get_all(name)


def test_injects_on_the_routed_prefix(proxy):
    f = flow("api.github.com", "/repos/acme/app/issues?state=open")
    proxy.request(f)
    assert auth(f) == ["token " + TOKEN]


def test_not_outside_the_prefix(proxy):
    for path in ["/repos/other/app", "/repos/acmecorp/x", "/", "/repos/acme/../other/x",
                 "/repos/acme/%2e%2e/other", "/repos/acme/%252e%252e/other", "/repos/acme/..%2fother",
                 "/repos/acme\\..\\other"]:
        f = flow("api.github.com", path)
        proxy.request(f)
        assert auth(f) == [], path


def test_an_encoded_slash_that_reads_two_ways_gets_no_credential(proxy):
    # Decoded first, this is /repos/acme/x; split first, it is under /user/ (GitHub routes it so).
    for path in ["/user/..%2Frepos/acme/x", "/user/..%2frepos/acme/x", "/x/..%5Crepos/acme/y",
                 "/user/%2e%2e%2Frepos/acme/x"]:
        f = flow("api.github.com", path)
        proxy.request(f)
        assert auth(f) == [], path
    # An encoded slash inside a name under the prefix reads the same both ways: the token goes.
    f = flow("api.github.com", "/repos/acme/app/git/refs/heads/feature%2Fx")
    proxy.request(f)
    assert auth(f) == ["token " + TOKEN]


def test_segment_path():
    s = addon.segment_path
    assert s("/user/..%2Frepos/acme/x") == "/user/..%2Frepos/acme/x"
    assert s("/a/%2e%2e/b") == "/b"
    assert s("/a//b/./c/?q=/..") == "/a/b/c/"
    assert s("/") == "/"


def test_normalised_paths_inside_the_prefix_match(proxy):
    for path in ["/repos//acme/app", "/repos/./acme/app", "/repos/x/../acme/app", "/repos/%61cme/app",
                 "/repos/acme"]:
        f = flow("api.github.com", path)
        proxy.request(f)
        assert auth(f) == ["token " + TOKEN], path


def test_matches_the_connection_host_not_the_host_header(proxy):
    f = flow("evil.example", "/repos/acme/app", host_header="api.github.com")
    proxy.request(f)
    assert auth(f) == []
    f = flow("api.github.com", "/repos/acme/app", host_header="evil.example")
    proxy.request(f)
    assert auth(f) == ["token " + TOKEN]


def test_never_over_plain_http(proxy):
    f = flow("api.github.com", "/repos/acme/app", scheme="http")
    proxy.request(f)
    assert auth(f) == []


def test_client_header_is_replaced_not_merged(proxy):
    f = flow("api.anthropic.com", "/v1/messages")
    f.request.headers.add("authorization", "Bearer placeholder")
    f.request.headers.add("Authorization", "Bearer second")
    proxy.request(f)
    assert auth(f) == ["Bearer " + TOKEN]


def test_schemes(proxy):
    f = flow("basic.example", "/anything")
    proxy.request(f)
    assert auth(f) == ["Basic " + base64.b64encode(b"user:pa ss").decode()]
    f = flow("key.example", "/v1/models")
    f.request.headers["x-api-key"] = "placeholder"
    proxy.request(f)
    assert auth(f, "X-Api-Key") == [TOKEN]
    assert auth(f) == []
    f = flow("key.example", "/v10/models")
    proxy.request(f)
    assert auth(f, "X-Api-Key") == []


def test_host_match_is_case_insensitive_and_exact(proxy):
    f = flow("API.GitHub.com.", "/repos/acme/a")
    proxy.request(f)
    assert auth(f) == ["token " + TOKEN]
    f = flow("api.github.com.evil.example", "/repos/acme/a")
    proxy.request(f)
    assert auth(f) == []


def test_missing_slot_refuses_to_start(tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(ROUTES))
    with pytest.raises(addon.RouteError, match="CLAUDE_BOTTLE_TOKEN_1 is not set"):
        addon.load_routes(str(path), {"CLAUDE_BOTTLE_TOKEN_0": TOKEN})


def test_wrong_version_refuses_to_start(tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"version": 1, "routes": []}))
    with pytest.raises(addon.RouteError, match="expected version 2"):
        addon.load_routes(str(path), ENV)


def test_no_dlp_refuses_to_start(tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"version": 2, "routes": []}))
    with pytest.raises(addon.RouteError, match="dlp"):
        addon.load_config(str(path), ENV)
    bad = dict(DLP, patterns=[{"name": "x", "regex": "("}])
    path.write_text(json.dumps({"version": 2, "routes": [], "dlp": bad}))
    with pytest.raises(addon.RouteError, match="does not compile"):
        addon.load_config(str(path), ENV)


def blocked(f):
    return f.response is not None and f.response.status_code == 403


def test_every_pinned_pattern_compiles():
    patterns, max_body = dlp.load_patterns(DLP)
    assert len(patterns) == 48 and max_body == 5 * 1024 * 1024


def test_the_agents_secret_in_a_header_is_refused_and_nothing_injected(proxy, caplog):
    caplog.set_level("DEBUG")
    f = flow("api.github.com", "/repos/acme/app")
    f.request.headers["X-Custom"] = "key " + AWS_KEY
    proxy.request(f)
    assert blocked(f)
    assert auth(f) == []
    assert b"header X-Custom" in f.response.content and b"AWS Access ID" in f.response.content
    assert AWS_KEY not in caplog.text and TOKEN not in caplog.text


def test_the_agents_secret_in_url_or_body_is_refused_on_any_host(proxy):
    f = flow("open.example", "/search?q=" + GH_OTHER)
    proxy.request(f)
    assert blocked(f)
    f = flow("api.anthropic.com", "/v1/messages")
    f.request.headers["content-type"] = "application/json"
    f.request.content = json.dumps({"messages": [{"role": "user", "content": "here: " + GH_OTHER}]}).encode()
    proxy.request(f)
    assert blocked(f) and auth(f) == []
    # Encoded forms are decoded before matching.
    for value in [base64.b64encode(GH_OTHER.encode()).decode(), GH_OTHER.encode().hex(), GH_OTHER.replace("_", "%5F")]:
        f = flow("open.example", "/x")
        f.request.headers["content-type"] = "text/plain"
        f.request.content = ("data=" + value).encode()
        proxy.request(f)
        assert blocked(f), value


def test_lookalike_and_invisible_characters_do_not_hide_a_secret():
    patterns, _ = dlp.load_patterns(DLP)
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in GH_OTHER)
    assert dlp.scan_text(patterns, "token " + fullwidth) == "GitHub Token"
    assert dlp.scan_text(patterns, AWS_KEY[:4] + "\u200b" + AWS_KEY[4:]) == "AWS Access ID"
    assert dlp.scan_text(patterns, "an ordinary sentence about tokens") is None


def test_compressed_or_oversized_bodies_are_refused(proxy):
    f = flow("open.example", "/x")
    f.request.headers["content-encoding"] = "gzip"
    f.request.raw_content = b"\x1f\x8b..."
    proxy.request(f)
    assert blocked(f)
    f = flow("open.example", "/x")
    f.request.headers["content-type"] = "text/plain"
    f.request.content = b"a" * (5 * 1024 * 1024 + 1)
    proxy.request(f)
    assert blocked(f)


def test_the_routes_own_header_is_replaced_not_scanned(proxy):
    # The placeholder (or anything) in the header the route overwrites never leaves the proxy.
    f = flow("api.anthropic.com", "/v1/messages")
    f.request.headers["authorization"] = "Bearer " + GH_OTHER
    f.request.headers["content-type"] = "application/json"
    f.request.content = b'{"model": "x", "messages": [{"role": "user", "content": "hello"}]}'
    proxy.request(f)
    assert not blocked(f)
    assert auth(f) == ["Bearer " + TOKEN]


def test_ordinary_requests_pass(proxy):
    f = flow("open.example", "/v1/items?page=2&sort=name")
    f.request.headers["content-type"] = "application/json"
    f.request.headers["user-agent"] = "curl/8"
    f.request.content = b'{"query": "how do I parse JSON in Rust?", "n": 5}'
    proxy.request(f)
    assert not blocked(f)


def test_token_never_in_log_or_description(proxy, caplog):
    caplog.set_level("DEBUG")
    f = flow("api.github.com", "/repos/acme/app")
    proxy.request(f)
    for r in proxy.routes:
        assert TOKEN not in r.describe()
    assert TOKEN not in caplog.text


def test_normalise_path():
    n = addon.normalise_path
    assert n("/a//b/./c/../d?x=/..") == "/a/b/d"
    assert n("/a/b/") == "/a/b/"
    assert n("//x") == "/x"
    assert n("/%2525252e") is None  # still decoding after the last round


def test_a_path_that_is_not_utf8_gets_no_credential_and_no_crash(proxy):
    f = flow("api.github.com", "/repos/acme/%ff/x")
    proxy.request(f)
    assert auth(f) == [] and not blocked(f)


def test_any_error_while_checking_fails_closed(proxy, monkeypatch):
    def boom(*_):
        raise RuntimeError("scanner broke")

    monkeypatch.setattr(proxy, "scan", boom)
    f = flow("api.github.com", "/repos/acme/app")
    proxy.request(f)
    assert blocked(f) and auth(f) == []


def test_deep_json_is_refused_not_skipped(proxy):
    f = flow("open.example", "/x")
    f.request.headers["content-type"] = "application/json"
    f.request.content = ('{"a": "%s", "b": ' % GH_OTHER + "[" * 5000 + "]" * 5000 + "}").encode()
    proxy.request(f)
    assert blocked(f)


def test_json_escapes_are_decoded_whatever_the_content_type(proxy):
    f = flow("open.example", "/x")
    f.request.headers["content-type"] = "text/plain"
    f.request.content = ('{"body": "\\u0067hp_%s"}' % ("y" * 36)).encode()
    proxy.request(f)
    assert blocked(f)
    f = flow("open.example", "/x")
    f.request.headers["content-type"] = "application/json"
    f.request.content = b'{"card": 4111111111111111}'
    proxy.request(f)
    assert blocked(f)


def test_unicode_next_to_a_secret_does_not_hide_it():
    patterns, _ = dlp.load_patterns(DLP)
    assert dlp.scan_text(patterns, "\u00e94111111111111111") == "Credit Card Number"


def test_a_secret_in_the_path_is_not_logged(proxy, caplog):
    caplog.set_level("DEBUG")
    f = flow("open.example", "/upload/" + GH_OTHER)
    proxy.request(f)
    assert blocked(f)
    assert GH_OTHER not in caplog.text


def test_trace_and_upgrades_on_credentialed_routes_are_refused(proxy):
    f = flow("api.github.com", "/repos/acme/app")
    f.request.method = "TRACE"
    proxy.request(f)
    assert blocked(f)
    f = flow("api.github.com", "/repos/acme/app")
    f.request.headers["Connection"] = "Upgrade"
    f.request.headers["Upgrade"] = "websocket"
    proxy.request(f)
    assert blocked(f) and auth(f) == []


def test_an_echoed_credential_never_reaches_the_agent(proxy):
    from mitmproxy import http

    f = flow("api.github.com", "/repos/acme/app")
    proxy.request(f)
    assert auth(f) == ["token " + TOKEN]
    f.response = http.Response.make(200, ("you sent: token " + TOKEN).encode(), {"X-Echo": "token " + TOKEN})
    proxy.response(f)
    assert TOKEN.encode() not in f.response.content
    assert TOKEN not in f.response.headers["X-Echo"]
