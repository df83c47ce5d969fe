package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/sockfile"
)

// DefaultSocket is where valed listens unless told otherwise.
const DefaultSocket = "/run/vale/valed.sock"

// SocketEnv names the environment variable that overrides DefaultSocket.
const SocketEnv = "VALE_SOCK"

// MaxMessage is the largest message either side sends; MaxRequest the
// largest a client sends (valed's receive buffer per connection).
const (
	MaxMessage = 256 << 10
	MaxRequest = 16 << 10
)

// maxFDs is the largest number of descriptors one message carries.
const maxFDs = 64

// SocketPath returns the control socket to use: flagValue if set, else
// $VALE_SOCK if set, else DefaultSocket.
func SocketPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv(SocketEnv); env != "" {
		return env
	}
	return DefaultSocket
}

// Request is the envelope of every request.
type Request struct {
	Op   string          `json:"op"`
	Body json.RawMessage `json:"body,omitempty"`
}

// Reply is the envelope of every reply.
type Reply struct {
	Error string          `json:"error,omitempty"`
	More  bool            `json:"more,omitempty"` // further replies follow
	Body  json.RawMessage `json:"body,omitempty"`
}

// RemoteError is an error reported by valed.
type RemoteError struct{ Msg string }

// Error returns valed's message.
func (e *RemoteError) Error() string { return e.Msg }

// SendTimeout is how long valed waits for a client to make room for a
// message (a reply or an event). A client that reads nothing for that long
// is dropped: valed never waits on a client longer.
const SendTimeout = 5 * time.Second

// Conn is one control connection.
type Conn struct {
	c       *net.UnixConn
	buf     []byte
	oob     []byte
	timeout time.Duration // of each send; 0 waits as long as it takes
}

// Dial connects to valed's control socket at path.
func Dial(path string) (*Conn, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("connect to valed at %s: %w (is valed running? set -sock or %s)", path, err, SocketEnv)
	}
	return newConn(c, MaxMessage), nil
}

