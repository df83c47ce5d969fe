// Package ptnettest is a virtio-net driver and vhost-user Frontend for
// tests: guest memory in a memfd, split or packed rings (packed when
// VIRTIO_F_RING_PACKED is negotiated), buffers, and the messages
// QEMU sends. It plays the guest against a vhost-user backend (a ptnet
// port, or valed's) over its socket, and lets a test break any rule on
// purpose.
package ptnettest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ptnet/vhostuser"
	"golang.org/x/sys/unix"
)

// Frontend is a virtio-net driver and vhost-user frontend: it plays the
// guest against a backend. Its fields are there for tests that break the
// rules on purpose.
type Frontend struct {
	T        testing.TB
	Conn     *net.UnixConn // the session with the backend
	MemFD    int           // the guest memory's memfd
	Mem      []byte        // the guest memory
	GPA      uint64        // guest address of Mem[0]
	UVA      uint64        // "user" address of Mem[0] (any value the frontend chooses)
	next     uint64        // bump allocator
	Features uint64        // negotiated
	HdrLen   int           // virtio-net header length the features give
	Queues   map[int]*Queue
}

// Queue is the driver's side of one virtqueue. In a packed ring, Avail
// is the driver's event area and Used the device's.
type Queue struct {
	f                         *Frontend
	Index                     int
	Num                       uint16
	Packed                    bool
	Desc, Avail, Used         uint64 // offsets in Mem
	Kick, Call                int    // eventfds
	availIdx, lastUsed, freed uint16
	bufs                      []uint64 // offset of each descriptor's buffer
	bufSize                   uint32

	// Packed: the driver's wrap counters (next available slot: freed), and
	// the descriptors each buffer id's chain took.
	availWrap, usedWrap bool
	chainLen            map[uint16]uint16
}

// Desc is one descriptor of a chain PostChain makes available.
type Desc struct {
	Buf   uint64 // offset in Mem
	Len   uint32
	Flags uint16 // DescFNext, DescFWrite, DescFIndirect (a packed ring's AVAIL and USED bits are added)
}

const frontendMem = 8 << 20

// NewFrontend connects to the backend listening on socket, with 8 MiB of
// guest memory; it closes everything when the test ends.
func NewFrontend(t testing.TB, socket string) *Frontend {
	t.Helper()
	var c *net.UnixConn
	var err error
	testutil.Eventually(time.Second, func() bool {
		c, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return OnConn(t, c)
}

// OnConn is a frontend on a session that is already open (a backend in
// client mode that connected to the test's socket), with 8 MiB of guest
// memory; it closes everything when the test ends.
func OnConn(t testing.TB, c *net.UnixConn) *Frontend {
	t.Helper()
	fd, err := unix.MemfdCreate("guest", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, frontendMem); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, frontendMem, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	f := &Frontend{T: t, Conn: c, MemFD: fd, Mem: mem, GPA: 0x40000000, UVA: 0x7f0000000000, next: 4096, Queues: map[int]*Queue{}}
	t.Cleanup(f.Close)
	return f
}

// Close ends the session and frees the queues' eventfds and the memory.
func (f *Frontend) Close() {
	if f.Mem == nil {
		return
	}
	f.Conn.Close()
	for _, q := range f.Queues {
		unix.Close(q.Kick)
		unix.Close(q.Call)
	}
	unix.Munmap(f.Mem)
	unix.Close(f.MemFD)
	f.Mem, f.Queues = nil, nil
}

// Alloc returns the offset in Mem of n fresh bytes aligned to align.
func (f *Frontend) Alloc(n, align uint64) uint64 {
	f.next = (f.next + align - 1) &^ (align - 1)
	o := f.next
	f.next += n
	if f.next > uint64(len(f.Mem)) {
		f.T.Fatal("Frontend memory exhausted")
	}
	return o
}

// Send sends a request, failing the test if it cannot.
func (f *Frontend) Send(req uint32, payload []byte, fds ...int) {
	f.T.Helper()
	if err := f.TrySend(req, 0, payload, fds...); err != nil {
		f.T.Fatalf("send %s: %v", vhostuser.RequestName(req), err)
	}
}

// TrySend sends a request with header flags (besides the version) and
// descriptors, whatever it is.
func (f *Frontend) TrySend(req, flags uint32, payload []byte, fds ...int) error {
	b := make([]byte, vhostuser.HeaderSize+len(payload))
	binary.LittleEndian.PutUint32(b, req)
	binary.LittleEndian.PutUint32(b[4:], vhostuser.FlagVersion|flags)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(payload)))
	copy(b[vhostuser.HeaderSize:], payload)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := f.Conn.WriteMsgUnix(b, oob, nil)
	return err
}

