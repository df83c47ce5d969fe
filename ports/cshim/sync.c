/*
 * The syncs: what netmap's NIOCTXSYNC, NIOCRXSYNC and poll do to a ring,
 * done here against valed's control blocks. The application's netmap
 * ring is read for head and cur and written with tail and ts, as
 * netmap's kernel does; valed sees only the control block.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"


/* shim_drain resets an eventfd that fired. */
void shim_drain(int fd)
{
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof(v));
	(void)n;
}

/* answer wakes the other side if it sleeps on this ring with a ticket not
 * answered yet: valed's worker on a TX ring, a sender waiting for room on
 * an RX ring. */
static void answer(struct shim_ring *r)
{
	uint32_t t = ld(&r->ctl->sw_kick);
	if (t != 0 && t != r->answered) {
		r->answered = t;
		if (r->kick_fd >= 0)
			signal_fd(r->kick_fd);
	}
}

static const char *reset_reasons[] = {
	"no reset", "head out of range", "cur out of range", "buffer index out of range",
	"slot length larger than the buffer", "unsupported slot flags", "fragment chain too long",
};

/* check_reset resumes a ring valed reset (it found the ring breaking the
 * ring contract): head and cur go back where valed says, as netmap's ring
 * reinit puts them, and the reset is acknowledged. */
static void check_reset(struct shim_binding *b, struct shim_ring *r)
{
	uint32_t gen = ld(&r->ctl->reset_gen), h, t, why;

	if (gen == r->reset_ack)
		return;
	h = ld(&r->ctl->reset_head) % r->num;
	why = ld(&r->ctl->reset_why);
	if (r->resets_told++ < 5)
		shim_warn("%s %s ring %d reset by the switch: %s (slot %u, value %u)", b->port, r->tx ? "tx" : "rx", r->id,
			  why < sizeof(reset_reasons) / sizeof(reset_reasons[0]) ? reset_reasons[why] : "unknown reason",
			  ld(&r->ctl->reset_slot), ld(&r->ctl->reset_value));
	r->pub_head = r->pub_cur = h;
	st(&r->ctl->cur, h);
	st(&r->ctl->head, h);
	r->nm->head = r->nm->cur = h;
	t = ld(&r->ctl->tail);
	if (t < r->num)
		r->tail = t;
	r->reset_ack = gen;
	st(&r->ctl->reset_ack, gen);
}


/* wake_peer signals the pipe's other end if it sleeps on the ring this one
 * just fed or gave room to. */
static void wake_peer(struct shim_ring *r)
{
	uint32_t t = ld(&r->peer_ctl->app_kick);
	if (t != 0 && t != r->answered) {
		r->answered = t;
		if (r->peer_fd >= 0)
			signal_fd(r->peer_fd);
	}
}

/* pipe_sync does what a pipe end's sync does (package pipes): a TX ring
 * copies the slots filled since the last sync into the peer's RX ring
 * (buffers are shared, slots are copied: zero copy) and exposes the whole
 * frames there; an RX ring gives released slots back to the peer's TX ring,
 * with the buffers the application swapped in. Then the tail the peer
 * left, if it is where it may be. */
