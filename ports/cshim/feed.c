/*
 * The monitors a binding feeds (package monitor's Feeds, in C). valed tells
 * a port's clients, on their connection, when a monitor they must feed
 * comes and goes: the first zero-copy level of a VALE port or pipe end, and
 * the copy monitors of a pipe end (valed copies frames for the copy
 * monitors of VALE ports itself). Each client's syncs then swap the buffers
 * of the slots the switch (or the pipe's peer) finished with into a
 * zero-copy monitor's rings, or copy the frames a pipe end sends and
 * receives into a copy monitor's, as netmap's monitors do. The monitor's
 * reader is another process: every index read from its rings is checked,
 * and a violation resets the monitor ring the way valed resets a client's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define MAX_FEEDS 8
#define EVENT_EVERY_NS 1000000 /* how often syncs look for monitor events */

enum { RESET_BAD_HEAD = 1, RESET_BAD_CUR = 2, RESET_BAD_BUFIDX = 3 };

struct feed_ring {
	struct netmap_slot *slots;
	char *bufs;       /* copy monitors: the monitor memory's buffer 0 */
	uint32_t buf_size;
	struct vale_ctl *ctl;
	uint32_t num, num_bufs, first_buf, max_len;
	uint32_t hwcur, hwtail, reset_gen, answered;
	int in_reset;
	int kick_fd;
};

struct feed {
	uint64_t id;
	int copies; /* a copy monitor, in memory of its own */
	char *mem;  /* that memory, mapped here */
	size_t mem_size;
	int tx_base, rx_base, nrings;
	struct feed_ring *rings;
};

struct shim_feeds {
	struct feed feeds[MAX_FEEDS];
	int n;
	int64_t next_check;
};


static int64_t coarse_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void drop_feed(struct shim_feeds *fs, int i)
{
	struct feed *f = &fs->feeds[i];
	for (int r = 0; r < f->nrings; r++)
		real_close(f->rings[r].kick_fd);
	free(f->rings);
	if (f->mem)
		real_munmap(f->mem, f->mem_size);
	fs->feeds[i] = fs->feeds[--fs->n];
}

/* add_feed builds the feed of a monitor whose interface lies at if_ofs in
 * base (size bytes: the binding's region, or a copy monitor's own memory),
 * taking fds (its eventfds, one per ring). num_bufs bounds the buffer
 * indexes a zero-copy monitor may hand back. */
static int add_feed(struct shim_binding *b, uint64_t id, char *base, size_t size, uint32_t num_bufs, int64_t if_ofs,
		    int tx_base, int rx_base, int rings, int *fds, int nfds)
{
	struct shim_feeds *fs = b->feeds;
	struct vale_if *vi;
	struct feed *f;

	if (fs->n == MAX_FEEDS || rings <= 0 || rings > VALE_MAX_RINGS || nfds != rings || if_ofs < 0 || if_ofs % 8 ||
	    (uint64_t)if_ofs + sizeof(*vi) + 16 * (uint64_t)rings > size)
		return -1;
	vi = (struct vale_if *)(base + if_ofs);
	if (vi->magic != VALE_MAGIC || vi->version != VALE_VERSION || vi->tx_rings != 0 || vi->rx_rings != (uint32_t)rings ||
	    vi->buf_size == 0 || vi->buf_ofs < 0 || (uint64_t)vi->buf_ofs > size ||
	    (uint64_t)vi->num_bufs * vi->buf_size > size - (uint64_t)vi->buf_ofs)
		return -1;
	f = &fs->feeds[fs->n];
	f->rings = calloc(rings, sizeof(*f->rings));
	if (!f->rings)
		return -1;
	int64_t *table = (int64_t *)(base + if_ofs + 128);
	for (int i = 0; i < rings; i++) {
		struct feed_ring *k = &f->rings[i];
		int64_t ro = if_ofs + table[i], co = if_ofs + table[rings + i];
		if (ro < 0 || co < 0 || ro % 8 || co % 8 || (uint64_t)co + sizeof(struct vale_ctl) > size ||
		    (uint64_t)ro + 256 > size) {
			free(f->rings);
			return -1;
		}
		k->ctl = (struct vale_ctl *)(base + co);
		k->num = k->ctl->num_slots;
		k->num_bufs = vi->num_bufs < num_bufs ? vi->num_bufs : num_bufs;
		k->first_buf = k->ctl->first_buf;
		k->buf_size = vi->buf_size;
		k->bufs = base + vi->buf_ofs;
		k->max_len = vi->buf_size < 0xffff ? vi->buf_size : 0xffff;
		if (k->num < 2 || (uint64_t)ro + 256 + 16 * (uint64_t)k->num > size) {
			free(f->rings);
			return -1;
		}
		k->slots = (struct netmap_slot *)(base + ro + 256);
		k->hwcur = ld(&k->ctl->head) % k->num;
		k->hwtail = ld(&k->ctl->tail) % k->num;
		k->reset_gen = ld(&k->ctl->reset_gen);
		k->kick_fd = fds[i];
	}
	f->id = id;
	f->tx_base = tx_base;
	f->rx_base = rx_base;
	f->nrings = rings;
	fs->n++;
	return 0;
}

