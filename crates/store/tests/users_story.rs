//! The dashboard users story, run on a file-backed SQLite store and on PostgreSQL: users
//! created; sign-in; five wrong passwords lock an account, whose right password is refused
//! until the lock ends; sessions that idle out, reach their absolute end and are signed out; no
//! cookie value anywhere in the database files; concurrent failures counted exactly and locking
//! once; password change, disable and unlock; and the audit chain intact with one entry for
//! every step. PostgreSQL also shows the failure count exact across two replicas.

mod common;

use std::collections::HashMap;

use medsec_auth::users::{self, SessionPolicy, UserStore, Username};
use medsec_auth::{AuthError, Role};
use medsec_core::{Actor, AuditAction, AuditRecord};
use medsec_store::{AuditLog, PgStore, SqliteStore, Synchronous, verify_audit};
use time::{Duration, OffsetDateTime};

const PW: &str = "correct horse battery staple";
const WRONG: &str = "incorrect horse battery";
const MIN: i64 = 60;
const HOUR: i64 = 60 * MIN;

fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_750_000_000 + secs).unwrap()
}

fn name(s: &str) -> Username {
    Username::parse(s).unwrap()
}

async fn user<S: UserStore>(store: &S, n: &str) -> users::User {
    store.get_user(&name(n)).await.unwrap().unwrap().0
}

/// Every audit entry as (action, subject, details), oldest first.
async fn audit<S: AuditLog>(store: &S) -> Vec<(String, String, serde_json::Value)> {
    store
        .audit_page(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.action,
                e.subject,
                serde_json::from_str(&e.details).unwrap(),
            )
        })
        .collect()
}

async fn count<S: AuditLog>(store: &S, action: AuditAction, subject: &str) -> usize {
    audit(store)
        .await
        .iter()
        .filter(|(a, s, _)| a == action.as_str() && s == subject)
        .count()
}

