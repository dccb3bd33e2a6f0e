#!/usr/bin/env bash
# OCSP requests/s and latency: medsec's responder (cached and uncached) against
# `openssl ocsp -index ... -port` answering for the same CA and the same certificate.
# Needs: a release build (cargo build --release -p medsec), openssl, ab (apt-get install apache2-utils)
# and, for the wrk rows, wrk (apt-get install wrk).
# openssl's responder speaks HTTP/1.0 and closes every connection, so every responder is measured
# with a new connection per request (ab without -k), and medsec also with keep-alive.
# Usage: bench/ocsp.sh [requests]   -- prints Markdown for bench/RESULTS.md
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
M=$PWD/target/release/medsec
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
export MEDSEC_KEY_PASSPHRASE="benchmark passphrase, not a secret"

# One root key for both responders: openssl makes it, medsec imports (and seals) it.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out root.key 2>/dev/null
openssl req -x509 -new -key root.key -subj "/O=Bench/CN=Bench Root" -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature -out root.pem
$M --data-dir data ca import-root --name root --cert root.pem --key root.key >/dev/null
$M --data-dir data ca add-issuing --name issuing --parent root >/dev/null
$M --data-dir data ca show issuing --pem > issuing.pem

# openssl's responder needs an index.txt line for the issuing CA certificate.
serial=$(openssl x509 -in issuing.pem -noout -serial | cut -d= -f2)
enddate=$(date -u -d "$(openssl x509 -in issuing.pem -noout -enddate | cut -d= -f2)" +%y%m%d%H%M%SZ)
subject=$(openssl x509 -in issuing.pem -noout -subject -nameopt compat | sed 's/^subject=//')
printf 'V\t%s\t\t%s\tunknown\t%s\n' "$enddate" "$serial" "$subject" > index.txt

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p_ossl=$(port)
openssl ocsp -index index.txt -port "$p_ossl" -rsigner root.pem -rkey root.key -CA root.pem -nmin 60 >/dev/null 2>&1 &
pids+=($!)

start_medsec() { # $1 = cache seconds; sets $addr (not run in a subshell, so $pids keeps the server)
    printf '[server]\nocsp_cache_secs = %s\n' "$1" > data/medsec.toml
    $M --data-dir data serve --http 127.0.0.1:0 --https 127.0.0.1:0 --device 127.0.0.1:0 > serve.out 2>/dev/null &
    pids+=($!)
    for _ in $(seq 50); do grep -q listening serve.out 2>/dev/null && break; sleep 0.1; done
    addr=$(sed 's/.*http=\([^ ]*\).*/\1/' serve.out | head -1)
}

openssl ocsp -issuer root.pem -cert issuing.pem -reqout req.der -no_nonce >/dev/null
b64=$(base64 -w0 req.der | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')
sleep 1
# Both must answer "good" and verify before we time them.
openssl ocsp -issuer root.pem -cert issuing.pem -url "http://127.0.0.1:$p_ossl" -CAfile root.pem -no_nonce | grep -q "issuing.pem: good"

run_wrk() { # $1 label, $2 url, $3 "close" for a new connection per request
    local out rps p50 p99 hdr=()
    [ "$3" = close ] && hdr=(-H "Connection: close")
    out=$(wrk -t2 -c32 -d"${WRK_SECS:-10}"s --latency "${hdr[@]}" "$2" 2>&1)
    echo "$out" | grep -qE "Non-2xx|Socket errors: connect [1-9]|read [1-9]" && { echo "$out" >&2; exit 1; }
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    echo "| $1 | wrk -t2 -c32 | $rps | ${p50} | ${p99} |"
}

run() { # $1 label, $2 url, $3 extra ab flags (unquoted on purpose)
    local out rps p50 p99
    out=$(ab -q -n "$n" -c 32 $3 "$2" 2>&1)
    echo "$out" | grep -q "Non-2xx responses" && { echo "$out" >&2; exit 1; }
    rps=$(echo "$out" | awk '/Requests per second/ {print $4}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    echo "| $1 | ab -c 32 | $rps | ${p50} ms | ${p99} ms |"
}

# Two load generators. ab is single-threaded and tops out near 100k requests/s here, below what a
# cached responder answers, so medsec is also measured with wrk (two threads). wrk cannot read the
# openssl responder's HTTP/1.0 answers (no Content-Length, body ends at close: it counts 0
# requests), so openssl's row is ab's; ab is not its bottleneck (ab drives medsec faster).
echo "| responder | load generator | requests/s | p50 | p99 |"
echo "|---|---|---|---|---|"
run "openssl ocsp -index -port (new connection per request)" "http://127.0.0.1:$p_ossl/$b64" "" ab
for cache in 0 60; do
    start_medsec "$cache"
    openssl ocsp -issuer root.pem -cert issuing.pem -url "http://$addr/ocsp" -CAfile root.pem -no_nonce | grep -q "issuing.pem: good"
    run "medsec serve, ocsp_cache_secs=$cache, new connection per request" "http://$addr/ocsp/$b64" "" ab
    run "medsec serve, ocsp_cache_secs=$cache, keep-alive" "http://$addr/ocsp/$b64" "-k" ab
    if command -v wrk >/dev/null; then
        run_wrk "medsec serve, ocsp_cache_secs=$cache, new connection per request" "http://$addr/ocsp/$b64" close
        run_wrk "medsec serve, ocsp_cache_secs=$cache, keep-alive" "http://$addr/ocsp/$b64" keep
    fi
    [ "$cache" = 60 ] && curl -sf "http://$addr/ocsp/$b64" -o resp.der
    kill "${pids[-1]}" 2>/dev/null || true
    wait "${pids[-1]}" 2>/dev/null || true
done

# The machine's ceiling: nginx (two workers) serving the same response bytes as a static file.
# Nothing that answers HTTP here, however little it does per request, goes much above this row.
if command -v nginx >/dev/null; then
    p_ngx=$(port)
    mkdir -p ngx
    chmod a+rx "$work" && chmod a+r resp.der  # nginx workers run as www-data when started by root
    printf 'worker_processes 2; pid %s/ngx/pid; error_log %s/ngx/err;\nevents { worker_connections 1024; }\nhttp { access_log off; server { listen 127.0.0.1:%s; root %s; location / { default_type application/ocsp-response; try_files /resp.der =404; } } }\n' \
        "$work" "$work" "$p_ngx" "$work" > ngx/nginx.conf
    nginx -c "$work/ngx/nginx.conf"
    sleep 0.5
    run "ceiling: nginx, static file of the same bytes, new connection per request" "http://127.0.0.1:$p_ngx/$b64" "" ab
    run "ceiling: nginx, static file of the same bytes, keep-alive" "http://127.0.0.1:$p_ngx/$b64" "-k" ab
    command -v wrk >/dev/null && run_wrk "ceiling: nginx, static file of the same bytes, keep-alive" "http://127.0.0.1:$p_ngx/$b64" keep
    nginx -c "$work/ngx/nginx.conf" -s stop 2>/dev/null || true
fi
