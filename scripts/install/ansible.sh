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

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
[ -x /usr/bin/ansible-lint ] || need+=(ansible-lint)
if [ ${#need[@]} -eq 0 ]; then
    echo "openssh-server, openssh-client and ansible-lint present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${need[*]}; run as root to install them" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
echo "installing ${need[*]}"
policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/install/ansible.sh: no service starts while it installs\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    ours=1
fi
cleanup() { if [ -n "$ours" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
