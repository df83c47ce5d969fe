package shmem

import (
	"bytes"
	"testing"
)

// Populate and Touch leave the memory's contents as they were, whatever
// its length, and a region comes zeroed.
func TestPopulateKeepsContents(t *testing.T) {
	r, err := NewRegion("test", 3*int64(pageSize)+100)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !bytes.Equal(r.Mem, make([]byte, len(r.Mem))) {
		t.Fatal("a new region is not zeroed")
	}
	for i := range r.Mem {
		r.Mem[i] = byte(i * 7)
	}
	want := bytes.Clone(r.Mem)
	Populate(r.Mem, int64(len(r.Mem))+5000) // beyond the end: clamped
	Touch(r.Mem[pageSize/2:])
	Populate(r.Mem, 0)
	if !bytes.Equal(r.Mem, want) {
		t.Fatal("populating changed the memory")
	}
}
