package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"
)

// setTemplate reads -P's pcap or pcapng file: pkt-gen sends its first
// frame, as captured, instead of frames of its own, as netmap's does (-l,
// -s, -d, -z and -Z do not change it).
func (c *config) setTemplate(v *flagValues) error {
	if v.pcap == "" {
		return nil
	}
	if c.fn != fnTx {
		return fmt.Errorf("-P works with -f tx, not %s", c.fn.name)
	}
	frame, err := firstFrame(v.pcap)
	if err != nil {
		return fmt.Errorf("-P %s: %w", v.pcap, err)
	}
	if len(frame) < 14 || len(frame) > 65535 {
		return fmt.Errorf("-P %s: the first frame has %d bytes, not in [14, 65535]", v.pcap, len(frame))
	}
	c.template, c.length, c.minLength = frame, len(frame), 0
	return nil
}

// firstFrame returns the bytes captured of the first frame of a pcap or
// pcapng file.
func firstFrame(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("not a capture file: %w", err)
	}
	var src gopacket.PacketDataSource
	if string(magic) == "\x0a\x0d\x0d\x0a" {
		src, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	} else {
		src, err = pcapgo.NewReader(br)
	}
	if err != nil {
		return nil, err
	}
	data, _, err := src.ReadPacketData()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("no frame in the file")
	}
	return data, err
}
