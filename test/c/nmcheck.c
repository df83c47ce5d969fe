/*
 * nmcheck: netmap API checks that need a C program.
 *
 *   nmcheck offsets                 print offsetof of netmap's structures
 *   nmcheck refuse NAME MODE FLAGS  register NAME with nr_mode MODE and
 *                                   nr_flags FLAGS; print the errno
 *   nmcheck option NAME             register with an EXTMEM option; print
 *                                   the errno and the option's status
 *   nmcheck reinit NAME             put head out of range, sync, print what
 *                                   the ring looks like after
 *   nmcheck fork NAME COUNT         register, fork; the child sends COUNT
 *                                   frames on the parent's binding, through
 *                                   a dup of the descriptor
 *   nmcheck dead NAME               register, then poll until POLLERR (valed
 *                                   goes away meanwhile)
 *   nmcheck reflect NAME COUNT      send back each of COUNT frames received
 *                                   on NAME, swapping the RX slot's buffer
 *                                   into the TX ring (zero copy)
 *   nmcheck pingpong NAME COUNT     send COUNT numbered frames and receive
 *                                   them back, in order (from a reflector)
 *   nmcheck vale IF                 VALE control requests: NEWIF IF, ATTACH
 *                                   vale0:IF, LIST (by name, then all),
 *                                   PORT_HDR_GET and SET, DETACH, DELIF
 *   nmcheck legacy IF               the same through the legacy nr_cmd of
 *                                   NIOCREGIF and NIOCGINFO (NEWIF, ATTACH,
 *                                   LIST, VNET_HDR_GET, DETACH, DELIF)
 *   nmcheck polling PORT on|off [MODE FIRST NUM] [legacy]
 *                                   VALE_POLLING_ENABLE (nr_mode MODE, CPUs
 *                                   from FIRST, NUM of them) or _DISABLE,
 *                                   by NIOCCTRL or the legacy nr_cmd
 *   nmcheck badmon NAME SECS        a hostile monitor reader: for SECS
 *                                   seconds, give back every slot with a
 *                                   garbage buffer index, and now and then a
 *                                   head out of range
 *   nmcheck info NAME               PORT_INFO_GET and the legacy NIOCGINFO
 *   nmcheck pools NAME              register, then check POOLS_INFO_GET
 *                                   against what the binding maps
 *   nmcheck eintr NAME              a signal interrupts poll and select:
 *                                   both return -1 with EINTR
 *   nmcheck epoll NAME COUNT        receive COUNT frames waiting with epoll,
 *                                   next to an idle pipe
 *   nmcheck extra NAME N            register asking for N extra buffers;
 *                                   check the chain, send one frame from an
 *                                   extra buffer swapped into the TX ring
 *                                   (its buffer takes the chain's head)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <net/netmap_user.h>

#define OFF(type, field) printf("%s.%s %zu\n", #type, #field, offsetof(struct type, field))

static void offsets(void)
{
	OFF(netmap_slot, buf_idx); OFF(netmap_slot, len); OFF(netmap_slot, flags); OFF(netmap_slot, ptr);
	OFF(netmap_ring, buf_ofs); OFF(netmap_ring, num_slots); OFF(netmap_ring, nr_buf_size);
	OFF(netmap_ring, ringid); OFF(netmap_ring, dir); OFF(netmap_ring, head); OFF(netmap_ring, cur);
	OFF(netmap_ring, tail); OFF(netmap_ring, flags); OFF(netmap_ring, ts); OFF(netmap_ring, offset_mask);
	OFF(netmap_ring, buf_align); OFF(netmap_ring, sem); OFF(netmap_ring, slot);
	OFF(netmap_if, ni_name); OFF(netmap_if, ni_version); OFF(netmap_if, ni_flags);
	OFF(netmap_if, ni_tx_rings); OFF(netmap_if, ni_rx_rings); OFF(netmap_if, ni_bufs_head);
	OFF(netmap_if, ni_host_tx_rings); OFF(netmap_if, ni_host_rx_rings); OFF(netmap_if, ring_ofs);
	OFF(nmreq_header, nr_version); OFF(nmreq_header, nr_reqtype); OFF(nmreq_header, nr_name);
	OFF(nmreq_header, nr_options); OFF(nmreq_header, nr_body);
	OFF(nmreq_register, nr_offset); OFF(nmreq_register, nr_memsize); OFF(nmreq_register, nr_tx_slots);
	OFF(nmreq_register, nr_rx_slots); OFF(nmreq_register, nr_tx_rings); OFF(nmreq_register, nr_rx_rings);
	OFF(nmreq_register, nr_host_tx_rings); OFF(nmreq_register, nr_host_rx_rings);
	OFF(nmreq_register, nr_mem_id); OFF(nmreq_register, nr_ringid); OFF(nmreq_register, nr_mode);
	OFF(nmreq_register, nr_extra_bufs); OFF(nmreq_register, nr_flags);
	OFF(nmreq_option, nro_next); OFF(nmreq_option, nro_reqtype); OFF(nmreq_option, nro_status);
	OFF(nmreq_option, nro_size);
	OFF(nmreq, nr_name); OFF(nmreq, nr_version); OFF(nmreq, nr_offset); OFF(nmreq, nr_memsize);
	OFF(nmreq, nr_tx_slots); OFF(nmreq, nr_rx_slots); OFF(nmreq, nr_tx_rings); OFF(nmreq, nr_rx_rings);
	OFF(nmreq, nr_ringid); OFF(nmreq, nr_cmd); OFF(nmreq, nr_arg1); OFF(nmreq, nr_arg2);
	OFF(nmreq, nr_arg3); OFF(nmreq, nr_flags);
	printf("sizeof.netmap_slot %zu\nsizeof.netmap_ring %zu\nsizeof.netmap_if %zu\n", sizeof(struct netmap_slot),
	       sizeof(struct netmap_ring), sizeof(struct netmap_if));
	printf("sizeof.nmreq_header %zu\nsizeof.nmreq_register %zu\nsizeof.nmreq %zu\n", sizeof(struct nmreq_header),
	       sizeof(struct nmreq_register), sizeof(struct nmreq));
	printf("ioctl.NIOCCTRL %#lx\nioctl.NIOCREGIF %#lx\nioctl.NIOCGINFO %#lx\nioctl.NIOCTXSYNC %#lx\nioctl.NIOCRXSYNC %#lx\n",
	       (unsigned long)NIOCCTRL, (unsigned long)NIOCREGIF, (unsigned long)NIOCGINFO,
	       (unsigned long)NIOCTXSYNC, (unsigned long)NIOCRXSYNC);
}

/* regist registers name on a new descriptor; it returns the descriptor,
 * or -1 with errno set. */
