package portname

import (
	"reflect"
	"strings"
	"testing"

	"github.com/valeswitch/vale/ports"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in   string
		want Name
	}{
		{"vale0:a", Name{Subsystem: "vale", Switch: "vale0", Port: "a"}},
		{"vale:a", Name{Subsystem: "vale", Switch: "vale", Port: "a"}},
		{"vale_x1:port_2", Name{Subsystem: "vale", Switch: "vale_x1", Port: "port_2"}},
		{"vale0:a-3", Name{Subsystem: "vale", Switch: "vale0", Port: "a", Mode: RegOneNIC, Ring: 3}},
		{"vale0:a/x", Name{Subsystem: "vale", Switch: "vale0", Port: "a", Flags: FlagExclusive}},
		{"vale0:a-1/RT", Name{Subsystem: "vale", Switch: "vale0", Port: "a", Mode: RegOneNIC, Ring: 1, Flags: FlagRxOnly | FlagTxOnly}},
		{"vale0:a/rt", Name{Subsystem: "vale", Switch: "vale0", Port: "a", Flags: FlagMonitorRx | FlagMonitorTx}},
		{"vale0:a/z", Name{Subsystem: "vale", Switch: "vale0", Port: "a", Flags: FlagZCopyMon}},
		{"netmap:eth0", Name{Subsystem: "netmap", Port: "eth0"}},
		{"netmap:eth0.100", Name{Subsystem: "netmap", Port: "eth0.100"}},
		{"netmap:eth0^", Name{Subsystem: "netmap", Port: "eth0", Mode: RegSW}},
		{"netmap:eth0^2", Name{Subsystem: "netmap", Port: "eth0", Mode: RegOneSW, Ring: 2}},
		{"netmap:eth0*", Name{Subsystem: "netmap", Port: "eth0", Mode: RegNICSW}},
		{"netmap:eth0*/x", Name{Subsystem: "netmap", Port: "eth0", Mode: RegNICSW, Flags: FlagExclusive}},
		{"netmap:p{1", Name{Subsystem: "netmap", Port: "p", Pipe: '{', PipeID: "1"}},
		{"netmap:p}x_2", Name{Subsystem: "netmap", Port: "p", Pipe: '}', PipeID: "x_2"}},
		{"vale0:a{3", Name{Subsystem: "vale", Switch: "vale0", Port: "a", Pipe: '{', PipeID: "3"}},
		{"vale0:a@2", Name{Subsystem: "vale", Switch: "vale0", Port: "a", MemID: 2}},
		{"vale0:a-0@2/x", Name{Subsystem: "vale", Switch: "vale0", Port: "a", Mode: RegOneNIC, MemID: 2, Flags: FlagExclusive}},
		{"vale0:a@conf:rings=2,slots=2048", Name{Subsystem: "vale", Switch: "vale0", Port: "a",
			Conf: Conf{Rings: 2, Slots: 2048}, Options: []string{"conf"}}},
		{"vale0:a@conf:tx-rings=2,rx_rings=3,tx-slots=64,rx-slots=128", Name{Subsystem: "vale", Switch: "vale0", Port: "a",
			Conf: Conf{TxRings: 2, RxRings: 3, TxSlots: 64, RxSlots: 128}, Options: []string{"conf"}}},
		{"vale0:a/x@conf:slots=8", Name{Subsystem: "vale", Switch: "vale0", Port: "a", Flags: FlagExclusive,
			Conf: Conf{Slots: 8}, Options: []string{"conf"}}},
		{"vale0:a@share=vale0:b", Name{Subsystem: "vale", Switch: "vale0", Port: "a", Options: []string{"share"}}},
	}
	for _, tt := range tests {
		got, err := ParseName(tt.in)
		if err != nil {
			t.Errorf("ParseName(%q): %v", tt.in, err)
			continue
		}
		if !equalNames(got, tt.want) {
			t.Errorf("ParseName(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func equalNames(a, b Name) bool {
	return reflect.DeepEqual(a, b)
}

func TestParseNameErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "prefix unknown or missing"},
		{"eth0", "prefix unknown or missing"},
		{"vale0", "missing ':'"},
		{"netmap0:eth0", "no identifier allowed"},
		{"foo:bar", `prefix "foo" unknown`},
		{"vale-1:a", "invalid switch identifier"},
		{"vale0:", "empty port name"},
		{"vale0:a.b", "invalid VALE port name"},
		{"vale0:a{", "empty pipe identifier"},
		{"vale0:{1", "empty port name before"},
		{"vale0:a{1.2", "invalid pipe identifier"},
		{"vale0:a-", "expected a ring number"},
		{"vale0:a-x", "expected a ring number"},
		{"vale0:a-4095", "out of range"},
		{"vale0:a-1-2", "unexpected \"-2\" after the ring selection"},
		{"vale0:a-1^", "unexpected \"^\" after the ring selection"},
		{"vale0:a*x", "unexpected \"x\" after the ring selection"},
		{"vale0:a/", "empty flag list"},
		{"vale0:a/q", "unrecognized flag 'q'"},
		{"vale0:a/x/R", "unrecognized flag '/'"},
		{"vale0:a/e", "unrecognized flag 'e'"},
		{"vale0:a@0", "invalid memory id"},
		{"vale0:a@1@2", "memory id given twice"},
		{"vale0:a@1x", "unexpected \"x\" after the memory id"},
		{"vale0:a@", "empty option name"},
		{"vale0:a@bogus", "unknown option @bogus"},
		{"vale0:a@conf", "needs key=value"},
		{"vale0:a@conf:rings", "not key=value"},
		{"vale0:a@conf:rings=x", "not a number"},
		{"vale0:a@conf:colour=red", "unknown key"},
		{"vale0:a@conf:rings=1,rings=2", "given twice"},
		{"vale0:a@conf:rings=1@conf:slots=2", "option @conf given twice"},
		{"vale0:" + strings.Repeat("a", 64), "too long"},
		{"vale0:" + strings.Repeat("a", 58), "too long"}, // 64 bytes in all
		{"netmap:" + strings.Repeat("a", 64), "too long"},
		{"netmap:eth 0", "invalid interface name"},
	}
	for _, tt := range tests {
		_, err := ParseName(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseName(%q) error = %v, want one containing %q", tt.in, err, tt.want)
		}
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct{ in, want string }{
		{"vale0:a", ""},
		{"vale0:a-1/x@conf:rings=2", ""},
		{"vale0:a/R", ""},
		{"netmap:eth0", "netmap:eth0: no such port"},
		{"vale0:a{1", ""},
		{"netmap:p}x/x", ""},
		{"vale0:a^", `host rings ("^") cannot be opened`},
		{"vale0:a*", `("*")`},
		{"vale0:a/rt", ""},
		{"vale0:a^/rt", ""},
		{"vale0:a/z", ""},
		{"netmap:p{1/t", ""},
		{"vale0:a-1/r", "a monitor of some rings only"},
		{"vale0:a/rx", "binding flags on a monitor"},
		{"vale0:a/zr", "/z monitors both directions"},
		{"vale0:a/RT", "bind no rings"},
		{"vale0:a@2", `memory ids ("@2")`},
		{"vale0:a@share=vale0:b", `option ("@share")`},
		{"vale0:a@conf:host-rings=1", "host rings"},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.in)
		if err != nil {
			t.Fatalf("ParseName(%q): %v", tt.in, err)
		}
		err = n.Unsupported()
		if tt.want == "" {
			if err != nil {
				t.Errorf("%q: unexpected %v", tt.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one containing %q", tt.in, err, tt.want)
		}
	}
}

func TestConfApply(t *testing.T) {
	g := Conf{Rings: 2, RxRings: 3, Slots: 512, TxSlots: 64}.Apply(ports.DefaultGeometry())
	want := ports.Geometry{TxRings: 2, RxRings: 3, TxSlots: 64, RxSlots: 512, BufSize: ports.DefaultBufSize}
	if g != want {
		t.Errorf("Apply = %+v, want %+v", g, want)
	}
}

// FuzzParseName checks that the parser never panics, that whatever it
// accepts prints back to a name that parses to the same thing, and that
// accepted names stay within netmap's limits.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"vale0:a", "vale:b-1/x", "netmap:eth0^3", "netmap:p{1", "vale1:x}y/RT@conf:rings=2,tx-slots=64",
		"vale0:a@2/z", "netmap:eth0*@conf:host-rings=1", "vale0:a@share=vale0:b", "vale0:a@extmem:file=/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			if !strings.Contains(err.Error(), "port name") {
				t.Fatalf("error %q does not say what it is about", err)
			}
			return
		}
		if n.Port == "" || len(n.Port) >= maxNameLen || n.Ring >= maxRing ||
			(n.Subsystem == "vale" && len(n.PortName()) >= maxNameLen) {
			t.Fatalf("%q parsed to out-of-limit %+v", s, n)
		}
		_ = n.Unsupported()
		if n.Options == nil || (len(n.Options) == 1 && n.Options[0] == "conf") {
			again, err := ParseName(n.String())
			if err != nil {
				t.Fatalf("%q printed as %q, which does not parse: %v", s, n.String(), err)
			}
			if !equalNames(n, again) {
				t.Fatalf("%q -> %+v -> %q -> %+v", s, n, n.String(), again)
			}
		}
	})
}
