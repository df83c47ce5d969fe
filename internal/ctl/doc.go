// Package ctl is the transport of valed's control socket: JSON messages over
// a SOCK_SEQPACKET unix socket, with file descriptors (port memory, eventfds)
// carried alongside by SCM_RIGHTS. One message is one datagram, so descriptors
// always arrive with the message they belong to.
//
// A request names an operation and carries its body; a reply carries either a
// body or an error. Some operations answer with several replies, the last one
// marked final. The messages themselves are defined by the packages that own
// them (ports for opening a port, vale for listings).
package ctl
