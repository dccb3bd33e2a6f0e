//! MDS2 (Manufacturer Disclosure Statement for Medical Device Security, HN 1-2019): answers derived from the data where possible, the rest from a manufacturer answers file; XLSX and JSON export.
//!
//! One [`Mds2`] describes one device model at one firmware version. [`build`] walks the
//! question catalogue (the HN 1-2019 sections and question ids, in form order) and answers each
//! question from, in this order of precedence:
//!
//! 1. a manufacturer **override** in the answers file (`override = true` with a note) of an
//!    answer medsec derived — the source then reads "manufacturer override of derived answer X";
//! 2. an answer **derived** from [`Mds2Facts`] (trust inventory, device PKI, update repository,
//!    SBOM, vulnerability monitoring, CVD, post-market surveillance) — the source says which
//!    store and why, e.g. "derived: trust inventory — 1 of 3 PHI links unencrypted (ehr-hl7)";
//!    a non-override file entry for such a question only adds its note (when it agrees) or is
//!    reported in [`Mds2::warnings`] (when it disagrees);
//! 3. the manufacturer **answers file** (TOML);
//! 4. otherwise the question is **unanswered** ([`Mds2::unanswered`]).
//!
//! Derivations are deliberately conservative: a fact only answers a question it settles (the
//! trust inventory is the complete list of network links, so "no PHI link is unencrypted" is a
//! definite "Yes"; a missing SBOM in medsec is *not* a "No", the manufacturer may hold one
//! elsewhere, so that question is left to the answers file).
//!
//! The answers file:
//!
//! ```toml
//! [header]                       # optional; facts take precedence
//! device_description = "Volumetric infusion pump"
//! manufacturer_contact = "security@example.com"
//! intended_use = "Receives drug libraries and sends infusion records to the EHR"
//!
//! [answers."ALOF-1"]
//! answer = "yes"                 # yes | no | n/a | see-note
//! note = "Configurable from 1 to 30 minutes."
//!
//! [answers."CONN-4"]
//! answer = "no"
//! override = true                # replaces a derived answer; a note is required
//! note = "The cloud link is disabled in the hospital configuration."
//! ```
//!
//! Exports: [`Mds2::to_json`] and [`Mds2::to_xlsx`] (a "Header" sheet and a "Questions" sheet
//! with one row per question). The XLSX bytes depend only on the input: the document
//! properties carry the document date as creation time and the ZIP entries a fixed timestamp.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use rust_xlsxwriter::{
    Color, DocProperties, ExcelDateTime, Format, FormatAlign, FormatBorder, Workbook, Worksheet,
    XlsxError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::Date;
use toml::Spanned;

use crate::DocsError;

/// The standard the form follows.
pub const FORM: &str = "ANSI/NEMA HN 1-2019";

const ANSWERS_FILE: &str = "MDS2 answers file";
const FACTS: &str = "MDS2 facts";

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

// ---------------------------------------------------------------------------------------------
// Input facts
// ---------------------------------------------------------------------------------------------

/// What medsec knows about one device model and firmware version, filled by the caller from
/// the stores. Everything but the document header is optional: a missing fact leaves the
/// questions it would answer to the manufacturer answers file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mds2Facts {
    /// DOC-1 Manufacturer name.
    pub manufacturer: String,
    /// DOC-5 Manufacturer contact information (falls back to the answers file `[header]`).
    #[serde(default)]
    pub manufacturer_contact: Option<String>,
    /// DOC-2 Device description (falls back to the answers file `[header]`).
    #[serde(default)]
    pub device_description: Option<String>,
    /// DOC-6 Intended use of the device in a network-connected environment (falls back to the
    /// answers file `[header]`).
    #[serde(default)]
    pub intended_use: Option<String>,
    /// DOC-3 Device model.
    pub model: String,
    /// The firmware version the statement describes.
    pub firmware_version: String,
    /// DOC-4 Document id.
    pub document_id: String,
    /// DOC-7 Document release date; also the XLSX creation date, so rebuilding is byte-identical.
    #[serde(with = "iso_date")]
    pub document_date: Date,
    /// The trust inventory of the model: every link the device takes part in. Taken as
    /// complete: "no link does X" answers are derived from it.
    #[serde(default)]
    pub links: Vec<Mds2Link>,
    /// Device identity from medsec's device PKI, if the model uses it.
    #[serde(default)]
    pub device_identity: Option<DeviceIdentity>,
    /// Firmware update delivery, if the model's updates go through medsec's update repository.
    #[serde(default)]
    pub updates: Option<UpdateFacts>,
    /// The SBOM medsec holds for this firmware version.
    #[serde(default)]
    pub sbom: Option<SbomFacts>,
    /// Vulnerability monitoring of this firmware version, if medsec matches it.
    #[serde(default)]
    pub vulnerabilities: Option<VulnerabilityFacts>,
    /// End of security support for this firmware version.
    #[serde(default, with = "iso_date::option")]
    pub end_of_support: Option<Date>,
    /// Coordinated vulnerability disclosure programme (security.txt, report intake).
    #[serde(default)]
    pub cvd: Option<CvdFacts>,
    /// The device reports security events to the manufacturer's post-market surveillance.
    #[serde(default)]
    pub event_logging: bool,
    /// The backup/restore statement of the labelling, if there is one.
    #[serde(default)]
    pub backup_restore: Option<String>,
}

impl Mds2Facts {
    /// Facts with the document header only; every other fact absent.
    pub fn new(
        manufacturer: impl Into<String>,
        model: impl Into<String>,
        firmware_version: impl Into<String>,
        document_id: impl Into<String>,
        document_date: Date,
    ) -> Self {
        Mds2Facts {
            manufacturer: manufacturer.into(),
            manufacturer_contact: None,
            device_description: None,
            intended_use: None,
            model: model.into(),
            firmware_version: firmware_version.into(),
            document_id: document_id.into(),
            document_date,
            links: Vec::new(),
            device_identity: None,
            updates: None,
            sbom: None,
            vulnerabilities: None,
            end_of_support: None,
            cvd: None,
            event_logging: false,
            backup_restore: None,
        }
    }
}

/// One trust link of the device (an edge of the trust inventory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mds2Link {
    /// Link name as reviewers know it, e.g. "ehr-hl7".
    pub name: String,
    /// Protocol, e.g. "HTTPS", "HL7 v2 MLLP".
    pub protocol: String,
    /// Transport encryption with integrity protection (TLS, DTLS, IPsec).
    pub encrypted: bool,
    pub authentication: LinkAuthentication,
    /// The link carries protected health information / personally identifiable information.
    #[serde(default)]
    pub carries_phi: bool,
    /// The link leaves the customer environment (cloud, manufacturer service host).
    #[serde(default)]
    pub external: bool,
    /// The link is used for remote service (device analysis or repair).
    #[serde(default)]
    pub remote_service: bool,
}

/// How the ends of a link authenticate each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkAuthentication {
    None,
    /// Only one end authenticates the other (e.g. server-certificate TLS).
    OneWay,
    /// Both ends authenticate each other (e.g. mutual TLS).
    Mutual,
}

impl LinkAuthentication {
    fn label(self) -> &'static str {
        match self {
            LinkAuthentication::None => "no authentication",
            LinkAuthentication::OneWay => "one-way authentication",
            LinkAuthentication::Mutual => "mutual authentication",
        }
    }
}

/// Device identity by X.509 certificates from medsec's device PKI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceIdentity {
    /// Devices authenticate with their certificate in mutual TLS.
    pub mutual_tls: bool,
    /// Key types of the device certificate profiles, e.g. "ECDSA P-256".
    #[serde(default)]
    pub key_types: Vec<String>,
    /// CRL distribution points published for device certificates.
    #[serde(default)]
    pub crl_urls: Vec<String>,
    /// OCSP responders for device certificates.
    #[serde(default)]
    pub ocsp_urls: Vec<String>,
}

/// Firmware update delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateFacts {
    /// Updates are delivered from a TUF repository and installed only with valid signed metadata.
    pub signed_tuf: bool,
    /// The device refuses older versions (TUF version/rollback checks).
    pub rollback_protection: bool,
}

/// The SBOM held for the firmware version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomFacts {
    pub component_count: usize,
    /// Formats it is available in, e.g. "CycloneDX 1.6", "SPDX 2.3".
    #[serde(default)]
    pub formats: Vec<String>,
    /// Components that name their supplier/author.
    pub components_with_supplier: usize,
    /// Components that carry a version.
    pub components_with_version: usize,
}

/// Vulnerability monitoring state of the firmware version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VulnerabilityFacts {
    /// Findings not yet resolved or ruled out.
    pub open_findings: usize,
    /// Of those, findings listed in CISA's Known Exploited Vulnerabilities catalogue.
    pub kev_findings: usize,
}

/// The coordinated vulnerability disclosure programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CvdFacts {
    /// `Contact:` lines of security.txt (mailto: or https: URIs).
    #[serde(default)]
    pub contacts: Vec<String>,
    /// Where researchers submit reports.
    #[serde(default)]
    pub intake_url: Option<String>,
    /// The published disclosure policy.
    #[serde(default)]
    pub policy_url: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The question catalogue (HN 1-2019 form order; question text paraphrased from the form)
// ---------------------------------------------------------------------------------------------

struct SectionDef {
    code: &'static str,
    title: &'static str,
    questions: &'static [(&'static str, &'static str)],
}

