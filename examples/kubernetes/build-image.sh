#!/usr/bin/env bash
# Build the masq-janitor DaemonSet image from what this machine already has,
# with no network and no registry: `make image` runs it.
#
#   1. a root filesystem: the standalone executable (dist/standalone/masq-janitor),
#      iptables (nft and legacy) and nft with exactly the shared libraries and
#      xtables extensions they load (found with ldd), a static busybox for the
#      shell the entrypoint needs, and the entrypoint;
#   2. that rootfs as one layer of an OCI image layout (index.json, blobs/), and
#      the same as a single tar (oci-archive), loadable with
#      `podman load -i`, `skopeo copy oci-archive:...`, or
#      `ctr -n k8s.io image import --index-name NAME`.
#
# Nothing is pulled, so it builds offline and behind TLS-intercepting proxies.
# Every input can be replaced (environment [default]):
#   OUT            output directory [dist/image]
#   STANDALONE     the masq-janitor executable [dist/standalone/masq-janitor]
#   ENTRYPOINT_SH  the entrypoint script [examples/kubernetes/entrypoint.sh]
#   BUSYBOX        a statically linked busybox [$(command -v busybox)]
#   TOOLS_ROOT     the filesystem iptables, nft and their libraries are copied
#                  from, e.g. a debootstrap of another release [/]
#   IPTABLES_DEFAULT  what plain `iptables` is in the image: nft or legacy [nft]
#   IMAGE_NAME     the reference name recorded in the layout [masq-janitor:VERSION]
#   ROOTFS_ONLY    non-empty: stop after the rootfs (OUT/rootfs) []
# The standalone executable is the node binary, dynamically linked: TOOLS_ROOT
# must have a glibc at least as new as the one it was built with (Debian
# bookworm's here).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
VERSION=$(node -p 'require("./package.json").version')
OUT=${OUT:-dist/image}
STANDALONE=${STANDALONE:-dist/standalone/masq-janitor}
ENTRYPOINT_SH=${ENTRYPOINT_SH:-examples/kubernetes/entrypoint.sh}
BUSYBOX=${BUSYBOX:-$(command -v busybox || true)}
TOOLS_ROOT=${TOOLS_ROOT:-/}
IPTABLES_DEFAULT=${IPTABLES_DEFAULT:-nft}
IMAGE_NAME=${IMAGE_NAME:-masq-janitor:$VERSION}
ROOTFS_ONLY=${ROOTFS_ONLY:-}

die() { echo "build-image: $*" >&2; exit 1; }
[[ -x $STANDALONE ]] || die "$STANDALONE missing: run 'make standalone' first"
[[ -n $BUSYBOX && -x $BUSYBOX ]] || die "no busybox (Debian: apt-get install busybox-static), or set BUSYBOX"
file -L "$BUSYBOX" | grep -q 'statically linked' || die "$BUSYBOX is not statically linked (Debian: busybox-static)"
case $IPTABLES_DEFAULT in nft | legacy) ;; *) die "IPTABLES_DEFAULT must be nft or legacy" ;; esac
T=${TOOLS_ROOT%/}

ROOTFS=$OUT/rootfs
rm -rf "$ROOTFS"
mkdir -p "$ROOTFS"/{bin,usr/sbin,usr/local/bin,etc,tmp,run,proc,sys,dev,var/lib/cni,host}
chmod 1777 "$ROOTFS/tmp"

# Copy a file from TOOLS_ROOT to the same path in the rootfs, links followed.
put() { mkdir -p "$ROOTFS$(dirname "$1")"; cp -L "$T$1" "$ROOTFS$1"; }

# The libraries an ELF file loads, as absolute paths in TOOLS_ROOT. ldd runs the
# TOOLS_ROOT's loader only when that root is /; for another root, chroot into it.
libs_of() {
  if [[ -z $T ]]; then ldd "$1"; else chroot "$T" ldd "${1#"$T"}"; fi 2>/dev/null |
    sed -nE 's#^\s*(\S+ => )?(/[^ ]+) \(0x[0-9a-f]+\)$#\2#p'
}

