//! `FleetStore` for PostgreSQL: the dashboard's fleet, PKI and risk queries over the CA,
//! inventory and update tables, with the indexes and the per-device summary table of postgres
//! migration 0010.
//!
//! The queries are SQLite's (see `sqlite_fleet.rs` for why each has its shape): fleet queries
//! read `fleet_devices`, one small row per device kept by triggers; pages use keyset
//! pagination; certificate pages pick between a serial-order walk and a selective index the
//! same way. What SQLite needed spelled out (`INDEXED BY`, unary `+` to keep it off an index)
//! is left to PostgreSQL's planner, which has statistics. The triggers here recompute a
//! device's row at commit under its row lock, so replicas changing one device's certificates
//! at once leave it right (see the migration).
//!
//! "Open finding" in SQL ([`OPEN`]): no decision closes it, where the decision in force is the
//! newest one filed for the firmware under the finding's primary vulnerability id, for the whole
//! firmware or for the finding's component (as on SQLite).
//!
//! Everything here only reads, so nothing needs a lock: each query sees one committed state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use medsec_core::{CertSerial, DeviceModel, Name};
use medsec_fleet::{
    CRITICAL_CVSS, CertQuery, CertRow, CertStatus, CertStatusCounts, Cursor, DEFAULT_EXPIRING_DAYS,
    FirmwareFacts, FleetError, FleetQuery, FleetRiskRow, FleetRow, FleetStore, FleetSummary, Page,
    ReleaseInfo, RiskCandidate, UrgentFinding, is_urgent, plan_fixes, rank_risk, validate_risk,
};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use time::OffsetDateTime;

use crate::StoreError;
use crate::fleet_common::*;
use crate::pg::{PgStore, be};
use crate::sqlite::{corrupt, from_ts, ts};

/// Appends `(?, ?), (?, ?), ...` for the pairs.
fn push_pairs<'a>(
    q: &mut QueryBuilder<Postgres>,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    let mut first = true;
    for (a, b) in pairs {
        q.push(if first { "(" } else { ", (" });
        first = false;
        q.push_bind(a.to_owned())
            .push(", ")
            .push_bind(b.to_owned())
            .push(")");
    }
}

/// The certificate-status filter on the device row `x` (in-row: see the module documentation).
fn push_status(q: &mut QueryBuilder<Postgres>, s: CertStatus, now: i64, until: i64) {
    match s {
        CertStatus::Valid => {
            q.push(" AND x.revoked = 0 AND x.not_after >= ")
                .push_bind(until);
        }
        CertStatus::Expiring => {
            q.push(" AND x.revoked = 0 AND x.not_after >= ")
                .push_bind(now)
                .push(" AND x.not_after < ")
                .push_bind(until);
        }
        CertStatus::Expired => {
            q.push(" AND x.revoked = 0 AND x.not_after < ")
                .push_bind(now);
        }
        CertStatus::Revoked => {
            q.push(" AND x.revoked = 1");
        }
        CertStatus::None => {
            q.push(" AND x.cert_serial IS NULL");
        }
    }
}

/// Open findings per firmware version, (all, KEV-listed), for the versions given.
async fn finding_counts(
    store: &PgStore,
    versions: &BTreeSet<(String, String)>,
) -> Result<HashMap<(String, String), (u32, u32)>, StoreError> {
    let mut out = HashMap::new();
    if versions.is_empty() {
        return Ok(out);
    }
    // sum() of BIGINT is NUMERIC in PostgreSQL: cast back to read it as an integer.
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT x.model, x.version, count(*), coalesce(sum(x.kev), 0)::bigint FROM (VALUES ",
    );
    push_pairs(
        &mut q,
        versions.iter().map(|(m, v)| (m.as_str(), v.as_str())),
    );
    q.push(") AS p (model, version) JOIN findings x ON x.model = p.model AND x.version = p.version WHERE ")
        .push(OPEN)
        .push(" GROUP BY x.model, x.version");
    let rows: Vec<(String, String, i64, i64)> = q
        .build_query_as()
        .fetch_all(store.pool())
        .await
        .map_err(be)?;
    for (m, v, n, k) in rows {
        out.insert((m, v), (count32(n)?, count32(k)?));
    }
    Ok(out)
}

