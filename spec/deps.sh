#!/bin/sh
# Checks the Debian packages hum needs; installs the missing ones when run as
# root, otherwise prints the exact command and fails.
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null || {
		echo "apt-get install failed for:$missing" >&2; exit 1; }
	exit 0
fi
echo "hum needs these Debian packages; run:" >&2
echo "  sudo apt-get install$missing" >&2
exit 1
