#!/usr/bin/env bash
# Installs the system packages shopfloor-spc needs on a Debian/Ubuntu machine, idempotently:
# PostgreSQL 15 server binaries, TimescaleDB for them (packaged where apt has it, else built from
# Debian's own source package), and the third-party protocol peers the tests use (mbpoll, socat).
# A second run finds everything in place and returns in a second or two.
#
# Usage: scripts/setup-system.sh [--with-browser]
set -euo pipefail

WITH_BROWSER=0
[ "${1:-}" = "--with-browser" ] && WITH_BROWSER=1

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
stamp_dir=${SPC_STATE_DIR:-$HOME/.cache/shopfloor-spc}
mkdir -p "$stamp_dir"

need=()
[ -x "$PG_BIN/postgres" ] || need+=(postgresql-$PG_MAJOR)
command -v psql >/dev/null || need+=(postgresql-client-$PG_MAJOR)
command -v mbpoll >/dev/null || need+=(mbpoll)
command -v socat >/dev/null || need+=(socat)
# deploy/ tests: `nginx -t` on the reverse-proxy example, `systemd-analyze verify` on the units
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ $WITH_BROWSER = 1 ] && ! command -v chromium >/dev/null; then need+=(chromium); fi

apt_updated=0
apt_update() {
  if [ $apt_updated = 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
}

if [ ${#need[@]} -gt 0 ]; then
  echo "setup-system: installing ${need[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# Debian's postgresql package starts a cluster on 5432 by default; we never use it, but we leave
# it alone: the project runs its own private clusters on ports of its own.

pkglibdir=$(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/$PG_MAJOR/lib)
if [ -f "/usr/lib/postgresql/$PG_MAJOR/lib/timescaledb.so" ]; then
  echo "setup-system: TimescaleDB already installed for PostgreSQL $PG_MAJOR"
  exit 0
fi

apt_update
# A packaged TimescaleDB for our PostgreSQL major is the simple route where the distribution has it.
if apt-cache policy "postgresql-$PG_MAJOR-timescaledb" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  echo "setup-system: installing packaged postgresql-$PG_MAJOR-timescaledb"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "postgresql-$PG_MAJOR-timescaledb"
  exit 0
fi

# Otherwise build it from Debian trixie's source package (Apache-2 edition) against our headers.
echo "setup-system: building TimescaleDB from Debian's source package"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  postgresql-server-dev-$PG_MAJOR cmake gcc make libssl-dev libkrb5-dev xz-utils dpkg-dev
work=$(mktemp -d /tmp/tsbuild.XXXXXX)
mkdir -p "$work/apt/lists/partial" "$work/apt/cache"
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '/^deb /{for(i=2;i<=NF;i++) if ($i ~ /^http/) {print $i; exit}}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$work/apt/src.list"
A=(-o "Dir::Etc::SourceList=$work/apt/src.list" -o Dir::Etc::SourceParts=/dev/null
   -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache")
apt-get "${A[@]}" update -qq
(cd "$work" && apt-get "${A[@]}" source --download-only timescaledb)
tarball=$(ls "$work"/timescaledb_*.orig.tar.* | head -n1)
tar -C "$work" -xf "$tarball"
src=$(find "$work" -maxdepth 1 -type d -name 'timescaledb-*' | head -n1)
(cd "$src" && ./bootstrap -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
   -DWARNINGS_AS_ERRORS=OFF -DGENERATE_DOWNGRADE_SCRIPT=OFF >/dev/null \
   && cd build && make -j"$(nproc)" >/dev/null && $SUDO make install >/dev/null)
rm -rf "$work"
test -f "$pkglibdir/timescaledb.so"
echo "setup-system: TimescaleDB built and installed into $pkglibdir"
