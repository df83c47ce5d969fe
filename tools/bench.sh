#!/usr/bin/env bash
# bench.sh [CASE...]: vale against its DPDK peer, side by side in one run,
# 64-byte frames. Every case runs ROUNDS times (default 5), the two systems
# interleaved (which goes first alternates from round to round: this VM's
# rates are bimodal from run to run), each run measuring SECS seconds
# (default 5) after a second of ramp-up. It prints min / median / max of
# each side and the ratio of the medians (and the range of the per-round
# ratios). Cases (all by default):
#
#   p2p       pkt-gen -f tx -> vale0 -> pkt-gen -f rx (received)
#   pipe      pkt-gen -f tx -> netmap pipe -> pkt-gen -f rx (received)
#             both against DPDK's memif: testpmd txonly (memif client) ->
#             testpmd rxonly (memif server)
#   vhost     testpmd virtio-user txonly -> vhost-user port -> vale0 ->
#             pkt-gen -f rx: what valed takes from the guest (ingress, drop
#             mode) and what the receiver gets, against DPDK's net_vhost
#             (testpmd rxonly) with the same client
#   vhost-out pkt-gen -f tx -> vale0 -> vhost-user port -> testpmd
#             virtio-user rxonly (egress: what the guest receives), against
#             DPDK's net_vhost txonly feeding the same client; valed runs
#             with -poll 200us, as the sender and valed share a CPU (a
#             worker that polls before sleeping takes pkt-gen's next batch
#             without a wake-up; net_vhost busy-polls)
#   xdp-in    testpmd net_af_xdp txonly on a veth -> AF_XDP -> vale0 ->
#             pkt-gen -f rx, against testpmd net_af_xdp rxonly on that veth
#   xdp-out   pkt-gen -f tx -> vale0 -> AF_XDP on a veth -> testpmd rxonly
#             on its peer, against testpmd net_af_xdp txonly on that veth
#   cnetmap   netmap's C API: nmgen (pkt-gen's loop in C, test/c/nmgen.c)
#             tx -> vale0 -> nmgen rx, both through libvale-netmap.so,
#             against the Go pkt-gen pair (p2p's vale side)
#
# Each dpdk-testpmd has one CPU for its main and forwarding lcores, driven
# interactively (its main lcore sleeps); a sender and a receiver get a CPU
# each. Where vale faces a testpmd, valed and its pkt-gen share the other
# CPU (taskset): left to the scheduler, valed's worker lands now and then
# beside the busy-polling testpmd and gets half a CPU. In p2p and pipe,
# the three processes are not pinned. Needs root; installs Debian's DPDK
# packages if missing. Run on a quiet machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(p2p pipe vhost vhost-out xdp-in xdp-out cnetmap)

need=()
command -v dpdk-testpmd >/dev/null || need+=(dpdk-dev)
for lib in memif virtio vhost af-xdp; do
	dpkg -s "librte-net-$lib"23 >/dev/null 2>&1 || need+=("librte-net-$lib"23)
done
dpkg -s librte-mempool-ring23 >/dev/null 2>&1 || need+=(librte-mempool-ring23)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi

# Results: RES[row/system] holds one rate (pps) per round.
declare -A RES
note() { RES[$1]="${RES[$1]:-} $2"; }

# ramp: let a run settle before its window opens.
ramp() { sleep 1; }

# counter PORT COLUMN: a vale-ctl counter of PORT now.
counter() { port_stat "$1" "$2"; }

# --- vale runs --------------------------------------------------------------

vale_p2p() { vale_pair p2p/vale "$VALE_BIN/pkt-gen" -f; }

# The same with netmap's C API: nmgen (pkt-gen's loop, in C) on both ends,
# through libvale-netmap.so.
vale_cnetmap() { vale_pair cnetmap/c "$VALE_BIN/vale-netmap" "$NMGEN"; }
vale_gopair() { vale_pair cnetmap/go "$VALE_BIN/pkt-gen" -f; }

# vale_pair KEY CMD...: CMD rx vale0:b and CMD tx vale0:a (after CMD's
# arguments: pkt-gen takes -f before the direction, and -i before the
# port), the rate vale0:b received noted under KEY.
vale_pair() {
	local key=$1
	shift
	start_valed
	local v=${VALE_PIDS[-1]} i=()
	[ "$1" = "$VALE_BIN/pkt-gen" ] && i=(-i)
	"$@" rx "${i[@]}" vale0:b >"$VALE_TMP/rx.out" 2>&1 &
	local rx=$!
	wait_port vale0:b
	"$@" tx "${i[@]}" vale0:a >"$VALE_TMP/tx.out" 2>&1 &
	local tx=$!
	ramp
	local c0 c1
	c0=$(counter vale0:b RX_PKTS)
	sleep "$SECS"
	c1=$(counter vale0:b RX_PKTS)
	stop_pid "$tx"
	stop_pid "$rx"
	stop_pid "$v"
	note "$key" $(((c1 - c0) / SECS))
}

