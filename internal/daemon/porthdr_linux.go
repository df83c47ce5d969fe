package daemon

import (
	"fmt"

	"github.com/valeswitch/vale/monitor"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/vale/wire"
)

// vnetHdrPort is a port whose frames may carry a virtio-net header.
type vnetHdrPort interface {
	SetVnetHdrLen(n int) error
	VnetHdrLen() int
}

// portHdr serves PORT_HDR_GET and PORT_HDR_SET: on a VALE port applications
// open, for whoever may open it, as netmap allows any user of the port.
func (d *Daemon) portHdr(s *session, r wire.PortHdrRequest) (wire.PortHdrReply, error) {
	n, err := portname.ParseName(monitor.WithoutID(r.Name))
	if err != nil {
		return wire.PortHdrReply{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.switchPortLocked(&n)
	if ps == nil {
		return wire.PortHdrReply{}, fmt.Errorf("%s: no such port", r.Name)
	}
	hp, ok := ps.port.(vnetHdrPort)
	if n.IsMonitor() {
		return monitorHdr(hp, &n, r)
	}
	if !ok && (!r.Set || r.Len == 0) {
		return wire.PortHdrReply{}, nil // no header, as asked or read
	}
	if !ok {
		return wire.PortHdrReply{}, fmt.Errorf("%s is %s: its frames carry no virtio-net header (not supported)", ps.name(), ps.port.what())
	}
	if err := s.mayUse(ps.name(), ps.uid); err != nil {
		return wire.PortHdrReply{}, err
	}
	if r.Set {
		if err := hp.SetVnetHdrLen(r.Len); err != nil {
			return wire.PortHdrReply{}, err
		}
		d.log.Info("virtio-net header length set", "port", ps.name(), "len", r.Len)
	}
	return wire.PortHdrReply{Len: hp.VnetHdrLen()}, nil
}

// monitorHdr answers PORT_HDR_GET and _SET on a monitor's name (hp: the
// watched port, nil if its frames carry no header): a copy monitor's
// frames carry no header (the switch copies frames, not slots); a
// zero-copy monitor's slots are the port's, with the port's header. A
// monitor cannot change the header of the port it watches.
func monitorHdr(hp vnetHdrPort, n *portname.Name, r wire.PortHdrRequest) (wire.PortHdrReply, error) {
	hdr := 0
	if hp != nil && n.Flags&portname.FlagZCopyMon != 0 {
		hdr = hp.VnetHdrLen()
	}
	if r.Set && r.Len != hdr {
		return wire.PortHdrReply{}, fmt.Errorf("%s: a monitor cannot change the virtio-net header of the port it watches", r.Name)
	}
	return wire.PortHdrReply{Len: hdr}, nil
}
