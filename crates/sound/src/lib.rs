//! The phone's sound device: the system's capture and playback devices
//! through cpal (only with this crate's `sound` feature, which needs ALSA's
//! development files), and the pure signal work around them, which is
//! always built and tested: a streaming [`resample::Resampler`] between the
//! device's rate and the codec's, the speaker's [`drift::DriftBuffer`]
//! (the call's jitter buffer at the sample level, which keeps audio
//! flowing when the device's clock and the network's disagree), the
//! microphone's [`port::CaptureQueue`] that wakes the phone when a frame
//! is captured, and the ring and ring-back [`tone`]s.
//!
//! It knows nothing of calls, RTP or codecs: the phone moves samples
//! between a [`Sound`] and its `MediaSession`.

pub mod drift;
pub mod format;
pub mod port;
pub mod resample;
pub mod tone;

#[cfg(feature = "sound")]
mod device;
#[cfg(not(feature = "sound"))]
#[path = "absent.rs"]
mod device;

pub use device::{list_devices, Sound};
pub use drift::DriftBuffer;
pub use port::{CaptureQueue, Input, Output};
pub use resample::Resampler;
pub use tone::{Tone, ToneKind};

/// Whether this build has the device layer (the `sound` feature).
pub const AVAILABLE: bool = cfg!(feature = "sound");

/// What the user names: `None` is the system's default device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoundConfig {
    pub input: Option<String>,
    pub output: Option<String>,
}

/// One device as `peerdial phone --list-devices` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// What `--input`/`--output` take (ALSA's PCM name).
    pub id: String,
    pub description: String,
    pub input: bool,
    pub output: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SoundError {
    #[error("this peerdial was built without sound devices: build with --features sound (it needs libasound2-dev)")]
    NotBuilt,
    #[error("no {direction} device named {name:?} (peerdial phone --list-devices shows them)")]
    NoSuchDevice { direction: &'static str, name: String },
    #[error("no {0} device")]
    NoDevice(&'static str),
    #[error("the {direction} device {device:?} offers only {offered}, and peerdial takes 8, 16 or 32-bit integer or 32-bit float samples")]
    UnsupportedFormat {
        direction: &'static str,
        device: String,
        offered: String,
    },
    #[error("the {direction} device {device:?}: {reason}")]
    Device {
        direction: &'static str,
        device: String,
        reason: String,
    },
}
