//! File handling for the repository: atomic writes (a client polling the directory never
//! reads half a file), spec-conformant target paths, pruning, and a safe path resolver for
//! whatever serves the directory.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::num::NonZeroU64;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{METADATA_DIR, TARGETS_DIR};
use crate::UpdatesError;

fn io(op: &'static str, path: &Path, e: std::io::Error) -> UpdatesError {
    UpdatesError::invalid("repository file", format!("{op} {}: {e}", path.display()))
}

pub(super) fn create_dir(path: &Path) -> Result<(), UpdatesError> {
    fs::create_dir_all(path).map_err(|e| io("create", path, e))
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, UpdatesError> {
    fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => UpdatesError::NotFound {
            what: "repository file",
            key: path.display().to_string(),
        },
        _ => io("read", path, e),
    })
}

pub(super) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, UpdatesError> {
    serde_json::from_slice(&read(path)?)
        .map_err(|e| UpdatesError::invalid("repository file", format!("{}: {e}", path.display())))
}

/// Writes via a temporary file in the same directory and a rename.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), UpdatesError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| UpdatesError::invalid("repository file", path.display().to_string()))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
    f.write_all(bytes).map_err(|e| io("write", &tmp, e))?;
    f.sync_all().map_err(|e| io("sync", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io("rename", path, e))
}

