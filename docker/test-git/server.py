"""claude-bottle TEST GIT (tests only): git's smart HTTP over HTTPS, with HTTP Basic auth, plus sshd.

Every HTTPS request must carry `Authorization: Basic base64(<any user>:<TEST_GIT_TOKEN>)`; a
missing or wrong one is answered 401 with `WWW-Authenticate: Basic realm="test-git"`. An
authorized request runs `git http-backend` as a CGI program, as user git, with
GIT_PROJECT_ROOT=/srv/git and GIT_HTTP_EXPORT_ALL=1 (REMOTE_USER = the Basic username, so
receive-pack is on). The bridge streams both ways: the request body (with a Content-Length, or
chunked, as git sends pushes over http.postBuffer) is written to the backend's stdin as it
arrives, then the backend's stdout is relayed as the response, chunked unless the backend names
a length; a thread drains stdout meanwhile (see Spool), so a 50 MB clone never sits in memory and
neither pipe can wedge the other. Each request is logged on stderr as
`test-git: <method> <path> <status> user=<username>`; the password and the Authorization header
are never logged, nor given to the backend.

sshd (`sshd_config` beside this file) is started first, as a child; "test-git: ready" is printed
on stderr once 443 accepts and sshd accepts on 22. SIGTERM stops both.
"""

import base64
import binascii
import collections
import grp
import hmac
import http.server
import os
import pwd
import signal
import ssl
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MOUNTED = "/etc/test-git"
PROJECT_ROOT = "/srv/git"
REALM = "test-git"
CHUNK = 64 * 1024
# How far the drained answer may run ahead of the client, in pieces of up to CHUNK bytes.
SPOOL_PIECES = 64
MAX_CGI_HEADER = 64 * 1024
# The request headers a CGI program gets as their own variables (or, for Authorization, not at all).
NOT_HTTP_VARS = {"authorization", "content-type", "content-length", "transfer-encoding", "proxy-authorization"}


def log(line):
    sys.stderr.write("test-git: %s\n" % line)
    sys.stderr.flush()


def printable(text):
    """`text` with anything but printable ASCII escaped: usernames and paths come from clients."""
    return "".join(c if 0x20 <= ord(c) < 0x7F else "\\u{%x}" % ord(c) for c in text)


class GitHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "test-git"
    disable_nagle_algorithm = True
    # Per socket operation, not per request: a keep-alive connection idle this long is closed.
    timeout = 120

    def setup(self):
        # The TLS handshake happens here, in the connection's own thread: done in accept() (the
        # default), one client that connects and says nothing would stall every other.
        self.request.settimeout(self.timeout)
        try:
            self.request.do_handshake()
        except (OSError, ssl.SSLError) as e:
            log("tls handshake with %s failed: %s" % (self.client_address[0], e))
            raise
        super().setup()

    def _handle(self):
        user, authorized = self._authorize()
        status = "-"
        try:
            if not authorized:
                status = 401
                self._unauthorized()
            else:
                status = self._run_backend(user)
        finally:
            log("%s %s %s user=%s" % (self.command, printable(self.path), status, self._shown(user)))

    do_GET = do_POST = _handle

    def _authorize(self):
        """(username or None, whether the password is the token)."""
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, False
        user, sep, password = decoded.partition(":")
        if not sep:
            return user, False
        return user, hmac.compare_digest(password.encode(), TOKEN.encode())

    def _shown(self, user):
        if user is None:
            return "-"
        # A client may send the token as its username (forges accept that): never log it.
        if TOKEN and TOKEN in user:
            return "[redacted]"
        return printable(user) or "-"

    def _unauthorized(self):
        body = b"test-git: authentication required\n"
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="%s"' % REALM)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if self._has_body():
            # The body was not read: the connection cannot carry another request.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _has_body(self):
        return bool(self.headers.get("Transfer-Encoding")) or int(self.headers.get("Content-Length") or 0) > 0

    def _cgi_env(self, user):
        path, _, query = self.path.partition("?")
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": GIT_HOME,
            "GIT_PROJECT_ROOT": PROJECT_ROOT,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": "test-git",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_USER": user or "anonymous",
            "REMOTE_ADDR": self.client_address[0],
            "AUTH_TYPE": "Basic",
        }
        if self.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = self.headers["Content-Type"]
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if not chunked and self.headers.get("Content-Length"):
            env["CONTENT_LENGTH"] = self.headers["Content-Length"]
        # Git-Protocol (protocol v2), Content-Encoding (gzip'd requests) and the rest.
        for name, value in self.headers.items():
            if name.lower() not in NOT_HTTP_VARS:
                env["HTTP_" + name.upper().replace("-", "_")] = value
        return env, chunked

    def _run_backend(self, user):
        env, chunked = self._cgi_env(user)
        backend = subprocess.Popen(
            ["git", "http-backend"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=PROJECT_ROOT,
            user=GIT_UID,
            group=GIT_GID,
            extra_groups=[],
        )
        # The client's TLS connection is used by this thread alone (an SSL object must not be
        # read and written by two threads at once): the body goes in first, then the answer goes
        # out. So that the backend never waits on a full stdout pipe while this thread waits on
        # its full stdin pipe, a thread drains stdout meanwhile, into memory while the body is
        # still going in (git answers only after reading the request, so that is little), with
        # a bound afterwards.
        answer = Spool()
        drain = threading.Thread(target=answer.fill, args=(backend.stdout,), daemon=True)
        drain.start()
        errors = threading.Thread(target=relay_stderr, args=(backend.stderr,), daemon=True)
        errors.start()
        try:
            self._feed(backend.stdin, chunked)
            answer.bound()
            status = self._relay(answer)
        finally:
            answer.abandon()
            if backend.wait() != 0:
                log("git http-backend exited %d for %s" % (backend.returncode, printable(self.path)))
            drain.join(timeout=5)
            errors.join(timeout=5)
        return status

    def _feed(self, stdin, chunked):
        """Stream the request body into the backend, then close its stdin."""
        try:
            if chunked:
                for piece in self._chunks():
                    stdin.write(piece)
            else:
                left = int(self.headers.get("Content-Length") or 0)
                while left > 0:
                    piece = self.rfile.read(min(CHUNK, left))
                    if not piece:
                        raise ConnectionError("the client closed the request body early")
                    stdin.write(piece)
                    left -= len(piece)
        except BrokenPipeError:
            # The backend stopped reading (it answered already): the rest of the body is unread,
            # so this connection cannot carry another request.
            self.close_connection = True
        except (OSError, ValueError) as e:
            log("request body of %s: %s" % (printable(self.path), e))
            self.close_connection = True
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _chunks(self):
        """The decoded pieces of a chunked request body (RFC 9112 7.1), trailers skipped."""
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise ValueError("a chunk size line is cut short or too long")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass
                return
            while size > 0:
                piece = self.rfile.read(min(CHUNK, size))
                if not piece:
                    raise ConnectionError("the client closed a chunk early")
                size -= len(piece)
                yield piece
            if self.rfile.readline(8) not in (b"\r\n", b"\n"):
                raise ValueError("a chunk does not end with CRLF")

    def _relay(self, answer):
        """Turn the backend's CGI answer into the HTTP response; return its status."""
        head = b""
        while True:
            ends = [(i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := head.find(sep)) >= 0]
            if ends:
                cut, sep_len = min(ends)
                break
            piece = answer.get()
            if not piece or len(head) > MAX_CGI_HEADER:
                log("git http-backend sent no complete header for %s" % printable(self.path))
                self.send_error(502, "git http-backend failed")
                return 502
            head += piece
        rest = head[cut + sep_len :]
        status, reason, headers, length = 200, "OK", [], None
        for line in head[:cut].decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            value = value.strip()
            if name.lower() == "status":
                code, _, reason = value.partition(" ")
                status = int(code)
            elif name.lower() == "content-length":
                length = value
            else:
                headers.append((name, value))
        self.send_response(status, reason or None)
        for name, value in headers:
            self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", length)
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        piece = rest
        while True:
            if piece:
                self.wfile.write(piece if length is not None else b"%x\r\n%s\r\n" % (len(piece), piece))
            piece = answer.get()
            if not piece:
                break
        if length is None:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return status

    def log_message(self, fmt, *args):
        # Only the server's own errors come here (requests are logged by _handle); request lines
        # hold no credential, and headers never reach it.
        log(printable(fmt % args))

    def log_request(self, code="-", size="-"):
        pass


class Spool:
    """The backend's stdout, drained by a thread of its own: unbounded until `bound()` (while the
    request body goes in), then at most SPOOL_PIECES pieces ahead of the reader."""

    def __init__(self):
        self._cond = threading.Condition()
        self._pieces = collections.deque()
        self._bounded = False
        self._done = False
        self._abandoned = False

    def fill(self, pipe):
        try:
            while True:
                piece = pipe.read1(CHUNK)
                with self._cond:
                    while self._bounded and len(self._pieces) >= SPOOL_PIECES and not self._abandoned:
                        self._cond.wait()
                    if self._abandoned:
                        break
                    if piece:
                        self._pieces.append(piece)
                    else:
                        break
                    self._cond.notify_all()
        finally:
            pipe.close()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def bound(self):
        with self._cond:
            self._bounded = True

    def get(self):
        """The next piece, or b"" at the end."""
        with self._cond:
            while not self._pieces and not self._done:
                self._cond.wait()
            if not self._pieces:
                return b""
            piece = self._pieces.popleft()
            self._cond.notify_all()
            return piece

    def abandon(self):
        """The reader is done or gone (the client left): the filler closes the pipe, so a backend
        still writing ends (EPIPE) instead of waiting for a reader forever."""
        with self._cond:
            self._abandoned = True
            self._pieces.clear()
            self._cond.notify_all()


def relay_stderr(pipe):
    for line in iter(pipe.readline, b""):
        log("git http-backend: %s" % printable(line.decode("utf-8", "replace").rstrip("\n")))
    pipe.close()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that went away (or failed its handshake) is one line; a bug in here is a trace.
        kind, error, _ = sys.exc_info()
        if isinstance(error, OSError):
            log("connection from %s: %s: %s" % (client_address[0], kind.__name__, error))
        else:
            super().handle_error(request, client_address)


def listening(port):
    """Whether a TCP socket listens on `port` (read from /proc: a probe connection would put a
    "connection closed" line in sshd's log)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[1].rsplit(":", 1)[1] == "%04X" % port and fields[3] == "0A":
                return True
    return False


def wait_for_listener(port, child, timeout=30):
    deadline = time.monotonic() + timeout
    while not listening(port):
        if child.poll() is not None:
            log("error: sshd exited %d before listening on %d" % (child.returncode, port))
            sys.exit(1)
        if time.monotonic() > deadline:
            log("error: nothing listens on %d after %ds" % (port, timeout))
            sys.exit(1)
        time.sleep(0.05)


def main():
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", os.path.join(HERE, "sshd_config")])

    def stop(_signum, _frame):
        sshd.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(MOUNTED, "cert.pem"), os.path.join(MOUNTED, "key.pem"))
    server = Server(("0.0.0.0", 443), GitHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    wait_for_listener(22, sshd)
    log("ready")
    server.serve_forever()


TOKEN = os.environ.get("TEST_GIT_TOKEN", "")
GIT_UID = pwd.getpwnam("git").pw_uid
GIT_GID = grp.getgrnam("git").gr_gid
GIT_HOME = pwd.getpwnam("git").pw_dir

if __name__ == "__main__":
    if not TOKEN:
        log("error: TEST_GIT_TOKEN is empty; set it to the password the HTTPS clients send")
        sys.exit(2)
    main()