/* add_copy_feed maps a copy monitor's memory (fds[0], the message's
 * mem_size bytes) and builds its feed. */
static int add_copy_feed(struct shim_binding *b, uint64_t id, const char *msg, int64_t if_ofs, int tx_base,
			 int rx_base, int rings, int *fds, int nfds)
{
	int64_t mem_size;
	char *mem;

	if (nfds < 1 || json_int(msg, "mem_size", &mem_size) || mem_size <= 0)
		return -1;
	mem = real_mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	if (mem == MAP_FAILED)
		return -1;
	if (add_feed(b, id, mem, mem_size, UINT32_MAX, if_ofs, tx_base, rx_base, rings, fds + 1, nfds - 1) < 0) {
		real_munmap(mem, mem_size);
		return -1;
	}
	struct feed *f = &b->feeds->feeds[b->feeds->n - 1];
	f->copies = 1;
	f->mem = mem;
	f->mem_size = mem_size;
	real_close(fds[0]);
	return 0;
}

/* shim_feed_event handles one message valed sent on the binding's
 * connection after the open reply: a monitor added or removed. It takes
 * fds. */
void shim_feed_event(struct shim_binding *b, const char *msg, int *fds, int nfds)
{
	char op[16], kind[32];
	int64_t id, if_ofs, tx_base, rx_base, rings;

	if (!b->feeds)
		b->feeds = calloc(1, sizeof(*b->feeds));
	if (b->feeds && strncmp(msg, "{\"body\":{\"monitor\":", 19) == 0 && json_str(msg, "op", op, sizeof(op)) == 0 &&
	    json_int(msg, "id", &id) == 0) {
		if (strcmp(op, "remove") == 0) {
			for (int i = 0; i < b->feeds->n; i++)
				if (b->feeds->feeds[i].id == (uint64_t)id)
					drop_feed(b->feeds, i);
		} else if (strcmp(op, "add") == 0 && json_str(msg, "kind", kind, sizeof(kind)) == 0 &&
			   json_int(msg, "if_ofs", &if_ofs) == 0 && json_int(msg, "tx_base", &tx_base) == 0 &&
			   json_int(msg, "rx_base", &rx_base) == 0 && json_int(msg, "rings", &rings) == 0) {
			if (strcmp(kind, "zerocopy-monitor") == 0 &&
			    add_feed(b, id, b->reg->base, b->reg->size, b->num_bufs, if_ofs, tx_base, rx_base, rings, fds,
				     nfds) == 0)
				return; /* the feed keeps the descriptors */
			if (strcmp(kind, "monitor") == 0 && add_copy_feed(b, id, msg, if_ofs, tx_base, rx_base, rings, fds,
									   nfds) == 0)
				return;
			shim_warn("%s: monitor %lld cannot be fed by this client", b->port, (long long)id);
		}
	}
	for (int i = 0; i < nfds; i++)
		real_close(fds[i]);
}

/* take_event reads one message from the connection (waiting for it unless
 * dontwait) and applies it. It returns what ctl_recv returned. */
static ssize_t take_event(struct shim_binding *b, int sock, int dontwait)
{
	char buf[4096];
	int fds[64], nfds;
	ssize_t n = ctl_recv(sock, buf, sizeof(buf), fds, 64, &nfds, dontwait ? MSG_DONTWAIT : 0);

	if (n > 0)
		shim_feed_event(b, buf, fds, nfds);
	return n;
}

