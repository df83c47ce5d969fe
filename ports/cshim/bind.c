/*
 * Registering a netmap descriptor with valed: the name netmap's request
 * describes, the open request, the memory, and the shim's view of the
 * bound rings.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define MAX_REGIONS 256
#define MAX_BIND_FDS 70

static struct shim_region *regions[MAX_REGIONS];

/* mode_suffix is the name suffix of each register mode (netmap's name
 * grammar), and whether the ring number follows it. */
static const struct {
	const char *suffix;
	int ring;
} mode_suffix[] = {
	[NR_REG_DEFAULT] = {"", 0},  [NR_REG_ALL_NIC] = {"", 0},     [NR_REG_SW] = {"^", 0},
	[NR_REG_NIC_SW] = {"*", 0},  [NR_REG_ONE_NIC] = {"-", 1},    [NR_REG_PIPE_MASTER] = {"{", 1},
	[NR_REG_PIPE_SLAVE] = {"}", 1}, [NR_REG_NULL] = {"", 0},     [NR_REG_ONE_SW] = {"^", 1},
};

/* compose_name writes the vale port name that netmap's request asks for:
 * the port, a ring or pipe suffix from the mode, the flags, and @conf for
 * a geometry. It returns -1 (errno set, message printed) for what vale
 * has no counterpart of. */
