package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		args   string
		format string
		port   string
	}{
		{"-i vale0:a -w x.pcap", fmtPcap, "vale0:a"},
		{"-i vale0:a -w x.PCAPNG", fmtPcapNG, "vale0:a"},
		{"-i p}1 -w x.cap", fmtPcap, "netmap:p}1"},
		{"-i vale0:a -w x.pcap -F pcapng", fmtPcapNG, "vale0:a"},
		{"-i vale0:a -w x.pcapng -F pcap", fmtPcap, "vale0:a"},
	} {
		cfg, err := parseFlags(strings.Fields(c.args))
		if err != nil || cfg.format != c.format || cfg.port != c.port {
			t.Errorf("%s: %+v %v, want format %s port %s", c.args, cfg, err, c.format, c.port)
		}
	}
	cfg, err := parseFlags(strings.Fields("-i vale0:a -w x -s 0 -c 5 -G 1m30s -C 1.5 -q"))
	if err != nil || cfg.snaplen != 0 || cfg.count != 5 || cfg.duration != 90*time.Second || cfg.rotate != 1_500_000 || !cfg.quiet {
		t.Errorf("parsed %+v %v", cfg, err)
	}
	if cfg, _ := parseFlags(strings.Fields("-i vale0:a -w x")); cfg.snaplen != maxSnap {
		t.Errorf("default snap length %d", cfg.snaplen)
	}
	for _, args := range []string{"-w x", "-i vale0:a", "-i vale0:a -w x -F erf", "-i vale0:a -w x -s -1",
		"-i vale0:a -w x -s 300000", "-i vale0:a -w x -C -1", "-i vale0:a -w x -G -1s", "-i vale0:a -w x y"} {
		if _, err := parseFlags(strings.Fields(args)); err == nil {
			t.Errorf("%s accepted", args)
		}
	}
}

// TestWithRing checks that -B sizes copy monitors only, and only when the
// name does not size them itself.
func TestWithRing(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"vale0:a/rt", "vale0:a/rt@conf:rx-slots=4096"},
		{"netmap:p{1/t", "netmap:p{1/t@conf:rx-slots=4096"},
		{"vale0:a/r@conf:rx-slots=512", "vale0:a/r@conf:rx-slots=512"},
		{"vale0:a/r@conf:slots=256", "vale0:a/r@conf:slots=256"},
		{"vale0:a/t@conf:rings=1", "vale0:a/t@conf:rings=1,rx-slots=4096"},
		{"vale0:a/z", "vale0:a/z"},
		{"vale0:a", "vale0:a"},
		{"netmap:p}1", "netmap:p}1"},
	} {
		if got := withRing(c.name, 4096); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if got := withRing("vale0:a/rt", 0); got != "vale0:a/rt" {
		t.Errorf("-B 0: %s", got)
	}
	for _, args := range []string{"-i vale0:a -w x -B 1", "-i vale0:a -w x -B 8192"} {
		if _, err := parseFlags(strings.Fields(args)); err == nil {
			t.Errorf("%s accepted", args)
		}
	}
}
