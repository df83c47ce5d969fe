package ports

import (
	"bytes"
	"testing"

	"github.com/valeswitch/vale/vale/frame"
)

// TestVnetHeader checks a ring with a virtio-net header (PORT_HDR_SET): the
// switch strips the header of what the application sends and keeps what it
// says is pending; it writes one before what it delivers, with the pending
// work, also in front of a chain; and a header that means nothing empties
// its frame, which the switch drops as invalid.
func TestVnetHeader(t *testing.T) {
	p := newTestPort(t, Geometry{TxRings: 1, RxRings: 1, TxSlots: 8, RxSlots: 8, BufSize: 64})
	ktx, krx := p.ktx(0), p.krx(0)
	ktx.SetVnetHdrLen(frame.VnetHdrLenMrg)
	krx.SetVnetHdrLen(frame.VnetHdrLenMrg)

	csum := frame.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 6}
	hdr := make([]byte, frame.VnetHdrLenMrg)
	frame.PutVnetHdr(hdr, csum, 1)
	bad := make([]byte, frame.VnetHdrLenMrg)
	bad[1] = 9 // no such segmentation type
	payload := makeFrame(40, 7)
	send(t, p.tx[0], [][]byte{append(hdr, payload...), append(bad, payload...), hdr[:4]}, nil)
	b := frame.NewBatch()
	if n, err := ktx.TxFrames(b); err != nil || n != 3 || len(b.Frames) != 3 {
		t.Fatalf("took %d slots, %d frames, %v", n, len(b.Frames), err)
	}
	if f := b.Frames[0]; !bytes.Equal(f.Data, payload) || f.Offload != csum || b.Offloads != 1 {
		t.Errorf("frame 0: %d bytes, offload %+v (batch counts %d)", len(f.Data), f.Offload, b.Offloads)
	}
	if len(b.Frames[1].Data) != 0 || len(b.Frames[2].Data) != 0 {
		t.Errorf("a bad header and a short frame kept %d and %d bytes", len(b.Frames[1].Data), len(b.Frames[2].Data))
	}

	// Delivery: a header with the pending work, then the frame; a frame
	// larger than a buffer starts its chain with the header.
	big := frame.NewBatch()
	big.AddOffload(payload, csum)
	big.Add(makeFrame(100, 9), 0)
	n, _, _, err := krx.RxFrames(big, []uint16{0, 1}, 0)
	if err != nil || n != 2 {
		t.Fatalf("delivered %d, %v", n, err)
	}
	rx := p.rx[0]
	rx.UpdateTail(rx.Header().Tail())
	s := rx.Slot(0)
	got := rx.Buf(s.BufIdx)[:s.Len]
	if o, err := frame.ParseVnetHdr(got, allOffloads); err != nil || o != csum || !bytes.Equal(got[frame.VnetHdrLenMrg:], payload) {
		t.Errorf("slot 0: header %+v (%v), %d bytes", o, err, len(got))
	}
	var chain []byte
	for i := uint32(1); i < rx.Tail(); i++ {
		s := rx.Slot(i)
		chain = append(chain, rx.Buf(s.BufIdx)[:s.Len]...)
	}
	if len(chain) != frame.VnetHdrLenMrg+100 || chain[0] != 0 || chain[frame.VnetHdrLenMrg] != 9 || rx.Tail() != 3 {
		t.Errorf("chain of %d bytes over %d slots", len(chain), rx.Tail()-1)
	}
}
