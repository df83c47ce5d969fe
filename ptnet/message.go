package ptnet

import (
	"encoding/binary"
	"fmt"
)

// Front-end requests (vhost-user.rst, "Front-end message types").
const (
	reqGetFeatures         = 1
	reqSetFeatures         = 2
	reqSetOwner            = 3
	reqResetOwner          = 4
	reqSetMemTable         = 5
	reqSetLogBase          = 6
	reqSetLogFD            = 7
	reqSetVringNum         = 8
	reqSetVringAddr        = 9
	reqSetVringBase        = 10
	reqGetVringBase        = 11
	reqSetVringKick        = 12
	reqSetVringCall        = 13
	reqSetVringErr         = 14
	reqGetProtocolFeatures = 15
	reqSetProtocolFeatures = 16
	reqGetQueueNum         = 17
	reqSetVringEnable      = 18
	reqSendRARP            = 19
	reqNetSetMTU           = 20
	reqGetConfig           = 24
	reqSetConfig           = 25
	reqResetDevice         = 34
	reqGetMaxMemSlots      = 36
	reqSetStatus           = 39
	reqGetStatus           = 40
)

var requestNames = map[uint32]string{
	reqGetFeatures: "GET_FEATURES", reqSetFeatures: "SET_FEATURES", reqSetOwner: "SET_OWNER",
	reqResetOwner: "RESET_OWNER", reqSetMemTable: "SET_MEM_TABLE", reqSetLogBase: "SET_LOG_BASE",
	reqSetLogFD: "SET_LOG_FD", reqSetVringNum: "SET_VRING_NUM", reqSetVringAddr: "SET_VRING_ADDR",
	reqSetVringBase: "SET_VRING_BASE", reqGetVringBase: "GET_VRING_BASE", reqSetVringKick: "SET_VRING_KICK",
	reqSetVringCall: "SET_VRING_CALL", reqSetVringErr: "SET_VRING_ERR",
	reqGetProtocolFeatures: "GET_PROTOCOL_FEATURES", reqSetProtocolFeatures: "SET_PROTOCOL_FEATURES",
	reqGetQueueNum: "GET_QUEUE_NUM", reqSetVringEnable: "SET_VRING_ENABLE", reqSendRARP: "SEND_RARP",
	reqNetSetMTU: "NET_SET_MTU", reqGetConfig: "GET_CONFIG", reqSetConfig: "SET_CONFIG",
	reqResetDevice: "RESET_DEVICE", reqGetMaxMemSlots: "GET_MAX_MEM_SLOTS",
	reqSetStatus: "SET_STATUS", reqGetStatus: "GET_STATUS",
}

func requestName(r uint32) string {
	if n, ok := requestNames[r]; ok {
		return n
	}
	return fmt.Sprintf("request %d", r)
}

// Header flags.
const (
	flagVersion   = 0x1 // the only version there is, in bits 0-1
	flagReply     = 1 << 2
	flagNeedReply = 1 << 3
)

// headerSize is the size of a message header; maxPayload bounds the
// payload a message may carry (the largest real one, a memory table, is
// 264 bytes; a config space is at most 256 plus 12).
const (
	headerSize = 12
	maxPayload = 4096
)

// Feature bits: virtio-net (virtio 1.x, 5.1.3), the transport, and
// vhost-user's own.
const (
	featNetCsum      = 1 << 0  // VIRTIO_NET_F_CSUM: the device takes partial checksums
	featNetGuestCsum = 1 << 1  // VIRTIO_NET_F_GUEST_CSUM: the driver takes partial checksums
	featNetGuestTSO4 = 1 << 7  // VIRTIO_NET_F_GUEST_TSO4
	featNetGuestTSO6 = 1 << 8  // VIRTIO_NET_F_GUEST_TSO6
	featNetGuestECN  = 1 << 9  // VIRTIO_NET_F_GUEST_ECN
	featNetHostTSO4  = 1 << 11 // VIRTIO_NET_F_HOST_TSO4
	featNetHostTSO6  = 1 << 12 // VIRTIO_NET_F_HOST_TSO6
	featNetHostECN   = 1 << 13 // VIRTIO_NET_F_HOST_ECN
	featNetMrgRxbuf  = 1 << 15 // VIRTIO_NET_F_MRG_RXBUF
	featNetMQ        = 1 << 22 // VIRTIO_NET_F_MQ
	featLogAll       = 1 << 26 // VHOST_F_LOG_ALL
	featEventIdx     = 1 << 29 // VIRTIO_RING_F_EVENT_IDX
	featProtocol     = 1 << 30 // VHOST_USER_F_PROTOCOL_FEATURES
	featVersion1     = 1 << 32 // VIRTIO_F_VERSION_1
)

