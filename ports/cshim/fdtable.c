/*
 * Which descriptors of the process are netmap descriptors.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "shim.h"

#define MAX_FDS 65536

static struct shim_fd *table[MAX_FDS];
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;

void shim_lock(void) { pthread_mutex_lock(&table_mu); }
void shim_unlock(void) { pthread_mutex_unlock(&table_mu); }

/* shim_lookup returns the netmap descriptor fd is, or NULL. */
struct shim_fd *shim_lookup(int fd)
{
	if (fd < 0 || fd >= MAX_FDS)
		return NULL;
	return __atomic_load_n(&table[fd], __ATOMIC_ACQUIRE);
}

/* shim_add records fd as a descriptor of f (the caller holds the lock). It
 * fails for a descriptor number beyond the table. */
int shim_add(int fd, struct shim_fd *f)
{
	if (fd < 0 || fd >= MAX_FDS)
		return -1;
	f->refs++;
	__atomic_store_n(&table[fd], f, __ATOMIC_RELEASE);
	return 0;
}

/* shim_forget drops fd from the table (the caller holds the lock). */
void shim_forget(int fd)
{
	if (fd >= 0 && fd < MAX_FDS)
		__atomic_store_n(&table[fd], NULL, __ATOMIC_RELEASE);
}

/* shim_warn tells the user, on stderr, why a netmap call failed. */
void shim_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("vale-netmap: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}