/* shim_feed_check reads the events waiting on the binding's connection,
 * at most once a millisecond unless forced. It reports 0 when valed
 * closed it. */
int shim_feed_check(struct shim_binding *b, int sock, int force)
{
	int64_t now = coarse_ns();
	ssize_t n;

	if (!b->feeds)
		b->feeds = calloc(1, sizeof(*b->feeds));
	if (!b->feeds || sock < 0 || (!force && now < b->feeds->next_check))
		return 1;
	b->feeds->next_check = now + EVENT_EVERY_NS;
	while ((n = take_event(b, sock, 1)) > 0)
		;
	if (n == 0)
		b->dead = 1;
	return n != 0;
}

/* shim_feed_wait takes the count monitor events valed sends right after
 * an open reply (the monitors to feed from the first sync on), waiting up
 * to a second for each. */
void shim_feed_wait(struct shim_binding *b, int sock, int64_t count)
{
	for (int64_t i = 0; i < count; i++) {
		struct pollfd p = {.fd = sock, .events = POLLIN};
		if (real_poll(&p, 1, 1000) != 1 || take_event(b, sock, 1) <= 0)
			return;
	}
}

/* reset puts a monitor ring whose reader broke it back in order (what
 * valed does to a client's ring) and tells the reader. */
static void reset(struct feed_ring *k, uint32_t why, uint32_t slot, uint32_t value)
{
	for (uint32_t j = 0; j < k->num; j++) {
		struct netmap_slot *s = &k->slots[j];
		if (s->buf_idx < 2 || s->buf_idx >= k->num_bufs) {
			s->buf_idx = k->first_buf + j;
			s->len = 0;
			s->flags = 0;
		} else if (s->len > k->max_len) {
			s->len = 0;
		}
	}
	st(&k->ctl->reset_head, k->hwcur);
	st(&k->ctl->reset_why, why);
	st(&k->ctl->reset_slot, slot);
	st(&k->ctl->reset_value, value);
	st(&k->ctl->reset_gen, ++k->reset_gen);
	k->in_reset = 1;
	signal_fd(k->kick_fd);
}

/* publish exposes the monitor ring's slots up to t to its reader, and
 * wakes the reader if it sleeps with a ticket not answered yet. */
static void publish(struct feed_ring *k, uint32_t t, int64_t ts)
{
	uint32_t ticket;

	if (t == k->hwtail)
		return;
	k->hwtail = t;
	__atomic_store_n(&k->ctl->ts, ts, __ATOMIC_RELEASE);
	st(&k->ctl->tail, t);
	ticket = ld(&k->ctl->app_kick);
	if (ticket != 0 && ticket != k->answered) {
		k->answered = ticket;
		signal_fd(k->kick_fd);
	}
}

/* room returns how many slots the monitor's reader left free, after
 * checking its head and cur; -1 if the ring is reset or waits for the
 * reader to acknowledge one. */
static int room(struct feed_ring *k)
{
	uint32_t head, cur;

	if (k->in_reset) {
		if (ld(&k->ctl->reset_ack) != k->reset_gen)
			return -1;
		k->in_reset = 0;
	}
	head = ld(&k->ctl->head);
	if (head >= k->num || !in_range(k->hwcur, head, k->hwtail, k->num)) {
		reset(k, RESET_BAD_HEAD, 0, head);
		return -1;
	}
	cur = ld(&k->ctl->cur);
	if (cur >= k->num || !in_range(head, cur, k->hwtail, k->num)) {
		reset(k, RESET_BAD_CUR, 0, cur);
		return -1;
	}
	k->hwcur = head;
	return k->num - 1 - dist(head, k->hwtail, k->num);
}

/* swap_in gives monitor ring k the buffers of slots [from, to) of r, and r
 * the monitor's free buffers in exchange (NS_BUF_CHANGED). */
