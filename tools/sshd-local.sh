#!/usr/bin/env bash
# Make an OpenSSH server available for the Jetson-over-SSH tests (tests/test_jetson.py).
#
#   tools/sshd-local.sh install   install the Debian package openssh-server if sshd is missing
#                                      (apt-get update first; CI machines start clean), print sshd's path
#   tools/sshd-local.sh path      print sshd's path, exit 1 if it is not installed
#
# The tests start their own sshd (private sshd_config, throwaway host and client keys, 127.0.0.1 only, a free
# high port) and stop it by pid; this script only installs the binary. It never starts the system service.
set -euo pipefail

find_sshd() {
    local p
    for p in /usr/sbin/sshd /usr/local/sbin/sshd "$(command -v sshd 2>/dev/null || true)"; do
        if [ -n "$p" ] && [ -x "$p" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

cmd="${1:-install}"
case "$cmd" in
    path)
        find_sshd || { echo "sshd is not installed" >&2; exit 1; }
        ;;
    install)
        if find_sshd; then
            exit 0
        fi
        if [ "$(id -u)" -ne 0 ]; then
            if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
                SUDO="sudo -n"
            else
                echo "sshd is missing and installing openssh-server needs root (or password-less sudo)" >&2
                exit 1
            fi
        else
            SUDO=""
        fi
        if ! command -v apt-get >/dev/null 2>&1; then
            echo "sshd is missing and apt-get is not available to install openssh-server" >&2
            exit 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        # Do not let the package start the system-wide service: the tests run their own sshd.
        policy=/usr/sbin/policy-rc.d
        created_policy=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
            $SUDO chmod 755 "$policy"
            created_policy=1
        fi
        cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
        trap cleanup EXIT
        # Wait for a dpkg lock held by another apt run instead of failing at once.
        lock="-o DPkg::Lock::Timeout=300"
        $SUDO apt-get $lock update -qq >&2
        $SUDO apt-get $lock install -y -qq --no-install-recommends openssh-server openssh-client >&2
        find_sshd || { echo "openssh-server installed but sshd not found" >&2; exit 1; }
        ;;
    *)
        echo "usage: $0 [install|path]" >&2
        exit 2
        ;;
esac