/// The form's questions. The form's own `SHAD-15` typo is spelled `SAHD-15` here.
const CATALOGUE: &[SectionDef] = &[
    SectionDef {
        code: "DOC",
        title: "Document information",
        questions: &[
            (
                "DOC-8",
                "Coordinated Vulnerability Disclosure: Does the manufacturer have a vulnerability disclosure program for this device?",
            ),
            (
                "DOC-9",
                "ISAO: Is the manufacturer part of an Information Sharing and Analysis Organization?",
            ),
            (
                "DOC-10",
                "Diagram: Is a network or data flow diagram available that indicates connections to other system components or expected external resources?",
            ),
            (
                "DOC-11",
                "SaMD: Is the device Software as a Medical Device (i.e. software-only, no hardware)?",
            ),
            ("DOC-11.1", "Does the SaMD contain an operating system?"),
            (
                "DOC-11.2",
                "Does the SaMD rely on an owner/operator provided operating system?",
            ),
            ("DOC-11.3", "Is the SaMD hosted by the manufacturer?"),
            ("DOC-11.4", "Is the SaMD hosted by the customer?"),
        ],
    },
    SectionDef {
        code: "MPII",
        title: "Management of personally identifiable information",
        questions: &[
            (
                "MPII-1",
                "Can this device display, transmit, store, or modify personally identifiable information (e.g. electronic Protected Health Information (ePHI))?",
            ),
            (
                "MPII-2",
                "Does the device maintain personally identifiable information?",
            ),
            (
                "MPII-2.1",
                "Does the device maintain personally identifiable information temporarily in volatile memory (i.e., until cleared by power-off or reset)?",
            ),
            (
                "MPII-2.2",
                "Does the device store personally identifiable information persistently on internal media?",
            ),
            (
                "MPII-2.3",
                "Is personally identifiable information preserved in the device's non-volatile memory until explicitly erased?",
            ),
            (
                "MPII-2.4",
                "Does the device store personally identifiable information in a database?",
            ),
            (
                "MPII-2.5",
                "Does the device allow configuration to automatically delete local personally identifiable information after it is stored to a long term solution?",
            ),
            (
                "MPII-2.6",
                "Does the device import/export personally identifiable information with other systems (e.g., a wearable monitoring device might export personally identifiable information to a server)?",
            ),
            (
                "MPII-2.7",
                "Does the device maintain personally identifiable information when powered off, or during power service interruptions?",
            ),
            (
                "MPII-2.8",
                "Does the device allow the internal media to be removed by a service technician (e.g., for separate destruction or customer retention)?",
            ),
            (
                "MPII-2.9",
                "Does the device allow personally identifiable information records to be stored in a separate location from the device's operating system (i.e. secondary internal drive, alternate drive partition, or remote storage location)?",
            ),
            (
                "MPII-3",
                "Does the device have mechanisms used for the transmitting, importing/exporting of personally identifiable information?",
            ),
            (
                "MPII-3.1",
                "Does the device display personally identifiable information (e.g., video display, etc.)?",
            ),
            (
                "MPII-3.2",
                "Does the device generate hardcopy reports or images containing personally identifiable information?",
            ),
            (
                "MPII-3.3",
                "Does the device retrieve personally identifiable information from or record personally identifiable information to removable media (e.g., removable-HDD, USB memory, DVD-R/RW, CD-R/RW, tape, CF/SD card, memory stick, etc.)?",
            ),
            (
                "MPII-3.4",
                "Does the device transmit/receive or import/export personally identifiable information via dedicated cable connection (e.g., RS-232, RS-423, USB, FireWire, etc.)?",
            ),
            (
                "MPII-3.5",
                "Does the device transmit/receive personally identifiable information via a wired network connection (e.g., RJ45, fiber optic, etc.)?",
            ),
            (
                "MPII-3.6",
                "Does the device transmit/receive personally identifiable information via a wireless network connection (e.g., WiFi, Bluetooth, NFC, infrared, cellular, etc.)?",
            ),
            (
                "MPII-3.7",
                "Does the device transmit/receive personally identifiable information over an external network (e.g., Internet)?",
            ),
            (
                "MPII-3.8",
                "Does the device import personally identifiable information via scanning a document?",
            ),
            (
                "MPII-3.9",
                "Does the device transmit/receive personally identifiable information via a proprietary protocol?",
            ),
            (
                "MPII-3.10",
                "Does the device use any other mechanism to transmit, import or export personally identifiable information?",
            ),
        ],
    },
    SectionDef {
        code: "ALOF",
        title: "Automatic logoff",
        questions: &[
            (
                "ALOF-1",
                "Can the device be configured to force reauthorization of logged-in user(s) after a predetermined length of inactivity (e.g., auto-logoff, session lock, password protected screen saver)?",
            ),
            (
                "ALOF-2",
                "Is the length of inactivity time before auto-logoff/screen lock user or administrator configurable?",
            ),
        ],
    },
    SectionDef {
        code: "AUDT",
        title: "Audit controls",
        questions: &[
            (
                "AUDT-1",
                "Can the medical device create additional audit logs or reports beyond standard operating system logs?",
            ),
            ("AUDT-1.1", "Does the audit log record a USER ID?"),
            (
                "AUDT-1.2",
                "Does other personally identifiable information exist in the audit trail?",
            ),
            (
                "AUDT-2",
                "Are events recorded in an audit log? If yes, indicate which of the following events are recorded in the audit log:",
            ),
            ("AUDT-2.1", "Successful login/logout attempts?"),
            ("AUDT-2.2", "Unsuccessful login/logout attempts?"),
            ("AUDT-2.3", "Modification of user privileges?"),
            ("AUDT-2.4", "Creation/modification/deletion of users?"),
            (
                "AUDT-2.5",
                "Presentation of clinical or PII data (e.g. display, print)?",
            ),
            ("AUDT-2.6", "Creation/modification/deletion of data?"),
            (
                "AUDT-2.7",
                "Import/export of data from removable media (e.g. USB drive, external hard drive, DVD)?",
            ),
            (
                "AUDT-2.8",
                "Receipt/transmission of data or commands over a network or point-to-point connection?",
            ),
            ("AUDT-2.8.1", "Remote or on-site support?"),
            (
                "AUDT-2.8.2",
                "Application Programming Interface (API) and similar activity?",
            ),
            ("AUDT-2.9", "Emergency access?"),
            ("AUDT-2.10", "Other events (e.g., software updates)?"),
            (
                "AUDT-2.11",
                "Is the audit capability documented in more detail?",
            ),
            (
                "AUDT-3",
                "Can the owner/operator define or select which events are recorded in the audit log?",
            ),
            (
                "AUDT-4",
                "Is a list of data attributes that are captured in the audit log for an event available?",
            ),
            ("AUDT-4.1", "Does the audit log record date/time?"),
            (
                "AUDT-4.1.1",
                "Can date and time be synchronized by Network Time Protocol (NTP) or equivalent time source?",
            ),
            ("AUDT-5", "Can audit log content be exported?"),
            ("AUDT-5.1", "Via physical media?"),
            (
                "AUDT-5.2",
                "Via IHE Audit Trail and Node Authentication (ATNA) profile to SIEM?",
            ),
            (
                "AUDT-5.3",
                "Via other communications (e.g., external service device, mobile applications)?",
            ),
            (
                "AUDT-5.4",
                "Are audit logs encrypted in transit or on storage media?",
            ),
            (
                "AUDT-6",
                "Can audit logs be monitored/reviewed by owner/operator?",
            ),
            ("AUDT-7", "Are audit logs protected from modification?"),
            ("AUDT-7.1", "Are audit logs protected from access?"),
            ("AUDT-8", "Can audit logs be analyzed by the device?"),
        ],
    },
    SectionDef {
        code: "AUTH",
        title: "Authorization",
        questions: &[
            (
                "AUTH-1",
                "Does the device prevent access to unauthorized users through user login requirements or other mechanism?",
            ),
            (
                "AUTH-1.1",
                "Can the device be configured to use federated credentials management of users for authorization (e.g., LDAP, OAuth)?",
            ),
            (
                "AUTH-1.2",
                "Can the customer push group policies to the device (e.g., Active Directory)?",
            ),
            (
                "AUTH-1.3",
                "Are any special groups, organizational units, or group policies required?",
            ),
            (
                "AUTH-2",
                "Can users be assigned different privilege levels based on 'role' (e.g., user, administrator, and/or service, etc.)?",
            ),
            (
                "AUTH-3",
                "Can the device owner/operator grant themselves unrestricted administrative privileges (e.g., access operating system or application via local root or administrator account)?",
            ),
            (
                "AUTH-4",
                "Does the device authorize or control all API access requests?",
            ),
            (
                "AUTH-5",
                "Does the device run in a restricted access mode, or 'kiosk mode', by default?",
            ),
        ],
    },
    SectionDef {
        code: "CNFS",
        title: "Configuration of security features",
        questions: &[(
            "CNFS-1",
            "Can the device owner/operator reconfigure product security capabilities?",
        )],
    },
    SectionDef {
        code: "CSUP",
        title: "Cyber security product upgrades",
        questions: &[
            (
                "CSUP-1",
                "Does the device contain any software or firmware which may require security updates during its operational life, either from the device manufacturer or from a third-party manufacturer of the software/firmware? If no, answer \"N/A\" to questions in this section.",
            ),
            (
                "CSUP-2",
                "Does the device contain an Operating System? If yes, complete 2.1-2.4.",
            ),
            (
                "CSUP-2.1",
                "Does the device documentation provide instructions for owner/operator installation of patches or software updates?",
            ),
            (
                "CSUP-2.2",
                "Does the device require vendor or vendor-authorized service to install patches or software updates?",
            ),
            (
                "CSUP-2.3",
                "Does the device have the capability to receive remote installation of patches or software updates?",
            ),
            (
                "CSUP-2.4",
                "Does the medical device manufacturer allow security updates from any third-party manufacturers (e.g., Microsoft) to be installed without approval from the manufacturer?",
            ),
            (
                "CSUP-3",
                "Does the device contain Drivers and Firmware? If yes, complete 3.1-3.4.",
            ),
            (
                "CSUP-3.1",
                "Does the device documentation provide instructions for owner/operator installation of patches or software updates?",
            ),
            (
                "CSUP-3.2",
                "Does the device require vendor or vendor-authorized service to install patches or software updates?",
            ),
            (
                "CSUP-3.3",
                "Does the device have the capability to receive remote installation of patches or software updates?",
            ),
            (
                "CSUP-3.4",
                "Does the medical device manufacturer allow security updates from any third-party manufacturers to be installed without approval from the manufacturer?",
            ),
            (
                "CSUP-4",
                "Does the device contain Anti-Malware Software? If yes, complete 4.1-4.4.",
            ),
            (
                "CSUP-4.1",
                "Does the device documentation provide instructions for owner/operator installation of patches or software updates?",
            ),
            (
                "CSUP-4.2",
                "Does the device require vendor or vendor-authorized service to install patches or software updates?",
            ),
            (
                "CSUP-4.3",
                "Does the device have the capability to receive remote installation of patches or software updates?",
            ),
            (
                "CSUP-4.4",
                "Does the medical device manufacturer allow security updates from any third-party manufacturers to be installed without approval from the manufacturer?",
            ),
            (
                "CSUP-5",
                "Does the device contain Non-Operating System commercial off-the-shelf components? If yes, complete 5.1-5.4.",
            ),
            (
                "CSUP-5.1",
                "Does the device documentation provide instructions for owner/operator installation of patches or software updates?",
            ),
            (
                "CSUP-5.2",
                "Does the device require vendor or vendor-authorized service to install patches or software updates?",
            ),
            (
                "CSUP-5.3",
                "Does the device have the capability to receive remote installation of patches or software updates?",
            ),
            (
                "CSUP-5.4",
                "Does the medical device manufacturer allow security updates from any third-party manufacturers to be installed without approval from the manufacturer?",
            ),
            (
                "CSUP-6",
                "Does the device contain other software components (e.g., asset management software, license management)? If yes, provide details or reference in notes and complete 6.1-6.4.",
            ),
            (
                "CSUP-6.1",
                "Does the device documentation provide instructions for owner/operator installation of patches or software updates?",
            ),
            (
                "CSUP-6.2",
                "Does the device require vendor or vendor-authorized service to install patches or software updates?",
            ),
            (
                "CSUP-6.3",
                "Does the device have the capability to receive remote installation of patches or software updates?",
            ),
            (
                "CSUP-6.4",
                "Does the medical device manufacturer allow security updates from any third-party manufacturers to be installed without approval from the manufacturer?",
            ),
            (
                "CSUP-7",
                "Does the manufacturer notify the customer when updates are approved for installation?",
            ),
            (
                "CSUP-8",
                "Does the device perform automatic installation of software updates?",
            ),
            (
                "CSUP-9",
                "Does the manufacturer have an approved list of third-party software that can be installed on the device?",
            ),
            (
                "CSUP-10",
                "Can the owner/operator install manufacturer-approved third-party software on the device themselves?",
            ),
            (
                "CSUP-10.1",
                "Does the system have mechanism in place to prevent installation of unapproved software?",
            ),
            (
                "CSUP-11",
                "Does the manufacturer have a process in place to assess device vulnerabilities and updates?",
            ),
            (
                "CSUP-11.1",
                "Does the manufacturer provide customers with review and approval status of updates?",
            ),
            (
                "CSUP-11.2",
                "Is there an update review cycle for the device?",
            ),
        ],
    },
    SectionDef {
        code: "DIDT",
        title: "Health data de-identification",
        questions: &[
            (
                "DIDT-1",
                "Does the device provide an integral capability to de-identify personally identifiable information?",
            ),
            (
                "DIDT-1.1",
                "Does the device support de-identification profiles that comply with the DICOM standard for de-identification?",
            ),
        ],
    },
    SectionDef {
        code: "DTBK",
        title: "Data backup and disaster recovery",
        questions: &[
            (
                "DTBK-1",
                "Does the device maintain long term primary storage of personally identifiable information / patient information (e.g. PACS)?",
            ),
            (
                "DTBK-2",
                "Does the device have a \"factory reset\" function to restore the original device settings as provided by the manufacturer?",
            ),
            (
                "DTBK-3",
                "Does the device have an integral data backup capability to removable media?",
            ),
            (
                "DTBK-4",
                "Does the device have an integral data backup capability to remote storage?",
            ),
            (
                "DTBK-5",
                "Does the device have a backup capability for system configuration information, patch restoration, and software restoration?",
            ),
            (
                "DTBK-6",
                "Does the device provide the capability to check the integrity and authenticity of a backup?",
            ),
        ],
    },
    SectionDef {
        code: "EMRG",
        title: "Emergency access",
        questions: &[(
            "EMRG-1",
            "Does the device incorporate an emergency access (i.e. \"break-glass\") feature?",
        )],
    },
    SectionDef {
        code: "IGAU",
        title: "Health data integrity and authenticity",
        questions: &[
            (
                "IGAU-1",
                "Does the device provide data integrity checking mechanisms of stored health data (e.g., hash or digital signature)?",
            ),
            (
                "IGAU-2",
                "Does the device provide error/failure protection and recovery mechanisms for stored health data (e.g., RAID-5)?",
            ),
        ],
    },
    SectionDef {
        code: "MLDP",
        title: "Malware detection/protection",
        questions: &[
            (
                "MLDP-1",
                "Is the device capable of hosting executable software?",
            ),
            (
                "MLDP-2",
                "Does the device support the use of anti-malware software (or other anti-malware mechanism)? Provide details or reference in notes.",
            ),
            (
                "MLDP-2.1",
                "Does the device include anti-malware software by default?",
            ),
            (
                "MLDP-2.2",
                "Does the device have anti-malware software available as an option?",
            ),
            (
                "MLDP-2.3",
                "Does the device documentation allow the owner/operator to install or update anti-malware software?",
            ),
            (
                "MLDP-2.4",
                "Can the device owner/operator independently (re-)configure anti-malware settings?",
            ),
            (
                "MLDP-2.5",
                "Does notification of malware detection occur in the device user interface?",
            ),
            (
                "MLDP-2.6",
                "Can only manufacturer-authorized persons repair systems when malware has been detected?",
            ),
            ("MLDP-2.7", "Are malware notifications written to a log?"),
            (
                "MLDP-2.8",
                "Are there any restrictions on anti-malware (e.g., purchase, installation, configuration, scheduling)?",
            ),
            (
                "MLDP-3",
                "If the answer to MLDP-2 is NO, and anti-malware cannot be installed on the device, are other compensating controls in place or available?",
            ),
            (
                "MLDP-4",
                "Does the device employ application whitelisting that restricts the software and services that are permitted to be run on the device?",
            ),
            (
                "MLDP-5",
                "Does the device employ a host-based intrusion detection/prevention system?",
            ),
            (
                "MLDP-5.1",
                "Can the host-based intrusion detection/prevention system be configured by the customer?",
            ),
            (
                "MLDP-5.2",
                "Can a host-based intrusion detection/prevention system be installed by the customer?",
            ),
        ],
    },
    SectionDef {
        code: "NAUT",
        title: "Node authentication",
        questions: &[
            (
                "NAUT-1",
                "Does the device provide/support any means of node authentication that assures both the sender and the recipient of data are known to each other and are authorized to receive transferred information (e.g. Web APIs, SMTP, SNMP)?",
            ),
            (
                "NAUT-2",
                "Are network access control mechanisms supported (e.g., does the device have an internal firewall, or use a network connection white list)?",
            ),
            (
                "NAUT-2.1",
                "Is the firewall ruleset documented and available for review?",
            ),
            (
                "NAUT-3",
                "Does the device use certificate-based network connection authentication?",
            ),
        ],
    },
    SectionDef {
        code: "CONN",
        title: "Connectivity capabilities",
        questions: &[
            (
                "CONN-1",
                "Does the device have hardware connectivity capabilities?",
            ),
            ("CONN-1.1", "Does the device support wireless connections?"),
            ("CONN-1.1.1", "Does the device support Wi-Fi?"),
            ("CONN-1.1.2", "Does the device support Bluetooth?"),
            (
                "CONN-1.1.3",
                "Does the device support other wireless network connectivity (e.g. LTE, Zigbee, proprietary)?",
            ),
            (
                "CONN-1.1.4",
                "Does the device support other wireless connections (e.g., custom RF controls, wireless detectors)?",
            ),
            ("CONN-1.2", "Does the device support physical connections?"),
            (
                "CONN-1.2.1",
                "Does the device have available RJ45 Ethernet ports?",
            ),
            ("CONN-1.2.2", "Does the device have available USB ports?"),
            (
                "CONN-1.2.3",
                "Does the device require, use, or support removable memory devices?",
            ),
            (
                "CONN-1.2.4",
                "Does the device support other physical connectivity?",
            ),
            (
                "CONN-2",
                "Does the manufacturer provide a list of network ports and protocols that are used or may be used on the device?",
            ),
            (
                "CONN-3",
                "Can the device communicate with other systems within the customer environment?",
            ),
            (
                "CONN-4",
                "Can the device communicate with other systems external to the customer environment (e.g., a service host)?",
            ),
            ("CONN-5", "Does the device make or receive API calls?"),
            (
                "CONN-6",
                "Does the device require an internet connection for its intended use?",
            ),
            (
                "CONN-7",
                "Does the device support Transport Layer Security (TLS)?",
            ),
            ("CONN-7.1", "Is TLS configurable?"),
            (
                "CONN-8",
                "Does the device provide operator control functionality from a separate device (e.g., telemedicine)?",
            ),
        ],
    },
    SectionDef {
        code: "PAUT",
        title: "Person authentication",
        questions: &[
            (
                "PAUT-1",
                "Does the device support and enforce unique IDs and passwords for all users and roles (including service accounts)?",
            ),
            (
                "PAUT-1.1",
                "Does the device enforce authentication of unique IDs and passwords for all users and roles (including service accounts)?",
            ),
            (
                "PAUT-2",
                "Is the device configurable to authenticate users through an external authentication service (e.g., MS Active Directory, NDS, LDAP, OAuth, etc.)?",
            ),
            (
                "PAUT-3",
                "Is the device configurable to lock out a user after a certain number of unsuccessful logon attempts?",
            ),
            (
                "PAUT-4",
                "Are all default accounts (e.g., technician service accounts, administrator accounts) listed in the documentation?",
            ),
            ("PAUT-5", "Can all passwords be changed?"),
            (
                "PAUT-6",
                "Is the device configurable to enforce creation of user account passwords that meet established (organization specific) complexity rules?",
            ),
            (
                "PAUT-7",
                "Does the device support account passwords that expire periodically?",
            ),
            (
                "PAUT-8",
                "Does the device support multi-factor authentication?",
            ),
            ("PAUT-9", "Does the device support single sign-on (SSO)?"),
            (
                "PAUT-10",
                "Can user accounts be disabled/locked on the device?",
            ),
            ("PAUT-11", "Does the device support biometric controls?"),
            (
                "PAUT-12",
                "Does the device support physical tokens (e.g. badge access)?",
            ),
            (
                "PAUT-13",
                "Does the device support group authentication (e.g. hospital teams)?",
            ),
            (
                "PAUT-14",
                "Does the application or device store or manage authentication credentials?",
            ),
            ("PAUT-14.1", "Are credentials stored using a secure method?"),
        ],
    },
    SectionDef {
        code: "PLOK",
        title: "Physical locks",
        questions: &[
            (
                "PLOK-1",
                "Is the device software only? If yes, answer \"N/A\" to remaining questions in this section.",
            ),
            (
                "PLOK-2",
                "Are all device components maintaining personally identifiable information (other than removable media) physically secure (i.e., cannot remove without tools)?",
            ),
            (
                "PLOK-3",
                "Are all device components maintaining personally identifiable information (other than removable media) physically secured behind an individually keyed locking device?",
            ),
            (
                "PLOK-4",
                "Does the device have an option for the customer to attach a physical lock to restrict access to removable media?",
            ),
        ],
    },
    SectionDef {
        code: "RDMP",
        title: "Roadmap for third party components in device life cycle",
        questions: &[
            (
                "RDMP-1",
                "Was a secure software development process, such as ISO/IEC 27034 or IEC 62304, followed during product development?",
            ),
            (
                "RDMP-2",
                "Does the manufacturer evaluate third-party applications and software components included in the device for secure development practices?",
            ),
            (
                "RDMP-3",
                "Does the manufacturer maintain a web page or other source of information on software support dates and updates?",
            ),
            (
                "RDMP-4",
                "Does the manufacturer have a plan for managing third-party component end-of-life?",
            ),
        ],
    },
    SectionDef {
        code: "SBOM",
        title: "Software bill of materials",
        questions: &[
            ("SBOM-1", "Is the SBoM for this product available?"),
            (
                "SBOM-2",
                "Does the SBoM follow a standard or common method in describing software components?",
            ),
            ("SBOM-2.1", "Are the software components identified?"),
            (
                "SBOM-2.2",
                "Are the developers/manufacturers of the software components identified?",
            ),
            (
                "SBOM-2.3",
                "Are the major version numbers of the software components identified?",
            ),
            (
                "SBOM-2.4",
                "Are any additional descriptive elements identified?",
            ),
            (
                "SBOM-3",
                "Does the device include a command or process method available to generate a list of software components installed on the device?",
            ),
            ("SBOM-4", "Is there an update process for the SBoM?"),
        ],
    },
    SectionDef {
        code: "SAHD",
        title: "System and application hardening",
        questions: &[
            (
                "SAHD-1",
                "Is the device hardened in accordance with any industry standards?",
            ),
            (
                "SAHD-2",
                "Has the device received any cybersecurity certifications?",
            ),
            (
                "SAHD-3",
                "Does the device employ any mechanisms for software integrity checking?",
            ),
            (
                "SAHD-3.1",
                "Does the device employ any mechanism (e.g., release-specific hash key, checksums, digital signature, etc.) to ensure the installed software is manufacturer-authorized?",
            ),
            (
                "SAHD-3.2",
                "Does the device employ any mechanism (e.g., release-specific hash key, checksums, digital signature, etc.) to ensure the software updates are the manufacturer-authorized updates?",
            ),
            (
                "SAHD-4",
                "Can the owner/operator perform software integrity checks (i.e., verify that the system has not been modified or tampered with)?",
            ),
            (
                "SAHD-5",
                "Is the system configurable to allow the implementation of file-level, patient level, or other types of access controls?",
            ),
            (
                "SAHD-5.1",
                "Does the device provide role-based access controls?",
            ),
            (
                "SAHD-6",
                "Are any system or user accounts restricted or disabled by the manufacturer at system delivery?",
            ),
            (
                "SAHD-6.1",
                "Are any system or user accounts configurable by the end user after initial configuration?",
            ),
            (
                "SAHD-6.2",
                "Does this include restricting certain system or user accounts, such as service technicians, to least privileged access?",
            ),
            (
                "SAHD-7",
                "Are all shared resources (e.g., file shares) which are not required for the intended use of the device disabled?",
            ),
            (
                "SAHD-8",
                "Are all communication ports and protocols that are not required for the intended use of the device disabled?",
            ),
            (
                "SAHD-9",
                "Are all services (e.g., telnet, file transfer protocol [FTP], internet information server [IIS], etc.), which are not required for the intended use of the device deleted/disabled?",
            ),
            (
                "SAHD-10",
                "Are all applications (COTS applications as well as OS-included applications, e.g., MS Internet Explorer, etc.) which are not required for the intended use of the device deleted/disabled?",
            ),
            (
                "SAHD-11",
                "Can the device prohibit boot from uncontrolled or removable media (i.e., a source other than an internal drive or memory component)?",
            ),
            (
                "SAHD-12",
                "Can unauthorized software or hardware be installed on the device without the use of physical tools?",
            ),
            (
                "SAHD-13",
                "Does the product documentation include information on operational network security scanning by users?",
            ),
            (
                "SAHD-14",
                "Can the device be hardened beyond the default provided state?",
            ),
            (
                "SAHD-14.1",
                "Are instructions available from vendor for increased hardening?",
            ),
            (
                "SAHD-15",
                "Can the system prevent access to BIOS or other bootloaders during boot?",
            ),
            (
                "SAHD-16",
                "Have additional hardening methods not included in the questions above been used to harden the device?",
            ),
        ],
    },
    SectionDef {
        code: "SGUD",
        title: "Security guidance",
        questions: &[
            (
                "SGUD-1",
                "Does the device include security documentation for the owner/operator?",
            ),
            (
                "SGUD-2",
                "Does the device have the capability, and provide instructions, for the permanent deletion of data from the device or media?",
            ),
            ("SGUD-3", "Are all access accounts documented?"),
            (
                "SGUD-3.1",
                "Can the owner/operator manage password control for all accounts?",
            ),
            (
                "SGUD-4",
                "Does the product include documentation on recommended compensating controls for the device?",
            ),
        ],
    },
    SectionDef {
        code: "STCF",
        title: "Health data storage confidentiality",
        questions: &[
            ("STCF-1", "Can the device encrypt data at rest?"),
            ("STCF-1.1", "Is all data encrypted or otherwise protected?"),
            (
                "STCF-1.2",
                "Is the data encryption capability configured by default?",
            ),
            (
                "STCF-1.3",
                "Are instructions available to the customer to configure encryption?",
            ),
            (
                "STCF-2",
                "Can the encryption keys be changed or configured?",
            ),
            (
                "STCF-3",
                "Is the data stored in a database located on the device?",
            ),
            (
                "STCF-4",
                "Is the data stored in a database external to the device?",
            ),
        ],
    },
    SectionDef {
        code: "TXCF",
        title: "Transmission confidentiality",
        questions: &[
            (
                "TXCF-1",
                "Can personally identifiable information be transmitted only via a point-to-point dedicated cable?",
            ),
            (
                "TXCF-2",
                "Is personally identifiable information encrypted prior to transmission via a network or removable media?",
            ),
            (
                "TXCF-2.1",
                "If data is not encrypted by default, can the customer configure encryption options?",
            ),
            (
                "TXCF-3",
                "Is personally identifiable information transmission restricted to a fixed list of network destinations?",
            ),
            (
                "TXCF-4",
                "Are connections limited to authenticated systems?",
            ),
            (
                "TXCF-5",
                "Are secure transmission methods supported/implemented (DICOM, HL7, IEEE 11073)?",
            ),
        ],
    },
    SectionDef {
        code: "TXIG",
        title: "Transmission integrity",
        questions: &[
            (
                "TXIG-1",
                "Does the device support any mechanism (e.g., digital signatures) intended to ensure data is not modified during transmission?",
            ),
            (
                "TXIG-2",
                "Does the device include multiple sub-components connected by external cables?",
            ),
        ],
    },
    SectionDef {
        code: "RMOT",
        title: "Remote service",
        questions: &[
            (
                "RMOT-1",
                "Does the device permit remote service connections for device analysis or repair?",
            ),
            (
                "RMOT-1.1",
                "Does the device allow the owner/operator to initiate remote service sessions for device analysis or repair?",
            ),
            (
                "RMOT-1.2",
                "Is there an indicator for an enabled and active remote session?",
            ),
            (
                "RMOT-1.3",
                "Can patient data be accessed or viewed from the device during the remote session?",
            ),
            (
                "RMOT-2",
                "Does the device permit or use remote service connections for predictive maintenance data?",
            ),
            (
                "RMOT-3",
                "Does the device have any other remotely accessible functionality (e.g. software updates, remote training)?",
            ),
        ],
    },
];

