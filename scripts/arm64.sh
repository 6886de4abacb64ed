#!/bin/sh
# arm64.sh — the pieces of `make check-arm64` (issue #10: the state core's
# orderings on a weak memory model).  The Makefile builds; this script
# installs what the build needs and runs the result under qemu-user.
#
#   sh scripts/arm64.sh deps SYSROOT CC
#       Host packages: the aarch64 cross compiler and qemu-user-static
#       (through spec/deps.sh: installed when root, otherwise the exact
#       apt-get line is printed and the script fails).
#       The arm64 libraries go into SYSROOT, not onto the system: Debian 12's
#       libck0 is not Multi-Arch: same, so `apt-get install libck-dev:arm64`
#       would remove the native libck-dev that `make all` needs.  The arm64
#       .debs are fetched with `apt-get download` (which needs arm64 among
#       dpkg's architectures and its package lists: added when root,
#       otherwise printed) and unpacked with dpkg-deb -x.  Then checks that
#       CC, given -isystem SYSROOT/usr/include, sees the arm64 ck_md.h
#       (CK_MD_RMO: ck_pr's fences are real dmb instructions), not the
#       native one (CK_MD_TSO: fences compile to nothing).
#
#   sh scripts/arm64.sh luajit ARGS...
#       LUAJIT for the Makefile's `$(LUAJIT) -b ...` rule: the same
#       bytecode (portable between 64-bit LuaJITs), wrapped in an aarch64
#       ELF object (-a arm64 -o linux).
#
#   sh scripts/arm64.sh run DIR SYSROOT TEST...
#       Under qemu-aarch64: each DIR/tests/TEST (the stress test for
#       HUM_STRESS_SECONDS, default 60), then DIR/hum on scripts/demo.lua,
#       then, when ARM64_SPECS is set, the busted specs against DIR/hum
#       (HUM_FIXTURES: the native fixture programs).  Prints TAP and ends
#       with "N passed, N failed".  Logs stay in DIR/*.log.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
# libck for the state core; libev, LuaJIT and lua-cjson for hum.
ARCH_PKGS="libck0 libck-dev libev4 libev-dev libluajit2-5.1-2 libluajit2-5.1-dev lua-cjson"
QEMU_LD_PREFIX=/usr/aarch64-linux-gnu # the cross C library: ld-linux-aarch64.so.1, libc

qemu_bin() {
	for q in qemu-aarch64-static qemu-aarch64; do
		command -v "$q" >/dev/null 2>&1 && { echo "$q"; return 0; }
	done
	return 1
}

