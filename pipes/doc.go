// Package pipes implements netmap pipes: pairs of ports, NAME{ID (the master
// end) and NAME}ID (the slave end), whose TX rings are the other end's RX
// rings. Frames move between the ends without a copy and without valed:
// valed creates the pair's memory and eventfds and hands them to whoever
// opens an end; from then on the two clients move slot descriptors to each
// other in shared memory.
//
// # How frames move
//
// TX ring i of one end and RX ring i of the other end have the same number
// of slots and pair up slot by slot: slot k of one is slot k of the other,
// and the two start out pointing at the same buffer. As in netmap:
//
//   - the sender's TX sync copies the descriptors of the slots it filled,
//     [hwcur, head), into the same slots of the peer's RX ring (the RX slot
//     borrows the TX slot's buffer), and publishes the peer's RX tail up to
//     the last complete frame, so a frame spread over slots with
//     NS_MOREFRAG is never exposed in part;
//   - the receiver's RX sync gives the slots it released back to the sender
//     (a slot whose buffer the receiver swapped, flagged NS_BUF_CHANGED, is
//     copied back so that the sender's TX slot names the new buffer) and
//     publishes the sender's TX tail one slot behind them.
//
// Each end keeps its consumption points (hwcur) in its own rings' headers,
// so that an end can close and reopen while the other stays.
//
// The two ends share their memory, so each can write anything into it; what
// each end's library guarantees is that this never makes it fault or loop:
// a tail outside the range the protocol allows is ignored and reported as a
// *PeerError, and a slot naming a buffer outside the pool reads as the
// reserved buffer 0 (ports.Ring.Buf).
//
// Wake-ups use the same sleep tickets as VALE ports: an end going to sleep
// publishes a ticket on the rings it waits for, and the peer writes the
// end's eventfd once per ticket after moving slots.
//
// An end has one eventfd per ring pair, shared by all its bindings. Two
// clients that split one end's ring pair (one binds {1/T, the other {1/R)
// can therefore take each other's wake-ups, and one of them then sleeps
// until the next; switch ports give each binding eventfds of its own
// (shm.Binding.NotifyFDs), but a pipe's peer signals directly, so an end's
// eventfds cannot follow its bindings without a message from valed to the
// peer. Bind the whole end, or one ring pair per client (-N).
package pipes
