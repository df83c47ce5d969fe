package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
)

// QEMU guests for the vhost-user tests: Debian's kernel and busybox
// (fetched by tools/guest-assets.sh), an initramfs the test writes with an
// /init script of its own, booted under TCG with guest memory in a shared
// memfd and one virtio-net device on a vhost-user socket.

// guestCache is where tools/guest-assets.sh keeps the kernel, modules and
// busybox between runs.
var guestCache = func() string {
	if d := os.Getenv("VALE_GUEST_CACHE"); d != "" {
		return d
	}
	return "/var/cache/vale-guest"
}()

var guestAssetsOnce sync.Once
var guestAssetsErr error

func needGuest(t testing.TB) {
	t.Helper()
	needCommands(t, "qemu-system-x86_64", "apt-get", "dpkg-deb")
	guestAssetsOnce.Do(func() {
		out, err := exec.Command("../tools/guest-assets.sh", guestCache).CombinedOutput()
		if err != nil {
			guestAssetsErr = fmt.Errorf("tools/guest-assets.sh: %v\n%s", err, out)
		}
	})
	if guestAssetsErr != nil {
		t.Fatal(guestAssetsErr)
	}
}

// guestModules are the modules the guest needs; the init script loads
// them in the order their own "depends=" lists require.
var guestModules = []string{"virtio_pci", "virtio_net"}

// moduleOrder returns the modules of the cache needed for names, each
// after its dependencies.
func moduleOrder(t testing.TB, names []string) []string {
	t.Helper()
	var order []string
	seen := map[string]bool{}
	var visit func(m string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		b, err := os.ReadFile(filepath.Join(guestCache, "modules", m+".ko"))
		if err != nil {
			t.Fatalf("guest module %s: %v (tools/guest-assets.sh copies the modules virtio-net needs)", m, err)
		}
		if i := bytes.Index(b, []byte("\x00depends=")); i >= 0 {
			deps := b[i+9:]
			deps = deps[:bytes.IndexByte(deps, 0)]
			for _, d := range strings.Split(string(deps), ",") {
				if d != "" {
					visit(d)
				}
			}
		}
		order = append(order, m)
	}
	for _, m := range names {
		visit(m)
	}
	return order
}

