//! Power loss during an install: the install runs in a child process (this test executable
//! re-invoked with `MEDSEC_UPDATE_CHILD` set) that is killed (SIGKILL) at points spread over
//! the whole install. Afterwards the active slot always holds the complete old image or the
//! complete new one, never a partial one, and the device can install again.

mod update_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use medsec_agent::update::{UpdateClient, UpdateConfig};
use medsec_agent::{AgentConfig, update::Slot};
use serde::{Deserialize, Serialize};
use update_support::*;

const CHILD_ENV: &str = "MEDSEC_UPDATE_CHILD";
const TEST_NAME: &str = "install_survives_being_killed_at_any_point";
const IMAGE_LEN: usize = 6 * 1024 * 1024;

/// What the child needs to rebuild the parent's client.
#[derive(Serialize, Deserialize)]
struct ChildArgs {
    state_dir: PathBuf,
    trust_root: PathBuf,
    gateway: String,
    repo_url: String,
    tuf_root: PathBuf,
    director_keys: PathBuf,
    instruction: medsec_updates::SignedInstruction,
}

fn config(a: &ChildArgs) -> UpdateConfig {
    let agent = AgentConfig::new(
        "127.0.0.1:1",
        a.gateway.clone(),
        "localhost",
        &a.trust_root,
        &a.state_dir,
    );
    UpdateConfig::new(agent, &a.repo_url, &a.tuf_root, &a.director_keys)
}

async fn child(args_file: &str) {
    let a: ChildArgs = serde_json::from_slice(&std::fs::read(args_file).unwrap()).unwrap();
    let c = UpdateClient::new(config(&a)).unwrap();
    let offer = c
        .check_instruction(Some(&a.instruction))
        .await
        .unwrap()
        .expect("an offer");
    c.install(&offer, None).await.unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

fn spawn_child(args_file: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, args_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn install_survives_being_killed_at_any_point() {
    if let Ok(args) = std::env::var(CHILD_ENV) {
        child(&args).await;
        return;
    }
    let d = Device::new().await;
    let v1 = Release::new(MODEL, "1.0", 1, IMAGE_LEN);
    let v2 = Release::new(MODEL, "2.0", 2, IMAGE_LEN);
    build_repo(
        &d.repo_dir(),
        &d.keys,
        &RepoSpec::new(1, vec![v1.clone(), v2.clone()]),
    )
    .await;
    let c = d.client();
    d.install_confirmed(&c, &v1, 1).await;
    let template = d.tmp.path().join("update-template");
    copy_dir(&d.cfg.update_dir, &template);

    let args = ChildArgs {
        state_dir: d.state_dir.clone(),
        trust_root: d.pki.trust_root.clone(),
        gateway: d.gateway.addr.to_string(),
        repo_url: d.repo.url(),
        tuf_root: d.cfg.tuf_root.clone(),
        director_keys: d.cfg.director_keys.clone(),
        instruction: d.director.instruct(&v2, 2),
    };
    let args_file = d.tmp.path().join("child.json");
    std::fs::write(&args_file, serde_json::to_vec(&args).unwrap()).unwrap();

    // An uninterrupted run: it must succeed, and its duration spreads the kill points.
    let start = Instant::now();
    let st = spawn_child(&args_file).wait().unwrap();
    let full = start.elapsed();
    assert!(st.success(), "the uninterrupted child install failed");
    assert_eq!(d.active_bytes(&c), v2.bytes);

    let iterations: u32 = 12;
    let (mut saw_old, mut saw_new, mut torn) = (0, 0, 0);
    for i in 0..iterations {
        copy_dir(&template, &d.cfg.update_dir);
        // Evenly spread over the run, shifted by a fixed pseudo-random jitter per iteration.
        let jitter = (u64::from(i) * 7919 % 97) as f64 / 97.0;
        let at = full.mul_f64((f64::from(i) + jitter) / f64::from(iterations));
        let mut ch = spawn_child(&args_file);
        std::thread::sleep(at);
        let _ = ch.kill();
        let _ = ch.wait();

        let c = UpdateClient::new(config(&args)).unwrap();
        let st = c.status().unwrap();
        let active = st.active.expect("a pointer");
        let bytes = d.slot_bytes(active);
        if bytes == v1.bytes {
            saw_old += 1;
            let b = d.slot_bytes(Slot::B);
            if !b.is_empty() && b != v2.bytes {
                // Killed mid-download: the torn slot is not the active one.
                torn += 1;
            }
            assert_eq!(active, Slot::A, "iteration {i}");
            assert!(!st.pending, "iteration {i}");
        } else if bytes == v2.bytes {
            saw_new += 1;
            assert_eq!(active, Slot::B, "iteration {i}");
            assert!(
                st.pending,
                "iteration {i}: a new image is pending until confirmed"
            );
        } else {
            panic!(
                "iteration {i} (killed after {at:?}): active slot {active} holds {} bytes of neither image",
                bytes.len()
            );
        }
        // Whatever state the kill left, the device recovers and installs.
        c.revert_if_pending().await.unwrap();
        assert_eq!(d.active_bytes(&c), v1.bytes, "iteration {i}");
        let offer = c
            .check_instruction(Some(&d.director.instruct(&v2, 3 + u64::from(i))))
            .await
            .unwrap()
            .expect("an offer");
        c.install(&offer, None).await.unwrap();
        c.confirm().await.unwrap();
        assert_eq!(d.active_bytes(&c), v2.bytes, "iteration {i}");
    }
    eprintln!(
        "power loss: {saw_old} kills left the old image active ({torn} with a torn inactive slot), {saw_new} the new one (full run {full:?})"
    );
    assert!(saw_old > 0, "no kill landed before the switch");
}
