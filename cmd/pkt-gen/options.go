package main

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"github.com/valeswitch/vale/vale/frame"
)

// options are netmap's -o bits. Some flags set them too: -r, -z, -Z, -X,
// -A and -I.
type options uint

// The option bits, with netmap's values. PREFETCH, ACCESS are no-ops here
// (Go does not prefetch, and netmap's pkt-gen does not use ACCESS); MEMCPY
// copies the frame into each slot as COPY does (Go has one copy).
const (
	optPrefetch   options = 1
	optAccess     options = 2
	optCopy       options = 4
	optMemcpy     options = 8
	optTimestamp  options = 16
	optIndirect   options = 32
	optDump       options = 64
	optRubbish    options = 256
	optRandomSrc  options = 512
	optRandomDst  options = 1024
	optPPSStats   options = 2048
	optUpdateCsum options = 4096

	optKnown = optPrefetch | optAccess | optCopy | optMemcpy | optTimestamp | optIndirect | optDump |
		optRubbish | optRandomSrc | optRandomDst | optPPSStats | optUpdateCsum
)

// stampOff and stampLen place the send time that -o 16 writes in the UDP
// payload: where ping puts its own, after a 4-byte sequence number.
const (
	stampOff = 4
	stampLen = 8
)

// errIndirect answers -I and -o 32.
var errIndirect = errors.New("NS_INDIRECT (-I, -o 32) is not supported: an indirect slot carries an address in pkt-gen's own memory, " +
	"which valed, another process, cannot dereference (netmap's VALE reads it from inside the kernel)")

func (o *options) String() string { return strconv.FormatUint(uint64(*o), 10) }

// Set adds the bits of a -o value: given several times they add up, as in
// netmap.
func (o *options) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	if unknown := options(v) &^ optKnown; unknown != 0 {
		return fmt.Errorf("unknown option bits %d", unknown)
	}
	*o |= options(v)
	return nil
}

// setOptions gathers the option bits of -o and of the flags that set them.
func (c *config) setOptions(v *flagValues) error {
	c.opts = v.opts
	for _, f := range []struct {
		on  bool
		bit options
	}{
		{v.rubbish, optRubbish}, {v.randSrc, optRandomSrc}, {v.randDst, optRandomDst},
		{v.dump, optDump}, {v.stats, optPPSStats}, {v.indirect, optIndirect},
	} {
		if f.on {
			c.opts |= f.bit
		}
	}
	switch {
	case c.opts&optIndirect != 0:
		return errIndirect
	case c.opts&optRubbish != 0 && c.fn == fnTxSeq:
		return errors.New("txseq writes sequence numbers: it cannot send rubbish (-r, -o 256)")
	}
	return nil
}

// special names the options netmap's pkt-gen reports at start-up.
func (o options) special() string {
	var b strings.Builder
	for _, n := range []struct {
		bit  options
		name string
	}{
		{optPrefetch, " prefetch"}, {optAccess, " access"}, {optMemcpy, " memcpy"},
		{optIndirect, " indirect"}, {optCopy, " copy"}, {optRubbish, " rubbish "},
	} {
		if o&n.bit != 0 {
			b.WriteString(n.name)
		}
	}
	return b.String()
}

// setCPUs checks -c and works out the CPUs pinned threads wrap around: the
// first -c CPUs, or all of them. netmap's pkt-gen wraps around -c, which
// defaults to 1 and would then pin every thread to CPU 0 whatever -a says;
// here -a without -c pins to a, a+1, ... as documented.
func (c *config) setCPUs(v *flagValues) error {
	have := runtime.NumCPU()
	if v.cpus < 0 || v.cpus > have {
		return fmt.Errorf("-c %d: %d cpus is too high, have only %d cpus", v.cpus, v.cpus, have)
	}
	c.cpus = v.cpus
	if c.cpus == 0 {
		c.cpus = have
	}
	c.cpuSpread = have
	if v.cpusSet {
		c.cpuSpread = c.cpus
	}
	return nil
}

// pinCPU returns the CPU thread i is pinned to, -1 for none.
func (c *config) pinCPU(i int) int {
	if c.cpu < 0 {
		return -1
	}
	return (c.cpu + i) % c.cpuSpread
}

// setVnetHdr checks -H.
func (c *config) setVnetHdr(*flagValues) error {
	switch c.vnetHdr {
	case -1, 0, frame.VnetHdrLen, frame.VnetHdrLenMrg:
		return nil
	}
	return fmt.Errorf("-H %d: a virtio-net header is 0, %d or %d bytes", c.vnetHdr, frame.VnetHdrLen, frame.VnetHdrLenMrg)
}

// setFragments checks -F and -M.
func (c *config) setFragments(v *flagValues) error {
	switch {
	case c.frags < 1 || c.frags > maxFrags:
		return fmt.Errorf("-F %d out of range [1, %d]", c.frags, maxFrags)
	case c.fragSize < 0:
		return fmt.Errorf("-M %d must not be negative", c.fragSize)
	}
	return nil
}
