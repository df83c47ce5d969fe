/*
 * epoll over netmap descriptors. The kernel cannot see a netmap
 * descriptor's rings, so a netmap descriptor added to an epoll set is
 * recorded here, and its binding's eventfds and connection go into the set
 * in its place, with the application's data. epoll_wait then does what
 * poll does for those descriptors: syncs, reports rings with cur != tail,
 * and sleeps with a ticket published when none is ready. Events are level
 * triggered (EPOLLET and EPOLLONESHOT are treated as level).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "shim.h"

#define MAX_REGS 256

struct epreg {
	int epfd, fd;
	struct shim_fd *f;
	uint32_t events;
	epoll_data_t data;
};

static struct epreg regs[MAX_REGS];
static int nregs;

static int (*real_epoll_ctl_fn)(int, int, int, struct epoll_event *);
static int (*real_epoll_pwait_fn)(int, struct epoll_event *, int, int, const sigset_t *);

static int real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (!real_epoll_ctl_fn)
		real_epoll_ctl_fn = dlsym(RTLD_NEXT, "epoll_ctl");
	return real_epoll_ctl_fn(epfd, op, fd, ev);
}

static int real_epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
	if (!real_epoll_pwait_fn)
		real_epoll_pwait_fn = dlsym(RTLD_NEXT, "epoll_pwait");
	return real_epoll_pwait_fn(epfd, ev, max, timeout, mask);
}

static struct epreg *find(int epfd, int fd)
{
	for (int i = 0; i < nregs; i++)
		if (regs[i].epfd == epfd && regs[i].fd == fd)
			return &regs[i];
	return NULL;
}

/* apply adds, changes or removes the binding's eventfds in the set. */
static int apply(int epfd, int op, struct shim_binding *b, epoll_data_t data)
{
	struct epoll_event ev = {.events = EPOLLIN, .data = data};

	for (int i = 0; i < b->nwait; i++)
		if (real_epoll_ctl(epfd, op, b->wait_fds[i], op == EPOLL_CTL_DEL ? NULL : &ev) < 0 && op != EPOLL_CTL_DEL)
			return -1;
	return 0;
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
	struct shim_fd *f = shim_lookup(fd);
	struct epreg *r;
	int rc;

	if (!f || !f->b)
		return real_epoll_ctl(epfd, op, fd, event);
	shim_lock();
	r = find(epfd, fd);
	switch (op) {
	case EPOLL_CTL_ADD: {
		if (r || nregs == MAX_REGS) {
			shim_unlock();
			errno = r ? EEXIST : ENOSPC;
			return -1;
		}
		/* the connection itself: valed going away */
		struct epoll_event sev = {.events = EPOLLIN | EPOLLRDHUP, .data = event->data};
		if (real_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &sev) < 0 || apply(epfd, EPOLL_CTL_ADD, f->b, event->data) < 0) {
			int saved = errno;
			real_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
			apply(epfd, EPOLL_CTL_DEL, f->b, event->data);
			shim_unlock();
			errno = saved;
			return -1;
		}
		regs[nregs++] = (struct epreg){.epfd = epfd, .fd = fd, .f = f, .events = event->events, .data = event->data};
		rc = 0;
		break;
	}
	case EPOLL_CTL_MOD: {
		if (!r) {
			errno = ENOENT;
			rc = -1;
			break;
		}
		r->events = event->events;
		r->data = event->data;
		struct epoll_event mev = {.events = EPOLLIN | EPOLLRDHUP, .data = event->data};
		rc = real_epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &mev);
		if (rc == 0)
			rc = apply(epfd, EPOLL_CTL_MOD, f->b, event->data);
		break;
	}
	case EPOLL_CTL_DEL:
		if (!r) {
			errno = ENOENT;
			rc = -1;
			break;
		}
		real_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
		apply(epfd, EPOLL_CTL_DEL, f->b, r->data);
		*r = regs[--nregs];
		rc = 0;
		break;
	default:
		errno = EINVAL;
		rc = -1;
	}
	shim_unlock();
	return rc;
}

static short poll_events(uint32_t ev)
{
	return (ev & EPOLLIN ? POLLIN : 0) | (ev & EPOLLOUT ? POLLOUT : 0);
}

/* ours reports whether an event the kernel returned is one of a netmap
 * registration of epfd (its eventfds or connection). */
static int ours(int epfd, const struct epoll_event *ev)
{
	for (int i = 0; i < nregs; i++)
		if (regs[i].epfd == epfd && regs[i].data.u64 == ev->data.u64)
			return 1;
	return 0;
}

/* collect syncs the netmap registrations of epfd and writes the events of
 * those ready into out; it returns how many. */
