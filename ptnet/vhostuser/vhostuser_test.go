package vhostuser

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestEncodings(t *testing.T) {
	if got := Header(ReqSetVringNum, FlagVersion|FlagNeedReply, 8); !bytes.Equal(got, []byte{8, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0}) {
		t.Errorf("header % x", got)
	}
	if got := State(3, 256); !bytes.Equal(got, []byte{3, 0, 0, 0, 0, 1, 0, 0}) {
		t.Errorf("state % x", got)
	}
	a := Addr(1, 0x1000, 0x2000, 0x3000)
	le := binary.LittleEndian
	if len(a) != 40 || le.Uint32(a) != 1 || le.Uint64(a[8:]) != 0x1000 || le.Uint64(a[16:]) != 0x2000 || le.Uint64(a[24:]) != 0x3000 {
		t.Errorf("addr % x (desc, used, avail in that order)", a)
	}
	m := MemTable(Region{GuestAddr: 1, Size: 2, UserAddr: 3, MmapOffset: 4}, Region{GuestAddr: 5})
	if len(m) != 8+64 || le.Uint32(m) != 2 || le.Uint64(m[8+24:]) != 4 || le.Uint64(m[8+32:]) != 5 {
		t.Errorf("memory table % x", m)
	}
	if RequestName(ReqGetVringBase) != "GET_VRING_BASE" || RequestName(999) != "request 999" {
		t.Error("request names")
	}
}

func TestRingSizes(t *testing.T) {
	d, a, u := RingSizes(256, false)
	if d != 16*256 || a != 4+2*256 || u != 4+8*256 {
		t.Errorf("sizes %d %d %d", d, a, u)
	}
	if _, a2, u2 := RingSizes(256, true); a2 != a+2 || u2 != u+2 {
		t.Errorf("with the event index: %d %d", a2, u2)
	}
}

// The 16-bit fields are read and written through the words that hold them,
// leaving the other half alone.
func TestSixteenBitFields(t *testing.T) {
	b := make([]byte, 8)
	if !Aligned4(b) {
		t.Fatal("an 8-byte heap slice is not 4-aligned")
	}
	Store16(b, 0, 0x1111)
	Store16(b, 2, 0x2222)
	Store16(b, 6, 0x3333)
	if Load16(b, 0) != 0x1111 || Load16(b, 2) != 0x2222 || Load16(b, 6) != 0x3333 || Load32(b, 0) != 0x22221111 {
		t.Errorf("fields % x", b)
	}
	Store32(b, 4, 0xdeadbeef)
	if Load16(b, 4) != 0xbeef || Load16(b, 6) != 0xdead {
		t.Errorf("halves of % x", b)
	}
}

func TestFeatureNames(t *testing.T) {
	got := strings.Join(FeatureNames(FeatVersion1|FeatNetMrgRxbuf|FeatEventIdx|FeatNetHostTSO4), ",")
	if got != "split,v1,mrg,eventidx,tso4" {
		t.Errorf("names %q", got)
	}
	if got := FeatureNames(0); len(got) != 1 || got[0] != "split" {
		t.Errorf("no features: %q", got)
	}
}
