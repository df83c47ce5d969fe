/*
 * nmsendrecv: sends or receives numbered frames through a netmap port the
 * way netmap programs do (open /dev/netmap, register, mmap, walk the rings
 * with netmap_user.h, sync with ioctl and poll), and checks every one.
 *
 *   nmsendrecv tx|rx NAME COUNT [-legacy] [-select] [-ring N] [-any] [-nowait] [-slow] [-pace N]
 *
 * tx sends COUNT 60-byte frames numbered 0..COUNT-1 and waits until the
 * switch took them all; rx receives until it has COUNT, checking that they
 * come in order, and fails after 10 s without a frame. Both print one line
 * with their count. -legacy registers with NIOCREGIF instead of NIOCCTRL,
 * -select waits with select instead of poll, -ring N binds ring N only,
 * -any makes rx count frames of any content (another program's), -nowait
 * makes tx exit as soon as its last sync returns, frames still in the ring
 * (netmap forwards inside the sync: they must arrive all the same), and
 * -slow makes rx take a frame every 20 us, and -pace N makes tx send N
 * frames a second.
 * Every wait also watches an idle pipe, as programs mixing descriptors do.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <unistd.h>

#include <net/netmap_user.h>

static int legacy, use_select, any, nowait, slow, one_ring = -1;
static long pace; /* frames per second, 0: as fast as the port takes them */

