package ptnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"golang.org/x/sys/unix"
)

// frontend is a virtio-net driver and vhost-user frontend written for the
// tests: guest memory in a memfd, split rings, buffers, and the messages
// QEMU sends. It plays the guest against a Port.
type frontend struct {
	t        testing.TB
	conn     *net.UnixConn
	memfd    int
	mem      []byte
	gpa      uint64 // guest address of mem[0]
	uva      uint64 // "user" address of mem[0] (any value the frontend chooses)
	next     uint64 // bump allocator
	features uint64
	hdrLen   int
	queues   map[int]*drvQueue
}

// drvQueue is the driver's side of one virtqueue.
type drvQueue struct {
	f                         *frontend
	index                     int
	num                       uint16
	desc, avail, used         uint64 // offsets in mem
	kick, call                int
	availIdx, lastUsed, freed uint16
	bufs                      []uint64 // offset of each descriptor's buffer
	bufSize                   uint32
}

const frontendMem = 8 << 20

func newFrontend(t testing.TB, socket string) *frontend {
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
	var c *net.UnixConn
	testutil.Eventually(time.Second, func() bool {
		c, err = net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &frontend{t: t, conn: c, memfd: fd, mem: mem, gpa: 0x40000000, uva: 0x7f0000000000, next: 4096, queues: map[int]*drvQueue{}}
	t.Cleanup(f.close)
	return f
}

func (f *frontend) close() {
	f.conn.Close()
	for _, q := range f.queues {
		unix.Close(q.kick)
		unix.Close(q.call)
	}
	unix.Munmap(f.mem)
	unix.Close(f.memfd)
}

func (f *frontend) alloc(n, align uint64) uint64 {
	f.next = (f.next + align - 1) &^ (align - 1)
	o := f.next
	f.next += n
	if f.next > uint64(len(f.mem)) {
		f.t.Fatal("frontend memory exhausted")
	}
	return o
}

// send sends a request; needReply asks for a REPLY_ACK.
func (f *frontend) send(req uint32, payload []byte, fds ...int) {
	f.t.Helper()
	if err := f.trySend(req, 0, payload, fds...); err != nil {
		f.t.Fatalf("send %s: %v", requestName(req), err)
	}
}

func (f *frontend) trySend(req, flags uint32, payload []byte, fds ...int) error {
	b := make([]byte, headerSize+len(payload))
	binary.LittleEndian.PutUint32(b, req)
	binary.LittleEndian.PutUint32(b[4:], flagVersion|flags)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(payload)))
	copy(b[headerSize:], payload)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := f.conn.WriteMsgUnix(b, oob, nil)
	return err
}

// reply reads a reply to req.
func (f *frontend) reply(req uint32) []byte {
	f.t.Helper()
	b, err := f.tryReply(req)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *frontend) tryReply(req uint32) ([]byte, error) {
	f.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer f.conn.SetReadDeadline(time.Time{})
	h := make([]byte, headerSize)
	if _, err := io.ReadFull(f.conn, h); err != nil {
		return nil, fmt.Errorf("reply to %s: %w", requestName(req), err)
	}
	if r := binary.LittleEndian.Uint32(h); r != req {
		return nil, fmt.Errorf("reply to %s came for %s", requestName(req), requestName(r))
	}
	if binary.LittleEndian.Uint32(h[4:])&flagReply == 0 {
		return nil, errors.New("reply without the reply flag")
	}
	p := make([]byte, binary.LittleEndian.Uint32(h[8:]))
	_, err := io.ReadFull(f.conn, p)
	return p, err
}

func (f *frontend) getU64(req uint32) uint64 {
	f.send(req, nil)
	return binary.LittleEndian.Uint64(f.reply(req))
}

// handshake negotiates want (masked with what the backend offers), sets
// the memory table and sets up queues [0, nq) of num entries, enabled.
func (f *frontend) handshake(want uint64, nq int, num uint16) {
	f.t.Helper()
	feats := f.getU64(reqGetFeatures) & want
	f.features = feats
	f.hdrLen = 10
	if feats&(featVersion1|featNetMrgRxbuf) != 0 {
		f.hdrLen = 12
	}
	if feats&featProtocol != 0 {
		proto := f.getU64(reqGetProtocolFeatures)
		f.send(reqSetProtocolFeatures, u64Payload(proto&(protoMQ|protoReplyAck)))
	}
	f.send(reqSetOwner, nil)
	f.send(reqSetFeatures, u64Payload(feats))
	f.setMemTable()
	for i := range nq {
		f.setupQueue(i, num)
	}
	// The backend serves messages in order but answers few: make sure the
	// rings are enabled before the caller sends (a started ring that is
	// not enabled yet drops what it is given, as vhost-user.rst says).
	f.sync()
}

func (f *frontend) setMemTable() {
	p := make([]byte, 8+32)
	le := binary.LittleEndian
	le.PutUint32(p, 1)
	le.PutUint64(p[8:], f.gpa)
	le.PutUint64(p[16:], uint64(len(f.mem)))
	le.PutUint64(p[24:], f.uva)
	le.PutUint64(p[32:], 0)
	f.send(reqSetMemTable, p, f.memfd)
}

