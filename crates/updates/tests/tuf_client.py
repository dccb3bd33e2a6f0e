#!/usr/bin/env python3
"""Interop peer: python-tuf's ngclient Updater refreshes from a medsec TUF repository and
downloads one target, printing what it verified as JSON (used by tests/interop.rs).

usage: tuf_client.py METADATA_URL TARGETS_URL METADATA_DIR DOWNLOAD_DIR TARGET_NAME
METADATA_DIR must hold the trusted root.json; it keeps the client's state between runs."""
import hashlib
import json
import sys

from tuf.ngclient import Updater


def main():
    metadata_url, targets_url, metadata_dir, download_dir, name = sys.argv[1:6]
    updater = Updater(
        metadata_dir=metadata_dir,
        metadata_base_url=metadata_url,
        target_base_url=targets_url,
        target_dir=download_dir,
        # None: trust the root.json cached in METADATA_DIR (provisioned, then kept up to date).
        bootstrap=None,
    )
    updater.refresh()
    info = updater.get_targetinfo(name)
    if info is None:
        print(json.dumps({"error": f"no target {name}"}))
        sys.exit(2)
    path = updater.download_target(info)
    with open(path, "rb") as f:
        data = f.read()
    print(json.dumps({
        "name": info.path,
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "custom": info.custom,
        "root_version": updater._trusted_set.root.version,
    }))


if __name__ == "__main__":
    main()
