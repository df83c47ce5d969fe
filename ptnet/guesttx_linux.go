package ptnet

import (
	"runtime/debug"

	"github.com/valeswitch/vale/internal/guard"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/frame"
)

// Recv waits until the driver's transmit queue of pair r has frames and
// appends them to b: views into guest memory, valid until Release (the
// queue stays locked in between).
func (p *Port) Recv(r int, b *frame.Batch) error {
	// The switch worker of this ring reads the frames from guest memory:
	// a fault must become a panic it can recover from.
	debug.SetPanicOnFault(true)
	q := p.queues[2*r+1]
	for {
		if p.stopped.Load() {
			return ports.ErrStopped
		}
		q.mu.Lock()
		if q.live() {
			n, err := p.takeTx(q, b)
			if err == nil && r == 0 && q.enabled && p.addAnnouncement(q, b) {
				n++
			}
			switch {
			case err != nil:
				b.Reset()
				p.releaseTx(q, -1)
				p.breakQueue(q, err)
			case n > 0 && q.enabled:
				return nil // Release unlocks
			case n > 0:
				// Started but disabled: consume and drop (vhost-user.rst).
				b.Reset()
				p.releaseTx(q, -1)
				q.mu.Unlock()
				continue
			default:
				if more, err := p.sleepy(q); err != nil {
					p.breakQueue(q, err)
				} else if more {
					q.mu.Unlock()
					continue
				}
			}
		}
		q.mu.Unlock()
		select {
		case <-q.kicked:
		case <-q.changed:
		case <-p.stopCh:
		}
	}
}

// sleepy asks the driver for a kick and reports whether frames came in
// the meantime. The queue's lock is held.
func (p *Port) sleepy(q *queue) (more bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			more, err = false, guard.Error(r)
		}
	}()
	q.vq.enableKicks()
	return q.vq.availableAt(q.vq.next), nil
}

// takeTx takes up to a batch of the driver's frames. The queue's lock is
// held.
func (p *Port) takeTx(q *queue, b *frame.Batch) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, guard.Error(r)
		}
	}()
	// Frames read in place when the memory cannot shrink; else copied
	// (here, where a fault is recovered) into the stage.
	inPlace := q.mem.stable()
	if !inPlace && q.stage == nil {
		q.stage = make([]byte, 0, stageSize)
	}
	q.stage = q.stage[:0]
	if err := q.vq.refresh(); err != nil {
		return 0, err
	}
	c := q.vq.next
	for n < txRound {
		ch, ok, err := q.vq.take(&c)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		if n == 0 {
			q.vq.disableKicks()
		}
		frames, staged := len(b.Frames), len(q.stage)
		full, framed, err := p.readChain(q, ch, inPlace, b)
		if err != nil {
			return 0, err
		}
		if full {
			// The stage is full: this chain and the rest wait for the next
			// round (the first of a round always fits).
			b.Truncate(frames)
			q.stage = q.stage[:staged]
			c = ch.at
			break
		}
		q.chains = append(q.chains, ch)
		q.framed = append(q.framed, framed)
		n++
	}
	q.vq.next = c
	return n, nil
}

// readChain adds the frame of one chain to b: its virtio-net header
// parsed, its buffers in place or staged. It reports whether the stage
// had no room for it, and whether it made a frame (a chain with nothing
// behind its header, or a header that does not apply, does not).
func (p *Port) readChain(q *queue, ch chain, inPlace bool, b *frame.Batch) (full, framed bool, err error) {
	if done, full, framed, err := p.readSimple(q, ch, inPlace, b); done || err != nil {
		return full, framed, err
	}
	hdrLen := q.hdrLen
	got, added := 0, false
	var badHdr error
	var off frame.Offload
	if _, err := q.vq.walk(q.mem, ch, false, maxTxChainBytes, func(_ uint64, buf []byte) {
		if got < hdrLen {
			k := copy(q.hdr[got:hdrLen], buf)
			got += k
			buf = buf[k:]
			if got == hdrLen && q.hdr[0]|q.hdr[1] != 0 {
				// Flags and segmentation type 0 (most frames) ask for nothing.
				off, badHdr = parseVnetHdr(q.hdr[:hdrLen], q.feats)
			}
		}
		if len(buf) == 0 || badHdr != nil || got < hdrLen || full {
			return
		}
		if !inPlace {
			if len(q.stage)+len(buf) > cap(q.stage) {
				full = true // never grow the stage: frames point into it
				return
			}
			start := len(q.stage)
			q.stage = append(q.stage, buf...)
			buf = q.stage[start:len(q.stage):len(q.stage)]
		}
		if !added {
			b.AddOffload(buf, off)
			added = true
			return
		}
		b.AddFragment(buf)
	}); err != nil {
		return false, false, err
	}
	if full {
		return true, false, nil
	}
	if badHdr != nil {
		p.txBadHdr.Add(1)
		if added {
			drop(b)
		}
		return false, false, nil
	}
	return false, added, nil
}

