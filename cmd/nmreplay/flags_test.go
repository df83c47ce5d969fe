package main

import (
	"strings"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/replay"
)

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"-f", "x.pcap", "-i", "p}1", "-B", "ether,10M", "-D", "uniform,1m,2m", "-L", "0.1", "-w", "1.5", "-n", "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.port != "netmap:p}1" || c.bw.Mode != replay.Ether || c.bw.BPS != 10e6 || c.delay.Mode != replay.Uniform ||
		c.loss.Rate != 0.1 || c.wait != 1500*time.Millisecond || c.loops != 0 || c.burst != 128 {
		t.Errorf("parsed %+v", c)
	}
	for burst, want := range map[string]int{"1": 1, "8192": 8192, "0": 1024, "8193": 1024, "-5": 1024} {
		c, err := parseFlags([]string{"-f", "x", "-i", "vale0:a", "-b", burst})
		if err != nil || c.burst != want || c.port != "vale0:a" {
			t.Errorf("-b %s: %+v %v, want burst %d", burst, c, err, want)
		}
	}
	for _, args := range [][]string{
		{"-i", "vale0:a"},
		{"-f", "x"},
		{"-f", "x", "-i", "vale0:a", "-B", "fast"},
		{"-f", "x", "-i", "vale0:a", "-D", "exp,2,1"},
		{"-f", "x", "-i", "vale0:a", "-L", "plr,2"},
		{"-f", "x", "-i", "vale0:a", "-w", "-1"},
		{"-f", "x", "-i", "vale0:a", "extra"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%s accepted", strings.Join(args, " "))
		}
	}
}
