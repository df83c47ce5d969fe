package ptnet

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/guard"
	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ptnet/ptnettest"
	"github.com/valeswitch/vale/ptnet/vhostuser"
	"github.com/valeswitch/vale/vale/frame"
)

// heapMemory is guest memory on the Go heap, guest and user addresses
// both starting at base.
type heapMemory struct {
	base     uint64
	b        []byte
	unsealed bool // as a file that could shrink: frames are copied out
}

func (h *heapMemory) slice(addr, n uint64) ([]byte, bool) {
	if addr < h.base || addr-h.base > uint64(len(h.b)) || n > uint64(len(h.b))-(addr-h.base) {
		return nil, false
	}
	o := addr - h.base
	return h.b[o : o+n : o+n], true
}

func (h *heapMemory) user(addr, n uint64) ([]byte, bool) { return h.slice(addr, n) }

func (h *heapMemory) guestAddr(addr uint64) (uint64, bool) {
	return addr, addr >= h.base && addr-h.base < uint64(len(h.b))
}

func (h *heapMemory) stable() bool { return !h.unsealed }

// FuzzVirtq feeds arbitrary descriptor tables and available rings, or
// packed rings, to the device side of both queue directions: it must never
// panic, never hand out memory outside the guest's, and never take more
// than the ring holds.
func FuzzVirtq(f *testing.F) {
	seed := make([]byte, 4096)
	binary.LittleEndian.PutUint16(seed[16*8+2:], 3) // avail idx 3
	f.Add(seed, uint16(0), true, false, false)
	f.Add(seed, uint16(65530), false, true, false)
	packed := make([]byte, 4096)
	for i := range 8 { // chains of one and two, available in lap 1
		binary.LittleEndian.PutUint16(packed[16*i+14:], vhostuser.DescFAvail|uint16(i%2)*vhostuser.DescFNext)
	}
	f.Add(packed, uint16(0x8000), true, false, true)
	f.Add(packed, uint16(0x8006), false, true, true)
	f.Fuzz(func(t *testing.T, ring []byte, base uint16, mrg, unsealed, packed bool) {
		const num = 8
		mem := &heapMemory{base: 0x1000, b: make([]byte, 16384), unsealed: unsealed}
		copy(mem.b, ring)
		ds, as, us := ringSizes(num, packed, true)
		p := &Port{log: newDiscardLogger()}
		p.caps.Store(frame.OffloadCaps{Csum: true})
		for _, tx := range []bool{true, false} {
			q := &queue{tx: tx, hdrLen: 12, mrg: mrg, feats: backendFeatures, mem: mem}
			desc, _ := mem.slice(0x1000, ds)
			avail, _ := mem.slice(0x1000+ds, as)
			used, _ := mem.slice(0x1000+ds+as+4, us)
			if err := q.vq.setup(num, packed, desc, avail, used, true); err != nil {
				t.Skip(err)
			}
			next := cursor{idx: base}
			if packed {
				next = cursor{idx: base % num, wrap: base&0x8000 != 0}
				q.vq.usedIdx, q.vq.usedWrap = next.idx, next.wrap
			}
			q.vq.setNext(next)
			q.ready, q.started, q.enabled = true, true, true
			b := frame.NewBatch()
			n, err := p.takeTx(q, b)
			if err == nil && n > num {
				t.Fatalf("took %d chains from a ring of %d", n, num)
			}
			for _, fr := range b.Frames {
				if fr.Len() > maxTxChainBytes {
					t.Fatalf("a frame of %d bytes", fr.Len())
				}
			}
			p.releaseTx(q, n/2)
			out := frame.NewBatch()
			out.Add(make([]byte, 3000), 0)
			out.Add(make([]byte, 60), 0)
			q.putBurst(out, []uint16{1, 0, 1}, frame.OffloadCaps{})
			p.putRx(q, &out.Frames[0], frame.OffloadCaps{})
			p.putRx(q, &out.Frames[1], frame.OffloadCaps{})
		}
	})
}

