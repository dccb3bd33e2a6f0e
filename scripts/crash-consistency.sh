#!/usr/bin/env bash
# Crash consistency (issue 12): `medsec serve` and the CLI writers (cert revoke, sbom import,
# vuln import, release publish) SIGKILLed at random points during issuance, revocation, SBOM
# import, advisory import, release publishing and event ingest, N iterations on one SQLite data
# directory, the store checked after every kill (crates/medsec/tests/crash_consistency.rs).
# Runs the release binary; prints a Markdown summary for bench/RESULTS.md.
# Needs: curl. Usage: scripts/crash-consistency.sh [iterations] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
seed=${2:-$(( $(date +%s%N) % 1000000000 ))}
cargo build --release -q -p medsec
cargo test -q -p medsec --test crash_consistency --no-run 2>/dev/null
summary=$(mktemp)
log=$(mktemp)
trap 'rm -f "$summary"' EXIT
start=$(date +%s)
status=0
MEDSEC_BIN="$PWD/target/release/medsec" MEDSEC_CRASH_ITERATIONS="$n" MEDSEC_CRASH_SEED="$seed" \
    MEDSEC_CRASH_SUMMARY="$summary" \
    cargo test -q -p medsec --test crash_consistency -- --nocapture >"$log" 2>&1 || status=$?
end=$(date +%s)
echo "## Crash consistency: $n iterations"
echo
echo '```sh'
echo "scripts/crash-consistency.sh $n $seed"
echo '```'
echo
if [ -s "$summary" ]; then
    cat "$summary"
else
    echo "(no summary: the run stopped early; the last lines of its log follow)"
    tail -n 40 "$log"
fi
echo
echo "- script wall time (build check, setup, iterations, final check): $((end - start)) s; log: $log"
if [ "$status" -ne 0 ]; then
    echo "- RESULT: FAILED (exit $status); failures are listed in $log"
else
    echo "- RESULT: passed"
fi
exit "$status"