static void die(const char *what)
{
	fprintf(stderr, "nmsendrecv: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* reg registers fd with name and returns the binding's netmap_if. */
static struct netmap_if *reg(int fd, const char *name, uint16_t *first)
{
	void *mem;
	uint64_t offset, size;

	if (legacy) {
		struct nmreq req;
		memset(&req, 0, sizeof(req));
		snprintf(req.nr_name, sizeof(req.nr_name), "%s", name);
		req.nr_version = NETMAP_API;
		if (one_ring >= 0)
			req.nr_ringid = NETMAP_HW_RING | one_ring;
		if (ioctl(fd, NIOCREGIF, &req) < 0)
			die("NIOCREGIF");
		offset = req.nr_offset;
		size = req.nr_memsize;
	} else {
		struct nmreq_header hdr;
		struct nmreq_register r;
		memset(&hdr, 0, sizeof(hdr));
		memset(&r, 0, sizeof(r));
		hdr.nr_version = NETMAP_API;
		hdr.nr_reqtype = NETMAP_REQ_REGISTER;
		snprintf(hdr.nr_name, sizeof(hdr.nr_name), "%s", name);
		hdr.nr_body = (uintptr_t)&r;
		r.nr_mode = one_ring >= 0 ? NR_REG_ONE_NIC : NR_REG_ALL_NIC;
		r.nr_ringid = one_ring >= 0 ? one_ring : 0;
		if (ioctl(fd, NIOCCTRL, &hdr) < 0)
			die("NIOCCTRL REGISTER");
		offset = r.nr_offset;
		size = r.nr_memsize;
		if (r.nr_mem_id == 0) {
			fprintf(stderr, "nmsendrecv: memory id 0\n");
			exit(1);
		}
	}
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	*first = one_ring >= 0 ? one_ring : 0;
	return NETMAP_IF(mem, offset);
}

/* wait_for waits until fd is ready for events (and not the idle pipe). */
static void wait_for(int fd, int idle, short events)
{
	if (use_select) {
		fd_set r, w;
		struct timeval tv = {.tv_sec = 10};
		FD_ZERO(&r);
		FD_ZERO(&w);
		FD_SET(idle, &r);
		FD_SET(fd, events & POLLIN ? &r : &w);
		int n = select((fd > idle ? fd : idle) + 1, &r, &w, NULL, &tv);
		if (n < 0 && errno != EINTR)
			die("select");
		if (n == 0) {
			fprintf(stderr, "nmsendrecv: nothing for 10 s\n");
			exit(1);
		}
		if (FD_ISSET(idle, &r)) {
			fprintf(stderr, "nmsendrecv: the idle pipe fired\n");
			exit(1);
		}
		return;
	}
	struct pollfd p[2] = {{.fd = idle, .events = POLLIN}, {.fd = fd, .events = events}};
	int n = poll(p, 2, 10000);
	if (n < 0 && errno != EINTR)
		die("poll");
	if (n == 0) {
		fprintf(stderr, "nmsendrecv: nothing for 10 s\n");
		exit(1);
	}
	if (p[0].revents) {
		fprintf(stderr, "nmsendrecv: the idle pipe fired\n");
		exit(1);
	}
	if (p[1].revents & POLLERR) {
		fprintf(stderr, "nmsendrecv: POLLERR\n");
		exit(1);
	}
}

static void send_all(int fd, struct netmap_ring *ring, int idle, uint64_t count)
{
	uint64_t sent = 0;

	while (sent < count) {
		if (nm_ring_space(ring) == 0)
			wait_for(fd, idle, POLLOUT);
		uint32_t head = ring->head;
		for (int k = 0; sent < count && head != ring->tail && (!pace || k < 64); k++) {
			struct netmap_slot *s = &ring->slot[head];
			unsigned char *b = (unsigned char *)NETMAP_BUF(ring, s->buf_idx);
			memset(b, 0xff, 6);
			memcpy(b + 6, "\x02\x00\x00\x00\x00\x01", 6);
			b[12] = 0x88, b[13] = 0xb5;
			memcpy(b + 14, &sent, sizeof(sent));
			s->len = 60;
			s->flags = 0;
			sent++;
			head = nm_ring_next(ring, head);
		}
		ring->head = ring->cur = head;
		if (ioctl(fd, NIOCTXSYNC, NULL) < 0)
			die("NIOCTXSYNC");
		if (pace)
			usleep(1000000LL * 64 / pace);
	}
	/* Wait for the other side to take everything: a switch always does;
	 * a pipe's reader gives the slots back at its next sync, if any. */
	for (int i = 0; !nowait && nm_tx_pending(ring) && i < 50000; i++) {
		if (ioctl(fd, NIOCTXSYNC, NULL) < 0)
			die("NIOCTXSYNC");
		usleep(100);
	}
	printf("sent %llu\n", (unsigned long long)sent);
}

/* receive_all reads the bound RX rings (those whose ring_ofs is not 0) of
 * nifp until count frames arrived. */
static void receive_all(int fd, struct netmap_if *nifp, int idle, uint64_t count)
{
	struct netmap_ring *rings[64];
	unsigned n = 0;
	uint64_t got = 0;

	for (unsigned i = 0; i < nifp->ni_rx_rings && n < 64; i++)
		if (nifp->ring_ofs[i + nifp->ni_tx_rings + nifp->ni_host_tx_rings])
			rings[n++] = NETMAP_RXRING(nifp, i);
	while (got < count) {
		int empty = 1;
		for (unsigned i = 0; i < n; i++)
			empty &= nm_ring_empty(rings[i]);
		if (empty)
			wait_for(fd, idle, POLLIN);
		for (unsigned i = 0; i < n; i++) {
			struct netmap_ring *ring = rings[i];
			while (!nm_ring_empty(ring)) {
				struct netmap_slot *s = &ring->slot[ring->cur];
				uint64_t seq;
				memcpy(&seq, NETMAP_BUF(ring, s->buf_idx) + 14, sizeof(seq));
				if (!any && (s->len != 60 || seq != got)) {
					fprintf(stderr, "nmsendrecv: frame %llu: length %u, number %llu\n",
						(unsigned long long)got, s->len, (unsigned long long)seq);
					exit(1);
				}
				got++;
				ring->head = ring->cur = nm_ring_next(ring, ring->cur);
				if (slow) {
					ioctl(fd, NIOCRXSYNC, NULL);
					usleep(20);
				}
			}
		}
	}
	if (ioctl(fd, NIOCRXSYNC, NULL) < 0) /* give the last slots back */
		die("NIOCRXSYNC");
	printf("received %llu\n", (unsigned long long)got);
}

int main(int argc, char **argv)
{
	int fd, idle[2];
	uint16_t first;
	struct netmap_if *nifp;

	if (argc < 4) {
		fprintf(stderr, "usage: nmsendrecv tx|rx NAME COUNT [-legacy] [-select] [-ring N] [-any] [-nowait] [-slow] [-pace N]\n");
		return 2;
	}
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "-legacy") == 0)
			legacy = 1;
		else if (strcmp(argv[i], "-select") == 0)
			use_select = 1;
		else if (strcmp(argv[i], "-pace") == 0 && i + 1 < argc)
			pace = atol(argv[++i]);
		else if (strcmp(argv[i], "-slow") == 0)
			slow = 1;
		else if (strcmp(argv[i], "-nowait") == 0)
			nowait = 1;
		else if (strcmp(argv[i], "-any") == 0)
			any = 1;
		else if (strcmp(argv[i], "-ring") == 0 && i + 1 < argc)
			one_ring = atoi(argv[++i]);
	}
	if (pipe(idle) < 0)
		die("pipe");
	fd = open("/dev/netmap", O_RDWR);
	if (fd < 0)
		die("open /dev/netmap");
	nifp = reg(fd, argv[2], &first);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("%s: %u tx and %u rx rings\n", nifp->ni_name, nifp->ni_tx_rings, nifp->ni_rx_rings);
	if (strcmp(argv[1], "tx") == 0)
		send_all(fd, NETMAP_TXRING(nifp, first), idle[0], strtoull(argv[3], NULL, 0));
	else
		receive_all(fd, nifp, idle[0], strtoull(argv[3], NULL, 0));
	close(fd);
	return 0;
}
