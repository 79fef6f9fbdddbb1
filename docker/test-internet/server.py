"""claude-bottle TEST INTERNET (tests only): one HTTPS (and HTTP) server answering for many host names.

The end-to-end tests give this container network aliases such as api.github.com and example.com and
mount a certificate for all of them, issued by a test CA they mint. Every request is answered 200 with
a JSON echo of what arrived, so a test can see which headers (an injected credential, or none) reached
"the internet":

    {"method": "GET", "path": "/repos/acme/x", "sni": "api.github.com", "tls": true,
     "headers": [["Host", "api.github.com"], ["Authorization", "token …"]]}

Environment: TEST_INTERNET_CERT / TEST_INTERNET_KEY (PEM; default /etc/test-internet/cert.pem and
key.pem), TEST_INTERNET_HTTPS_PORT (443), TEST_INTERNET_HTTP_PORT (80; 0 turns it off). Prints
"test-internet: ready" on stderr once both ports listen.
"""

import http.server
import json
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
        if length:
            self.rfile.read(length)
        sni = getattr(self.connection, "test_internet_sni", None)
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

    def log_message(self, fmt, *args):
        sys.stderr.write("test-internet: %s %s\n" % (self.address_string(), fmt % args))


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
