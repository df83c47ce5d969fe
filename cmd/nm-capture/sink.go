package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// File formats.
const (
	fmtPcap   = "pcap"
	fmtPcapNG = "pcapng"
)

// maxSnap is the snap length written in file headers when frames are kept
// whole (libpcap's MAXIMUM_SNAPLEN).
const maxSnap = 262144

// stdoutName is the file name that means standard output.
const stdoutName = "-"

// sink writes frames to a capture file, rotating it as tcpdump -C does:
// before writing a frame, if the current file is larger than the limit, it
// is closed and the next one (FILE1, FILE2, ...) opened. A stream (standard
// output, a pipe or a socket, such as Wireshark's fifo) is flushed after
// every batch, and its reader going away ends the capture.
type sink struct {
	base    string
	format  string
	snaplen int   // 0: whole frames
	limit   int64 // rotate above this many bytes; 0 = never
	ifname  string

	files  []string
	f      *os.File
	stream bool // f is standard output, a pipe or a socket
	bw     *bufio.Writer
	pw     *pcapgo.Writer
	ngw    *pcapgo.NgWriter
	size   int64 // bytes of the current file, buffered ones included
}

// open creates the next file of the sink.
func (s *sink) open() error {
	name := s.base
	if n := len(s.files); n > 0 {
		name += strconv.Itoa(n)
	}
	f, err := create(name)
	if err != nil {
		return err
	}
	s.f, s.files, s.stream = f, append(s.files, name), name == stdoutName || isStream(f)
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
	if err == nil && s.stream {
		err = s.bw.Flush()
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// create opens a capture file for writing: "-" is standard output, a fifo
// (Wireshark's) is opened write-only, so that its reader closing it shows,
// anything else is created or truncated.
func create(name string) (*os.File, error) {
	if name == stdoutName {
		return os.Stdout, nil
	}
	if st, err := os.Stat(name); err == nil && st.Mode()&os.ModeNamedPipe != 0 {
		return os.OpenFile(name, os.O_WRONLY, 0)
	}
	return os.Create(name)
}

// isStream reports whether f is a pipe, a fifo or a socket: a reader waits
// at the other end for each frame.
func isStream(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0
}

// flush writes what is buffered if the sink is a stream, so that its
// reader sees each batch as it comes.
func (s *sink) flush() error {
	if !s.stream || s.f == nil {
		return nil
	}
	var err error
	if s.ngw != nil {
		err = s.ngw.Flush()
	}
	if e := s.bw.Flush(); err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.files[len(s.files)-1], err)
	}
	return nil
}

// readerGone reports whether the sink is a pipe whose reader closed it
// (tcpdump -c done, Wireshark stopped), without writing to it.
func (s *sink) readerGone() bool {
	if !s.stream || s.f == nil {
		return false
	}
	rc, err := s.f.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd)}}
		n, err := unix.Poll(pfd, 0)
		gone = err == nil && n > 0 && pfd[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0
	})
	return gone
}

// closedByReader reports whether err is a write to a stream whose reader
// went away: the end of the capture, not a failure.
func (s *sink) closedByReader(err error) bool {
	return s.stream && errors.Is(err, syscall.EPIPE)
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
	if s.closedByReader(err) {
		return nil
	}
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
