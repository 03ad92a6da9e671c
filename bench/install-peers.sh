#!/bin/sh
# Installs the peers of the load benchmark from Debian's packages: nginx,
# haproxy, caddy, and ModSecurity for nginx with the OWASP CRS. Needs root.
# The packages' services are not started: the benchmark runs each peer
# itself, in the foreground, on loopback ports of its own.
set -eu

pkgs="nginx haproxy caddy libnginx-mod-http-modsecurity modsecurity-crs"
missing=""
for p in $pkgs; do
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "bench: missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi

# Keep the package scripts from starting nginx and haproxy on ports 80/443
# of this machine; only a policy file this script created is removed.
created=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	created=1
fi
cleanup() { [ -n "$created" ] && rm -f /usr/sbin/policy-rc.d; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq -o DPkg::Lock::Timeout=600 $missing
