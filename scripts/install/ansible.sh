#!/usr/bin/env bash
# What the Ansible tests need besides ansible-core from the dev extras (tests/ansible):
# openssh-server (each test host runs its own sshd in its network namespace), openssh-client
# (ansible-playbook connects over SSH) and Debian's ansible-lint (the roles are linted in the
# suite). Idempotent: touches apt only when something is missing; under CI=true a missing tool
# that cannot be installed fails the run.
#
# Installing openssh-server must not start an sshd on this machine's port 22: while apt runs, a
# policy-rc.d that refuses every service start is in place (unless one already is).
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
{ command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1; } || missing+=(openssh-client)
[ -x /usr/bin/ansible-lint ] || missing+=(ansible-lint)
install_missing "openssh-server, openssh-client and ansible-lint" "${missing[@]}"
