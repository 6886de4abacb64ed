#!/bin/sh
# Runs every built benchmark (build/bench/*, or $B/bench/*) in name order and
# prints its output; `make bench` calls this after building.  A benchmark is
# any executable in that directory, so new ones need no change here.
# Exit status: non-zero if any benchmark failed.
B=${B:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
status=0
found=0
for b in "$B"/bench/*; do
	[ -f "$b" ] && [ -x "$b" ] || continue
	found=1
	echo "## $(basename "$b")"
	"$b" || { echo "# $(basename "$b") failed with status $?" >&2; status=1; }
	echo
done
[ "$found" = 1 ] || { echo "no benchmarks in $B/bench (run make all first)" >&2; status=1; }
exit $status
