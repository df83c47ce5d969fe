/*
 * valed's control protocol, as much of it as a netmap program needs: one
 * JSON request per datagram on a SOCK_SEQPACKET socket, one JSON reply,
 * descriptors passed with SCM_RIGHTS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim.h"

#define DEFAULT_SOCK "/run/vale/valed.sock"
#define MAX_REPLY (256 << 10)
#define MAX_FDS 64

/* ctl_connect connects to valed's control socket ($VALE_SOCK, else the
 * default). It returns the socket, or -1 with errno set. */
int ctl_connect(int cloexec)
{
	const char *path = getenv("VALE_SOCK");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s, saved;

	if (!path || !*path)
		path = DEFAULT_SOCK;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		shim_warn("valed socket path %s is too long", path);
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	s = socket(AF_UNIX, SOCK_SEQPACKET | (cloexec ? SOCK_CLOEXEC : 0), 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		saved = errno;
		shim_warn("cannot reach valed at %s: %s (is valed running? set VALE_SOCK)", path, strerror(saved));
		real_close(s);
		errno = saved;
		return -1;
	}
	return s;
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		real_close(fds[i]);
}

/* ctl_recv receives one message into buf (NUL terminated) and up to maxfds
 * descriptors (the rest are closed), waiting for it unless flags has
 * MSG_DONTWAIT. It returns the length, 0 when valed closed the connection,
 * or -1. */
ssize_t ctl_recv(int sock, char *buf, size_t cap, int *fds, int maxfds, int *nfds, int flags)
{
	char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
	struct iovec iov = {.iov_base = buf, .iov_len = cap - 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	ssize_t n;

	*nfds = 0;
	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *got = (int *)CMSG_DATA(c);
		for (int i = 0; i < k; i++) {
			if (*nfds < maxfds)
				fds[(*nfds)++] = got[i];
			else
				real_close(got[i]);
		}
	}
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		close_fds(fds, *nfds);
		*nfds = 0;
		errno = EMSGSIZE;
		return -1;
	}
	buf[n] = 0;
	return n;
}

/* monitor_event gives a monitor event that came while waiting for a reply
 * to the binding of the connection, if any, which may feed the monitor. */
static void monitor_event(int sock, const char *msg, int *fds, int nfds)
{
	struct shim_fd *f = shim_lookup(sock);

	if (f && f->b)
		shim_feed_event(f->b, msg, fds, nfds);
	else
		close_fds(fds, nfds);
}

/* send_request sends the request req and returns a buffer for the replies
 * (to free), or NULL with errno set. */
static char *send_request(int sock, const char *req, size_t reqlen)
{
	char *buf;
	ssize_t n;

	do
		n = send(sock, req, reqlen, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		shim_warn("cannot talk to valed: %s", strerror(errno));
		return NULL;
	}
	buf = malloc(MAX_REPLY);
	if (!buf)
		errno = ENOMEM;
	return buf;
}

/* ctl_call sends the request req and waits for its reply, skipping the
 * monitor events valed may have sent meanwhile. On success it returns 0,
 * *reply (to free) holds the reply's body or error, and fds the
 * descriptors that came with it. It returns -1 with errno set if valed
 * could not be asked, or if it answered with an error (printed, errno
 * chosen from the message). */
int ctl_call(int sock, const char *req, size_t reqlen, char **reply, int *fds, int maxfds, int *nfds)
{
	char *buf;
	ssize_t n;
	char msg[512];

	*reply = NULL;
	*nfds = 0;
	if (!(buf = send_request(sock, req, reqlen)))
		return -1;
	for (;;) {
		n = ctl_recv(sock, buf, MAX_REPLY, fds, maxfds, nfds, 0);
		if (n <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			shim_warn("valed did not answer: %s", strerror(errno));
			free(buf);
			return -1;
		}
		if (strncmp(buf, "{\"body\":{\"monitor\":", 19) != 0)
			break;
		monitor_event(sock, buf, fds, *nfds);
		*nfds = 0;
	}
	if (json_str(buf, "error", msg, sizeof(msg)) == 0) {
		close_fds(fds, *nfds);
		*nfds = 0;
		shim_warn("%s", msg);
		free(buf);
		errno = errno_for(msg);
		return -1;
	}
	*reply = buf;
	return 0;
}

/* ctl_stream sends the request req and calls each with the body of every
 * reply until the last ("more" not set). It returns -1 with errno set if
 * valed could not be asked or answered with an error (printed), or what
 * each returned if not 0. */