// Reply reads the reply to req, failing the test if it does not come.
func (f *Frontend) Reply(req uint32) []byte {
	f.T.Helper()
	b, err := f.TryReply(req)
	if err != nil {
		f.T.Fatal(err)
	}
	return b
}

// TryReply reads the reply to req, within 5 s.
func (f *Frontend) TryReply(req uint32) ([]byte, error) {
	f.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer f.Conn.SetReadDeadline(time.Time{})
	h := make([]byte, vhostuser.HeaderSize)
	if _, err := io.ReadFull(f.Conn, h); err != nil {
		return nil, fmt.Errorf("reply to %s: %w", vhostuser.RequestName(req), err)
	}
	if r := binary.LittleEndian.Uint32(h); r != req {
		return nil, fmt.Errorf("reply to %s came for %s", vhostuser.RequestName(req), vhostuser.RequestName(r))
	}
	if binary.LittleEndian.Uint32(h[4:])&vhostuser.FlagReply == 0 {
		return nil, errors.New("reply without the reply flag")
	}
	p := make([]byte, binary.LittleEndian.Uint32(h[8:]))
	_, err := io.ReadFull(f.Conn, p)
	return p, err
}

// GetU64 sends req and returns the u64 it answers.
func (f *Frontend) GetU64(req uint32) uint64 {
	f.Send(req, nil)
	return binary.LittleEndian.Uint64(f.Reply(req))
}

// Handshake negotiates want (masked with what the backend offers), sets
// the memory table and sets up queues [0, nq) of num entries, enabled.
func (f *Frontend) Handshake(want uint64, nq int, num uint16) {
	f.T.Helper()
	// VHOST_F_LOG_ALL is for migrations only (EnableLogging).
	feats := f.GetU64(vhostuser.ReqGetFeatures) & want &^ vhostuser.FeatLogAll
	f.Features = feats
	f.HdrLen = 10
	if feats&(vhostuser.FeatVersion1|vhostuser.FeatNetMrgRxbuf) != 0 {
		f.HdrLen = 12
	}
	if feats&vhostuser.FeatProtocol != 0 {
		proto := f.GetU64(vhostuser.ReqGetProtocolFeatures)
		f.Send(vhostuser.ReqSetProtocolFeatures, vhostuser.U64(proto&(vhostuser.ProtoMQ|vhostuser.ProtoReplyAck|vhostuser.ProtoLogShmfd|vhostuser.ProtoRARP)))
	}
	f.Send(vhostuser.ReqSetOwner, nil)
	f.Send(vhostuser.ReqSetFeatures, vhostuser.U64(feats))
	f.SetMemTable()
	for i := range nq {
		f.SetupQueue(i, num)
	}
	// The backend serves messages in order but answers few: make sure the
	// rings are enabled before the caller sends (a started ring that is
	// not enabled yet drops what it is given, as vhost-user.rst says).
	f.Sync()
}

// SetMemTable gives the backend the guest memory, one region.
func (f *Frontend) SetMemTable() {
	p := make([]byte, 8+32)
	le := binary.LittleEndian
	le.PutUint32(p, 1)
	le.PutUint64(p[8:], f.GPA)
	le.PutUint64(p[16:], uint64(len(f.Mem)))
	le.PutUint64(p[24:], f.UVA)
	le.PutUint64(p[32:], 0)
	f.Send(vhostuser.ReqSetMemTable, p, f.MemFD)
}

