/*
 * netmap.h: netmap's structures, constants and ioctls, for C programs
 * built against vale (https://github.com/valeswitch/vale) and run with
 * libvale-netmap.so preloaded. Written for vale from netmap's documented
 * ABI (LP64): every offset matches netmap's, so a program compiled against
 * these headers and one compiled against netmap's own run the same way.
 */
#ifndef VALE_NET_NETMAP_H
#define VALE_NET_NETMAP_H

#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/types.h>

#define NETMAP_API 14     /* the version nr_version carries */
#define NETMAP_MIN_API 14
#define NETMAP_MAX_API 15

/* A slot of a ring: one buffer. */
struct netmap_slot {
	uint32_t buf_idx; /* buffer index */
	uint16_t len;     /* bytes in the buffer (one fragment) */
	uint16_t flags;   /* NS_* */
	uint64_t ptr;     /* NS_INDIRECT address (not supported by vale) */
};

#define NS_BUF_CHANGED 0x0001 /* buf_idx was changed by whoever swapped it */
#define NS_REPORT      0x0002 /* ask for a completion report */
#define NS_FORWARD     0x0004 /* pass to the peer ring on release */
#define NS_NO_LEARN    0x0008 /* VALE: do not learn the source MAC */
#define NS_INDIRECT    0x0010 /* payload at ptr (not supported by vale) */
#define NS_MOREFRAG    0x0020 /* more fragments of the frame follow */
#define NS_TXMON       0x0040 /* monitor slot that came from a TX ring */
#define NS_PORT_SHIFT  8
#define NS_PORT_MASK   (0xff << NS_PORT_SHIFT)
#define NS_RFRAGS(_slot) (((_slot)->flags >> 8) & 0xff)

#define NETMAP_MAX_FRAGS 64

/*
 * A ring: the 256-byte header, then num_slots slots. head, cur and flags
 * are the application's; tail and ts change only inside a sync (an ioctl
 * or poll).
 */
struct netmap_ring {
	const int64_t buf_ofs;      /* buffer 0, from the start of the ring */
	const uint32_t num_slots;   /* not always a power of 2 */
	const uint32_t nr_buf_size; /* bytes per buffer */
	const uint16_t ringid;
	const uint16_t dir;         /* 0: tx, 1: rx */
	uint32_t head;              /* first slot owned by the application */
	uint32_t cur;               /* wake-up point */
	const uint32_t tail;        /* first slot owned by the kernel side */
	uint32_t flags;             /* NR_* */
	struct timeval ts;          /* time of the last rx sync */
	const uint64_t offset_mask; /* 0: no per-slot offsets */
	const uint64_t buf_align;
	/* scratch space for the application, 128-aligned */
	uint8_t __attribute__((__aligned__(128))) sem[128];
	struct netmap_slot slot[0];
};

#define NR_TIMESTAMP 0x0002 /* set ts on every sync */
#define NR_FORWARD   0x0004 /* honour NS_FORWARD */

/* The interface a binding sees, at nr_offset in the region. */
struct netmap_if {
	char ni_name[16];
	const uint32_t ni_version;
	const uint32_t ni_flags;
	const uint32_t ni_tx_rings;
	const uint32_t ni_rx_rings;
	uint32_t ni_bufs_head; /* first extra buffer, chained by their first word */
	const uint32_t ni_host_tx_rings;
	const uint32_t ni_host_rx_rings;
	uint32_t ni_spare1[3];
	/* offsets of the rings from this structure: TX, host TX, RX, host RX;
	 * 0 for a ring the binding did not bind */
	const ssize_t ring_ofs[0];
};

#define NI_PRIV_MEM 0x1 /* the memory belongs to this interface alone */

/* The request header of NIOCCTRL. */
#define NETMAP_REQ_IFNAMSIZ 64
struct nmreq_header {
	uint16_t nr_version;
	uint16_t nr_reqtype;  /* NETMAP_REQ_* */
	uint32_t nr_reserved;
	char nr_name[NETMAP_REQ_IFNAMSIZ];
	uint64_t nr_options;  /* struct nmreq_option *, list */
	uint64_t nr_body;     /* the request's struct */
};

