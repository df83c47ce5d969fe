#!/bin/sh
# build-netmap.sh [PREFIX]: builds what runs netmap's C programs on vale
# into PREFIX (default: the repository): PREFIX/lib/libvale-netmap.so (the
# library that serves /dev/netmap), PREFIX/bin/vale-netmap (runs a command
# with it preloaded) and PREFIX/lib/pkgconfig/vale-netmap.pc (pkg-config's
# flags for building against the headers in INCLUDEDIR, default the
# repository's include/). CC picks the compiler (default cc); PCPREFIX
# the prefix the .pc file names, if not PREFIX (make install's DESTDIR).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
inc=${INCLUDEDIR:-$root/include}
cc=${CC:-cc}
mkdir -p "$out/lib/pkgconfig" "$out/bin"
# shellcheck disable=SC2086 # CFLAGS are words
$cc -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter ${CFLAGS:-} -fPIC -shared \
	-I"$root/include" -o "$out/lib/libvale-netmap.so" "$root"/ports/cshim/*.c -ldl -lpthread
install -m 755 "$root/tools/vale-netmap" "$out/bin/vale-netmap"
cat >"$out/lib/pkgconfig/vale-netmap.pc" <<PC
prefix=${PCPREFIX:-$out}
libdir=\${prefix}/lib
includedir=$inc

Name: vale-netmap
Description: netmap's API on vale: netmap's headers, and the library that serves /dev/netmap
Version: 14
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lvale-netmap
PC
