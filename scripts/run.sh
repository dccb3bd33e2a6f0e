#!/usr/bin/env bash
# Builds medsec and runs the device PKI end to end in ./medsec-data: a root and issuing CA,
# a profile, and a first device certificate verified by openssl.
# CA keys are encrypted at rest: export MEDSEC_KEY_PASSPHRASE (12+ characters) first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MEDSEC_KEY_PASSPHRASE:-}${MEDSEC_KEY_PASSPHRASE_FILE:-}" ]; then
    echo "error: export MEDSEC_KEY_PASSPHRASE (at least 12 characters): it encrypts the CA keys" >&2
    exit 2
fi
command -v openssl >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get update -qq && $sudo apt-get install -y -qq openssl; }
cargo build --release --locked -p medsec
medsec=target/release/medsec
export MEDSEC_DATA_DIR=${MEDSEC_DATA_DIR:-medsec-data}
if ! $medsec ca show root >/dev/null 2>&1; then
    $medsec ca init --organization "${MEDSEC_ORG:-Example Medical}"
    $medsec profile set --name demo --model demo-pump --key-types ecdsa-p256,ecdsa-p384,ed25519
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=demo \
    -keyout "$work/device.key" -out "$work/device.csr" 2>/dev/null
serial="DEMO-$(date +%s)"
$medsec cert issue --profile demo --device "$serial" --csr "$work/device.csr" \
    --out "$work/device.pem" --chain-out "$work/chain.pem"
$medsec ca show root --pem > "$work/root.pem"
openssl verify -CAfile "$work/root.pem" -untrusted "$work/chain.pem" "$work/device.pem"
$medsec crl generate --out "$MEDSEC_DATA_DIR/crl"
$medsec cert list
$medsec audit verify
