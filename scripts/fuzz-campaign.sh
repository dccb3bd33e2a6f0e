#!/usr/bin/env bash
# Runs a libFuzzer campaign on one fuzz target (or each in turn) and records it.
#
#   scripts/fuzz-campaign.sh <target>|all <seconds> [libFuzzer flags...]
#
# Targets are the `medsec_fuzz::TARGETS` (crates/fuzz), built by the cargo-fuzz project in
# fuzz/ (address sanitizer, release with debug assertions) into target/fuzz. Each run starts
# from a working copy of the seed corpus crates/fuzz/corpus/<target> in
# target/fuzz-campaign/<target>/corpus (kept between runs, so a later campaign resumes from
# what the earlier ones found; the repository's seeds are never written). Afterwards it prints
# a Markdown row (target, date, seconds, executions, exec/s, libFuzzer's final cov: and ft:,
# corpus entries, crashes) and appends it to bench/FUZZ.md. A crash, leak, timeout or OOM
# artifact is copied to crates/fuzz/regressions/<target>/ (rename it after the bug it shows;
# `cargo test -p medsec-fuzz` then replays it) and the script exits 1.
#
# cargo-fuzz passes -Z flags (sanitizer, coverage), which a stable toolchain only accepts with
# RUSTC_BOOTSTRAP=1; the script sets it. Needs `cargo install cargo-fuzz`.
# FUZZ_MD=<file> writes the rows elsewhere (FUZZ_MD=/dev/null: print only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ $# -lt 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 <target>|all <seconds> [libFuzzer flags...]" >&2
    exit 2
fi
which=$1
seconds=$2
shift 2
extra=("$@")

export RUSTC_BOOTSTRAP=1
target_dir=$root/target/fuzz
work=$root/target/fuzz-campaign
md=${FUZZ_MD:-$root/bench/FUZZ.md}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

mapfile -t all < <(ls fuzz/fuzz_targets | sed -n 's/\.rs$//p' | sort)
if [ "$which" = all ]; then
    targets=("${all[@]}")
else
    if ! printf '%s\n' "${all[@]}" | grep -qx -- "$which"; then
        echo "no fuzz target $which; targets: ${all[*]}" >&2
        exit 2
    fi
    targets=("$which")
fi

# One build for every target (a no-op when nothing changed).
(cd fuzz && cargo fuzz build --target-dir "$target_dir")

if [ ! -f "$md" ] && [ "$md" != /dev/null ]; then
    echo "error: $md is missing (it holds the table header)" >&2
    exit 2
fi

status=0
for t in "${targets[@]}"; do
    dir=$work/$t
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp -n "crates/fuzz/corpus/$t/"* "$dir/corpus/" 2>/dev/null || true
    before=$(ls "$dir/artifacts" | sort)
    log=$dir/fuzz-$(date -u +%Y%m%dT%H%M%SZ).log
    echo "== $t: ${seconds}s, log $log" >&2
    set +e
    started=$(date +%s)
    (cd fuzz && cargo fuzz run --target-dir "$target_dir" "$t" "$dir/corpus" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/" "${extra[@]}") >"$log" 2>&1
    rc=$?
    ran=$(( $(date +%s) - started ))
    set -e

    # libFuzzer's last status line ("#N DONE cov: C ft: F corp: ...") and run count.
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
    execs=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
        [ -n "$took" ] && [ "$took" -gt 0 ] || took=$seconds
        execs=$(( ${runs:-0} / took ))
    fi
    entries=$(find "$dir/corpus" -type f | wc -l)

    crashes=()
    while IFS= read -r a; do
        [ -n "$a" ] || continue
        case $a in crash-* | leak-* | timeout-* | oom-*) ;; *) continue ;; esac
        mkdir -p "crates/fuzz/regressions/$t"
        cp "$dir/artifacts/$a" "crates/fuzz/regressions/$t/$a"
        crashes+=("crates/fuzz/regressions/$t/$a")
    done < <(comm -13 <(echo "$before") <(ls "$dir/artifacts" | sort))
    if [ ${#crashes[@]} -gt 0 ]; then
        crash_cell="${#crashes[@]}: $(printf '`%s` ' "${crashes[@]}")"
        status=1
    elif [ $rc -ne 0 ]; then
        crash_cell="run failed (exit $rc, see $log)"
        status=1
    else
        crash_cell=0
    fi
    # libFuzzer stops at the first crash: then the run was shorter than asked for.
    if [ "$ran" -lt "$seconds" ]; then ran_cell="$ran of $seconds"; else ran_cell=$seconds; fi
    row="| $t | $(date -u +%Y-%m-%d) | $ran_cell | ${runs:-?} | $execs | ${cov:-?} | ${ft:-?} | $entries | ${crash_cell% } |"
    echo "$row"
    [ "$md" = /dev/null ] || echo "$row" >>"$md"
done
exit $status
