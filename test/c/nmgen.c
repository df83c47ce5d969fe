/*
 * nmgen: the core loop of netmap's pkt-gen, for benchmarks: tx sends
 * 60-byte frames as fast as the port takes them, rx receives and counts,
 * both waiting with poll as pkt-gen does, until SIGINT or SIGTERM; each
 * then prints its count.
 *
 *   nmgen tx|rx NAME [BURST]
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <net/netmap_user.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
	struct nmreq_header hdr;
	struct nmreq_register reg;
	struct netmap_if *nifp;
	unsigned burst = argc > 3 ? (unsigned)atoi(argv[3]) : 512;
	unsigned long long count = 0;
	int fd, tx;
	char *mem;

	if (argc < 3 || (strcmp(argv[1], "tx") && strcmp(argv[1], "rx"))) {
		fprintf(stderr, "usage: nmgen tx|rx NAME [BURST]\n");
		return 2;
	}
	tx = strcmp(argv[1], "tx") == 0;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fd = open("/dev/netmap", O_RDWR);
	if (fd < 0) {
		perror("open /dev/netmap");
		return 1;
	}
	memset(&hdr, 0, sizeof(hdr));
	memset(&reg, 0, sizeof(reg));
	hdr.nr_version = NETMAP_API;
	hdr.nr_reqtype = NETMAP_REQ_REGISTER;
	snprintf(hdr.nr_name, sizeof(hdr.nr_name), "%s", argv[2]);
	hdr.nr_body = (uintptr_t)&reg;
	reg.nr_mode = NR_REG_ALL_NIC;
	if (ioctl(fd, NIOCCTRL, &hdr) < 0) {
		perror("register");
		return 1;
	}
	mem = mmap(NULL, reg.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	nifp = NETMAP_IF(mem, reg.nr_offset);
	if (tx) {
		/* the frame goes into every buffer once, as pkt-gen does */
		for (unsigned r = 0; r < nifp->ni_tx_rings; r++) {
			struct netmap_ring *ring = NETMAP_TXRING(nifp, r);
			for (unsigned i = 0; i < ring->num_slots; i++) {
				char *b = NETMAP_BUF(ring, ring->slot[i].buf_idx);
				memset(b, 0xff, 6);
				memcpy(b + 6, "\x02\x00\x00\x00\x00\x01", 6);
				b[12] = 0x08, b[13] = 0x00;
				memset(b + 14, 0, 46);
			}
		}
	}
	while (!stop) {
		struct pollfd p = {.fd = fd, .events = tx ? POLLOUT : POLLIN};
		if (poll(&p, 1, 1000) < 0 && errno != EINTR) {
			perror("poll");
			return 1;
		}
		unsigned n = tx ? nifp->ni_tx_rings : nifp->ni_rx_rings;
		for (unsigned r = 0; r < n; r++) {
			struct netmap_ring *ring = tx ? NETMAP_TXRING(nifp, r) : NETMAP_RXRING(nifp, r);
			unsigned space = nm_ring_space(ring), k = 0;
			uint32_t cur = ring->cur;
			if (tx && space > burst)
				space = burst;
			for (; k < space; k++) {
				if (tx)
					ring->slot[cur].len = 60;
				cur = nm_ring_next(ring, cur);
			}
			ring->head = ring->cur = cur;
			count += k;
		}
	}
	if (tx)
		ioctl(fd, NIOCTXSYNC, NULL);
	printf("%s %llu\n", tx ? "sent" : "received", count);
	return 0;
}
