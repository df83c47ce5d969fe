/*
 * poll, ppoll, select and pselect over netmap descriptors mixed with
 * ordinary ones, as netmap's poll behaves: TX rings are synced on every
 * poll (unless NR_NO_TX_POLL), RX rings when POLLIN is asked (or with
 * NR_DO_RX_POLL), and a ring is ready when cur != tail. A wait first
 * polls the rings for an adaptive window, then sleeps on the bindings'
 * eventfds, next to the ordinary descriptors, with a ticket valed answers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define SPIN_MAX_NS 200000
#define SPIN_MIN_NS 10000
#define MAX_POLL 4096

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* netmap_entry returns the binding of a pollfd, if it is a bound netmap
 * descriptor. */
static struct shim_binding *netmap_entry(const struct pollfd *p)
{
	struct shim_fd *f = p->fd >= 0 ? shim_lookup(p->fd) : NULL;
	if (!f)
		return NULL;
	f->sock = p->fd; /* a descriptor of the connection that is open now */
	return f->b;
}

/* sync_entries syncs the netmap entries and sets their revents; it returns
 * how many are ready. */
static int sync_entries(struct pollfd *fds, nfds_t n)
{
	int ready = 0;

	for (nfds_t i = 0; i < n; i++) {
		struct shim_binding *b = netmap_entry(&fds[i]);
		if (!b)
			continue;
		fds[i].revents = shim_poll_binding(b, fds[i].events);
		if (fds[i].revents)
			ready++;
	}
	return ready;
}

/* spin polls the netmap entries' rings for the first binding's window,
 * yielding the CPU between looks. It reports whether a ring moved. */
static int spin(struct pollfd *fds, nfds_t n, int64_t deadline)
{
	int64_t window = 0, end;

	for (nfds_t i = 0; i < n; i++) {
		struct shim_binding *b = netmap_entry(&fds[i]);
		if (b && b->spin_ns > window)
			window = b->spin_ns;
	}
	if (window == 0)
		return 0;
	end = now_ns() + window;
	if (deadline >= 0 && deadline < end)
		end = deadline;
	do {
		for (nfds_t i = 0; i < n; i++) {
			struct shim_binding *b = netmap_entry(&fds[i]);
			if (b && shim_moved(b, fds[i].events | POLLOUT))
				return 1;
		}
		sched_yield();
	} while (now_ns() < end);
	return 0;
}

/* adapt grows the poll window of the bindings after a short sleep and
 * shrinks it after a long one (KVM's halt polling). */
static void adapt(struct pollfd *fds, nfds_t n, int64_t slept)
{
	for (nfds_t i = 0; i < n; i++) {
		struct shim_binding *b = netmap_entry(&fds[i]);
		if (!b)
			continue;
		if (slept <= SPIN_MAX_NS) {
			b->spin_ns = b->spin_ns * 2 > SPIN_MIN_NS ? b->spin_ns * 2 : SPIN_MIN_NS;
			if (b->spin_ns > SPIN_MAX_NS)
				b->spin_ns = SPIN_MAX_NS;
		} else {
			b->spin_ns /= 2;
			if (b->spin_ns < SPIN_MIN_NS)
				b->spin_ns = 0;
		}
	}
}

/* arm_all publishes a sleep ticket (0: none) on the rings each netmap
 * entry waits for; it reports whether one moved meanwhile. */
static int arm_all(struct pollfd *fds, nfds_t n, int on)
{
	int moved = 0;

	for (nfds_t i = 0; i < n; i++) {
		struct shim_binding *b = netmap_entry(&fds[i]);
		if (b)
			moved |= shim_ticket(b, fds[i].events, on);
	}
	return moved;
}

/* sleep_once waits on the ordinary entries and on the netmap entries'
 * eventfds and connections until one fires or the time runs out. It
 * returns what the real poll returned, the ordinary entries' revents set. */
static int sleep_once(struct pollfd *fds, nfds_t n, int64_t deadline, const sigset_t *mask, int *others)
{
	struct pollfd *w;
	nfds_t k = 0, cap = n;
	struct timespec ts, *tsp = NULL;
	int rc, saved;

	for (nfds_t i = 0; i < n; i++) {
		struct shim_binding *b = netmap_entry(&fds[i]);
		if (b)
			cap += b->nwait + 1;
	}
	w = calloc(cap, sizeof(*w));
	if (!w) {
		errno = ENOMEM;
		return -1;
	}
	for (nfds_t i = 0; i < n; i++) {
		struct shim_binding *b = netmap_entry(&fds[i]);
		if (!b) {
			w[k++] = fds[i];
			continue;
		}
		for (int j = 0; j < b->nwait; j++)
			w[k++] = (struct pollfd){.fd = b->wait_fds[j], .events = POLLIN};
		w[k++] = (struct pollfd){.fd = fds[i].fd, .events = POLLIN};
	}
	if (deadline >= 0) {
		int64_t left = deadline - now_ns();
		if (left < 0)
			left = 0;
		ts.tv_sec = left / 1000000000;
		ts.tv_nsec = left % 1000000000;
		tsp = &ts;
	}
	rc = real_ppoll(w, k, tsp, mask);
	saved = errno;
	*others = 0;
	k = 0;
	for (nfds_t i = 0; i < n; i++) {
		struct shim_binding *b = netmap_entry(&fds[i]);
		if (!b) {
			fds[i].revents = rc > 0 ? w[k].revents : 0;
			if (fds[i].revents)
				(*others)++;
			k++;
			continue;
		}
		for (int j = 0; j < b->nwait; j++, k++)
			if (rc > 0 && w[k].revents)
				shim_drain(w[k].fd);
		if (rc > 0 && w[k].revents)
			shim_feed_check(b, w[k].fd, 1); /* monitor events, or valed gone */
		k++;
	}
	free(w);
	errno = saved;
	return rc;
}

