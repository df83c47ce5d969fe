package frame

import "testing"

func TestTruncate(t *testing.T) {
	b := NewBatch()
	b.Add([]byte{1}, 0)
	b.AddOffload([]byte{2}, Offload{NeedsCsum: true})
	b.AddFragment([]byte{3})
	b.AddOffload([]byte{4}, Offload{GSO: GSOTCPv4})
	b.AddFragment([]byte{5})
	b.AddFragment([]byte{6})
	b.Truncate(2)
	if len(b.Frames) != 2 || b.Offloads != 1 || len(b.frags) != 1 {
		t.Fatalf("after Truncate(2): %d frames, %d offloads, %d fragments", len(b.Frames), b.Offloads, len(b.frags))
	}
	b.Add([]byte{7}, 0)
	b.AddFragment([]byte{8})
	if f := b.Frames[2]; len(f.More) != 1 || f.More[0][0] != 8 || len(b.Frames[1].More) != 1 || b.Frames[1].More[0][0] != 3 {
		t.Fatalf("fragments after refilling: %v, %v", b.Frames[1].More, f.More)
	}
	b.Truncate(0)
	if len(b.Frames) != 0 || b.Offloads != 0 || len(b.frags) != 0 {
		t.Fatal("Truncate(0) left something")
	}
}
