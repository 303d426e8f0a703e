#!/usr/bin/env bash
# Installs, idempotently, what building and testing Strata needs on a Debian
# 12 machine with Go: PostgreSQL 15 (server, client, contrib), the server
# headers at exactly the server's version (the walredo extension is built
# against them with PGXS), a C toolchain, and the Go tools the Makefile uses
# (pinned versions, installed into ./bin).
#
# Fast when everything is present: it only queries dpkg and ./bin.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"

log() { printf 'deps: %s\n' "$*" >&2; }

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo "$@"
		else
			log "must run as root (or with sudo) to install: $*"
			exit 1
		fi
	else
		"$@"
	fi
}

installed_version() { dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null | awk '$1=="ii"{print $2}'; }

apt_updated=0
apt_install() {
	if [ "$apt_updated" -eq 0 ]; then
		log "apt-get update"
		need_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		apt_updated=1
	fi
	log "apt-get install $*"
	need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. PostgreSQL 15 server and client (pg_amcheck and pgbench ship in them),
#    a C toolchain, and docker-compose (only to validate deploy/compose.yaml
#    offline; no container engine is used).
missing=()
for p in postgresql-15 postgresql-client-15 build-essential perl docker-compose; do
	[ -n "$(installed_version "$p")" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt_install "${missing[@]}"
fi

# 2. Server headers at exactly the server's version: PGXS modules must be
#    built against the headers of the postgres binary that loads them.
server_version=$(installed_version postgresql-15)
dev_version=$(installed_version postgresql-server-dev-15)
if [ "$dev_version" != "$server_version" ]; then
	apt_install "postgresql-server-dev-15=$server_version"
fi

# 3. Go tools, pinned, into ./bin.
mkdir -p "$bin"
go_tool() { # name module@version
	if [ ! -x "$bin/$1" ]; then
		log "go install $2"
		GOBIN="$bin" GOFLAGS=-buildvcs=false go install "$2"
	fi
}
go_tool staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
go_tool gotestsum gotest.tools/gotestsum@v1.13.0

log "ok (postgresql-15 $server_version, headers $(installed_version postgresql-server-dev-15))"