static int regist(const char *name, uint32_t mode, uint64_t flags, struct nmreq_option *opt,
		  struct nmreq_register *r)
{
	struct nmreq_header hdr;
	int fd = open("/dev/netmap", O_RDWR);

	if (fd < 0)
		return -1;
	memset(&hdr, 0, sizeof(hdr));
	memset(r, 0, sizeof(*r));
	hdr.nr_version = NETMAP_API;
	hdr.nr_reqtype = NETMAP_REQ_REGISTER;
	snprintf(hdr.nr_name, sizeof(hdr.nr_name), "%s", name);
	hdr.nr_body = (uintptr_t)r;
	hdr.nr_options = (uintptr_t)opt;
	r->nr_mode = mode;
	r->nr_flags = flags;
	if (ioctl(fd, NIOCCTRL, &hdr) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static struct netmap_if *map(int fd, struct nmreq_register *r)
{
	void *mem = mmap(NULL, r->nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return NETMAP_IF(mem, r->nr_offset);
}

static int extra(const char *name, uint32_t want)
{
	struct nmreq_header hdr;
	struct nmreq_register r;
	struct netmap_if *nifp;
	struct netmap_ring *ring;
	uint32_t n = 0, idx, seen[4096];
	int fd = open("/dev/netmap", O_RDWR);

	memset(&hdr, 0, sizeof(hdr));
	memset(&r, 0, sizeof(r));
	hdr.nr_version = NETMAP_API;
	hdr.nr_reqtype = NETMAP_REQ_REGISTER;
	snprintf(hdr.nr_name, sizeof(hdr.nr_name), "%s", name);
	hdr.nr_body = (uintptr_t)&r;
	r.nr_mode = NR_REG_ALL_NIC;
	r.nr_extra_bufs = want;
	if (fd < 0 || ioctl(fd, NIOCCTRL, &hdr) < 0) {
		perror("register");
		return 1;
	}
	nifp = map(fd, &r);
	ring = NETMAP_TXRING(nifp, 0);
	for (idx = nifp->ni_bufs_head; idx != 0 && n < 4096; n++) {
		for (uint32_t j = 0; j < n; j++)
			if (seen[j] == idx) {
				printf("buffer %u twice in the chain\n", idx);
				return 1;
			}
		seen[n] = idx;
		idx = *(uint32_t *)NETMAP_BUF(ring, idx);
	}
	printf("granted %u chained %u\n", r.nr_extra_bufs, n);
	if (n == 0)
		return 0;
	/* zero-copy: the first extra buffer goes into the ring, the ring's
	 * buffer into the chain */
	uint32_t x = nifp->ni_bufs_head;
	struct netmap_slot *s = &ring->slot[ring->head];
	char *b = NETMAP_BUF(ring, x);
	uint32_t rest = *(uint32_t *)b;
	memset(b, 0xff, 6);
	memcpy(b + 6, "\x02\x00\x00\x00\x00\x03", 6);
	b[12] = (char)0x88, b[13] = (char)0xb5;
	*(uint32_t *)NETMAP_BUF(ring, s->buf_idx) = rest;
	nifp->ni_bufs_head = s->buf_idx;
	s->buf_idx = x;
	s->len = 60;
	s->flags = NS_BUF_CHANGED;
	ring->head = ring->cur = nm_ring_next(ring, ring->head);
	ioctl(fd, NIOCTXSYNC, NULL);
	while (nm_tx_pending(ring)) {
		usleep(100);
		ioctl(fd, NIOCTXSYNC, NULL);
	}
	printf("sent from extra buffer %u\n", x);
	return 0;
}

static int reflect(const char *name, int count)
{
	struct nmreq_register r;
	int fd = regist(name, NR_REG_ALL_NIC, 0, NULL, &r), done = 0;
	struct netmap_if *nifp;
	struct netmap_ring *rx, *tx;

	if (fd < 0) {
		perror("register");
		return 1;
	}
	nifp = map(fd, &r);
	rx = NETMAP_RXRING(nifp, 0);
	tx = NETMAP_TXRING(nifp, 0);
	while (done < count) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (nm_ring_empty(rx) && poll(&p, 1, 10000) <= 0) {
			fprintf(stderr, "reflect: nothing for 10 s after %d\n", done);
			return 1;
		}
		while (!nm_ring_empty(rx) && !nm_ring_empty(tx)) {
			struct netmap_slot *rs = &rx->slot[rx->cur], *ts = &tx->slot[tx->cur];
			uint32_t idx = ts->buf_idx;
			ts->buf_idx = rs->buf_idx;
			ts->len = rs->len;
			ts->flags = NS_BUF_CHANGED;
			rs->buf_idx = idx;
			rs->flags = NS_BUF_CHANGED;
			rx->head = rx->cur = nm_ring_next(rx, rx->cur);
			tx->head = tx->cur = nm_ring_next(tx, tx->cur);
			done++;
		}
		ioctl(fd, NIOCTXSYNC, NULL);
		if (nm_ring_empty(tx)) {
			struct pollfd q = {.fd = fd, .events = POLLOUT};
			poll(&q, 1, 1000);
		}
	}
	/* a pipe hands the slots over inside the sync: nothing is pending */
	printf("reflected %d\n", done);
	return 0;
}

static int pingpong(const char *name, uint64_t count)
{
	struct nmreq_register r;
	int fd = regist(name, NR_REG_ALL_NIC, 0, NULL, &r);
	struct netmap_if *nifp;
	struct netmap_ring *rx, *tx;
	uint64_t sent = 0, got = 0;

	if (fd < 0) {
		perror("register");
		return 1;
	}
	nifp = map(fd, &r);
	rx = NETMAP_RXRING(nifp, 0);
	tx = NETMAP_TXRING(nifp, 0);
	while (got < count) {
		while (sent < count && !nm_ring_empty(tx)) {
			struct netmap_slot *s = &tx->slot[tx->cur];
			char *b = NETMAP_BUF(tx, s->buf_idx);
			memset(b, 0xff, 6);
			memcpy(b + 6, "\x02\x00\x00\x00\x00\x04", 6);
			b[12] = (char)0x88, b[13] = (char)0xb5;
			memcpy(b + 14, &sent, sizeof(sent));
			s->len = 60;
			tx->head = tx->cur = nm_ring_next(tx, tx->cur);
			sent++;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN | (sent < count ? POLLOUT : 0)};
		if (poll(&p, 1, 10000) <= 0) {
			fprintf(stderr, "pingpong: nothing for 10 s: sent %llu, got %llu back\n",
				(unsigned long long)sent, (unsigned long long)got);
			return 1;
		}
		while (!nm_ring_empty(rx)) {
			struct netmap_slot *s = &rx->slot[rx->cur];
			uint64_t seq;
			memcpy(&seq, NETMAP_BUF(rx, s->buf_idx) + 14, sizeof(seq));
			if (seq != got || s->len != 60) {
				fprintf(stderr, "pingpong: frame %llu came back as %llu, length %u\n",
					(unsigned long long)got, (unsigned long long)seq, s->len);
				return 1;
			}
			got++;
			rx->head = rx->cur = nm_ring_next(rx, rx->cur);
		}
	}
	printf("back %llu\n", (unsigned long long)got);
	return 0;
}

/* ctrl sends one NIOCCTRL request and returns 0 or errno. */
static int ctrl(int fd, uint16_t type, const char *name, void *body)
{
	struct nmreq_header hdr;

	memset(&hdr, 0, sizeof(hdr));
	hdr.nr_version = NETMAP_API;
	hdr.nr_reqtype = type;
	snprintf(hdr.nr_name, sizeof(hdr.nr_name), "%s", name);
	hdr.nr_body = (uintptr_t)body;
	return ioctl(fd, NIOCCTRL, &hdr) < 0 ? errno : 0;
}

static int vale_ops(const char *ifname)
{
	int fd = open("/dev/netmap", O_RDWR), rc;
	char port[64];
	struct nmreq_vale_newif nf = {.nr_tx_rings = 1, .nr_rx_rings = 1, .nr_tx_slots = 256, .nr_rx_slots = 256};
	struct nmreq_vale_attach at;
	struct nmreq_vale_list l;
	struct nmreq_vale_detach dt;
	struct nmreq_port_hdr ph;

	if (fd < 0) {
		perror("open");
		return 1;
	}
	snprintf(port, sizeof(port), "vale0:%s", ifname);
	printf("newif %d\n", ctrl(fd, NETMAP_REQ_VALE_NEWIF, ifname, &nf));
	memset(&at, 0, sizeof(at));
	at.reg.nr_mode = NR_REG_ALL_NIC;
	rc = ctrl(fd, NETMAP_REQ_VALE_ATTACH, port, &at);
	printf("attach %d index %u\n", rc, at.port_index);
	memset(&l, 0, sizeof(l));
	rc = ctrl(fd, NETMAP_REQ_VALE_LIST, port, &l);
	printf("list %s %d bridge %u port %u\n", port, rc, l.nr_bridge_idx, l.nr_port_idx);
	memset(&l, 0, sizeof(l));
	for (int i = 0; i < 100; i++) {
		struct nmreq_header hdr;
		memset(&hdr, 0, sizeof(hdr));
		hdr.nr_version = NETMAP_API;
		hdr.nr_reqtype = NETMAP_REQ_VALE_LIST;
		hdr.nr_body = (uintptr_t)&l;
		if (ioctl(fd, NIOCCTRL, &hdr) < 0) {
			printf("end %d\n", errno);
			break;
		}
		printf("entry %s bridge %u port %u\n", hdr.nr_name, l.nr_bridge_idx, l.nr_port_idx);
		l.nr_port_idx++;
	}
	memset(&ph, 0, sizeof(ph));
	ph.nr_hdr_len = 99;
	rc = ctrl(fd, NETMAP_REQ_PORT_HDR_GET, port, &ph);
	printf("hdr get %d len %u\n", rc, ph.nr_hdr_len);
	ph.nr_hdr_len = 12;
	printf("hdr set 12: %d\n", ctrl(fd, NETMAP_REQ_PORT_HDR_SET, port, &ph));
	memset(&dt, 0, sizeof(dt));
	rc = ctrl(fd, NETMAP_REQ_VALE_DETACH, port, &dt);
	printf("detach %d index %u\n", rc, dt.port_index);
	printf("delif %d\n", ctrl(fd, NETMAP_REQ_VALE_DELIF, ifname, NULL));
	memset(&l, 0, sizeof(l));
	printf("list after %d\n", ctrl(fd, NETMAP_REQ_VALE_LIST, port, &l));
	return 0;
}

/* legacy issues a legacy VALE command; it returns 0 or the errno. */
static int legacy(int fd, unsigned long ioc, struct nmreq *req, const char *name, uint16_t cmd)
{
	req->nr_version = NETMAP_API;
	req->nr_cmd = cmd;
	snprintf(req->nr_name, sizeof(req->nr_name), "%s", name);
	return ioctl(fd, ioc, req) < 0 ? errno : 0;
}

static int legacy_ops(const char *ifname)
{
	int fd = open("/dev/netmap", O_RDWR), rc;
	char port[32];
	struct nmreq req;

	if (fd < 0) {
		perror("open");
		return 1;
	}
	snprintf(port, sizeof(port), "vale0:%s", ifname);
	memset(&req, 0, sizeof(req));
	req.nr_tx_rings = req.nr_rx_rings = 1;
	req.nr_tx_slots = req.nr_rx_slots = 256;
	printf("newif %d\n", legacy(fd, NIOCREGIF, &req, ifname, NETMAP_BDG_NEWIF));
	memset(&req, 0, sizeof(req));
	printf("attach %d\n", legacy(fd, NIOCREGIF, &req, port, NETMAP_BDG_ATTACH));
	memset(&req, 0, sizeof(req));
	rc = legacy(fd, NIOCGINFO, &req, port, NETMAP_BDG_LIST);
	printf("list %s %d bridge %u port %u\n", port, rc, req.nr_arg1, req.nr_arg2);
	memset(&req, 0, sizeof(req));
	for (int i = 0; i < 100; i++) { /* as netmap's vale-ctl lists */
		req.nr_name[0] = 0;
		if ((rc = legacy(fd, NIOCGINFO, &req, "", NETMAP_BDG_LIST)) != 0) {
			printf("end %d\n", rc);
			break;
		}
		printf("entry %s bridge %u port %u\n", req.nr_name, req.nr_arg1, req.nr_arg2);
		req.nr_arg2++;
	}
	memset(&req, 0, sizeof(req));
	req.nr_arg1 = 99;
	rc = legacy(fd, NIOCREGIF, &req, port, NETMAP_VNET_HDR_GET);
	printf("hdr get %d len %u\n", rc, req.nr_arg1);
	memset(&req, 0, sizeof(req));
	printf("regops %d\n", legacy(fd, NIOCREGIF, &req, port, NETMAP_BDG_REGOPS));
	memset(&req, 0, sizeof(req));
	printf("detach %d\n", legacy(fd, NIOCREGIF, &req, port, NETMAP_BDG_DETACH));
	memset(&req, 0, sizeof(req));
	printf("delif %d\n", legacy(fd, NIOCREGIF, &req, ifname, NETMAP_BDG_DELIF));
	memset(&req, 0, sizeof(req));
	printf("list after %d\n", legacy(fd, NIOCGINFO, &req, port, NETMAP_BDG_LIST));
	return 0;
}

static int polling(int argc, char **argv)
{
	int fd = open("/dev/netmap", O_RDWR), on = strcmp(argv[3], "on") == 0, rc;
	int old = argc > 0 && strcmp(argv[argc - 1], "legacy") == 0;
	uint32_t mode = argc > 4 ? strtoul(argv[4], NULL, 0) : NETMAP_POLLING_MODE_SINGLE_CPU;
	uint32_t first = argc > 5 ? strtoul(argv[5], NULL, 0) : 0, num = argc > 6 ? strtoul(argv[6], NULL, 0) : 1;

	if (fd < 0) {
		perror("open");
		return 1;
	}
	if (old) {
		struct nmreq req;
		memset(&req, 0, sizeof(req));
		req.nr_flags = mode == NETMAP_POLLING_MODE_MULTI_CPU ? NR_REG_ONE_NIC : NR_REG_ALL_NIC;
		req.nr_ringid = first;
		req.nr_arg1 = num;
		rc = legacy(fd, NIOCREGIF, &req, argv[2], on ? NETMAP_BDG_POLLING_ON : NETMAP_BDG_POLLING_OFF);
	} else {
		struct nmreq_vale_polling p = {.nr_mode = mode, .nr_first_cpu_id = first, .nr_num_polling_cpus = num};
		rc = ctrl(fd, on ? NETMAP_REQ_VALE_POLLING_ENABLE : NETMAP_REQ_VALE_POLLING_DISABLE, argv[2], &p);
	}
	printf("polling %s %d\n", argv[3], rc);
	return 0;
}

static int info(const char *name)
{
	int fd = open("/dev/netmap", O_RDWR);
	struct nmreq_port_info_get pi;
	struct nmreq req;

	if (fd < 0) {
		perror("open");
		return 1;
	}
	memset(&pi, 0, sizeof(pi));
	int rc = ctrl(fd, NETMAP_REQ_PORT_INFO_GET, name, &pi);
	printf("info %d rings %u/%u slots %u/%u memsize>0 %d\n", rc, pi.nr_tx_rings, pi.nr_rx_rings, pi.nr_tx_slots,
	       pi.nr_rx_slots, pi.nr_memsize > 0);
	memset(&req, 0, sizeof(req));
	snprintf(req.nr_name, sizeof(req.nr_name), "%s", name);
	req.nr_version = NETMAP_API;
	rc = ioctl(fd, NIOCGINFO, &req) < 0 ? errno : 0;
	printf("ginfo %d rings %u/%u slots %u/%u memsize>0 %d\n", rc, req.nr_tx_rings, req.nr_rx_rings, req.nr_tx_slots,
	       req.nr_rx_slots, req.nr_memsize > 0);
	return 0;
}

static int epoll_recv(const char *name, uint64_t count)
{
	struct nmreq_register r;
	int fd = regist(name, NR_REG_ALL_NIC, 0, NULL, &r), ep = epoll_create1(0), idle[2];
	struct netmap_ring *rx;
	uint64_t got = 0;

	if (fd < 0 || ep < 0 || pipe(idle) < 0) {
		perror("setup");
		return 1;
	}
	rx = NETMAP_RXRING(map(fd, &r), 0);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1}, iev = {.events = EPOLLIN, .data.u64 = 2};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, idle[0], &iev) < 0) {
		perror("epoll_ctl");
		return 1;
	}
	printf("registered\n");
	while (got < count) {
		struct epoll_event out[4];
		int n = epoll_wait(ep, out, 4, 10000);
		if (n <= 0) {
			fprintf(stderr, "epoll: nothing for 10 s after %llu\n", (unsigned long long)got);
			return 1;
		}
		for (int i = 0; i < n; i++)
			if (out[i].data.u64 != 1 || !(out[i].events & EPOLLIN)) {
				fprintf(stderr, "epoll: event %#x for %llu\n", out[i].events, (unsigned long long)out[i].data.u64);
				return 1;
			}
		while (!nm_ring_empty(rx)) {
			got++;
			rx->head = rx->cur = nm_ring_next(rx, rx->cur);
		}
	}
	printf("epoll received %llu\n", (unsigned long long)got);
	return 0;
}

