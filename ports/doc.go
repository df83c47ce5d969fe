// Package ports is the netmap-style port ABI of vale and its client library.
//
// A port is a set of TX and RX rings in one shared-memory region (a sealed
// memfd created by valed and mapped by valed and by the application). Slots
// point at fixed-size buffers addressed by index, and the application and the
// switch hand slots to each other through the head/cur/tail indexes exactly
// as in netmap:
//
//   - head and cur are written only by the application, tail only by the
//     switch;
//   - the slots in [head, tail) belong to the application, the others to the
//     switch; one slot always stays empty, so a ring of N slots holds at most
//     N-1 frames;
//   - on a TX ring the application fills slots from head, advances head (and
//     cur) and calls nmport's Port.TxSync; the switch consumes [old head, head) and
//     advances tail as the slots become free again;
//   - on an RX ring the switch fills slots from tail and advances tail; the
//     application reads [head, tail), advances head to release slots and calls
//     Port.RxSync;
//   - cur may run ahead of head (up to tail) to ask Port.Poll to wait until
//     more than cur-head slots are available.
//
// Applications open a port by name with nmport.Open (see [ParseName] for the
// grammar), then move packets by touching rings only. Port.TxSync,
// Port.RxSync and Port.Poll (package nmport) behave like netmap's NIOCTXSYNC, NIOCRXSYNC
// and poll(2). Ring indexes cross the process boundary only through sync/atomic
// operations, once per sync, so a batch of frames costs a handful of atomic
// operations and, when the other side is asleep, one eventfd write.
//
// # Memory layout
//
// All offsets are in bytes, all integers little-endian (the native order of
// every machine vale runs on), and the region starts page aligned.
//
// The interface header sits at offset 0 (vale's description of the
// interface; netmap programs get netmap's struct netmap_if from the C shim):
//
//	off  size  field          meaning
//	  0     4  magic          0x454c4156 ("VALE")
//	  4     4  version        layout version, 2
//	  8     4  flags          NI_PRIV_MEM (1): the region belongs to this port
//	 12     4  tx_rings       number of TX rings
//	 16     4  rx_rings       number of RX rings
//	 20     4  host_tx_rings  0 (VALE ports have no host rings)
//	 24     4  host_rx_rings  0
//	 28     4  bufs_head      0 (each binding's netmap_if holds its own)
//	 32     4  buf_size       bytes per buffer
//	 36     4  num_bufs       buffers in the pool, including the reserved 0 and 1
//	 40     8  buf_ofs        offset of buffer 0 from the start of the region
//	 48     8  mem_size       size of the region
//	 56     4  kind           port, pipe master or slave, zero-copy monitor level
//	 60     4  (reserved)
//	 64    64  name           port name, NUL padded
//	128   8*n  ring_ofs[n]    offset of each ring from the interface header:
//	                          TX rings first, then RX rings
//	  .   8*n  ctl_ofs[n]     offset of each ring's control block from the
//	                          interface header, in the same order
//
// Rings follow, each aligned to 128 bytes. At each ring offset lies exactly
// netmap's struct netmap_ring, a 256-byte header followed by num_slots
// slots of 16 bytes. It belongs to the application, which writes head, cur
// and flags with plain stores and may use sem as scratch space; the switch
// never reads it. The client library copies head and cur from it into the
// control block, and tail and ts back, at sync time, as netmap's kernel
// does:
//
//	  0   8  buf_ofs      offset of buffer 0 from the start of this ring
//	  8   4  num_slots    slots in the ring (2..4096, any number, not only powers of 2)
//	 12   4  nr_buf_size  bytes per buffer
//	 16   2  ringid       ring index within its direction
//	 18   2  dir          0 = TX, 1 = RX
//	 20   4  head         first slot owned by the application
//	 24   4  cur          wake-up point for poll
//	 28   4  tail         first slot owned by the switch, as of the last sync
//	 32   4  flags        ring flags (NR_TIMESTAMP 0x2, NR_FORWARD 0x4)
//	 40  16  ts           struct timeval of the switch's last update, as of the last sync
//	 56   8  offset_mask  0: per-slot buffer offsets are not supported
//	 64   8  buf_align    0
//	128 128  sem          the application's scratch space
//
// The control blocks follow the rings, 256 bytes each: the lines the
// application side (the client library) and the switch side share, outside
// netmap's view, on separate cache lines so that the two sides never write
// to the same line (netmap's CSB split is the model):
//
//	line 0, constant (written by valed before the port is handed out)
//	  0   8  buf_ofs      as in the ring
//	  8   4  num_slots    as in the ring
//	 12   4  nr_buf_size  as in the ring
//	 16   2  ringid       as in the ring
//	 18   2  dir          as in the ring
//	 20   4  num_bufs     buffers in the pool (valid indexes are 2..num_bufs-1)
//	 24   8  offset_mask  0
//	 32   8  buf_align    0
//	 40   4  first_buf    buffer slot 0 got at creation (slot j got first_buf+j)
//	line 1, written only by the application side
//	 64   4  head         head as last published by a sync
//	 68   4  cur          cur as last published by a sync
//	 72   4  flags        ring flags
//	 76   4  app_kick     nonzero while the application sleeps in poll: a ticket
//	                      the switch answers with one eventfd write
//	 80   4  reset_ack    last reset_gen the application has acknowledged
//	line 2, written only by the switch
//	128   4  tail         first slot owned by the switch
//	132   4  sw_kick      nonzero while the switch sleeps on this TX ring: a
//	                      ticket the application answers with one eventfd write
//	136   4  reset_gen    incremented each time the switch resets the ring
//	140   4  reset_head   head and cur the application must resume from
//	144   4  reset_why    reason of the last reset (see [ResetReason])
//	148   4  reset_slot   slot that caused it, when a slot did
//	152   8  ts           CLOCK_REALTIME, ns, of the last switch update
//	160   4  reset_value  offending value (index, length, flags)
//	164   4  hwcur        consumption point, published by pipe ends
//	168   8  dropped      frames the switch side could not put in the ring
//	line 3 (192..255) is reserved.
//
// A slot is netmap's struct netmap_slot:
//
//	0  4  buf_idx  buffer index
//	4  2  len      bytes used in the buffer
//	6  2  flags    NS_* flags
//	8  8  ptr      TX: unused by VALE ports; RX: delivery time (CLOCK_REALTIME, ns)
//
// The buffer pool is page aligned and holds num_bufs buffers of buf_size
// bytes; buffer i starts at buf_ofs + i*buf_size from the region start (or at
// ring buf_ofs + i*buf_size from a ring). Buffers 0 and 1 are reserved and
// never handed out. Slot j of TX ring r initially owns buffer
// 2 + r*tx_slots + j, RX rings follow the TX rings, and the extra buffers
// come last ([ExtraBufs]: valed grants them per binding, chained through
// their first four bytes from the binding's netmap_if bufs_head, and takes
// back whatever chain bufs_head holds at close).
//
// # netmap_if
//
// Between the interface headers and the rings lies the netmap_if area:
// [MaxBindings] slots of 384 bytes, one per binding, each netmap's struct
// netmap_if as valed writes it at open (at the open reply's nif_ofs,
// netmap's nr_offset): the port's name cut to 15 bytes, NETMAP_API, the
// interface's ring counts, bufs_head, one host ring each way, and ring_ofs[]
// relative to the netmap_if, TX, host TX, RX, host RX, with 0 for every
// ring the binding did not bind. valed never reads one back but for
// bufs_head at close. Every region has a memory id (nr_mem_id) distinct
// from the others'.
//
// # Resets
//
// The switch validates everything it reads from the application-written
// line and from the slots before using it. When something is out of range it
// does what netmap's ring reinit does: it drops the batch, restores any slot
// whose buffer index or length is invalid to its initial buffer with length 0,
// publishes reset_head (its last trusted head) with reset_why, reset_slot and
// reset_value, increments reset_gen, and ignores the ring until the
// application writes reset_gen into reset_ack. The client library does that on
// the next sync or poll, which then returns a [*RingError] describing the
// violation.
package ports