static int compose_name(char *out, size_t cap, const char *name, uint32_t mode, uint32_t ringid,
			uint64_t flags, uint32_t tx_slots, uint32_t rx_slots, uint32_t tx_rings, uint32_t rx_rings)
{
	size_t n;
	char conf[160] = "";
	size_t c = 0;
	const char *at = strchr(name, '@'); /* options in the name follow the suffixes */

	n = snprintf(out, cap, "%.*s", at ? (int)(at - name) : (int)strlen(name), name);
	if (mode == NR_REG_NULL) {
		shim_warn("%s: NR_REG_NULL ports do not exist in vale", name);
		errno = EOPNOTSUPP;
		return -1;
	}
	if (mode >= sizeof(mode_suffix) / sizeof(mode_suffix[0])) {
		shim_warn("%s: unknown register mode %u", name, mode);
		errno = EINVAL;
		return -1;
	}
	n += snprintf(out + n, cap > n ? cap - n : 0, "%s", mode_suffix[mode].suffix);
	if (mode_suffix[mode].ring)
		n += snprintf(out + n, cap > n ? cap - n : 0, "%u", ringid);
	if (flags & (NR_EXCLUSIVE | NR_ZCOPY_MON | NR_MONITOR_TX | NR_MONITOR_RX | NR_RX_RINGS_ONLY | NR_TX_RINGS_ONLY)) {
		n += snprintf(out + n, cap > n ? cap - n : 0, "/%s%s%s%s%s%s",
			      flags & NR_EXCLUSIVE ? "x" : "", flags & NR_ZCOPY_MON ? "z" : "",
			      flags & NR_MONITOR_TX ? "t" : "", flags & NR_MONITOR_RX ? "r" : "",
			      flags & NR_RX_RINGS_ONLY ? "R" : "", flags & NR_TX_RINGS_ONLY ? "T" : "");
	}
	if (at)
		n += snprintf(out + n, cap > n ? cap - n : 0, "%s", at);
	if (tx_rings)
		c += snprintf(conf + c, sizeof(conf) - c, ",tx-rings=%u", tx_rings);
	if (rx_rings)
		c += snprintf(conf + c, sizeof(conf) - c, ",rx-rings=%u", rx_rings);
	if (tx_slots)
		c += snprintf(conf + c, sizeof(conf) - c, ",tx-slots=%u", tx_slots);
	if (rx_slots)
		c += snprintf(conf + c, sizeof(conf) - c, ",rx-slots=%u", rx_slots);
	if (c)
		n += snprintf(out + n, cap > n ? cap - n : 0, "@conf:%s", conf + 1);
	if (n >= cap) {
		shim_warn("%s: name too long", name);
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* map_region returns the process's mapping of the region with this memory
 * id, mapping memfd if there is none (the caller holds the lock). It takes
 * memfd in either case. */
static struct shim_region *map_region(uint16_t mem_id, int memfd, size_t size)
{
	int free_slot = -1;

	for (int i = 0; i < MAX_REGIONS; i++) {
		struct shim_region *r = regions[i];
		if (!r) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (r->mem_id == mem_id && r->size == size) {
			real_close(memfd);
			r->refs++;
			return r;
		}
	}
	if (free_slot < 0) {
		real_close(memfd);
		errno = ENOMEM;
		return NULL;
	}
	struct shim_region *r = calloc(1, sizeof(*r));
	if (!r) {
		real_close(memfd);
		errno = ENOMEM;
		return NULL;
	}
	r->base = real_mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (r->base == MAP_FAILED) {
		int saved = errno;
		real_close(memfd);
		free(r);
		errno = saved;
		return NULL;
	}
	r->mem_id = mem_id;
	r->memfd = memfd;
	r->size = size;
	r->refs = 1;
	regions[free_slot] = r;
	return r;
}

/* region_put drops a reference, unmapping the region once neither a
 * binding nor the application uses it (the caller holds the lock). */
void region_put(struct shim_region *r, int app)
{
	if (app)
		r->app_maps--;
	else
		r->refs--;
	if (r->refs > 0 || r->app_maps > 0)
		return;
	for (int i = 0; i < MAX_REGIONS; i++)
		if (regions[i] == r)
			regions[i] = NULL;
	real_munmap(r->base, r->size);
	real_close(r->memfd);
	free(r);
}

/* find_region returns the region mapped at base (the caller holds the
 * lock). */
struct shim_region *find_region(void *base)
{
	for (int i = 0; i < MAX_REGIONS; i++)
		if (regions[i] && regions[i]->base == base)
			return regions[i];
	return NULL;
}

/* within reports whether [off, off+len) lies inside a region of size. */
static int within(int64_t off, int64_t len, size_t size)
{
	return off >= 0 && len >= 0 && (uint64_t)off <= size && (uint64_t)len <= size - (uint64_t)off;
}

/* vale_iface returns vale's interface header at ofs, checked against the
 * region, or NULL. */
static struct vale_if *vale_iface(struct shim_region *reg, int64_t ofs)
{
	struct vale_if *vi;

	if (!within(ofs, sizeof(struct vale_if), reg->size) || ofs % 8)
		return NULL;
	vi = (struct vale_if *)(reg->base + ofs);
	if (vi->magic != VALE_MAGIC || vi->version != VALE_VERSION || vi->tx_rings + vi->rx_rings > VALE_MAX_RINGS ||
	    !within(ofs + 128, 16 * (int64_t)(vi->tx_rings + vi->rx_rings), reg->size))
		return NULL;
	return vi;
}

/* locate finds ring idx (TX rings first) of the interface at ofs: its
 * netmap ring and its control block, checked against the region. */
static int locate(struct shim_region *reg, int64_t ofs, struct vale_if *vi, uint32_t idx,
		  struct netmap_ring **nm, struct vale_ctl **ctl)
{
	uint32_t n = vi->tx_rings + vi->rx_rings;
	int64_t *table = (int64_t *)(reg->base + ofs + 128);
	int64_t ro = ofs + table[idx], co = ofs + table[n + idx];

	if (idx >= n || !within(ro, 256, reg->size) || !within(co, sizeof(struct vale_ctl), reg->size) || ro % 8 || co % 8)
		return -1;
	*nm = (struct netmap_ring *)(reg->base + ro);
	*ctl = (struct vale_ctl *)(reg->base + co);
	if ((*ctl)->num_slots < 2 || (*ctl)->num_slots != (*nm)->num_slots ||
	    !within(ro + 256, 16 * (int64_t)(*ctl)->num_slots, reg->size))
		return -1;
	return 0;
}

/* setup_rings builds the views of the bound rings from vale's interface
 * header at if_ofs, checking every offset against the region. */
static int setup_rings(struct shim_binding *b, int64_t if_ofs, int64_t tx_first, int64_t rx_first)
{
	struct vale_if *vi = vale_iface(b->reg, if_ofs);

	if (!vi || vi->tx_rings != b->tx_rings || vi->rx_rings != b->rx_rings)
		return -1;
	if (vi->buf_size == 0 || vi->buf_ofs < 0 || (uint64_t)vi->buf_ofs > b->reg->size ||
	    (uint64_t)vi->num_bufs * vi->buf_size > b->reg->size - (uint64_t)vi->buf_ofs)
		return -1;
	b->num_bufs = vi->num_bufs;
	b->bufs = b->reg->base + vi->buf_ofs;
	b->buf_size = vi->buf_size;
	for (int i = 0; i < b->ntx + b->nrx; i++) {
		int tx = i < b->ntx;
		struct shim_ring *r = tx ? &b->tx[i] : &b->rx[i - b->ntx];
		int id = tx ? tx_first + i : rx_first + (i - b->ntx);
		if (locate(b->reg, if_ofs, vi, tx ? id : (int)vi->tx_rings + id, &r->nm, &r->ctl) < 0)
			return -1;
		r->num = r->ctl->num_slots;
		r->tx = tx;
		r->id = id;
		r->kick_fd = r->peer_fd = -1;
		r->pub_head = __atomic_load_n(&r->ctl->head, __ATOMIC_ACQUIRE) % r->num;
		r->pub_cur = __atomic_load_n(&r->ctl->cur, __ATOMIC_ACQUIRE) % r->num;
		r->tail = __atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE) % r->num;
		r->reset_ack = __atomic_load_n(&r->ctl->reset_gen, __ATOMIC_ACQUIRE);
		r->nm->head = r->pub_head;
		r->nm->cur = r->pub_cur;
		*(uint32_t *)&r->nm->tail = r->tail;
	}
	return 0;
}

/* setup_peer joins a pipe end's bound rings with the peer's (at
 * peer_ofs): TX ring i feeds the peer's RX ring i, RX ring i borrows from
 * the peer's TX ring i. peer_fds are the peer's eventfds for ring pairs
 * [nf, nf+nwait). */
static int setup_peer(struct shim_binding *b, int64_t peer_ofs, int64_t nf, int *peer_fds)
{
	struct vale_if *pv = vale_iface(b->reg, peer_ofs);

	if (!pv || pv->rx_rings != b->tx_rings || pv->tx_rings != b->rx_rings)
		return -1;
	for (int i = 0; i < b->ntx + b->nrx; i++) {
		int tx = i < b->ntx;
		struct shim_ring *r = tx ? &b->tx[i] : &b->rx[i - b->ntx];
		struct netmap_ring *pnm;
		uint32_t hw;
		if (locate(b->reg, peer_ofs, pv, tx ? pv->tx_rings + r->id : (uint32_t)r->id, &pnm, &r->peer_ctl) < 0 ||
		    r->peer_ctl->num_slots != r->num)
			return -1;
		r->pipe = 1;
		r->peer_slots = pnm->slot;
		hw = __atomic_load_n(&r->ctl->hwcur, __ATOMIC_ACQUIRE);
		r->hw = hw < r->num ? hw : r->pub_head; /* resume where an earlier binding stopped */
		if (r->id - nf >= 0 && r->id - nf < b->nwait)
			r->peer_fd = peer_fds[r->id - nf];
	}
	return 0;
}

/* read_pools fills netmap's pools description from valed's open reply. */
static void read_pools(const char *reply, struct nmreq_pools_info *p, int64_t mem_size, int64_t mem_id)
{
	int64_t v;

	memset(p, 0, sizeof(*p));
	p->nr_memsize = mem_size;
	p->nr_mem_id = mem_id;
#define POOL(field, key) if (json_int(reply, key, &v) == 0) p->field = v
	POOL(nr_if_pool_offset, "if_pool_ofs");
	POOL(nr_if_pool_objtotal, "if_pool_total");
	POOL(nr_if_pool_objsize, "if_pool_size");
	POOL(nr_ring_pool_offset, "ring_pool_ofs");
	POOL(nr_ring_pool_objtotal, "ring_pool_total");
	POOL(nr_ring_pool_objsize, "ring_pool_size");
	POOL(nr_buf_pool_offset, "buf_pool_ofs");
	POOL(nr_buf_pool_objtotal, "buf_pool_total");
	POOL(nr_buf_pool_objsize, "buf_pool_size");
#undef POOL
}

static void close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			real_close(fds[i]);
}

