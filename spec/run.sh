#!/bin/sh
# Runs every test and prints one closing line: "N passed, N failed[, N skipped]".
# C tests (build/tests/*) and busted specs (spec/*_spec.lua) both speak TAP:
# "ok N - name", "not ok N - name", "ok N - # SKIP ...".
# Environment: B (build dir), ONLY=ctest|spec, HUM_SAN=asan|tsan.
B=${B:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export HUM_BIN="$root/$B/hum" HUM_FIXTURES="$root/$B/fixtures" HUM_ROOT="$root"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1 suppressions=$root/spec/tsan.supp}"

status=0
if [ "${ONLY:-}" != spec ]; then
	# the tests that have a source (a binary left in the build directory by
	# a renamed or deleted test is not one of them)
	for src in core/tests/*.c; do
		name=$(basename "$src" .c)
		t="$B/tests/$name"
		[ -x "$t" ] || { echo "not ok - $name was not built" > "$out/c-$name.tap"; status=1; continue; }
		echo "# C test $name"
		"$t" > "$out/c-$name.tap" 2>"$out/c-$name.err"
		rc=$? # the test's status, before another command replaces $?
		if [ "$rc" -ne 0 ]; then
			status=1
			grep -q '^not ok' "$out/c-$name.tap" || echo "not ok - $name exited with status $rc" >> "$out/c-$name.tap"
			cat "$out/c-$name.err" >&2
		fi
		grep -E '^(not )?ok' "$out/c-$name.tap"
	done
fi
if [ "${ONLY:-}" != ctest ]; then
	echo "# busted specs"
	busted --lua=luajit -o TAP spec > "$out/spec.tap" 2>"$out/spec.err" || status=1
	cat "$out/spec.tap"
	[ -s "$out/spec.err" ] && cat "$out/spec.err" >&2
	grep -qE '^(not )?ok' "$out/spec.tap" || { echo "not ok - busted ran no spec" >> "$out/spec.tap"; status=1; }
fi
cat "$out"/*.tap | awk '
	/^not ok/ { f++; next }
	/^ok/ && /# SKIP/ { s++; next }
	/^ok/ { p++ }
	END { printf "%d passed, %d failed", p, f; if (s) printf ", %d skipped", s; printf "\n"; exit (f > 0) }
' || status=1
exit $status