int ctl_stream(int sock, const char *req, size_t reqlen, int (*each)(const char *body, void *arg), void *arg)
{
	char *buf;
	int fds[MAX_FDS], nfds, rc = 0;
	ssize_t n;
	char msg[512];

	if (!(buf = send_request(sock, req, reqlen)))
		return -1;
	for (;;) {
		n = ctl_recv(sock, buf, MAX_REPLY, fds, MAX_FDS, &nfds, 0);
		if (n > 0 && strncmp(buf, "{\"body\":{\"monitor\":", 19) == 0) {
			monitor_event(sock, buf, fds, nfds);
			continue;
		}
		close_fds(fds, nfds);
		if (n <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			shim_warn("valed did not answer: %s", strerror(errno));
			rc = -1;
			break;
		}
		if (json_str(buf, "error", msg, sizeof(msg)) == 0) {
			shim_warn("%s", msg);
			errno = errno_for(msg);
			rc = -1;
			break;
		}
		if (rc == 0)
			rc = each(buf, arg);
		if (!strstr(buf, "\"more\":true"))
			break;
	}
	free(buf);
	return rc;
}

/* json_objects calls each with every object of the array value of key
 * (NUL-terminated copies), until each returns non-zero, which it returns. */
int json_objects(const char *json, const char *key, int (*each)(const char *obj, void *arg), void *arg)
{
	char pat[80];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":[", key);
	p = strstr(json, pat);
	if (!p)
		return 0;
	p += strlen(pat);
	while (*p && *p != ']') {
		const char *start;
		int depth = 0, in_str = 0, rc;
		while (*p && *p != '{' && *p != ']')
			p++;
		if (*p != '{')
			break;
		start = p;
		for (; *p; p++) {
			if (in_str) {
				if (*p == '\\' && p[1])
					p++;
				else if (*p == '"')
					in_str = 0;
			} else if (*p == '"') {
				in_str = 1;
			} else if (*p == '{') {
				depth++;
			} else if (*p == '}' && --depth == 0) {
				break;
			}
		}
		if (!*p)
			break;
		p++;
		char *obj = strndup(start, p - start);
		if (!obj)
			return -1;
		rc = each(obj, arg);
		free(obj);
		if (rc)
			return rc;
	}
	return 0;
}

/* find returns the position just after "key": in json, or NULL. Keys in
 * valed's replies are unique across nesting levels for what the shim
 * reads, and no string value holds a quote, so a search suffices. */
static const char *find(const char *json, const char *key)
{
	char pat[80];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	return p ? p + strlen(pat) : NULL;
}

/* json_int reads the integer value of key. */
int json_int(const char *json, const char *key, int64_t *out)
{
	const char *p = find(json, key);
	char *end;

	if (!p)
		return -1;
	*out = strtoll(p, &end, 10);
	return end == p ? -1 : 0;
}

/* json_str reads the string value of key, undoing the escapes JSON
 * encoders use (\uXXXX below 0x80 only; others become '?'). */
int json_str(const char *json, const char *key, char *out, size_t outlen)
{
	const char *p = find(json, key);
	size_t n = 0;

	if (!p || *p != '"' || outlen == 0)
		return -1;
	for (p++; *p && *p != '"'; p++) {
		char c = *p;
		if (c == '\\' && p[1]) {
			p++;
			switch (*p) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'u': {
				unsigned v = 0;
				if (sscanf(p + 1, "%4x", &v) == 1 && strlen(p) >= 5)
					p += 4;
				c = v < 0x80 ? (char)v : '?';
				break;
			}
			default: c = *p;
			}
		}
		if (n + 1 < outlen)
			out[n++] = c;
	}
	out[n] = 0;
	return 0;
}

/* json_quote writes s as a JSON string into dst and returns its length. */
size_t json_quote(char *dst, size_t cap, const char *s)
{
	size_t n = 0;

#define PUT(c) do { if (n + 1 < cap) dst[n] = (c); n++; } while (0)
	PUT('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			PUT('\\');
			PUT(c);
		} else if (c < 0x20 || c >= 0x80) {
			char esc[8];
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			for (char *e = esc; *e; e++)
				PUT(*e);
		} else {
			PUT(c);
		}
	}
	PUT('"');
#undef PUT
	if (cap)
		dst[n < cap ? n : cap - 1] = 0;
	return n;
}

/* errno_for picks the errno netmap would give for what valed said. */
int errno_for(const char *msg)
{
	static const struct {
		const char *part;
		int err;
	} table[] = {
		{"exclusive", EBUSY},   {"busy", EBUSY},          {"already", EBUSY},
		{"no such", ENXIO},     {"does not exist", ENXIO}, {"not found", ENXIO},
		{"cannot be opened", EOPNOTSUPP}, {"not supported", EOPNOTSUPP},
		{"permission", EPERM},  {"not allowed", EPERM},   {"may not", EPERM},
		{"limit", ENOMEM},      {"at most", ENOMEM},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcasestr(msg, table[i].part))
			return table[i].err;
	return EINVAL;
}