ELF=(/usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/nft)
for f in "${ELF[@]}"; do [[ -x $T$f ]] || die "$T$f missing (Debian: apt-get install iptables nftables)"; put "$f"; done
# iptables loads its matches and targets (comment, MASQUERADE, ...) at run time.
XT_DIR=$(cd "$T/" && ls -d usr/lib/*/xtables 2>/dev/null | head -n1)
[[ -n $XT_DIR ]] || die "no xtables extension dir under $T/usr/lib"
mkdir -p "$ROOTFS/$XT_DIR"
cp -L "$T/$XT_DIR"/*.so "$ROOTFS/$XT_DIR/"
declare -A seen=()
for f in "${ELF[@]}" "/$XT_DIR"/*.so "$(realpath "$STANDALONE")"; do
  src=$f
  [[ $f == "$(realpath "$STANDALONE")" ]] || src=$T$f
  while read -r lib; do
    [[ -n $lib && -z ${seen[$lib]:-} ]] || continue
    seen[$lib]=1
    put "$lib"
  done < <(libs_of "$src")
done
# Both loader paths glibc binaries may name.
for l in /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1; do [[ -e $T$l && ! -e $ROOTFS$l ]] && put "$l"; done
for f in /etc/protocols /etc/services /etc/ethertypes; do [[ -e $T$f ]] && put "$f"; done

# The names the janitor and the upstream plugins call.
for fam in iptables ip6tables; do
  for v in nft legacy; do
    for s in '' -save -restore; do ln -sf "xtables-$v-multi" "$ROOTFS/usr/sbin/$fam-$v$s"; done
  done
  for s in '' -save -restore; do ln -sf "xtables-$IPTABLES_DEFAULT-multi" "$ROOTFS/usr/sbin/$fam$s"; done
done

cp "$BUSYBOX" "$ROOTFS/bin/busybox"
for a in sh date sleep env cat ls rm mkdir grep sed kill printf test true false id; do ln -sf busybox "$ROOTFS/bin/$a"; done
printf 'root:x:0:0:root:/:/bin/sh\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\n' >"$ROOTFS/etc/group"

install -m 0755 "$STANDALONE" "$ROOTFS/usr/local/bin/masq-janitor"
install -m 0755 "$ENTRYPOINT_SH" "$ROOTFS/usr/local/bin/masq-janitor-entrypoint"
echo "rootfs: $ROOTFS ($(du -sh --apparent-size "$ROOTFS" | cut -f1))"
[[ -z $ROOTFS_ONLY ]] || exit 0

# --- OCI image layout --------------------------------------------------------
LAYOUT=$OUT/oci
rm -rf "$LAYOUT"
mkdir -p "$LAYOUT/blobs/sha256"
blob() { # FILE -> prints digest, moves FILE into blobs/
  local d
  d=$(sha256sum "$1" | cut -d' ' -f1)
  mv "$1" "$LAYOUT/blobs/sha256/$d"
  echo "$d"
}
# Reproducible: sorted, fixed owner and time, no gzip timestamp.
tar -C "$ROOTFS" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$OUT/layer.tar" .
DIFF_ID=$(sha256sum "$OUT/layer.tar" | cut -d' ' -f1)
gzip -n -9 -f "$OUT/layer.tar"
LAYER_SIZE=$(stat -c %s "$OUT/layer.tar.gz")
LAYER=$(blob "$OUT/layer.tar.gz")

ARCH=$(node -p 'process.arch === "x64" ? "amd64" : process.arch')
cat >"$OUT/config.json" <<EOF
{"architecture":"$ARCH","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Entrypoint":["/usr/local/bin/masq-janitor-entrypoint"],"Env":["PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Labels":{"org.opencontainers.image.title":"masq-janitor","org.opencontainers.image.version":"$VERSION","org.opencontainers.image.licenses":"Apache-2.0"}},"rootfs":{"type":"layers","diff_ids":["sha256:$DIFF_ID"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"examples/kubernetes/build-image.sh"}]}
EOF
CONFIG_SIZE=$(stat -c %s "$OUT/config.json")
CONFIG=$(blob "$OUT/config.json")
cat >"$OUT/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$CONFIG","size":$CONFIG_SIZE},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$LAYER","size":$LAYER_SIZE}]}
EOF
MANIFEST_SIZE=$(stat -c %s "$OUT/manifest.json")
MANIFEST=$(blob "$OUT/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' >"$LAYOUT/oci-layout"
cat >"$LAYOUT/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$MANIFEST","size":$MANIFEST_SIZE,"annotations":{"org.opencontainers.image.ref.name":"$IMAGE_NAME"}}]}
EOF
ARCHIVE=$OUT/masq-janitor-$VERSION.oci.tar
tar -C "$LAYOUT" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$ARCHIVE" oci-layout index.json blobs
echo "image: $LAYOUT (OCI layout), $ARCHIVE"
echo "size: layer $LAYER_SIZE bytes compressed, $(du -sb "$ROOTFS" | cut -f1) bytes unpacked"