/// One question of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueQuestion {
    /// Official id, e.g. "TXCF-2".
    pub id: &'static str,
    /// Section code, e.g. "TXCF".
    pub section_code: &'static str,
    /// Section title, e.g. "Transmission confidentiality".
    pub section: &'static str,
    pub question: &'static str,
}

/// Every question of the form, in form order.
pub fn catalogue() -> impl Iterator<Item = CatalogueQuestion> {
    CATALOGUE.iter().flat_map(|s| {
        s.questions.iter().map(|&(id, question)| CatalogueQuestion {
            id,
            section_code: s.code,
            section: s.title,
            question,
        })
    })
}

fn find_question(id: &str) -> Option<CatalogueQuestion> {
    catalogue().find(|q| q.id == id)
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/// An answer as the form has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answer {
    Yes,
    No,
    /// "N/A".
    NotApplicable,
    /// "See Notes": the note carries the answer.
    SeeNote,
}

impl Answer {
    /// The form's label, used in both exports: "Yes", "No", "N/A", "See Notes".
    pub fn label(self) -> &'static str {
        match self {
            Answer::Yes => "Yes",
            Answer::No => "No",
            Answer::NotApplicable => "N/A",
            Answer::SeeNote => "See Notes",
        }
    }

    /// The answers-file token: "yes", "no", "n/a", "see-note".
    pub fn token(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::No => "no",
            Answer::NotApplicable => "n/a",
            Answer::SeeNote => "see-note",
        }
    }

    fn from_token(s: &str) -> Option<Answer> {
        [
            Answer::Yes,
            Answer::No,
            Answer::NotApplicable,
            Answer::SeeNote,
        ]
        .into_iter()
        .find(|a| a.token() == s)
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerSource {
    /// Derived from medsec's data; the text names the store and the reason.
    Derived(String),
    /// The manufacturer answers file.
    Manufacturer,
    /// The answers file replaced a derived answer (`override = true`).
    Override {
        derived: Answer,
        derived_from: String,
    },
    Unanswered,
}

impl fmt::Display for AnswerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerSource::Derived(why) => write!(f, "derived: {why}"),
            AnswerSource::Manufacturer => f.write_str("manufacturer answers file"),
            AnswerSource::Override {
                derived,
                derived_from,
            } => write!(
                f,
                "manufacturer override of derived answer {derived} (derived: {derived_from})"
            ),
            AnswerSource::Unanswered => f.write_str("unanswered"),
        }
    }
}

