package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
)

// TestPipeExact moves a million numbered frames through a pipe between two
// pkt-gen processes: pipes never drop (a full ring makes the sender wait),
// so every frame must arrive, in order, with no rate limit.
func TestPipeExact(t *testing.T) {
	d := startValed(t)
	rx := start(t, d.sock, "pkt-gen", "-i", "netmap:p}1", "-f", "rxseq", "-n", fmt.Sprint(million))
	testutil.WaitFor(t, "the slave end", func() bool { return strings.Contains(d.run(t, 10*time.Second, "vale-ctl"), "netmap:p}1") })
	if pipes := d.listing(t, "").Pipes; len(pipes) != 1 || pipes[0].Slave != "netmap:p}1" || pipes[0].Mode != "lossless" {
		t.Errorf("vale-ctl -l does not show the pipe lossless: %+v", pipes)
	}
	txOut := d.run(t, 60*time.Second, "pkt-gen", "-i", "netmap:p{1", "-f", "txseq", "-n", fmt.Sprint(million), "-l", "60", "-l", "200")
	out := rx.Wait(60 * time.Second)
	tp, tb := totals(t, txOut)
	rp, rb := totals(t, out)
	if tp != million || rp != million || tb != rb {
		t.Errorf("sent %d frames (%d bytes), received %d (%d bytes)", tp, tb, rp, rb)
	}
	if !strings.Contains(out, "Sequence check: 0 gaps (0 frames missing), 0 out of order") {
		t.Errorf("sequence broken:\n%s", out)
	}
}

// TestPipeReopen closes and reopens each end while the other stays: no
// frame is lost, and an end may start sending before its peer exists.
func TestPipeReopen(t *testing.T) {
	d := startValed(t)
	const n = 100000
	// The master sends before the slave is open: it fills the ring and waits.
	tx := start(t, d.sock, "pkt-gen", "-i", "vale0:a{3", "-f", "tx", "-n", fmt.Sprint(n))
	testutil.WaitFor(t, "the master end", func() bool { return strings.Contains(d.run(t, 10*time.Second, "vale-ctl"), "vale0:a{3") })
	time.Sleep(200 * time.Millisecond)
	if tx.Exited() {
		t.Fatal("the sender finished with nobody reading")
	}
	// The slave reads half, goes away, and a new slave reads the rest; in
	// between the master finishes and a second master sends more.
	first := d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a}3", "-f", "rx", "-n", fmt.Sprint(n/2))
	if p, _ := totals(t, first); p != n/2 {
		t.Errorf("first slave got %d", p)
	}
	rest := start(t, d.sock, "pkt-gen", "-i", "vale0:a}3", "-f", "rx", "-n", fmt.Sprint(n/2+n))
	tx.Wait(60 * time.Second)
	d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a{3", "-f", "tx", "-n", fmt.Sprint(n))
	if p, _ := totals(t, rest.Wait(60*time.Second)); p != n/2+n {
		t.Errorf("second slave got %d, want %d", p, n/2+n)
	}
	if out := d.run(t, 10*time.Second, "vale-ctl"); strings.Contains(out, "vale0:a{3") {
		t.Errorf("pipe still listed after both ends closed:\n%s", out)
	}
}

// TestManyPipes opens 64 pipes of one parent and sends a frame through each.
func TestManyPipes(t *testing.T) {
	d := startValed(t)
	const n = 64
	for i := range n {
		m := newClient(t, d, fmt.Sprintf("netmap:parent{%d", i), "02:00:00:00:00:01")
		s := newClient(t, d, fmt.Sprintf("netmap:parent}%d", i), "02:00:00:00:00:02")
		m.send(s.mac, fmt.Sprint("pipe ", i))
		s.expect(5*time.Second, fmt.Sprint("pipe ", i))
		s.send(m.mac, fmt.Sprint("back ", i))
		m.expect(5*time.Second, fmt.Sprint("back ", i))
	}
	out := d.run(t, 10*time.Second, "vale-ctl", "-l")
	if got := strings.Count(out, "netmap:parent{"); got != n {
		t.Errorf("vale-ctl lists %d pipes, want %d", got, n)
	}
}
