#!/bin/sh
# test-git's entrypoint: install the mounted ssh keys where sshd accepts them, make the starting
# repositories, then hand over to server.py (which starts sshd and serves HTTPS).
set -eu
lib=/usr/local/lib/claude-bottle/test-git
mounted=/etc/test-git

if [ -z "${TEST_GIT_TOKEN:-}" ]; then
  echo "test-git: error: TEST_GIT_TOKEN is empty; set it to the password the HTTPS clients send" >&2
  exit 2
fi
for f in cert.pem key.pem ssh_host_ed25519_key authorized_keys; do
  if [ ! -r "$mounted/$f" ]; then
    echo "test-git: error: $mounted/$f is missing; mount a folder holding cert.pem, key.pem, ssh_host_ed25519_key and authorized_keys at $mounted" >&2
    exit 2
  fi
done

# sshd refuses a host key or authorized_keys that others could read or that the wrong user owns;
# the mounted copies belong to whoever ran the test, so install copies with the modes it wants.
install -d -m 0755 /run/sshd
install -d -m 0700 /run/test-git
install -m 0600 -o root -g root "$mounted/ssh_host_ed25519_key" /run/test-git/ssh_host_ed25519_key
install -m 0600 -o git -g git "$mounted/authorized_keys" /home/git/.ssh/authorized_keys

# Fixed identities and dates: the starting commits have the same ids in every run.
export GIT_AUTHOR_NAME=test-git GIT_AUTHOR_EMAIL=test-git@git.test
export GIT_COMMITTER_NAME=test-git GIT_COMMITTER_EMAIL=test-git@git.test
export GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z'

# A bare repository with HEAD main, one commit holding a README, the tag v0 and the policy hook,
# made with plumbing only (no work tree), as user git so both protocols may write it.
make_repo() {
  name="$1"
  repo="/srv/git/$name.git"
  [ -e "$repo" ] && return 0
  runuser -u git -- git init --quiet --bare --initial-branch=main "$repo"
  runuser -u git -- git --git-dir="$repo" config http.receivepack true
  install -m 0755 -o git -g git "$lib/pre-receive" "$repo/hooks/pre-receive"
  blob=$(printf '# %s\n\nThe test upstream of the end-to-end tests.\n' "$name" \
    | runuser -u git -- git --git-dir="$repo" hash-object -w --stdin)
  tree=$(printf '100644 blob %s\tREADME.md\n' "$blob" | runuser -u git -- git --git-dir="$repo" mktree)
  commit=$(runuser -u git -- git --git-dir="$repo" commit-tree -m "$name: first commit" "$tree")
  runuser -u git -- git --git-dir="$repo" update-ref refs/heads/main "$commit"
  runuser -u git -- git --git-dir="$repo" tag v0 "$commit"
}
make_repo app
make_repo lib

exec python3 "$lib/server.py"
