package main

import (
	"sync/atomic"
	"unsafe"
)

// putWord stores v at off in mem, atomically as the other side reads it.
func putWord(mem []byte, off int64, v uint32) {
	if off < 0 || off+4 > int64(len(mem)) {
		return
	}
	(*atomic.Uint32)(unsafe.Pointer(&mem[off])).Store(v)
}
