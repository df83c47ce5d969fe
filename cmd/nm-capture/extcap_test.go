package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valeswitch/vale/vale/wire"
)

// TestParseExtcap checks what the calls Wireshark makes ask for.
func TestParseExtcap(t *testing.T) {
	for _, c := range []struct {
		args  string
		op    extcapOp
		iface string
	}{
		{"--extcap-interfaces", opInterfaces, ""},
		{"--extcap-interfaces --extcap-version=4.0", opInterfaces, ""},
		{"--extcap-version", opVersion, ""},
		{"--extcap-version=4.2", opVersion, ""},
		{"--extcap-dlts --extcap-interface vale0:a", opDLTs, "vale0:a"},
		{"--extcap-config --extcap-interface=vale0:a", opConfig, "vale0:a"},
		{"--extcap-capture-filter udp --extcap-interface netmap:p}1", opFilter, "netmap:p}1"},
	} {
		cfg, err := parseFlags(strings.Fields(c.args))
		if err != nil || cfg.extcap == nil || cfg.extcap.op != c.op || cfg.extcap.iface != c.iface {
			t.Errorf("%s: %+v %v, want op %d interface %q", c.args, cfg, err, c.op, c.iface)
		}
	}
}

// TestParseExtcapCapture checks the capture Wireshark starts: a copy
// monitor of the interface into the fifo, pcap, quiet, no summary.
func TestParseExtcapCapture(t *testing.T) {
	for _, c := range []struct {
		args, port string
		snaplen    int
	}{
		{"--capture --extcap-interface vale0:a --fifo /tmp/f", "vale0:a/rt", maxSnap},
		{"--capture --extcap-interface vale0:a --fifo /tmp/f --direction t --snaplen 100 --sock /s", "vale0:a/t", 100},
		{"--capture --extcap-interface p{1 --fifo /tmp/f --direction r --extcap-control-in /tmp/i --extcap-control-out /tmp/o", "netmap:p{1/r", maxSnap},
	} {
		cfg, err := parseFlags(strings.Fields(c.args))
		if err != nil {
			t.Errorf("%s: %v", c.args, err)
			continue
		}
		if cfg.extcap.op != opCapture || cfg.port != c.port || cfg.file != "/tmp/f" || cfg.format != fmtPcap ||
			cfg.snaplen != c.snaplen || !cfg.quiet || cfg.summary != nil || cfg.rotate != 0 {
			t.Errorf("%s: %+v, want port %s snap length %d", c.args, cfg, c.port, c.snaplen)
		}
	}
	if cfg, _ := parseFlags(strings.Fields("--capture --extcap-interface vale0:a --fifo f --sock /s")); cfg.socket != "/s" {
		t.Errorf("--sock /s: socket %q", cfg.socket)
	}
	for _, args := range []string{
		"--capture --extcap-interface vale0:a", // no fifo
		"--capture --fifo f",                   // no interface
		"--extcap-dlts",                        // no interface
		"--extcap-config",                      // no interface
		"--capture --extcap-interface vale0:a --fifo f --extcap-capture-filter udp",   // filters are refused
		"--capture --extcap-interface vale0:a --fifo f --direction x",                 // no such direction
		"--capture --extcap-interface vale0:a --fifo f --snaplen 300000",              // too long
		"--capture --extcap-interface vale0:a --fifo f -i vale0:b",                    // -i is not Wireshark's
		"--capture --extcap-interface vale0:a --fifo f -w x",                          // nor -w
		"--extcap-interface vale0:a",                                                  // asks nothing
		"--capture --extcap-interface vale0:a --fifo f --extcap-something-else value", // unknown
	} {
		if _, err := parseFlags(strings.Fields(args)); err == nil {
			t.Errorf("%s accepted", args)
		}
	}
}

// TestParseStdout checks -w -: the summary goes to stderr, no rotation.
func TestParseStdout(t *testing.T) {
	cfg, err := parseFlags(strings.Fields("-i vale0:a/rt -w - -c 10"))
	if err != nil || cfg.file != "-" || cfg.format != fmtPcap || cfg.summary != os.Stderr || cfg.extcap != nil {
		t.Errorf("-w -: %+v %v", cfg, err)
	}
	if cfg, err := parseFlags(strings.Fields("-i vale0:a -w - -F pcapng -G 5s")); err != nil || cfg.format != fmtPcapNG {
		t.Errorf("-w - -F pcapng -G 5s: %+v %v", cfg, err)
	}
	if cfg, _ := parseFlags(strings.Fields("-i vale0:a -w x")); cfg.summary != os.Stdout {
		t.Errorf("-w x: summary to %v", cfg.summary)
	}
	for _, args := range []string{"-i vale0:a -w - -C 1", "-i vale0:a -w x -direction t"} {
		if _, err := parseFlags(strings.Fields(args)); err == nil {
			t.Errorf("%s accepted", args)
		}
	}
}

// sentence splits an extcap sentence as Wireshark does: a keyword, then
// {key=value} fields; a value ends at a } followed by { or the end.
func sentence(t *testing.T, line string) (string, map[string]string) {
	t.Helper()
	kind, rest, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(rest, "{") || !strings.HasSuffix(rest, "}") {
		t.Fatalf("not an extcap sentence: %q", line)
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest[1:len(rest)-1], "}{") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("%q: field %q has no value", line, f)
		}
		fields[k] = v
	}
	return kind, fields
}