vale_pipe() {
	start_valed
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/pkt-gen" -i 'netmap:p}1' -f rx >"$VALE_TMP/rx.out" 2>&1 &
	local rx=$!
	wait_port 'netmap:p}1'
	timeout -s INT $((SECS + 2)) "$VALE_BIN/pkt-gen" -i 'netmap:p{1' -f tx >"$VALE_TMP/tx.out" 2>&1 || true
	stop_pid "$rx"
	stop_pid "$v"
	note pipe/vale "$(pktgen_pps "$VALE_TMP/rx.out")"
}

vale_vhost() {
	vhost_ingress_start ""
	ramp
	local t0 r0 t1 r1
	t0=$(counter vale0:vu TX_PKTS)
	r0=$(counter vale0:b RX_PKTS)
	sleep "$SECS"
	t1=$(counter vale0:vu TX_PKTS)
	r1=$(counter vale0:b RX_PKTS)
	vhost_ingress_stop
	note vhost-in/vale $(((t1 - t0) / SECS))
	note vhost-rx/vale $(((r1 - r0) / SECS))
	# The port alone (the issue's own baseline): valed takes the frames
	# and has nowhere to send them, as net_vhost rxonly drops them.
	vhost_ingress_start "" alone
	ramp
	t0=$(counter vale0:vu TX_PKTS)
	sleep "$SECS"
	t1=$(counter vale0:vu TX_PKTS)
	vhost_ingress_stop
	note vhost-alone/vale $(((t1 - t0) / SECS))
}

# vale_egress KEY NS VDEV WNS ARGS ATTACH...: pkt-gen -f tx -> vale0 (valed
# in namespace NS if set; both on CPU 0) -> the port vale-ctl ATTACH makes
# -> testpmd rxonly on VDEV with ARGS (CPU 1, namespace WNS if set); notes
# testpmd's receive rate as KEY.
vale_egress() {
	local key=$1 ns=$2 vdev=$3 wns=$4 args=$5
	shift 5
	VALE_NETNS=$ns VALE_CPU=0 start_valed ${VALED_POLL:+-poll "$VALED_POLL"}
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/vale-ctl" "$@" >/dev/null
	# shellcheck disable=SC2086 # ARGS are words
	testpmd "$VALE_TMP/rx.log" 1 "$vdev" rxonly "$wns" $args
	local r=$TESTPMD
	taskset -c 0 "$VALE_BIN/pkt-gen" -i vale0:a -f tx >"$VALE_TMP/tx.out" 2>&1 &
	local g=$!
	window "$r"
	stop_pid "$g"
	testpmd_stop "$r"
	stop_pid "$v"
	note "$key" "$(testpmd_pps "$VALE_TMP/rx.log" Rx)"
}

vale_vhost_out() {
	VALED_POLL=200us vale_egress vhost-out/vale "" "net_virtio_user0,path=$VALE_TMP/vu.sock,queue_size=1024" "" "--rxd=1024 --txd=1024" -a vale0:vu -vhost-user "$VALE_TMP/vu.sock"
}

vale_xdp_in() {
	VALE_NETNS=$SW VALE_CPU=1 start_valed
	local v=${VALE_PIDS[-1]}
	"$VALE_BIN/vale-ctl" -a vale0:vX >/dev/null
	taskset -c 1 "$VALE_BIN/pkt-gen" -i vale0:b -f rx >"$VALE_TMP/rx.out" 2>&1 &
	local rx=$!
	wait_port vale0:b
	testpmd "$VALE_TMP/tx.log" 0 "net_af_xdp0,iface=pX" txonly "$WIRE"
	local t=$TESTPMD
	ramp
	local c0 c1
	c0=$(counter vale0:b RX_PKTS)
	sleep "$SECS"
	c1=$(counter vale0:b RX_PKTS)
	testpmd_stop "$t"
	stop_pid "$rx"
	stop_pid "$v"
	note xdp-in/vale $(((c1 - c0) / SECS))
}

