#!/usr/bin/env bash
# Builds the test corpus: real packages made by Debian's makepkg, covering what real packages contain.
# Usage: scripts/build-corpus.sh OUTDIR
# makepkg refuses root: as root the packages are built by the user `builder` (scripts/setup-test-env.sh).
# Re-running is cheap: nothing is rebuilt while OUTDIR/.stamp matches this script.
set -euo pipefail
OUT=$(realpath -m "${1:?usage: build-corpus.sh OUTDIR}")
SELF=$(realpath "$0")
stamp=$(sha256sum "$SELF" | cut -d' ' -f1)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$stamp" ]; then
  echo "==> corpus in $OUT is up to date"
  exit 0
fi
command -v makepkg >/dev/null || { echo "makepkg is missing: run scripts/setup-test-env.sh" >&2; exit 1; }

work=$(mktemp -d /tmp/vieter-corpus.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/out"

# pkgdir name PKGEXT: writes a PKGBUILD body (from stdin) into $work/src/<dir>.
new_pkgbuild() { mkdir -p "$work/src/$1"; cat > "$work/src/$1/PKGBUILD"; }

# One simple package per compression.
for ext in zst xz gz bz2 none; do
  new_pkgbuild "compress-$ext" <<PKG
pkgname=corpus-compress-$ext
pkgver=1.0
pkgrel=1
pkgdesc="Compressed with $ext"
arch=('x86_64')
url="https://example.org/compress"
license=('MIT')
depends=('glibc')
options=('!strip' '!debug')
package() {
  install -Dm644 /dev/stdin "\$pkgdir/usr/share/corpus/$ext.txt" <<< "payload $ext"
}
PKG
done

# A split package: pkgbase with three packages, one of them arch any.
new_pkgbuild split <<'PKG'
pkgbase=corpus-split
pkgname=('corpus-split-bin' 'corpus-split-lib' 'corpus-split-doc')
pkgver=3.2.1
pkgrel=2
pkgdesc="A split package"
arch=('x86_64')
url="https://example.org/split"
license=('GPL-2.0-or-later')
options=('!strip' '!debug')
package_corpus-split-bin() {
  depends=('corpus-split-lib=3.2.1')
  install -Dm755 /dev/stdin "$pkgdir/usr/bin/corpus-split" <<< '#!/bin/sh'
}
package_corpus-split-lib() {
  pkgdesc="The library of the split package"
  provides=('libcorpus.so=1-64')
  install -Dm644 /dev/stdin "$pkgdir/usr/lib/libcorpus.so.1" <<< 'not really a library'
}
package_corpus-split-doc() {
  arch=('any')
  pkgdesc="Documentation (architecture independent)"
  install -Dm644 /dev/stdin "$pkgdir/usr/share/doc/corpus-split/README" <<< 'docs'
}
PKG

# Epoch and an unusual pkgver; every relation key with versions; groups, backup, licenses;
# optdepends with ':' in the description; install script and changelog; unicode description.
new_pkgbuild metadata <<'PKG'
pkgname=corpus-metadata
epoch=2
pkgver=1.2.3.r45.gabc_beta+x
pkgrel=3.1
pkgdesc="Ünïcödé description — with   extra   spaces and 'quotes' 🚀"
arch=('x86_64')
url="https://example.org/metadata?x=1&y=2"
license=('MIT' 'Apache-2.0' 'custom:Corpus')
groups=('corpus-group' 'another-group')
depends=('glibc>=2.36' 'bash' 'zlib<2' 'sh=5')
makedepends=('make>4.0' 'gcc')
checkdepends=('python-pytest')
optdepends=('python: for the python: bindings' 'perl: scripts: more scripts' 'ruby')
provides=('corpus-provided=2.0' 'corpus-virtual')
conflicts=('corpus-old<2:1.0' 'corpus-other')
replaces=('corpus-legacy<=1.0-1')
backup=('etc/corpus/corpus.conf' 'etc/corpus/other.conf')
install=corpus.install
changelog=ChangeLog
options=('!strip' '!debug')
package() {
  install -Dm644 /dev/stdin "$pkgdir/etc/corpus/corpus.conf" <<< 'key=value'
  install -Dm644 /dev/stdin "$pkgdir/etc/corpus/other.conf" <<< 'other=1'
  install -Dm644 /dev/stdin "$pkgdir/usr/share/corpus/données été.txt" <<< 'unicode name'
  install -Dm644 /dev/stdin "$pkgdir/usr/share/corpus/name with spaces.txt" <<< 'spaces'
  install -Dm644 /dev/stdin "$pkgdir/usr/share/corpus/日本語/ファイル" <<< 'cjk'
}
PKG
cat > "$work/src/metadata/corpus.install" <<'INS'
post_install() {
  echo "installed corpus-metadata"
}
INS
printf '2024-01-01 Someone <s@example.org>\n\n  * 1.2.3: released\n' > "$work/src/metadata/ChangeLog"

# Thousands of files, long paths (> 100 and > 255 bytes: PAX headers), symlinks, hard links, empty dirs.
new_pkgbuild tree <<'PKG'
pkgname=corpus-tree
pkgver=20240101
pkgrel=1
pkgdesc="Thousands of files, long paths, links and empty directories"
arch=('any')
url="https://example.org/tree"
license=('BSD-3-Clause')
options=('!strip' '!debug' 'emptydirs')
package() {
  local base="$pkgdir/usr/share/corpus-tree"
  for d in $(seq -w 0 29); do
    mkdir -p "$base/dir$d"
    for f in $(seq -w 0 99); do
      echo "$d/$f" > "$base/dir$d/file-$f.txt"
    done
  done
  local long="$base/$(printf 'a%.0s' {1..60})/$(printf 'b%.0s' {1..60})/$(printf 'c%.0s' {1..60})/$(printf 'd%.0s' {1..60})"
  mkdir -p "$long"
  echo long > "$long/$(printf 'e%.0s' {1..80}).txt"
  mkdir -p "$base/empty/nested-empty" "$base/also-empty"
  ln -s dir00/file-00.txt "$base/symlink-relative"
  ln -s /usr/share/corpus-tree/dir01 "$base/symlink-absolute-dir"
  ln -s does-not-exist "$base/dangling"
  ln "$base/dir02/file-02.txt" "$base/hardlink-to-02"
}
PKG

# A 40+ MiB incompressible payload.
new_pkgbuild big <<'PKG'
pkgname=corpus-big
pkgver=1
pkgrel=1
pkgdesc="An incompressible payload"
arch=('x86_64')
url="https://example.org/big"
license=('MIT')
options=('!strip' '!debug')
package() {
  mkdir -p "$pkgdir/usr/share/corpus-big"
  head -c 44040192 /dev/urandom > "$pkgdir/usr/share/corpus-big/random.bin"
}
PKG

declare -A EXT=([zst]=.pkg.tar.zst [xz]=.pkg.tar.xz [gz]=.pkg.tar.gz [bz2]=.pkg.tar.bz2 [none]=.pkg.tar)
build() {
  local dir=$1 pkgext=$2
  local cmd="cd '$work/src/$dir' && PKGDEST='$work/out' PKGEXT='$pkgext' SRCEXT=.src.tar.gz makepkg -d -f --noconfirm --nocheck >'$work/$dir.log' 2>&1"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R builder "$work"
    su builder -s /bin/bash -c "$cmd"
  else
    bash -c "$cmd"
  fi || { echo "makepkg failed for $dir:" >&2; cat "$work/$dir.log" >&2; exit 1; }
}

chmod 755 "$work"
echo "==> building the corpus in $work"
for ext in zst xz gz bz2 none; do build "compress-$ext" "${EXT[$ext]}"; done
build split .pkg.tar.zst
build metadata .pkg.tar.xz
build tree .pkg.tar.zst
build big .pkg.tar.zst

rm -rf "$OUT"
mkdir -p "$OUT"
cp "$work"/out/*.pkg.tar* "$OUT"/
echo "$stamp" > "$OUT/.stamp"
echo "==> corpus: $(ls "$OUT" | wc -l) packages in $OUT"
ls -la "$OUT"