fn fleet_row(
    r: &PgRow,
    now: OffsetDateTime,
    window: u32,
) -> Result<(FleetRow, Option<String>), StoreError> {
    let model: String = r.try_get(0).map_err(be)?;
    let serial: String = r.try_get(1).map_err(be)?;
    let retired: i64 = r.try_get(2).map_err(be)?;
    let firmware: Option<String> = r.try_get(3).map_err(be)?;
    let cert_serial: Option<String> = r.try_get(5).map_err(be)?;
    let not_after: Option<i64> = r.try_get(6).map_err(be)?;
    let revoked: Option<i64> = r.try_get(7).map_err(be)?;
    let cert_not_after = not_after.map(from_ts).transpose()?;
    let row = FleetRow {
        device: device_of(&model, &serial)?,
        retired: retired != 0,
        firmware: firmware
            .as_deref()
            .map(|v| parsed("firmware version", v))
            .transpose()?,
        end_of_support: date_from(r.try_get(4).map_err(be)?)?,
        cert_serial: cert_serial
            .as_deref()
            .map(|s| parsed("serial", s))
            .transpose()?,
        cert_not_after,
        cert_status: match (cert_serial.as_ref(), cert_not_after) {
            (Some(_), Some(na)) => CertStatus::of_cert(revoked.unwrap_or(0) != 0, na, now, window),
            _ => CertStatus::None,
        },
        open_findings: 0,
        kev_findings: 0,
    };
    Ok((row, firmware))
}

/// How a certificate page finds its rows.
enum CertPlan {
    /// Walk certificates in serial order, filtering as they come.
    SerialWalk,
    /// Read the certificates of the few devices matching the search, sort by serial.
    DeviceCerts(Vec<(String, String)>),
    /// Find the few certificates in the expiring window through `certs_unrevoked_expiry`
    /// (issuer and serial included, so the page's serials come from the index alone), then
    /// read just those rows.
    ExpiryIndex,
}

fn cert_row(r: &PgRow, now: OffsetDateTime, window: u32) -> Result<CertRow, StoreError> {
    let g = |c: &str| r.try_get::<String, _>(c).map_err(be);
    let revoked_at: Option<i64> = r.try_get("revoked_at").map_err(be)?;
    let not_after = from_ts(r.try_get("not_after").map_err(be)?)?;
    Ok(CertRow {
        serial: parsed::<CertSerial>("serial", &g("serial")?)?,
        device: device_of(&g("device_model")?, &g("device_serial")?)?,
        issuer: parsed::<Name>("issuer", &g("issuer")?)?,
        profile: parsed::<Name>("profile", &g("profile")?)?,
        kind: g("kind")?,
        not_before: from_ts(r.try_get("not_before").map_err(be)?)?,
        not_after,
        issued_at: from_ts(r.try_get("issued_at").map_err(be)?)?,
        revoked_at: revoked_at.map(from_ts).transpose()?,
        revoked_reason: r.try_get("revoked_reason").map_err(be)?,
        status: CertStatus::of_cert(revoked_at.is_some(), not_after, now, window),
    })
}

/// Appends a certificate page's filters on `c` (issuer, revocation, window, search, cursor).
fn push_cert_filters(
    sql: &mut QueryBuilder<Postgres>,
    q: &CertQuery,
    window: Option<(i64, i64)>,
    search: Option<&str>,
    after: Option<&CertSerial>,
) {
    if let Some(i) = &q.issuer {
        sql.push(" AND c.issuer = ")
            .push_bind(i.as_str().to_owned());
    }
    match q.revoked {
        Some(true) => {
            sql.push(" AND c.revoked_at IS NOT NULL");
        }
        Some(false) => {
            sql.push(" AND c.revoked_at IS NULL");
        }
        None => {}
    }
    if let Some((lo, hi)) = window {
        sql.push(" AND c.revoked_at IS NULL AND c.not_after >= ")
            .push_bind(lo)
            .push(" AND c.not_after < ")
            .push_bind(hi);
    }
    if let Some(p) = search {
        sql.push(" AND c.device_serial ILIKE ")
            .push_bind(p.to_owned())
            .push(" ESCAPE '\\'");
    }
    if let Some(a) = after {
        sql.push(" AND c.serial > ").push_bind(a.to_hex());
    }
}