// answer runs a parsed extcap call and returns its output.
func answer(t *testing.T, args string) (stdout, stderr string, status int) {
	t.Helper()
	cfg, err := parseFlags(strings.Fields(args))
	if err != nil {
		t.Fatalf("%s: %v", args, err)
	}
	var out, errOut bytes.Buffer
	status = cfg.extcap.answer(&out, &errOut)
	return out.String(), errOut.String(), status
}

// TestExtcapLines checks the sentences nm-capture answers with.
func TestExtcapLines(t *testing.T) {
	out, _, status := answer(t, "--extcap-dlts --extcap-interface vale0:a")
	if kind, f := sentence(t, strings.TrimSpace(out)); status != 0 || kind != "dlt" || f["number"] != "1" || f["name"] != "EN10MB" {
		t.Errorf("--extcap-dlts: %q %d", out, status)
	}

	out, _, _ = answer(t, "--extcap-config --extcap-interface vale0:a --sock /run/x.sock")
	args := map[string]map[string]string{}
	values := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		switch kind, f := sentence(t, l); kind {
		case "arg":
			args[f["call"]] = f
		case "value":
			if f["arg"] != args["--direction"]["number"] {
				t.Errorf("value %q is not the direction's", l)
			}
			values[f["value"]] = f["default"] == "true"
		default:
			t.Errorf("--extcap-config: %q", l)
		}
	}
	if s := args["--sock"]; s["type"] != "string" || s["default"] != "/run/x.sock" {
		t.Errorf("--sock option: %v", s)
	}
	if d := args["--direction"]; d["type"] != "selector" || len(values) != 3 || !values["rt"] || values["r"] || values["t"] {
		t.Errorf("--direction option: %v, values %v", d, values)
	}
	if s := args["--snaplen"]; s["type"] != "unsigned" || s["default"] != "262144" {
		t.Errorf("--snaplen option: %v", s)
	}

	if out, _, status := answer(t, "--extcap-capture-filter udp --extcap-interface vale0:a"); status != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("a filter: %q %d, want one line saying why not", out, status)
	}
	if out, _, status := answer(t, "--extcap-capture-filter= --extcap-interface vale0:a"); status != 0 || out != "" {
		t.Errorf("no filter: %q %d, want nothing (valid)", out, status)
	}
}

// TestExtcapNoValed checks --extcap-interfaces without valed: the version
// line only, the reason on stderr, status 0.
func TestExtcapNoValed(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	out, errOut, status := answer(t, "--extcap-interfaces --extcap-version=4.0 -sock "+sock)
	kind, f := sentence(t, strings.TrimSpace(out))
	if status != 0 || strings.Count(out, "\n") != 1 || kind != "extcap" || f["version"] != extcapVersion || !strings.Contains(errOut, sock) {
		t.Errorf("without valed: %q, stderr %q, status %d", out, errOut, status)
	}
}

// TestInterfaceLines checks the interfaces of a listing: every port and
// both ends of every pipe, by name, braces and all.
func TestInterfaceLines(t *testing.T) {
	l := &wire.ListReply{
		Ports: []wire.PortInfo{{Name: "vale0:a", Desc: wire.Desc{Kind: "vale"}}, {Name: "vale1:vm", Desc: wire.Desc{Kind: "vhost-user"}}},
		Pipes: []wire.PipeInfo{{Master: "netmap:p{1", Slave: "netmap:p}1"}},
	}
	want := map[string]string{
		"vale0:a":    "vale port vale0:a",
		"vale1:vm":   "vhost-user port vale1:vm",
		"netmap:p{1": "pipe master end netmap:p{1",
		"netmap:p}1": "pipe slave end netmap:p}1",
	}
	lines := interfaceLines(l)
	for _, line := range lines {
		kind, f := sentence(t, line)
		if kind != "interface" || want[f["value"]] != f["display"] {
			t.Errorf("%q: want %q", line, want[f["value"]])
		}
		delete(want, f["value"])
	}
	if len(want) > 0 {
		t.Errorf("not listed: %v", want)
	}
}

// TestStreamSink checks a sink on a fifo: each batch reaches the reader
// when flushed, and the reader closing it is seen without a write, then
// as EPIPE on the next write, which is not an error.
func TestStreamSink(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := &sink{base: fifo, format: fmtPcap, snaplen: maxSnap}
	if err := s.open(); err != nil {
		t.Fatal(err)
	}
	if !s.stream {
		t.Fatal("a fifo is not taken for a stream")
	}
	buf := make([]byte, 4096)
	if n, err := r.Read(buf); n != 24 || err != nil {
		t.Fatalf("header: read %d bytes, %v", n, err)
	}
	frame := make([]byte, 60)
	if err := s.write(time.Now().UnixNano(), frame); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(buf); n != 16+60 || err != nil {
		t.Fatalf("frame: read %d bytes, %v", n, err)
	}
	if s.readerGone() {
		t.Fatal("reader gone while it is there")
	}
	r.Close()
	if !s.readerGone() {
		t.Fatal("reader closed, not seen")
	}
	err = s.write(time.Now().UnixNano(), frame)
	if err == nil {
		err = s.flush()
	}
	if !s.closedByReader(err) {
		t.Errorf("write after the reader left: %v, want EPIPE", err)
	}
	if err := s.close(); err != nil {
		t.Errorf("close after the reader left: %v", err)
	}
}