// newConn wraps c; max bounds the messages it receives.
func newConn(c *net.UnixConn, max int) *Conn {
	return &Conn{c: c, buf: make([]byte, max), oob: make([]byte, unix.CmsgSpace(4*maxFDs))}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Unix returns the underlying socket.
func (c *Conn) Unix() *net.UnixConn { return c.c }

// PeerCred returns the credentials of the process at the other end.
func (c *Conn) PeerCred() (*unix.Ucred, error) {
	raw, err := c.c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// Send sends one message with optional descriptors.
func (c *Conn) Send(msg any, fds ...int) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode control message: %w", err)
	}
	if len(b) > MaxMessage {
		return fmt.Errorf("control message of %d bytes exceeds %d", len(b), MaxMessage)
	}
	if len(fds) > maxFDs {
		return fmt.Errorf("control message carries %d descriptors, at most %d", len(fds), maxFDs)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if c.timeout > 0 {
		c.c.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	if _, _, err := c.c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("send control message: %w", err)
	}
	return nil
}

// Recv receives one message into msg and returns the descriptors that came
// with it; the caller owns them. io.EOF means the other side closed.
func (c *Conn) Recv(msg any) ([]int, error) {
	n, oobn, flags, _, err := c.c.ReadMsgUnix(c.buf, c.oob)
	if err != nil {
		return nil, err
	}
	fds, ferr := parseRights(c.oob[:oobn])
	if flags&unix.MSG_CTRUNC != 0 {
		closeAll(fds)
		return nil, errors.New("control message descriptors truncated")
	}
	if ferr != nil {
		closeAll(fds)
		return nil, ferr
	}
	if n == 0 {
		closeAll(fds)
		return nil, errEOF
	}
	if flags&unix.MSG_TRUNC != 0 {
		closeAll(fds)
		return nil, fmt.Errorf("control message longer than %d bytes", len(c.buf))
	}
	if err := json.Unmarshal(c.buf[:n], msg); err != nil {
		closeAll(fds)
		return nil, fmt.Errorf("decode control message: %w", err)
	}
	return fds, nil
}

var errEOF = fmt.Errorf("control connection closed: %w", errEOFSentinel)

// errEOFSentinel is what errors.Is matches for a closed connection.
var errEOFSentinel = errors.New("EOF")

// IsClosed reports whether err means the other side closed the connection.
func IsClosed(err error) bool {
	return errors.Is(err, errEOFSentinel) || errors.Is(err, io.EOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message descriptors: %w", err)
	}
	var fds []int
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("parse control message descriptors: %w", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// CloseFDs closes descriptors received with a message that are not needed.
func CloseFDs(fds []int) { closeAll(fds) }

// Call sends a request and decodes the single reply into reply (which may be
// nil). It returns the descriptors that came with the reply.
func (c *Conn) Call(op string, req, reply any) ([]int, error) {
	if err := c.sendRequest(op, req); err != nil {
		return nil, err
	}
	var r Reply
	fds, err := c.Recv(&r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if r.Error != "" {
		closeAll(fds)
		return nil, &RemoteError{Msg: r.Error}
	}
	if reply != nil && r.Body != nil {
		if err := json.Unmarshal(r.Body, reply); err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("%s: decode reply: %w", op, err)
		}
	}
	return fds, nil
}

// CallStream sends a request and calls each with every reply body until the
// final one.
func (c *Conn) CallStream(op string, req any, each func(body json.RawMessage) error) error {
	if err := c.sendRequest(op, req); err != nil {
		return err
	}
	for {
		var r Reply
		fds, err := c.Recv(&r)
		closeAll(fds)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if r.Error != "" {
			return &RemoteError{Msg: r.Error}
		}
		if r.Body != nil {
			if err := each(r.Body); err != nil {
				return err
			}
		}
		if !r.More {
			return nil
		}
	}
}

func (c *Conn) sendRequest(op string, req any) error {
	var body json.RawMessage
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("%s: encode request: %w", op, err)
		}
		body = b
	}
	err := c.Send(Request{Op: op, Body: body})
	if err != nil && IsClosed(err) {
		// valed may have refused the connection (a user past its limit)
		// and said why before closing it.
		var r Reply
		c.c.SetReadDeadline(time.Now().Add(time.Second))
		if fds, rerr := c.Recv(&r); rerr == nil && r.Error != "" {
			closeAll(fds)
			return &RemoteError{Msg: r.Error}
		}
	}
	return err
}

// ReplyOK sends a successful reply with body and descriptors.
func (c *Conn) ReplyOK(body any, fds ...int) error { return c.reply(body, false, fds) }

// ReplyMore sends one non-final reply of a stream.
func (c *Conn) ReplyMore(body any) error { return c.reply(body, true, nil) }

// ReplyError sends an error reply.
func (c *Conn) ReplyError(err error) error { return c.Send(Reply{Error: err.Error()}) }

// refuseLinger bounds how long Refuse waits for a refused peer to go.
const refuseLinger = time.Second

// Refuse answers the peer's first request with reason and closes the
// connection once the peer has gone, or after refuseLinger. Closing a
// socket with the peer's request still unread would make the peer's next
// read fail with ECONNRESET before it reads the reason; so Refuse stops
// writing (the peer reads the reason, then end of file) and reads what the
// peer sends until it closes.
func (c *Conn) Refuse(reason error) {
	defer c.Close()
	if c.ReplyError(reason) != nil || c.c.CloseWrite() != nil {
		return
	}
	c.c.SetReadDeadline(time.Now().Add(refuseLinger))
	for {
		var discard json.RawMessage
		fds, err := c.Recv(&discard)
		closeAll(fds)
		if err != nil && (IsClosed(err) || errors.Is(err, os.ErrDeadlineExceeded)) {
			return
		}
	}
}

func (c *Conn) reply(body any, more bool, fds []int) error {
	r := Reply{More: more}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode reply: %w", err)
		}
		r.Body = b
	}
	return c.Send(r, fds...)
}

// Listener accepts control connections.
type Listener struct {
	l         *sockfile.Listener
	closeOnce sync.Once
	closeErr  error
}

// Listen creates the control socket at path with permissions mode (see
// package sockfile: no symbolic link is followed, and only a dead socket a
// valed created there, as recorded in stateDir, is replaced).
func Listen(path string, mode os.FileMode, stateDir string) (*Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create control socket directory: %w", err)
	}
	l, err := sockfile.ListenMode("unixpacket", path, stateDir, mode)
	if err != nil {
		return nil, err
	}
	return &Listener{l: l}, nil
}

// Chown gives the socket a group.
func (l *Listener) Chown(gid int) error { return l.l.Chown(gid) }

// Chmod sets the socket's permissions.
func (l *Listener) Chmod(mode os.FileMode) error { return l.l.Chmod(mode) }

// Accept waits for the next connection. Its sends give up after
// SendTimeout.
func (l *Listener) Accept() (*Conn, error) {
	c, err := l.l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	conn := newConn(c, MaxRequest)
	conn.timeout = SendTimeout
	// Clients send valed no descriptors. Without room for them, the
	// kernel drops any that come (the message arrives truncated, and is
	// refused) instead of installing them here, where closing one (a file
	// on a FUSE mount) could wait on whoever serves it.
	conn.oob = nil
	return conn, nil
}

// Close stops listening and removes the socket file.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.l.Close() })
	return l.closeErr
}

// Path returns the socket path.
func (l *Listener) Path() string { return l.l.Path() }
