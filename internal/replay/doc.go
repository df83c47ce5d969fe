// Package replay is the logic of nmreplay, kept apart from ports and clocks
// so that it can be tested alone: the grammar of the -B (bandwidth), -D
// (delay) and -L (loss) options, the transmit schedule they produce, and a
// reader of pcap and pcapng traces.
//
// # Link model
//
// As netmap's nmreplay, the schedule emulates one link. For each packet, in
// trace order:
//
//  1. loss: the packet is dropped with the probability -L gives (a lost
//     packet does not occupy the link);
//  2. bandwidth: its transmit time tt is 8*len/bps (constant), 8*(len+24)/bps
//     (ether: preamble, inter-frame gap and CRC), the gap to the previous
//     packet of the trace divided by the speedup (real), or 0 (no -B);
//  3. the queue exit time advances by tt: qout += tt;
//  4. delay: a delay d is drawn from the -D distribution;
//  5. the packet leaves at t = max(qout + d, t_prev + tt), so packets never
//     reorder and stay spaced by at least their transmit time.
//
// Times are nanoseconds from the start of the replay. A packet's departure
// time is the time its last bit leaves the emulated link, so the first packet
// of a trace replayed at a constant rate leaves after its own transmit time.
// With real, the gaps of lost packets are added to the next packet's gap, so
// that the surviving packets keep their place in the trace's timeline.
package replay
