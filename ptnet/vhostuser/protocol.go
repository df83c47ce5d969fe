// Package vhostuser holds the vhost-user protocol and the split and
// packed virtqueue layouts as the specifications give them (vhost-user.rst, virtio 1.x):
// request numbers, header flags, feature bits, payload encodings, ring
// sizes and descriptor flags, and the atomic access to 16- and 32-bit
// ring fields in shared memory that Go lacks. The backend (package ptnet)
// and the test frontends (ptnettest, the hostile fuzzer) share it.
package vhostuser

import (
	"encoding/binary"
	"fmt"
)

// Front-end requests (vhost-user.rst, "Front-end message types").
const (
	ReqGetFeatures         = 1
	ReqSetFeatures         = 2
	ReqSetOwner            = 3
	ReqResetOwner          = 4
	ReqSetMemTable         = 5
	ReqSetLogBase          = 6
	ReqSetLogFD            = 7
	ReqSetVringNum         = 8
	ReqSetVringAddr        = 9
	ReqSetVringBase        = 10
	ReqGetVringBase        = 11
	ReqSetVringKick        = 12
	ReqSetVringCall        = 13
	ReqSetVringErr         = 14
	ReqGetProtocolFeatures = 15
	ReqSetProtocolFeatures = 16
	ReqGetQueueNum         = 17
	ReqSetVringEnable      = 18
	ReqSendRARP            = 19
	ReqNetSetMTU           = 20
	ReqGetConfig           = 24
	ReqSetConfig           = 25
	ReqResetDevice         = 34
	ReqGetMaxMemSlots      = 36
	ReqSetStatus           = 39
	ReqGetStatus           = 40
)

var requestNames = map[uint32]string{
	ReqGetFeatures: "GET_FEATURES", ReqSetFeatures: "SET_FEATURES", ReqSetOwner: "SET_OWNER",
	ReqResetOwner: "RESET_OWNER", ReqSetMemTable: "SET_MEM_TABLE", ReqSetLogBase: "SET_LOG_BASE",
	ReqSetLogFD: "SET_LOG_FD", ReqSetVringNum: "SET_VRING_NUM", ReqSetVringAddr: "SET_VRING_ADDR",
	ReqSetVringBase: "SET_VRING_BASE", ReqGetVringBase: "GET_VRING_BASE", ReqSetVringKick: "SET_VRING_KICK",
	ReqSetVringCall: "SET_VRING_CALL", ReqSetVringErr: "SET_VRING_ERR",
	ReqGetProtocolFeatures: "GET_PROTOCOL_FEATURES", ReqSetProtocolFeatures: "SET_PROTOCOL_FEATURES",
	ReqGetQueueNum: "GET_QUEUE_NUM", ReqSetVringEnable: "SET_VRING_ENABLE", ReqSendRARP: "SEND_RARP",
	ReqNetSetMTU: "NET_SET_MTU", ReqGetConfig: "GET_CONFIG", ReqSetConfig: "SET_CONFIG",
	ReqResetDevice: "RESET_DEVICE", ReqGetMaxMemSlots: "GET_MAX_MEM_SLOTS",
	ReqSetStatus: "SET_STATUS", ReqGetStatus: "GET_STATUS",
}

// RequestName names a request as vhost-user.rst does.
func RequestName(r uint32) string {
	if n, ok := requestNames[r]; ok {
		return n
	}
	return fmt.Sprintf("request %d", r)
}

// Header flags.
const (
	FlagVersion   = 0x1 // the only version there is, in bits 0-1
	FlagReply     = 1 << 2
	FlagNeedReply = 1 << 3
)

// HeaderSize is the size of a message header; MaxPayload bounds the
// payload a message may carry (the largest real one, a memory table, is
// 264 bytes; a config space is at most 256 plus 12).
const (
	HeaderSize = 12
	MaxPayload = 4096
)

// Feature bits: virtio-net (virtio 1.x, 5.1.3), the transport, and
// vhost-user's own.
const (
	FeatNetCsum      = 1 << 0  // VIRTIO_NET_F_CSUM: the device takes partial checksums
	FeatNetGuestCsum = 1 << 1  // VIRTIO_NET_F_GUEST_CSUM: the driver takes partial checksums
	FeatNetGuestTSO4 = 1 << 7  // VIRTIO_NET_F_GUEST_TSO4
	FeatNetGuestTSO6 = 1 << 8  // VIRTIO_NET_F_GUEST_TSO6
	FeatNetGuestECN  = 1 << 9  // VIRTIO_NET_F_GUEST_ECN
	FeatNetHostTSO4  = 1 << 11 // VIRTIO_NET_F_HOST_TSO4
	FeatNetHostTSO6  = 1 << 12 // VIRTIO_NET_F_HOST_TSO6
	FeatNetHostECN   = 1 << 13 // VIRTIO_NET_F_HOST_ECN
	FeatNetMrgRxbuf  = 1 << 15 // VIRTIO_NET_F_MRG_RXBUF
	FeatNetMQ        = 1 << 22 // VIRTIO_NET_F_MQ
	FeatLogAll       = 1 << 26 // VHOST_F_LOG_ALL
	FeatEventIdx     = 1 << 29 // VIRTIO_RING_F_EVENT_IDX
	FeatProtocol     = 1 << 30 // VHOST_USER_F_PROTOCOL_FEATURES
	FeatVersion1     = 1 << 32 // VIRTIO_F_VERSION_1
	FeatRingPacked   = 1 << 34 // VIRTIO_F_RING_PACKED
	FeatInOrder      = 1 << 35 // VIRTIO_F_IN_ORDER
)

