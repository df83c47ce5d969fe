//go:build soak

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports/nmport"
)

// TestSoak (make soak; not part of make test) churns valed for
// VALE_SOAK_DURATION (default 3m): clients open ports, pipes and monitors,
// send, close, and are killed at random, and another user's hostile
// clients and a hostile vhost-user frontend attack it in turns (see
// TestHostile*), while a control flow on another switch must arrive
// exactly and vale-ctl -l must answer within 2 s. At the end, with every
// client gone, valed must hold no more goroutines, descriptors or memory
// than before.
func TestSoak(t *testing.T) {
	dur := 3 * time.Minute
	if v := os.Getenv("VALE_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
	h := startHostile(t)
	d, addr := h.d, h.metrics
	pid := d.cmd.Process.Pid
	sample := func() (gor, fds int, rssKB int) {
		text := scrape(t, addr)
		g, _ := metric(t, text, "go_goroutines")
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				rssKB, _ = strconv.Atoi(strings.Fields(v)[0])
			}
		}
		return int(g), len(ents), rssKB
	}
	// Warm up: one of everything, then everything closed.
	for _, n := range []string{"vale0:w", "netmap:wp{1", "vale0:w2"} {
		p, err := nmport.Open(n, &nmport.Options{Socket: d.sock})
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	testutil.WaitFor(t, "the warm-up ports to go", func() bool { return d.portStats(t, "vale0:w") == nil })
	g0, f0, r0 := sample()
	t.Logf("before: %d goroutines, %d descriptors, %d KiB resident", g0, f0, r0)

	// The control flow, on vale1, at 10 Kpps: its receiver may go without
	// the CPU for 400 ms (4096 slots) on two cores shared with the churn
	// and the attacks.
	const ctrlRate = 10_000
	ctrlN := uint64(dur.Seconds()*0.8) * ctrlRate
	ctrlRx := start(t, d.sock, "pkt-gen", "-i", "vale1:crx"+bigRx, "-f", "rx", "-n", strconv.FormatUint(ctrlN, 10))
	d.waitPort(t, "vale1:crx")
	ctrlTx := start(t, d.sock, "pkt-gen", "-i", "vale1:ctx", "-f", "tx", "-n", strconv.FormatUint(ctrlN, 10), "-R", strconv.Itoa(ctrlRate))

	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ops := map[string]int{}
	count := func(k string) { mu.Lock(); ops[k]++; mu.Unlock() }
	stopWatch := h.watchValeCtl()
	vhostSock := filepath.Join(t.TempDir(), "vu.sock")
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vu", "-vhost-user", vhostSock, "-queues", "2")
	attacks := [][]string{
		{"fill", "-port", "vale0:fill"}, {"nonblock", "-port", "vale2:nb"}, {"scribble", "-port", "vale0:scr"},
		{"noread", "-port", "vale0:deaf"}, {"replyfill", "-port", "vale2:full"}, {"churn", "-port", "vale2:ch"},
		{"monchurn", "-port", "vale0:p1"},
	}
	for w := range 2 {
		wg.Add(1)
		go func() { // another user's attacks, in turns
			defer wg.Done()
			for i := w; time.Now().Add(10 * time.Second).Before(stop); i++ {
				a := attacks[i%len(attacks)]
				p := h.attackFor(10*time.Second, a[0], a[1:]...)
				<-p.done
				count("attack " + a[0])
			}
		}()
	}
	wg.Add(1)
	go func() { // a hostile frontend, the whole time
		defer wg.Done()
		p := start(t, d.sock, "hostile", "-mode", "vhost", "-vhost", vhostSock, "-d", time.Until(stop).String())
		<-p.done
	}()
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for time.Now().Before(stop) {
				name := fmt.Sprintf("vale0:p%d", rng.IntN(40))
				switch rng.IntN(5) {
				case 0, 1: // an in-process client: open, send, maybe read, close
					p, err := nmport.Open(name, &nmport.Options{Socket: d.sock})
					if err != nil {
						count("open-refused")
						continue
					}
					tx := p.TxRing(0)
					for range rng.IntN(20) {
						for tx.Space() > 0 {
							s := tx.Slot(tx.Head())
							b := tx.Buf(s.BufIdx)
							copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, byte(w), 1, 0x88, 0xb5})
							s.Len = 60
							tx.Advance(1)
						}
						p.TxSync()
						p.RxSync()
						for _, r := range p.RxRings() {
							r.Advance(r.Space())
						}
						time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
					}
					p.Close()
					count("client")
				case 2: // a pkt-gen killed with SIGKILL mid-stream
					fn := []string{"tx", "rx"}[rng.IntN(2)]
					pg := start(t, d.sock, "pkt-gen", "-i", name, "-f", fn, "-R", "200000")
					time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
					pg.cmd.Process.Signal(syscall.SIGKILL)
					<-pg.done
					count("killed")
				case 3: // a pipe pair, both ends
					id := rng.IntN(10)
					a, err1 := nmport.Open(fmt.Sprintf("netmap:sp{%d", id), &nmport.Options{Socket: d.sock})
					b, err2 := nmport.Open(fmt.Sprintf("netmap:sp}%d", id), &nmport.Options{Socket: d.sock})
					if a != nil {
						a.TxSync()
						a.Close()
					}
					if b != nil {
						b.RxSync()
						b.Close()
					}
					if err1 == nil && err2 == nil {
						count("pipe")
					}
				case 4: // a monitor of a port that may come and go
					p, err := nmport.Open(name, &nmport.Options{Socket: d.sock})
					if err != nil {
						continue
					}
					m, err := nmport.Open(name+"/rt", &nmport.Options{Socket: d.sock})
					if err == nil {
						m.Poll(nmport.PollIn, 5*time.Millisecond)
						if rng.IntN(2) == 0 {
							p.Close() // orphan the monitor first
							m.Close()
						} else {
							m.Close()
							p.Close()
						}
						count("monitor")
					} else {
						p.Close()
					}
				}
			}
		}()
	}
	wg.Wait()
	stopWatch()
	d.run(t, 10*time.Second, "vale-ctl", "-d", "vale0:vu")
	t.Logf("operations: %v", ops)
	ctrlTx.wait(5 * time.Minute)
	if p, _ := totals(t, ctrlRx.wait(time.Minute)); p != ctrlN {
		t.Errorf("the control flow lost frames: %d of %d arrived", p, ctrlN)
	}
	testutil.WaitFor(t, "every port to go", func() bool {
		out := d.run(t, 10*time.Second, "vale-ctl", "-l")
		return strings.Contains(out, "no switches")
	})
	time.Sleep(2 * time.Second) // let freed goroutines end
	g1, f1, r1 := sample()
	t.Logf("after: %d goroutines, %d descriptors, %d KiB resident", g1, f1, r1)
	if g1 > g0+5 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if f1 > f0+2 {
		t.Errorf("descriptors grew from %d to %d", f0, f1)
	}
	if r1 > r0+64*1024 {
		t.Errorf("resident memory grew from %d to %d KiB", r0, r1)
	}
}