#[async_trait]
impl FleetStore for PgStore {
    async fn fleet_page(
        &self,
        q: &FleetQuery,
        now: OffsetDateTime,
    ) -> Result<Page<FleetRow>, FleetError> {
        q.validate()?;
        let now = whole_seconds(now)?;
        let n = ts(now);
        let until = window_end(n, q.expiring_within_days);
        let after = q.after.as_ref().map(Cursor::device).transpose()?;

        let mut sql = QueryBuilder::<Postgres>::new(
            "SELECT x.model, x.serial, x.retired, x.version, fv.end_of_support,
                    x.cert_serial, x.not_after, x.revoked FROM fleet_devices x",
        );
        sql.push(
            " LEFT JOIN firmware_versions fv ON fv.model = x.model AND fv.version = x.version
              WHERE 1 = 1",
        );
        if let Some(v) = &q.firmware {
            sql.push(" AND x.version = ")
                .push_bind(v.as_str().to_owned());
        }
        if let Some(m) = &q.model {
            sql.push(" AND x.model = ").push_bind(m.as_str().to_owned());
        }
        if let Some(d) = after {
            sql.push(" AND (x.model, x.serial) > (")
                .push_bind(d.model.as_str().to_owned())
                .push(", ")
                .push_bind(d.serial.as_str().to_owned())
                .push(")");
        }
        if let Some(s) = q.search_term() {
            sql.push(" AND x.serial ILIKE ")
                .push_bind(like_contains(s))
                .push(" ESCAPE '\\'");
        }
        if !q.include_retired {
            sql.push(" AND x.retired = 0");
        }
        if q.past_end_of_support {
            // Dates compare as text; byte order whatever the database's collation.
            sql.push(" AND fv.end_of_support COLLATE \"C\" < ")
                .push_bind(today(now)?);
        }
        if let Some(s) = q.cert_status {
            push_status(&mut sql, s, n, until);
        }
        sql.push(format_args!(
            " ORDER BY x.model, x.serial LIMIT {}",
            q.limit + 1
        ));
        let rows = sql.build().fetch_all(self.pool()).await.map_err(be)?;

        let mut out = Vec::with_capacity(rows.len());
        let mut versions = BTreeSet::new();
        for r in &rows {
            let (row, firmware) = fleet_row(r, now, q.expiring_within_days)?;
            if let Some(v) = firmware {
                versions.insert((row.device.model.to_string(), v));
            }
            out.push(row);
        }
        let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
        let more = out.len() > limit;
        out.truncate(limit);
        // Finding counts only for the firmware versions on this page, in one query.
        let counts = finding_counts(self, &versions).await?;
        for row in &mut out {
            if let Some(v) = &row.firmware
                && let Some((open, kev)) =
                    counts.get(&(row.device.model.to_string(), v.to_string()))
            {
                row.open_findings = *open;
                row.kev_findings = *kev;
            }
        }
        let total = if q.after.is_none() && q.is_unfiltered() {
            let mut c = QueryBuilder::<Postgres>::new("SELECT count(*) FROM fleet_devices");
            if q.include_retired {
                c.push(" WHERE 1 = 1");
            } else {
                c.push(" WHERE retired = 0");
            }
            if let Some(m) = &q.model {
                c.push(" AND model = ").push_bind(m.as_str().to_owned());
            }
            let t: i64 = c
                .build_query_scalar()
                .fetch_one(self.pool())
                .await
                .map_err(be)?;
            Some(count(t)?)
        } else {
            None
        };
        Ok(Page {
            next: if more {
                out.last().map(|r| Cursor::after_device(&r.device))
            } else {
                None
            },
            rows: out,
            total,
        })
    }