// addAnnouncement adds the pending RARP, if any, after the frames of the
// chains taken. The queue's lock is held.
func (p *Port) addAnnouncement(q *queue, b *frame.Batch) bool {
	f := p.pending.Swap(nil)
	if f == nil {
		return false
	}
	b.Add(*f, 0)
	q.announcing = f
	return true
}

// readSimple is readChain for the usual chain, a single buffer holding the
// header and the frame, without the general walk. done is false, with
// nothing read, for any other chain.
func (p *Port) readSimple(q *queue, ch chain, inPlace bool, b *frame.Batch) (done, full, framed bool, err error) {
	_, buf, ok, err := q.vq.single(q.mem, ch, false)
	if !ok || err != nil || len(buf) <= q.hdrLen || len(buf) > maxTxChainBytes {
		return false, false, false, err
	}
	var off frame.Offload
	if buf[0]|buf[1] != 0 {
		// Flags and segmentation type 0 (most frames) ask for nothing; a
		// header that asks is parsed from a copy (the guest may change it).
		h := q.hdr[:q.hdrLen]
		copy(h, buf)
		var bad error
		if off, bad = parseVnetHdr(h, q.feats); bad != nil {
			p.txBadHdr.Add(1)
			return true, false, false, nil
		}
	}
	data := buf[q.hdrLen:]
	if !inPlace {
		if len(q.stage)+len(data) > cap(q.stage) {
			return true, true, false, nil
		}
		start := len(q.stage)
		q.stage = append(q.stage, data...)
		data = q.stage[start:len(q.stage):len(q.stage)]
	}
	b.AddOffload(data, off)
	return true, false, true, nil
}

// drop removes the last frame of b.
func drop(b *frame.Batch) {
	f := b.Frames[len(b.Frames)-1]
	if !f.Offload.IsZero() {
		b.Offloads--
	}
	b.Frames = b.Frames[:len(b.Frames)-1]
}

// Release gives the chains of the first n frames of the last Recv on ring
// r back to the driver (the others stay available, taken again by the
// next Recv) and unlocks the queue.
func (p *Port) Release(r int, _ *frame.Batch, n int) {
	q := p.queues[2*r+1]
	p.releaseTx(q, n)
	q.mu.Unlock()
}

// releaseTx returns the chains taken. The queue's lock is held.
func (p *Port) releaseTx(q *queue, frames int) {
	if f := q.announcing; f != nil {
		// The RARP comes after the chains' frames: it went only if all did.
		q.announcing = nil
		if frames < 0 || frames <= countTrue(q.framed) {
			p.pending.CompareAndSwap(nil, f)
		}
	}
	if len(q.chains) == 0 {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			p.breakQueue(q, guard.Error(r))
		}
	}()
	k := len(q.chains)
	if frames >= 0 {
		// The chains up to the one of frame number frames (not included)
		// are used; the others go back to the driver.
		seen := 0
		for i, f := range q.framed {
			if f && seen == frames {
				k = i
				break
			}
			if f {
				seen++
			}
		}
	}
	if k < len(q.chains) {
		q.vq.setNext(q.chains[k].at)
	}
	for _, ch := range q.chains[:k] {
		q.vq.putUsed(ch, 0)
	}
	q.chains, q.framed = q.chains[:0], q.framed[:0]
	if k == 0 {
		return
	}
	q.vq.publishUsed()
	if q.vq.needsSignal() {
		signal(q.call)
	}
}

func countTrue(v []bool) int {
	n := 0
	for _, b := range v {
		if b {
			n++
		}
	}
	return n
}

// txRound is the most frames a round takes from a guest's transmit queue.
// The chains a round takes go back to the driver only when the switch has
// forwarded all of them: a round of up to a whole ring (1024) left DPDK's
// virtio-user without free descriptors while valed worked, and the two
// stopped taking turns. Measured from testpmd txonly into vale0:vu, 4
// interleaved rounds each (Mpps): 1024 frames 5.4-6.9, 64 10.8-12.0, 128
// 10.5-12.1, 256 11.7-12.5.
const txRound = 256
