# Sourced by scripts/install/*.sh. Each install script works out which Debian packages are
# missing and hands them to `install_missing`, so the rules live here once:
#   - nothing missing: say so and do nothing (the scripts are idempotent and cheap to rerun);
#   - not root: say what is missing; under CI=true that fails the run (a test whose
#     prerequisite is missing must fail, not skip), elsewhere it is only a warning;
#   - root: install without recommends and without starting the packages' services
#     (policy-rc.d answers "no" to their postinst scripts): the tests run private daemons.
# The package lists are refreshed at most once an hour, not once per script.

apt_install_quiet() {
    export DEBIAN_FRONTEND=noninteractive
    if ! find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | grep -q .; then
        apt-get update -q
    fi
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

# install_missing WHAT [PACKAGE...]: WHAT names the tools for the messages; no PACKAGE means
# all are present.
install_missing() {
    local what=$1
    shift
    if [ $# -eq 0 ]; then
        echo "$what present"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing $*; run as root to install (for $what)" >&2
        [ "${CI:-}" = "true" ] && return 1
        return 0
    fi
    echo "installing $* (for $what)"
    apt_install_quiet "$@" >/dev/null
}

# package_missing PACKAGE: true when dpkg does not have PACKAGE installed.
package_missing() {
    ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# require_after_install PATH_OR_COMMAND...: fail with one line for each that is still absent.
require_after_install() {
    local thing
    for thing in "$@"; do
        if [ -x "$thing" ] || command -v "$thing" >/dev/null 2>&1; then continue; fi
        echo "missing after install: $thing" >&2
        return 1
    done
}
