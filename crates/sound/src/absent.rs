//! Without the `sound` feature there is no device layer: opening one says
//! how to get it, and the phone goes on with WAV files.

use crate::{DeviceInfo, SoundConfig, SoundError};

pub fn list_devices() -> Result<Vec<DeviceInfo>, SoundError> {
    Err(SoundError::NotBuilt)
}

/// Never open in this build; see the `sound` feature.
pub struct Sound {
    pub input: Option<crate::port::Input>,
    pub output: Option<crate::port::Output>,
}

impl Sound {
    pub fn open(_cfg: &SoundConfig) -> (Sound, Vec<SoundError>) {
        (Sound { input: None, output: None }, vec![SoundError::NotBuilt])
    }
}