// Protocol feature bits.
const (
	protoMQ       = 1 << 0
	protoReplyAck = 1 << 3
)

// backendFeatures are the features valed offers.
const backendFeatures = featNetCsum | featNetGuestCsum | featNetGuestTSO4 | featNetGuestTSO6 | featNetGuestECN |
	featNetHostTSO4 | featNetHostTSO6 | featNetHostECN | featNetMrgRxbuf | featNetMQ |
	featEventIdx | featProtocol | featVersion1

// backendProtocolFeatures are the protocol features valed offers.
const backendProtocolFeatures = protoMQ | protoReplyAck

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

// maxRegions is the most regions SET_MEM_TABLE carries
// (VHOST_MEMORY_BASELINE_NREGIONS).
const maxRegions = 8

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
	if n == 0 || n > maxRegions {
		return nil, fmt.Errorf("%s: %d regions (want 1..%d)", requestName(m.request), n, maxRegions)
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

func (m *message) sizeError(want int) error {
	return fmt.Errorf("%s: payload of %d bytes, want %d", requestName(m.request), len(m.payload), want)
}

// fdsWanted returns how many descriptors a request must carry, and
// whether any count is wrong: a message with descriptors it should not
// have is refused (the descriptors closed), as DPDK's validate_msg_fds.
func (m *message) fdsWanted() (int, error) {
	switch m.request {
	case reqSetMemTable:
		if len(m.payload) < 4 {
			return 0, m.sizeError(8)
		}
		return int(binary.LittleEndian.Uint32(m.payload)), nil
	case reqSetVringKick, reqSetVringCall, reqSetVringErr:
		v, err := m.u64()
		if err != nil {
			return 0, err
		}
		if v&0x100 != 0 { // VHOST_USER_VRING_NOFD_MASK
			return 0, nil
		}
		return 1, nil
	}
	return 0, nil
}

// encodeReply builds the reply to request with payload p.
func encodeReply(request uint32, p []byte) []byte {
	b := make([]byte, headerSize+len(p))
	binary.LittleEndian.PutUint32(b, request)
	binary.LittleEndian.PutUint32(b[4:], flagVersion|flagReply)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(p)))
	copy(b[headerSize:], p)
	return b
}

func u64Payload(v uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, v)
	return b
}

func statePayload(s vringState) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b, s.index)
	binary.LittleEndian.PutUint32(b[4:], s.num)
	return b
}

// parseHeader decodes a message header.
func parseHeader(b []byte) (request, flags, size uint32, err error) {
	if len(b) != headerSize {
		return 0, 0, 0, fmt.Errorf("short header: %d bytes", len(b))
	}
	le := binary.LittleEndian
	request, flags, size = le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:])
	if flags&3 != flagVersion {
		return 0, 0, 0, fmt.Errorf("%s: protocol version %d, want 1", requestName(request), flags&3)
	}
	if flags&flagReply != 0 {
		return 0, 0, 0, fmt.Errorf("%s: a reply where a request belongs", requestName(request))
	}
	if size > maxPayload {
		return 0, 0, 0, fmt.Errorf("%s: payload of %d bytes (at most %d)", requestName(request), size, maxPayload)
	}
	return request, flags, size, nil
}
