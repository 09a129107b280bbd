#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Lists the functions of a module whose stack frame exceeds a limit, from the
# `sub $N,%rsp` of their prologues. The kernel stack is 16 KiB for the whole
# call chain; Rust moves large values by copy, so a big struct returned by value
# can overflow it (a double fault, as seen once with the pool engine).
# Usage: stack-frames.sh MODULE.ko [LIMIT_BYTES]   (exit 1 if any frame > LIMIT)
set -euo pipefail
ko=$1 limit=${2:-3072}
objdump -d --no-show-raw-insn "$ko" | python3 -c '
import re, sys
limit = int(sys.argv[1]); fn = None; bad = 0
for line in sys.stdin:
    m = re.match(r"^[0-9a-f]+ <(.*)>:", line)
    if m:
        fn = m.group(1)
        continue
    m = re.search(r"sub\s+\$0x([0-9a-f]+),%rsp", line)
    if m and int(m.group(1), 16) > limit:
        print("stack frame %6d bytes: %s" % (int(m.group(1), 16), fn[:160]))
        bad = 1
sys.exit(bad)
' "$limit"
