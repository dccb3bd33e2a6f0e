//! Regulatory documentation from the data medsec holds: the premarket cybersecurity file, the
//! labelling / IFU cybersecurity section, the MDS2 form and the gaps report.
//!
//! Pure: callers gather the inputs from the stores; this crate lays out documents in one
//! intermediate form ([`doc::Document`]) and renders it to Markdown, HTML (with inline SVG
//! diagrams) and PDF without network, browser or external tools. The same inputs give the
//! same bytes (PDF differs only in its creation date).

pub mod diagrams;
pub mod doc;
mod error;
pub mod evidence;
pub mod gaps;
pub mod inputs;
pub mod labelling;
pub mod mds2;
pub mod pdf;
pub mod premarket;
pub mod render;
pub mod set;

pub use error::DocsError;
