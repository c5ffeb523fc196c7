#!/usr/bin/env bash
# Makes a local builder image without any registry: a Debian bookworm root with makepkg, pacman, fakeroot,
# git, sudo and a `builder` user with passwordless sudo and /build, imported into Podman.
# Usage: scripts/make-builder-image.sh [IMAGE]   (default localhost/vieter-builder:test)
# The image carries the label org.vieter.builder=1: the agent uses such an image as is.
# Idempotent: does nothing when the image exists (set VIETER_REBUILD_IMAGE=1 to force).
set -euo pipefail
IMAGE="${1:-localhost/vieter-builder:test}"

if [ -z "${VIETER_REBUILD_IMAGE:-}" ] && podman image exists "$IMAGE" 2>/dev/null; then
  echo "==> builder image $IMAGE exists"
  exit 0
fi

root=$(mktemp -d /var/tmp/vieter-image.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "==> debootstrap into $root (about a minute)"
debootstrap --variant=minbase \
  --include=makepkg,pacman-package-manager,fakeroot,binutils,git,libarchive-tools,zstd,xz-utils,bzip2,ca-certificates,curl,sudo,file \
  bookworm "$root" >/dev/null

# The same layout as the image the agent prepares from archlinux:base-devel.
chroot "$root" useradd -m -d /build builder
echo 'builder ALL=(ALL) NOPASSWD: ALL' > "$root/etc/sudoers.d/builder"
chmod 0440 "$root/etc/sudoers.d/builder"
# Debian's makepkg defaults to .pkg.tar.gz; build what Arch builds.
sed -i "s/^PKGEXT=.*/PKGEXT='.pkg.tar.zst'/" "$root/etc/makepkg.conf"
mkdir -p "$root/var/lib/pacman"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

echo "==> importing as $IMAGE"
tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' --change 'LABEL org.vieter.builder=1' - "$IMAGE" >/dev/null
echo "==> builder image $IMAGE ready"