enum {
	NETMAP_REQ_REGISTER = 1,
	NETMAP_REQ_PORT_INFO_GET,
	NETMAP_REQ_VALE_ATTACH,
	NETMAP_REQ_VALE_DETACH,
	NETMAP_REQ_VALE_LIST,
	NETMAP_REQ_PORT_HDR_SET,
	NETMAP_REQ_PORT_HDR_GET,
	NETMAP_REQ_VALE_NEWIF,
	NETMAP_REQ_VALE_DELIF,
	NETMAP_REQ_VALE_POLLING_ENABLE,
	NETMAP_REQ_VALE_POLLING_DISABLE,
	NETMAP_REQ_POOLS_INFO_GET,
	NETMAP_REQ_SYNC_KLOOP_START,
	NETMAP_REQ_SYNC_KLOOP_STOP,
	NETMAP_REQ_CSB_ENABLE,
};

enum {
	NETMAP_REQ_OPT_EXTMEM = 1,
	NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS,
	NETMAP_REQ_OPT_CSB,
	NETMAP_REQ_OPT_SYNC_KLOOP_MODE,
	NETMAP_REQ_OPT_OFFSETS,
	NETMAP_REQ_OPT_MAX,
};

struct nmreq_option {
	uint64_t nro_next;   /* struct nmreq_option * */
	uint32_t nro_reqtype;
	uint32_t nro_status; /* set by the kernel side */
	uint64_t nro_size;   /* of the whole option */
};

/* NETMAP_REQ_REGISTER */
struct nmreq_register {
	uint64_t nr_offset;  /* out: the netmap_if, from the region start */
	uint64_t nr_memsize; /* out: bytes to map */
	uint32_t nr_tx_slots;
	uint32_t nr_rx_slots;
	uint16_t nr_tx_rings;
	uint16_t nr_rx_rings;
	uint16_t nr_host_tx_rings;
	uint16_t nr_host_rx_rings;
	uint16_t nr_mem_id;  /* out: the region's id */
	uint16_t nr_ringid;  /* ring of NR_REG_ONE_NIC */
	uint32_t nr_mode;    /* NR_REG_* */
	uint32_t nr_extra_bufs; /* in: wanted, out: granted */
	uint64_t nr_flags;   /* NR_* */
};

enum {
	NR_REG_DEFAULT = 0,
	NR_REG_ALL_NIC = 1,
	NR_REG_SW = 2,
	NR_REG_NIC_SW = 3,
	NR_REG_ONE_NIC = 4,
	NR_REG_PIPE_MASTER = 5,
	NR_REG_PIPE_SLAVE = 6,
	NR_REG_NULL = 7,
	NR_REG_ONE_SW = 8,
};

#define NR_MONITOR_TX     0x100
#define NR_MONITOR_RX     0x200
#define NR_ZCOPY_MON      0x400
#define NR_EXCLUSIVE      0x800
#define NR_PTNETMAP_HOST  0x1000
#define NR_RX_RINGS_ONLY  0x2000
#define NR_TX_RINGS_ONLY  0x4000
#define NR_ACCEPT_VNET_HDR 0x8000
#define NR_DO_RX_POLL     0x10000
#define NR_NO_TX_POLL     0x20000

/* NETMAP_REQ_PORT_INFO_GET */
struct nmreq_port_info_get {
	uint64_t nr_memsize;
	uint32_t nr_tx_slots;
	uint32_t nr_rx_slots;
	uint16_t nr_tx_rings;
	uint16_t nr_rx_rings;
	uint16_t nr_host_tx_rings;
	uint16_t nr_host_rx_rings;
	uint16_t nr_mem_id;
	uint16_t pad[3];
};

#define NM_BDG_NAME "vale"

/* NETMAP_REQ_VALE_ATTACH */
struct nmreq_vale_attach {
	struct nmreq_register reg;
	uint32_t port_index; /* out */
	uint32_t pad1;
};

/* NETMAP_REQ_VALE_DETACH */
struct nmreq_vale_detach {
	uint32_t port_index; /* out */
	uint32_t pad1;
};

