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
	s := &soak{t: t, h: h, d: h.d, stop: time.Now().Add(dur), ops: map[string]int{}}
	s.warmUp()
	g0, f0, r0 := s.sample()
	t.Logf("before: %d goroutines, %d descriptors, %d KiB resident", g0, f0, r0)

	// The control flow, on vale1, at 10 Kpps: its receiver may go without
	// the CPU for 400 ms (4096 slots) on two cores shared with the churn
	// and the attacks.
	const ctrlRate = 10_000
	ctrlN := uint64(dur.Seconds()*0.8) * ctrlRate
	ctrlRx := start(t, s.d.sock, "pkt-gen", "-i", "vale1:crx"+bigRx, "-f", "rx", "-n", strconv.FormatUint(ctrlN, 10))
	s.d.waitPort(t, "vale1:crx")
	ctrlTx := start(t, s.d.sock, "pkt-gen", "-i", "vale1:ctx", "-f", "tx", "-n", strconv.FormatUint(ctrlN, 10), "-R", strconv.Itoa(ctrlRate))

	stopWatch := h.watchValeCtl()
	vhostSock := filepath.Join(t.TempDir(), "vu.sock")
	s.d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vu", "-vhost-user", vhostSock, "-queues", "2")
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() { s.attackInTurns(w) })
	}
	wg.Go(func() { // a hostile frontend, the whole time
		p := start(t, s.d.sock, "hostile", "-mode", "vhost", "-vhost", vhostSock, "-d", time.Until(s.stop).String())
		<-p.Done
	})
	for w := range 6 {
		wg.Go(func() { s.churn(w) })
	}
	wg.Wait()
	stopWatch()
	s.d.run(t, 10*time.Second, "vale-ctl", "-d", "vale0:vu")
	t.Logf("operations: %v", s.ops)
	ctrlTx.Wait(5 * time.Minute)
	if p, _ := totals(t, ctrlRx.Wait(time.Minute)); p != ctrlN {
		t.Errorf("the control flow lost frames: %d of %d arrived", p, ctrlN)
	}
	s.checkBack(g0, f0, r0)
}

// soak is the state of TestSoak: the daemon under test, when the churn
// stops, and how many operations of each kind were done.
type soak struct {
	t    *testing.T
	h    *hostile
	d    *daemon
	stop time.Time
	mu   sync.Mutex
	ops  map[string]int
}

func (s *soak) count(k string) { s.mu.Lock(); s.ops[k]++; s.mu.Unlock() }

// sample returns valed's goroutines, open descriptors and resident memory.
func (s *soak) sample() (gor, fds int, rssKB int) {
	pid := s.d.Cmd.Process.Pid
	g, _ := metric(s.t, scrape(s.t, s.h.metrics), "go_goroutines")
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rssKB, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return int(g), len(ents), rssKB
}

// warmUp opens one of everything, then closes it all.
func (s *soak) warmUp() {
	for _, n := range []string{"vale0:w", "netmap:wp{1", "vale0:w2"} {
		p, err := nmport.Open(n, &nmport.Options{Socket: s.d.sock})
		if err != nil {
			s.t.Fatal(err)
		}
		p.Close()
	}
	testutil.WaitFor(s.t, "the warm-up ports to go", func() bool { return s.d.portStats(s.t, "vale0:w") == nil })
}

// soakAttacks are the attacks another user makes during the soak.
var soakAttacks = [][]string{
	{"fill", "-port", "vale0:fill"}, {"nonblock", "-port", "vale2:nb"}, {"scribble", "-port", "vale0:scr"},
	{"noread", "-port", "vale0:deaf"}, {"replyfill", "-port", "vale2:full"}, {"churn", "-port", "vale2:ch"},
	{"monchurn", "-port", "vale0:p1"},
}

