package ptnet

import "github.com/valeswitch/vale/ptnet/vhostuser"

// dirtyLog is the frontend's dirty-page log (SET_LOG_BASE), kept while a
// live migration copies the guest's memory: one bit per page
// (vhostuser.LogPage) of guest physical memory, bit p%8 of byte p/8 for
// page p. The frontend reads and clears the bits as it copies pages; the
// device sets them for every write it makes to guest memory while
// VHOST_F_LOG_ALL is on (used entries, its event fields, received frames),
// each after its write, so that the frontend copies the page again.
type dirtyLog struct {
	bits    []byte // the log, a whole number of aligned 32-bit words
	mapping []byte // the whole mmap, for munmap (nil for heap memory)
}

// maxLogBytes bounds a log: enough for 32 TiB of guest memory.
const maxLogBytes = 1 << 30

// mark records a write of n bytes at guest address gpa. Pages beyond the
// log (which the frontend sizes for all of guest memory) are not recorded.
func (l *dirtyLog) mark(gpa, n uint64) {
	if n == 0 || gpa > ^uint64(0)-(n-1) {
		return
	}
	pages := uint64(len(l.bits)) * 8
	for p := gpa / vhostuser.LogPage; p <= (gpa+n-1)/vhostuser.LogPage && p < pages; p++ {
		off, bit := int(p/32)*4, uint32(1)<<(p%32)
		if vhostuser.Load32(l.bits, off)&bit == 0 {
			vhostuser.Or32(l.bits, off, bit)
		}
	}
}