// FuzzMessages sends arbitrary messages, after a valid handshake or
// without one, to a port: it must never panic, and must serve the next
// frontend afterwards.
func FuzzMessages(f *testing.F) {
	f.Add([]byte{vhostuser.ReqSetVringNum, 8, 0, 0, 0, 0, 0, 1, 0, 0}, true)
	f.Add([]byte{vhostuser.ReqSetMemTable, 40, 1}, false)
	f.Add([]byte{vhostuser.ReqGetVringBase, 8, 1, 0, 0, 0, 0, 0, 0, 0, vhostuser.ReqSetVringKick, 8, 1}, true)
	sock := filepath.Join(f.TempDir(), "fuzz.sock")
	p, err := New(Config{Name: "vale0:fuzz", Socket: sock, Logger: newDiscardLogger()})
	if err != nil {
		f.Fatal(err)
	}
	defer p.Free()
	go drain(p, 0)
	f.Fuzz(func(t *testing.T, msgs []byte, handshake bool) {
		fe := ptnettest.NewFrontend(t, sock)
		if handshake {
			fe.Handshake(splitFeatures, 2, 16)
		}
		for len(msgs) >= 2 {
			req, n := uint32(msgs[0]), int(msgs[1])
			msgs = msgs[2:]
			n = min(n, len(msgs))
			var fds []int
			if req == vhostuser.ReqSetMemTable || req == vhostuser.ReqSetVringKick || req == vhostuser.ReqSetVringCall {
				fd, _ := unix.Eventfd(0, unix.EFD_CLOEXEC)
				fds = append(fds, fd)
				defer unix.Close(fd)
			}
			if fe.TrySend(req, 0, msgs[:n], fds...) != nil {
				break
			}
			msgs = msgs[n:]
		}
		fe.Conn.Close()
		waitDisconnected(t, p)
	})
}

func waitDisconnected(t *testing.T, p *Port) {
	testutil.WaitForWithin(t, 5*time.Second, "the port to drop the closed session", func() bool { return !p.Connected() })
}

// FuzzRingSetup sets up a virtqueue the way a hostile frontend may lay it
// out: any size, any addresses (overlapping, straddling the end of a
// region, outside it), with or without the event index, over memory of
// arbitrary content. The setup must refuse the ring or give one that every
// operation of both directions then uses without touching memory outside
// the rings' views: no panic, recovered or not.
func FuzzRingSetup(f *testing.F) {
	const memSize = 16384
	// The ring of issue 11: the used ring ends two bytes short of
	// avail_event, at the end of the region.
	f.Add(uint16(8), uint64(0x1000), uint64(0x1080), uint64(0x1000+memSize-(4+8*8)), true, []byte{1, 2, 3}, false)
	f.Add(uint16(8), uint64(0x1000), uint64(0x1080), uint64(0x1000+memSize-(6+8*8)), true, []byte{}, false)
	f.Add(uint16(256), uint64(0x1000), uint64(0x2000), uint64(0x3000), false, []byte{0xff, 0xff}, false)
	f.Add(uint16(4), uint64(0x1000), uint64(0x1000), uint64(0x1000), true, []byte{0, 0, 0, 0, 9, 9}, false)
	f.Add(uint16(2), uint64(0x1000+memSize-32), uint64(0x1000+memSize-6), uint64(0x1000+memSize-20), true, []byte{7}, false)
	f.Add(uint16(8), uint64(0x1000), uint64(0x1080), uint64(0x1000+memSize-4), true, []byte{0x80, 0}, true)
	f.Add(uint16(16), uint64(0x1000+memSize-16*16), uint64(0x1000), uint64(0x1002), false, []byte{1, 0x80, 0, 0x80}, true)
	f.Fuzz(func(t *testing.T, num uint16, desc, avail, used uint64, eventIdx bool, content []byte, packed bool) {
		mem := &heapMemory{base: 0x1000, b: make([]byte, memSize)}
		for i := 0; i < len(mem.b) && len(content) > 0; i += len(content) {
			copy(mem.b[i:], content)
		}
		feats := uint64(backendFeatures)
		if !eventIdx {
			feats &^= vhostuser.FeatEventIdx
		}
		if packed {
			feats |= vhostuser.FeatRingPacked
		}
		p := &Port{log: newDiscardLogger()}
		p.caps.Store(frame.OffloadCaps{Csum: true, TSO4: true})
		before := guard.Internal()
		for _, tx := range []bool{true, false} {
			q := &queue{tx: tx, hdrLen: 12, mrg: true, feats: feats, mem: mem, num: num,
				addr: vringAddr{desc: desc, avail: avail, used: used}, addrSet: true}
			if num&(num-1) != 0 || num > vhostuser.MaxQueueSize || p.mapRing(q) != nil || !q.ready {
				continue
			}
			q.started, q.enabled = true, true
			p.sleepy(q)
			b := frame.NewBatch()
			if n, err := p.takeTx(q, b); err == nil && n > 0 {
				p.releaseTx(q, -1)
			}
			out := frame.NewBatch()
			out.Add(make([]byte, 1500), 0)
			q.putBurst(out, []uint16{0}, frame.OffloadCaps{})
			p.putRx(q, &out.Frames[0], frame.OffloadCaps{})
			q.vq.publishUsed()
			q.vq.needsSignal()
			q.vq.disableKicks()
		}
		if n := guard.Internal() - before; n > 0 {
			t.Fatalf("%d runtime errors recovered: a check of the guest's layout is missing", n)
		}
	})
}
