#!/usr/bin/env bash
# test-deps.sh: install (with apt-get) what make test needs and is missing,
# and fetch the guests' kernel and busybox. Does nothing when all is there.
#
# The C programs of the netmap tests build with gcc and pkg-config; the
# capture and replay tests check their files with the real tcpdump,
# tshark, capinfos and text2pcap (wireshark-common, a dependency of tshark),
# and capture live through tshark (nm-capture as its extcap) and tcpdump; the
# NIC tests build namespaces and veths (iproute2), check offloads (ethtool), and
# run ping and iperf3 through the switch; the afxdp tests run in a namespace
# of their own (unshare, from util-linux); the access test drops privileges
# with setpriv (util-linux); the vhost-user tests boot QEMU guests (Debian's
# kernel and busybox, unpacked by guest-assets.sh) and run DPDK's
# virtio-user driver, whose drivers come in packages of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pair in gcc:gcc pkg-config:pkg-config tcpdump:tcpdump tshark:tshark text2pcap:tshark capinfos:tshark \
	ip:iproute2 ethtool:ethtool ping:iputils-ping iperf3:iperf3 unshare:util-linux setpriv:util-linux \
	qemu-system-x86_64:qemu-system-x86 dpdk-testpmd:dpdk-dev; do
	command -v "${pair%%:*}" >/dev/null || need+=("${pair##*:}")
done
for lib in net-virtio net-vhost mempool-ring net-af-xdp; do
	[ -e "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0/librte_${lib//-/_}.so" ] || need+=("librte-$lib""23")
done
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "make test needs these Debian packages: ${need[*]}; run it as root to install them" >&2
		exit 1
	fi
	apt-get update
	# tshark's wireshark-common asks whether non-root users may capture.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi
tools/guest-assets.sh "${VALE_GUEST_CACHE:-/var/cache/vale-guest}"
