/*
 * libvale-netmap.so: /dev/netmap for unmodified netmap programs, served by
 * valed. Preloaded, it takes the calls a netmap program makes on its netmap
 * descriptors (open, ioctl, mmap, poll, select, close, dup) and leaves
 * every other descriptor to libc. A netmap descriptor is a connection to
 * valed's control socket; registering it binds a vale port, whose memory
 * holds netmap's own netmap_if and rings.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

static int is_netmap_path(const char *path) { return path && strcmp(path, "/dev/netmap") == 0; }

/* nm_open connects a new netmap descriptor to valed. */
static int nm_open(int flags)
{
	struct shim_fd *f;
	int s = ctl_connect(flags & O_CLOEXEC);

	if (s < 0)
		return -1;
	f = calloc(1, sizeof(*f));
	if (!f) {
		real_close(s);
		errno = ENOMEM;
		return -1;
	}
	f->sock = s;
	shim_lock();
	if (shim_add(s, f) < 0) {
		shim_unlock();
		real_close(s);
		free(f);
		errno = EMFILE;
		return -1;
	}
	shim_unlock();
	return s;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	if (is_netmap_path(path))
		return nm_open(flags);
	return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

/* open is openat from the working directory. */
int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags) { return open(path, flags); }
int __openat_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }

/* fill_register reports a binding in netmap's nmreq_register. */
static void fill_register(struct nmreq_register *reg, struct shim_binding *b)
{
	reg->nr_offset = b->nif_ofs;
	reg->nr_memsize = b->reg->size;
	reg->nr_tx_slots = b->tx_slots;
	reg->nr_rx_slots = b->rx_slots;
	reg->nr_tx_rings = b->tx_rings;
	reg->nr_rx_rings = b->rx_rings;
	reg->nr_host_tx_rings = 0;
	reg->nr_host_rx_rings = 0;
	reg->nr_mem_id = b->mem_id;
	reg->nr_extra_bufs = b->extra_bufs;
}

/* refuse_options marks every option of a request unsupported: vale has
 * none of netmap's options (external memory, CSB, kloop, offsets). */
static int refuse_options(struct nmreq_header *hdr)
{
	struct nmreq_option *o = (struct nmreq_option *)(uintptr_t)hdr->nr_options;

	for (int i = 0; o && i < 16; i++) {
		shim_warn("%s: netmap request option %u is not supported by vale (no external memory, CSB, kloop or offsets)",
			  hdr->nr_name, o->nro_reqtype);
		o->nro_status = EOPNOTSUPP;
		o = (struct nmreq_option *)(uintptr_t)o->nro_next;
	}
	errno = EOPNOTSUPP;
	return -1;
}

/* nm_ctrl serves NIOCCTRL. */
static int nm_ctrl(struct shim_fd *f, struct nmreq_header *hdr)
{
	char name[NETMAP_REQ_IFNAMSIZ + 1];
	int rc;

	if (!hdr || hdr->nr_version < NETMAP_MIN_API || hdr->nr_version > NETMAP_MAX_API) {
		errno = EINVAL;
		return -1;
	}
	if (hdr->nr_options)
		return refuse_options(hdr);
	memcpy(name, hdr->nr_name, NETMAP_REQ_IFNAMSIZ);
	name[NETMAP_REQ_IFNAMSIZ] = 0;
	switch (hdr->nr_reqtype) {
	case NETMAP_REQ_REGISTER: {
		struct nmreq_register *reg = (struct nmreq_register *)(uintptr_t)hdr->nr_body;
		if (!reg) {
			errno = EINVAL;
			return -1;
		}
		shim_lock();
		rc = shim_register(f, name, reg->nr_mode, reg->nr_ringid, reg->nr_flags, reg->nr_tx_slots,
				   reg->nr_rx_slots, reg->nr_tx_rings, reg->nr_rx_rings, reg->nr_extra_bufs);
		if (rc == 0)
			fill_register(reg, f->b);
		shim_unlock();
		return rc;
	}
	case NETMAP_REQ_PORT_INFO_GET: {
		struct nmreq_port_info_get *info = (struct nmreq_port_info_get *)(uintptr_t)hdr->nr_body;
		if (!info) {
			errno = EINVAL;
			return -1;
		}
		return shim_port_info(f, name, info);
	}
	case NETMAP_REQ_VALE_ATTACH:
	case NETMAP_REQ_VALE_DETACH:
	case NETMAP_REQ_VALE_LIST:
	case NETMAP_REQ_VALE_NEWIF:
	case NETMAP_REQ_VALE_DELIF:
	case NETMAP_REQ_PORT_HDR_GET:
	case NETMAP_REQ_PORT_HDR_SET:
	case NETMAP_REQ_VALE_POLLING_ENABLE:
	case NETMAP_REQ_VALE_POLLING_DISABLE:
		return shim_vale_ctrl(f, hdr, name);
	case NETMAP_REQ_POOLS_INFO_GET: {
		struct nmreq_pools_info *pi = (struct nmreq_pools_info *)(uintptr_t)hdr->nr_body;
		if (!pi) {
			errno = EINVAL;
			return -1;
		}
		if (!f->b || (name[0] && strcmp(name, f->b->port) != 0)) {
			shim_warn("%s: POOLS_INFO_GET describes the memory of the port this descriptor registered", name);
			errno = EINVAL;
			return -1;
		}
		*pi = f->b->pools;
		return 0;
	}
	case NETMAP_REQ_SYNC_KLOOP_START:
	case NETMAP_REQ_SYNC_KLOOP_STOP:
	case NETMAP_REQ_CSB_ENABLE:
		shim_warn("%s: vale has no CSB or in-kernel sync loop; use the ioctls or poll", name);
		errno = EOPNOTSUPP;
		return -1;
	default:
		shim_warn("%s: netmap request %u is not served by this libvale-netmap", name, hdr->nr_reqtype);
		errno = EOPNOTSUPP;
		return -1;
	}
}