// SetupQueue lays out queue i with num entries (and the event index
// fields) in guest memory, gives it to the backend with its eventfds, and
// enables it.
func (f *Frontend) SetupQueue(i int, num uint16) *Queue {
	f.T.Helper()
	q := &Queue{f: f, Index: i, Num: num, Packed: f.Features&vhostuser.FeatRingPacked != 0}
	base := uint32(0)
	if q.Packed {
		ds, as, us := vhostuser.PackedRingSizes(num)
		q.Desc, q.Avail, q.Used = f.Alloc(ds, 16), f.Alloc(as, 4), f.Alloc(us, 4)
		q.availWrap, q.usedWrap, q.chainLen = true, true, map[uint16]uint16{}
		base = 1 << 15 // slot 0, wrap counter 1
	} else {
		ds, as, us := vhostuser.RingSizes(num, true)
		q.Desc, q.Avail, q.Used = f.Alloc(ds, 16), f.Alloc(as, 4), f.Alloc(us, 4096)
	}
	var err error
	if q.Kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		f.T.Fatal(err)
	}
	if q.Call, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		f.T.Fatal(err)
	}
	f.Queues[i] = q
	f.Send(vhostuser.ReqSetVringNum, vhostuser.State(uint32(i), uint32(num)))
	f.Send(vhostuser.ReqSetVringAddr, vhostuser.Addr(uint32(i), f.UVA+q.Desc, f.UVA+q.Used, f.UVA+q.Avail))
	f.Send(vhostuser.ReqSetVringBase, vhostuser.State(uint32(i), base))
	f.Send(vhostuser.ReqSetVringCall, vhostuser.U64(uint64(i)), q.Call)
	f.Send(vhostuser.ReqSetVringKick, vhostuser.U64(uint64(i)), q.Kick)
	if f.Features&vhostuser.FeatProtocol != 0 {
		f.Send(vhostuser.ReqSetVringEnable, vhostuser.State(uint32(i), 1))
	}
	return q
}

// EnableLogging does what QEMU does when a live migration starts: it gives
// the backend a dirty log for all of guest memory, in a memfd
// (SET_LOG_BASE, waiting for the answer), turns VHOST_F_LOG_ALL on and sets
// each queue's addresses again, asking for its used ring to be logged. It
// returns the log (one bit per page of guest physical memory).
func (f *Frontend) EnableLogging() []byte {
	f.T.Helper()
	pages := (f.GPA + uint64(len(f.Mem)) + vhostuser.LogPage - 1) / vhostuser.LogPage
	size := (pages + 63) / 64 * 8
	fd, err := unix.MemfdCreate("dirty-log", unix.MFD_CLOEXEC)
	if err != nil {
		f.T.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.T.Fatal(err)
	}
	log, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.T.Fatal(err)
	}
	f.T.Cleanup(func() { unix.Munmap(log) })
	f.Send(vhostuser.ReqSetLogBase, vhostuser.Log(size, 0), fd)
	if b := f.Reply(vhostuser.ReqSetLogBase); len(b) != 0 {
		f.T.Fatalf("SET_LOG_BASE answered %d bytes, want none", len(b))
	}
	f.SetLogging(true)
	return log
}

// SetLogging turns VHOST_F_LOG_ALL on or off (a migration starts, or ends
// or is cancelled) and sets each queue's addresses again, as QEMU does.
func (f *Frontend) SetLogging(on bool) {
	f.T.Helper()
	feats := f.Features &^ vhostuser.FeatLogAll
	if on {
		feats |= vhostuser.FeatLogAll
	}
	f.Send(vhostuser.ReqSetFeatures, vhostuser.U64(feats))
	for i, q := range f.Queues {
		a := vhostuser.Addr(uint32(i), f.UVA+q.Desc, f.UVA+q.Used, f.UVA+q.Avail)
		if on {
			a = vhostuser.AddrLogged(uint32(i), f.UVA+q.Desc, f.UVA+q.Used, f.UVA+q.Avail, f.GPA+q.Used)
		}
		f.Send(vhostuser.ReqSetVringAddr, a)
	}
	f.Sync()
}

// Dirty reports whether log marks the page that holds Mem[off].
func (f *Frontend) Dirty(log []byte, off uint64) bool {
	p := (f.GPA + off) / vhostuser.LogPage
	return log[p/8]&(1<<(p%8)) != 0
}

// Sync makes sure the backend has served every message sent so far.
func (f *Frontend) Sync() {
	f.T.Helper()
	f.GetU64(vhostuser.ReqGetQueueNum)
}

func (q *Queue) le16(off uint64) uint16     { return binary.LittleEndian.Uint16(q.f.Mem[off:]) }
func (q *Queue) put16(off uint64, v uint16) { binary.LittleEndian.PutUint16(q.f.Mem[off:], v) }

