/*
 * netmap's VALE control requests, served by valed's management operations
 * (those vale-ctl uses): attach, detach, list, persistent interfaces, and
 * the port header length.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

#define MAX_LISTED 1024

/* listed is a port of valed's listing: its switch's position and its
 * index on the switch. */
struct listed {
	char name[NETMAP_REQ_IFNAMSIZ];
	int sw, port;
};

struct listing {
	char switches[64][NETMAP_REQ_IFNAMSIZ];
	int nsw;
	struct listed ports[MAX_LISTED];
	int nports;
	char sw_of[MAX_LISTED][NETMAP_REQ_IFNAMSIZ]; /* switch names of ports, resolved at the end */
};

static int add_switch(const char *obj, void *arg)
{
	struct listing *l = arg;
	if (l->nsw < 64 && json_str(obj, "name", l->switches[l->nsw], NETMAP_REQ_IFNAMSIZ) == 0)
		l->nsw++;
	return 0;
}

static int add_port(const char *obj, void *arg)
{
	struct listing *l = arg;
	int64_t idx;
	struct listed *p = &l->ports[l->nports];

	if (l->nports >= MAX_LISTED || json_str(obj, "name", p->name, sizeof(p->name)) ||
	    json_str(obj, "switch", l->sw_of[l->nports], NETMAP_REQ_IFNAMSIZ) || json_int(obj, "index", &idx))
		return 0;
	p->port = idx;
	l->nports++;
	return 0;
}

static int add_body(const char *body, void *arg)
{
	json_objects(body, "switches", add_switch, arg);
	json_objects(body, "ports", add_port, arg);
	return 0;
}

/* list fetches valed's switches and ports. */
static struct listing *list(struct shim_fd *f)
{
	static const char req[] = "{\"op\":\"list\",\"body\":{}}";
	struct listing *l = calloc(1, sizeof(*l));

	if (!l) {
		errno = ENOMEM;
		return NULL;
	}
	if (ctl_stream(f->sock, req, sizeof(req) - 1, add_body, l) < 0) {
		free(l);
		return NULL;
	}
	for (int i = 0; i < l->nports; i++) {
		l->ports[i].sw = -1;
		for (int s = 0; s < l->nsw; s++)
			if (strcmp(l->sw_of[i], l->switches[s]) == 0)
				l->ports[i].sw = s;
	}
	return l;
}

/* vale_list serves NETMAP_REQ_VALE_LIST: with a name, the switch and port
 * indexes of that port; without, the first port at or after the indexes
 * given, by name. */
static int vale_list(struct shim_fd *f, struct nmreq_header *hdr, const char *name, struct nmreq_vale_list *req)
{
	struct listing *l = list(f);
	struct listed *best = NULL;

	if (!l)
		return -1;
	for (int i = 0; i < l->nports; i++) {
		struct listed *p = &l->ports[i];
		if (p->sw < 0)
			continue;
		if (name[0]) {
			if (strcmp(p->name, name) == 0)
				best = p;
			continue;
		}
		if (p->sw < req->nr_bridge_idx || (p->sw == req->nr_bridge_idx && p->port < (int)req->nr_port_idx))
			continue;
		if (!best || p->sw < best->sw || (p->sw == best->sw && p->port < best->port))
			best = p;
	}
	if (!best) {
		free(l);
		errno = ENOENT;
		return -1;
	}
	req->nr_bridge_idx = best->sw;
	req->nr_port_idx = best->port;
	if (!name[0])
		snprintf(hdr->nr_name, sizeof(hdr->nr_name), "%s", best->name);
	free(l);
	return 0;
}

/* call sends the operation op with body (JSON) and returns valed's reply
 * (to free), or NULL with errno set. */
