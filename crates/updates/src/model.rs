//! What a release target carries in TUF `custom` metadata, shared by the repository, the
//! director and the device.

use serde::{Deserialize, Serialize};

/// The `custom` object of a release target. Devices refuse an image whose `model` or
/// `hardware_id` is not theirs, or whose `security_version` is below the one they run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseCustom {
    /// The device model (`DeviceModel`) the image is built for.
    pub model: String,
    /// Hardware revision identifier the image runs on (defaults to the model).
    pub hardware_id: String,
    /// The firmware version (`FirmwareVersion`) this image is.
    pub version: String,
    /// Monotonic anti-rollback counter: a device never installs a lower one.
    pub security_version: u64,
    /// SHA-256 of the firmware version's SBOM, when one was published with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom_sha256: Option<String>,
}

/// The TUF target name of a release: `<model>/<model>-<version>.bin`, inside the model's
/// delegated path `<model>/*`.
pub fn target_name(
    model: &medsec_core::DeviceModel,
    version: &medsec_core::FirmwareVersion,
) -> String {
    format!("{model}/{model}-{version}.bin")
}