pub(super) fn write_json_atomic<T: Serialize>(path: &Path, v: &T) -> Result<(), UpdatesError> {
    let mut bytes = serde_json::to_vec_pretty(v)
        .map_err(|e| UpdatesError::invalid("repository state", e.to_string()))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// The metadata file name of a non-root role.
pub(super) fn role_file(consistent: bool, version: NonZeroU64, name: &str) -> String {
    if consistent {
        format!("{version}.{name}.json")
    } else {
        format!("{name}.json")
    }
}

/// Where a target's file goes, relative to the repository directory. With consistent
/// snapshots the hash prefixes the *base name* (TUF 5.7.3: `dir/HASH.file`), which is where
/// python-tuf and tuf-js look; tough's own writer would put it before the directory.
pub(super) fn target_path(consistent: bool, name: &str, sha256: &[u8]) -> PathBuf {
    let mut p = PathBuf::from(TARGETS_DIR);
    let (dir, base) = match name.rsplit_once('/') {
        Some((d, b)) => (Some(d), b),
        None => (None, name),
    };
    if let Some(d) = dir {
        p.push(d);
    }
    if consistent {
        p.push(format!("{}.{base}", hex::encode(sha256)));
    } else {
        p.push(base);
    }
    p
}

pub(super) enum Staged<'a> {
    Bytes(&'a [u8]),
    Path(&'a Path),
}

/// SHA-256 and length of a file, streamed (images can be large).
pub(super) fn hash_file(path: &Path) -> Result<(Vec<u8>, u64), UpdatesError> {
    let mut f = fs::File::open(path).map_err(|e| io("open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| io("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((h.finalize().to_vec(), len))
}

/// Puts an image in place (atomically); a file already there under its hash-named path is
/// the same content and stays.
pub(super) fn write_target(dest: &Path, image: Staged<'_>) -> Result<(), UpdatesError> {
    match image {
        Staged::Bytes(b) => write_atomic(dest, b),
        Staged::Path(src) => {
            let dir = dest.parent().unwrap_or(Path::new("."));
            create_dir(dir)?;
            let tmp = dest.with_extension("tmp-copy");
            fs::copy(src, &tmp).map_err(|e| io("copy", src, e))?;
            fs::rename(&tmp, dest).map_err(|e| io("rename", dest, e))
        }
    }
}

/// Refuses metadata whose `expires` has fractional seconds: python-tuf rejects it, and tough
/// writes whatever sub-second precision it is given. Checks the bytes written (every
/// `"expires": "..."` in them) rather than the value, without parsing the whole document.
pub(super) fn check_whole_second_expiry(buf: &[u8]) -> Result<(), UpdatesError> {
    const KEY: &[u8] = b"\"expires\": \"";
    let mut found = false;
    let mut rest = buf;
    while let Some(i) = rest.windows(KEY.len()).position(|w| w == KEY) {
        let v = &rest[i + KEY.len()..];
        let end = v.iter().position(|b| *b == b'"').unwrap_or(v.len());
        let exp = &v[..end];
        let ok = exp.len() == 20
            && exp[10] == b'T'
            && exp[19] == b'Z'
            && exp
                .iter()
                .all(|b| b.is_ascii_digit() || b"-T:Z".contains(b));
        if !ok {
            return Err(UpdatesError::invalid(
                "signed metadata",
                format!(
                    "expires {:?} is not YYYY-MM-DDTHH:MM:SSZ",
                    String::from_utf8_lossy(exp)
                ),
            ));
        }
        found = true;
        rest = &v[end..];
    }
    if found {
        Ok(())
    } else {
        Err(UpdatesError::invalid("signed metadata", "no expires"))
    }
}

/// Deletes `<N>.<role>.json` files more than `keep` versions behind the current one of their
/// role (`current`: role name -> version). Root files and unknown names are kept.
pub(super) fn prune_versions(
    md: &Path,
    current: &HashMap<String, u64>,
    keep: u64,
) -> Result<(), UpdatesError> {
    let entries = fs::read_dir(md).map_err(|e| io("list", md, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io("list", md, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_suffix(".json") else {
            continue;
        };
        let Some((ver, role)) = rest.split_once('.') else {
            continue;
        };
        let Ok(ver) = ver.parse::<u64>() else {
            continue;
        };
        if role == "root" {
            continue;
        }
        if let Some(cur) = current.get(role)
            && ver.saturating_add(keep) <= *cur
        {
            let p = entry.path();
            fs::remove_file(&p).map_err(|e| io("remove", &p, e))?;
        }
    }
    Ok(())
}

/// Maps a request path (`/metadata/3.root.json`, `/targets/<model>/<file>`) to the file to
/// serve under the repository directory, or `None` for anything else (traversal, hidden or
/// temporary files, the key catalogue).
pub fn resolve_served_file(repo_dir: &Path, request_path: &str) -> Option<PathBuf> {
    let rel = request_path
        .split(['?', '#'])
        .next()?
        .trim_start_matches('/');
    let rel = Path::new(rel);
    let mut comps = rel.components();
    match comps.next()? {
        Component::Normal(top) if top == METADATA_DIR || top == TARGETS_DIR => {}
        _ => return None,
    }
    let mut n = 0;
    for c in comps {
        match c {
            Component::Normal(s) => {
                let s = s.to_str()?;
                if s.starts_with('.') || s.is_empty() {
                    return None;
                }
                n += 1;
            }
            _ => return None,
        }
    }
    if n == 0 {
        return None;
    }
    let full = repo_dir.join(rel);
    full.is_file().then_some(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_second_expiries_are_caught() {
        let ok = br#"{"signed": {"expires": "2030-01-01T00:00:00Z"}}"#;
        assert!(check_whole_second_expiry(ok).is_ok());
        for bad in [
            br#"{"signed": {"expires": "2030-01-01T00:00:00.123Z"}}"#.as_slice(),
            br#"{"signed": {"expires": "2030-01-01T00:00:00+01:00"}}"#.as_slice(),
            br#"{"signed": {}}"#.as_slice(),
        ] {
            assert!(check_whole_second_expiry(bad).is_err());
        }
    }

    #[test]
    fn nested_targets_get_the_hash_on_the_base_name() {
        let p = target_path(true, "m/m-1.bin", &[0xab, 0xcd]);
        assert_eq!(p, Path::new("targets/m/abcd.m-1.bin"));
        assert_eq!(
            target_path(false, "m/m-1.bin", &[0xab]),
            Path::new("targets/m/m-1.bin")
        );
    }
}