static int pools(const char *name)
{
	struct nmreq_register r;
	struct nmreq_pools_info pi;
	int fd = regist(name, NR_REG_ALL_NIC, 0, NULL, &r);

	if (fd < 0) {
		perror("register");
		return 1;
	}
	char *mem = (char *)map(fd, &r) - r.nr_offset;
	struct netmap_if *nifp = NETMAP_IF(mem, r.nr_offset);
	memset(&pi, 0, sizeof(pi));
	int rc = ctrl(fd, NETMAP_REQ_POOLS_INFO_GET, name, &pi);
	uint64_t ring = (uint64_t)((char *)NETMAP_TXRING(nifp, 0) - mem);
	uint64_t buf = (uint64_t)(NETMAP_BUF(NETMAP_TXRING(nifp, 0), 2) - mem);
	printf("pools %d memsize %d mem_id %d if %d ring %d buf %d\n", rc, pi.nr_memsize == r.nr_memsize,
	       pi.nr_mem_id == r.nr_mem_id,
	       r.nr_offset >= pi.nr_if_pool_offset &&
		       r.nr_offset < pi.nr_if_pool_offset + (uint64_t)pi.nr_if_pool_objtotal * pi.nr_if_pool_objsize,
	       ring >= pi.nr_ring_pool_offset &&
		       ring < pi.nr_ring_pool_offset + (uint64_t)pi.nr_ring_pool_objtotal * pi.nr_ring_pool_objsize,
	       buf == pi.nr_buf_pool_offset + 2 * (uint64_t)pi.nr_buf_pool_objsize &&
		       pi.nr_buf_pool_offset + (uint64_t)pi.nr_buf_pool_objtotal * pi.nr_buf_pool_objsize <= pi.nr_memsize);
	return 0;
}

