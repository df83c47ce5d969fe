package main

import (
	"encoding/binary"
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/wire"
)

// rawPort is a port opened without the client library: the reply, the
// memory and every descriptor as valed sent them.
type rawPort struct {
	conn   *ctl.Conn
	reply  wire.OpenReply
	mem    []byte
	iface  *ports.Iface
	notify []int // eventfds valed signals when it answers a sleep ticket
	kicks  []int // eventfds the client signals to wake valed's workers
	mac    net.HardwareAddr
}

// openRaw opens name on valed at sock.
func openRaw(sock, name string) (*rawPort, error) {
	c, err := ctl.Dial(sock)
	if err != nil {
		return nil, err
	}
	p := &rawPort{conn: c}
	fds, err := c.Call(wire.OpOpen, wire.OpenRequest{Name: name}, &p.reply)
	if err != nil {
		c.Close()
		return nil, err
	}
	if len(fds) < 1 {
		c.Close()
		return nil, fmt.Errorf("%s: no memory", name)
	}
	p.mem, err = unix.Mmap(fds[0], 0, int(p.reply.MemSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		c.Close()
		return nil, err
	}
	n := p.reply.NotifyLast - p.reply.NotifyFirst
	p.notify, p.kicks = fds[1:1+n], fds[1+n:]
	if p.iface, err = ports.OpenIface(p.mem, p.reply.IfOfs); err != nil {
		c.Close()
		return nil, err
	}
	p.mac, _ = net.ParseMAC(p.reply.MAC)
	return p, nil
}

// fds returns every descriptor valed sent.
func (p *rawPort) fds() []int { return append(append([]int(nil), p.notify...), p.kicks...) }

// ring returns the application's view of a ring.
func (p *rawPort) ring(d ports.Direction, i int) *ports.Ring { return p.iface.Ring(d, i, p.reply.Port) }

// prefill writes, at the start of every buffer of the pool, a frame header
// from the port to dst (the port itself, or another port of the attack):
// whatever slot valed takes from a scribbled ring, the switch sends it
// back nowhere, or to the attack's own ports.
func (p *rawPort) prefill(dst net.HardwareAddr) {
	r := p.ring(ports.TX, 0)
	for i := uint32(2); i < r.NumBufs(); i++ {
		b := r.Buf(i)
		copy(b[0:6], dst)
		copy(b[6:12], p.mac)
		binary.BigEndian.PutUint16(b[12:], 0x88b5)
	}
}

// send publishes up to n frames (60 bytes, to itself) on TX ring 0 and
// kicks valed, the way a client's TxSync does, without checking anything.
func (p *rawPort) send(n int) {
	r := p.ring(ports.TX, 0)
	h := r.Header()
	head, tail := h.Head(), h.Tail()
	num := r.NumSlots()
	if head >= num || tail >= num {
		head, tail = 0, 0
	}
	for ; n > 0 && head != tail; n-- {
		s := r.Slot(head)
		s.Len = 60
		head = r.Next(head)
	}
	p.publish(r, head)
	for _, k := range p.kicks {
		signal(k)
	}
}

// publish stores head and cur of r directly in shared memory.
func (p *rawPort) publish(r *ports.Ring, head uint32) {
	setIndex(r, head)
}

var one = [8]byte{1}

func signal(fd int) { unix.Write(fd, one[:]) }

// full writes the largest value an eventfd counter takes from a write.
func full(fd int) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], 0xfffffffffffffffe)
	unix.Write(fd, b[:])
}
