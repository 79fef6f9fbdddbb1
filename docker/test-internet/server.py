"""claude-bottle TEST INTERNET (tests only): one HTTPS (and HTTP) server answering for many host names.

The end-to-end tests give this container network aliases such as api.github.com and example.com and
mount a certificate for all of them, issued by a test CA they mint. Every request is answered 200 with
a JSON echo of what arrived (`GET /bytes/N` answers N bytes instead), so a test can see which headers (an injected credential, or none) reached
"the internet":

    {"method": "GET", "path": "/repos/acme/x", "sni": "api.github.com", "tls": true,
     "headers": [["Host", "api.github.com"], ["Authorization", "token …"]]}

For api.anthropic.com it is a fake Anthropic Messages API instead (`POST /v1/messages`, streaming SSE
or plain JSON), scripted by the words in the newest user turn, so the real Claude Code CLI can run a
whole session against it:

    (the newest user turn is the last message of role user; Claude Code sends its prompt there
    after system reminders, as text blocks)
    E2E-CAPABILITY  answer with a tool_use of mcp__claude-bottle__request_capability (once per
                    conversation: not when the history already holds a tool result)
    E2E-BASH        answer with a tool_use of Bash running `e2e-missing-tool --version`
    otherwise       text: "E2E-ANSWER messages=<n> tool-results=<k>"; right after a tool result,
                    "E2E-AFTER-TOOL <the result's first words>"

Each call is logged on stderr as `fake-api: {json}` with the SHA-256 of the x-api-key header (never
the value), the message count, whether the history holds a tool result, and the user texts.

Environment: TEST_INTERNET_CERT / TEST_INTERNET_KEY (PEM; default /etc/test-internet/cert.pem and
key.pem), TEST_INTERNET_HTTPS_PORT (443), TEST_INTERNET_HTTP_PORT (80; 0 turns it off). Prints
"test-internet: ready" on stderr once both ports listen.
"""

import hashlib
import http.server
import json
import uuid
import os
import ssl
import sys
import threading


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, for the benchmark
    # Headers and body go out as two writes: without TCP_NODELAY the second waits for the
    # client's delayed ACK (40 ms), which would swamp the latency the benchmark measures.
    disable_nagle_algorithm = True
    server_version = "test-internet"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        sni = getattr(self.connection, "test_internet_sni", None)
        if (sni or self.headers.get("Host", "")).split(":")[0] == FAKE_API_HOST:
            return self._fake_api(raw)
        if self.path.startswith("/bytes/") and self.path[7:].isdigit():
            # A download of that many bytes (size limits of the chain).
            return self._send(200, "application/octet-stream", b"x" * min(int(self.path[7:]), 128 << 20))
        body = json.dumps({
            "method": self.command,
            "path": self.path,
            "tls": isinstance(self.connection, ssl.SSLSocket),
            "sni": sni,
            "headers": [[k, v] for k, v in self.headers.items()],
        }).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    def _send(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", "req_e2e")
        self.end_headers()
        self.wfile.write(body)

    def _fake_api(self, raw):
        path = self.path.split("?", 1)[0]
        if self.command != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            error = {"type": "error", "error": {"type": "not_found_error", "message": "fake API: no such path"}}
            return self._send(404, "application/json", json.dumps(error).encode())
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._send(400, "application/json", b'{"type":"error","error":{"type":"invalid_request_error"}}')
        if path.endswith("count_tokens"):
            return self._send(200, "application/json", b'{"input_tokens": 42}')
        key = self.headers.get("x-api-key")
        messages = body.get("messages") or []
        record = {
            "key_sha256": hashlib.sha256(key.encode()).hexdigest() if key else None,
            "messages": len(messages),
            "tool_results": sum(len(tool_results(m)) for m in messages),
            "user_texts": [t[:200] for m in messages if m.get("role") == "user" for t in texts(m)],
            "stream": bool(body.get("stream")),
        }
        sys.stderr.write("fake-api: %s\n" % json.dumps(record))
        sys.stderr.flush()
        blocks, stop = fake_reply(messages)
        if not body.get("stream"):
            reply = {"id": "msg_e2e", "type": "message", "role": "assistant", "model": body.get("model", "fake"),
                     "content": blocks, "stop_reason": stop, "stop_sequence": None,
                     "usage": {"input_tokens": 10, "output_tokens": 5}}
            return self._send(200, "application/json", json.dumps(reply).encode())
        return self._send(200, "text/event-stream; charset=utf-8", sse(body.get("model", "fake"), blocks, stop))

    def log_message(self, fmt, *args):
        sys.stderr.write("test-internet: %s %s\n" % (self.address_string(), fmt % args))


FAKE_API_HOST = "api.anthropic.com"


def texts(message):
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]


def tool_results(message):
    content = message.get("content")
    if message.get("role") != "user" or not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def result_text(block):
    content = block.get("content")
    if isinstance(content, list):
        return " ".join(c.get("text", "") for c in content if isinstance(c, dict))
    return str(content or "")


def fake_reply(messages):
    """(content blocks, stop_reason) for a conversation: decided by its newest user turn."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    results = tool_results(last)
    if results:
        words = " ".join(result_text(results[-1]).split())[:160]
        return [{"type": "text", "text": "E2E-AFTER-TOOL " + words}], "end_turn"
    said = " ".join(texts(last))
    seen_results = sum(len(tool_results(m)) for m in messages)
    tool_id = "toolu_" + uuid.uuid4().hex[:20]
    if "E2E-CAPABILITY" in said and not seen_results:
        return [{"type": "tool_use", "id": tool_id, "name": "mcp__claude-bottle__request_capability",
                 "input": {"dockerfile_lines": ["RUN touch /usr/local/share/e2e-approved"],
                           "reason": "e2e: the fake model asks for a marker file"}}], "tool_use"
    if "E2E-BASH" in said and not seen_results:
        return [{"type": "tool_use", "id": tool_id, "name": "Bash",
                 "input": {"command": "e2e-missing-tool --version", "description": "Run the e2e tool"}}], "tool_use"
    return [{"type": "text", "text": "E2E-ANSWER messages=%d tool-results=%d" % (len(messages), seen_results)}], "end_turn"


def sse(model, blocks, stop):
    usage = {"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    events = [{"type": "message_start", "message": {"id": "msg_e2e", "type": "message", "role": "assistant",
               "model": model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}]
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            events.append({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
            events.append({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": block["text"]}})
        else:
            start = dict(block, input={})
            events.append({"type": "content_block_start", "index": i, "content_block": start})
            events.append({"type": "content_block_delta", "index": i,
                           "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
        events.append({"type": "content_block_stop", "index": i})
    events.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 5}})
    events.append({"type": "message_stop"})
    return "".join("event: %s\ndata: %s\n\n" % (e["type"], json.dumps(e)) for e in events).encode()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    cert = os.environ.get("TEST_INTERNET_CERT", "/etc/test-internet/cert.pem")
    key = os.environ.get("TEST_INTERNET_KEY", "/etc/test-internet/key.pem")
    https_port = int(os.environ.get("TEST_INTERNET_HTTPS_PORT", "443"))
    http_port = int(os.environ.get("TEST_INTERNET_HTTP_PORT", "80"))

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember_sni(sock, name, _ctx):
        sock.test_internet_sni = name

    context.sni_callback = remember_sni
    servers = [Server(("0.0.0.0", https_port), Echo)]
    servers[0].socket = context.wrap_socket(servers[0].socket, server_side=True)
    if http_port:
        servers.append(Server(("0.0.0.0", http_port), Echo))
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    sys.stderr.write("test-internet: ready\n")
    sys.stderr.flush()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