// Protocol feature bits.
const (
	ProtoMQ       = 1 << 0
	ProtoLogShmfd = 1 << 1 // VHOST_USER_PROTOCOL_F_LOG_SHMFD: the dirty log is shared memory
	ProtoRARP     = 1 << 2 // VHOST_USER_PROTOCOL_F_RARP: SEND_RARP after a migration
	ProtoReplyAck = 1 << 3
)

// VringFLog in SET_VRING_ADDR's flags asks for writes to the used ring to
// be logged (VHOST_VRING_F_LOG).
const VringFLog = 1 << 0

// LogPage is the guest memory one bit of the dirty log stands for
// (VHOST_LOG_PAGE).
const LogPage = 4096

// MaxRegions is the most regions SET_MEM_TABLE carries
// (VHOST_MEMORY_BASELINE_NREGIONS).
const MaxRegions = 8

// NoFDMask in a SET_VRING_KICK/CALL/ERR payload says no descriptor comes
// (VHOST_USER_VRING_NOFD_MASK).
const NoFDMask = 0x100

// Header encodes a message header.
func Header(request, flags, size uint32) []byte {
	b := make([]byte, HeaderSize)
	binary.LittleEndian.PutUint32(b, request)
	binary.LittleEndian.PutUint32(b[4:], flags)
	binary.LittleEndian.PutUint32(b[8:], size)
	return b
}

// U64 encodes a u64 payload.
func U64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// State encodes a vring state payload (SET_VRING_NUM, _BASE, _ENABLE).
func State(index, num uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, index)
	return binary.LittleEndian.AppendUint32(b, num)
}

// Addr encodes a SET_VRING_ADDR payload (no logging, no flags).
func Addr(index uint32, desc, used, avail uint64) []byte {
	b := make([]byte, 40)
	le := binary.LittleEndian
	le.PutUint32(b, index)
	le.PutUint64(b[8:], desc)
	le.PutUint64(b[16:], used)
	le.PutUint64(b[24:], avail)
	return b
}

// AddrLogged encodes a SET_VRING_ADDR payload that asks for the used ring's
// writes to be logged at guest address logAddr.
func AddrLogged(index uint32, desc, used, avail, logAddr uint64) []byte {
	b := Addr(index, desc, used, avail)
	binary.LittleEndian.PutUint32(b[4:], VringFLog)
	binary.LittleEndian.PutUint64(b[32:], logAddr)
	return b
}

// Log encodes a SET_LOG_BASE payload: the log's size and its offset in the
// descriptor that comes with it.
func Log(size, offset uint64) []byte {
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, size), offset)
}

// Region is one region of a memory table.
type Region struct {
	GuestAddr, Size, UserAddr, MmapOffset uint64
}

// MemTable encodes a SET_MEM_TABLE payload.
func MemTable(regions ...Region) []byte {
	b := make([]byte, 8+32*len(regions))
	le := binary.LittleEndian
	le.PutUint32(b, uint32(len(regions)))
	for i, r := range regions {
		e := b[8+32*i:]
		le.PutUint64(e, r.GuestAddr)
		le.PutUint64(e[8:], r.Size)
		le.PutUint64(e[16:], r.UserAddr)
		le.PutUint64(e[24:], r.MmapOffset)
	}
	return b
}

// featureNames names the feature bits a listing shows, in this order.
var featureNames = []struct {
	bit  uint64
	name string
}{
	{FeatVersion1, "v1"}, {FeatInOrder, "inorder"}, {FeatNetMrgRxbuf, "mrg"}, {FeatEventIdx, "eventidx"}, {FeatNetMQ, "mq"},
	{FeatNetCsum, "csum"}, {FeatNetGuestCsum, "guest-csum"}, {FeatNetHostTSO4, "tso4"}, {FeatNetHostTSO6, "tso6"},
	{FeatNetHostECN, "ecn"}, {FeatNetGuestTSO4, "guest-tso4"}, {FeatNetGuestTSO6, "guest-tso6"},
	{FeatNetGuestECN, "guest-ecn"}, {FeatLogAll, "log-all"}, {FeatProtocol, "protocol"},
}

// FeatureNames names the negotiated features: the ring kind first
// ("split" or "packed"), then each feature set, short names as
// "vale-ctl -l" shows them (e.g. split,v1,inorder,mrg,eventidx).
func FeatureNames(features uint64) []string {
	names := []string{"split"}
	if features&FeatRingPacked != 0 {
		names[0] = "packed"
	}
	for _, f := range featureNames {
		if features&f.bit != 0 {
			names = append(names, f.name)
		}
	}
	return names
}