/// One answered (or unanswered) question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mds2Answer {
    pub id: &'static str,
    pub section_code: &'static str,
    pub section: &'static str,
    pub question: &'static str,
    /// `None` when unanswered.
    pub answer: Option<Answer>,
    pub note: Option<String>,
    pub source: AnswerSource,
}

/// The document header (HN 1-2019 DOC-1 to DOC-7, plus the firmware version described).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mds2Header {
    pub manufacturer: String,
    pub device_description: Option<String>,
    pub model: String,
    pub firmware_version: String,
    pub document_id: String,
    pub manufacturer_contact: Option<String>,
    pub intended_use: Option<String>,
    pub release_date: Date,
}

impl Mds2Header {
    /// `(form id, label, JSON key, value)` in sheet order.
    fn rows(&self) -> Vec<(&'static str, &'static str, &'static str, Option<String>)> {
        vec![
            (
                "DOC-1",
                "Manufacturer Name",
                "manufacturer",
                Some(self.manufacturer.clone()),
            ),
            (
                "DOC-2",
                "Device Description",
                "device_description",
                self.device_description.clone(),
            ),
            ("DOC-3", "Device Model", "model", Some(self.model.clone())),
            (
                "",
                "Firmware Version",
                "firmware_version",
                Some(self.firmware_version.clone()),
            ),
            (
                "DOC-4",
                "Document ID",
                "document_id",
                Some(self.document_id.clone()),
            ),
            (
                "DOC-5",
                "Manufacturer Contact Information",
                "manufacturer_contact",
                self.manufacturer_contact.clone(),
            ),
            (
                "DOC-6",
                "Intended use of device in network-connected environment",
                "intended_use",
                self.intended_use.clone(),
            ),
            (
                "DOC-7",
                "Document Release Date",
                "release_date",
                Some(self.release_date.to_string()),
            ),
        ]
    }
}

/// A built MDS2 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mds2 {
    header: Mds2Header,
    answers: Vec<Mds2Answer>,
    warnings: Vec<String>,
}

impl Mds2 {
    pub fn header(&self) -> &Mds2Header {
        &self.header
    }

    /// Every question of the catalogue, in form order.
    pub fn answers(&self) -> &[Mds2Answer] {
        &self.answers
    }

    /// The answer to one question id.
    pub fn answer(&self, id: &str) -> Option<&Mds2Answer> {
        self.answers.iter().find(|a| a.id == id)
    }

    /// Questions neither derived nor answered by the manufacturer, in form order.
    pub fn unanswered(&self) -> Vec<&Mds2Answer> {
        self.answers
            .iter()
            .filter(|a| a.source == AnswerSource::Unanswered)
            .collect()
    }

    /// Answers-file entries that disagreed with a derived answer and were not applied
    /// (no `override = true`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Header, per-question answers with their source, counts and warnings.
    pub fn to_json(&self) -> Value {
        let mut header = serde_json::Map::new();
        for (_, _, key, value) in self.header.rows() {
            header.insert(key.to_owned(), value.map_or(Value::Null, Value::String));
        }
        let (mut derived, mut manufacturer, mut overridden, mut unanswered) = (0, 0, 0, 0);
        for a in &self.answers {
            match a.source {
                AnswerSource::Derived(_) => derived += 1,
                AnswerSource::Manufacturer => manufacturer += 1,
                AnswerSource::Override { .. } => overridden += 1,
                AnswerSource::Unanswered => unanswered += 1,
            }
        }
        let questions: Vec<Value> = self
            .answers
            .iter()
            .map(|a| {
                json!({
                    "id": a.id,
                    "section": a.section,
                    "section_code": a.section_code,
                    "question": a.question,
                    "answer": a.answer.map(Answer::label),
                    "note": a.note,
                    "source": a.source.to_string(),
                })
            })
            .collect();
        json!({
            "form": FORM,
            "header": header,
            "summary": {
                "questions": self.answers.len(),
                "derived": derived,
                "manufacturer": manufacturer,
                "override": overridden,
                "unanswered": unanswered,
            },
            "questions": questions,
            "warnings": self.warnings,
        })
    }

