#!/usr/bin/env bash
# Strata demo: recover a table dropped "by accident" by branching the
# database at a moment before the drop and booting the branch.
#
#   make demo            # installs packages, builds, runs this script
#   KEEP=1 make demo     # leave everything running and print how to connect
#
# Needs what `make deps build` provides: PostgreSQL 15 (server, client,
# pgbench) and ./bin/stratactl with the four services. Runs as a normal user
# or as root; as root every PostgreSQL runs as the system user strata-pg
# (created if missing), because PostgreSQL refuses to run as root.
#
# Everything lives in one temporary directory (STRATA_DEMO_DIR to choose it),
# on free loopback ports; nothing outside it is touched except the strata-pg
# user. Exit code 0 only when the dropped table is back on the branch.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
ctl="$bin/stratactl"
keep=${KEEP:-0}
scale=${DEMO_SCALE:-5}

# --- output helpers ---------------------------------------------------------

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'; else B='' G='' R='' D='' N=''; fi
step_no=0
step() { step_no=$((step_no + 1)); printf '\n%s%d. %s%s\n' "$B" "$step_no" "$*" "$N"; }
say() { printf '   %s\n' "$*"; }
run_quiet() { # run a command, show its output only when it fails
	local out
	if ! out=$("$@" 2>&1); then
		printf '%s   command failed: %s%s\n%s\n' "$R" "$*" "$N" "$out" >&2
		return 1
	fi
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }
die() { printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }

