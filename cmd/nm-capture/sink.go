package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// File formats.
const (
	fmtPcap   = "pcap"
	fmtPcapNG = "pcapng"
)

// maxSnap is the snap length written in file headers when frames are kept
// whole (libpcap's MAXIMUM_SNAPLEN).
const maxSnap = 262144

// sink writes frames to a capture file, rotating it as tcpdump -C does:
// before writing a frame, if the current file is larger than the limit, it
// is closed and the next one (FILE1, FILE2, ...) opened.
type sink struct {
	base    string
	format  string
	snaplen int   // 0: whole frames
	limit   int64 // rotate above this many bytes; 0 = never
	ifname  string

	files []string
	f     *os.File
	bw    *bufio.Writer
	pw    *pcapgo.Writer
	ngw   *pcapgo.NgWriter
	size  int64 // bytes of the current file, buffered ones included
}

// open creates the next file of the sink.
func (s *sink) open() error {
	name := s.base
	if n := len(s.files); n > 0 {
		name += strconv.Itoa(n)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	s.f, s.files = f, append(s.files, name)
	s.bw = bufio.NewWriterSize(f, 1<<20)
	snap := uint32(s.snaplen)
	switch s.format {
	case fmtPcapNG:
		c := &counter{w: s.bw}
		s.ngw, err = pcapgo.NewNgWriterInterface(c, pcapgo.NgInterface{
			Name:                s.ifname,
			Description:         "vale port",
			OS:                  "Linux",
			LinkType:            layers.LinkTypeEthernet,
			TimestampResolution: 9,
			SnapLength:          snap, // 0: no limit
		}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "nm-capture (vale)", OS: "Linux"}})
		if err == nil {
			err = s.ngw.Flush()
		}
		s.size = c.n
	default:
		if snap == 0 {
			snap = maxSnap
		}
		s.pw = pcapgo.NewWriterNanos(s.bw)
		err = s.pw.WriteFileHeader(snap, layers.LinkTypeEthernet)
		s.size = 24
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// write appends one frame received at ts (ns since the epoch).
func (s *sink) write(ts int64, frame []byte) error {
	if s.limit > 0 && s.size > s.limit {
		if err := s.close(); err != nil {
			return err
		}
		if err := s.open(); err != nil {
			return err
		}
	}
	data := frame
	if s.snaplen > 0 && len(data) > s.snaplen {
		data = data[:s.snaplen]
	}
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, ts), CaptureLength: len(data), Length: len(frame)}
	var err error
	if s.ngw != nil {
		err = s.ngw.WritePacket(ci, data)
		s.size += 32 + int64(len(data)+3)&^3
	} else {
		err = s.pw.WritePacket(ci, data)
		s.size += 16 + int64(len(data))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.files[len(s.files)-1], err)
	}
	return nil
}

// close flushes and closes the current file.
func (s *sink) close() error {
	if s.f == nil {
		return nil
	}
	var err error
	if s.ngw != nil {
		err = s.ngw.Flush()
	}
	if e := s.bw.Flush(); err == nil {
		err = e
	}
	if e := s.f.Close(); err == nil {
		err = e
	}
	s.f, s.ngw, s.pw = nil, nil, nil
	if err != nil {
		return fmt.Errorf("%s: %w", s.files[len(s.files)-1], err)
	}
	return nil
}

// counter counts the bytes written through it.
type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