/// The audit entries expected so far, by action.
#[derive(Default)]
struct Expected(HashMap<&'static str, usize>);

impl Expected {
    fn add(&mut self, action: AuditAction, n: usize) {
        *self.0.entry(action.as_str()).or_default() += n;
    }
}

fn assert_session_invalid(r: Result<users::SessionRecord, AuthError>) {
    assert!(matches!(r, Err(AuthError::SessionInvalid)), "{r:?}");
}

/// What the story checks below the traits, for each back end.
#[async_trait::async_trait]
trait Raw: Send + Sync {
    /// The session ids as the store keeps them.
    async fn session_ids(&self) -> Vec<String>;
    /// The bytes of every file holding the database's rows, once they are written out.
    async fn files(&self) -> Vec<Vec<u8>>;
}

struct SqliteFiles {
    store: SqliteStore,
    path: std::path::PathBuf,
}

#[async_trait::async_trait]
impl Raw for SqliteFiles {
    async fn session_ids(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT id_sha256 FROM user_sessions")
            .fetch_all(self.store.pool())
            .await
            .unwrap()
    }

    async fn files(&self) -> Vec<Vec<u8>> {
        let mut files = vec![std::fs::read(&self.path).unwrap()];
        for suffix in ["-wal", "-shm"] {
            if let Ok(b) = std::fs::read(format!("{}{suffix}", self.path.display())) {
                files.push(b);
            }
        }
        files
    }
}

#[async_trait::async_trait]
impl Raw for PgStore {
    async fn session_ids(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT id_sha256 FROM user_sessions")
            .fetch_all(self.pool())
            .await
            .unwrap()
    }

    /// This database's relation files and the cluster's write-ahead log, after a checkpoint
    /// has written every committed page out (the test connects as the cluster's superuser).
    async fn files(&self) -> Vec<Vec<u8>> {
        sqlx::query("CHECKPOINT")
            .execute(self.pool())
            .await
            .unwrap();
        let data: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
            .fetch_one(self.pool())
            .await
            .unwrap();
        let oid: String = sqlx::query_scalar(
            "SELECT oid::text FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(self.pool())
        .await
        .unwrap();
        let data = std::path::Path::new(&data);
        let mut files = Vec::new();
        for dir in [data.join("base").join(oid), data.join("pg_wal")] {
            for e in std::fs::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                if path.is_file() {
                    files.push(std::fs::read(&path).unwrap());
                }
            }
        }
        files
    }
}

/// Whether `needle` occurs in `hay`; scans only from bytes matching the first one, since the
/// PostgreSQL files run to tens of megabytes.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    hay.iter()
        .enumerate()
        .filter(|&(_, &b)| b == first)
        .any(|(i, _)| hay[i..].starts_with(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_users_story() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medsec.db");
    let store = SqliteStore::open(&path, Synchronous::Full).await.unwrap();
    let raw = SqliteFiles {
        store: store.clone(),
        path,
    };
    users_story(store, &raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_users_story() {
    let store = common::pg().await;
    users_story(store.clone(), &store).await;
}

async fn users_story<S: UserStore + AuditLog + Clone + 'static>(store: S, raw: &dyn Raw) {
    let p = SessionPolicy::default();
    let setup = Actor::parse("cli:setup").unwrap();
    let mut exp = Expected::default();
    let mut cookies = Vec::new();

    // Users: names are folded to lowercase, so "Alice" is taken once "alice" exists.
    let alice = users::create_user(&store, "alice", PW, Role::Admin, &setup, t(0))
        .await
        .unwrap();
    users::create_user(&store, "bob", PW, Role::Operator, &setup, t(0))
        .await
        .unwrap();
    exp.add(AuditAction::UserCreated, 2);
    assert!(matches!(
        users::create_user(&store, "Alice", PW, Role::Auditor, &setup, t(0)).await,
        Err(AuthError::UserExists(n)) if n == "alice"
    ));
    assert!(matches!(
        users::create_user(&store, "carol", "too short", Role::Auditor, &setup, t(0)).await,
        Err(AuthError::Invalid {
            what: "password",
            ..
        })
    ));
    assert!(matches!(
        users::create_user(&store, "9carol", PW, Role::Auditor, &setup, t(0)).await,
        Err(AuthError::Invalid {
            what: "username",
            ..
        })
    ));
    let listed = store.list_users().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], alice);
    assert_eq!(
        (listed[1].username.as_str(), listed[1].role),
        ("bob", Role::Operator)
    );

    // Sign-in and a session in use.
    let s = users::sign_in(&store, "Alice", PW, t(10), &p)
        .await
        .unwrap();
    exp.add(AuditAction::UserSignedIn, 1);
    cookies.push(s.cookie_value.clone());
    assert_eq!(s.user.role, Role::Admin);
    assert_eq!(s.expires_at, t(10 + 12 * HOUR));
    let got = users::session(&store, &s.cookie_value, t(20), &p)
        .await
        .unwrap();
    assert_eq!((got.username(), got.role()), (&alice.username, Role::Admin));
    assert!(users::check_csrf(&got, &s.csrf_token).is_ok());
    assert!(users::check_csrf(&got, &s.cookie_value).is_err());
    assert!(users::check_csrf(&got, "").is_err());

    // An unknown user reads like a wrong password, and is audited as an attempt.
    assert!(matches!(
        users::sign_in(&store, "mallory", PW, t(30), &p).await,
        Err(AuthError::InvalidCredentials)
    ));
    exp.add(AuditAction::UserSignInFailed, 1);
    let log = audit(&store).await;
    let (_, subject, details) = log.last().unwrap();
    assert_eq!(
        (subject.as_str(), &details["unknown_user"]),
        ("user:mallory", &serde_json::json!(true))
    );

    // Five wrong passwords lock bob for 15 minutes from the fifth.
    for i in 0..5 {
        let r = users::sign_in(&store, "bob", WRONG, t(100 + i), &p).await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    exp.add(AuditAction::UserSignInFailed, 5);
    exp.add(AuditAction::UserLocked, 1);
    let until = t(104 + 15 * MIN);
    let bob = user(&store, "bob").await;
    assert_eq!((bob.failed_attempts, bob.locked_until), (5, Some(until)));
    // Locked: the right password is refused, and further guesses are not even checked.
    for (pw, at) in [
        (PW, t(200)),
        (WRONG, t(201)),
        (PW, until - Duration::SECOND),
    ] {
        let r = users::sign_in(&store, "bob", pw, at, &p).await;
        assert!(
            matches!(r, Err(AuthError::Locked { until: u }) if u == until),
            "{r:?}"
        );
    }
    assert_eq!(user(&store, "bob").await.failed_attempts, 5);
    // When the lock ends the right password works again and clears the count.
    let sb = users::sign_in(&store, "bob", PW, until, &p).await.unwrap();
    exp.add(AuditAction::UserSignedIn, 1);
    cookies.push(sb.cookie_value.clone());
    assert_eq!((sb.user.failed_attempts, sb.user.locked_until), (0, None));
    assert_eq!(user(&store, "bob").await, sb.user);
    let bob_log: Vec<String> = audit(&store)
        .await
        .into_iter()
        .filter(|(_, s, _)| s == "user:bob")
        .map(|(a, _, _)| a)
        .collect();
    assert_eq!(
        bob_log,
        [
            "user.created",
            "user.sign-in-failed",
            "user.sign-in-failed",
            "user.sign-in-failed",
            "user.sign-in-failed",
            "user.sign-in-failed",
            "user.locked",
            "user.signed-in",
        ]
    );
    let locked = audit(&store)
        .await
        .into_iter()
        .find(|(a, s, _)| a == "user.locked" && s == "user:bob")
        .unwrap();
    assert_eq!(locked.2["failed_attempts"], 5);
    assert_eq!(locked.2["locked_until"], until.unix_timestamp());

    // Idle timeout: each use moves the 30 idle minutes on; a gap of 30 minutes ends it.
    let id = users::session_id_hash(&s.cookie_value);
    let seen = users::session(&store, &s.cookie_value, t(10 + 10 * MIN), &p)
        .await
        .unwrap();
    assert_eq!(seen.last_seen, t(10 + 10 * MIN));
    users::session(&store, &s.cookie_value, t(10 + 39 * MIN), &p)
        .await
        .unwrap();
    assert_session_invalid(users::session(&store, &s.cookie_value, t(10 + 69 * MIN), &p).await);
    assert!(store.get_session(&id).await.unwrap().is_none());

    // Absolute lifetime: a session in use every 20 minutes still ends after 12 hours.
    let b = 2 * 24 * HOUR;
    let s2 = users::sign_in(&store, "alice", PW, t(b), &p).await.unwrap();
    exp.add(AuditAction::UserSignedIn, 1);
    cookies.push(s2.cookie_value.clone());
    for k in 1..36 {
        users::session(&store, &s2.cookie_value, t(b + k * 20 * MIN), &p)
            .await
            .unwrap();
    }
    users::session(&store, &s2.cookie_value, t(b + 12 * HOUR - 1), &p)
        .await
        .unwrap();
    assert_session_invalid(users::session(&store, &s2.cookie_value, t(b + 12 * HOUR), &p).await);

    // Sign-out deletes the session; a second sign-out finds nothing.
    let b = 3 * 24 * HOUR;
    let s3 = users::sign_in(&store, "alice", PW, t(b), &p).await.unwrap();
    exp.add(AuditAction::UserSignedIn, 1);
    cookies.push(s3.cookie_value.clone());
    assert!(users::sign_out(&store, &s3.cookie_value).await.unwrap());
    exp.add(AuditAction::UserSignedOut, 1);
    assert!(!users::sign_out(&store, &s3.cookie_value).await.unwrap());
    assert!(
        store
            .get_session(&users::session_id_hash(&s3.cookie_value))
            .await
            .unwrap()
            .is_none()
    );
    assert_session_invalid(users::session(&store, &s3.cookie_value, t(b + 1), &p).await);
    let signed_out = audit(&store).await.pop().unwrap();
    assert_eq!(signed_out.0, "user.signed-out");
    assert_eq!(
        signed_out.2["session"],
        users::session_id_hash(&s3.cookie_value)[..16]
    );

    // Concurrent wrong passwords for carol from 8 tasks: every checked attempt is counted
    // exactly once and exactly one locks. An attempt that reads the lock another task just
    // set is refused before any password check, and is not counted.
    users::create_user(&store, "carol", PW, Role::Auditor, &setup, t(b))
        .await
        .unwrap();
    exp.add(AuditAction::UserCreated, 1);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                users::sign_in(&store, "carol", WRONG, t(b + 10), &SessionPolicy::default()).await
            })
        })
        .collect();
    let (mut wrong, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Err(AuthError::InvalidCredentials) => wrong += 1,
            Err(AuthError::Locked { until }) => {
                assert_eq!(until, t(b + 10 + 15 * MIN));
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(wrong + refused, 8);
    assert!(wrong >= 5, "{wrong}");
    let carol = user(&store, "carol").await;
    assert_eq!(carol.failed_attempts, wrong);
    assert_eq!(carol.locked_until, Some(t(b + 10 + 15 * MIN)));
    assert_eq!(
        count(&store, AuditAction::UserSignInFailed, "user:carol").await,
        wrong as usize
    );
    assert_eq!(
        count(&store, AuditAction::UserLocked, "user:carol").await,
        1
    );
    exp.add(AuditAction::UserSignInFailed, wrong as usize);
    exp.add(AuditAction::UserLocked, 1);

    // The store alone, 8 concurrent failures for dave: counted 1 to 8, the fifth locks.
    users::create_user(&store, "dave", PW, Role::Auditor, &setup, t(b))
        .await
        .unwrap();
    exp.add(AuditAction::UserCreated, 1);
    let dave = name("dave");
    let rec = |action| {
        AuditRecord::new(
            &Actor::system(),
            action,
            dave.subject(),
            serde_json::json!({}),
        )
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, dave) = (store.clone(), dave.clone());
            let (failed, locked) = (
                rec(AuditAction::UserSignInFailed),
                rec(AuditAction::UserLocked),
            );
            tokio::spawn(async move {
                store
                    .record_failed_attempt(
                        &dave,
                        t(b + 20),
                        &SessionPolicy::default(),
                        &failed,
                        &locked,
                    )
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().unwrap().unwrap());
    }
    outcomes.sort_by_key(|o| o.failed_attempts);
    assert_eq!(
        outcomes
            .iter()
            .map(|o| o.failed_attempts)
            .collect::<Vec<_>>(),
        (1..=8).collect::<Vec<u32>>()
    );
    let newly: Vec<u32> = outcomes
        .iter()
        .filter(|o| o.newly_locked)
        .map(|o| o.failed_attempts)
        .collect();
    assert_eq!(newly, [5]);
    let d = user(&store, "dave").await;
    assert_eq!(
        (d.failed_attempts, d.locked_until),
        (8, Some(t(b + 20 + 15 * MIN)))
    );
    assert_eq!(
        count(&store, AuditAction::UserSignInFailed, "user:dave").await,
        8
    );
    assert_eq!(count(&store, AuditAction::UserLocked, "user:dave").await, 1);
    exp.add(AuditAction::UserSignInFailed, 8);
    exp.add(AuditAction::UserLocked, 1);

    // Password change: all of alice's sessions end, the old password stops working.
    let b = 4 * 24 * HOUR;
    let s4 = users::sign_in(&store, "alice", PW, t(b), &p).await.unwrap();
    exp.add(AuditAction::UserSignedIn, 1);
    cookies.push(s4.cookie_value.clone());
    let new_pw = "a different long passphrase";
    let ended = users::change_password(&store, &alice.username, PW, new_pw, t(b + 60), &p)
        .await
        .unwrap();
    exp.add(AuditAction::UserPasswordChanged, 1);
    assert_eq!(ended, 1);
    assert_session_invalid(users::session(&store, &s4.cookie_value, t(b + 61), &p).await);
    assert!(matches!(
        users::sign_in(&store, "alice", PW, t(b + 62), &p).await,
        Err(AuthError::InvalidCredentials)
    ));
    exp.add(AuditAction::UserSignInFailed, 1);
    let s5 = users::sign_in(&store, "alice", new_pw, t(b + 63), &p)
        .await
        .unwrap();
    exp.add(AuditAction::UserSignedIn, 1);
    cookies.push(s5.cookie_value.clone());
    assert_eq!(s5.user.failed_attempts, 0);

    // Disabling bob ends his session and refuses his password like a wrong one.
    let admin = alice.username.actor();
    assert!(
        users::set_disabled(&store, &name("bob"), true, &admin)
            .await
            .unwrap()
    );
    exp.add(AuditAction::UserLocked, 1);
    assert!(
        !users::set_disabled(&store, &name("bob"), true, &admin)
            .await
            .unwrap()
    );
    assert_session_invalid(
        users::session(&store, &sb.cookie_value, until + Duration::MINUTE, &p).await,
    );
    assert!(matches!(
        users::sign_in(&store, "bob", PW, t(b + 70), &p).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(
        users::set_disabled(&store, &name("bob"), false, &admin)
            .await
            .unwrap()
    );
    exp.add(AuditAction::UserUnlocked, 1);

    // Carol's lock from the concurrent attempts has long run out: her password works again.
    let carol = name("carol");
    let sc0 = users::sign_in(&store, "carol", PW, t(b + 80), &p)
        .await
        .unwrap();
    exp.add(AuditAction::UserSignedIn, 1);
    cookies.push(sc0.cookie_value.clone());
    assert_eq!((sc0.user.failed_attempts, sc0.user.locked_until), (0, None));
    // Five more failures lock her again ...
    for _ in 0..5 {
        let r = users::sign_in(&store, "carol", WRONG, t(b + 90), &p).await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }
    exp.add(AuditAction::UserSignInFailed, 5);
    exp.add(AuditAction::UserLocked, 1);
    assert!(matches!(
        users::sign_in(&store, "carol", PW, t(b + 91), &p).await,
        Err(AuthError::Locked { .. })
    ));
    // ... and unlock: the right password works at once.
    assert!(users::unlock(&store, &carol, &admin).await.unwrap());
    exp.add(AuditAction::UserUnlocked, 1);
    assert!(!users::unlock(&store, &carol, &admin).await.unwrap());
    let sc = users::sign_in(&store, "carol", PW, t(b + 92), &p)
        .await
        .unwrap();
    exp.add(AuditAction::UserSignedIn, 1);
    cookies.push(sc.cookie_value.clone());
    assert!(matches!(
        users::unlock(&store, &name("nobody"), &admin).await,
        Err(AuthError::Invalid { what: "user", .. })
    ));

    // The database holds no cookie value and no password in clear, in any of its files; the
    // sessions it does hold are found only by the cookie's hash.
    let ids = raw.session_ids().await;
    assert!(ids.contains(&users::session_id_hash(&s5.cookie_value)));
    assert!(ids.contains(&users::session_id_hash(&sc.cookie_value)));
    let files = raw.files().await;
    assert!(files.iter().map(Vec::len).sum::<usize>() > 0);
    for secret in cookies
        .iter()
        .map(String::as_str)
        .chain([PW, new_pw, WRONG])
    {
        for f in &files {
            assert!(
                !contains(f, secret.as_bytes()),
                "a secret is stored in clear"
            );
        }
        assert!(!ids.iter().any(|id| id == secret));
    }
    // The hash is what the store holds, so a sanity check that the search can find things.
    assert!(files.iter().any(|f| contains(f, ids[0].as_bytes())));

    // Housekeeping: far in the future every session has expired.
    let purged = users::purge_sessions(&store, t(30 * 24 * HOUR), &p)
        .await
        .unwrap();
    assert_eq!(purged, ids.len() as u64);

    // The audit chain verifies and holds exactly the entries the story made.
    let n = verify_audit(&store).await.unwrap().unwrap();
    let log = audit(&store).await;
    assert_eq!(n as usize, log.len());
    let mut actual: HashMap<&str, usize> = HashMap::new();
    for (a, _, details) in &log {
        *actual.entry(a.as_str()).or_default() += 1;
        // No audit entry carries a secret.
        let text = details.to_string();
        for secret in cookies
            .iter()
            .map(String::as_str)
            .chain([PW, new_pw, WRONG])
        {
            assert!(!text.contains(secret));
        }
    }
    assert_eq!(actual, exp.0);
}

/// Two replicas (two `PgStore`s on one database), 25 concurrent failed sign-ins each: every
/// failure is counted exactly once and exactly one locks, as with SQLite's single writer. Then
/// sign-ins completing on both replicas while one changes the password: every session that
/// was created is ended by the change, and none is created after it with the old password.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_replicas_count_failures_once() {
    let url = medsec_store::pg_cluster::Cluster::fresh_database().unwrap();
    let a = PgStore::connect(&url, &Default::default()).await.unwrap();
    let b = PgStore::connect(&url, &Default::default()).await.unwrap();
    let setup = Actor::parse("cli:setup").unwrap();
    let erin = name("erin");
    users::create_user(&a, "erin", PW, Role::Operator, &setup, t(0))
        .await
        .unwrap();
    let rec = |action| {
        AuditRecord::new(
            &Actor::system(),
            action,
            erin.subject(),
            serde_json::json!({}),
        )
    };

    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = [&a, &b][i % 2].clone();
            let (erin, failed, locked) = (
                erin.clone(),
                rec(AuditAction::UserSignInFailed),
                rec(AuditAction::UserLocked),
            );
            tokio::spawn(async move {
                store
                    .record_failed_attempt(
                        &erin,
                        t(10),
                        &SessionPolicy::default(),
                        &failed,
                        &locked,
                    )
                    .await
            })
        })
        .collect();
    let mut counts = Vec::new();
    let mut newly = Vec::new();
    for task in tasks {
        let o = task.await.unwrap().unwrap().unwrap();
        counts.push(o.failed_attempts);
        if o.newly_locked {
            newly.push(o.failed_attempts);
        }
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<u32>>());
    assert_eq!(newly, [5]);
    let e = user(&b, "erin").await;
    assert_eq!(
        (e.failed_attempts, e.locked_until),
        (50, Some(t(10 + 15 * MIN)))
    );
    assert_eq!(
        count(&a, AuditAction::UserSignInFailed, "user:erin").await,
        50
    );
    assert_eq!(count(&a, AuditAction::UserLocked, "user:erin").await, 1);

    // Sign-ins racing a password change, across replicas.
    assert!(users::unlock(&a, &erin, &setup).await.unwrap());
    let (_, old_phc) = a.get_user(&erin).await.unwrap().unwrap();
    let insert = |i: usize| {
        let store = [&a, &b][i % 2].clone();
        let row = users::SessionRow {
            id_sha256: users::session_id_hash(&format!("race-{i}")),
            username: erin.clone(),
            csrf_token: format!("csrf-{i}"),
            created_at: t(20),
            expires_at: t(20 + HOUR),
        };
        let (phc, audit) = (old_phc.clone(), rec(AuditAction::UserSignedIn));
        tokio::spawn(async move { store.insert_session(&row, &phc, &audit).await })
    };
    let mut tasks: Vec<_> = (0..20).map(insert).collect();
    let change = {
        let (a, erin, audit) = (
            a.clone(),
            erin.clone(),
            rec(AuditAction::UserPasswordChanged),
        );
        tokio::spawn(async move { a.set_password(&erin, "$argon2id$new-hash", &audit).await })
    };
    tasks.extend((20..40).map(insert));
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(AuthError::InvalidCredentials) => {}
            other => panic!("{other:?}"),
        }
    }
    let ended = change.await.unwrap().unwrap();
    assert_eq!(
        ended, created,
        "every session made with the old password was ended"
    );
    for i in 0..40 {
        let id = users::session_id_hash(&format!("race-{i}"));
        assert!(
            b.get_session(&id).await.unwrap().is_none(),
            "session {i} survived"
        );
    }
    assert!(verify_audit(&b).await.unwrap().is_ok());
}
