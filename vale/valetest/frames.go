package valetest

import "net"

// MAC parses a MAC address, panicking on a bad one (test constants).
func MAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// Eth builds a 60-byte frame from src to dst (EtherType 0x88b5) whose
// payload names it: tag.
func Eth(dst, src net.HardwareAddr, tag string) Frame {
	b := append(append(append([]byte{}, dst...), src...), 0x88, 0xb5)
	b = append(b, tag...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return Frame{Data: b}
}

// Tag returns the tag of a frame Eth built.
func Tag(b []byte) string {
	if len(b) < 14 {
		return ""
	}
	end := 14
	for end < len(b) && b[end] != 0 {
		end++
	}
	return string(b[14:end])
}

// Tags returns the tags of frames.
func Tags(frames [][]byte) []string {
	var s []string
	for _, f := range frames {
		s = append(s, Tag(f))
	}
	return s
}