// SetDesc writes descriptor i.
func (q *Queue) SetDesc(i uint16, bufOff uint64, length uint32, flags, next uint16) {
	d := q.f.Mem[q.Desc+uint64(i)*16:]
	le := binary.LittleEndian
	le.PutUint64(d, q.f.GPA+bufOff)
	le.PutUint32(d[8:], length)
	le.PutUint16(d[12:], flags)
	le.PutUint16(d[14:], next)
}

// Publish makes heads available (split) and kicks unless the device
// suppressed it.
func (q *Queue) Publish(heads ...uint16) {
	old := q.availIdx
	for _, h := range heads {
		q.put16(q.Avail+4+2*uint64(q.availIdx%q.Num), h)
		q.availIdx++
	}
	vhostuser.Store32(q.f.Mem, int(q.Avail), uint32(q.availIdx)<<16) // flags 0
	vhostuser.Fence()
	kick := true
	if q.f.Features&vhostuser.FeatEventIdx != 0 {
		ev := q.le16(q.Used + 4 + 8*uint64(q.Num))
		kick = q.availIdx-ev-1 < q.availIdx-old
	} else {
		kick = q.le16(q.Used)&vhostuser.UsedFNoNotify == 0
	}
	if kick {
		q.kick()
	}
}

func (q *Queue) kick() { unix.Write(q.Kick, []byte{1, 0, 0, 0, 0, 0, 0, 0}) }

// PostChains writes chains at the next free descriptors, makes them
// available and kicks (once) unless the device suppressed it. It returns
// their ids: the head descriptor (split), the buffer id (packed: the head's
// slot).
func (q *Queue) PostChains(chains ...[]Desc) []uint16 {
	ids := make([]uint16, len(chains))
	if !q.Packed {
		for i, c := range chains {
			ids[i] = q.writeSplit(c)
		}
		q.Publish(ids...)
		return ids
	}
	old := q.freed
	for i, c := range chains {
		ids[i] = q.writePacked(c)
	}
	vhostuser.Fence()
	w := vhostuser.Load32(q.f.Mem, int(q.Used))
	offWrap, flags := uint16(w), uint16(w>>16)
	kick := flags != vhostuser.EventFDisable
	if flags == vhostuser.EventFDesc {
		// Slots counted in the driver's lap: one of the previous lap lies
		// num behind.
		ev, now, prev := offWrap&0x7fff, q.freed, old
		if (offWrap>>15 == 1) != q.availWrap {
			ev -= q.Num
		}
		if now < prev {
			prev -= q.Num
		}
		kick = now-ev-1 < now-prev
	}
	if kick {
		q.kick()
	}
	return ids
}

// writeSplit writes a chain at consecutive descriptor indexes.
func (q *Queue) writeSplit(c []Desc) uint16 {
	head := q.freed % q.Num
	for _, d := range c {
		i := q.freed % q.Num
		q.freed++
		q.SetDesc(i, d.Buf, d.Len, d.Flags, (i+1)%q.Num)
	}
	return head
}

// writePacked writes a chain at the next slots, each with the AVAIL and
// USED bits of its lap, the head's flags last.
func (q *Queue) writePacked(c []Desc) uint16 {
	id := q.freed
	var headFlags uint16
	for k, d := range c {
		fl := d.Flags &^ (vhostuser.DescFAvail | vhostuser.DescFUsed)
		if q.availWrap {
			fl |= vhostuser.DescFAvail
		} else {
			fl |= vhostuser.DescFUsed
		}
		e := q.f.Mem[q.Desc+uint64(q.freed)*16:]
		binary.LittleEndian.PutUint64(e, q.f.GPA+d.Buf)
		binary.LittleEndian.PutUint32(e[8:], d.Len)
		binary.LittleEndian.PutUint16(e[12:], id)
		if k == 0 {
			headFlags = fl
		} else {
			binary.LittleEndian.PutUint16(e[14:], fl)
		}
		if q.freed++; q.freed == q.Num {
			q.freed, q.availWrap = 0, !q.availWrap
		}
	}
	q.chainLen[id] = uint16(len(c))
	vhostuser.Store32(q.f.Mem, int(q.Desc+uint64(id)*16+12), uint32(id)|uint32(headFlags)<<16)
	return id
}

