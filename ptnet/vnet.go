package ptnet

import (
	"github.com/valeswitch/vale/ptnet/vhostuser"
	"github.com/valeswitch/vale/vale/frame"
)

// vnetHdrMax is the longest virtio-net header a driver may use.
const vnetHdrMax = frame.VnetHdrLenMrg

// parseVnetHdr reads the header of a frame a driver sent, refusing what it
// did not negotiate (frame.ParseVnetHdr).
func parseVnetHdr(h []byte, features uint64) (frame.Offload, error) {
	return frame.ParseVnetHdr(h, frame.OffloadCaps{
		Csum: features&vhostuser.FeatNetCsum != 0,
		TSO4: features&vhostuser.FeatNetHostTSO4 != 0,
		TSO6: features&vhostuser.FeatNetHostTSO6 != 0,
	})
}
