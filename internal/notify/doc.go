// Package notify is how the two sides of a ring wake each other, and the
// one place in vale that touches the eventfds they share.
//
// # Sleep tickets
//
// A side about to sleep publishes a sleep ticket, a fresh non-zero number,
// in a word of shared memory the other side reads (Tickets.Next), looks at
// the ring once more, and blocks on its eventfd. The other side, after
// publishing an index, reads the word once and signals the eventfd only for
// a ticket it has not answered yet (Answer.Due). A busy pipeline therefore
// makes no system call, and a sleeper gets one signal however many rounds
// pass before it wakes. Go's atomics are sequentially consistent, so "store
// index, load ticket" on one side against "store ticket, load index" on the
// other cannot both miss. Tickets of a new binding start at a random value:
// the other side may still remember a ticket of the binding before.
//
// # Descriptors shared with someone else
//
// An eventfd valed hands to a client, or receives from a vhost-user
// frontend, is one open file description with two holders. The other holder
// may read it (stealing a wake-up meant for itself), fill its counter to
// the maximum, or clear O_NONBLOCK on it, which changes valed's copy too.
// So here:
//
//   - Signal adds one to an eventfd and never blocks: a full counter counts
//     as signalled (the reader is woken by a full counter as by any other),
//     and once EnableKernelSignals has run, the kernel itself adds the one
//     (eventfd_signal, through an AIO completion), which saturates instead
//     of blocking even on a descriptor whose O_NONBLOCK was cleared.
//   - Reads ask the kernel not to wait (preadv2 with RWF_NOWAIT), whatever
//     the description's flags; waiting is done in Go's poller (Eventfd.Wait,
//     Set.Wait), never in read.
//   - Adopt accepts a received descriptor only if it is an eventfd.
package notify
