/*
 * The libc functions the shim wraps, found with dlsym(RTLD_NEXT) on first
 * use.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <unistd.h>

#include "shim.h"

#define REAL(name, type)                                        \
	static __typeof__(type) real_##name##_fn;                         \
	static __typeof__(type) get_##name(void)                          \
	{                                                       \
		if (!real_##name##_fn)                          \
			real_##name##_fn = (__typeof__(type))dlsym(RTLD_NEXT, #name); \
		if (!real_##name##_fn)                          \
			abort();                                \
		return real_##name##_fn;                        \
	}

REAL(openat, int (*)(int, const char *, int, ...))
REAL(ioctl, int (*)(int, unsigned long, ...))
REAL(mmap, void *(*)(void *, size_t, int, int, int, off_t))
REAL(munmap, int (*)(void *, size_t))
REAL(poll, int (*)(struct pollfd *, nfds_t, int))
REAL(ppoll, int (*)(struct pollfd *, nfds_t, const struct timespec *, const void *))
REAL(close, int (*)(int))
REAL(dup, int (*)(int))
REAL(dup2, int (*)(int, int))
REAL(dup3, int (*)(int, int, int))
REAL(fcntl, int (*)(int, int, ...))
REAL(select, int (*)(int, fd_set *, fd_set *, fd_set *, struct timeval *))
REAL(pselect, int (*)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *))

int real_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return get_openat()(dirfd, path, flags, mode);
}
int real_ioctl(int fd, unsigned long req, void *arg) { return get_ioctl()(fd, req, arg); }
void *real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return get_mmap()(addr, len, prot, flags, fd, off);
}
int real_munmap(void *addr, size_t len) { return get_munmap()(addr, len); }
int real_poll(struct pollfd *fds, nfds_t n, int timeout) { return get_poll()(fds, n, timeout); }
int real_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const void *sigmask)
{
	return get_ppoll()(fds, n, ts, sigmask);
}
int real_close(int fd) { return get_close()(fd); }
int real_dup(int fd) { return get_dup()(fd); }
int real_dup2(int fd, int fd2) { return get_dup2()(fd, fd2); }
int real_dup3(int fd, int fd2, int flags) { return get_dup3()(fd, fd2, flags); }
int real_fcntl(int fd, int cmd, long arg) { return get_fcntl()(fd, cmd, arg); }
int real_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv) { return get_select()(n, r, w, e, tv); }
int real_pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts, const sigset_t *mask)
{
	return get_pselect()(n, r, w, e, ts, mask);
}
