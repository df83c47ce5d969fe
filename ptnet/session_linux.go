package ptnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/ptnet/vhostuser"
	"github.com/valeswitch/vale/vale/frame"
)

// Frontend connections: valed listens on the port's socket (acceptLoop) or
// connects to a frontend that listens and reconnects when it goes
// (dialLoop); either way one session at a time is served.

// acceptLoop serves the frontends that connect to the port's socket.
func (p *Port) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptUnix()
		if err != nil {
			if !p.stopped.Load() {
				p.log.Error("vhost-user socket failed", "error", err)
			}
			return
		}
		p.mu.Lock()
		busy := p.conn != nil
		p.mu.Unlock()
		if busy {
			p.log.Warn("refused a second frontend connection while one is active")
			c.Close()
			continue
		}
		p.serve(c)
	}
}

// dialLoop connects to the frontend's socket, and again after each
// session, until the port stops.
func (p *Port) dialLoop() {
	defer p.wg.Done()
	logged := false
	for !p.stopped.Load() {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: p.cfg.Socket, Net: "unix"})
		if err != nil {
			if !logged {
				p.log.Info("waiting for the vhost-user frontend", "error", err)
				logged = true
			}
			select {
			case <-p.stopCh:
				return
			case <-time.After(p.cfg.Reconnect):
			}
			continue
		}
		logged = false
		p.serve(c)
	}
}

// serve runs one frontend connection to its end.
func (p *Port) serve(c *net.UnixConn) {
	p.mu.Lock()
	if p.stopped.Load() {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conn = c
	p.state = "connected"
	p.mu.Unlock()
	p.setLastErr("")
	p.sessions.Add(1)
	p.log.Info("vhost-user frontend connected")
	err := p.handleMessages(c)
	if err != nil && !p.stopped.Load() {
		p.setLastErr(err.Error())
	}
	p.disconnect()
	if err != nil && !p.stopped.Load() {
		p.log.Warn("vhost-user frontend disconnected", "error", err)
	} else {
		p.log.Info("vhost-user frontend disconnected")
	}
}

// handleMessages reads and serves messages until the connection ends or a
// message is refused (which ends it: the frontend sees the backend go and
// may reconnect, starting again from a clean device).
func (p *Port) handleMessages(c *net.UnixConn) error {
	// Setting up rings reads guest memory, which may fault.
	debug.SetPanicOnFault(true)
	for {
		m, err := readMessage(c)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || isEOF(err) {
				return nil
			}
			return err
		}
		reply, err := p.handleSafely(m)
		if err != nil {
			return fmt.Errorf("%s: %w", vhostuser.RequestName(m.request), err)
		}
		if reply == nil && m.flags&vhostuser.FlagNeedReply != 0 && p.protocolAcked(vhostuser.ProtoReplyAck) {
			reply = vhostuser.U64(0)
		}
		if reply != nil {
			// A frontend that does not read its replies is dropped.
			c.SetWriteDeadline(time.Now().Add(replyTimeout))
			if _, err := c.Write(encodeReply(m.request, reply)); err != nil {
				return fmt.Errorf("reply to %s: %w", vhostuser.RequestName(m.request), err)
			}
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, os.ErrClosed) || strings.Contains(err.Error(), "EOF") || errors.Is(err, unix.ECONNRESET)
}

func (p *Port) protocolAcked(bit uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.protocol&bit != 0
}

// disconnect forgets the frontend: queues stopped, memory unmapped.
func (p *Port) disconnect() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	p.lockQueues()
	for _, q := range p.queues {
		q.reset()
	}
	if p.mem != nil {
		p.mem.unmap()
		p.mem = nil
	}
	p.dlog.unmap()
	p.dlog = nil
	p.unlockQueues()
	p.owner, p.features, p.protocol = false, 0, 0
	p.caps.Store(frame.OffloadCaps{})
	if p.stopped.Load() {
		p.state = "stopped"
	} else if p.cfg.Client {
		p.state = "connecting"
	} else {
		p.state = "listening"
	}
}

// lockQueues takes every queue's lock: the transmit queues first (their
// holders, the switch workers of this port, only ever wait for receive
// queues), then the receive queues.
func (p *Port) lockQueues() {
	for _, tx := range []bool{true, false} {
		for _, q := range p.queues {
			if q.tx == tx {
				q.mu.Lock()
			}
		}
	}
}

func (p *Port) unlockQueues() {
	for _, q := range p.queues {
		q.mu.Unlock()
	}
}

// reset puts a queue back to its initial state. Its lock is held.
func (q *queue) reset() {
	for _, e := range []**notify.Eventfd{&q.kick, &q.call, &q.errEv} {
		if *e != nil {
			(*e).Close()
			*e = nil
		}
	}
	q.vq = virtq{}
	q.num, q.addr, q.addrSet, q.base, q.mem, q.dlog = 0, vringAddr{}, false, 0, nil, nil
	q.ready, q.started, q.enabled, q.broken = false, false, false, nil
	q.chains, q.framed = q.chains[:0], q.framed[:0]
	q.plan = rxPlan{}
	q.wake()
}

// wake tells a switch worker waiting on the queue to look again.
func (q *queue) wake() {
	select {
	case q.changed <- struct{}{}:
	default:
	}
}

// live reports whether the queue is to be served.
func (q *queue) live() bool { return q.ready && q.started && q.broken == nil }