/* reconnect replaces f's connection with a fresh one on the same
 * descriptor number, which ends the binding valed made for it. */
static void reconnect(struct shim_fd *f)
{
	int s = ctl_connect(1);
	if (s >= 0) {
		real_dup3(s, f->sock, O_CLOEXEC);
		real_close(s);
	}
}

/* bind_reply turns valed's open reply into f's binding. */
static int bind_reply(struct shim_fd *f, const char *reply, int *fds, int nfds, uint64_t flags)
{
	int64_t mem_size, if_ofs, nif_ofs, mem_id, txf, txl, rxf, rxl, nf, nl, v;
	char kind[32];
	struct shim_binding *b;

	if (json_str(reply, "kind", kind, sizeof(kind)) || json_int(reply, "mem_size", &mem_size) ||
	    json_int(reply, "if_ofs", &if_ofs) || json_int(reply, "nif_ofs", &nif_ofs) ||
	    json_int(reply, "mem_id", &mem_id) || json_int(reply, "tx_first", &txf) ||
	    json_int(reply, "tx_last", &txl) || json_int(reply, "rx_first", &rxf) ||
	    json_int(reply, "rx_last", &rxl) || json_int(reply, "notify_first", &nf) ||
	    json_int(reply, "notify_last", &nl) || nfds < 1 || mem_size <= 0) {
		shim_warn("valed's answer to open is not one this library understands (is valed older?)");
		errno = EPROTO;
		return -1;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -1;
	b->ntx = txl - txf;
	b->nrx = rxl - rxf;
	b->nwait = nl - nf;
	b->tx = calloc(b->ntx + 1, sizeof(*b->tx));
	b->rx = calloc(b->nrx + 1, sizeof(*b->rx));
	b->wait_fds = calloc(b->nwait + 1, sizeof(int));
	b->nextra = nfds - 1 - b->nwait;
	b->extra_fds = calloc(b->nextra > 0 ? b->nextra : 1, sizeof(int));
	json_str(reply, "port", b->port, sizeof(b->port));
	json_int(reply, "tx_rings", &v), b->tx_rings = v;
	json_int(reply, "rx_rings", &v), b->rx_rings = v;
	json_int(reply, "tx_slots", &v), b->tx_slots = v;
	json_int(reply, "rx_slots", &v), b->rx_slots = v;
	b->nif_ofs = nif_ofs;
	b->mem_id = mem_id;
	b->flags = flags;
	b->ticket = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
	int pipe = strcmp(kind, "pipe") == 0;
	int want = pipe ? b->nwait : strcmp(kind, "zerocopy-monitor") == 0 ? b->ntx : b->ntx + b->nrx;
	if (!b->tx || !b->rx || !b->wait_fds || !b->extra_fds || b->nextra != want) {
		shim_warn("%s: valed sent %d descriptors for %d TX and %d RX rings", b->port, nfds, b->ntx, b->nrx);
		errno = EPROTO;
		goto fail;
	}
	b->reg = map_region(mem_id, fds[0], mem_size);
	fds[0] = -1;
	if (!b->reg)
		goto fail;
	if (!within(nif_ofs, 56, mem_size) || setup_rings(b, if_ofs, txf, rxf) < 0) {
		shim_warn("%s: the port's memory does not hold what valed announced", b->port);
		errno = EPROTO;
		goto fail;
	}
	memcpy(b->wait_fds, fds + 1, b->nwait * sizeof(int));
	memcpy(b->extra_fds, fds + 1 + b->nwait, b->nextra * sizeof(int));
	if (pipe) {
		int64_t peer_ofs;
		if (json_int(reply, "peer_if_ofs", &peer_ofs) || setup_peer(b, peer_ofs, nf, b->extra_fds) < 0) {
			shim_warn("%s: the pipe's memory does not hold the peer valed announced", b->port);
			errno = EPROTO;
			goto fail;
		}
	} else {
		for (int i = 0; i < b->ntx && i < b->nextra; i++)
			b->tx[i].kick_fd = b->extra_fds[i];
		for (int i = 0; i < b->nrx && b->ntx + i < b->nextra; i++)
			b->rx[i].kick_fd = b->extra_fds[b->ntx + i];
	}
	if (json_int(reply, "granted_bufs", &v) == 0)
		b->extra_bufs = v;
	read_pools(reply, &b->pools, mem_size, mem_id);
	b->owner = f;
	f->b = b;
	return 0;
fail:
	if (b->reg)
		region_put(b->reg, 0);
	free(b->tx);
	free(b->rx);
	free(b->wait_fds);
	free(b->extra_fds);
	free(b);
	return -1;
}

/* shim_register binds f to the port netmap's request names. */
int shim_register(struct shim_fd *f, const char *name, uint32_t mode, uint32_t ringid, uint64_t flags,
		  uint32_t tx_slots, uint32_t rx_slots, uint32_t tx_rings, uint32_t rx_rings, uint32_t extra_bufs)
{
	char vname[256], qname[600], req[800], *reply;
	int fds[MAX_BIND_FDS], nfds, n, saved;
	if (f->b) {
		errno = EBUSY;
		return -1;
	}
	if (compose_name(vname, sizeof(vname), name, mode, ringid, flags, tx_slots, rx_slots, tx_rings, rx_rings) < 0)
		return -1;
	json_quote(qname, sizeof(qname), vname);
	n = snprintf(req, sizeof(req), "{\"op\":\"open\",\"body\":{\"name\":%s,\"extra_bufs\":%u}}", qname, extra_bufs);
	if (ctl_call(f->sock, req, n, &reply, fds, MAX_BIND_FDS, &nfds) < 0)
		return -1;
	if (bind_reply(f, reply, fds, nfds, flags) < 0) {
		saved = errno;
		close_all(fds, nfds);
		reconnect(f);
		free(reply);
		errno = saved;
		return -1;
	}
	int64_t feeds = 0;
	if (json_int(reply, "feeds", &feeds) == 0 && feeds > 0)
		shim_feed_wait(f->b, f->sock, feeds); /* the monitors to feed from the first sync on */
	free(reply);
	return 0;
}

/* shim_port_info asks valed for the geometry of a port, without binding
 * it (netmap's PORT_INFO_GET and NIOCGINFO). */
int shim_port_info(struct shim_fd *f, const char *name, struct nmreq_port_info_get *info)
{
	char qname[600], req[800], *reply;
	int fds[4], nfds, n;
	int64_t v;

	json_quote(qname, sizeof(qname), name);
	n = snprintf(req, sizeof(req), "{\"op\":\"info\",\"body\":{\"name\":%s}}", qname);
	if (ctl_call(f->sock, req, n, &reply, fds, 4, &nfds) < 0)
		return -1;
	close_all(fds, nfds);
	memset(info, 0, sizeof(*info));
	if (json_int(reply, "tx_rings", &v) == 0)
		info->nr_tx_rings = v;
	if (json_int(reply, "rx_rings", &v) == 0)
		info->nr_rx_rings = v;
	if (json_int(reply, "tx_slots", &v) == 0)
		info->nr_tx_slots = v;
	if (json_int(reply, "rx_slots", &v) == 0)
		info->nr_rx_slots = v;
	if (json_int(reply, "Size", &v) == 0 || json_int(reply, "mem_size", &v) == 0)
		info->nr_memsize = v;
	if (f->b)
		info->nr_mem_id = f->b->mem_id;
	free(reply);
	return 0;
}

/* shim_unbind releases a binding's descriptors and memory (the caller
 * holds the lock). */
void shim_unbind(struct shim_binding *b)
{
	shim_feeds_free(b);
	close_all(b->wait_fds, b->nwait);
	close_all(b->extra_fds, b->nextra);
	region_put(b->reg, 0);
	free(b->tx);
	free(b->rx);
	free(b->wait_fds);
	free(b->extra_fds);
	free(b);
}