func (f *frontend) setupQueue(i int, num uint16) *drvQueue {
	f.t.Helper()
	ds, as, us := ringSizes(num, true)
	q := &drvQueue{f: f, index: i, num: num, desc: f.alloc(ds, 16), avail: f.alloc(as, 4), used: f.alloc(us, 4096)}
	var err error
	if q.kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		f.t.Fatal(err)
	}
	if q.call, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		f.t.Fatal(err)
	}
	f.queues[i] = q
	f.send(reqSetVringNum, statePayload(vringState{uint32(i), uint32(num)}))
	a := make([]byte, 40)
	le := binary.LittleEndian
	le.PutUint32(a, uint32(i))
	le.PutUint64(a[8:], f.uva+q.desc)
	le.PutUint64(a[16:], f.uva+q.used)
	le.PutUint64(a[24:], f.uva+q.avail)
	f.send(reqSetVringAddr, a)
	f.send(reqSetVringBase, statePayload(vringState{uint32(i), 0}))
	f.send(reqSetVringCall, u64Payload(uint64(i)), q.call)
	f.send(reqSetVringKick, u64Payload(uint64(i)), q.kick)
	if f.features&featProtocol != 0 {
		f.send(reqSetVringEnable, statePayload(vringState{uint32(i), 1}))
	}
	return q
}

// sync makes sure the backend has served every message sent so far.
func (f *frontend) sync() {
	f.t.Helper()
	f.getU64(reqGetQueueNum)
}

func (q *drvQueue) le16(off uint64) uint16     { return binary.LittleEndian.Uint16(q.f.mem[off:]) }
func (q *drvQueue) put16(off uint64, v uint16) { binary.LittleEndian.PutUint16(q.f.mem[off:], v) }

// setDesc writes descriptor i.
func (q *drvQueue) setDesc(i uint16, bufOff uint64, length uint32, flags, next uint16) {
	d := q.f.mem[q.desc+uint64(i)*16:]
	le := binary.LittleEndian
	le.PutUint64(d, q.f.gpa+bufOff)
	le.PutUint32(d[8:], length)
	le.PutUint16(d[12:], flags)
	le.PutUint16(d[14:], next)
}

// publish makes head available and kicks unless the device suppressed it.
func (q *drvQueue) publish(heads ...uint16) {
	old := q.availIdx
	for _, h := range heads {
		q.put16(q.avail+4+2*uint64(q.availIdx%q.num), h)
		q.availIdx++
	}
	store32(q.f.mem, int(q.avail), uint32(q.availIdx)<<16) // flags 0
	fence()
	kick := true
	if q.f.features&featEventIdx != 0 {
		ev := q.le16(q.used + 4 + 8*uint64(q.num))
		kick = q.availIdx-ev-1 < q.availIdx-old
	} else {
		kick = q.le16(q.used)&usedFNoNotify == 0
	}
	if kick {
		unix.Write(q.kick, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// sendFrame puts a frame with its header on a transmit queue, split over
// two descriptors (header, data) when split is set.
func (q *drvQueue) sendFrame(hdr, data []byte, split bool) {
	h := q.freed % q.num
	q.freed++
	if !split {
		buf := q.f.alloc(uint64(len(hdr)+len(data)), 8)
		copy(q.f.mem[buf:], hdr)
		copy(q.f.mem[buf+uint64(len(hdr)):], data)
		q.setDesc(h, buf, uint32(len(hdr)+len(data)), 0, 0)
		q.publish(h)
		return
	}
	h2 := q.freed % q.num
	q.freed++
	b1, b2 := q.f.alloc(uint64(len(hdr)), 8), q.f.alloc(uint64(len(data)), 8)
	copy(q.f.mem[b1:], hdr)
	copy(q.f.mem[b2:], data)
	q.setDesc(h, b1, uint32(len(hdr)), descFNext, h2)
	q.setDesc(h2, b2, uint32(len(data)), 0, 0)
	q.publish(h)
}

// usedEntries returns the used entries the device published since the
// last call.
func (q *drvQueue) usedEntries() [][2]uint32 {
	var out [][2]uint32
	idx := uint16(load32(q.f.mem, int(q.used)) >> 16)
	for q.lastUsed != idx {
		e := q.f.mem[q.used+4+8*uint64(q.lastUsed%q.num):]
		out = append(out, [2]uint32{binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:])})
		q.lastUsed++
	}
	return out
}

// postRx makes n receive buffers of size bytes available, one descriptor
// each.
func (q *drvQueue) postRx(n int, size uint32) {
	if q.bufs == nil {
		q.bufs = make([]uint64, q.num)
		q.bufSize = size
		for i := range q.bufs {
			q.bufs[i] = q.f.alloc(uint64(size), 64)
		}
	}
	var heads []uint16
	for range n {
		h := q.freed % q.num
		q.freed++
		q.setDesc(h, q.bufs[h], q.bufSize, descFWrite, 0)
		heads = append(heads, h)
	}
	q.publish(heads...)
}

// rxFrames returns the frames the device wrote, merging mergeable buffers,
// with their headers.
func (q *drvQueue) rxFrames() (frames, hdrs [][]byte) {
	ents := q.usedEntries()
	for i := 0; i < len(ents); {
		e := ents[i]
		buf := q.f.mem[q.bufs[e[0]] : q.bufs[e[0]]+uint64(e[1])]
		hl := q.f.hdrLen
		hdr := append([]byte(nil), buf[:hl]...)
		nb := 1
		if q.f.features&featNetMrgRxbuf != 0 {
			nb = int(binary.LittleEndian.Uint16(hdr[10:]))
		}
		data := append([]byte(nil), buf[hl:]...)
		for k := 1; k < nb && i+k < len(ents); k++ {
			e := ents[i+k]
			data = append(data, q.f.mem[q.bufs[e[0]]:q.bufs[e[0]]+uint64(e[1])]...)
		}
		frames = append(frames, data)
		hdrs = append(hdrs, hdr)
		i += nb
	}
	return frames, hdrs
}