    /// The form as an XLSX workbook: a "Header" sheet (ID, Field, Value) and a "Questions"
    /// sheet with one row per question (Section, ID, Question, Answer, Note, Source).
    /// The same form gives the same bytes.
    pub fn to_xlsx(&self) -> Result<Vec<u8>, DocsError> {
        let mut workbook = Workbook::new();
        let created = excel_date(self.header.release_date)?;
        let properties = DocProperties::new()
            .set_title(format!(
                "MDS2 {} {}",
                self.header.model, self.header.firmware_version
            ))
            .set_subject(format!(
                "Manufacturer Disclosure Statement for Medical Device Security ({FORM})"
            ))
            .set_author(self.header.manufacturer.as_str())
            .set_company(self.header.manufacturer.as_str())
            .set_keywords("MDS2, HN 1-2019, cybersecurity")
            .set_comment(format!("Document {}", self.header.document_id))
            .set_creation_datetime(&created);
        workbook.set_properties(&properties);

        let heading = Format::new()
            .set_bold()
            .set_background_color(Color::RGB(0xD9E1F2))
            .set_border(FormatBorder::Thin)
            .set_text_wrap()
            .set_align(FormatAlign::Top);
        let cell = Format::new()
            .set_text_wrap()
            .set_align(FormatAlign::Top)
            .set_border(FormatBorder::Thin);
        let missing = cell.clone().set_background_color(Color::RGB(0xFFF2CC));

        let sheet = workbook.add_worksheet();
        self.write_header_sheet(sheet, &heading, &cell)
            .map_err(xlsx_error)?;
        let sheet = workbook.add_worksheet();
        self.write_questions_sheet(sheet, &heading, &cell, &missing)
            .map_err(xlsx_error)?;
        workbook.save_to_buffer().map_err(xlsx_error)
    }

    fn write_header_sheet(
        &self,
        sheet: &mut Worksheet,
        heading: &Format,
        cell: &Format,
    ) -> Result<(), XlsxError> {
        sheet.set_name("Header")?;
        for (col, (title, width)) in [("ID", 10.0), ("Field", 40.0), ("Value", 80.0)]
            .into_iter()
            .enumerate()
        {
            let col = col_index(col)?;
            sheet.write_string_with_format(0, col, title, heading)?;
            sheet.set_column_width(col, width)?;
        }
        for (i, (id, label, _, value)) in self.header.rows().into_iter().enumerate() {
            let row = row_index(i + 1)?;
            write_opt(sheet, row, 0, (!id.is_empty()).then_some(id), cell)?;
            sheet.write_string_with_format(row, 1, label, cell)?;
            write_opt(sheet, row, 2, value.as_deref(), cell)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        Ok(())
    }

    fn write_questions_sheet(
        &self,
        sheet: &mut Worksheet,
        heading: &Format,
        cell: &Format,
        missing: &Format,
    ) -> Result<(), XlsxError> {
        sheet.set_name("Questions")?;
        let columns = [
            ("Section", 26.0),
            ("ID", 11.0),
            ("Question", 70.0),
            ("Answer", 11.0),
            ("Note", 50.0),
            ("Source", 50.0),
        ];
        for (col, (title, width)) in columns.into_iter().enumerate() {
            let col = col_index(col)?;
            sheet.write_string_with_format(0, col, title, heading)?;
            sheet.set_column_width(col, width)?;
        }
        for (i, a) in self.answers.iter().enumerate() {
            let row = row_index(i + 1)?;
            sheet.write_string_with_format(row, 0, a.section, cell)?;
            sheet.write_string_with_format(row, 1, a.id, cell)?;
            sheet.write_string_with_format(row, 2, a.question, cell)?;
            match a.answer {
                Some(answer) => sheet.write_string_with_format(row, 3, answer.label(), cell)?,
                None => sheet.write_blank(row, 3, missing)?,
            };
            write_opt(sheet, row, 4, a.note.as_deref(), cell)?;
            sheet.write_string_with_format(row, 5, a.source.to_string(), cell)?;
        }
        let last_row = row_index(self.answers.len())?;
        let last_col = col_index(columns.len() - 1)?;
        sheet.set_freeze_panes(1, 0)?;
        sheet.autofilter(0, 0, last_row, last_col)?;
        sheet.set_repeat_rows(0, 0)?;
        sheet.set_landscape();
        sheet.set_print_fit_to_pages(1, 0);
        Ok(())
    }
}

fn write_opt(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    value: Option<&str>,
    format: &Format,
) -> Result<(), XlsxError> {
    match value {
        Some(v) => sheet.write_string_with_format(row, col, v, format)?,
        None => sheet.write_blank(row, col, format)?,
    };
    Ok(())
}

fn row_index(i: usize) -> Result<u32, XlsxError> {
    u32::try_from(i).map_err(|_| XlsxError::RowColumnLimitError)
}

fn col_index(i: usize) -> Result<u16, XlsxError> {
    u16::try_from(i).map_err(|_| XlsxError::RowColumnLimitError)
}

fn xlsx_error(e: XlsxError) -> DocsError {
    DocsError::Render {
        format: "XLSX",
        message: e.to_string(),
    }
}

fn excel_date(date: Date) -> Result<ExcelDateTime, DocsError> {
    let year = u16::try_from(date.year()).map_err(|_| DocsError::Render {
        format: "XLSX",
        message: format!("document date {date} is outside the years Excel can hold"),
    })?;
    ExcelDateTime::from_ymd(year, u8::from(date.month()), date.day())
        .and_then(|d| d.and_hms(0, 0, 0))
        .map_err(xlsx_error)
}

// ---------------------------------------------------------------------------------------------
// Derivations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Derived {
    answer: Answer,
    note: Option<String>,
    /// Store and reason, without the "derived: " prefix.
    source: String,
}