static void pipe_sync(struct shim_binding *b, struct shim_ring *r, uint32_t head)
{
	uint32_t hw = r->hw, t;

	if (hw != head && r->tx) {
		int64_t ts = realtime_ns();
		uint32_t complete = hw;
		if (shim_feeding(b))
			shim_feed(b, r, hw, head, 1); /* what the end sends */
		for (uint32_t k = hw; k != head;) {
			struct netmap_slot *s = &r->nm->slot[k], d = *s;
			if (d.flags & NS_BUF_CHANGED)
				s->flags &= ~NS_BUF_CHANGED;
			d.ptr = (uint64_t)ts;
			r->peer_slots[k] = d;
			k = nxt(k, r->num);
			if (!(d.flags & NS_MOREFRAG))
				complete = k;
		}
		r->hw = head;
		st(&r->ctl->hwcur, head);
		if (complete != hw) {
			__atomic_store_n(&r->peer_ctl->ts, ts, __ATOMIC_RELEASE);
			st(&r->peer_ctl->tail, complete); /* whole frames only */
			wake_peer(r);
		}
	} else if (hw != head) {
		if (shim_feeding(b))
			shim_feed(b, r, hw, head, 0);
		for (uint32_t k = hw; k != head; k = nxt(k, r->num)) {
			struct netmap_slot *s = &r->nm->slot[k];
			if (s->flags & NS_BUF_CHANGED) {
				r->peer_slots[k] = *s;
				s->flags &= ~NS_BUF_CHANGED;
			}
		}
		r->hw = head;
		st(&r->ctl->hwcur, head);
		st(&r->peer_ctl->tail, prv(head, r->num));
		wake_peer(r);
	}
	t = ld(&r->ctl->tail);
	if (t >= r->num || !in_range(r->tail, t, prv(head, r->num), r->num)) {
		if (r->resets_told++ < 5)
			shim_warn("%s %s ring %d: the pipe's peer set tail %u outside [%u, %u] (ignored)", b->port,
				  r->tx ? "tx" : "rx", r->id, t, r->tail, prv(head, r->num));
		return;
	}
	if (t != r->tail && shim_feeding(b)) {
		if (r->tx)
			shim_feed(b, r, nxt(r->tail, r->num), nxt(t, r->num), 0);
		else
			shim_feed(b, r, r->tail, t, 1); /* what the end received */
	}
	r->tail = t;
}

/* shim_sync_ring syncs one ring: the prologue checks of netmap's kernel
 * on the application's head and cur (a violation puts them back, as
 * netmap's ring reinit does, silently but for a message), publication to
 * valed, a wake-up for valed if it sleeps on the ring, and the new tail. */
void shim_sync_ring(struct shim_binding *b, struct shim_ring *r)
{
	volatile struct netmap_ring *nm = r->nm;
	uint32_t head, cur, t;

	check_reset(b, r);
	head = nm->head;
	cur = nm->cur;
	if (head >= r->num || cur >= r->num || !in_range(r->pub_head, head, r->tail, r->num) ||
	    !in_range(head, cur, r->tail, r->num)) {
		if (r->resets_told++ < 5)
			shim_warn("%s %s ring %d: head %u cur %u not in [%u, %u]: ring reinitialised", b->port,
				  r->tx ? "tx" : "rx", r->id, head, cur, r->pub_head, r->tail);
		nm->head = nm->cur = r->pub_head;
		*(volatile uint32_t *)&nm->tail = r->tail;
		return;
	}
	if (cur != r->pub_cur) {
		st(&r->ctl->cur, cur);
		r->pub_cur = cur;
	}
	if (head != r->pub_head) {
		if (!r->tx && !r->pipe && shim_feeding(b))
			shim_feed(b, r, r->pub_head, head, 0); /* before the switch may reuse them */
		st(&r->ctl->head, head);
		r->pub_head = head;
		if (!r->pipe)
			answer(r);
	}
	if (r->pipe) {
		pipe_sync(b, r, head);
	} else {
		t = ld(&r->ctl->tail);
		if (t < r->num && t != r->tail) {
			if (r->tx && shim_feeding(b)) /* the slots the switch took: [tail+1, new tail+1) */
				shim_feed(b, r, nxt(r->tail, r->num), nxt(t, r->num), 0);
			r->tail = t;
		}
	}
	*(volatile uint32_t *)&nm->tail = r->tail; /* restored if the application wrote it */
	if (!r->tx) {
		int64_t ns = __atomic_load_n(&r->ctl->ts, __ATOMIC_ACQUIRE);
		nm->ts.tv_sec = ns / 1000000000;
		nm->ts.tv_usec = ns % 1000000000 / 1000;
	}
}