/* legacy_mode turns a legacy request's nr_flags and nr_ringid into a
 * register mode, ring and flags. */
static void legacy_mode(const struct nmreq *req, uint32_t *mode, uint32_t *ringid, uint64_t *flags)
{
	*mode = req->nr_flags & NR_REG_MASK;
	*ringid = req->nr_ringid & NETMAP_RING_MASK;
	*flags = req->nr_flags & ~(uint64_t)NR_REG_MASK;
	if (*mode == NR_REG_DEFAULT) {
		if (req->nr_ringid & NETMAP_SW_RING)
			*mode = NR_REG_SW;
		else if (req->nr_ringid & NETMAP_HW_RING)
			*mode = NR_REG_ONE_NIC;
		else
			*mode = NR_REG_ALL_NIC;
	}
	if (req->nr_ringid & NETMAP_NO_TX_POLL)
		*flags |= NR_NO_TX_POLL;
	if (req->nr_ringid & NETMAP_DO_RX_POLL)
		*flags |= NR_DO_RX_POLL;
}

/* legacy_body is the body of any VALE request a legacy command becomes. */
union legacy_body {
	struct nmreq_vale_attach attach;
	struct nmreq_vale_detach detach;
	struct nmreq_vale_list list;
	struct nmreq_vale_newif newif;
	struct nmreq_vale_polling polling;
	struct nmreq_port_hdr port_hdr;
};

/* legacy_request turns a legacy VALE command (nr_cmd of NIOCREGIF, or
 * NETMAP_BDG_LIST with NIOCGINFO) into its NIOCCTRL request, as netmap's
 * kernel does. It returns -1 with errno set for a command vale lacks. */