deps() {
	sysroot=$1 cc=$2
	host="gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu"
	qemu_bin >/dev/null || host="$host qemu-user-static"
	# shellcheck disable=SC2086 # a list of package names
	sh spec/deps.sh $host || exit 1

	want=$(for p in $ARCH_PKGS; do printf '%s:arm64 ' "$p"; done)
	if [ "$(cat "$sysroot/.packages" 2>/dev/null)" != "$want" ]; then
		if ! dpkg --print-foreign-architectures | grep -qx arm64 ||
		   ! apt-cache show libck-dev:arm64 >/dev/null 2>&1; then
			if [ "$(id -u)" != 0 ]; then
				echo "check-arm64 downloads arm64 libraries and needs arm64 package lists; run:" >&2
				echo "  sudo dpkg --add-architecture arm64" >&2
				echo "  sudo apt-get update" >&2
				exit 1
			fi
			echo "adding dpkg architecture arm64 (for its package lists; nothing arm64 is installed)"
			dpkg --add-architecture arm64
			# apt-get update may exit 100 when a foreign architecture's lists
			# are incomplete: go on, the download below says if they are missing.
			apt-get update -qq >/dev/null 2>&1 || echo "apt-get update exited $? (going on)" >&2
		fi
		dl=$(mktemp -d)
		chmod 777 "$dl" # apt-get download writes as _apt when it can
		# shellcheck disable=SC2086 # a list of package names
		(cd "$dl" && apt-get download $want >/dev/null 2>&1) || {
			echo "apt-get download $want failed" >&2; rm -rf "$dl"; exit 1; }
		rm -rf "$sysroot"
		mkdir -p "$sysroot"
		for d in "$dl"/*.deb; do
			dpkg-deb -x "$d" "$sysroot" || { rm -rf "$dl"; exit 1; }
			echo "unpacked $(dpkg-deb -f "$d" Package):arm64 $(dpkg-deb -f "$d" Version) into $sysroot"
		done
		rm -rf "$dl"
		echo "$want" > "$sysroot/.packages"
	fi

	printf '#include <ck_md.h>\n#ifndef CK_MD_RMO\n#error ck_md.h is not the arm64 one\n#endif\n' |
		$cc -isystem "$sysroot/usr/include" -E -o /dev/null -x c - || {
		echo "$cc does not see $sysroot's ck_md.h first" >&2; exit 1; }
}

luajit_arm64() {
	[ "${1:-}" = -b ] && { shift; exec luajit -b -a arm64 -o linux "$@"; }
	exec luajit "$@"
}

# Runs one program under qemu with a time limit; prints its comment lines
# and its TAP renamed "arm64 NAME: ...", adds a failure if it exited non-zero.
qrun() {
	name=$1 lim=$2 log=$3
	shift 3
	echo "# $qemu -L $QEMU_LD_PREFIX $*"
	start=$(date +%s)
	timeout "$lim" "$qemu" -L "$QEMU_LD_PREFIX" "$@" > "$log" 2>&1
	rc=$?
	grep -E '^#' "$log"
	grep -E '^(not )?ok' "$log" | sed -E "s/^((not )?ok) [0-9]+ -/\\1 - arm64 $name:/" | tee -a "$all"
	if [ "$rc" -ne 0 ]; then
		[ "$rc" = 124 ] && why="timed out after ${lim}s" || why="exited with status $rc"
		echo "not ok - arm64 $name $why" | tee -a "$all"
		grep -vE '^(#|(not )?ok|1\.\.)' "$log" | tail -20 >&2
	fi
	echo "# $name: $(( $(date +%s) - start ))s under emulation (log: $log)"
}

tap() { # tap COND TEXT
	if [ "$1" = 0 ]; then echo "ok - arm64 $2"; else echo "not ok - arm64 $2"; fi | tee -a "$all"
}

run() {
	dir=$1 sysroot=$2
	shift 2
	qemu=$(qemu_bin) || { echo "no qemu-aarch64: run make check-arm64 as root, or apt-get install qemu-user-static" >&2; exit 1; }
	secs=${HUM_STRESS_SECONDS:-60}
	export HUM_STRESS_SECONDS="$secs"
	all=$(mktemp)
	echo "# $($qemu --version | head -1), HUM_STRESS_SECONDS=$secs"

	# What the state core and libck compiled to: ck_pr's fences and atomics.
	# With the native (x86-64, CK_MD_TSO) ck_md.h every fence would vanish.
	for obj in "$dir"/libhumstate.a "$sysroot"/usr/lib/aarch64-linux-gnu/libck.so; do
		dis=$(aarch64-linux-gnu-objdump -d "$obj" 2>/dev/null)
		n() { printf '%s\n' "$dis" | grep -cE "^ +[0-9a-f]+:[[:space:]]+[0-9a-f]{8}[[:space:]]+($1)[[:space:]]"; }
		echo "# $obj: $(n 'dmb') dmb, $(n 'ld[a]?xr[bh]?|st[l]?xr[bh]?|ld[a]?xp|st[l]?xp') LL/SC, $(n '(ldadd|ldclr|ldeor|ldset|swp|cas)[a-z]*') LSE instructions"
		case $obj in *libhumstate.a) dmb=$(n dmb) ;; esac
	done
	[ "$dmb" -gt 0 ]
	tap $? "libhumstate.a orders with dmb fences ($dmb): ck_pr's weak-memory (RMO) path"

	# A test that hangs is a finding too: the stress test gets ten times its
	# run time plus five minutes under emulation, the others ten minutes.
	for t in "$@"; do
		lim=600
		[ "$t" = state_stress ] && lim=$((secs * 10 + 300))
		qrun "$t" "$lim" "$dir/$t.log" "$dir/tests/$t"
	done

	# hum itself: its embedded Lua (bytecode in aarch64 objects), the
	# supervisor and the state core together, on the demo's db + migrate.
	qrun hum-version 120 "$dir/hum-version.log" "$dir/hum" --version
	v=$(cat "$dir/hum-version.log")
	echo "$v" | grep -q '^hum '
	tap $? "hum --version: $v"
	log=$dir/hum-demo.log
	echo "# $qemu -L $QEMU_LD_PREFIX $dir/hum run -f scripts/demo.lua migrate"
	LUA_CPATH="$root/$sysroot/usr/lib/aarch64-linux-gnu/lua/5.1/?.so;;" \
		timeout 120 "$qemu" -L "$QEMU_LD_PREFIX" "$dir/hum" run -f scripts/demo.lua migrate > "$log" 2>&1
	rc=$?
	sed 's/^/#   /' "$log"
	[ "$rc" = 0 ] && grep -q 'migrate .*migrations done' "$log" && grep -q 'migrate: exited with code 0' "$log"
	tap $? "hum run -f scripts/demo.lua migrate: db ready, migrate ran and exited 0 (status $rc)"

	if [ -n "${ARM64_SPECS:-}" ]; then
		specs "$dir" "$sysroot"
	fi

	awk '/^not ok/ { f++; next } /^ok/ { p++ } END { printf "%d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$all"
	status=$?
	rm -f "$all"
	exit $status
}

# The busted specs against the emulated hum.  Left out: what qemu-user
# (7.2) cannot do, whatever the CPU:
#  - glibc's posix_spawn reports an exec or chdir failure through memory
#    shared with the child (clone CLONE_VM|CLONE_VFORK); qemu-user runs such
#    a clone as a fork, so the error is lost and the child exits 127;
#  - prctl(PR_SET_CHILD_SUBREAPER) fails with EINVAL, so orphaned
#    grandchildren are not adopted by hum;
#  - /proc/PID/comm of hum is "qemu-aarch64-st".
# Lua patterns for busted --filter-out; %s, not a space: busted --lua
# re-runs itself through a shell command line that splits at spaces.
SPEC_FILTER_OUT="spawn%serror|cannot%sbe%sspawned|hum%.exec%sin%sa%sgiven%scwd|no%sgrandchild%sbehind|orphaned%sgrandchild"
specs() {
	dir=$1 sysroot=$2
	wrap=$root/$dir/spec-bin
	mkdir -p "$wrap"
	cat > "$wrap/hum" <<EOF
#!/bin/sh
# hum for aarch64 under qemu-user (written by scripts/arm64.sh)
LUA_CPATH="$root/$sysroot/usr/lib/aarch64-linux-gnu/lua/5.1/?.so;;" exec $qemu -L $QEMU_LD_PREFIX $root/$dir/hum "\$@"
EOF
	chmod +x "$wrap/hum"
	set --
	oldifs=$IFS IFS='|'
	for p in $SPEC_FILTER_OUT; do set -- "$@" "--filter-out=$p"; done
	IFS=$oldifs
	echo "# busted specs against $wrap/hum, leaving out (qemu-user limits): $SPEC_FILTER_OUT"
	start=$(date +%s)
	HUM_BIN=$wrap/hum HUM_ROOT=$root HUM_FIXTURES=${HUM_FIXTURES:-$root/build/fixtures} \
		busted --lua=luajit -o TAP "$@" spec > "$dir/specs.log" 2>&1
	grep -E '^(not )?ok' "$dir/specs.log" | sed -E 's/^((not )?ok) [0-9]+ -/\1 - arm64 spec:/' > "$dir/specs.tap"
	grep '^not ok' -A8 "$dir/specs.log" >&2
	cat "$dir/specs.tap" >> "$all"
	echo "# specs: $(grep -c '^ok' "$dir/specs.tap") passed, $(grep -c '^not ok' "$dir/specs.tap") failed in $(( $(date +%s) - start ))s (log: $dir/specs.log)"
	[ -s "$dir/specs.tap" ] || echo "not ok - arm64 spec: busted ran no spec" | tee -a "$all"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
deps) deps "$@" ;;
luajit) luajit_arm64 "$@" ;;
run) run "$@" ;;
*) echo "usage: $0 deps SYSROOT CC | luajit ARGS... | run DIR SYSROOT TEST..." >&2; exit 2 ;;
esac
