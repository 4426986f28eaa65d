# Sourced by scripts/install/*.sh: apt_install_quiet PACKAGE... installs Debian packages without
# starting their services (policy-rc.d answers "no" to the postinst scripts while apt runs): the
# tests run their own private daemons. Needs root; returns apt-get's status.

apt_install_quiet() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    local policy=/usr/sbin/policy-rc.d created_policy=0 status=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    apt-get install -y -q --no-install-recommends "$@" || status=$?
    if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
    return "$status"
}