#[derive(Default)]
struct Derivations(BTreeMap<&'static str, Derived>);

impl Derivations {
    fn put(&mut self, id: &'static str, answer: Answer, note: Option<String>, source: String) {
        self.0.insert(
            id,
            Derived {
                answer,
                note,
                source,
            },
        );
    }
}

fn link_list(links: &[&Mds2Link]) -> String {
    links
        .iter()
        .map(|l| l.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn link_list_with(links: &[&Mds2Link], detail: impl Fn(&Mds2Link) -> String) -> String {
    links
        .iter()
        .map(|l| format!("{} ({})", l.name, detail(l)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// All / none / some of `total` have a property: Yes / No / See Notes.
fn proportion(count: usize, total: usize) -> Answer {
    if count == total {
        Answer::Yes
    } else if count == 0 {
        Answer::No
    } else {
        Answer::SeeNote
    }
}

/// Every answer the facts settle. Keys are catalogue ids (checked by a test).
fn derive(f: &Mds2Facts) -> BTreeMap<&'static str, Derived> {
    let mut d = Derivations::default();
    derive_links(f, &mut d);
    derive_identity(f, &mut d);
    derive_updates(f, &mut d);
    derive_sbom(f, &mut d);
    derive_lifecycle(f, &mut d);
    d.0
}

fn derive_links(f: &Mds2Facts, d: &mut Derivations) {
    let all: Vec<&Mds2Link> = f.links.iter().collect();
    let n = all.len();
    if n == 0 {
        return;
    }
    let links = plural(n, "link", "links");
    d.put(
        "CONN-1",
        Answer::Yes,
        None,
        format!("trust inventory — {links}"),
    );
    d.put(
        "CONN-2",
        Answer::Yes,
        Some(format!(
            "Protocols per link: {}",
            link_list_with(&all, |l| l.protocol.clone())
        )),
        format!("trust inventory — protocol recorded for every link ({links})"),
    );
    d.put(
        "DOC-10",
        Answer::Yes,
        Some(
            "Data-flow diagram of the trust relationships in the cybersecurity documentation."
                .into(),
        ),
        format!("trust inventory — {links}"),
    );

    let internal: Vec<&Mds2Link> = all.iter().copied().filter(|l| !l.external).collect();
    let external: Vec<&Mds2Link> = all.iter().copied().filter(|l| l.external).collect();
    if internal.is_empty() {
        d.put(
            "CONN-3",
            Answer::No,
            None,
            format!("trust inventory — all links leave the customer environment ({n} of {n})"),
        );
    } else {
        d.put(
            "CONN-3",
            Answer::Yes,
            None,
            format!(
                "trust inventory — {} of {links} within the customer environment ({})",
                internal.len(),
                link_list(&internal)
            ),
        );
    }
    if external.is_empty() {
        d.put(
            "CONN-4",
            Answer::No,
            None,
            format!("trust inventory — no link leaves the customer environment (0 of {n})"),
        );
    } else {
        d.put(
            "CONN-4",
            Answer::Yes,
            None,
            format!(
                "trust inventory — {} of {links} external to the customer environment ({})",
                external.len(),
                link_list(&external)
            ),
        );
    }

    // NAUT-1: both ends known to each other.
    let not_mutual: Vec<&Mds2Link> = all
        .iter()
        .copied()
        .filter(|l| l.authentication != LinkAuthentication::Mutual)
        .collect();
    let mutual = n - not_mutual.len();
    let answer = proportion(mutual, n);
    let (note, source) = if not_mutual.is_empty() {
        (
            None,
            format!("trust inventory — all links mutually authenticated ({n} of {n})"),
        )
    } else {
        let detail = link_list_with(&not_mutual, |l| l.authentication.label().into());
        (
            Some(format!(
                "Mutual node authentication on {mutual} of {links}; not on: {detail}."
            )),
            format!(
                "trust inventory — {mutual} of {links} mutually authenticated; not: {}",
                link_list(&not_mutual)
            ),
        )
    };
    d.put("NAUT-1", answer, note, source);

    // TXCF-4: connections limited to authenticated systems.
    let unauthenticated: Vec<&Mds2Link> = all
        .iter()
        .copied()
        .filter(|l| l.authentication == LinkAuthentication::None)
        .collect();
    if unauthenticated.is_empty() {
        d.put(
            "TXCF-4",
            Answer::Yes,
            None,
            format!(
                "trust inventory — all links authenticated ({n} of {n}: {mutual} mutual, {} one-way)",
                n - mutual
            ),
        );
    } else {
        d.put(
            "TXCF-4",
            Answer::No,
            Some(format!(
                "Unauthenticated: {}.",
                link_list_with(&unauthenticated, |l| l.protocol.clone())
            )),
            format!(
                "trust inventory — {} of {links} unauthenticated ({})",
                unauthenticated.len(),
                link_list(&unauthenticated)
            ),
        );
    }

    // TXIG-1: integrity in transit (encrypted transports are integrity-protected).
    let unencrypted: Vec<&Mds2Link> = all.iter().copied().filter(|l| !l.encrypted).collect();
    let encrypted = n - unencrypted.len();
    if unencrypted.is_empty() {
        d.put(
            "TXIG-1",
            Answer::Yes,
            Some("All links use integrity-protected, encrypted transport.".into()),
            format!("trust inventory — all links encrypted ({n} of {n})"),
        );
    } else {
        d.put(
            "TXIG-1",
            proportion(encrypted, n),
            Some(format!(
                "Integrity-protected (encrypted) transport on {encrypted} of {links}; not on: {}.",
                link_list_with(&unencrypted, |l| l.protocol.clone())
            )),
            format!(
                "trust inventory — {} of {links} unencrypted ({})",
                unencrypted.len(),
                link_list(&unencrypted)
            ),
        );
    }

    // PHI-carrying links.
    let phi: Vec<&Mds2Link> = all.iter().copied().filter(|l| l.carries_phi).collect();
    if !phi.is_empty() {
        let k = phi.len();
        let phi_links = plural(k, "link carries", "links carry");
        let source = format!("trust inventory — {phi_links} PHI ({})", link_list(&phi));
        for id in ["MPII-1", "MPII-2.6", "MPII-3"] {
            d.put(id, Answer::Yes, None, source.clone());
        }
        let phi_unencrypted: Vec<&Mds2Link> =
            phi.iter().copied().filter(|l| !l.encrypted).collect();
        let phi_word = plural(k, "PHI link", "PHI links");
        if phi_unencrypted.is_empty() {
            d.put(
                "TXCF-2",
                Answer::Yes,
                None,
                format!("trust inventory — all PHI links encrypted ({k} of {k})"),
            );
        } else {
            d.put(
                "TXCF-2",
                Answer::No,
                Some(format!(
                    "Not encrypted: {}.",
                    link_list_with(&phi_unencrypted, |l| l.protocol.clone())
                )),
                format!(
                    "trust inventory — {} of {phi_word} unencrypted ({})",
                    phi_unencrypted.len(),
                    link_list(&phi_unencrypted)
                ),
            );
        }
        let phi_external: Vec<&Mds2Link> = phi.iter().copied().filter(|l| l.external).collect();
        if phi_external.is_empty() {
            d.put(
                "MPII-3.7",
                Answer::No,
                None,
                format!("trust inventory — no PHI link leaves the customer environment (0 of {k})"),
            );
        } else {
            d.put(
                "MPII-3.7",
                Answer::Yes,
                None,
                format!(
                    "trust inventory — {} of {phi_word} external ({})",
                    phi_external.len(),
                    link_list(&phi_external)
                ),
            );
        }
    }

    // Remote service.
    let remote: Vec<&Mds2Link> = all.iter().copied().filter(|l| l.remote_service).collect();
    if remote.is_empty() {
        let source = format!("trust inventory — no remote-service link among the {links}");
        d.put("RMOT-1", Answer::No, None, source.clone());
        d.put("RMOT-1.3", Answer::NotApplicable, None, source);
    } else {
        d.put(
            "RMOT-1",
            Answer::Yes,
            None,
            format!(
                "trust inventory — remote service over {}",
                link_list(&remote)
            ),
        );
        let remote_phi: Vec<&Mds2Link> = remote.iter().copied().filter(|l| l.carries_phi).collect();
        if remote_phi.is_empty() {
            d.put(
                "RMOT-1.3",
                Answer::No,
                None,
                format!(
                    "trust inventory — no remote-service link carries PHI ({})",
                    link_list(&remote)
                ),
            );
        } else {
            d.put(
                "RMOT-1.3",
                Answer::Yes,
                None,
                format!(
                    "trust inventory — remote-service link carries PHI ({})",
                    link_list(&remote_phi)
                ),
            );
        }
    }
}

fn derive_identity(f: &Mds2Facts, d: &mut Derivations) {
    let Some(id) = &f.device_identity else {
        return;
    };
    let keys = if id.key_types.is_empty() {
        String::new()
    } else {
        format!(" ({})", id.key_types.join(", "))
    };
    let mut revocation = Vec::new();
    if !id.crl_urls.is_empty() {
        revocation.push(format!("CRL {}", id.crl_urls.join(", ")));
    }
    if !id.ocsp_urls.is_empty() {
        revocation.push(format!("OCSP {}", id.ocsp_urls.join(", ")));
    }
    let revocation_text = if revocation.is_empty() {
        "no revocation service published".to_owned()
    } else {
        format!("revocation by {}", revocation.join("; "))
    };
    let mtls = if id.mutual_tls {
        "used in mutual TLS"
    } else {
        "not used in mutual TLS"
    };
    d.put(
        "NAUT-3",
        Answer::Yes,
        Some(format!(
            "Per-device X.509 certificates{keys} {mtls}; {revocation_text}."
        )),
        format!(
            "device PKI — X.509 device certificates{keys}, {}{}",
            if id.mutual_tls {
                "mutual TLS"
            } else {
                "no mutual TLS"
            },
            if revocation.is_empty() {
                String::new()
            } else {
                format!(
                    ", {}",
                    [
                        (!id.crl_urls.is_empty()).then_some("CRL"),
                        (!id.ocsp_urls.is_empty()).then_some("OCSP"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" + ")
                )
            }
        ),
    );
    if id.mutual_tls {
        d.put(
            "CONN-7",
            Answer::Yes,
            None,
            "device PKI — devices authenticate with their certificate in mutual TLS".into(),
        );
        if f.event_logging {
            d.put(
                "AUDT-5.4",
                Answer::Yes,
                Some("Security events are sent to the manufacturer over mutual TLS.".into()),
                "post-market surveillance — events reported over mutual TLS".into(),
            );
        }
    }
}

fn derive_updates(f: &Mds2Facts, d: &mut Derivations) {
    let Some(u) = f.updates else {
        return;
    };
    if !u.signed_tuf {
        return;
    }
    let (rollback, rollback_note) = if u.rollback_protection {
        (
            "with rollback protection",
            "older versions are refused (rollback protection)",
        )
    } else {
        (
            "without rollback protection",
            "rollback to older versions is not prevented",
        )
    };
    let source = format!("update repository — TUF-signed firmware updates {rollback}");
    d.put("SAHD-3", Answer::Yes, None, source.clone());
    d.put(
        "SAHD-3.2",
        Answer::Yes,
        Some(format!(
            "Updates are installed only when their TUF metadata carries valid manufacturer signatures and has not expired; {rollback_note}."
        )),
        source.clone(),
    );
    d.put(
        "CSUP-3.3",
        Answer::Yes,
        None,
        "update repository — firmware updates are delivered over the network from a TUF repository"
            .into(),
    );
    d.put(
        "RMOT-3",
        Answer::Yes,
        Some("Software updates from the manufacturer's update repository.".into()),
        source,
    );
}

fn derive_sbom(f: &Mds2Facts, d: &mut Derivations) {
    let Some(s) = &f.sbom else {
        return;
    };
    let n = s.component_count;
    if n == 0 {
        return;
    }
    let components = plural(n, "component", "components");
    let formats = if s.formats.is_empty() {
        String::new()
    } else {
        format!(" ({})", s.formats.join(", "))
    };
    d.put(
        "CSUP-1",
        Answer::Yes,
        None,
        format!(
            "SBOM — firmware {} contains {components}",
            f.firmware_version
        ),
    );
    d.put(
        "SBOM-1",
        Answer::Yes,
        (!s.formats.is_empty()).then(|| format!("Formats: {}.", s.formats.join(", "))),
        format!("SBOM — {components}{formats}"),
    );
    let standard: Vec<&String> = s
        .formats
        .iter()
        .filter(|fmt| {
            let l = fmt.to_ascii_lowercase();
            l.contains("cyclonedx") || l.contains("spdx") || l.contains("swid")
        })
        .collect();
    if !standard.is_empty() {
        d.put(
            "SBOM-2",
            Answer::Yes,
            None,
            format!(
                "SBOM — standard format {}",
                standard
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    d.put(
        "SBOM-2.1",
        Answer::Yes,
        None,
        format!("SBOM — {components} identified"),
    );
    for (id, count, what) in [
        ("SBOM-2.2", s.components_with_supplier, "supplier"),
        ("SBOM-2.3", s.components_with_version, "version"),
    ] {
        let count = count.min(n);
        let answer = proportion(count, n);
        let note = (answer == Answer::SeeNote)
            .then(|| format!("{count} of {components} name their {what}."));
        d.put(
            id,
            answer,
            note,
            format!("SBOM — {count} of {components} with {what}"),
        );
    }
}

fn derive_lifecycle(f: &Mds2Facts, d: &mut Derivations) {
    d.put(
        "CSUP-3",
        Answer::Yes,
        None,
        format!("firmware record — firmware {}", f.firmware_version),
    );
    if let Some(v) = f.vulnerabilities {
        d.put(
            "CSUP-11",
            Answer::Yes,
            Some(
                "The SBOM components of each firmware version are matched continuously against vulnerability advisories, including CISA's Known Exploited Vulnerabilities catalogue."
                    .into(),
            ),
            format!(
                "vulnerability monitoring — {} ({} in CISA KEV) for firmware {}",
                plural(v.open_findings, "open finding", "open findings"),
                v.kev_findings,
                f.firmware_version
            ),
        );
    }
    if let Some(eos) = f.end_of_support {
        let verb = if eos < f.document_date {
            "ended"
        } else {
            "ends"
        };
        d.put(
            "RDMP-3",
            Answer::Yes,
            Some(format!(
                "Security support for firmware {} {verb} on {eos}.",
                f.firmware_version
            )),
            format!("firmware record — end of support {eos}"),
        );
    }
    if let Some(cvd) = &f.cvd
        && (!cvd.contacts.is_empty() || cvd.intake_url.is_some())
    {
        let mut parts = Vec::new();
        if !cvd.contacts.is_empty() {
            parts.push(format!("Contact: {}", cvd.contacts.join(", ")));
        }
        if let Some(url) = &cvd.intake_url {
            parts.push(format!("report intake: {url}"));
        }
        if let Some(url) = &cvd.policy_url {
            parts.push(format!("policy: {url}"));
        }
        let source = match (cvd.contacts.first(), &cvd.intake_url) {
            (Some(c), _) => format!("CVD — security.txt contact {c}"),
            (None, Some(url)) => format!("CVD — report intake {url}"),
            (None, None) => "CVD".to_owned(),
        };
        d.put(
            "DOC-8",
            Answer::Yes,
            Some(format!("{}.", parts.join("; "))),
            source,
        );
    }
    if f.event_logging {
        let source =
            "post-market surveillance — the device reports security events to the manufacturer"
                .to_owned();
        d.put("AUDT-1", Answer::Yes, None, source.clone());
        d.put(
            "AUDT-4.1",
            Answer::Yes,
            None,
            "post-market surveillance — every reported security event carries its date/time".into(),
        );
        d.put("AUDT-5", Answer::Yes, None, source.clone());
        d.put(
            "AUDT-5.3",
            Answer::Yes,
            Some(
                "Security events are sent to the manufacturer's post-market surveillance service."
                    .into(),
            ),
            source,
        );
    }
    if let Some(statement) = &f.backup_restore
        && !statement.trim().is_empty()
    {
        d.put(
            "DTBK-5",
            Answer::Yes,
            Some(statement.trim().to_owned()),
            "labelling — backup/restore statement".into(),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Answers file
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswersFile {
    #[serde(default)]
    header: Option<RawHeader>,
    #[serde(default)]
    answers: BTreeMap<Spanned<String>, Spanned<RawEntry>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    #[serde(default)]
    device_description: Option<String>,
    #[serde(default)]
    manufacturer_contact: Option<String>,
    #[serde(default)]
    intended_use: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    answer: Spanned<String>,
    #[serde(default)]
    note: Option<Spanned<String>>,
    #[serde(default, rename = "override")]
    override_derived: Option<Spanned<bool>>,
}

struct FileEntry {
    answer: Answer,
    note: Option<String>,
    override_derived: bool,
}

#[derive(Default)]
struct AnswersFile {
    header: RawHeader,
    answers: BTreeMap<String, FileEntry>,
}

/// 1-based line and column of a byte offset (clamped, never panics).
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut cut = offset.min(src.len());
    while !src.is_char_boundary(cut) {
        cut -= 1;
    }
    let before = &src[..cut];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn invalid_at(src: &str, span: Range<usize>, field: &str, message: impl fmt::Display) -> DocsError {
    let (line, _) = line_col(src, span.start);
    DocsError::Invalid {
        what: ANSWERS_FILE,
        message: format!("line {line}, field `{field}`: {message}"),
    }
}

fn parse_answers(src: &str) -> Result<AnswersFile, DocsError> {
    let raw: RawAnswersFile = toml::from_str(src).map_err(|e| {
        let message = e.message().trim_end();
        let message = match e.span() {
            Some(span) => {
                let (line, col) = line_col(src, span.start);
                let text = src.lines().nth(line - 1).unwrap_or("").trim();
                format!("line {line}, column {col} (`{text}`): {message}")
            }
            None => message.to_owned(),
        };
        DocsError::Invalid {
            what: ANSWERS_FILE,
            message,
        }
    })?;
    let mut answers = BTreeMap::new();
    for (key, entry) in raw.answers {
        let id = key.get_ref().as_str();
        let field = format!("answers.\"{id}\"");
        if find_question(id).is_none() {
            return Err(invalid_at(
                src,
                key.span(),
                &field,
                format!("unknown MDS2 question id {id:?}"),
            ));
        }
        let entry = entry.into_inner();
        let answer = Answer::from_token(entry.answer.get_ref()).ok_or_else(|| {
            invalid_at(
                src,
                entry.answer.span(),
                &format!("{field}.answer"),
                format!(
                    "unknown answer {:?} (expected \"yes\", \"no\", \"n/a\" or \"see-note\")",
                    entry.answer.get_ref()
                ),
            )
        })?;
        let note = entry
            .note
            .as_ref()
            .map(|n| n.get_ref().trim().to_owned())
            .filter(|n| !n.is_empty());
        if answer == Answer::SeeNote && note.is_none() {
            return Err(invalid_at(
                src,
                entry.answer.span(),
                &format!("{field}.note"),
                "answer \"see-note\" needs a non-empty note",
            ));
        }
        let override_derived = entry
            .override_derived
            .as_ref()
            .is_some_and(|o| *o.get_ref());
        if override_derived && note.is_none() {
            let span = entry
                .override_derived
                .as_ref()
                .map_or_else(|| key.span(), |o| o.span());
            return Err(invalid_at(
                src,
                span,
                &format!("{field}.note"),
                "override = true needs a non-empty note saying why the derived answer is replaced",
            ));
        }
        answers.insert(
            id.to_owned(),
            FileEntry {
                answer,
                note,
                override_derived,
            },
        );
    }
    Ok(AnswersFile {
        header: raw.header.unwrap_or_default(),
        answers,
    })
}

// ---------------------------------------------------------------------------------------------
// Build
// ---------------------------------------------------------------------------------------------

fn non_empty(value: Option<&String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
        (a, b) => a.or(b),
    }
}

/// Builds the form: derived answers from `facts`, the rest from the manufacturer answers file
/// (`answers_toml`, see the module documentation for its format and precedence rules).
pub fn build(facts: &Mds2Facts, answers_toml: Option<&str>) -> Result<Mds2, DocsError> {
    for (field, value) in [
        ("manufacturer", &facts.manufacturer),
        ("model", &facts.model),
        ("firmware_version", &facts.firmware_version),
        ("document_id", &facts.document_id),
    ] {
        if value.trim().is_empty() {
            return Err(DocsError::Invalid {
                what: FACTS,
                message: format!("`{field}` is empty"),
            });
        }
    }
    let mut file = match answers_toml {
        Some(src) => parse_answers(src)?,
        None => AnswersFile::default(),
    };
    let mut derived = derive(facts);
    let mut warnings = Vec::new();
    let mut answers = Vec::new();
    for q in catalogue() {
        let d = derived.remove(q.id);
        let f = file.answers.remove(q.id);
        let (answer, note, source) = match (d, f) {
            (Some(d), Some(f)) if f.override_derived => (
                Some(f.answer),
                f.note,
                AnswerSource::Override {
                    derived: d.answer,
                    derived_from: d.source,
                },
            ),
            (Some(d), Some(f)) => {
                let note = if f.answer == d.answer {
                    join_notes(d.note, f.note)
                } else {
                    warnings.push(format!(
                        "{}: the answers file says {} but the derived answer {} stands (derived: {}); set override = true with a note to replace it",
                        q.id, f.answer, d.answer, d.source
                    ));
                    d.note
                };
                (Some(d.answer), note, AnswerSource::Derived(d.source))
            }
            (Some(d), None) => (Some(d.answer), d.note, AnswerSource::Derived(d.source)),
            (None, Some(f)) => (Some(f.answer), f.note, AnswerSource::Manufacturer),
            (None, None) => (None, None, AnswerSource::Unanswered),
        };
        answers.push(Mds2Answer {
            id: q.id,
            section_code: q.section_code,
            section: q.section,
            question: q.question,
            answer,
            note,
            source,
        });
    }
    let header = Mds2Header {
        manufacturer: facts.manufacturer.trim().to_owned(),
        device_description: non_empty(facts.device_description.as_ref())
            .or_else(|| non_empty(file.header.device_description.as_ref())),
        model: facts.model.trim().to_owned(),
        firmware_version: facts.firmware_version.trim().to_owned(),
        document_id: facts.document_id.trim().to_owned(),
        manufacturer_contact: non_empty(facts.manufacturer_contact.as_ref())
            .or_else(|| non_empty(file.header.manufacturer_contact.as_ref())),
        intended_use: non_empty(facts.intended_use.as_ref())
            .or_else(|| non_empty(file.header.intended_use.as_ref())),
        release_date: facts.document_date,
    };
    Ok(Mds2 {
        header,
        answers,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use time::macros::date;

    use super::*;

    fn link(name: &str, encrypted: bool, auth: LinkAuthentication, phi: bool) -> Mds2Link {
        Mds2Link {
            name: name.into(),
            protocol: if encrypted { "HTTPS" } else { "HL7 v2 MLLP" }.into(),
            encrypted,
            authentication: auth,
            carries_phi: phi,
            external: false,
            remote_service: false,
        }
    }

    fn base() -> Mds2Facts {
        let mut f = Mds2Facts::new(
            "Acme Medical",
            "Pump X",
            "2.4.1",
            "MDS2-PX-241",
            date!(2025 - 03 - 14),
        );
        f.links = vec![
            link("backend", true, LinkAuthentication::Mutual, true),
            link("tablet", true, LinkAuthentication::Mutual, false),
        ];
        f
    }

    /// Facts that trigger every derivation.
    fn everything() -> Mds2Facts {
        let mut f = base();
        f.links.push(Mds2Link {
            external: true,
            remote_service: true,
            ..link("cloud", true, LinkAuthentication::OneWay, true)
        });
        f.device_identity = Some(DeviceIdentity {
            mutual_tls: true,
            key_types: vec!["ECDSA P-256".into()],
            crl_urls: vec!["https://pki.example/device.crl".into()],
            ocsp_urls: vec!["https://ocsp.example".into()],
        });
        f.updates = Some(UpdateFacts {
            signed_tuf: true,
            rollback_protection: true,
        });
        f.sbom = Some(SbomFacts {
            component_count: 10,
            formats: vec!["CycloneDX 1.6".into()],
            components_with_supplier: 9,
            components_with_version: 10,
        });
        f.vulnerabilities = Some(VulnerabilityFacts {
            open_findings: 3,
            kev_findings: 1,
        });
        f.end_of_support = Some(date!(2031 - 12 - 31));
        f.cvd = Some(CvdFacts {
            contacts: vec!["mailto:security@acme.example".into()],
            intake_url: Some("https://acme.example/cvd".into()),
            policy_url: None,
        });
        f.event_logging = true;
        f.backup_restore = Some("Configuration can be exported and restored by service.".into());
        f
    }

    fn get<'a>(m: &'a Mds2, id: &str) -> &'a Mds2Answer {
        m.answer(id).unwrap_or_else(|| panic!("{id} missing"))
    }

    fn invalid_message(r: Result<Mds2, DocsError>) -> String {
        match r {
            Err(DocsError::Invalid { what, message }) => {
                assert_eq!(what, "MDS2 answers file");
                message
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn catalogue_ids_are_unique_prefixed_and_cover_every_section() {
        let mut seen = BTreeSet::new();
        for q in catalogue() {
            assert!(seen.insert(q.id), "duplicate id {}", q.id);
            assert!(
                q.id.starts_with(&format!("{}-", q.section_code)),
                "{} not in section {}",
                q.id,
                q.section_code
            );
            assert!(
                q.question.ends_with('?') || q.question.ends_with(':') || q.question.ends_with('.'),
                "{}",
                q.id
            );
        }
        assert!(seen.len() >= 80, "only {} questions", seen.len());
        let sections: BTreeSet<_> = catalogue().map(|q| q.section_code).collect();
        for code in [
            "DOC", "MPII", "ALOF", "AUDT", "AUTH", "CNFS", "CSUP", "DIDT", "DTBK", "EMRG", "IGAU",
            "MLDP", "NAUT", "CONN", "PAUT", "PLOK", "RDMP", "SBOM", "SAHD", "SGUD", "STCF", "TXCF",
            "TXIG", "RMOT",
        ] {
            assert!(sections.contains(code), "section {code} missing");
        }
    }

    #[test]
    fn every_derivation_names_a_catalogue_question() {
        let derived = derive(&everything());
        assert!(derived.len() >= 30, "only {} derivations", derived.len());
        for (id, d) in &derived {
            assert!(
                find_question(id).is_some(),
                "derived {id} is not in the catalogue"
            );
            assert!(!d.source.is_empty());
        }
        let m = build(&everything(), None).unwrap();
        let from_data = m
            .answers()
            .iter()
            .filter(|a| matches!(a.source, AnswerSource::Derived(_)))
            .count();
        assert_eq!(from_data, derived.len());
    }

    #[test]
    fn one_unencrypted_phi_link_makes_txcf_2_no_and_names_it() {
        let mut f = base();
        let m = build(&f, None).unwrap();
        assert_eq!(get(&m, "TXCF-2").answer, Some(Answer::Yes));
        assert_eq!(get(&m, "TXIG-1").answer, Some(Answer::Yes));

        f.links
            .push(link("ehr-hl7", false, LinkAuthentication::Mutual, true));
        let m = build(&f, None).unwrap();
        let txcf = get(&m, "TXCF-2");
        assert_eq!(txcf.answer, Some(Answer::No));
        assert_eq!(
            txcf.source.to_string(),
            "derived: trust inventory — 1 of 2 PHI links unencrypted (ehr-hl7)"
        );
        assert_eq!(
            txcf.note.as_deref(),
            Some("Not encrypted: ehr-hl7 (HL7 v2 MLLP).")
        );
        let txig = get(&m, "TXIG-1");
        assert_eq!(txig.answer, Some(Answer::SeeNote));
        assert!(txig.source.to_string().contains("ehr-hl7"));
    }

    #[test]
    fn an_unencrypted_link_without_phi_leaves_txcf_2_alone() {
        let mut f = base();
        f.links
            .push(link("syslog", false, LinkAuthentication::Mutual, false));
        let m = build(&f, None).unwrap();
        assert_eq!(get(&m, "TXCF-2").answer, Some(Answer::Yes));
        assert_eq!(get(&m, "TXIG-1").answer, Some(Answer::SeeNote));
    }

    #[test]
    fn no_phi_links_leave_txcf_2_unanswered() {
        let mut f = base();
        for l in &mut f.links {
            l.carries_phi = false;
        }
        let m = build(&f, None).unwrap();
        assert_eq!(get(&m, "TXCF-2").source, AnswerSource::Unanswered);
        assert_eq!(get(&m, "MPII-1").source, AnswerSource::Unanswered);
    }

    #[test]
    fn all_mutual_tls_makes_naut_yes_and_partial_see_notes() {
        let m = build(&base(), None).unwrap();
        let naut = get(&m, "NAUT-1");
        assert_eq!(naut.answer, Some(Answer::Yes));
        assert_eq!(
            naut.source.to_string(),
            "derived: trust inventory — all links mutually authenticated (2 of 2)"
        );

        let mut f = base();
        f.links
            .push(link("web", true, LinkAuthentication::OneWay, false));
        let m = build(&f, None).unwrap();
        let naut = get(&m, "NAUT-1");
        assert_eq!(naut.answer, Some(Answer::SeeNote));
        assert!(
            naut.note
                .as_deref()
                .unwrap_or("")
                .contains("web (one-way authentication)")
        );
        assert_eq!(get(&m, "TXCF-4").answer, Some(Answer::Yes));

        f.links = vec![link("open", true, LinkAuthentication::None, false)];
        let m = build(&f, None).unwrap();
        assert_eq!(get(&m, "NAUT-1").answer, Some(Answer::No));
        assert_eq!(get(&m, "TXCF-4").answer, Some(Answer::No));
    }

    #[test]
    fn device_pki_updates_sbom_and_lifecycle_derivations() {
        let m = build(&everything(), None).unwrap();
        let naut3 = get(&m, "NAUT-3");
        assert_eq!(naut3.answer, Some(Answer::Yes));
        let note = naut3.note.as_deref().unwrap_or("");
        assert!(
            note.contains("ECDSA P-256") && note.contains("https://pki.example/device.crl"),
            "{note}"
        );
        assert_eq!(get(&m, "CONN-7").answer, Some(Answer::Yes));
        assert_eq!(get(&m, "SAHD-3.2").answer, Some(Answer::Yes));
        assert!(
            get(&m, "SAHD-3.2")
                .source
                .to_string()
                .contains("rollback protection")
        );
        assert_eq!(get(&m, "SBOM-1").answer, Some(Answer::Yes));
        assert_eq!(get(&m, "SBOM-2.2").answer, Some(Answer::SeeNote));
        assert_eq!(get(&m, "SBOM-2.3").answer, Some(Answer::Yes));
        assert!(
            get(&m, "CSUP-11")
                .source
                .to_string()
                .contains("3 open findings (1 in CISA KEV)")
        );
        assert_eq!(
            get(&m, "RDMP-3").note.as_deref(),
            Some("Security support for firmware 2.4.1 ends on 2031-12-31.")
        );
        assert_eq!(get(&m, "DOC-8").answer, Some(Answer::Yes));
        assert_eq!(get(&m, "RMOT-1").answer, Some(Answer::Yes));
        assert_eq!(get(&m, "RMOT-1.3").answer, Some(Answer::Yes));
        assert_eq!(get(&m, "CONN-4").answer, Some(Answer::Yes));
        assert_eq!(get(&m, "MPII-3.7").answer, Some(Answer::Yes));
        assert_eq!(get(&m, "DTBK-5").answer, Some(Answer::Yes));
        assert_eq!(get(&m, "AUDT-5.4").answer, Some(Answer::Yes));
    }

    #[test]
    fn missing_facts_leave_questions_to_the_manufacturer() {
        let f = Mds2Facts::new("Acme", "Pump", "1.0", "D-1", date!(2025 - 01 - 01));
        let m = build(&f, None).unwrap();
        for id in [
            "SBOM-1", "NAUT-1", "NAUT-3", "DOC-8", "CSUP-11", "RMOT-1", "TXCF-2",
        ] {
            assert_eq!(get(&m, id).source, AnswerSource::Unanswered, "{id}");
        }
        // Only the firmware record is known.
        let derived: Vec<_> = m
            .answers()
            .iter()
            .filter(|a| a.source != AnswerSource::Unanswered)
            .map(|a| a.id)
            .collect();
        assert_eq!(derived, ["CSUP-3"]);
        assert_eq!(m.unanswered().len(), catalogue().count() - 1);
    }

    #[test]
    fn answers_file_fills_questions_and_header() {
        let toml = r#"
[header]
device_description = "Infusion pump"
intended_use = "Sends infusion records to the EHR"

[answers."ALOF-1"]
answer = "yes"
note = "1 to 30 minutes"

[answers."EMRG-1"]
answer = "n/a"

[answers."DIDT-1"]
answer = "see-note"
note = "Export is pseudonymised."
"#;
        let m = build(&base(), Some(toml)).unwrap();
        let alof = get(&m, "ALOF-1");
        assert_eq!(alof.answer, Some(Answer::Yes));
        assert_eq!(alof.note.as_deref(), Some("1 to 30 minutes"));
        assert_eq!(alof.source.to_string(), "manufacturer answers file");
        assert_eq!(get(&m, "EMRG-1").answer, Some(Answer::NotApplicable));
        assert_eq!(get(&m, "DIDT-1").answer, Some(Answer::SeeNote));
        assert_eq!(
            m.header().device_description.as_deref(),
            Some("Infusion pump")
        );
        assert_eq!(m.header().manufacturer_contact, None);
        assert!(m.unanswered().iter().all(|a| a.id != "ALOF-1"));
        assert!(m.unanswered().iter().any(|a| a.id == "ALOF-2"));
        assert!(
            m.unanswered()
                .iter()
                .all(|a| a.source.to_string() == "unanswered")
        );
    }

    #[test]
    fn facts_header_wins_over_the_file_header() {
        let mut f = base();
        f.device_description = Some("From the facts".into());
        let m = build(
            &f,
            Some("[header]\ndevice_description = \"From the file\"\n"),
        )
        .unwrap();
        assert_eq!(
            m.header().device_description.as_deref(),
            Some("From the facts")
        );
    }

    #[test]
    fn derived_answer_wins_unless_overridden_with_a_note() {
        // Disagreeing, no override: derived stands, a warning says so.
        let toml = "[answers.\"TXCF-2\"]\nanswer = \"no\"\nnote = \"we think not\"\n";
        let m = build(&base(), Some(toml)).unwrap();
        let txcf = get(&m, "TXCF-2");
        assert_eq!(txcf.answer, Some(Answer::Yes));
        assert!(matches!(txcf.source, AnswerSource::Derived(_)));
        assert_eq!(txcf.note, None);
        assert_eq!(m.warnings().len(), 1);
        assert!(
            m.warnings()[0].starts_with("TXCF-2: the answers file says No"),
            "{:?}",
            m.warnings()
        );

        // Agreeing, no override: the manufacturer's note is added.
        let toml = "[answers.\"TXCF-2\"]\nanswer = \"yes\"\nnote = \"TLS 1.3 only\"\n";
        let m = build(&base(), Some(toml)).unwrap();
        assert_eq!(get(&m, "TXCF-2").note.as_deref(), Some("TLS 1.3 only"));
        assert!(m.warnings().is_empty());

        // Override with a note replaces it and says what it replaced.
        let toml = "[answers.\"TXCF-2\"]\nanswer = \"no\"\noverride = true\nnote = \"Service export is plain text\"\n";
        let m = build(&base(), Some(toml)).unwrap();
        let txcf = get(&m, "TXCF-2");
        assert_eq!(txcf.answer, Some(Answer::No));
        assert_eq!(txcf.note.as_deref(), Some("Service export is plain text"));
        assert_eq!(
            txcf.source.to_string(),
            "manufacturer override of derived answer Yes (derived: trust inventory — all PHI links encrypted (1 of 1))"
        );

        // override on a question nothing derives is a plain manufacturer answer.
        let toml = "[answers.\"ALOF-1\"]\nanswer = \"no\"\noverride = true\nnote = \"n\"\n";
        let m = build(&base(), Some(toml)).unwrap();
        assert_eq!(get(&m, "ALOF-1").source, AnswerSource::Manufacturer);
    }

    #[test]
    fn override_without_a_note_is_refused() {
        let toml = "[answers.\"TXCF-2\"]\nanswer = \"no\"\noverride = true\n";
        let msg = invalid_message(build(&base(), Some(toml)));
        assert!(
            msg.contains("line 3") && msg.contains("answers.\"TXCF-2\".note"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_question_id_is_refused_with_its_line() {
        let toml =
            "[answers.\"ALOF-1\"]\nanswer = \"yes\"\n\n[answers.\"TXCF-99\"]\nanswer = \"yes\"\n";
        let msg = invalid_message(build(&base(), Some(toml)));
        assert!(msg.contains("line 4") && msg.contains("TXCF-99"), "{msg}");
    }

    #[test]
    fn bad_answer_value_is_refused_with_line_and_field() {
        let toml = "[answers.\"ALOF-1\"]\nnote = \"x\"\nanswer = \"maybe\"\n";
        let msg = invalid_message(build(&base(), Some(toml)));
        assert!(
            msg.contains("line 3")
                && msg.contains("answers.\"ALOF-1\".answer")
                && msg.contains("maybe"),
            "{msg}"
        );
    }

    #[test]
    fn see_note_without_note_is_refused() {
        let toml = "[answers.\"ALOF-1\"]\nanswer = \"see-note\"\nnote = \"  \"\n";
        let msg = invalid_message(build(&base(), Some(toml)));
        assert!(msg.contains("line 2") && msg.contains("see-note"), "{msg}");
    }

    #[test]
    fn toml_syntax_and_schema_errors_name_the_line() {
        let msg = invalid_message(build(&base(), Some("[answers.\"ALOF-1\"]\nanswer = yes\n")));
        assert!(msg.contains("line 2"), "{msg}");

        let msg = invalid_message(build(
            &base(),
            Some("[answers.\"ALOF-1\"]\nanswer = \"yes\"\ncomment = \"x\"\n"),
        ));
        assert!(msg.contains("line 3") && msg.contains("comment"), "{msg}");

        let msg = invalid_message(build(&base(), Some("[answers.\"ALOF-1\"]\nanswer = 3\n")));
        assert!(msg.contains("line 2"), "{msg}");

        let msg = invalid_message(build(&base(), Some("[answerz]\n")));
        assert!(msg.contains("answerz"), "{msg}");

        let msg = invalid_message(build(&base(), Some("[answers.\"ALOF-1\"]\nnote = \"x\"\n")));
        assert!(msg.contains("answer"), "{msg}");
    }

    #[test]
    fn empty_header_facts_are_refused() {
        let mut f = base();
        f.model = " ".into();
        match build(&f, None) {
            Err(DocsError::Invalid { what, message }) => {
                assert_eq!(what, "MDS2 facts");
                assert!(message.contains("model"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_has_header_and_every_question_with_its_source() {
        let m = build(
            &everything(),
            Some("[answers.\"ALOF-1\"]\nanswer = \"yes\"\n"),
        )
        .unwrap();
        let j = m.to_json();
        assert_eq!(j["form"], "ANSI/NEMA HN 1-2019");
        assert_eq!(j["header"]["manufacturer"], "Acme Medical");
        assert_eq!(j["header"]["release_date"], "2025-03-14");
        assert_eq!(j["header"]["device_description"], Value::Null);
        let qs = j["questions"].as_array().unwrap();
        assert_eq!(qs.len(), catalogue().count());
        let alof = qs.iter().find(|q| q["id"] == "ALOF-1").unwrap();
        assert_eq!(
            alof,
            &json!({
                "id": "ALOF-1",
                "section": "Automatic logoff",
                "section_code": "ALOF",
                "question": get(&m, "ALOF-1").question,
                "answer": "Yes",
                "note": null,
                "source": "manufacturer answers file",
            })
        );
        let unanswered = qs.iter().find(|q| q["id"] == "ALOF-2").unwrap();
        assert_eq!(unanswered["answer"], Value::Null);
        assert_eq!(unanswered["source"], "unanswered");
        assert_eq!(j["summary"]["manufacturer"], 1);
        assert_eq!(
            j["summary"]["unanswered"].as_u64().unwrap() as usize,
            m.unanswered().len()
        );
    }

    #[test]
    fn xlsx_is_deterministic_and_follows_the_document_date() {
        let m = build(&everything(), None).unwrap();
        let a = m.to_xlsx().unwrap();
        let b = m.to_xlsx().unwrap();
        assert!(a.starts_with(b"PK"));
        assert_eq!(a, b);
        let mut f = everything();
        f.document_date = date!(2025 - 03 - 15);
        let c = build(&f, None).unwrap().to_xlsx().unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn facts_round_trip_through_json() {
        let f = everything();
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains("\"document_date\":\"2025-03-14\""), "{text}");
        let back: Mds2Facts = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
    }
}
