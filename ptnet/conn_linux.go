package ptnet

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/valeswitch/vale/ptnet/vhostuser"
	"golang.org/x/sys/unix"
)

// maxFDs is the most descriptors a message may carry (a memory table of
// maxRegions regions).
const maxFDs = vhostuser.MaxRegions

// readMessage reads one message: the header with its descriptors, then
// exactly the payload the header announces. Descriptors beyond maxFDs or
// a truncated control message are an error (and the descriptors that did
// arrive are closed).
func readMessage(c *net.UnixConn) (*message, error) {
	hdr := make([]byte, vhostuser.HeaderSize)
	oob := make([]byte, unix.CmsgSpace(4*(maxFDs+4)))
	n, oobn, flags, _, err := c.ReadMsgUnix(hdr, oob)
	fds, ferr := parseFDs(oob[:oobn])
	if err != nil {
		closeFDs(fds)
		return nil, err
	}
	if n == 0 {
		closeFDs(fds)
		return nil, io.EOF
	}
	if ferr != nil || flags&unix.MSG_CTRUNC != 0 {
		closeFDs(fds)
		return nil, fmt.Errorf("message with a truncated or malformed descriptor list: %v", ferr)
	}
	if n < vhostuser.HeaderSize {
		if _, err := io.ReadFull(c, hdr[n:]); err != nil {
			closeFDs(fds)
			return nil, fmt.Errorf("read message header: %w", err)
		}
	}
	request, mflags, size, err := parseHeader(hdr)
	if err != nil {
		closeFDs(fds)
		return nil, err
	}
	m := &message{request: request, flags: mflags, fds: fds, payload: make([]byte, size)}
	if _, err := io.ReadFull(c, m.payload); err != nil {
		closeFDs(fds)
		return nil, fmt.Errorf("%s: read payload: %w", vhostuser.RequestName(request), err)
	}
	want, err := m.fdsWanted()
	if err == nil && want != len(fds) {
		err = fmt.Errorf("%s: %d descriptors, want %d", vhostuser.RequestName(request), len(fds), want)
	}
	if err != nil {
		closeFDs(fds)
		return nil, err
	}
	return m, nil
}

func parseFDs(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	var errs []error
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fds = append(fds, f...)
	}
	if len(fds) > maxFDs {
		return fds, fmt.Errorf("%d descriptors (at most %d)", len(fds), maxFDs)
	}
	return fds, errors.Join(errs...)
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