// SendFrame puts a frame with its header on a transmit queue, split over
// two descriptors (header, data) when split is set.
func (q *Queue) SendFrame(hdr, data []byte, split bool) {
	if !split {
		buf := q.f.Alloc(uint64(len(hdr)+len(data)), 8)
		copy(q.f.Mem[buf:], hdr)
		copy(q.f.Mem[buf+uint64(len(hdr)):], data)
		q.PostChains([]Desc{{Buf: buf, Len: uint32(len(hdr) + len(data))}})
		return
	}
	b1, b2 := q.f.Alloc(uint64(len(hdr)), 8), q.f.Alloc(uint64(len(data)), 8)
	copy(q.f.Mem[b1:], hdr)
	copy(q.f.Mem[b2:], data)
	q.PostChains([]Desc{{Buf: b1, Len: uint32(len(hdr)), Flags: vhostuser.DescFNext}, {Buf: b2, Len: uint32(len(data))}})
}

// UsedEntries returns the used entries (id, length) the device published
// since the last call.
func (q *Queue) UsedEntries() [][2]uint32 {
	var out [][2]uint32
	if q.Packed {
		for {
			w := vhostuser.Load32(q.f.Mem, int(q.Desc+uint64(q.lastUsed)*16+12))
			flags := uint16(w >> 16)
			if (flags&vhostuser.DescFAvail != 0) != q.usedWrap || (flags&vhostuser.DescFUsed != 0) != q.usedWrap {
				return out
			}
			id := uint16(w)
			n := binary.LittleEndian.Uint32(q.f.Mem[q.Desc+uint64(q.lastUsed)*16+8:])
			out = append(out, [2]uint32{uint32(id), n})
			if q.lastUsed += q.chainLen[id]; q.lastUsed >= q.Num {
				q.lastUsed -= q.Num
				q.usedWrap = !q.usedWrap
			}
		}
	}
	idx := uint16(vhostuser.Load32(q.f.Mem, int(q.Used)) >> 16)
	for q.lastUsed != idx {
		e := q.f.Mem[q.Used+4+8*uint64(q.lastUsed%q.Num):]
		out = append(out, [2]uint32{binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:])})
		q.lastUsed++
	}
	return out
}

// PostRx makes n receive buffers of size bytes available, one descriptor
// each.
func (q *Queue) PostRx(n int, size uint32) {
	if q.bufs == nil {
		q.bufs = make([]uint64, q.Num)
		q.bufSize = size
		for i := range q.bufs {
			q.bufs[i] = q.f.Alloc(uint64(size), 64)
		}
	}
	chains := make([][]Desc, n)
	for i := range chains {
		// The descriptor at slot s (its id, in either layout) uses buffer s.
		chains[i] = []Desc{{Buf: q.bufs[(q.freed+uint16(i))%q.Num], Len: q.bufSize, Flags: vhostuser.DescFWrite}}
	}
	q.PostChains(chains...)
}

// Buffers returns the offsets in Mem of the receive buffers PostRx made,
// buffer s for the descriptor at slot s.
func (q *Queue) Buffers() []uint64 { return q.bufs }

// RxFrames returns the frames the device wrote, merging mergeable buffers,
// with their headers.
func (q *Queue) RxFrames() (frames, hdrs [][]byte) {
	ents := q.UsedEntries()
	for i := 0; i < len(ents); {
		e := ents[i]
		buf := q.f.Mem[q.bufs[e[0]] : q.bufs[e[0]]+uint64(e[1])]
		hl := q.f.HdrLen
		hdr := append([]byte(nil), buf[:hl]...)
		nb := 1
		if q.f.Features&vhostuser.FeatNetMrgRxbuf != 0 {
			nb = int(binary.LittleEndian.Uint16(hdr[10:]))
		}
		data := append([]byte(nil), buf[hl:]...)
		for k := 1; k < nb && i+k < len(ents); k++ {
			e := ents[i+k]
			data = append(data, q.f.Mem[q.bufs[e[0]]:q.bufs[e[0]]+uint64(e[1])]...)
		}
		frames = append(frames, data)
		hdrs = append(hdrs, hdr)
		i += nb
	}
	return frames, hdrs
}

// Frontend returns the frontend the queue belongs to.
func (q *Queue) Frontend() *Frontend { return q.f }
