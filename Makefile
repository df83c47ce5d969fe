# vale: a userspace netmap/VALE-style software switch.
#
#   make          build valed, pkt-gen, vale-ctl, nm-capture and nmreplay into bin/,
#                 and (with a C compiler) lib/libvale-netmap.so and bin/vale-netmap,
#                 which run netmap's C programs on vale
#   make install  install them under PREFIX (default /usr/local), with netmap's
#                 headers and pkg-config's vale-netmap.pc, and link nm-capture
#                 into Wireshark's extcap directory (EXTCAPDIR)
#   make install-extcap-user  copy nm-capture into your own extcap directory
#                 (EXTCAPUSERDIR), without root
#   make demo     start a switch, push traffic port to port, print the rate
#   make test     install what the tests need, lint, then every test (unit, race, end to end)
#   make bench    forwarding benchmarks; port to port and pipes against DPDK's
#                 memif, vhost-user against net_vhost, AF_XDP against
#                 net_af_xdp, interleaved, min/median/max; then round trips,
#                 host ports, guests (root; installs DPDK, QEMU)
#   make soak     churn valed for SOAK (default 3m), check it does not grow
#   make fuzz     run each fuzz target for FUZZTIME (default 30s)

# sudo drops /usr/local/go/bin from PATH: find go there too.
GO          ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# The tests build and run go themselves.
export PATH := $(dir $(GO)):$(PATH)
BIN         := bin
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 30s
# Fuzz targets as package:Target.
FUZZ        := ./ports/portname:FuzzParseName ./ports:FuzzKRing ./ports:FuzzOpenIface ./ptnet:FuzzRingSetup ./internal/ctl:FuzzRecv ./internal/daemon:FuzzControl \
               ./internal/replay:FuzzParseBandwidth ./internal/replay:FuzzParseDelay \
               ./internal/replay:FuzzParseLoss ./internal/replay:FuzzParseTrace \
               ./internal/offload:FuzzCompletePartial ./internal/offload:FuzzComplete \
               ./ptnet:FuzzVirtq ./ptnet:FuzzMessages ./internal/config:FuzzParse

.PHONY: all build netmap install install-extcap-user demo test deps lint unit race bench bench-afxdp bench-vhost soak fuzz clean

PREFIX      ?= /usr/local
# Wireshark runs every program in its extcap directory: nm-capture there makes
# valed's ports capture interfaces (tshark -i vale0:a). The directory is the
# one wireshark.pc names, else the one tshark scans, else Debian's.
EXTCAPDIR   ?= $(or $(shell pkg-config --variable=extcap_dir wireshark 2>/dev/null),$(shell tshark -G folders 2>/dev/null | sed -n 's/^\(Global \)\{0,1\}Extcap path:[[:space:]]*//p' | head -n 1),/usr/lib/x86_64-linux-gnu/wireshark/extcap)
# A user's own: the one tshark names (Wireshark 4.1 and later), else
# ~/.config/wireshark/extcap, which Wireshark 4.0 scans.
EXTCAPUSERDIR ?= $(or $(shell tshark -G folders 2>/dev/null | sed -n 's/^Personal Extcap path:[[:space:]]*//p' | head -n 1),$(HOME)/.config/wireshark/extcap)

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...
	@if command -v $${CC:-cc} >/dev/null; then tools/build-netmap.sh; \
	else echo "no C compiler: lib/libvale-netmap.so not built (apt-get install gcc; make netmap)"; fi

# The netmap C API on vale: lib/libvale-netmap.so, bin/vale-netmap, lib/pkgconfig.
netmap:
	tools/build-netmap.sh

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/vale-netmap/net
	install -m 755 $(BIN)/valed $(BIN)/pkt-gen $(BIN)/vale-ctl $(BIN)/nm-capture $(BIN)/nmreplay $(DESTDIR)$(PREFIX)/bin/
	install -m 644 include/net/*.h $(DESTDIR)$(PREFIX)/include/vale-netmap/net/
	INCLUDEDIR=$(PREFIX)/include/vale-netmap PCPREFIX=$(PREFIX) tools/build-netmap.sh $(DESTDIR)$(PREFIX)
	install -d $(DESTDIR)$(EXTCAPDIR)
	ln -sf $(PREFIX)/bin/nm-capture $(DESTDIR)$(EXTCAPDIR)/nm-capture

install-extcap-user: build
	install -d $(EXTCAPUSERDIR)
	install -m 755 $(BIN)/nm-capture $(EXTCAPUSERDIR)/

demo: build
	tools/demo.sh

test: deps lint unit race

# What the tests need from Debian (installed if missing, as root) and the
# guests' kernel and busybox.
deps:
	tools/test-deps.sh

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# One package at a time: the end-to-end tests measure replay accuracy and
# must not share the two cores with other packages' tests.
unit:
	$(GO) test -count=1 -p 1 -timeout 15m ./...

# The race detector does not see mmap'd memory; the ring code's tests run
# over heap memory so that it sees every access.
race:
	$(GO) test -count=1 -race -timeout 10m ./ports/... ./vale/... ./pipes/... ./monitor/... ./afxdp/... ./ptnet/... ./internal/...

# vale against its DPDK peers side by side (ROUNDS interleaved rounds,
# default 5), then the figures with no peer.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 2s ./vale/ ./ports/ ./ptnet/
	tools/bench.sh
	tools/bench-more.sh

bench-afxdp: build
	tools/bench.sh xdp-in xdp-out

bench-vhost: build
	tools/bench.sh vhost vhost-out

# A few minutes of churn (SOAK, default 3m): valed must not grow.
SOAK ?= 3m
soak:
	VALE_SOAK_DURATION=$(SOAK) $(GO) test -count=1 -tags soak -run TestSoak -timeout 30m -v ./test/

fuzz:
	@for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

clean:
	rm -rf $(BIN) lib