static int legacy_request(unsigned long cmd, const struct nmreq *req, struct nmreq_header *hdr, union legacy_body *b,
			  const char *name)
{
	if (cmd == NIOCGINFO) {
		hdr->nr_reqtype = NETMAP_REQ_VALE_LIST;
		b->list.nr_bridge_idx = req->nr_arg1;
		b->list.nr_port_idx = req->nr_arg2;
		return 0;
	}
	switch (req->nr_cmd) {
	case NETMAP_BDG_ATTACH:
		hdr->nr_reqtype = NETMAP_REQ_VALE_ATTACH;
		b->attach.reg.nr_mode = (req->nr_arg1 & NETMAP_BDG_HOST) ? NR_REG_NIC_SW : NR_REG_ALL_NIC;
		return 0;
	case NETMAP_BDG_DETACH:
		hdr->nr_reqtype = NETMAP_REQ_VALE_DETACH;
		return 0;
	case NETMAP_BDG_VNET_HDR:
	case NETMAP_VNET_HDR_GET:
		hdr->nr_reqtype = req->nr_cmd == NETMAP_BDG_VNET_HDR ? NETMAP_REQ_PORT_HDR_SET : NETMAP_REQ_PORT_HDR_GET;
		b->port_hdr.nr_hdr_len = req->nr_arg1;
		return 0;
	case NETMAP_BDG_NEWIF:
		hdr->nr_reqtype = NETMAP_REQ_VALE_NEWIF;
		b->newif.nr_tx_slots = req->nr_tx_slots;
		b->newif.nr_rx_slots = req->nr_rx_slots;
		b->newif.nr_tx_rings = req->nr_tx_rings;
		b->newif.nr_rx_rings = req->nr_rx_rings;
		return 0;
	case NETMAP_BDG_DELIF:
		hdr->nr_reqtype = NETMAP_REQ_VALE_DELIF;
		return 0;
	case NETMAP_BDG_POLLING_ON:
	case NETMAP_BDG_POLLING_OFF:
		hdr->nr_reqtype = req->nr_cmd == NETMAP_BDG_POLLING_ON ? NETMAP_REQ_VALE_POLLING_ENABLE
								       : NETMAP_REQ_VALE_POLLING_DISABLE;
		switch (req->nr_flags & NR_REG_MASK) {
		case NR_REG_ONE_NIC:
			b->polling.nr_mode = NETMAP_POLLING_MODE_MULTI_CPU;
			break;
		case NR_REG_ALL_NIC:
			b->polling.nr_mode = NETMAP_POLLING_MODE_SINGLE_CPU;
			break;
		}
		b->polling.nr_first_cpu_id = req->nr_ringid & NETMAP_RING_MASK;
		b->polling.nr_num_polling_cpus = req->nr_arg1;
		return 0;
	}
	shim_warn("%s: legacy command %u (%s) is not served by vale", name, req->nr_cmd,
		  req->nr_cmd == NETMAP_BDG_REGOPS ? "in-kernel lookup functions" : "ptnetmap host ports");
	errno = EOPNOTSUPP;
	return -1;
}

/* legacy_vale serves a legacy VALE command through its NIOCCTRL request,
 * and writes back what netmap's kernel writes back. */
static int legacy_vale(struct shim_fd *f, unsigned long cmd, struct nmreq *req, const char *name)
{
	struct nmreq_header hdr;
	union legacy_body b;

	memset(&hdr, 0, sizeof(hdr));
	memset(&b, 0, sizeof(b));
	hdr.nr_version = NETMAP_API;
	memcpy(hdr.nr_name, name, strlen(name)); /* at most IFNAMSIZ: nm_legacy cut it */
	hdr.nr_body = (uintptr_t)&b;
	if (legacy_request(cmd, req, &hdr, &b, name) < 0)
		return -1;
	if (shim_vale_ctrl(f, &hdr, name) < 0)
		return -1;
	switch (hdr.nr_reqtype) {
	case NETMAP_REQ_VALE_LIST:
		{ /* truncated to the legacy IFNAMSIZ, as netmap's kernel does */
			size_t l = strnlen(hdr.nr_name, sizeof(req->nr_name) - 1);
			memcpy(req->nr_name, hdr.nr_name, l);
			req->nr_name[l] = 0;
		}
		req->nr_arg1 = (uint16_t)b.list.nr_bridge_idx;
		req->nr_arg2 = (uint16_t)b.list.nr_port_idx;
		break;
	case NETMAP_REQ_PORT_HDR_SET:
	case NETMAP_REQ_PORT_HDR_GET:
		req->nr_arg1 = (uint16_t)b.port_hdr.nr_hdr_len;
		break;
	}
	return 0;
}

