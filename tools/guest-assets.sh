#!/usr/bin/env bash
# guest-assets.sh DIR: puts into DIR what the VM tests and benchmarks boot:
# Debian's kernel (the one linux-image-amd64 depends on) as DIR/vmlinuz, the
# virtio-net modules it needs as DIR/modules/*.ko, and Debian's static
# busybox as DIR/busybox. The packages are downloaded with apt-get and
# unpacked with dpkg-deb, not installed. Does nothing if DIR is complete.
set -euo pipefail
dir=${1:?usage: guest-assets.sh DIR}
mods="virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net"
complete() {
	[ -f "$dir/vmlinuz" ] && [ -x "$dir/busybox" ] || return 1
	for m in $mods; do [ -f "$dir/modules/$m.ko" ] || return 1; done
}
complete && exit 0
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kpkg" ]; then
	apt-get update >/dev/null
	kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
(cd "$tmp" && apt-get download -q "$kpkg" busybox-static >/dev/null 2>&1) ||
	(apt-get update >/dev/null && cd "$tmp" && apt-get download -q "$kpkg" busybox-static >/dev/null)
dpkg-deb -x "$tmp"/linux-image-*.deb "$tmp/k"
dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/b"
mkdir -p "$dir/modules"
cp "$tmp"/k/boot/vmlinuz-* "$dir/vmlinuz"
for m in $mods; do
	f=$(find "$tmp/k/lib/modules" -name "$m.ko" | head -1)
	[ -n "$f" ] || { echo "guest-assets.sh: $kpkg has no $m.ko" >&2; exit 1; }
	cp "$f" "$dir/modules/"
done
cp "$tmp/b/bin/busybox" "$dir/busybox"
echo "$kpkg" >"$dir/kernel-package"
complete