// initramfs writes a gzipped newc cpio with busybox, the modules and an
// /init that brings eth0 up with addr (CIDR) and then runs script.
func initramfs(t testing.TB, path, addr, script string) {
	t.Helper()
	var cpio bytes.Buffer
	ino := 1
	entry := func(name string, mode uint32, data []byte, rdev uint32) {
		fmt.Fprintf(&cpio, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev>>8, rdev&0xff, len(name)+1, 0)
		ino++
		cpio.WriteString(name)
		cpio.WriteByte(0)
		for cpio.Len()%4 != 0 {
			cpio.WriteByte(0)
		}
		cpio.Write(data)
		for cpio.Len()%4 != 0 {
			cpio.WriteByte(0)
		}
	}
	const dir, file, exe, chr = 0o040755, 0o100644, 0o100755, 0o020600
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "www", "lib", "lib/modules"} {
		entry(d, dir, nil, 0)
	}
	entry("dev/console", chr, nil, 5<<8|1)
	bb, err := os.ReadFile(filepath.Join(guestCache, "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	entry("bin/busybox", exe, bb, 0)
	var loads strings.Builder
	for _, m := range moduleOrder(t, guestModules) {
		b, err := os.ReadFile(filepath.Join(guestCache, "modules", m+".ko"))
		if err != nil {
			t.Fatal(err)
		}
		entry("lib/modules/"+m+".ko", file, b, 0)
		fmt.Fprintf(&loads, "insmod /lib/modules/%s.ko\n", m)
	}
	init := fmt.Sprintf(`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
%s
ip link set lo up
ip link set eth0 up
ip addr add %s dev eth0
echo "VALE-GUEST-UP $(cat /sys/class/net/eth0/address)"
%s
echo VALE-GUEST-DONE
poweroff -f
`, loads.String(), addr, script)
	entry("init", exe, []byte(init), 0)
	entry("TRAILER!!!", 0, nil, 0)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(cpio.Bytes())
	w.Close()
	if err := os.WriteFile(path, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// guest is a running QEMU.
type guest struct {
	*proc
	name string
}

// bootGuest boots a guest whose NIC is on vhost-user socket sock (QEMU
// connects; with server set QEMU listens there instead and waits for
// valed), with IPv4 address addr, running script. devOpts are more
// properties of its virtio-net-pci device (e.g. packed=on, csum=off).
func bootGuest(t testing.TB, name, sock string, server bool, mac, addr, script string, devOpts ...string) *guest {
	t.Helper()
	chardev := "socket,id=c0,path=" + sock
	if server {
		chardev += ",server=on,wait=off"
	}
	return bootGuestChardev(t, name, chardev, mac, addr, script, devOpts...)
}

// bootGuestChardev boots a guest whose vhost-user chardev is chardev.
func bootGuestChardev(t testing.TB, name, chardev, mac, addr, script string, devOpts ...string) *guest {
	t.Helper()
	initrd := filepath.Join(t.TempDir(), "initrd.gz")
	initramfs(t, initrd, addr, script)
	return startGuest(t, name, guestArgs(initrd, chardev, mac, devOpts...))
}

// guestArgs is the QEMU command line of a guest booting initrd, its NIC on
// vhost-user chardev chardev.
func guestArgs(initrd, chardev, mac string, devOpts ...string) []string {
	return []string{
		"-machine", "pc,accel=tcg", "-m", "256", "-smp", "1", "-nographic", "-no-reboot",
		"-kernel", filepath.Join(guestCache, "vmlinuz"), "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 loglevel=3 quiet",
		"-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-numa", "node,memdev=mem",
		"-chardev", chardev,
		"-netdev", "vhost-user,id=n0,chardev=c0",
		// MSI-X under TCG crashes Debian's QEMU 7.2 in vhost_net_start:
		// vectors=0 avoids it.
		"-device", strings.Join(append([]string{"virtio-net-pci,netdev=n0,mac=" + mac + ",vectors=0"}, devOpts...), ","),
	}
}

// startGuest runs QEMU with args.
func startGuest(t testing.TB, name string, args []string) *guest {
	t.Helper()
	p := launch(t, "guest "+name, exec.Command("qemu-system-x86_64", args...), nil)
	return &guest{proc: p, name: name}
}

// waitLine waits for the guest's console to show a line matching re and
// returns its submatches.
func (g *guest) waitLine(t testing.TB, re string, timeout time.Duration) []string {
	t.Helper()
	m, _ := g.waitLineAfter(t, re, 0, timeout)
	return m
}

// waitLineAfter is waitLine for console output after byte offset from; it
// also returns where the match ends.
func (g *guest) waitLineAfter(t testing.TB, re string, from int, timeout time.Duration) ([]string, int) {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	end := 0
	testutil.Eventually(timeout, func() bool {
		m, end = matchAfter(rx, g.Out.String(), from)
		return m != nil || g.Exited()
	})
	switch {
	case m != nil:
		return m, end
	case g.Exited():
		t.Fatalf("guest %s ended without %q", g.name, re)
	default:
		t.Fatalf("guest %s: no %q within %v", g.name, re, timeout)
	}
	return nil, 0
}

// matchAfter matches rx in the complete lines of out after byte offset
// from, and returns the submatches and where the match ends (nil if none).
// A line still being written is not matched: "GOT 4" of "GOT 4194304".
func matchAfter(rx *regexp.Regexp, out string, from int) ([]string, int) {
	out = out[:strings.LastIndexByte(out, '\n')+1]
	from = min(from, len(out))
	loc := rx.FindStringSubmatchIndex(out[from:])
	if loc == nil {
		return nil, 0
	}
	var m []string
	for i := 0; i < len(loc); i += 2 {
		if loc[i] >= 0 {
			m = append(m, out[from+loc[i]:from+loc[i+1]])
		} else {
			m = append(m, "")
		}
	}
	return m, from + loc[1]
}
