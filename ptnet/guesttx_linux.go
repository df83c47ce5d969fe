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
	n, err := q.vq.pending()
	return n > 0, err
}

// takeTx takes up to a batch of the driver's frames. The queue's lock is
// held.
func (p *Port) takeTx(q *queue, b *frame.Batch) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, guard.Error(r)
		}
	}()
	pending, err := q.vq.pending()
	if err != nil {
		return 0, err
	}
	if pending == 0 {
		return 0, nil
	}
	q.vq.disableKicks()
	pending = min(pending, frame.MaxBatch)
	hdrLen := q.hdrLen
	// Frames read in place when the memory cannot shrink; else copied
	// (here, where a fault is recovered) into the stage.
	inPlace := q.mem.stable()
	if !inPlace && q.stage == nil {
		q.stage = make([]byte, 0, stageSize)
	}
	q.stage = q.stage[:0]
	for i := range pending {
		head, err := q.vq.head(i)
		if err != nil {
			return 0, err
		}
		got, added, full := 0, false, false
		var badHdr error
		var off frame.Offload
		frames, staged := len(b.Frames), len(q.stage)
		if _, err := q.vq.walk(q.mem, head, false, maxTxChainBytes, func(buf []byte) {
			if got < hdrLen {
				k := copy(q.hdr[got:hdrLen], buf)
				got += k
				buf = buf[k:]
				if got == hdrLen {
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
			return 0, err
		}
		if full {
			// The stage is full: this chain and the rest wait for the next
			// round (the first of a round always fits).
			b.Truncate(frames)
			q.stage = q.stage[:staged]
			pending = i
			break
		}
		q.heads = append(q.heads, head)
		q.framed = append(q.framed, added && badHdr == nil)
		if badHdr != nil {
			p.txBadHdr.Add(1)
			if added {
				drop(b)
			}
		}
	}
	q.vq.lastAvail += pending
	return int(pending), nil
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
	if len(q.heads) == 0 {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			p.breakQueue(q, guard.Error(r))
		}
	}()
	k := len(q.heads)
	if frames >= 0 {
		// The chains up to the one of frame number frames (not included)
		// are used; the others go back to the available ring.
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
	q.vq.lastAvail -= uint16(len(q.heads) - k)
	for _, h := range q.heads[:k] {
		q.vq.putUsed(h, 0)
	}
	q.heads, q.framed = q.heads[:0], q.framed[:0]
	if k == 0 {
		return
	}
	q.vq.publishUsed()
	if q.vq.needsSignal() {
		signal(q.call)
	}
}
