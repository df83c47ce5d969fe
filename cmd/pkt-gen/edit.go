package main

import (
	"encoding/binary"
	"time"
)

// editor applies the per-frame changes the flags ask for: lengths, address
// ranges, random addresses, sequence numbers, timestamps. It edits frames
// in place (a slot's buffer, or the template that is then copied into
// slots) and keeps their checksums right, incrementally.
type editor struct {
	cfg              *config
	t                *thread
	l                *layout
	perFrame         bool
	srcVal, dstVal   uint32 // the varying part of each address
	srcPort, dstPort uint16
	stepSrc, stepDst bool
	seq              uint32
	randomLen        bool
	withSeq          bool
	stamp            bool // -o 16: the send time in the payload
	recompute        bool // -o 4096: checksums computed from scratch
	now              func() time.Time
}

func newEditor(t *thread) *editor {
	c := t.cfg
	e := &editor{cfg: c, t: t, l: layoutOf(c.v6), now: time.Now,
		srcVal: c.src.lo, dstVal: c.dst.lo, srcPort: c.src.loPort, dstPort: c.dst.loPort}
	if c.template != nil {
		return e // -P: the file's frame as it is
	}
	e.stepSrc = !c.src.single() || c.opts&optRandomSrc != 0
	e.stepDst = !c.dst.single() || c.opts&optRandomDst != 0
	e.randomLen = c.minLength != 0
	e.withSeq = c.fn == fnTxSeq
	e.stamp = c.opts&optTimestamp != 0
	e.recompute = c.opts&optUpdateCsum != 0
	e.perFrame = e.stepSrc || e.stepDst || e.randomLen || e.withSeq || e.stamp || e.recompute
	return e
}

// spec is the first frame the editor starts from.
func (e *editor) spec(srcMAC, dstMAC []byte) *frameSpec {
	c := e.cfg
	return &frameSpec{
		srcMAC: srcMAC, dstMAC: dstMAC,
		src: c.src.addr(c.src.lo), dst: c.dst.addr(c.dst.lo),
		srcPort: c.src.loPort, dstPort: c.dst.loPort,
		length: c.length,
	}
}

// nextLen returns the length of the next frame.
func (e *editor) nextLen() int {
	c := e.cfg
	if !e.randomLen {
		return c.length
	}
	return c.minLength + e.t.rng.IntN(c.length-c.minLength+1)
}

// edit prepares buf (which holds a frame built from the template) for the
// next send and returns its length.
func (e *editor) edit(buf []byte) int {
	n := e.nextLen()
	l := e.l
	if e.randomLen {
		l.setLen(buf, n)
	}
	if e.stepSrc || e.stepDst {
		l.setAddr(buf, l.src, &e.cfg.src, e.srcVal)
		l.setAddr(buf, l.dst, &e.cfg.dst, e.dstVal)
		l.put16(buf, l.udp, e.srcPort)
		l.put16(buf, l.udp+2, e.dstPort)
		e.step() // for the next frame
	}
	if e.withSeq {
		l.put32(buf, l.payload, e.seq)
		e.seq++
	}
	if e.stamp {
		now := e.now()
		l.put32(buf, l.payload+stampOff, uint32(now.Unix()))
		l.put32(buf, l.payload+stampOff+4, uint32(now.Nanosecond()))
	}
	if e.recompute {
		l.fixChecksums(buf[:n])
	}
	return n
}

// step moves to the next address/port combination: an odometer whose
// fastest wheel is the source port, then the source address, the
// destination port and the destination address. Random wheels draw within
// their range, or anywhere when the range is a single value.
func (e *editor) step() {
	c, r := e.cfg, e.t.rng
	if c.opts&optRandomSrc != 0 {
		e.srcVal, e.srcPort = c.src.random(r)
	} else if e.stepSrc {
		if e.srcPort < c.src.hiPort {
			e.srcPort++
			return
		}
		e.srcPort = c.src.loPort
		if e.srcVal < c.src.hi {
			e.srcVal++
			return
		}
		e.srcVal = c.src.lo
	}
	if c.opts&optRandomDst != 0 {
		e.dstVal, e.dstPort = c.dst.random(r)
	} else if e.stepDst {
		if e.dstPort < c.dst.hiPort {
			e.dstPort++
			return
		}
		e.dstPort = c.dst.loPort
		if e.dstVal < c.dst.hi {
			e.dstVal++
			return
		}
		e.dstVal = c.dst.lo
	}
}

// payloadWord reads the big-endian word at payload offset off of frame b,
// IPv4 or IPv6; ok is false when b is too short or not one of pkt-gen's.
func payloadWord(b []byte, off int) (v uint32, ok bool) {
	if len(b) < 14 {
		return 0, false
	}
	l := layout4
	if binary.BigEndian.Uint16(b[12:]) == etherIPv6 {
		l = layout6
	}
	if len(b) < l.payload+off+4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[l.payload+off:]), true
}