/* events looks, now and then, for monitor events on the connection. */
static void events(struct shim_binding *b)
{
	if (b->owner && b->owner->sock >= 0)
		shim_feed_check(b, b->owner->sock, 0);
}

/* shim_txsync syncs every bound TX ring. */
void shim_txsync(struct shim_binding *b)
{
	events(b);
	for (int i = 0; i < b->ntx; i++)
		shim_sync_ring(b, &b->tx[i]);
}

/* shim_rxsync syncs every bound RX ring. */
void shim_rxsync(struct shim_binding *b)
{
	events(b);
	for (int i = 0; i < b->nrx; i++)
		shim_sync_ring(b, &b->rx[i]);
}

/* shim_ready returns the poll events that hold: a ring is ready when its
 * cur differs from its tail. */
int shim_ready(struct shim_binding *b, short events)
{
	int got = 0;

	if (events & (POLLIN | POLLRDNORM))
		for (int i = 0; i < b->nrx; i++)
			if (b->rx[i].nm->cur != b->rx[i].tail) {
				got |= events & (POLLIN | POLLRDNORM);
				break;
			}
	if (events & (POLLOUT | POLLWRNORM))
		for (int i = 0; i < b->ntx; i++)
			if (b->tx[i].nm->cur != b->tx[i].tail) {
				got |= events & (POLLOUT | POLLWRNORM);
				break;
			}
	return got;
}

/* shim_moved reports whether valed moved a tail, or reset a ring, that a
 * wait for events depends on. */
int shim_moved(struct shim_binding *b, short events)
{
	if (b->dead)
		return 1;
	if (events & (POLLIN | POLLRDNORM))
		for (int i = 0; i < b->nrx; i++)
			if (ld(&b->rx[i].ctl->tail) != b->rx[i].tail || ld(&b->rx[i].ctl->reset_gen) != b->rx[i].reset_ack)
				return 1;
	if (events & (POLLOUT | POLLWRNORM))
		for (int i = 0; i < b->ntx; i++)
			if (ld(&b->tx[i].ctl->tail) != b->tx[i].tail || ld(&b->tx[i].ctl->reset_gen) != b->tx[i].reset_ack)
				return 1;
	return 0;
}

/* shim_poll_binding syncs a binding as poll does for events (TX rings
 * unless NR_NO_TX_POLL, RX rings for POLLIN or with NR_DO_RX_POLL) and
 * returns the events that hold, POLLERR and POLLHUP once valed is gone. */
short shim_poll_binding(struct shim_binding *b, short events)
{
	short rev;

	if (!(b->flags & NR_NO_TX_POLL))
		shim_txsync(b);
	if ((events & (POLLIN | POLLRDNORM)) || (b->flags & NR_DO_RX_POLL))
		shim_rxsync(b);
	rev = shim_ready(b, events);
	if (b->dead)
		rev |= POLLERR | POLLHUP;
	return rev;
}

/* shim_ticket publishes a fresh sleep ticket (on) on the rings a wait for
 * events depends on (TX completions count too), or clears it; it reports
 * whether a ring moved meanwhile, when the wait must not start. */
int shim_ticket(struct shim_binding *b, short events, int on)
{
	short ev = events | POLLOUT;

	if (!on) {
		shim_arm(b, ev, 0);
		return 0;
	}
	if (++b->ticket == 0)
		b->ticket = 1;
	shim_arm(b, ev, b->ticket);
	return shim_moved(b, ev);
}

/* shim_arm publishes a sleep ticket (0: none) on the rings a wait for
 * events depends on: valed answers it with a signal on the ring pair's
 * eventfd. */
void shim_arm(struct shim_binding *b, short events, uint32_t ticket)
{
	if (events & (POLLIN | POLLRDNORM))
		for (int i = 0; i < b->nrx; i++)
			st(&b->rx[i].ctl->app_kick, ticket);
	if (events & (POLLOUT | POLLWRNORM))
		for (int i = 0; i < b->ntx; i++)
			st(&b->tx[i].ctl->app_kick, ticket);
}
