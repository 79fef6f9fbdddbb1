#!/usr/bin/env python3
"""test-git-make-big NAME COMMITS BLOB_MB: make the bare repository /srv/git/NAME.git (HEAD main)
with COMMITS commits, the first adding README.md and big.bin (BLOB_MB MiB from /dev/urandom, so
no compression shrinks it), each later one changing counter.txt, all in one `git fast-import`.
Run as root (docker exec) it switches to user git, who owns what both protocols serve; the
repository gets the same pre-receive hook as app.git and lib.git. Prints one summary line."""

import os
import pwd
import re
import shutil
import subprocess
import sys
import time

ROOT = "/srv/git"
HOOK = "/usr/local/lib/claude-bottle/test-git/pre-receive"
IDENTITY = b"test-git <test-git@git.test>"
EPOCH = 1767225600  # 2026-01-01T00:00:00Z: the same ids in every run, but for the random blob
PIECE = 1 << 20


def usage(problem):
    sys.stderr.write("test-git-make-big: %s\nusage: test-git-make-big NAME COMMITS BLOB_MB\n" % problem)
    sys.exit(2)


def parse(argv):
    if len(argv) != 3:
        usage("expected 3 arguments, got %d" % len(argv))
    name, commits, blob_mb = argv
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name) or name.endswith(".git"):
        usage("NAME %r is not a plain repository name (letters, digits, ._-, no .git)" % name)
    if not commits.isdigit() or int(commits) < 1:
        usage("COMMITS %r is not a whole number of at least 1" % commits)
    if not blob_mb.isdigit():
        usage("BLOB_MB %r is not a whole number" % blob_mb)
    return name, int(commits), int(blob_mb)


def become_git():
    if os.geteuid() != 0:
        return
    git = pwd.getpwnam("git")
    os.setgroups([])
    os.setgid(git.pw_gid)
    os.setuid(git.pw_uid)
    os.environ["HOME"] = git.pw_dir


def stream(out, commits, blob_mb):
    """The fast-import stream: blob :1 (the big one), then the commits on refs/heads/main."""
    size = blob_mb << 20
    out.write(b"blob\nmark :1\ndata %d\n" % size)
    with open("/dev/urandom", "rb") as random:
        left = size
        while left:
            piece = random.read(min(PIECE, left))
            out.write(piece)
            left -= len(piece)
    out.write(b"\n")
    for n in range(1, commits + 1):
        message = b"commit %d of %d\n" % (n, commits)
        out.write(b"commit refs/heads/main\nmark :%d\n" % (n + 1))
        out.write(b"author %s %d +0000\ncommitter %s %d +0000\n" % (IDENTITY, EPOCH + n, IDENTITY, EPOCH + n))
        out.write(b"data %d\n%s" % (len(message), message))
        if n == 1:
            readme = b"# big\n\nA test repository: many commits and one large blob.\n"
            out.write(b"M 100644 inline README.md\ndata %d\n%s\n" % (len(readme), readme))
            out.write(b"M 100644 :1 big.bin\n")
        counter = b"%d\n" % n
        out.write(b"M 100644 inline counter.txt\ndata %d\n%s\n" % (len(counter), counter))
    out.write(b"done\n")


def main():
    name, commits, blob_mb = parse(sys.argv[1:])
    become_git()
    repo = os.path.join(ROOT, name + ".git")
    if os.path.exists(repo):
        sys.stderr.write("test-git-make-big: %s exists; pick another NAME\n" % repo)
        sys.exit(1)
    started = time.monotonic()
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", repo], check=True)
    subprocess.run(["git", "--git-dir", repo, "config", "http.receivepack", "true"], check=True)
    shutil.copy(HOOK, os.path.join(repo, "hooks", "pre-receive"))
    importer = subprocess.Popen(["git", "--git-dir", repo, "fast-import", "--quiet", "--done"], stdin=subprocess.PIPE)
    try:
        stream(importer.stdin, commits, blob_mb)
    finally:
        importer.stdin.close()
    if importer.wait() != 0:
        sys.stderr.write("test-git-make-big: git fast-import failed (exit %d) for %s\n" % (importer.returncode, repo))
        sys.exit(1)
    print("test-git-make-big: %s: %d commits, a %d MiB blob, in %.1fs" % (repo, commits, blob_mb, time.monotonic() - started))


if __name__ == "__main__":
    main()
