#!/usr/bin/env bash
# BotShop's benchmark, in one command (see bench/README.md):
#
#   bash bench/run.sh            # 10 000 customers, 100 000 orders
#   bash bench/run.sh --large    # 100 000 customers, 1 000 000 orders
#   bash bench/run.sh --search   # 100 000 products: /health, the catalog page and search
#
# Both order modes also measure the admin order list by status and a catalog import of
# BENCH_IMPORT_PRODUCTS (10 000) products as CSV (time and the server's memory).
#
# Builds the release server, generates the data into a fresh PostgreSQL database
# (botshop_bench, dropped and recreated), starts the server against a local fake Telegram,
# loads it with wrk on loopback at 16 and 64 connections, measures the two ceilings
# (GET /health, and pgbench running the order's SQL), start-up time and memory, and prints
# a Markdown table that it also writes to bench/results/latest.md.
#
# Knobs (environment): BENCH_DURATION (seconds per run, 15), BENCH_WARMUP (3),
# BENCH_CONNECTIONS ("16 64"), BENCH_SIGNED_USERS (2000), BENCH_STARTUP_RUNS (5),
# BENCH_PORT (18000), BENCH_STUB_PORT (18001), BENCH_TELEGRAM (limited|ok, see
# telegram_stub.py), BENCH_SERVER_ENV ("KEY=value ..." added to the server's settings),
# BENCH_ONLY (space-separated parts to run: micro health categories products_page
# product_card orders_my admin_orders orders_create orders_my_after_burst
# orders_my_after_analyze pgbench import search; --search runs "health products_page
# search" unless it is set), BENCH_IMPORT_PRODUCTS (10000),
# PGHOST / PGPORT / PGUSER / PGPASSWORD (by default the local server's Unix socket in
# /var/run/postgresql when it has one, else 127.0.0.1; 5432; postgres; none).
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

MODE=100k USERS=10000 ORDERS=100000
for arg in "$@"; do
  case "$arg" in
    --large) MODE=1m USERS=100000 ORDERS=1000000 ;;
    --search) MODE=search ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
DURATION=${BENCH_DURATION:-15}
WARMUP=${BENCH_WARMUP:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-16 64}
SIGNED_USERS=${BENCH_SIGNED_USERS:-2000}
STARTUP_RUNS=${BENCH_STARTUP_RUNS:-5}
PORT=${BENCH_PORT:-18000}
STUB_PORT=${BENCH_STUB_PORT:-18001}
TELEGRAM_MODE=${BENCH_TELEGRAM:-limited}
IMPORT_PRODUCTS=${BENCH_IMPORT_PRODUCTS:-10000}
# The admin API's token for programs, in the server's settings and wrk's requests.
ADMIN_TOKEN=bench-admin-api-token-0123456789abcdefghijklmnopqrstuvwxyz
ONLY=${BENCH_ONLY:-}
# --search measures the search against the catalog page and the framework, nothing else.
[[ $MODE == search && -z $ONLY ]] && ONLY="health products_page search"
wants() { [[ -z $ONLY || " $ONLY " == *" $1 "* ]]; }
export PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
# A one-box deployment reaches PostgreSQL through its Unix socket, which costs the server
# (and PostgreSQL) less per query than loopback TCP; the server and pgbench both use it.
if [[ -z ${PGHOST:-} && -S /var/run/postgresql/.s.PGSQL.$PGPORT ]]; then
  PGHOST=/var/run/postgresql
fi
export PGHOST=${PGHOST:-127.0.0.1}
DB=botshop_bench
# A socket directory goes in the URL's host, percent-encoded.
DATABASE_URL="postgres://${PGUSER}${PGPASSWORD:+:$PGPASSWORD}@${PGHOST//\//%2F}:${PGPORT}/${DB}"
BASE="http://127.0.0.1:$PORT"
# The command as given, with the knobs that were set.
COMMAND="bash bench/run.sh${1:+ $*}"
for knob in BENCH_DURATION BENCH_WARMUP BENCH_CONNECTIONS BENCH_SIGNED_USERS BENCH_STARTUP_RUNS \
  BENCH_TELEGRAM BENCH_SERVER_ENV BENCH_ONLY; do
  [[ -n ${!knob:-} ]] && COMMAND="$knob=\"${!knob}\" $COMMAND"