static char *call(struct shim_fd *f, const char *op, const char *body)
{
	char req[1024], *reply;
	int fds[8], nfds;
	int n = snprintf(req, sizeof(req), "{\"op\":\"%s\",\"body\":%s}", op, body);

	if (n >= (int)sizeof(req)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (ctl_call(f->sock, req, n, &reply, fds, 8, &nfds) < 0)
		return NULL;
	for (int i = 0; i < nfds; i++)
		real_close(fds[i]);
	return reply;
}

/* port_index looks the port up in valed's listing. */
static int port_index(struct shim_fd *f, const char *name, uint32_t *idx)
{
	struct nmreq_header hdr = {0};
	struct nmreq_vale_list req = {0};

	if (vale_list(f, &hdr, name, &req) < 0)
		return -1;
	*idx = req.nr_port_idx;
	return 0;
}

/* polling_body writes valed's polling request for VALE_POLLING_ENABLE:
 * busy polling, every ring's worker on nr_first_cpu_id (SINGLE_CPU) or
 * ring i's on the i-th of nr_num_polling_cpus cores from it (MULTI_CPU). */
static int polling_body(char *body, size_t cap, const char *qname, const struct nmreq_vale_polling *p)
{
	uint32_t ncpus = p->nr_mode == NETMAP_POLLING_MODE_SINGLE_CPU ? 1 : p->nr_num_polling_cpus;
	size_t n;

	if ((p->nr_mode != NETMAP_POLLING_MODE_SINGLE_CPU && p->nr_mode != NETMAP_POLLING_MODE_MULTI_CPU) ||
	    p->nr_num_polling_cpus == 0 || ncpus > 64 || p->nr_first_cpu_id > 4096) {
		errno = EINVAL;
		return -1;
	}
	n = (size_t)snprintf(body, cap, "{\"name\":%s,\"busy\":true,\"cpus\":[", qname);
	for (uint32_t i = 0; i < ncpus && n < cap; i++)
		n += (size_t)snprintf(body + n, cap - n, "%s%u", i ? "," : "", p->nr_first_cpu_id + i);
	if (n < cap)
		n += (size_t)snprintf(body + n, cap - n, "]}");
	if (n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* shim_vale_ctrl serves the NIOCCTRL requests about switches and ports
 * rather than bindings. It returns -1 with errno EOPNOTSUPP for a request
 * it does not know. */
int shim_vale_ctrl(struct shim_fd *f, struct nmreq_header *hdr, const char *name)
{
	char body[700], qname[600];
	void *arg = (void *)(uintptr_t)hdr->nr_body;
	char *reply;

	if (!arg && hdr->nr_reqtype != NETMAP_REQ_VALE_DELIF && hdr->nr_reqtype != NETMAP_REQ_VALE_DETACH) {
		errno = EINVAL;
		return -1;
	}
	json_quote(qname, sizeof(qname), name);
	switch (hdr->nr_reqtype) {
	case NETMAP_REQ_VALE_LIST:
		return vale_list(f, hdr, name, arg);
	case NETMAP_REQ_VALE_ATTACH: {
		struct nmreq_vale_attach *a = arg;
		int64_t idx;
		snprintf(body, sizeof(body), "{\"name\":%s,\"host\":%s}", qname,
			 a->reg.nr_mode == NR_REG_NIC_SW ? "true" : "false");
		if (!(reply = call(f, "attach", body)))
			return -1;
		if (json_int(reply, "index", &idx) == 0)
			a->port_index = idx;
		free(reply);
		return 0;
	}
	case NETMAP_REQ_VALE_DETACH: {
		struct nmreq_vale_detach *dt = arg;
		uint32_t idx = 0;
		if (port_index(f, name, &idx) < 0)
			return -1;
		snprintf(body, sizeof(body), "{\"name\":%s}", qname);
		if (!(reply = call(f, "detach", body)))
			return -1;
		free(reply);
		if (dt)
			dt->port_index = idx;
		return 0;
	}
	case NETMAP_REQ_VALE_NEWIF: {
		struct nmreq_vale_newif *nf = arg;
		int rings = nf->nr_tx_rings > nf->nr_rx_rings ? nf->nr_tx_rings : nf->nr_rx_rings;
		snprintf(body, sizeof(body), "{\"name\":%s,\"rings\":%d,\"slots\":%u}", qname, rings,
			 nf->nr_tx_slots > nf->nr_rx_slots ? nf->nr_tx_slots : nf->nr_rx_slots);
		if (!(reply = call(f, "newif", body)))
			return -1;
		free(reply);
		return 0;
	}
	case NETMAP_REQ_VALE_DELIF:
		snprintf(body, sizeof(body), "{\"name\":%s}", qname);
		if (!(reply = call(f, "delif", body)))
			return -1;
		free(reply);
		return 0;
	case NETMAP_REQ_VALE_POLLING_ENABLE:
		if (polling_body(body, sizeof(body), qname, arg) < 0)
			return -1;
		if (!(reply = call(f, "polling", body)))
			return -1;
		free(reply);
		return 0;
	case NETMAP_REQ_VALE_POLLING_DISABLE:
		snprintf(body, sizeof(body), "{\"name\":%s}", qname);
		if (!(reply = call(f, "polling", body)))
			return -1;
		free(reply);
		return 0;
	case NETMAP_REQ_PORT_HDR_GET:
	case NETMAP_REQ_PORT_HDR_SET: {
		struct nmreq_port_hdr *ph = arg;
		int64_t len;
		if (hdr->nr_reqtype == NETMAP_REQ_PORT_HDR_SET)
			snprintf(body, sizeof(body), "{\"name\":%s,\"set\":true,\"len\":%u}", qname, ph->nr_hdr_len);
		else
			snprintf(body, sizeof(body), "{\"name\":%s}", qname);
		if (!(reply = call(f, "port_hdr", body)))
			return -1;
		if (json_int(reply, "len", &len) == 0)
			ph->nr_hdr_len = (uint32_t)len;
		free(reply);
		return 0;
	}
	default:
		errno = EOPNOTSUPP;
		return -1;
	}
}
