#!/usr/bin/env bash
# Installs and configures everything the test suite needs on a Debian machine (idempotent).
# Run as root (or with sudo available): apt packages, the unprivileged `builder` user for makepkg,
# and the Podman configuration that works on hosts without CAP_SYS_RESOURCE and with hybrid cgroups.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(pacman-package-manager makepkg libarchive-tools fakeroot zstd xz-utils bzip2 binutils git
          podman runc debootstrap curl time gnupg chromium chromium-driver)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# makepkg refuses to run as root: test packages are built by this user.
id builder >/dev/null 2>&1 || $SUDO useradd -m builder

# Podman: runc instead of crun (hybrid cgroups) and ulimits the sandbox allows.
conf=/etc/containers/containers.conf
if ! grep -q 'runtime = "runc"' "$conf" 2>/dev/null; then
  echo "==> configuring Podman ($conf)"
  $SUDO mkdir -p /etc/containers
  $SUDO tee "$conf" >/dev/null <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
fi
