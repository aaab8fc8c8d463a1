#!/usr/bin/env bash
# redis.sh: redis-server on 127.0.0.1 (a free high port) under a bounded
# redis-benchmark load, then SET/GET/list/hash checks through redis-cli and a
# clean SHUTDOWN; done once plain and once with $1 preloaded. The checks'
# output must match and the preloaded server must have used the library.
# Skips (77) only if redis-server, redis-cli or redis-benchmark is missing.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$@"
buddy_require redis-server redis-cli redis-benchmark

HOST=127.0.0.1            # loopback only
PORT_MIN=20000
PORT_SPAN=30000
START_ATTEMPTS=10
READY_POLLS=100           # x 0.1 s to wait for the server to answer PING
REQUESTS=20000
SERVER_PID=

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    SERVER_PID=
}
BUDDY_ON_EXIT=stop_server

# start_server TAG [env assignments...]: starts a server on a free port
# ($PORT); tries other ports if the chosen one turns out to be taken.
start_server() {
    local tag="$1"; shift
    local attempt i
    for attempt in $(seq "$START_ATTEMPTS"); do
        PORT=$((PORT_MIN + (RANDOM * 32768 + RANDOM) % PORT_SPAN))
        # Skip ports something already listens on.
        if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then continue; fi
        mkdir -p "$BUDDY_TMP/$tag-data"
        env "$@" redis-server --bind "$HOST" --port "$PORT" --protected-mode yes \
            --save '' --appendonly no --dir "$BUDDY_TMP/$tag-data" \
            --logfile "$BUDDY_TMP/$tag.log" --daemonize no </dev/null 2>"$BUDDY_TMP/$tag.err" &
        SERVER_PID=$!
        for i in $(seq "$READY_POLLS"); do
            if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
            if [ "$(redis-cli -h "$HOST" -p "$PORT" PING 2>/dev/null)" = PONG ]; then return 0; fi
            sleep 0.1
        done
        stop_server
    done
    buddy_fail "$tag: could not start redis-server"
    return 1
}

cli() { redis-cli -h "$HOST" -p "$PORT" "$@"; }

# run_scenario TAG [env assignments...]: writes the check output to TAG.out.
run_scenario() {
    local tag="$1"; shift
    local out="$BUDDY_TMP/$tag.out" i
    start_server "$tag" "$@" || return 1
    if ! redis-benchmark -h "$HOST" -p "$PORT" -n "$REQUESTS" -c 20 -q -d 100 -r 5000 \
            -t set,get,incr,lpush,lpop,hset >"$BUDDY_TMP/$tag.bench" 2>&1; then
        buddy_fail "$tag: redis-benchmark failed"
        cat "$BUDDY_TMP/$tag.bench" >&2
    fi
    grep -qi error "$BUDDY_TMP/$tag.bench" && buddy_fail "$tag: errors in benchmark output"
    {
        cli FLUSHALL
        for i in $(seq 200); do
            printf 'SET key:%d %s\n' "$i" "value-$i-$(printf '%*s' $((i * 7 % 300)) '' | tr ' ' x)"
        done | cli >/dev/null
        for i in 1 50 123 200; do cli GET "key:$i"; done
        head -c 300000 /dev/zero | tr '\0' b | cli -x SET big >/dev/null
        cli STRLEN big
        cli APPEND big tail
        for i in $(seq 500); do printf 'RPUSH list item-%d\n' "$i"; done | cli >/dev/null
        cli LLEN list
        cli LRANGE list 100 104
        for i in $(seq 300); do printf 'HSET h f%d %d\n' "$i" $((i * i)); done | cli >/dev/null
        cli HLEN h
        cli HGET h f17
        cli DEL list h
        cli DBSIZE
        cli SHUTDOWN NOSAVE 2>&1 | grep -v -e '^$' -e 'connect' || true
    } >"$out" 2>&1
    wait "$SERVER_PID"
    local rc=$?
    SERVER_PID=
    echo "$tag: server exit status $rc" >>"$out"
}

run_scenario redis-plain
run_scenario redis-preloaded $(buddy_preload_env redis)
# The server's stderr (and so the BUDDY_STATS summary at exit) is TAG.err.
buddy_assert_used redis "$BUDDY_TMP/redis-preloaded.err"

if ! diff <(sed 's/^redis-plain: //' "$BUDDY_TMP/redis-plain.out") \
          <(sed 's/^redis-preloaded: //' "$BUDDY_TMP/redis-preloaded.out") >&2; then
    buddy_fail "redis: check output differs between plain and preloaded servers"
fi
grep -q '^value-123-x' "$BUDDY_TMP/redis-preloaded.out" || buddy_fail "redis: GET key:123 wrong"
grep -qx 'server exit status 0' <(sed 's/^redis-preloaded: //' "$BUDDY_TMP/redis-preloaded.out") ||
    buddy_fail "redis: preloaded server did not exit cleanly"
echo "--- preloaded benchmark:"
tr '\r' '\n' <"$BUDDY_TMP/redis-preloaded.bench" | grep 'requests per second'
echo "--- check output:"; cat "$BUDDY_TMP/redis-preloaded.out"
buddy_finish