/* nm_poll is poll over fds, some of them netmap descriptors; deadline is
 * CLOCK_MONOTONIC ns, -1 for none. */
static int nm_poll(struct pollfd *fds, nfds_t n, int64_t deadline, const sigset_t *mask)
{
	for (;;) {
		int ready = sync_entries(fds, n), others = 0, rc;
		int has_others = 0;

		for (nfds_t i = 0; i < n; i++)
			if (!netmap_entry(&fds[i])) {
				has_others = 1;
				fds[i].revents = 0;
			}
		if (ready > 0 || (deadline >= 0 && now_ns() >= deadline)) {
			if (has_others) {
				/* the ordinary descriptors' state now, without waiting */
				rc = sleep_once(fds, n, 0, mask, &others);
				if (rc < 0)
					return -1;
				sync_entries(fds, n);
			}
			int total = 0;
			for (nfds_t i = 0; i < n; i++)
				total += fds[i].revents != 0;
			return total;
		}
		if (!has_others && spin(fds, n, deadline))
			continue;
		if (arm_all(fds, n, 1)) {
			arm_all(fds, n, 0);
			continue;
		}
		int64_t t0 = now_ns();
		rc = sleep_once(fds, n, deadline, mask, &others);
		arm_all(fds, n, 0);
		adapt(fds, n, now_ns() - t0);
		if (rc < 0)
			return -1; /* EINTR included, as poll gives it */
		if (others > 0) {
			sync_entries(fds, n);
			int total = 0;
			for (nfds_t i = 0; i < n; i++)
				total += fds[i].revents != 0;
			return total;
		}
	}
}

static int has_netmap(struct pollfd *fds, nfds_t n)
{
	for (nfds_t i = 0; i < n; i++)
		if (netmap_entry(&fds[i]))
			return 1;
	return 0;
}

static int64_t deadline_ms(int timeout)
{
	return timeout < 0 ? -1 : now_ns() + (int64_t)timeout * 1000000;
}

static int64_t deadline_ts(const struct timespec *ts)
{
	return ts ? now_ns() + (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec : -1;
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (!has_netmap(fds, n))
		return real_poll(fds, n, timeout);
	return nm_poll(fds, n, deadline_ms(timeout), NULL);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	(void)fdslen;
	return poll(fds, n, timeout);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
	if (!has_netmap(fds, n))
		return real_ppoll(fds, n, ts, mask);
	return nm_poll(fds, n, deadline_ts(ts), mask);
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask, size_t fdslen)
{
	(void)fdslen;
	return ppoll(fds, n, ts, mask);
}

/* to_pollfds turns select's sets into pollfds; it returns how many, or -1
 * if none is a netmap descriptor. */
static int to_pollfds(int nfds, fd_set *r, fd_set *w, fd_set *e, struct pollfd **out)
{
	struct pollfd *p;
	int k = 0, netmap = 0;

	if (nfds <= 0 || nfds > FD_SETSIZE)
		return -1;
	for (int fd = 0; fd < nfds; fd++)
		if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) {
			k++;
			struct shim_fd *f = shim_lookup(fd);
			netmap |= f && f->b;
		}
	if (!netmap)
		return -1;
	p = calloc(k, sizeof(*p));
	if (!p)
		return -1;
	k = 0;
	for (int fd = 0; fd < nfds; fd++) {
		short ev = 0;
		if (r && FD_ISSET(fd, r))
			ev |= POLLIN;
		if (w && FD_ISSET(fd, w))
			ev |= POLLOUT;
		if (e && FD_ISSET(fd, e))
			ev |= POLLPRI;
		if (ev)
			p[k++] = (struct pollfd){.fd = fd, .events = ev};
	}
	*out = p;
	return k;
}

/* from_pollfds writes poll's results back into select's sets and returns
 * the number of bits set, as select does. */
static int from_pollfds(struct pollfd *p, int k, fd_set *r, fd_set *w, fd_set *e)
{
	int bits = 0;

	if (r)
		FD_ZERO(r);
	if (w)
		FD_ZERO(w);
	if (e)
		FD_ZERO(e);
	for (int i = 0; i < k; i++) {
		if (r && (p[i].events & POLLIN) && (p[i].revents & (POLLIN | POLLHUP | POLLERR)))
			FD_SET(p[i].fd, r), bits++;
		if (w && (p[i].events & POLLOUT) && (p[i].revents & (POLLOUT | POLLERR)))
			FD_SET(p[i].fd, w), bits++;
		if (e && (p[i].events & POLLPRI) && (p[i].revents & POLLPRI))
			FD_SET(p[i].fd, e), bits++;
	}
	return bits;
}

static int nm_select(int nfds, fd_set *r, fd_set *w, fd_set *e, int64_t deadline, const sigset_t *mask, int *handled)
{
	struct pollfd *p;
	int k = to_pollfds(nfds, r, w, e, &p), rc;

	*handled = k >= 0;
	if (k < 0)
		return 0;
	rc = nm_poll(p, k, deadline, mask);
	if (rc >= 0)
		rc = from_pollfds(p, k, r, w, e);
	free(p);
	return rc;
}

int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	int handled;
	int64_t deadline = tv ? now_ns() + (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000 : -1;
	int rc = nm_select(nfds, r, w, e, deadline, NULL, &handled);

	if (!handled)
		return real_select(nfds, r, w, e, tv);
	return rc;
}

int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts, const sigset_t *mask)
{
	int handled;
	int rc = nm_select(nfds, r, w, e, deadline_ts(ts), mask, &handled);

	if (!handled)
		return real_pselect(nfds, r, w, e, ts, mask);
	return rc;
}