static void on_alarm(int sig) { (void)sig; }

static int eintr(const char *name)
{
	struct nmreq_register r;
	struct sigaction sa;
	int fd = regist(name, NR_REG_ALL_NIC, 0, NULL, &r);

	if (fd < 0) {
		perror("register");
		return 1;
	}
	map(fd, &r);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART */
	sigaction(SIGALRM, &sa, NULL);
	alarm(1);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int rc = poll(&p, 1, 5000);
	printf("poll %d errno %d\n", rc, rc < 0 ? errno : 0);
	alarm(1);
	fd_set set;
	FD_ZERO(&set);
	FD_SET(fd, &set);
	struct timeval tv = {.tv_sec = 5};
	rc = select(fd + 1, &set, NULL, NULL, &tv);
	printf("select %d errno %d\n", rc, rc < 0 ? errno : 0);
	return 0;
}

static int badmon(const char *name, int secs)
{
	struct nmreq_register r;
	int fd = regist(name, NR_REG_ALL_NIC, 0, NULL, &r);
	time_t end = time(NULL) + secs;
	unsigned long given = 0, broken = 0;

	if (fd < 0) {
		perror("register");
		return 1;
	}
	struct netmap_if *nifp = map(fd, &r);
	while (time(NULL) < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, 100);
		for (unsigned i = 0; i < nifp->ni_rx_rings; i++) {
			struct netmap_ring *ring = NETMAP_RXRING(nifp, i);
			while (!nm_ring_empty(ring)) {
				ring->slot[ring->cur].buf_idx = 0xdeadbeef - given;
				ring->head = ring->cur = nm_ring_next(ring, ring->cur);
				given++;
			}
			if (given % 7 == 3) {
				ring->head = ring->num_slots + 5; /* the library puts it back */
				broken++;
			}
		}
	}
	printf("badmon gave back %lu garbage buffers, broke head %lu times\n", given, broken);
	return 0;
}