vale_xdp_out() {
	vale_egress xdp-out/vale "$SW" "net_af_xdp0,iface=pX" "$WIRE" "" -a vale0:vX
}

# --- DPDK runs --------------------------------------------------------------

# window PID...: measure SECS seconds of the testpmds given (their rates
# are averages between two prints).
window() {
	local p
	ramp
	for p in "$@"; do testpmd_show "$p"; done
	sleep "$SECS"
	for p in "$@"; do testpmd_show "$p"; done
}

# pair RXLOG RXVDEV RXNS TXLOG TXVDEV TXNS [ARGS...]: a testpmd rxonly on
# CPU 1 fed by a testpmd txonly on CPU 0; PAIR is the receiver's rate.
pair() {
	local rxlog=$1 rxvdev=$2 rxns=$3 txlog=$4 txvdev=$5 txns=$6
	shift 6
	testpmd "$rxlog" 1 "$rxvdev" rxonly "$rxns" "$@"
	local r=$TESTPMD
	testpmd "$txlog" 0 "$txvdev" txonly "$txns" "$@"
	local t=$TESTPMD
	window "$r" "$t"
	testpmd_stop "$t"
	testpmd_stop "$r"
	PAIR=$(testpmd_pps "$rxlog" Rx)
}

dpdk_memif() {
	local s="$VALE_TMP/memif.sock"
	pair "$VALE_TMP/rx.log" "net_memif0,role=server,socket=$s" "" "$VALE_TMP/tx.log" "net_memif0,role=client,socket=$s" ""
	note memif/dpdk "$PAIR"
	rm -f "$s"
}

dpdk_vhost() {
	# The backend's socket exists before the frontend starts.
	pair "$VALE_TMP/rx.log" "net_vhost0,iface=$VALE_TMP/dpdk.sock,queues=1" "" \
		"$VALE_TMP/tx.log" "net_virtio_user0,path=$VALE_TMP/dpdk.sock,queue_size=1024" "" --rxd=1024 --txd=1024
	note vhost/dpdk "$PAIR"
}

dpdk_vhost_out() {
	# net_vhost (the sender) first: its socket exists before the frontend
	# starts.
	testpmd "$VALE_TMP/tx.log" 0 "net_vhost0,iface=$VALE_TMP/dpdk.sock,queues=1" txonly "" --rxd=1024 --txd=1024
	local t=$TESTPMD
	testpmd "$VALE_TMP/rx.log" 1 "net_virtio_user0,path=$VALE_TMP/dpdk.sock,queue_size=1024" rxonly "" --rxd=1024 --txd=1024
	local r=$TESTPMD
	window "$r" "$t"
	testpmd_stop "$r"
	testpmd_stop "$t"
	note vhost-out/dpdk "$(testpmd_pps "$VALE_TMP/rx.log" Rx)"
}

dpdk_xdp_in() {
	pair "$VALE_TMP/rx.log" "net_af_xdp0,iface=vX" "$SW" "$VALE_TMP/tx.log" "net_af_xdp0,iface=pX" "$WIRE"
	note xdp-in/dpdk "$PAIR"
}

dpdk_xdp_out() {
	pair "$VALE_TMP/rx.log" "net_af_xdp0,iface=pX" "$WIRE" "$VALE_TMP/tx.log" "net_af_xdp0,iface=vX" "$SW"
	note xdp-out/dpdk "$PAIR"
}

# --- the veth for the AF_XDP cases -----------------------------------------

SW=valebench$$-sw
WIRE=valebench$$-wire
veth_up() {
	ip netns add "$SW"
	ip netns add "$WIRE"
	ip link add vX netns "$SW" type veth peer name pX netns "$WIRE"
	local ns
	for ns in "$SW" "$WIRE"; do
		ip -n "$ns" link set lo up
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	done
	ip -n "$SW" link set vX up
	ip -n "$WIRE" link set pX up
}
cleanup_all() {
	vale_cleanup
	ip netns del "$SW" 2>/dev/null || true
	ip netns del "$WIRE" 2>/dev/null || true
}
trap cleanup_all EXIT
case " ${CASES[*]} " in *" xdp-"*) veth_up ;; esac
case " ${CASES[*]} " in *" cnetmap "*)
	[ -x "$VALE_BIN/vale-netmap" ] || { echo "bin/vale-netmap missing: run make (with gcc installed)" >&2; exit 1; }
	NMGEN=$VALE_TMP/nmgen
	cc -O2 -I"$VALE_BIN/../include" -o "$NMGEN" "$VALE_BIN/../test/c/nmgen.c"
	;;
