#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, and the whole workspace's tests.
# Installs the real peers the tests talk to (openssl and curl CLIs, SoftHSM2, libfaketime)
# when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v faketime >/dev/null || need+=(faketime)
# The TLS listeners are scanned by testssl.sh (Debian's package installs it as `testssl`).
command -v testssl >/dev/null || command -v testssl.sh >/dev/null || need+=(testssl.sh)
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || need+=(softhsm2)
# The documentation tests read PDFs with poppler (pdftotext, pdftoppm, pdfinfo).
command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || need+=(poppler-utils)
# The dashboard tests drive Debian's Chromium (never Playwright's own browser download).
[ -x /usr/bin/chromium ] || need+=(chromium)
# The PostgreSQL store's tests start a throwaway cluster with Debian's server programs.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v node >/dev/null && command -v npm >/dev/null || {
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
}
# The BSI CSAF validator checks the CSAF VEX export (pinned in tools/csaf-validator).
[ -d tools/csaf-validator/node_modules/@secvisogram ] || npm ci --prefix tools/csaf-validator --no-audit --no-fund --silent
# The TUF repository interop tests run the tuf-js Updater (pinned in tools/tuf-js-client).
[ -d tools/tuf-js-client/node_modules/tuf-js ] || npm ci --prefix tools/tuf-js-client --no-audit --no-fund --silent
# The dashboard tests run playwright-core and axe-core (pinned in tools/ui-tests).
[ -d tools/ui-tests/node_modules/playwright-core ] || npm ci --prefix tools/ui-tests --no-audit --no-fund --silent
# The VEX export tests validate against the published JSON schemas with python-jsonschema.
python3 -c 'import jsonschema, referencing' 2>/dev/null || python3 -m pip install -q 'jsonschema>=4.18'
# The TUF repository interop tests run python-tuf's ngclient Updater (the version they were tested with).
python3 -c 'import importlib.metadata as m; assert m.version("tuf") == "7.0.1"' 2>/dev/null || python3 -m pip install -q 'tuf==7.0.1'
# The SBOM interop tests run the CycloneDX and SPDX reference libraries (the versions they were tested with).
python3 -c 'import importlib.metadata as m; assert (m.version("cyclonedx-python-lib"), m.version("spdx-tools")) == ("11.12.0", "0.8.5"); import jsonschema, referencing' 2>/dev/null || python3 -m pip install -q 'cyclonedx-python-lib[json-validation]==11.12.0' 'spdx-tools==0.8.5'
# The MDS2 test opens the XLSX with openpyxl, the reader hospitals' tooling uses.
python3 -c 'import openpyxl' 2>/dev/null || python3 -m pip install -q 'openpyxl==3.1.5'
# The /metrics test parses the exposition with the Prometheus reference client's parser.
python3 -c 'import importlib.metadata as m; assert m.version("prometheus-client") == "0.21.1"' 2>/dev/null || python3 -m pip install -q 'prometheus-client==0.21.1'

# medsec's own licence, ban and source policy (deny.toml, docs/supply-chain.md). cargo-deny is
# built from crates.io when missing: about 4 minutes on 2 cores, once per machine.
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny@0.20.2

# A full run builds everything once; incremental caches would add about 4 GB of disk for nothing.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The Linux targets' dependency graph (what deny.toml's [graph] targets name); with the platform
# filter cargo only needs those targets' crates, which the build above fetched, where
# cargo-deny's own `cargo metadata` would download every platform's. cargo-deny then runs
# offline: no advisory database is fetched, advisories are matched by medsec itself in
# crates/medsec/tests/supply_chain.rs.
cargo metadata --format-version 1 --locked \
    --filter-platform x86_64-unknown-linux-gnu --filter-platform aarch64-unknown-linux-gnu \
    > "${TMPDIR:-/tmp}/medsec-deny-metadata.json"
cargo deny --offline --metadata-path "${TMPDIR:-/tmp}/medsec-deny-metadata.json" check licenses bans sources
# The tests write every server's and agent's output, every CLI invocation's stderr and every
# secret they handle to a fresh directory (crates/medsec/tests/common/testlog.rs); no secret
# may appear in those logs.
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/medsec-test-logs.XXXXXX")
echo "test logs: $log_dir"
MEDSEC_TEST_LOG_DIR="$log_dir" cargo test --workspace --locked
scripts/secrets-in-logs.sh "$log_dir"
rm -rf "$log_dir"
