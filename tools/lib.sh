# Shared by the scripts in tools/: start and stop what they run, by PID.

VALE_BIN=${VALE_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bin}
VALE_TMP=$(mktemp -d /tmp/vale-tools.XXXXXX)
export VALE_SOCK=$VALE_TMP/valed.sock
VALE_PIDS=()

vale_cleanup() {
	local pid
	for pid in "${VALE_PIDS[@]}"; do
		kill -INT "$pid" 2>/dev/null || true
	done
	for pid in "${VALE_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	[ -n "${KEEP:-}" ] || rm -rf "$VALE_TMP"
}
trap vale_cleanup EXIT

# start_valed [flags...]: start valed on a private socket (in network
# namespace $VALE_NETNS if set, on CPU $VALE_CPU if set) and wait for it.
start_valed() {
	local pre=()
	[ -n "${VALE_NETNS:-}" ] && pre=(ip netns exec "$VALE_NETNS")
	[ -n "${VALE_CPU:-}" ] && pre+=(taskset -c "$VALE_CPU")
	rm -f "$VALE_SOCK" # a socket left over would look like this valed's
	"${pre[@]}" "$VALE_BIN/valed" -sock "$VALE_SOCK" -log-level warn "$@" 2>"$VALE_TMP/valed.log" &
	VALE_PIDS+=($!)
	for _ in $(seq 100); do
		[ -S "$VALE_SOCK" ] && return 0
		sleep 0.05
	done
	echo "valed did not start:" >&2
	cat "$VALE_TMP/valed.log" >&2
	return 1
}