esac

# --- rounds -----------------------------------------------------------------

# runs CASE: the vale and DPDK runs of a case, in the order of the round.
runs() {
	case $1 in
	p2p) echo "vale_p2p dpdk_memif" ;;
	pipe) echo "vale_pipe dpdk_memif" ;;
	vhost) echo "vale_vhost dpdk_vhost" ;;
	vhost-out) echo "vale_vhost_out dpdk_vhost_out" ;;
	xdp-in) echo "vale_xdp_in dpdk_xdp_in" ;;
	xdp-out) echo "vale_xdp_out dpdk_xdp_out" ;;
	cnetmap) echo "vale_cnetmap vale_gopair" ;;
	*) echo "unknown case $1" >&2; exit 2 ;;
	esac
}

for round in $(seq "$ROUNDS"); do
	done_memif=
	for c in "${CASES[@]}"; do
		read -r ours theirs <<<"$(runs "$c")"
		order=("$ours" "$theirs")
		[ $((round % 2)) -eq 0 ] && order=("$theirs" "$ours")
		for f in "${order[@]}"; do
			# p2p and pipe share one memif run a round.
			if [ "$f" = dpdk_memif ]; then
				[ -n "$done_memif" ] && continue
				done_memif=1
			fi
			"$f"
		done
	done
	echo "round $round of $ROUNDS done" >&2
done

# --- report -----------------------------------------------------------------

# stats VALUES...: min median max, in Mpps.
stats() {
	printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {printf "%6.2f %6.2f %6.2f", v[1] / 1e6, v[int((NR + 1) / 2)] / 1e6, v[NR] / 1e6}'
}
# ratios A B: the ratio of the medians, and the range of per-round ratios.
ratios() {
	local -a a=($1) b=($2)
	local i r=()
	for i in "${!a[@]}"; do r+=("$(awk -v x="${a[$i]}" -v y="${b[$i]:-0}" 'BEGIN {if (y > 0) printf "%.4f", x / y; else print 0}')"); done
	local ma mb
	ma=$(printf '%s\n' "${a[@]}" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
	mb=$(printf '%s\n' "${b[@]}" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
	printf '%s\n' "${r[@]}" | sort -n | awk -v ma="$ma" -v mb="$mb" '{v[NR] = $1} END {printf "%5.2f  (%.2f-%.2f)", (mb > 0 ? ma / mb : 0), v[1], v[NR]}'
}

row() { # row LABEL VALE-KEY DPDK-KEY DPDK-LABEL
	printf '%-34s %s   %-22s %s   %s\n' "$1" "$(stats ${RES[$2]})" "$4" "$(stats ${RES[$3]})" "$(ratios "${RES[$2]}" "${RES[$3]}")"
}

echo
echo "== vale against DPDK, 64 B, Mpps over $ROUNDS interleaved rounds of $SECS s (min median max)"
printf '%-34s %-20s   %-22s %-20s   %s\n' "vale" "  min    med    max" "DPDK peer" "  min    med    max" "ratio of medians (per-round range)"
for c in "${CASES[@]}"; do
	case $c in
	p2p) row "pkt-gen -> vale0 -> pkt-gen" p2p/vale memif/dpdk "memif testpmd->testpmd" ;;
	pipe) row "pkt-gen -> pipe -> pkt-gen" pipe/vale memif/dpdk "memif testpmd->testpmd" ;;
	vhost)
		row "virtio-user -> vhost-user (taken)" vhost-in/vale vhost/dpdk "net_vhost rxonly"
		row "  ... -> vale0 -> pkt-gen -f rx" vhost-rx/vale vhost/dpdk "net_vhost rxonly"
		row "virtio-user -> vhost-user, alone" vhost-alone/vale vhost/dpdk "net_vhost rxonly"
		;;
	vhost-out) row "pkt-gen -> vale0 -> vhost-user (rx)" vhost-out/vale vhost-out/dpdk "net_vhost txonly" ;;
	xdp-in) row "veth -> AF_XDP -> vale0 -> pkt-gen" xdp-in/vale xdp-in/dpdk "net_af_xdp rxonly" ;;
	xdp-out) row "pkt-gen -> vale0 -> AF_XDP -> veth" xdp-out/vale xdp-out/dpdk "net_af_xdp txonly" ;;
	cnetmap) row "C nmgen -> vale0 -> C nmgen" cnetmap/c cnetmap/go "(not DPDK) Go pkt-gen" ;;
	esac
done
