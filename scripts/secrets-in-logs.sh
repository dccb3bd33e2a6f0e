#!/usr/bin/env bash
# Fails when a secret appears in the logs of a test run.
#
#   scripts/secrets-in-logs.sh DIR
#
# DIR is what the tests wrote with MEDSEC_TEST_LOG_DIR=DIR (scripts/test.sh sets it): one file
# per server or agent process and per CLI invocation's stderr, and under DIR/secrets/ every
# secret the harness created or learned (tokens, passphrases, passwords, private key lines),
# one per line (crates/medsec/tests/common/testlog.rs). Every file outside secrets/ is a log.
#
# A log fails the check when it holds
#   - any recorded secret,
#   - a PEM private key block (-----BEGIN ... PRIVATE KEY-----),
#   - a whole API token (mst_<16 hex>_<secret>),
#   - an Authorization header's Bearer or Basic credential.
# Each hit is named by file and line with only a short prefix of what matched, never the
# secret itself. Exit status: 0 clean, 1 a secret was found, 2 usage error or nothing to check
# (no log at all means the capture is broken, not that the logs are clean).
set -euo pipefail
export LC_ALL=C

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 DIR (the MEDSEC_TEST_LOG_DIR of a test run)" >&2
    exit 2
fi
dir=${1%/}

# Logs: every regular file outside secrets/, NUL-separated.
mapfile -d '' logs < <(find "$dir" -path "$dir/secrets" -prune -o -type f -print0 | sort -z)
if [ ${#logs[@]} -eq 0 ]; then
    echo "secrets-in-logs: no log files under $dir; was MEDSEC_TEST_LOG_DIR set for the tests?" >&2
    exit 2
fi

# Recorded secrets, deduplicated; lines shorter than 8 characters would match by chance and are
# not recorded by the harness either.
patterns=$(mktemp)
if [ -d "$dir/secrets" ]; then
    find "$dir/secrets" -type f -print0 | xargs -0r cat | awk 'length($0) >= 8' | sort -u >"$patterns"
fi
nsecrets=$(($(wc -l <"$patterns")))

found=0
hits=$(mktemp)
trap 'rm -f "$patterns" "$hits"' EXIT
# One grep over the whole directory per kind; each hit is printed as "file:line: what
# (prefix…, N chars)", the prefix at most a quarter of the match and never more than 8
# characters. grep prints "file\0line:match" (-H -Z -n -o); status 1 is "no match", 2 an error.
scan() {
    local what=$1 file rest line match n status=0 shown=0
    shift
    grep -r -H -Z -n -o -a --exclude-dir=secrets "$@" -- "$dir" >"$hits" || status=$?
    if [ "$status" -gt 1 ]; then
        echo "secrets-in-logs: grep failed ($status) looking for: $what" >&2
        exit 2
    fi
    while IFS= read -r -d '' file && IFS= read -r rest; do
        line=${rest%%:*}
        match=${rest#*:}
        n=$((${#match} / 4))
        [ "$n" -le 8 ] || n=8
        found=$((found + 1))
        shown=$((shown + 1))
        [ "$shown" -le 50 ] || continue
        printf '%s:%s: %s (%s…, %d chars)\n' "$file" "$line" "$what" "${match:0:n}" "${#match}"
    done <"$hits"
    [ "$shown" -le 50 ] || echo "... and $((shown - 50)) more: $what"
}

if [ "$nsecrets" -gt 0 ]; then
    scan "recorded secret" -F -f "$patterns"
fi
scan "PEM private key" -E -e '-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----'
scan "API token" -E -e 'mst_[0-9a-f]{16}_[A-Za-z0-9_-]{16,}'
scan "Authorization credential" -i -E \
    -e "authorization[\"']?[[:space:]]*[:=][[:space:]]*[\"']?(bearer|basic)[[:space:]]+[A-Za-z0-9._~+/=-]{4,}"

if [ "$found" -gt 0 ]; then
    echo "secrets-in-logs: FAILED: $found secret(s) in the logs above (${#logs[@]} files, $nsecrets recorded secrets checked)" >&2
    exit 1
fi
echo "secrets-in-logs: ok: ${#logs[@]} log files, $nsecrets recorded secrets, no secret found"