    async fn fleet_summary(&self, now: OffsetDateTime) -> Result<FleetSummary, FleetError> {
        let now = whole_seconds(now)?;
        let n = ts(now);
        let mut s = FleetSummary::default();

        // Devices per (retired, model, version). SQLite hands groups back in its index's order;
        // PostgreSQL may aggregate by hashing, so the order (bytes, like SQLite's) is asked for,
        // here and in every query below whose row order reaches the caller.
        let groups: Vec<(i64, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT retired, model, version, count(*) FROM fleet_devices
             GROUP BY retired, model, version
             ORDER BY retired, model COLLATE \"C\", version COLLATE \"C\"",
        )
        .fetch_all(self.pool())
        .await
        .map_err(be)?;
        let eos: Vec<(String, String)> = sqlx::query_as(
            "SELECT model, version FROM firmware_versions
                 WHERE end_of_support COLLATE \"C\" < $1",
        )
        .bind(today(now)?)
        .fetch_all(self.pool())
        .await
        .map_err(be)?;
        let eos: BTreeSet<(String, String)> = eos.into_iter().collect();
        let mut by_model: BTreeMap<String, u64> = BTreeMap::new();
        for (retired, model, version, c) in groups {
            let c = count(c)?;
            if retired != 0 {
                s.retired += c;
                continue;
            }
            s.devices += c;
            match version {
                None => s.firmware_unknown += c,
                Some(v) => {
                    if eos.contains(&(model.clone(), v.clone())) {
                        s.past_end_of_support += c;
                    }
                    s.by_firmware.push((
                        parsed("device model", &model)?,
                        parsed("firmware version", &v)?,
                        c,
                    ));
                }
            }
            *by_model.entry(model).or_default() += c;
        }
        for (m, c) in by_model {
            s.by_model.push((parsed("device model", &m)?, c));
        }

        // Certificate counts of devices in the field: the unrevoked ones counted per disjoint
        // not_after interval between every boundary any figure needs (each index entry is read
        // once), then each figure summed from its intervals.
        let n30 = window_end(n, DEFAULT_EXPIRING_DAYS);
        let this_month = month_start(now.date(), 0)?;
        let mut months = Vec::with_capacity(13);
        let mut labels = Vec::with_capacity(12);
        for i in 0..=12 {
            let d = month_start(this_month, i)?;
            if i < 12 {
                labels.push(format!("{:04}-{:02}", d.year(), u8::from(d.month())));
            }
            months.push(if i == 0 {
                n
            } else {
                d.midnight().assume_utc().unix_timestamp()
            });
        }
        let mut cuts: Vec<i64> = vec![i64::MIN, n, n30, window_end(n, 60), window_end(n, 90)];
        cuts.extend(&months);
        cuts.push(i64::MAX);
        cuts.sort_unstable();
        cuts.dedup();
        let intervals: Vec<(i64, i64)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT (SELECT count(*) FROM fleet_devices
                     WHERE retired = 0 AND revoked = 1),
                    (SELECT count(*) FROM fleet_devices
                     WHERE retired = 0 AND revoked IS NULL)",
        );
        for (lo, hi) in &intervals {
            q.push(
                ", (SELECT count(*) FROM fleet_devices
                   WHERE retired = 0 AND revoked = 0 AND not_after >= ",
            )
            .push_bind(*lo)
            .push(" AND not_after < ")
            .push_bind(*hi)
            .push(")");
        }
        let row = q.build().fetch_one(self.pool()).await.map_err(be)?;
        let mut per_interval = Vec::with_capacity(intervals.len());
        for i in 0..intervals.len() {
            per_interval.push(count(row.try_get(i + 2).map_err(be)?)?);
        }
        // Unrevoked devices whose notAfter is in [lo, hi): lo and hi are always cut points.
        let between = |lo: i64, hi: i64| -> u64 {
            intervals
                .iter()
                .zip(&per_interval)
                .filter(|((a, b), _)| *a >= lo && *b <= hi)
                .map(|(_, c)| *c)
                .sum()
        };
        s.cert_status = CertStatusCounts {
            valid: between(n30, i64::MAX),
            expiring: between(n, n30),
            expired: between(i64::MIN, n),
            revoked: count(row.try_get(0).map_err(be)?)?,
            none: count(row.try_get(1).map_err(be)?)?,
        };
        s.expiring_30 = s.cert_status.expiring;
        s.expiring_60 = between(n, window_end(n, 60));
        s.expiring_90 = between(n, window_end(n, 90));
        for (i, label) in labels.into_iter().enumerate() {
            s.expiry_histogram
                .push((label, between(months[i], months[i + 1])));
        }
        Ok(s)
    }

    async fn cert_page(
        &self,
        q: &CertQuery,
        now: OffsetDateTime,
    ) -> Result<Page<CertRow>, FleetError> {
        q.validate()?;
        let now = whole_seconds(now)?;
        let n = ts(now);
        let after = q.after.as_ref().map(Cursor::cert).transpose()?;
        let search = q.search_term().map(like_contains);
        let window = q.expiring_within_days.map(|d| (n, window_end(n, d)));
        let empty = Page {
            rows: Vec::new(),
            next: None,
            total: None,
        };
        // The window only holds unrevoked certificates: asking for revoked ones in it can
        // match nothing, and must not cost a walk of every certificate to find that out.
        if window.is_some() && q.revoked == Some(true) {
            return Ok(empty);
        }

        // Pick the walk: a selective filter is cheaper to read through its own index and sort
        // than to find by walking a million certificates in serial order.
        let mut plan = CertPlan::SerialWalk;
        if let Some(p) = &search {
            let devices: Vec<(String, String)> = sqlx::query_as(
                "SELECT model, serial FROM fleet_devices WHERE serial ILIKE $1 ESCAPE '\\' LIMIT $2",
            )
            .bind(p)
            .bind(DEVICE_DRIVE_MAX as i64 + 1)
            .fetch_all(self.pool())
            .await
            .map_err(be)?;
            if devices.is_empty() {
                return Ok(empty);
            }
            if devices.len() <= DEVICE_DRIVE_MAX {
                plan = CertPlan::DeviceCerts(devices);
            }
        }
        if let (CertPlan::SerialWalk, Some((lo, hi))) = (&plan, window) {
            let mut c = QueryBuilder::<Postgres>::new(
                "SELECT count(*) FROM (SELECT 1 FROM certs c
                 WHERE c.revoked_at IS NULL AND c.not_after >= ",
            );
            c.push_bind(lo).push(" AND c.not_after < ").push_bind(hi);
            if let Some(i) = &q.issuer {
                c.push(" AND c.issuer = ").push_bind(i.as_str().to_owned());
            }
            c.push(" LIMIT ")
                .push_bind(EXPIRY_DRIVE_MAX + 1)
                .push(") AS hits");
            let hits: i64 = c
                .build_query_scalar()
                .fetch_one(self.pool())
                .await
                .map_err(be)?;
            if hits <= EXPIRY_DRIVE_MAX {
                plan = CertPlan::ExpiryIndex;
            }
        }

        let page = q.limit + 1;
        let mut sql = QueryBuilder::<Postgres>::new(format!("SELECT {CERT_COLS} FROM "));
        match &plan {
            CertPlan::SerialWalk => {
                sql.push("certs c WHERE 1 = 1");
                push_cert_filters(&mut sql, q, window, search.as_deref(), after);
            }
            CertPlan::DeviceCerts(devices) => {
                // A join from the device list: each device's certificates through its index.
                sql.push("(VALUES ");
                push_pairs(
                    &mut sql,
                    devices.iter().map(|(m, s)| (m.as_str(), s.as_str())),
                );
                sql.push(
                    ") AS m (model, serial) JOIN certs c
                     ON c.device_model = m.model AND c.device_serial = m.serial WHERE 1 = 1",
                );
                // The devices already match the search.
                push_cert_filters(&mut sql, q, window, None, after);
            }
            CertPlan::ExpiryIndex => {
                sql.push(
                    "certs c WHERE c.serial IN (SELECT c.serial FROM certs c
                      WHERE 1 = 1",
                );
                push_cert_filters(&mut sql, q, window, search.as_deref(), after);
                sql.push(format_args!(" ORDER BY c.serial LIMIT {page})"));
            }
        }
        sql.push(format_args!(" ORDER BY c.serial LIMIT {page}"));
        let rows = sql.build().fetch_all(self.pool()).await.map_err(be)?;
        let window_days = q.status_window_days();
        let mut out = rows
            .iter()
            .map(|r| cert_row(r, now, window_days))
            .collect::<Result<Vec<_>, _>>()?;
        let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
        let more = out.len() > limit;
        out.truncate(limit);
        Ok(Page {
            next: if more {
                out.last().map(|r| Cursor::after_cert(&r.serial))
            } else {
                None
            },
            rows: out,
            total: None,
        })
    }

    async fn fleet_risk(
        &self,
        now: OffsetDateTime,
        expiring_within_days: u32,
        limit: u32,
    ) -> Result<Vec<FleetRiskRow>, FleetError> {
        validate_risk(expiring_within_days, limit)?;
        let now = whole_seconds(now)?;
        let until = window_end(ts(now), expiring_within_days);

        // 1. Open findings of every vulnerability that is urgent somewhere: the urgent ones
        //    make firmware hot, and all of them tell which releases still carry it.
        let rows: Vec<(String, String, String, String, i64, Option<f64>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT x.model, x.version, x.vuln_id, x.component, x.kev, x.cvss_score
                 FROM findings x
                 WHERE x.vuln_id IN (SELECT vuln_id FROM findings WHERE kev = 1 OR cvss_score >= $1)
                   AND {OPEN}
                 ORDER BY x.model COLLATE \"C\", x.version COLLATE \"C\",
                     x.vuln_id COLLATE \"C\", x.component COLLATE \"C\""
            )))
            .bind(CRITICAL_CVSS)
            .fetch_all(self.pool())
            .await
            .map_err(be)?;
        let mut open_in: BTreeSet<(String, String, String)> = BTreeSet::new();
        let mut hot: BTreeMap<(String, String), Vec<UrgentFinding>> = BTreeMap::new();
        for (m, v, vuln, comp, kev, cvss) in rows {
            let kev = kev != 0;
            if is_urgent(kev, cvss) {
                hot.entry((m.clone(), v.clone()))
                    .or_default()
                    .push(UrgentFinding {
                        vuln_id: vuln.clone(),
                        component: comp,
                        kev,
                        cvss_score: cvss,
                    });
            }
            open_in.insert((m, v, vuln));
        }
        if hot.is_empty() {
            return Ok(Vec::new());
        }

        // 2. The hot firmware: release date and vulnerable component count.
        let keys: BTreeSet<(String, String)> = hot.keys().cloned().collect();
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT fw.model, fw.version, fw.released_on,
                    (SELECT count(DISTINCT x.component) FROM findings x
                     WHERE x.model = fw.model AND x.version = fw.version AND ",
        );
        q.push(OPEN)
            .push(") FROM firmware_versions fw WHERE (fw.model, fw.version) IN (VALUES ");
        push_pairs(&mut q, keys.iter().map(|(m, v)| (m.as_str(), v.as_str())));
        q.push(") ORDER BY fw.model COLLATE \"C\", fw.version COLLATE \"C\"");
        let fw_rows: Vec<(String, String, Option<String>, i64)> = q
            .build_query_as()
            .fetch_all(self.pool())
            .await
            .map_err(be)?;
        let mut firmware = Vec::with_capacity(fw_rows.len());
        for (m, v, released_on, comps) in fw_rows {
            let urgent = hot.remove(&(m.clone(), v.clone())).unwrap_or_default();
            firmware.push(FirmwareFacts {
                model: parsed("device model", &m)?,
                version: parsed("firmware version", &v)?,
                released_on: date_from(released_on)?,
                urgent,
                vulnerable_components: count32(comps)?,
            });
        }

        // 3. The hot models' releases, whether their SBOM is on record, and each one's newest
        //    active rollout.
        let models: BTreeSet<&str> = keys.iter().map(|(m, _)| m.as_str()).collect();
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT r.model, r.version, r.security_version, r.published_at,
                    EXISTS (SELECT 1 FROM sboms s WHERE s.model = r.model AND s.version = r.version),
                    (SELECT o.id FROM rollouts o WHERE o.model = r.model AND o.target = r.target
                       AND o.state = 'active' ORDER BY o.created_at DESC, o.id DESC LIMIT 1)
             FROM releases r WHERE r.model IN (",
        );
        let mut sep = q.separated(", ");
        for m in &models {
            sep.push_bind(m.to_string());
        }
        q.push(") ORDER BY r.model COLLATE \"C\", r.version COLLATE \"C\"");
        let rel_rows: Vec<(String, String, i64, i64, bool, Option<String>)> = q
            .build_query_as()
            .fetch_all(self.pool())
            .await
            .map_err(be)?;
        let mut releases: BTreeMap<DeviceModel, Vec<ReleaseInfo>> = BTreeMap::new();
        for (m, v, sv, published, sbom, rollout) in rel_rows {
            releases
                .entry(parsed("release model", &m)?)
                .or_default()
                .push(ReleaseInfo {
                    version: parsed("release version", &v)?,
                    security_version: u64::try_from(sv)
                        .map_err(|e| corrupt("security version", e))?,
                    published_at: from_ts(published)?,
                    sbom_on_record: sbom,
                    active_rollout: rollout,
                });
        }
        let plans = plan_fixes(
            &firmware,
            |m| releases.get(m).map(Vec::as_slice).unwrap_or(&[]),
            |m, v, vuln| open_in.contains(&(m.to_string(), v.to_string(), vuln.to_owned())),
            now,
        );
        if plans.is_empty() {
            return Ok(Vec::new());
        }

        // 4. Devices in the field on planned firmware whose current certificate is unrevoked
        //    and expires before the window's end: a range of an index that holds every column
        //    needed, so no table row is read.
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT x.model, x.serial, x.cert_serial, x.not_after, x.version
             FROM fleet_devices x
             WHERE x.retired = 0 AND x.revoked = 0 AND x.not_after < ",
        );
        q.push_bind(until)
            .push(" AND (x.model, x.version) IN (VALUES ");
        push_pairs(
            &mut q,
            plans.iter().map(|p| (p.model.as_str(), p.version.as_str())),
        );
        q.push(") ORDER BY x.not_after, x.model COLLATE \"C\", x.serial COLLATE \"C\"");
        let cand_rows: Vec<(String, String, String, i64, String)> = q
            .build_query_as()
            .fetch_all(self.pool())
            .await
            .map_err(be)?;
        let mut candidates = Vec::with_capacity(cand_rows.len());
        for (m, s, cert, not_after, v) in cand_rows {
            candidates.push(RiskCandidate {
                device: device_of(&m, &s)?,
                firmware: parsed("firmware version", &v)?,
                cert_serial: parsed("serial", &cert)?,
                cert_not_after: from_ts(not_after)?,
            });
        }
        Ok(rank_risk(
            candidates,
            &plans,
            now,
            expiring_within_days,
            limit,
        ))
    }

    async fn device_count(&self) -> Result<u64, FleetError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM fleet_devices WHERE retired = 0")
            .fetch_one(self.pool())
            .await
            .map_err(be)?;
        Ok(count(n)?)
    }
}
