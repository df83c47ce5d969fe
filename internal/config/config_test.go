package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valeswitch/vale/vale/wire"
)

// The example shipped with valed loads and holds the defaults.
func TestExampleFile(t *testing.T) {
	c, err := Load("../../etc/valed.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Control.Socket != "/run/vale/valed.sock" || c.Control.Mode != "0600" || c.Ports.Slots != 1024 ||
		c.Switch.MACAge.Duration != 5*time.Minute || c.Metrics.Listen != "" || len(c.Attach) != 0 ||
		c.Limits.Connections != 256 || c.Limits.RegionMiB != 1024 || len(c.Switches) != 0 || c.Switch.Lossless || c.Switch.StuckTimeout.Duration != 200*time.Millisecond {
		t.Errorf("example: %+v", c)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		text, want string
	}{
		{"[control]\nsocket = \"/x\"\nbogus = 1\n", "f.toml:3: control.bogus: unknown key"},
		{"[controll]\nsocket = \"/x\"\n", "f.toml:1: controll"},
		{"\n[ports]\nslots = 9999\n", "f.toml:3: ports.slots: 9999: want 2..4096"},
		{"[ports]\nslots = \"many\"\n", "f.toml:2: ports.slots: incompatible types"},
		{"[log]\nlevel = \"loud\"\n", "f.toml:2: log.level"},
		{"[control]\nmode = \"rw\"\n", "f.toml:2: control.mode"},
		{"[switch]\nmac_age = \"soon\"\n", "f.toml:2"},
		{"[[attach]]\nport = \"eth1\"\n", "f.toml:2: attach.port: \"eth1\": want valeX:NAME"},
		{"[[attach]]\nport = \"vale0:a\"\n[[attach]]\nport = \"vale0:a\"\n", "given twice"},
		{"[[attach]]\nport = \"vale0:a\"\nxdpmode = \"native\"\n", "f.toml:3: attach.xdpmode: unknown key"},
		{"[[attach]]\nport = \"vale0:vm\"\nvhost_client = true\n", "attach.vhost_client"},
		{"[[interface]]\nname = \"a-very-long-interface-name\"\n", "f.toml:2: interface.name"},
		{"[metrics\nlisten = 1\n", "f.toml:2"},
		{"[limits]\nports = -1\n", "f.toml:2: limits.ports"},
		{"[limits]\nregion_mib = 99999999\n", "f.toml:2: limits.region_mib"},
		{"[[switches]]\nname = \"vale0\"\nusers = [\"no-such-user-here\"]\n", "f.toml:3: switches.users: no user"},
		{"[[switches]]\nname = \"vale0:a\"\n", "f.toml:2: switches.name"},
		{"[[switches]]\nname = \"vale0\"\n[[switches]]\nname = \"vale0\"\n", "given twice"},
		{"[[switches]]\nname = \"vale0\"\nlossless = 3\n", "f.toml:3: switches.lossless"},
		{"[[attach]]\nport = \"vale0:a\"\nmode = \"wait\"\n", "attach.mode"},
	} {
		_, err := Parse("f.toml", []byte(tc.text))
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
}

// Saving attachments replaces the old ones and keeps everything else.
func TestSaveAttachments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "valed.toml")
	orig := "# my switch\n[control]\nmode = \"0660\" # group can use it\n\n[[attach]]\nport = \"vale0:old\"\n\n[metrics]\nlisten = \"127.0.0.1:9471\"\n"
	if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	ifs := []Interface{{Name: "vi0", Rings: 2}}
	att := []Attach{{Name: "vale0:eth1", Host: true, XDPOptions: wire.XDPOptions{XDPMode: "native"}}, {Name: "vale0:vm1", VhostOptions: wire.VhostOptions{VhostUser: "/run/vm1.sock"}, Queues: 2}}
	for range 2 { // twice: the second save replaces the first
		if err := SaveAttachments(path, ifs, att); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Attach) != 2 || c.Attach[0] != att[0] || c.Attach[1] != att[1] || len(c.Interfaces) != 1 || c.Interfaces[0] != ifs[0] {
		t.Errorf("reloaded: %+v %+v", c.Attach, c.Interfaces)
	}
	if c.Control.Mode != "0660" || c.Metrics.Listen != "127.0.0.1:9471" {
		t.Errorf("other settings lost: %+v", c)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "# group can use it") || strings.Contains(string(b), "vale0:old") ||
		strings.Count(string(b), "saved by valed") != 1 {
		t.Errorf("saved file:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func FuzzParse(f *testing.F) {
	ex, _ := os.ReadFile("../../etc/valed.toml")
	f.Add(ex)
	f.Add([]byte("[[attach]]\nport = \"vale0:a\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("f", b)
		if err == nil && c == nil {
			t.Fatal("nil config without an error")
		}
	})
}
