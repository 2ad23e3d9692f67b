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
stamp_dir=${SPC_STATE_DIR:-$HOME/.cache/shopfloor-spc}
mkdir -p "$stamp_dir"

has_candidate() {  # has_candidate PACKAGE: apt can install it
  apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'
}

need=()
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

# PostgreSQL server binaries: 15 where the distribution has it (bookworm), else its default.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt_update
  if has_candidate "postgresql-$PG_MAJOR"; then need+=("postgresql-$PG_MAJOR"); else need+=(postgresql); fi
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup-system: installing ${need[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# Debian's postgresql package starts a cluster on 5432 by default; we never use it, but we leave
# it alone: the project runs its own private clusters on ports of its own.

pkglibdir=/usr/lib/postgresql/$PG_MAJOR/lib
for lib in /usr/lib/postgresql/*/lib/timescaledb.so; do
  major=$(basename "$(dirname "$(dirname "$lib")")")
  if [ -f "$lib" ] && [ -x "/usr/lib/postgresql/$major/bin/postgres" ]; then
    echo "setup-system: TimescaleDB already installed for PostgreSQL $major"
    exit 0
  fi
done

apt_update
# A packaged TimescaleDB for our PostgreSQL major is the simple route where the distribution has it.
if has_candidate "postgresql-$PG_MAJOR-timescaledb"; then
  echo "setup-system: installing packaged postgresql-$PG_MAJOR-timescaledb"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "postgresql-$PG_MAJOR-timescaledb"
  exit 0
fi
# Without PostgreSQL 15's headers (Debian 13), take the distribution's packaged pair instead:
# the project's private clusters run whichever major has TimescaleDB (server/core/localdb.py).
if ! has_candidate "postgresql-server-dev-$PG_MAJOR"; then
  for major in 17 16; do
    if has_candidate "postgresql-$major-timescaledb"; then
      echo "setup-system: installing packaged PostgreSQL $major with TimescaleDB"
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        "postgresql-$major" "postgresql-$major-timescaledb"
      exit 0
    fi
  done
  echo "setup-system: no TimescaleDB for this machine: neither a package nor PostgreSQL $PG_MAJOR" \
       "headers to build one. Install TimescaleDB (Timescale's apt repository) and re-run." >&2
  exit 1
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
