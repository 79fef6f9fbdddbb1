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
from mitmproxy.test import taddons, tflow  # noqa: E402

TOKEN = "ghp_" + "x" * 36
ENV = {"CLAUDE_BOTTLE_TOKEN_0": TOKEN, "CLAUDE_BOTTLE_TOKEN_1": "user:pa ss"}
ROUTES = {
    "version": 1,
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
    path.write_text(json.dumps({"version": 2, "routes": []}))
    with pytest.raises(addon.RouteError, match="expected version 1"):
        addon.load_routes(str(path), ENV)


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
