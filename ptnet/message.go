package ptnet

import (
	"encoding/binary"
	"fmt"

	"github.com/valeswitch/vale/ptnet/vhostuser"
)

// backendFeatures are the features valed offers.
const backendFeatures = vhostuser.FeatNetCsum | vhostuser.FeatNetGuestCsum | vhostuser.FeatNetGuestTSO4 | vhostuser.FeatNetGuestTSO6 | vhostuser.FeatNetGuestECN |
	vhostuser.FeatNetHostTSO4 | vhostuser.FeatNetHostTSO6 | vhostuser.FeatNetHostECN | vhostuser.FeatNetMrgRxbuf | vhostuser.FeatNetMQ |
	vhostuser.FeatEventIdx | vhostuser.FeatProtocol | vhostuser.FeatVersion1 | vhostuser.FeatRingPacked | vhostuser.FeatInOrder |
	vhostuser.FeatLogAll

// backendProtocolFeatures are the protocol features valed offers.
const backendProtocolFeatures = vhostuser.ProtoMQ | vhostuser.ProtoReplyAck | vhostuser.ProtoLogShmfd | vhostuser.ProtoRARP

// message is one vhost-user message as it came off the socket.
type message struct {
	request uint32
	flags   uint32
	payload []byte
	fds     []int
}

// vringState is the payload of SET_VRING_NUM/BASE/ENABLE and GET_VRING_BASE.
type vringState struct {
	index, num uint32
}

// vringAddr is the payload of SET_VRING_ADDR: frontend (user) addresses.
type vringAddr struct {
	index, flags            uint32
	desc, used, avail, logA uint64
}

// memRegion is one region of a memory table.
type memRegion struct {
	guestAddr, size, userAddr, mmapOffset uint64
}

// Decoding, with exact sizes: a payload of another size is an error.

func (m *message) u64() (uint64, error) {
	if len(m.payload) != 8 {
		return 0, m.sizeError(8)
	}
	return binary.LittleEndian.Uint64(m.payload), nil
}

func (m *message) state() (vringState, error) {
	if len(m.payload) != 8 {
		return vringState{}, m.sizeError(8)
	}
	return vringState{binary.LittleEndian.Uint32(m.payload), binary.LittleEndian.Uint32(m.payload[4:])}, nil
}

func (m *message) addr() (vringAddr, error) {
	if len(m.payload) != 40 {
		return vringAddr{}, m.sizeError(40)
	}
	p := m.payload
	le := binary.LittleEndian
	return vringAddr{le.Uint32(p), le.Uint32(p[4:]), le.Uint64(p[8:]), le.Uint64(p[16:]), le.Uint64(p[24:]), le.Uint64(p[32:])}, nil
}

func (m *message) memTable() ([]memRegion, error) {
	p := m.payload
	if len(p) < 8 {
		return nil, m.sizeError(8)
	}
	n := binary.LittleEndian.Uint32(p)
	if n == 0 || n > vhostuser.MaxRegions {
		return nil, fmt.Errorf("%s: %d regions (want 1..%d)", vhostuser.RequestName(m.request), n, vhostuser.MaxRegions)
	}
	if want := 8 + 32*int(n); len(p) != want {
		return nil, m.sizeError(want)
	}
	le := binary.LittleEndian
	regions := make([]memRegion, n)
	for i := range regions {
		r := p[8+32*i:]
		regions[i] = memRegion{le.Uint64(r), le.Uint64(r[8:]), le.Uint64(r[16:]), le.Uint64(r[24:])}
	}
	return regions, nil
}

// logBase decodes a SET_LOG_BASE payload: the log's size and its offset
// in the descriptor.
func (m *message) logBase() (size, offset uint64, err error) {
	if len(m.payload) != 16 {
		return 0, 0, m.sizeError(16)
	}
	return binary.LittleEndian.Uint64(m.payload), binary.LittleEndian.Uint64(m.payload[8:]), nil
}

func (m *message) sizeError(want int) error {
	return fmt.Errorf("%s: payload of %d bytes, want %d", vhostuser.RequestName(m.request), len(m.payload), want)
}

// fdsWanted returns how many descriptors a request must carry, and
// whether any count is wrong: a message with descriptors it should not
// have is refused (the descriptors closed), as DPDK's validate_msg_fds.
func (m *message) fdsWanted() (int, error) {
	switch m.request {
	case vhostuser.ReqSetMemTable:
		if len(m.payload) < 4 {
			return 0, m.sizeError(8)
		}
		return int(binary.LittleEndian.Uint32(m.payload)), nil
	case vhostuser.ReqSetLogBase, vhostuser.ReqSetLogFD:
		return 1, nil
	case vhostuser.ReqSetVringKick, vhostuser.ReqSetVringCall, vhostuser.ReqSetVringErr:
		v, err := m.u64()
		if err != nil {
			return 0, err
		}
		if v&vhostuser.NoFDMask != 0 {
			return 0, nil
		}
		return 1, nil
	}
	return 0, nil
}

// encodeReply builds the reply to request with payload p.
func encodeReply(request uint32, p []byte) []byte {
	return append(vhostuser.Header(request, vhostuser.FlagVersion|vhostuser.FlagReply, uint32(len(p))), p...)
}

// parseHeader decodes a message header.
func parseHeader(b []byte) (request, flags, size uint32, err error) {
	if len(b) != vhostuser.HeaderSize {
		return 0, 0, 0, fmt.Errorf("short header: %d bytes", len(b))
	}
	le := binary.LittleEndian
	request, flags, size = le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:])
	if flags&3 != vhostuser.FlagVersion {
		return 0, 0, 0, fmt.Errorf("%s: protocol version %d, want 1", vhostuser.RequestName(request), flags&3)
	}
	if flags&vhostuser.FlagReply != 0 {
		return 0, 0, 0, fmt.Errorf("%s: a reply where a request belongs", vhostuser.RequestName(request))
	}
	if size > vhostuser.MaxPayload {
		return 0, 0, 0, fmt.Errorf("%s: payload of %d bytes (at most %d)", vhostuser.RequestName(request), size, vhostuser.MaxPayload)
	}
	return request, flags, size, nil
}
