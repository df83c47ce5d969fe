/*
 * netmap_user.h: the inline helpers netmap programs use to walk rings,
 * for C programs built against vale. Same names and meanings as netmap's.
 */
#ifndef VALE_NET_NETMAP_USER_H
#define VALE_NET_NETMAP_USER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <net/netmap.h>

#define NETMAP_DEVICE_NAME "/dev/netmap"

/* The binding's netmap_if in the region mapped at b. */
#define NETMAP_IF(_base, _ofs) ((struct netmap_if *)(void *)((char *)(_base) + (_ofs)))

#define NETMAP_TXRING(_nifp, _index) \
	((struct netmap_ring *)(void *)((char *)(_nifp) + (_nifp)->ring_ofs[_index]))

#define NETMAP_RXRING(_nifp, _index) \
	((struct netmap_ring *)(void *)((char *)(_nifp) + \
		(_nifp)->ring_ofs[(_index) + (_nifp)->ni_tx_rings + (_nifp)->ni_host_tx_rings]))

/* Buffer _index of the region, addressed from a ring. */
#define NETMAP_BUF(_ring, _index) \
	((char *)(_ring) + (_ring)->buf_ofs + ((size_t)(_index) * (_ring)->nr_buf_size))

/* The index of the buffer at address _buf. */
#define NETMAP_BUF_IDX(_ring, _buf) \
	((size_t)((char *)(_buf) - ((char *)(_ring) + (_ring)->buf_ofs)) / (_ring)->nr_buf_size)

/* vale has no per-slot offsets: these are the identity. */
#define NETMAP_ROFFSET(_ring, _slot) ((_slot)->ptr & (_ring)->offset_mask)
#define NETMAP_WOFFSET(_ring, _slot, _offset) \
	do { (_slot)->ptr = ((_slot)->ptr & ~(_ring)->offset_mask) | ((_offset) & (_ring)->offset_mask); } while (0)
#define NETMAP_BUF_OFFSET(_ring, _slot) (NETMAP_BUF(_ring, (_slot)->buf_idx) + NETMAP_ROFFSET(_ring, _slot))

/* The slot after i. */
static inline uint32_t
nm_ring_next(struct netmap_ring *r, uint32_t i)
{
	return i + 1 == r->num_slots ? 0 : i + 1;
}

/* Slots in [head, tail): free slots on TX, frames on RX. */
static inline uint32_t
nm_ring_space(struct netmap_ring *ring)
{
	int ret = ring->tail - ring->cur;
	if (ret < 0)
		ret += ring->num_slots;
	return ret;
}

/* Whether [cur, tail) is empty. */
static inline int
nm_ring_empty(struct netmap_ring *ring)
{
	return ring->cur == ring->tail;
}

/* Whether a TX ring still holds frames the other side has not taken. */
static inline int
nm_tx_pending(struct netmap_ring *r)
{
	return nm_ring_next(r, r->tail) != r->head;
}

/* Copy a frame in 64-byte chunks (the buffers are padded for it). */
static inline void
nm_pkt_copy(const void *_src, void *_dst, int l)
{
	const uint64_t *src = (const uint64_t *)_src;
	uint64_t *dst = (uint64_t *)_dst;

	if (l >= 1024 || ((uintptr_t)src | (uintptr_t)dst) & 7) {
		memcpy(dst, src, l);
		return;
	}
	for (; l > 0; l -= 64) {
		*dst++ = *src++; *dst++ = *src++; *dst++ = *src++; *dst++ = *src++;
		*dst++ = *src++; *dst++ = *src++; *dst++ = *src++; *dst++ = *src++;
	}
}

#endif /* VALE_NET_NETMAP_USER_H */
