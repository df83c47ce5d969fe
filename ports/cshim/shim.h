/*
 * The internals of libvale-netmap.so, shared by its source files.
 */
#ifndef VALE_SHIM_H
#define VALE_SHIM_H

#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/select.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <net/netmap.h>

/* vale's control block of a ring (ports.RingHeader, layout version 2). */
struct vale_ctl {
	/* line 0, constant */
	int64_t buf_ofs;
	uint32_t num_slots;
	uint32_t buf_size;
	uint16_t ringid;
	uint16_t dir;
	uint32_t num_bufs;
	uint64_t offset_mask;
	uint64_t buf_align;
	uint32_t first_buf;
	uint8_t pad0[20];
	/* line 1, written by the application side */
	uint32_t head;
	uint32_t cur;
	uint32_t flags;
	uint32_t app_kick;
	uint32_t reset_ack;
	uint8_t pad1[44];
	/* line 2, written by the switch side */
	uint32_t tail;
	uint32_t sw_kick;
	uint32_t reset_gen;
	uint32_t reset_head;
	uint32_t reset_why;
	uint32_t reset_slot;
	int64_t ts;
	uint32_t reset_value;
	uint32_t hwcur;
	uint64_t dropped;
	uint8_t pad2[16];
	uint8_t line3[64];
};

/* vale's interface header (ports.ifHeader). */
struct vale_if {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t tx_rings;
	uint32_t rx_rings;
	uint32_t host_tx_rings;
	uint32_t host_rx_rings;
	uint32_t bufs_head;
	uint32_t buf_size;
	uint32_t num_bufs;
	int64_t buf_ofs;
	int64_t mem_size;
	uint32_t kind;
	uint32_t pad;
	char name[64];
	/* ring_ofs[n], then ctl_ofs[n], from this header */
};

#define VALE_MAGIC 0x454c4156u
#define VALE_VERSION 2
#define VALE_MAX_RINGS 32 /* of one interface, both directions */

/* One bound ring, as the shim keeps it. */
struct shim_ring {
	struct netmap_ring *nm; /* the application's */
	struct vale_ctl *ctl;   /* shared with valed */
	uint32_t num;
	uint32_t pub_head, pub_cur; /* as last published */
	uint32_t tail;              /* as last seen, the trusted copy */
	uint32_t reset_ack;
	uint32_t answered;          /* last sleep ticket of the other side answered */
	int tx;
	int id;
	int kick_fd; /* TX: wakes valed; RX: wakes a sender waiting for room; -1 */
	int resets_told;
	/* pipe ends: the peer's ring this one feeds (TX) or borrows from (RX) */
	int pipe;
	struct netmap_slot *peer_slots;
	struct vale_ctl *peer_ctl;
	uint32_t hw;     /* TX: slots handed to the peer; RX: slots given back */
	int peer_fd;     /* the peer's eventfd of this ring pair, -1 */
};

/* A memory region mapped in this process, shared by the bindings with the
 * same memory id. */
struct shim_region {
	uint16_t mem_id;
	int memfd;
	char *base;
	size_t size;
	int refs;     /* bindings using it */
	int app_maps; /* mmap calls of the application not yet undone */
};

/* A binding: what NIOCREGIF or REGISTER gave one netmap descriptor. */
struct shim_binding {
	struct shim_region *reg;
	char port[64];
	uint64_t nif_ofs;
	uint16_t mem_id;
	uint32_t tx_rings, rx_rings; /* of the interface */
	uint32_t tx_slots, rx_slots;
	uint64_t flags; /* NR_* given at register */
	uint32_t extra_bufs; /* chained from the netmap_if's ni_bufs_head */
	struct nmreq_pools_info pools; /* the region's, as valed described them */
	int ntx, nrx;   /* bound rings */
	struct shim_ring *tx, *rx;
	int nwait;
	int *wait_fds; /* notify eventfds, one per bound ring pair */
	int nextra;
	int *extra_fds; /* kick and room eventfds */
	uint32_t ticket;
	int64_t spin_ns; /* adaptive poll window */
	int dead;        /* valed went away */
	uint32_t num_bufs;         /* buffers in the region's pool */
	char *bufs;                /* buffer 0, as valed laid the region out */
	uint32_t buf_size;
	struct shim_fd *owner;     /* the netmap descriptor bound */
	struct shim_feeds *feeds;  /* zero-copy monitors this binding feeds */
};

/* A netmap descriptor: a connection to valed, possibly bound. Shared by
 * the descriptors dup made of it. */