// attackInTurns runs another user's attacks one after the other, starting
// with attack w, until the soak ends.
func (s *soak) attackInTurns(w int) {
	for i := w; time.Now().Add(10 * time.Second).Before(s.stop); i++ {
		a := soakAttacks[i%len(soakAttacks)]
		p := s.h.attackFor(10*time.Second, a[0], a[1:]...)
		<-p.Done
		s.count("attack " + a[0])
	}
}

// churn opens, uses and closes ports, pipes and monitors at random until
// the soak ends.
func (s *soak) churn(w int) {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	for time.Now().Before(s.stop) {
		name := fmt.Sprintf("vale0:p%d", rng.IntN(40))
		switch rng.IntN(5) {
		case 0, 1:
			s.client(rng, name, byte(w))
		case 2:
			s.killedPktgen(rng, name)
		case 3:
			s.pipePair(rng.IntN(10))
		case 4:
			s.monitor(rng, name)
		}
	}
}

// client is an in-process client: open, send, maybe read, close.
func (s *soak) client(rng *rand.Rand, name string, w byte) {
	p, err := nmport.Open(name, &nmport.Options{Socket: s.d.sock})
	if err != nil {
		s.count("open-refused")
		return
	}
	tx := p.TxRing(0)
	for range rng.IntN(20) {
		for tx.Space() > 0 {
			sl := tx.Slot(tx.Head())
			copy(tx.Buf(sl.BufIdx), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, w, 1, 0x88, 0xb5})
			sl.Len = 60
			tx.Advance(1)
		}
		p.TxSync()
		p.RxSync()
		for _, r := range p.RxRings() {
			r.Advance(r.Space())
		}
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond) // a client's own pace
	}
	p.Close()
	s.count("client")
}

// killedPktgen is a pkt-gen killed with SIGKILL mid-stream.
func (s *soak) killedPktgen(rng *rand.Rand, name string) {
	fn := []string{"tx", "rx"}[rng.IntN(2)]
	pg := start(s.t, s.d.sock, "pkt-gen", "-i", name, "-f", fn, "-R", "200000")
	time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond) // how long it lives
	pg.Cmd.Process.Signal(syscall.SIGKILL)
	<-pg.Done
	s.count("killed")
}

// pipePair opens both ends of pipe id, moves nothing, and closes them.
func (s *soak) pipePair(id int) {
	a, err1 := nmport.Open(fmt.Sprintf("netmap:sp{%d", id), &nmport.Options{Socket: s.d.sock})
	b, err2 := nmport.Open(fmt.Sprintf("netmap:sp}%d", id), &nmport.Options{Socket: s.d.sock})
	if a != nil {
		a.TxSync()
		a.Close()
	}
	if b != nil {
		b.RxSync()
		b.Close()
	}
	if err1 == nil && err2 == nil {
		s.count("pipe")
	}
}

// monitor opens a port and a monitor of it, and closes them in either
// order (orphaning the monitor first, or not).
func (s *soak) monitor(rng *rand.Rand, name string) {
	p, err := nmport.Open(name, &nmport.Options{Socket: s.d.sock})
	if err != nil {
		return
	}
	m, err := nmport.Open(name+"/rt", &nmport.Options{Socket: s.d.sock})
	if err != nil {
		p.Close()
		return
	}
	m.Poll(nmport.PollIn, 5*time.Millisecond)
	if rng.IntN(2) == 0 {
		p.Close() // orphan the monitor first
		m.Close()
	} else {
		m.Close()
		p.Close()
	}
	s.count("monitor")
}

// checkBack waits for every port to go and valed's goroutines to settle,
// then checks valed holds no more than before the soak.
func (s *soak) checkBack(g0, f0, r0 int) {
	t := s.t
	testutil.WaitFor(t, "every port to go", func() bool {
		return strings.Contains(s.d.run(t, 10*time.Second, "vale-ctl", "-l"), "no switches")
	})
	var g1, f1, r1 int
	testutil.Eventually(10*time.Second, func() bool { // freed goroutines end
		g1, f1, r1 = s.sample()
		return g1 <= g0+5 && f1 <= f0+2
	})
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
