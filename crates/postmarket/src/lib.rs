//! Post-market surveillance core for connected medical devices (Health Canada MDR, FDA).
//!
//! Pure domain code: no IO, no network, and no clock reads. Every "now" comes in as a
//! parameter so that detections, incident timelines and regulatory due dates are reproducible
//! from the inputs alone, which is what an auditor asks for.
//!
//! Flow: device batches are parsed by [`event::parse_batch`] into unattributed [`Event`]s; the
//! server attributes them to the [`medsec_core::DeviceId`] taken from the client certificate;
//! the [`rules::Engine`] turns them into [`rules::Detection`]s; the [`incident::IncidentBook`]
//! opens or updates incidents; [`clock`] computes the regulatory reporting deadlines.

pub mod advisory;
pub mod clock;
pub mod cvd;
mod error;
pub mod event;
pub mod incident;
pub mod report;
pub mod rules;
pub mod service;
pub mod store;
pub mod syslog;

pub use error::PostmarketError;
pub use event::{AttributedEvent, Event, EventId, EventKind, EventType, Severity, parse_batch};