struct shim_fd {
	int sock;
	int refs;
	struct shim_binding *b;
};

/* Ring arithmetic and the shared words, as both sides use them. */
static inline uint32_t ld(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void st(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t nxt(uint32_t i, uint32_t n) { return i + 1 == n ? 0 : i + 1; }
static inline uint32_t prv(uint32_t i, uint32_t n) { return i == 0 ? n - 1 : i - 1; }
static inline uint32_t dist(uint32_t a, uint32_t b, uint32_t n) { return b >= a ? b - a : b + n - a; }
/* in_range reports whether x lies in the cyclic interval [a, b]. */
static inline int in_range(uint32_t a, uint32_t x, uint32_t b, uint32_t n) { return dist(a, x, n) <= dist(a, b, n); }

/* signal_fd adds one to an eventfd (EAGAIN: it is full, which wakes its
 * reader anyway). */
static inline void signal_fd(int fd)
{
	uint64_t one = 1;
	ssize_t n = write(fd, &one, sizeof(one));
	(void)n;
}

static inline int64_t realtime_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* real.c: the functions the shim wraps, as libc has them. */
int real_openat(int dirfd, const char *path, int flags, mode_t mode);
int real_ioctl(int fd, unsigned long req, void *arg);
void *real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int real_munmap(void *addr, size_t len);
int real_poll(struct pollfd *fds, nfds_t n, int timeout);
int real_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const void *sigmask);
int real_close(int fd);
int real_dup(int fd);
int real_dup2(int fd, int fd2);
int real_dup3(int fd, int fd2, int flags);
int real_fcntl(int fd, int cmd, long arg);
int real_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv);
int real_pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts, const sigset_t *mask);

/* fdtable.c */
struct shim_fd *shim_lookup(int fd);
int shim_add(int fd, struct shim_fd *f);
void shim_forget(int fd);
void shim_lock(void);
void shim_unlock(void);
void shim_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ctl.c: valed's control protocol */
int ctl_connect(int cloexec);
ssize_t ctl_recv(int sock, char *buf, size_t cap, int *fds, int maxfds, int *nfds, int flags);
int ctl_call(int sock, const char *req, size_t reqlen, char **reply, int *fds, int maxfds, int *nfds);
int ctl_stream(int sock, const char *req, size_t reqlen, int (*each)(const char *body, void *arg), void *arg);
int json_objects(const char *json, const char *key, int (*each)(const char *obj, void *arg), void *arg);
int json_int(const char *json, const char *key, int64_t *out);
int json_str(const char *json, const char *key, char *out, size_t outlen);
size_t json_quote(char *dst, size_t cap, const char *s);
int errno_for(const char *msg);

/* bind.c */
int shim_register(struct shim_fd *f, const char *name, uint32_t mode, uint32_t ringid,
		  uint64_t flags, uint32_t tx_slots, uint32_t rx_slots, uint32_t tx_rings,
		  uint32_t rx_rings, uint32_t extra_bufs);
int shim_port_info(struct shim_fd *f, const char *name, struct nmreq_port_info_get *info);
void shim_unbind(struct shim_binding *b);
void region_put(struct shim_region *r, int app);
struct shim_region *find_region(void *base);

/* vale.c: the VALE control requests */
int shim_vale_ctrl(struct shim_fd *f, struct nmreq_header *hdr, const char *name);

/* feed.c */
void shim_feed_event(struct shim_binding *b, const char *msg, int *fds, int nfds);
int shim_feed_check(struct shim_binding *b, int sock, int force);
void shim_feed_wait(struct shim_binding *b, int sock, int64_t count);
void shim_feed(struct shim_binding *b, struct shim_ring *r, uint32_t from, uint32_t to, int copies);
int shim_feeding(struct shim_binding *b);
void shim_feeds_free(struct shim_binding *b);

/* epoll.c */
void shim_epoll_forget(int fd);

/* sync.c */
void shim_sync_ring(struct shim_binding *b, struct shim_ring *r);
void shim_txsync(struct shim_binding *b);
void shim_rxsync(struct shim_binding *b);
int shim_ready(struct shim_binding *b, short events);
int shim_moved(struct shim_binding *b, short events);
void shim_arm(struct shim_binding *b, short events, uint32_t ticket);
short shim_poll_binding(struct shim_binding *b, short events);
int shim_ticket(struct shim_binding *b, short events, int on);
void shim_drain(int fd);

#endif