done
(( SIGNED_USERS <= USERS )) || { echo "bench: BENCH_SIGNED_USERS exceeds the $USERS customers" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/botshop-bench.XXXXXX")
# endpoint, connections, req/s, p50 µs, p99 µs, peak RSS kB, non-2xx, socket errors, others'
# compilers seen, server CPU µs per answer, machine busy %
RESULTS="$WORK/results.tsv"
META="$WORK/meta.env"         # key=value facts for the report
: >"$RESULTS"
: >"$META"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
meta() { printf '%s=%s\n' "$1" "$2" >>"$META"; }
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

SERVER_PID="" STUB_PID="" SAMPLER_PID=""
stop_server() {
  if [[ -n $SERVER_PID ]]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
cleanup() {
  local status=$?
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null || true
  stop_server
  if [[ -n $STUB_PID ]]; then kill "$STUB_PID" 2>/dev/null || true; wait "$STUB_PID" 2>/dev/null || true; fi
  cd /
  if ((status == 0)); then rm -rf "$WORK"; else log "logs kept in $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Tools ---------------------------------------------------------------------------------

as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }
apt_install() {
  log "installing $* with apt-get"
  as_root apt-get install -y "$@" >"$WORK/apt.log" 2>&1 ||
    { as_root apt-get update >>"$WORK/apt.log" 2>&1 && as_root apt-get install -y "$@" >>"$WORK/apt.log" 2>&1; } ||
    die "could not install $* (see $WORK/apt.log)"
}
command -v wrk >/dev/null || apt_install wrk
if ! command -v pgbench >/dev/null || ! command -v psql >/dev/null; then apt_install postgresql-client; fi
command -v curl >/dev/null || apt_install curl
command -v python3 >/dev/null || apt_install python3
command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"

psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
pg_isready -q -h "$PGHOST" -p "$PGPORT" || die "PostgreSQL does not answer at $PGHOST:$PGPORT"
for port in "$PORT" "$STUB_PORT"; do
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
    die "port $port is in use (set BENCH_PORT / BENCH_STUB_PORT)"
  fi
done

# Other people's compilers running now: their CPU use makes the figures noisy.
others_busy() { pgrep -c -x 'rustc|cc1|cc1plus|ld|rust-lld|cargo' 2>/dev/null || true; }
meta load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
meta compilers_before "$(others_busy)"

# --- Build ---------------------------------------------------------------------------------

log "building the release server (cargo build --release -p server)"
(cd "$ROOT" && cargo build --release -p server) || die "the release build failed"
TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET_DIR/release/server"
[[ -x $BIN ]] || die "no binary at $BIN"

# The criterion micro-benchmarks, before any load (their figures: see report.py).
if [[ -z $ONLY || " $ONLY " == *" micro "* ]]; then
  log "criterion micro-benchmarks (cargo bench -p domain, -p http-actix)"
  (cd "$ROOT" &&
    cargo bench -p domain --bench init_data --bench pricing -- --warm-up-time 1 --measurement-time 5 &&
    cargo bench -p http-actix --bench product_page -- --warm-up-time 1 --measurement-time 5) \
    >"$WORK/criterion.txt" 2>&1 || die "cargo bench failed: $(tail -5 "$WORK/criterion.txt")"
  meta criterion_dir "$TARGET_DIR/criterion"
fi

# Every setting explicit, nothing inherited: the server runs in an empty directory (no .env,
# no botshop.toml) with a clean environment.
cd "$WORK"
SERVER_ENV=(
  PATH="$PATH" HOME="$HOME" LANG=C.UTF-8
  DATABASE_URL="$DATABASE_URL" HOST=127.0.0.1 PORT="$PORT"
  DEBUG=false TELEGRAM_BOT_TOKEN=7000000001:BENCH-fake-token-botshop MANAGER_CHAT_ID=424242
  TELEGRAM_UPDATES=off ADMIN_API_TOKEN="$ADMIN_TOKEN"
  TELEGRAM_API_URL="http://127.0.0.1:$STUB_PORT" RUST_LOG=warn LOG_FORMAT=json
  ORDER_RATE_LIMIT_PER_MINUTE=100000000 ORDER_RATE_LIMIT_BURST=100000000
  IP_RATE_LIMIT_PER_MINUTE=100000000 ADMIN_RATE_LIMIT_PER_MINUTE=100000000 METRICS_ENABLED=true
)
# shellcheck disable=SC2206 # word splitting is the point: "KEY=value KEY2=value2"
[[ -n ${BENCH_SERVER_ENV:-} ]] && SERVER_ENV+=($BENCH_SERVER_ENV)
server_cmd() { env -i "${SERVER_ENV[@]}" "$BIN" "$@"; }

# --- Data ----------------------------------------------------------------------------------

log "creating $DB ($MODE: $USERS customers, $ORDERS orders)"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" ||
  die "could not create $DB"
server_cmd migrate up >"$WORK/migrate.log" 2>&1 || die "migrate up failed: $(tail -5 "$WORK/migrate.log")"
started=$(now_ms)
psql_db -v users="$USERS" -v orders="$ORDERS" -f "$BENCH/seed.sql" >"$WORK/seed.log" 2>&1 ||
  die "generating the data failed: $(tail -5 "$WORK/seed.log")"
if [[ $MODE == search ]]; then
  psql_db -f "$BENCH/seed-search.sql" >>"$WORK/seed.log" 2>&1 ||
    die "generating the search catalog failed: $(tail -5 "$WORK/seed.log")"
fi
meta seed_seconds "$(( ($(now_ms) - started) / 1000 ))"
read -r n_categories n_products n_users n_orders n_lines n_sent < <(psql_db -tA -F ' ' -c "
  SELECT (SELECT count(*) FROM categories), (SELECT count(*) FROM products),
         (SELECT count(*) FROM users), (SELECT count(*) FROM orders),
         (SELECT count(*) FROM order_items),
         (SELECT count(*) FROM outbox_events WHERE status = 'SENT')")
meta data "$n_categories categories, $n_products products, $n_users customers, $n_orders orders with $n_lines lines, $n_sent outbox events (all SENT)"
log "data: $(grep '^data=' "$META" | cut -d= -f2-) in $(grep '^seed_seconds=' "$META" | cut -d= -f2) s"
PRODUCT_MIN=$(psql_db -tA -c "SELECT min(id) FROM products")
PRODUCT_MAX=$(psql_db -tA -c "SELECT max(id) FROM products")
CATEGORY_ID=$(psql_db -tA -c "SELECT min(id) FROM categories")
meta postgres "$(psql_db -tA -c "SELECT split_part(version(), ' ', 2)
  || ', shared_buffers ' || current_setting('shared_buffers')
  || ', synchronous_commit ' || current_setting('synchronous_commit')
  || ', max_connections ' || current_setting('max_connections')"), reached at $PGHOST (server and pgbench)"

# --- Signed initData -----------------------------------------------------------------------

# One `tma <initData>` per customer, signed for the profile stored in the database, as for
# a returning customer; each is reused for the whole run (one launch of the Mini App). One
# process per signature, two at a time: a few seconds for 2 000.
log "signing initData for $SIGNED_USERS customers"
started=$(now_ms)
psql_db -tA -F '|' -c "SELECT telegram_id, coalesce(username, ''), coalesce(first_name, ''),
  coalesce(last_name, '') FROM users ORDER BY id LIMIT $SIGNED_USERS" >"$WORK/customers.txt"
split -n l/2 -d "$WORK/customers.txt" "$WORK/customers.part."
sign_part() {
  local telegram_id username first_name last_name args
  while IFS='|' read -r telegram_id username first_name last_name; do
    args=(sign-init-data --user-id "$telegram_id")
    [[ -n $username ]] && args+=(--username "$username")
    [[ -n $first_name ]] && args+=(--first-name "$first_name")
    [[ -n $last_name ]] && args+=(--last-name "$last_name")
    server_cmd "${args[@]}"
  done <"$1" >"$1.auth"
}
signers=()
for part in "$WORK"/customers.part.??; do sign_part "$part" & signers+=($!); done
for pid in "${signers[@]}"; do wait "$pid" || die "sign-init-data failed"; done
cat "$WORK"/customers.part.??.auth >"$WORK/auth.txt"
(($(wc -l <"$WORK/auth.txt") == SIGNED_USERS)) || die "expected $SIGNED_USERS signed headers"
meta sign_seconds "$(( ($(now_ms) - started) / 1000 ))"
AUTH=$(head -n1 "$WORK/auth.txt")

# --- Fake Telegram and the server ----------------------------------------------------------

python3 "$BENCH/telegram_stub.py" "$STUB_PORT" "$TELEGRAM_MODE" >"$WORK/stub.log" 2>&1 &
STUB_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$STUB_PORT/stats" && break; sleep 0.05; done
curl -sf -o /dev/null "http://127.0.0.1:$STUB_PORT/stats" || die "the Telegram stub did not start"

# The status code of GET $1, with no process started (bash's /dev/tcp): fine-grained enough
# to time start-up.
http_code() {
  local code=000
  if { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null; then
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$1" >&3
    read -r _ code _ <&3 || code=000
    exec 3<&- 3>&-
  fi
  echo "$code"
}
start_server() {
  # Not through server_cmd: a backgrounded function is a subshell, and `$!` must be the
  # server itself (env execs it).
  env -i "${SERVER_ENV[@]}" "$BIN" serve >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
}
# Waits for a 200 from /ready; prints the milliseconds since $1.
wait_ready() {
  local deadline=$(($1 + 30000))
  until [[ $(http_code /ready) == 200 ]]; do
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited: $(tail -5 "$WORK/server.log")"
    (($(now_ms) < deadline)) || die "the server was not ready within 30 s"
    sleep 0.002
  done
  echo $(($(now_ms) - $1))
}
status_kb() { # VmRSS or VmHWM of the server, in kB
  local key value _
  { while read -r key value _; do
      [[ $key == "$1:" ]] && { echo "$value"; return; }
    done <"/proc/$SERVER_PID/status"; } 2>/dev/null
  echo 0
}

# Start-up: migrations are applied already, so this is connecting, checking for pending
# migrations, the Telegram chat check and binding, until /ready answers 200.
log "start-up time ($STARTUP_RUNS runs)"
startups=()
for _ in $(seq "$STARTUP_RUNS"); do
  started=$(now_ms)
  start_server
  startups+=("$(wait_ready "$started")")
  stop_server
done
meta startup_ms "${startups[*]}"

start_server
wait_ready "$(now_ms)" >/dev/null
sleep 2
meta idle_rss_kb "$(status_kb VmRSS)"

# --- Sanity: every endpoint answers as expected before it is loaded ------------------------

check() { # expected status, then curl arguments
  local expected=$1 code
  shift
  code=$(curl -s -o "$WORK/answer.json" -w '%{http_code}' "$@")
  [[ $code == "$expected" ]] || die "$* answered $code, not $expected: $(head -c 300 "$WORK/answer.json")"
}
check 200 "$BASE/health"
check 200 "$BASE/api/v1/categories"
check 200 "$BASE/api/v1/products?category_id=$CATEGORY_ID"
items=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/answer.json")
((items == 50)) || die "the product page holds $items products, not 50"
check 200 "$BASE/api/v1/products/$PRODUCT_MAX"
check 200 -H "Authorization: $AUTH" "$BASE/api/v1/orders/my"
check 200 -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/api/v1/admin/orders?status=DELIVERED&limit=20"
check 201 -H "Authorization: $AUTH" -H 'Content-Type: application/json' "$BASE/api/v1/orders" \
  -d '{"items":[{"product_id":5,"quantity":1},{"product_id":4,"quantity":1},{"product_id":3,"quantity":1}],"delivery_address":"г. Москва, ул. Пушкина, д. 10","phone":"+79001234567"}'
if [[ $MODE == search ]] && wants search; then
  check 200 --get --data-urlencode "q=Сочный БАГЕТ" --data-urlencode limit=200 "$BASE/api/v1/products"
  items=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/answer.json")
  ((items > 0 && items < 200)) || die "the search for two words found $items products"
  meta search_sample "a search for «сочный багет» finds $items products"
fi

# --- Load ----------------------------------------------------------------------------------

export BENCH_LUA_DIR="$BENCH/lua" BENCH_AUTH_FILE="$WORK/auth.txt"
export BENCH_PRODUCT_MIN="$PRODUCT_MIN" BENCH_PRODUCT_MAX="$PRODUCT_MAX"
export BENCH_ADMIN_TOKEN="$ADMIN_TOKEN"

# Samples the server's VmRSS every 100 ms until $1.stop exists; writes the highest to $1,
# and the most compilers of other people seen running (sampled every second) to $1.busy.
sample() {
  local out=$1 peak=0 busy=0 rss tick=0 n
  while [[ ! -e $out.stop ]]; do
    rss=$(status_kb VmRSS)
    ((rss > peak)) && peak=$rss
    if ((tick % 10 == 0)); then n=$(others_busy); ((n > busy)) && busy=$n; fi
    tick=$((tick + 1))
    echo "$peak" >"$out"
    echo "$busy" >"$out.busy"
    sleep 0.1
  done
}


# CPU time in clock ticks: the server's (user + system), and the whole machine's busy and
# total time, to tell how much of the machine the server used during a run.
server_ticks() {
  local fields
  read -ra fields <"/proc/$SERVER_PID/stat" 2>/dev/null || { echo 0; return; }
  echo $((fields[13] + fields[14]))
}
machine_ticks() { # busy total
  local _cpu user nice system idle iowait irq softirq steal _rest
  read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}
# "server CPU µs per answer, machine busy %" between two samples.
cpu_use() { # server_before server_after busy_before total_before busy_after total_after requests
  awk -v s0="$1" -v s1="$2" -v b0="$3" -v t0="$4" -v b1="$5" -v t1="$6" -v n="$7" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.0f\t%.0f", (n > 0 ? (s1 - s0) / hz * 1e6 / n : 0), (t1 > t0 ? 100 * (b1 - b0) / (t1 - t0) : 0) }'
}

# run_wrk NAME SCRIPT PATH: a warm-up, then one measured run per connection count.
run_wrk() {
  local name=$1 script=$2 path=$3 connections line out
  wants "$name" || return 0
  log "$name: $path"
  wrk -t2 -c16 -d"${WARMUP}s" -s "$BENCH/lua/$script" "$BASE$path" >/dev/null 2>&1 || true
  for connections in $CONNECTIONS; do
    out="$WORK/rss.$name.$connections"
    rm -f "$out.stop"
    sample "$out" &
    SAMPLER_PID=$!
    local server_before machine_before server_after machine_after
    server_before=$(server_ticks)
    machine_before=$(machine_ticks)
    wrk -t2 -c"$connections" -d"${DURATION}s" --latency -s "$BENCH/lua/$script" "$BASE$path" \
      >"$WORK/wrk.$name.$connections.txt" 2>&1 || true
    server_after=$(server_ticks)
    machine_after=$(machine_ticks)
    touch "$out.stop"
    wait "$SAMPLER_PID" || true
    SAMPLER_PID=""
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during $name: $(tail -5 "$WORK/server.log")"
    line=$(grep '^BENCH ' "$WORK/wrk.$name.$connections.txt") ||
      die "wrk failed for $name: $(tail -5 "$WORK/wrk.$name.$connections.txt")"
    # shellcheck disable=SC2034 # max_us is in the line, unused
    local requests duration_us p50_us p99_us max_us non2xx socket_errors
    # shellcheck disable=SC2086 # after "BENCH ", the line is key=value pairs
    local ${line#BENCH }
    # shellcheck disable=SC2086 # the tick samples are "busy total" pairs
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$connections" \
      "$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", r / (d / 1e6) }')" \
      "$p50_us" "$p99_us" "$(cat "$out")" "$non2xx" "$socket_errors" "$(cat "$out.busy")" \
      "$(cpu_use "$server_before" "$server_after" $machine_before $machine_after "$requests")" >>"$RESULTS"
    log "  $connections connections: $(tail -n1 "$RESULTS" | cut -f3) req/s, p50 ${p50_us} us, p99 ${p99_us} us, non-2xx $non2xx"
  done
}

# Reads before writes, and orders/my before POST /orders adds orders to the customers it
# lists, so that its figure is for the generated data (10 orders per customer in both modes).
run_wrk health static.lua /health
run_wrk categories static.lua /api/v1/categories
run_wrk products_page static.lua "/api/v1/products?category_id=$CATEGORY_ID"
run_wrk product_card product_card.lua /api/v1/products/1
# Random two-word searches over the 100 000 products of --search (bench/lua/search.lua).
if [[ $MODE == search ]]; then run_wrk search search.lua /api/v1/products; fi
# A page of 10: every generated customer has exactly 10 orders, so before the burst it is
# their whole history (as with the default page of 50), and after it the 10 newest: the
# same amount of data, so that the two figures differ only by how the query is planned.
run_wrk orders_my orders_my.lua "/api/v1/orders/my?limit=10"
# The admin's order board: the first page of each status in turn, with its total.
if [[ $MODE != search ]]; then run_wrk admin_orders admin_orders.lua /api/v1/admin/orders; fi
# The burst of orders, then the customers' orders pages again at once, before anything
# analyses the tables anew: a query whose plan depends on fresh statistics shows here.
# Autovacuum is off for the two tables meanwhile, so that it cannot analyse them
# half-way through.
if wants orders_create || wants orders_my_after_burst; then
  psql_db -c "ALTER TABLE orders SET (autovacuum_enabled = false)" \
    -c "ALTER TABLE order_items SET (autovacuum_enabled = false)"
  orders_before=$(psql_db -tA -c "SELECT count(*) FROM orders")
fi
run_wrk orders_create orders_create.lua /api/v1/orders
if wants orders_create || wants orders_my_after_burst; then
  meta burst_orders "$(( $(psql_db -tA -c "SELECT count(*) FROM orders") - orders_before ))"
fi
# Both after-burst figures read the same rows; they differ only in the statistics the
# planner has (those of the generated data, then fresh ones), and each starts after a
# CHECKPOINT, so that neither competes with writing out the burst's pages.
if wants orders_my_after_burst; then psql_db -c "CHECKPOINT"; fi
run_wrk orders_my_after_burst orders_my.lua "/api/v1/orders/my?limit=10"
if wants orders_create || wants orders_my_after_burst; then
  psql_db -c "ALTER TABLE orders RESET (autovacuum_enabled)" \
    -c "ALTER TABLE order_items RESET (autovacuum_enabled)"
fi
if wants orders_my_after_analyze; then psql_db -c "ANALYZE orders" -c "ANALYZE order_items" -c "CHECKPOINT"; fi
run_wrk orders_my_after_analyze orders_my.lua "/api/v1/orders/my?limit=10"

# The lifetime peak of serving requests, before the import (reported on its own).
meta peak_hwm_kb "$(status_kb VmHWM)"

# A catalog import of IMPORT_PRODUCTS new products (and 10 categories) as CSV, then the
# same file again (everything unchanged): how long each takes, and the server's RSS before
# and at its highest during each (sampled every 100 ms).
import_once() { # label
  local out="$WORK/rss.import.$1" started took code rss_before
  rm -f "$out.stop"
  sample "$out" &
  SAMPLER_PID=$!
  rss_before=$(status_kb VmRSS)
  started=$(now_ms)
  code=$(curl -s -o "$WORK/import.$1.json" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: text/csv' \
    --data-binary @"$WORK/import.csv" "$BASE/api/v1/admin/catalog/import")
  took=$(($(now_ms) - started))
  touch "$out.stop"
  wait "$SAMPLER_PID" || true
  SAMPLER_PID=""
  [[ $code == 200 ]] || die "the import ($1) answered $code: $(head -c 300 "$WORK/import.$1.json")"
  meta "import_${1}_ms" "$took"
  meta "import_${1}_rss_kb" "$rss_before $(cat "$out")"
  meta "import_${1}_report" "$(tr -d '\n' <"$WORK/import.$1.json")"
  log "  $1: $took ms, RSS $rss_before kB before, $(cat "$out") kB at most"
}
if [[ $MODE != search ]] && wants import; then
  python3 "$BENCH/import_csv.py" "$IMPORT_PRODUCTS" >"$WORK/import.csv"
  meta import_file "$IMPORT_PRODUCTS products and 10 categories, $(($(wc -c <"$WORK/import.csv") / 1024)) KiB of CSV"
  log "import: $(grep '^import_file=' "$META" | cut -d= -f2-)"
  import_once new
  import_once again
fi

meta telegram "$(curl -s "http://127.0.0.1:$STUB_PORT/stats" | python3 -c 'import json, sys
print("{mode}: {sent} messages accepted, {refused} answered 429".format(**json.load(sys.stdin)))')"
curl -s "$BASE/metrics" >"$WORK/metrics.txt" || true
meta server_5xx "$(awk '/^botshop_http_requests_total/ && /status="5/ { n += $NF } END { print n + 0 }' "$WORK/metrics.txt")"
stop_server

# --- The database ceiling ------------------------------------------------------------------

# The order's statements, with nothing else running against the database (the server is
# stopped); per-transaction latencies come from pgbench's log.
if wants pgbench; then
  for connections in $CONNECTIONS; do
    log "pgbench: the order's SQL at $connections clients"
    rm -f "$WORK"/pgbench_log.*
    machine_before=$(machine_ticks)
    pgbench -n -M prepared -j 2 -c "$connections" -T "$DURATION" -D signed_users="$SIGNED_USERS" \
      -l --log-prefix="$WORK/pgbench_log" -f "$BENCH/order.pgbench.sql" "$DB" \
      >"$WORK/pgbench.$connections.txt" 2>&1 || die "pgbench failed: $(tail -5 "$WORK/pgbench.$connections.txt")"
    machine_after=$(machine_ticks)
    tps=$(awk '/^tps = / { printf "%.0f", $3 }' "$WORK/pgbench.$connections.txt")
    failed=$(awk '/^number of failed transactions:/ { print $5 }' "$WORK/pgbench.$connections.txt")
    read -r p50 p99 < <(cat "$WORK"/pgbench_log.* | awk '{ print $3 }' | sort -n |
      awk '{ v[NR] = $1 } END { printf "%d %d\n", v[int(NR * 0.50) + 1], v[int(NR * 0.99) + 1] }')
    # shellcheck disable=SC2086 # the tick samples are "busy total" pairs
    busy=$(cpu_use 0 0 $machine_before $machine_after 0 | cut -f2)
    printf 'pgbench\t%s\t%s\t%s\t%s\t\t%s\t0\t%s\t\t%s\n' "$connections" "$tps" "$p50" "$p99" \
      "${failed:-0}" "$(others_busy)" "$busy" >>"$RESULTS"
    log "  $connections clients: $tps tps, p50 ${p50} us, p99 ${p99} us"
  done
fi

# --- Report --------------------------------------------------------------------------------

meta load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
meta compilers_after "$(others_busy)"
meta mode "$MODE"
meta command "$COMMAND"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta machine "$(nproc) CPUs ($(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)"
meta commit "$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD -- crates migration Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes')"
meta duration "$DURATION"
meta signed_users "$SIGNED_USERS"

mkdir -p "$BENCH/results"
# The previous run of this mode is the baseline every line is compared with.
if [[ -f $BENCH/results/latest-$MODE.tsv ]]; then
  cp "$BENCH/results/latest-$MODE.tsv" "$WORK/baseline.tsv"
  sed -n 's/^- Date: \(.*\)/\1/p' "$BENCH/results/latest-$MODE.md" 2>/dev/null >"$WORK/baseline.commit" || true
  meta baseline "$WORK/baseline.tsv"
fi
python3 "$BENCH/report.py" "$RESULTS" "$META" "$BENCH/results" >"$WORK/report.md"
cp "$WORK/report.md" "$BENCH/results/latest.md"
cp "$WORK/report.md" "$BENCH/results/latest-$MODE.md"
cp "$RESULTS" "$BENCH/results/latest-$MODE.tsv"
cat "$WORK/report.md"
log "written to bench/results/latest.md"