static int fork_send(const char *name, int count)
{
	struct nmreq_register r;
	int fd = regist(name, NR_REG_ALL_NIC, 0, NULL, &r), status;
	struct netmap_if *nifp;
	pid_t pid;

	if (fd < 0) {
		perror("register");
		return 1;
	}
	nifp = map(fd, &r);
	pid = fork();
	if (pid == 0) {
		int d = dup(fd);
		struct netmap_ring *ring = NETMAP_TXRING(nifp, 0);
		int sent = 0;
		close(fd);
		while (sent < count) {
			struct pollfd p = {.fd = d, .events = POLLOUT};
			if (poll(&p, 1, 5000) <= 0) {
				fprintf(stderr, "child: poll timed out\n");
				_exit(1);
			}
			while (sent < count && !nm_ring_empty(ring)) {
				struct netmap_slot *s = &ring->slot[ring->cur];
				char *b = NETMAP_BUF(ring, s->buf_idx);
				memset(b, 0xff, 6);
				memcpy(b + 6, "\x02\x00\x00\x00\x00\x02", 6);
				b[12] = (char)0x88, b[13] = (char)0xb5;
				s->len = 60;
				ring->head = ring->cur = nm_ring_next(ring, ring->cur);
				sent++;
			}
			ioctl(d, NIOCTXSYNC, NULL);
		}
		while (nm_tx_pending(ring)) {
			ioctl(d, NIOCTXSYNC, NULL);
			usleep(100);
		}
		printf("child sent %d\n", sent);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
	struct nmreq_register r;
	int fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "offsets") == 0) {
		offsets();
		return 0;
	}
	if (argc >= 5 && strcmp(argv[1], "refuse") == 0) {
		fd = regist(argv[2], strtoul(argv[3], NULL, 0), strtoull(argv[4], NULL, 0), NULL, &r);
		printf("errno %d\n", fd < 0 ? errno : 0);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "option") == 0) {
		struct nmreq_option opt = {.nro_reqtype = NETMAP_REQ_OPT_EXTMEM, .nro_size = sizeof(opt)};
		fd = regist(argv[2], NR_REG_ALL_NIC, 0, &opt, &r);
		printf("errno %d status %u\n", fd < 0 ? errno : 0, opt.nro_status);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "reinit") == 0) {
		fd = regist(argv[2], NR_REG_ALL_NIC, 0, NULL, &r);
		if (fd < 0) {
			perror("register");
			return 1;
		}
		struct netmap_ring *ring = NETMAP_TXRING(map(fd, &r), 0);
		ring->head = ring->num_slots + 5;
		int rc = ioctl(fd, NIOCTXSYNC, NULL);
		printf("sync %d head %u cur %u tail %u\n", rc, ring->head, ring->cur, ring->tail);
		ring->head = ring->cur = 1; /* fine: one slot (length 0) */
		ring->slot[0].len = 60;
		rc = ioctl(fd, NIOCTXSYNC, NULL);
		printf("sync %d head %u cur %u tail %u\n", rc, ring->head, ring->cur, ring->tail);
		return 0;
	}
	if (argc >= 4 && strcmp(argv[1], "badmon") == 0)
		return badmon(argv[2], atoi(argv[3]));
	if (argc >= 3 && strcmp(argv[1], "pools") == 0)
		return pools(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "eintr") == 0)
		return eintr(argv[2]);
	if (argc >= 4 && strcmp(argv[1], "epoll") == 0)
		return epoll_recv(argv[2], strtoull(argv[3], NULL, 0));
	if (argc >= 3 && strcmp(argv[1], "info") == 0)
		return info(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "vale") == 0)
		return vale_ops(argv[2]);
	if (argc >= 3 && strcmp(argv[1], "legacy") == 0)
		return legacy_ops(argv[2]);
	if (argc >= 4 && strcmp(argv[1], "polling") == 0)
		return polling(argc, argv);
	if (argc >= 4 && strcmp(argv[1], "pingpong") == 0)
		return pingpong(argv[2], strtoull(argv[3], NULL, 0));
	if (argc >= 4 && strcmp(argv[1], "reflect") == 0)
		return reflect(argv[2], atoi(argv[3]));
	if (argc >= 4 && strcmp(argv[1], "extra") == 0)
		return extra(argv[2], strtoul(argv[3], NULL, 0));
	if (argc >= 4 && strcmp(argv[1], "fork") == 0)
		return fork_send(argv[2], atoi(argv[3]));
	if (argc >= 3 && strcmp(argv[1], "dead") == 0) {
		fd = regist(argv[2], NR_REG_ALL_NIC, 0, NULL, &r);
		if (fd < 0) {
			perror("register");
			return 1;
		}
		printf("registered\n");
		for (;;) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			int n = poll(&p, 1, 20000);
			if (n <= 0) {
				printf("poll %d\n", n);
				return 1;
			}
			if (p.revents & POLLERR) {
				printf("POLLERR\n");
				return 0;
			}
		}
	}
	fprintf(stderr, "usage: see the comment at the top of nmcheck.c\n");
	return 2;
}