static int collect(int epfd, struct epoll_event *out, int max)
{
	int n = 0;

	for (int i = 0; i < nregs && n < max; i++) {
		struct epreg *r = &regs[i];
		struct shim_binding *b = r->f->b;
		uint32_t got = 0;
		if (r->epfd != epfd || !b)
			continue;
		short rev = shim_poll_binding(b, poll_events(r->events));
		if (rev & POLLIN)
			got |= EPOLLIN;
		if (rev & POLLOUT)
			got |= EPOLLOUT;
		if (rev & (POLLERR | POLLHUP))
			got |= EPOLLERR | EPOLLHUP;
		if (got)
			out[n++] = (struct epoll_event){.events = got, .data = r->data};
	}
	return n;
}

/* arm publishes (or clears) the sleep tickets of epfd's registrations and
 * reports whether a ring moved meanwhile. */
static int arm(int epfd, int on)
{
	int moved = 0;

	for (int i = 0; i < nregs; i++) {
		struct shim_binding *b = regs[i].f->b;
		if (regs[i].epfd == epfd && b)
			moved |= shim_ticket(b, poll_events(regs[i].events), on);
	}
	return moved;
}

/* settle drains the eventfds of epfd's registrations and notices a
 * connection valed closed. */
static void settle(int epfd)
{
	for (int i = 0; i < nregs; i++) {
		struct shim_binding *b = regs[i].f->b;
		if (regs[i].epfd != epfd || !b)
			continue;
		for (int j = 0; j < b->nwait; j++)
			shim_drain(b->wait_fds[j]);
		struct pollfd p = {.fd = regs[i].fd, .events = POLLIN | POLLRDHUP};
		if (real_poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR)))
			b->dead = 1;
	}
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* others copies the kernel's events that are not the netmap
 * registrations' to out. */
static int others(int epfd, struct epoll_event *got, int n, struct epoll_event *out)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		if (!ours(epfd, &got[i]))
			out[k++] = got[i];
	return k;
}

static int nm_epoll_wait(int epfd, struct epoll_event *out, int max, int timeout, const sigset_t *mask)
{
	int64_t deadline = timeout < 0 ? -1 : now_ms() + timeout;
	struct epoll_event *tmp = calloc(max, sizeof(*tmp));
	int n, k;

	if (!tmp) {
		errno = ENOMEM;
		return -1;
	}
	for (;;) {
		shim_lock();
		n = collect(epfd, out, max);
		shim_unlock();
		if (n > 0 || (deadline >= 0 && now_ms() >= deadline)) {
			k = real_epoll_pwait(epfd, tmp, max - n, 0, mask);
			if (k > 0)
				n += others(epfd, tmp, k, out + n);
			break;
		}
		shim_lock();
		int moved = arm(epfd, 1);
		shim_unlock();
		if (moved) {
			shim_lock();
			arm(epfd, 0);
			shim_unlock();
			continue;
		}
		int left = deadline < 0 ? -1 : (int)(deadline - now_ms());
		k = real_epoll_pwait(epfd, tmp, max, left < 0 && deadline >= 0 ? 0 : left, mask);
		int saved = errno;
		shim_lock();
		arm(epfd, 0);
		settle(epfd);
		shim_unlock();
		if (k < 0) {
			free(tmp);
			errno = saved;
			return -1;
		}
		n = others(epfd, tmp, k, out);
		if (n > 0) {
			shim_lock();
			n += collect(epfd, out + n, max - n);
			shim_unlock();
			break;
		}
	}
	free(tmp);
	return n;
}

/* shim_epoll_forget drops the registrations of a netmap descriptor being
 * closed (the caller holds the lock): the kernel drops the connection's,
 * and the eventfds' go with the binding. */
void shim_epoll_forget(int fd)
{
	for (int i = 0; i < nregs;)
		if (regs[i].fd == fd)
			regs[i] = regs[--nregs];
		else
			i++;
}

/* has_regs reports whether epfd holds a netmap descriptor. */
static int has_regs(int epfd)
{
	for (int i = 0; i < nregs; i++)
		if (regs[i].epfd == epfd)
			return 1;
	return 0;
}

int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
	if (!has_regs(epfd))
		return real_epoll_pwait(epfd, events, max, timeout, NULL);
	return nm_epoll_wait(epfd, events, max, timeout, NULL);
}

int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout, const sigset_t *mask)
{
	if (!has_regs(epfd))
		return real_epoll_pwait(epfd, events, max, timeout, mask);
	return nm_epoll_wait(epfd, events, max, timeout, mask);
}

/* epoll_pwait2 takes a timespec; netmap descriptors are waited for with
 * millisecond resolution (rounded up). */
int epoll_pwait2(int epfd, struct epoll_event *events, int max, const struct timespec *ts, const sigset_t *mask)
{
	static int (*real_fn)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *);
	int timeout = -1;

	if (!has_regs(epfd)) {
		if (!real_fn)
			real_fn = dlsym(RTLD_NEXT, "epoll_pwait2");
		if (!real_fn) {
			errno = ENOSYS;
			return -1;
		}
		return real_fn(epfd, events, max, ts, mask);
	}
	if (ts)
		timeout = (int)(ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000);
	return nm_epoll_wait(epfd, events, max, timeout, mask);
}
