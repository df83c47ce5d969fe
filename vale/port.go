// Package vale is the switch: VALE's forwarding engine as a learning bridge.
//
// A Switch owns a table of attached ports. Every TX ring of every port has a
// worker goroutine that takes a batch of up to frame.MaxBatch frames from the
// port (Port.Recv), learns source MACs, looks up each destination, groups the
// frames per destination port, copies each group into the destination's RX
// ring (Port.Deliver), and gives the source slots back (Port.Release).
// Broadcast, multicast and unknown unicast frames are flooded to every other
// port; nothing is ever sent back to its source; a destination that has no
// room loses the frames (counted), so a slow receiver never slows a sender.
//
// Port kinds (shared-memory client ports, NICs over AF_XDP, TAP host ports,
// vhost-user) implement Port in their own packages; the switch depends only
// on the interface.
package vale

import (
	"time"

	"github.com/valeswitch/vale/vale/frame"
	"github.com/valeswitch/vale/vale/wire"
)

// Port is a port as the switch sees it. The switch calls Recv and Release
// from one worker goroutine per TX ring, and Deliver from the workers of
// other ports, possibly concurrently for the same RX ring: Deliver must
// serialise access to each ring itself.
type Port interface {
	// Name returns the port's name, e.g. "vale0:a".
	Name() string
	// Describe returns what vale-ctl shows about the port besides the
	// switch's counters. Ring counts must not change while attached.
	Describe() wire.Desc
	// Recv waits until TX ring r has frames for the switch and appends them
	// to b. The frames stay valid until Release. It returns
	// ports.ErrStopped after Stop, and a *ports.RingError when the port
	// found (and reset) a broken ring; the switch counts and logs such
	// errors and calls Recv again.
	Recv(r int, b *frame.Batch) error
	// Release hands the first n frames of the last Recv on ring r back to
	// the port (n is at most len(b.Frames)). The frames after them were not
	// taken: a lossless destination had no room for them. The port keeps
	// them, and the next Recv returns them first, in order, before any
	// newer frame.
	Release(r int, b *frame.Batch, n int)
	// Deliver copies the frames b.Frames[which[i]], in order, into RX ring
	// r until one does not fit, and wakes the receiver if it sleeps. It
	// returns how many frames it took and their bytes; the switch counts the
	// rest as dropped for lack of room. An error means the ring was found
	// broken (and reset), and nothing was delivered.
	Deliver(r int, b *frame.Batch, which []uint16) (frames, bytes int, err error)
	// Stop makes pending and future Recv calls return ports.ErrStopped.
	Stop()
	// Free releases what the port holds (memory, sockets, descriptors,
	// devices it owns). The switch never calls it: the port's owner does,
	// once, after Detach returned (so no worker uses the port any more),
	// or instead of attaching it. It is safe after Stop or without it.
	Free() error
}

// RoomPort is implemented by ports that can be lossless destinations
// (ModeLossless): they tell how many frames fit, and wait for room. The
// switch calls Room for RX ring r holding its own lock of the ring, so
// that no other delivery takes the room between Room and Deliver.
type RoomPort interface {
	// Room returns how many of the frames b.Frames[which[i]], in order,
	// RX ring r can take now (Deliver would take at least that many).
	Room(r int, b *frame.Batch, which []uint16) int
	// WaitRoom returns when RX ring r may have room (its reader released
	// something), or at deadline, whichever is first; it may return
	// earlier. It must not wait for longer than the deadline.
	WaitRoom(r int, deadline time.Time)
}

// OffloadPort is implemented by ports that take frames with work left
// pending (frame.Frame.Offload: partial checksums, unsegmented TCP) as
// they are, such as a vhost-user guest that negotiated the offloads. The
// switch completes such frames in software for every other port (netmap's
// VALE does the same), so that no port gets a frame it cannot use.
type OffloadPort interface {
	// Offloads returns what the port takes now; it may change as a
	// frontend (re)negotiates, and is asked once per delivery.
	Offloads() frame.OffloadCaps
}