# stop_pid PID: stop a process started here and wait for it.
stop_pid() {
	kill -INT "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# wait_port NAME: wait until valed lists the port.
wait_port() {
	local out
	for _ in $(seq 100); do
		out=$("$VALE_BIN/vale-ctl" -l "$1" 2>&1) && return 0
		sleep 0.05
	done
	echo "port $1 did not appear (vale-ctl -l $1: $out); valed's log:" >&2
	cat "$VALE_TMP/valed.log" >&2
	for f in "$VALE_TMP"/*.out; do
		[ -f "$f" ] && { echo "$f:"; tail -5 "$f"; } >&2
	done
	return 1
}

# port_stat PORT COLUMN [LISTING]: a column of PORT's row in vale-ctl -l
# (read now, or from the file LISTING), found by its header.
port_stat() {
	local list
	if [ -n "${3:-}" ]; then list=$(cat "$3"); else list=$("$VALE_BIN/vale-ctl" -l "$1"); fi
	printf '%s\n' "$list" | awk -v p="$1" -v c="$2" '$1 == "PORT" {for (i = 1; i <= NF; i++) if ($i == c) k = i; next} $1 == p && k {print $k}'
}

# rate FILE: the "Speed:" line of a pkt-gen output, without the label.
rate() {
	sed -n 's/^Speed: //p' "$1"
}

# median: the median of the numbers on stdin, leaving out the first
# (ramp-up) value when there are three or more, and zeros.
median() {
	awk '$1 > 0' | awk 'NR == 1 {first = $1; next} {print} END {if (NR < 3 && NR > 0) print first}' |
		sort -n | awk '{v[NR]=$1} END {if (NR == 0) print 0; else printf "%d\n", v[int((NR+1)/2)]}'
}

# pktgen_pps FILE: pkt-gen's median per-second rate, in pps.
pktgen_pps() {
	awk '$2 == "main_thread" && $4 ~ /pps$/ {v=$3; if ($4 == "Kpps") v*=1e3; if ($4 == "Mpps") v*=1e6; print v}' "$1" | median
}

# dpdk-testpmd runs interactive, driven through a FIFO: with
# --stats-period its main thread busy-waits between prints and takes the
# CPU its own forwarding thread (or its peer's) needs.
declare -A TESTPMD_IN

# testpmd LOG CPU VDEV MODE [NS [ARGS...]]: start dpdk-testpmd (in network
# namespace NS if not empty) with one virtual device, start forwarding and
# wait until it forwards; TESTPMD is its pid. Its main and forwarding
# lcores both run on CPU (--lcores '0@CPU,1@CPU'; the main one sleeps,
# waiting for commands): give a sender and a receiver a CPU each.
testpmd() {
	local log=$1 cores=$2 vdev=$3 mode=$4 ns=${5:-}
	shift 4
	[ $# -gt 0 ] && shift
	local pre=()
	[ -n "$ns" ] && pre=(ip netns exec "$ns")
	local fifo
	fifo=$(mktemp -u "$VALE_TMP/testpmd.XXXXXX")
	mkfifo "$fifo"
	"${pre[@]}" stdbuf -oL dpdk-testpmd --lcores "0@$cores,1@$cores" --no-huge -m 1024 --no-pci --no-shconf --file-prefix "vb$$-$mode-${vdev%%,*}" \
		--vdev "$vdev" -- -i --forward-mode="$mode" --nb-cores=1 --total-num-mbufs=32768 --burst=32 \
		--eth-peer=0,ff:ff:ff:ff:ff:ff "$@" <"$fifo" >"$log" 2>&1 &
	TESTPMD=$!
	VALE_PIDS+=("$TESTPMD")
	local fd
	exec {fd}>"$fifo"
	TESTPMD_IN[$TESTPMD]=$fd
	echo start >&"$fd"
	for _ in $(seq 600); do
		grep -aq "forwards packets on" "$log" && return 0
		kill -0 "$TESTPMD" 2>/dev/null || break
		sleep 0.05
	done
	echo "dpdk-testpmd did not start:" >&2
	cat "$log" >&2
	return 1
}

# testpmd_show PID: print port statistics now; the rates testpmd prints are
# averages since the previous print, so call it at both ends of a window.
testpmd_show() { echo "show port stats all" >&"${TESTPMD_IN[$1]}"; sleep 0.2; }

# testpmd_stop PID: stop forwarding and quit.
testpmd_stop() {
	printf 'stop\nquit\n' >&"${TESTPMD_IN[$1]}"
	exec {TESTPMD_IN[$1]}>&-
	wait "$1" 2>/dev/null || true
}

# testpmd_pps FILE Rx|Tx: the rate testpmd printed last (the window's
# average when testpmd_show marked its ends).
testpmd_pps() { grep -ao "$2-pps: *[0-9]*" "$1" | tail -1 | awk '{print $2}'; }

# vhost_ingress_start DEVARGS [alone]: valed on CPU 0 with a vhost-user port
# vale0:vu and pkt-gen -f rx on vale0:b (not with "alone": the port is
# valed's only one, and what it takes goes nowhere, as net_vhost rxonly
# drops it), fed by testpmd virtio-user txonly (with DEVARGS) on CPU 1;
# vhost_ingress_stop ends them.
vhost_ingress_start() {
	VALE_CPU=0 start_valed
	VI_VALED=${VALE_PIDS[-1]}
	"$VALE_BIN/vale-ctl" -a vale0:vu -vhost-user "$VALE_TMP/vu.sock" >/dev/null
	VI_RX=
	if [ "${2:-}" != alone ]; then
		taskset -c 0 "$VALE_BIN/pkt-gen" -i vale0:b -f rx >"$VALE_TMP/rx.out" 2>&1 &
		VI_RX=$!
		wait_port vale0:b
	fi
	testpmd "$VALE_TMP/tx.log" 1 "net_virtio_user0,path=$VALE_TMP/vu.sock,queue_size=1024$1" txonly "" --rxd=1024 --txd=1024
	VI_TESTPMD=$TESTPMD
}

vhost_ingress_stop() {
	testpmd_stop "$VI_TESTPMD"
	[ -z "$VI_RX" ] || stop_pid "$VI_RX"
	stop_pid "$VI_VALED"
}