/* NETMAP_REQ_VALE_LIST */
struct nmreq_vale_list {
	uint16_t nr_bridge_idx; /* in/out: where to go on */
	uint16_t pad1;
	uint32_t nr_port_idx;   /* in/out */
};

/* NETMAP_REQ_PORT_HDR_SET, NETMAP_REQ_PORT_HDR_GET */
struct nmreq_port_hdr {
	uint32_t nr_hdr_len; /* 0, 10 or 12 */
	uint32_t pad1;
};

/* NETMAP_REQ_VALE_NEWIF */
struct nmreq_vale_newif {
	uint32_t nr_tx_slots;
	uint32_t nr_rx_slots;
	uint16_t nr_tx_rings;
	uint16_t nr_rx_rings;
	uint16_t nr_mem_id;
	uint16_t pad1;
};

/* NETMAP_REQ_VALE_POLLING_ENABLE, NETMAP_REQ_VALE_POLLING_DISABLE */
struct nmreq_vale_polling {
	uint32_t nr_mode;
#define NETMAP_POLLING_MODE_SINGLE_CPU 1
#define NETMAP_POLLING_MODE_MULTI_CPU 2
	uint32_t nr_first_cpu_id;
	uint32_t nr_num_polling_cpus;
	uint32_t pad1;
};

/* NETMAP_REQ_POOLS_INFO_GET */
struct nmreq_pools_info {
	uint64_t nr_memsize;
	uint16_t nr_mem_id;
	uint16_t pad1[3];
	uint64_t nr_if_pool_offset;
	uint32_t nr_if_pool_objtotal;
	uint32_t nr_if_pool_objsize;
	uint64_t nr_ring_pool_offset;
	uint32_t nr_ring_pool_objtotal;
	uint32_t nr_ring_pool_objsize;
	uint64_t nr_buf_pool_offset;
	uint32_t nr_buf_pool_objtotal;
	uint32_t nr_buf_pool_objsize;
};

#define NIOCCTRL   _IOWR('i', 151, struct nmreq_header)
#define NIOCTXSYNC _IO('i', 148)
#define NIOCRXSYNC _IO('i', 149)

/* The legacy API (netmap_legacy.h): struct nmreq and NIOCREGIF. */
struct nmreq {
	char nr_name[16];
	uint32_t nr_version;
	uint32_t nr_offset;
	uint32_t nr_memsize;
	uint32_t nr_tx_slots;
	uint32_t nr_rx_slots;
	uint16_t nr_tx_rings;
	uint16_t nr_rx_rings;
	uint16_t nr_ringid;
#define NETMAP_HW_RING   0x4000
#define NETMAP_SW_RING   0x2000
#define NETMAP_RING_MASK 0x0fff
#define NETMAP_NO_TX_POLL 0x1000
#define NETMAP_DO_RX_POLL 0x8000
	uint16_t nr_cmd;
#define NETMAP_BDG_ATTACH 1
#define NETMAP_BDG_DETACH 2
#define NETMAP_BDG_REGOPS 3
#define NETMAP_BDG_LIST   4
#define NETMAP_BDG_VNET_HDR 5
#define NETMAP_BDG_NEWIF  6
#define NETMAP_BDG_DELIF  7
#define NETMAP_PT_HOST_CREATE 8
#define NETMAP_PT_HOST_DELETE 9
#define NETMAP_BDG_POLLING_ON 10
#define NETMAP_BDG_POLLING_OFF 11
#define NETMAP_VNET_HDR_GET 12
	uint16_t nr_arg1; /* extra buffers, pipe id; NETMAP_BDG_HOST with NETMAP_BDG_ATTACH */
#define NETMAP_BDG_HOST 1
	uint16_t nr_arg2; /* mem_id */
	uint32_t nr_arg3; /* extra buffers wanted / granted */
	uint32_t nr_flags; /* NR_REG_* mode in the low bits, then NR_* flags */
#define NR_REG_MASK 0xf
	uint32_t spare2[1];
};

#define NIOCGINFO _IOWR('i', 145, struct nmreq)
#define NIOCREGIF _IOWR('i', 146, struct nmreq)

#endif /* VALE_NET_NETMAP_H */
