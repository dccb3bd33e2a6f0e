//! Shared test helpers: a cheap encrypted-file key source, small repository options, and a
//! loopback static file server for the repository directory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use medsec_keys::{EncryptedFileKeySource, KdfParams, KeySource, Passphrase};
use medsec_updates::RepoOptions;

/// The cheapest KDF the key source accepts, so tests stay fast.
pub fn key_source(dir: &Path) -> Arc<dyn KeySource> {
    let pass = Passphrase::new(b"tuf repository test passphrase".to_vec()).unwrap();
    Arc::new(
        EncryptedFileKeySource::new(dir.to_path_buf(), pass)
            .with_kdf(KdfParams {
                m_kib: 19 * 1024,
                t: 2,
                p: 1,
            })
            .unwrap(),
    )
}

pub fn options() -> RepoOptions {
    RepoOptions::default()
}

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub repo_dir: PathBuf,
    pub keys: Arc<dyn KeySource>,
}

pub fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let keys_dir = tmp.path().join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    Fixture {
        repo_dir: tmp.path().join("repo"),
        keys: key_source(&keys_dir),
        tmp,
    }
}

/// Serves `repo_dir` (through `resolve_served_file`) on 127.0.0.1 until the process exits;
/// returns the base URL.
pub fn serve(repo_dir: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let dir = repo_dir.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                // Drain the headers.
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let file = medsec_updates::repo::resolve_served_file(&dir, &path);
                let resp = match file.and_then(|f| std::fs::read(f).ok()) {
                    Some(body) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(&body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&resp);
            });
        }
    });
    format!("http://{addr}")
}