# json_field KEY: the first string value of KEY in the JSON on stdin
# (stratactl's JSON is flat for the fields used here; no jq needed).
json_field() { tr -d '\n' | sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p"; }

# lsn_num X/Y: an LSN as a decimal number, for comparisons.
lsn_num() { local hi=${1%/*} lo=${1#*/}; echo $(((16#$hi << 32) | 16#$lo)); }

# free_port: a TCP port on 127.0.0.1 nobody listens on, not handed out before.
used_ports=" "
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 40000))
		case "$used_ports" in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			used_ports+="$p "
			echo "$p"
			return
		fi
	done
	die "no free TCP port found on 127.0.0.1"
}

# --- prerequisites ----------------------------------------------------------

[ -x "$ctl" ] || die "$ctl not found: run 'make build' first (or 'make demo', which does)"
pg_bin=${STRATA_PG_BIN:-}
if [ -z "$pg_bin" ]; then
	if command -v pg_config >/dev/null 2>&1; then pg_bin=$(pg_config --bindir); else pg_bin=/usr/lib/postgresql/15/bin; fi
fi
[ -x "$pg_bin/initdb" ] || die "PostgreSQL 15 not found in $pg_bin: run 'make deps' (or set STRATA_PG_BIN)"
"$pg_bin/postgres" --version | grep -q ' 15\.' || die "$pg_bin/postgres is not PostgreSQL 15"
for t in psql pgbench pg_ctl; do [ -x "$pg_bin/$t" ] || die "$pg_bin/$t not found: run 'make deps'"; done
psql_bin="$pg_bin/psql"
pgbench_bin="$pg_bin/pgbench"

# As root, PostgreSQL runs as strata-pg (the user stratactl boot and the
# tests use too).
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
	if ! id strata-pg >/dev/null 2>&1; then
		useradd --system --user-group --no-create-home --shell /usr/sbin/nologin strata-pg ||
			id strata-pg >/dev/null 2>&1 || die "cannot create the system user strata-pg"
	fi
	as_pg=(runuser -u strata-pg --)
fi

work=${STRATA_DEMO_DIR:-}
if [ -z "$work" ]; then work=$(mktemp -d /tmp/strata-demo.XXXXXX); fi
mkdir -p "$work"
chmod 0755 "$work" # strata-pg must reach the data directories below it
stack="$work/stack"
primary_dir="$work/primary"
branch_dir="$work/branch"

# stop_pg DIR: fast shutdown of the PostgreSQL whose data directory is DIR
# (works for any owner: a signal to the postmaster, as pg_ctl would send).
stop_pg() {
	local pidfile="$1/postmaster.pid" pid
	[ -f "$pidfile" ] || return 0
	pid=$(head -n1 "$pidfile")
	kill -INT "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "$keep" = 1 ] && [ "$rc" -eq 0 ]; then
		return
	fi
	if [ "$rc" -ne 0 ] && [ -d "$stack/logs" ]; then
		printf '\n%sdemo failed (exit %d); last service log lines:%s\n' "$R" "$rc" "$N" >&2
		for f in "$stack"/logs/*.log; do
			[ -f "$f" ] && { printf -- '--- %s\n' "$f" >&2; tail -n 15 "$f" >&2; }
		done
		for f in "$primary_dir/postgres.log" "$branch_dir/postgres.log"; do
			[ -f "$f" ] && { printf -- '--- %s\n' "$f" >&2; tail -n 10 "$f" >&2; }
		done
	fi
	printf '\n%scleaning up %s%s\n' "$D" "$work" "$N"
	stop_pg "$branch_dir"
	[ -d "$stack" ] && "$ctl" stop --dir "$stack" >/dev/null 2>&1 || true
	stop_pg "$primary_dir"
	if [ "$keep" = 1 ]; then
		printf '%sKEEP=1: left %s in place for inspection%s\n' "$D" "$work" "$N"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

demo_start=$(now)
printf '%sStrata demo%s: branch a PostgreSQL database at a past moment to undo an accidental DROP TABLE.\n' "$B" "$N"
printf '%swork directory: %s%s\n' "$D" "$work" "$N"

# --- 1. primary ---------------------------------------------------------------

step "Start a throwaway PostgreSQL 15 primary (an ordinary, unmodified server)"
primary_port=$(free_port)
mkdir -p "$primary_dir"
[ ${#as_pg[@]} -eq 0 ] || chown strata-pg:strata-pg "$primary_dir"
run_quiet "${as_pg[@]}" "$pg_bin/initdb" -D "$primary_dir" -U postgres --auth=trust -E UTF8 --no-sync
cat >>"$primary_dir/postgresql.conf" <<EOF
# strata demo
listen_addresses = '127.0.0.1'
port = $primary_port
unix_socket_directories = '$primary_dir'
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
# synchronous_commit stays on: pg_current_wal_lsn() (the WAL write
# position) then covers the commit the demo just made.
fsync = off
EOF
run_quiet "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$primary_dir" -l "$primary_dir/postgres.log" -w -t 60 start
primary="host=127.0.0.1 port=$primary_port user=postgres dbname=postgres sslmode=disable"
say "primary: $primary"
pq() { "$psql_bin" -X -v ON_ERROR_STOP=1 -At "$@"; }

step "Create the stack: walredo, pageserver, safekeeper-bridge, pgproxy (stratactl init + start)"
run_quiet "$ctl" init --dir "$stack"
run_quiet "$ctl" start --dir "$stack" --timeout 60s
"$ctl" status --dir "$stack" | sed 's/^/   /'

step "Attach the primary: the bridge takes a base backup, imports it, then streams WAL"
export STRATA_DEMO_PRIMARY="$primary"
t0=$(now)
attach_json=$("$ctl" attach --primary env:STRATA_DEMO_PRIMARY --stack-dir "$stack" --wait 3m -o json)
t_attach=$(since "$t0")
tenant=$(json_field tenant_id <<<"$attach_json")
timeline=$(json_field timeline_id <<<"$attach_json")
[ -n "$tenant" ] && [ -n "$timeline" ] || die "could not read the ids from: $attach_json"
export STRATA_TENANT="$tenant"
say "tenant   $tenant"
say "timeline $timeline (slot $(json_field slot_name <<<"$attach_json"), $(json_field state <<<"$attach_json"))"
say "${G}attach took $t_attach${N}"

step "Write: pgbench -i -s $scale (about $((scale * 100000)) accounts), then pgbench for 10 s"
t0=$(now)
run_quiet "$pgbench_bin" -i -s "$scale" -q "$primary"
run_quiet "$pgbench_bin" -T 10 -c 4 -j 2 -n "$primary"
say "done in $(since "$t0")"

step "Create an important table and note the LSN right after it is committed"
pq -d "$primary" -c "CREATE TABLE customers(id int PRIMARY KEY, name text NOT NULL, since date NOT NULL)" >/dev/null
pq -d "$primary" -c "INSERT INTO customers SELECT g, 'customer ' || g, date '2020-01-01' + g % 1500 FROM generate_series(1, 10000) g" >/dev/null
mark_lsn=$(pq -d "$primary" -c "SELECT pg_current_wal_lsn()")
say "customers: $(pq -d "$primary" -c "SELECT count(*) FROM customers") rows"
say "pgbench_history: $(pq -d "$primary" -c "SELECT count(*) FROM pgbench_history") rows"
say "${G}noted LSN $mark_lsn${N}  (pg_current_wal_lsn() after the commit)"

step "Oops: DROP TABLE customers, and the application keeps writing (pgbench -T 5)"
pq -d "$primary" -c "DROP TABLE customers" >/dev/null
say "primary: $(pq -d "$primary" -c "SELECT count(*) FROM pg_class WHERE relname = 'customers'") tables named customers"
run_quiet "$pgbench_bin" -T 5 -c 4 -j 2 -n "$primary"
say "primary is now at LSN $(pq -d "$primary" -c "SELECT pg_current_wal_lsn()")"

step "Wait until the pageserver has ingested WAL past the noted LSN"
t0=$(now)
mark=$(lsn_num "$mark_lsn")
deadline=$((SECONDS + 180))
while :; do
	last=$("$ctl" timeline show "$timeline" --stack-dir "$stack" -o json | json_field last_record_lsn)
	if [ -n "$last" ] && [ "$(lsn_num "$last")" -ge "$mark" ]; then break; fi
	[ "$SECONDS" -lt "$deadline" ] || die "the pageserver did not reach $mark_lsn within 180 s (last_record_lsn ${last:-?}); see $stack/logs"
	sleep 0.5
done
say "last_record_lsn $last >= $mark_lsn (waited $(since "$t0"))"

step "Branch the timeline at the noted LSN (metadata only: no data is copied)"
t0=$(now)
branch_json=$("$ctl" timeline branch --from "$timeline" --lsn "$mark_lsn" --stack-dir "$stack" -o json)
t_branch=$(since "$t0")
branch=$(json_field timeline_id <<<"$branch_json")
[ -n "$branch" ] || die "could not read the branch id from: $branch_json"
"$ctl" timeline list --stack-dir "$stack" | sed 's/^/   /'
say "${G}branch $branch created in $t_branch${N}"

step "Boot the branch: fullbackup at $mark_lsn + a vanilla PostgreSQL 15 on it (stratactl boot)"
branch_port=$(free_port)
t0=$(now)
boot_json=$("$ctl" boot --timeline "$branch" --port "$branch_port" --dir "$branch_dir" --stack-dir "$stack" -o json)
t_boot=$(since "$t0")
branch_conn=$(json_field conn_string <<<"$boot_json")
[ -n "$branch_conn" ] || die "could not read the connection string from: $boot_json"
say "branch: $branch_conn"
say "${G}boot took $t_boot${N}"

step "Compare: the branch still has the table, the primary has moved on"
count() { # count CONN TABLE: row count, or "(dropped)"
	local out
	if out=$(pq -d "$1" -c "SELECT count(*) FROM $2" 2>/dev/null); then echo "$out"; else echo "(dropped)"; fi
}
printf '   %-18s %14s %14s\n' "table" "primary now" "branch"
for tbl in customers pgbench_history pgbench_accounts; do
	printf '   %-18s %14s %14s\n' "$tbl" "$(count "$primary" "$tbl")" "$(count "$branch_conn" "$tbl")"
done
printf '   %-18s %14s %14s\n' "WAL position" "$(pq -d "$primary" -c "SELECT pg_current_wal_lsn()")" "$mark_lsn"
got=$(count "$branch_conn" customers)
[ "$got" = 10000 ] || die "expected 10000 customers on the branch, got $got"
[ "$(count "$primary" customers)" = "(dropped)" ] || die "customers still exists on the primary"
say "${G}customers is back on the branch: $got rows (recover them with pg_dump -t customers from the branch)${N}"

printf '\n%sTimes:%s attach %s, branch creation %s, boot %s; whole demo %s.\n' "$B" "$N" "$t_attach" "$t_branch" "$t_boot" "$(since "$demo_start")"

if [ "$keep" = 1 ]; then
	cat <<EOF

KEEP=1: everything is still running.
  primary:  psql "$primary"
  branch:   psql "$branch_conn"
  stack:    $ctl status --dir $stack
            export STRATA_DIR=$stack STRATA_TENANT=$tenant; $ctl timeline list
  stop all: kill -INT \$(head -1 $branch_dir/postmaster.pid); $ctl stop --dir $stack; kill -INT \$(head -1 $primary_dir/postmaster.pid); rm -rf $work
EOF
fi
