// Package ptnet is vale's passthrough shim for virtual machines: a
// vhost-user backend that makes a VALE switch port of a virtio-net device,
// as netmap's ptnet makes one of a guest's rings. QEMU guests
// (-netdev vhost-user) and DPDK's virtio-user apps connect to it; valed
// serves their virtqueues directly.
//
// The protocol is the one of QEMU's docs/interop/vhost-user.rst:
// feature and protocol-feature negotiation (MQ, REPLY_ACK), owner, memory
// table (regions mapped from the frontend's descriptors, re-set at run
// time), and per-ring number, addresses, base, kick, call, error and
// enable. The device is virtio-net over split or packed virtqueues
// (VIRTIO_F_RING_PACKED) with VIRTIO_F_VERSION_1, VIRTIO_F_IN_ORDER (it
// uses buffers in the order they came, whatever the driver chose),
// mergeable receive buffers, event-index notification suppression,
// multiqueue, and the virtio-net header's offloads: frames a
// guest sends with a partial checksum or as a TCP segment of up to 64 KiB
// enter the switch as they are (frame.Offload), reach a guest that
// negotiated the same offloads as they are, and are completed in software
// by the switch for every other port.
//
// Nothing the frontend sends is trusted: messages are decoded into fixed
// types with exact sizes and descriptor counts; every guest address is
// translated through the memory table and bounds-checked; descriptor
// chains that loop, exceed the ring, point outside the guest's memory or
// have the wrong direction stop their queue (logged, and signalled on the
// ring's error eventfd); a frontend that disappears leaves the port
// waiting for the next one.
package ptnet