/* nm_regif serves the legacy NIOCREGIF and NIOCGINFO. */
static int nm_legacy(struct shim_fd *f, unsigned long cmd, struct nmreq *req)
{
	char name[sizeof(req->nr_name) + 1];
	uint32_t mode, ringid;
	uint64_t flags;
	int rc;

	if (!req) {
		errno = EINVAL;
		return -1;
	}
	memcpy(name, req->nr_name, sizeof(req->nr_name));
	name[sizeof(req->nr_name)] = 0;
	if (req->nr_cmd != 0 && (cmd == NIOCREGIF || req->nr_cmd == NETMAP_BDG_LIST))
		return legacy_vale(f, cmd, req, name);
	if (cmd == NIOCGINFO) {
		struct nmreq_port_info_get info;
		if (shim_port_info(f, name, &info) < 0)
			return -1;
		req->nr_memsize = info.nr_memsize;
		req->nr_tx_slots = info.nr_tx_slots;
		req->nr_rx_slots = info.nr_rx_slots;
		req->nr_tx_rings = info.nr_tx_rings;
		req->nr_rx_rings = info.nr_rx_rings;
		req->nr_arg2 = info.nr_mem_id;
		return 0;
	}
	legacy_mode(req, &mode, &ringid, &flags);
	shim_lock();
	rc = shim_register(f, name, mode, ringid, flags, req->nr_tx_slots, req->nr_rx_slots, req->nr_tx_rings,
			   req->nr_rx_rings, req->nr_arg3);
	if (rc == 0) {
		struct nmreq_register reg;
		fill_register(&reg, f->b);
		req->nr_offset = reg.nr_offset;
		req->nr_memsize = reg.nr_memsize;
		req->nr_tx_slots = reg.nr_tx_slots;
		req->nr_rx_slots = reg.nr_rx_slots;
		req->nr_tx_rings = reg.nr_tx_rings;
		req->nr_rx_rings = reg.nr_rx_rings;
		req->nr_arg2 = reg.nr_mem_id;
		req->nr_arg3 = reg.nr_extra_bufs;
	}
	shim_unlock();
	return rc;
}

int ioctl(int fd, unsigned long req, ...)
{
	struct shim_fd *f = shim_lookup(fd);
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!f)
		return real_ioctl(fd, req, arg);
	f->sock = fd; /* a descriptor of the connection that is open now */
	switch (req) {
	case NIOCTXSYNC:
	case NIOCRXSYNC:
		if (!f->b) {
			errno = ENXIO;
			return -1;
		}
		if (req == NIOCTXSYNC)
			shim_txsync(f->b);
		else
			shim_rxsync(f->b);
		return 0;
	case NIOCCTRL:
		return nm_ctrl(f, arg);
	case NIOCREGIF:
	case NIOCGINFO:
		return nm_legacy(f, req, arg);
	default:
		return real_ioctl(fd, req, arg);
	}
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct shim_fd *f = fd >= 0 ? shim_lookup(fd) : NULL;
	struct shim_region *r;

	if (!f)
		return real_mmap(addr, len, prot, flags, fd, off);
	if (!f->b || off != 0 || len == 0 || len > f->b->reg->size) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	r = f->b->reg;
	if (flags & MAP_FIXED)
		return real_mmap(addr, len, prot, flags, r->memfd, 0);
	shim_lock();
	r->app_maps++;
	shim_unlock();
	return r->base;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) __attribute__((alias("mmap")));

int munmap(void *addr, size_t len)
{
	struct shim_region *r;

	shim_lock();
	r = find_region(addr);
	if (r && r->app_maps > 0) {
		region_put(r, 1);
		shim_unlock();
		return 0;
	}
	shim_unlock();
	return real_munmap(addr, len);
}

/* release drops one descriptor of f, freeing it with its last one (the
 * caller holds the lock). */
static void release(int fd, struct shim_fd *f)
{
	shim_forget(fd);
	shim_epoll_forget(fd);
	if (--f->refs > 0) {
		if (f->sock == fd)
			f->sock = -1;
		return;
	}
	if (f->b)
		shim_unbind(f->b);
	free(f);
}

int close(int fd)
{
	struct shim_fd *f = shim_lookup(fd);

	if (f) {
		shim_lock();
		if (shim_lookup(fd) == f)
			release(fd, f);
		shim_unlock();
	}
	return real_close(fd);
}

/* dup_done records newfd as another descriptor of oldfd's connection, after
 * a dup that replaced whatever newfd was. */
static int dup_done(int oldfd, int newfd)
{
	struct shim_fd *f, *was;

	if (newfd < 0 || newfd == oldfd)
		return newfd;
	shim_lock();
	was = shim_lookup(newfd);
	if (was)
		release(newfd, was);
	f = shim_lookup(oldfd);
	if (f)
		shim_add(newfd, f);
	shim_unlock();
	return newfd;
}

int dup(int fd) { return dup_done(fd, real_dup(fd)); }
int dup2(int fd, int fd2) { return dup_done(fd, real_dup2(fd, fd2)); }
int dup3(int fd, int fd2, int flags) { return dup_done(fd, real_dup3(fd, fd2, flags)); }

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;
	int rc;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	rc = real_fcntl(fd, cmd, arg);
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && rc >= 0 && shim_lookup(fd))
		return dup_done(fd, rc);
	return rc;
}

int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));