static void swap_in(struct feed_ring *k, struct shim_ring *r, uint32_t from, uint32_t to, uint16_t flags,
		    int64_t ts)
{
	int space = room(k);
	uint32_t t = k->hwtail, total = dist(from, to, r->num), n = 0;

	for (uint32_t i = from; space > 0 && i != to; i = nxt(i, r->num)) {
		struct netmap_slot *s = &r->nm->slot[i];
		uint32_t idx = s->buf_idx, zidx;
		n++;
		if (idx < 2 || idx >= k->num_bufs)
			continue;
		struct netmap_slot *z = &k->slots[t];
		zidx = z->buf_idx;
		if (zidx < 2 || zidx >= k->num_bufs) {
			reset(k, RESET_BAD_BUFIDX, t, zidx);
			n = 0;
			break;
		}
		z->buf_idx = idx;
		z->len = s->len < k->max_len ? s->len : k->max_len;
		z->flags = (s->flags & (NS_MOREFRAG | NS_TXMON)) | flags;
		z->ptr = (uint64_t)ts;
		s->buf_idx = zidx;
		s->flags |= NS_BUF_CHANGED;
		t = nxt(t, k->num);
		space--;
	}
	if (total > n)
		__atomic_add_fetch(&k->ctl->dropped, total - n, __ATOMIC_RELAXED);
	publish(k, t, ts);
}

/* copy_in copies the frames in slots [from, to) of r into copy monitor
 * ring k, a slot for a slot; a chain of fragments that does not fit is
 * dropped whole. */
static void copy_in(struct feed_ring *k, struct shim_binding *b, struct shim_ring *r, uint32_t from, uint32_t to,
		    int64_t ts)
{
	int space = room(k);
	uint32_t t = k->hwtail, lost = 0;

	for (uint32_t i = from; i != to;) {
		uint32_t n = 1, j = i;
		while ((r->nm->slot[j].flags & NS_MOREFRAG) && nxt(j, r->num) != to && n < NETMAP_MAX_FRAGS) {
			j = nxt(j, r->num);
			n++;
		}
		if (space < (int)n) {
			lost++;
			i = nxt(j, r->num);
			continue;
		}
		for (uint32_t m = 0; m < n; m++, i = nxt(i, r->num)) {
			struct netmap_slot *s = &r->nm->slot[i], *z = &k->slots[t];
			uint32_t len = s->len < k->max_len ? s->len : k->max_len, zidx = z->buf_idx;
			if (zidx < 2 || zidx >= k->num_bufs) {
				reset(k, RESET_BAD_BUFIDX, t, zidx); /* the reader broke its ring */
				return;
			}
			if (s->buf_idx < 2 || s->buf_idx >= b->num_bufs || len > b->buf_size)
				len = 0;
			else
				memcpy(k->bufs + (uint64_t)zidx * k->buf_size, b->bufs + (uint64_t)s->buf_idx * b->buf_size, len);
			z->len = len;
			z->flags = (s->flags & NS_MOREFRAG) && m + 1 < n ? NS_MOREFRAG : 0;
			z->ptr = (uint64_t)ts;
			t = nxt(t, k->num);
			space--;
		}
	}
	if (lost)
		__atomic_add_fetch(&k->ctl->dropped, lost, __ATOMIC_RELAXED);
	publish(k, t, ts);
}

/* shim_feed gives the slots [from, to) of ring r to the monitors of its
 * direction of one kind: copies (copy monitors) of the frames a pipe end
 * sent or received, or else the buffers (zero-copy monitors) of the TX
 * slots the other side finished with and of the RX slots the application
 * released. */
void shim_feed(struct shim_binding *b, struct shim_ring *r, uint32_t from, uint32_t to, int copies)
{
	struct shim_feeds *fs = b->feeds;
	int64_t ts;

	if (!fs || fs->n == 0 || from == to)
		return;
	ts = realtime_ns();
	for (int i = 0; i < fs->n; i++) {
		struct feed *f = &fs->feeds[i];
		int base = r->tx ? f->tx_base : f->rx_base;
		if (f->copies != copies || base < 0 || base + r->id >= f->nrings)
			continue;
		if (copies)
			copy_in(&f->rings[base + r->id], b, r, from, to, ts);
		else
			swap_in(&f->rings[base + r->id], r, from, to, r->tx ? NS_TXMON : 0, ts);
	}
}

/* shim_feeding reports whether the binding feeds a monitor. */
int shim_feeding(struct shim_binding *b) { return b->feeds && b->feeds->n > 0; }

/* shim_feeds_free releases the binding's feeds. */
void shim_feeds_free(struct shim_binding *b)
{
	if (!b->feeds)
		return;
	while (b->feeds->n > 0)
		drop_feed(b->feeds, 0);
	free(b->feeds);
	b->feeds = NULL;
}
