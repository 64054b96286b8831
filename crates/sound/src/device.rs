//! The device layer proper (feature `sound`): cpal streams on the system's
//! host (ALSA on Linux). One thread owns the streams; their callbacks mix
//! capture to mono 16-bit into the input's [`crate::DriftBuffer`] and
//! spread the output's buffer over every channel of the device. A stream
//! that fails is reported once through its port and dropped; the other one
//! goes on.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::format::{choose, Choice, Format, Offer};
use crate::port::{Input, Output, Shared};
use crate::{DeviceInfo, DriftBuffer, SoundConfig, SoundError};

/// The devices the host knows, for `--list-devices`.
pub fn list_devices() -> Result<Vec<DeviceInfo>, SoundError> {
    let host = cpal::default_host();
    let devices = host.devices().map_err(|e| SoundError::Device {
        direction: "any",
        device: "(all)".into(),
        reason: e.to_string(),
    })?;
    let mut out = vec![DeviceInfo {
        id: "default".into(),
        description: "the system's default (used without --input/--output)".into(),
        input: true,
        output: true,
    }];
    for d in devices {
        let Ok(desc) = d.description() else { continue };
        if desc.driver() == Some("default") {
            continue;
        }
        out.push(DeviceInfo {
            id: desc.driver().unwrap_or(desc.name()).to_string(),
            description: desc.name().to_string(),
            input: d.supports_input(),
            output: d.supports_output(),
        });
    }
    Ok(out)
}

/// The open devices. Dropping it stops the streams.
pub struct Sound {
    pub input: Option<Input>,
    pub output: Option<Output>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Sound {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::In => "input",
            Dir::Out => "output",
        }
    }
}

impl Sound {
    /// Opens the configured (or default) devices; each that cannot be
    /// opened is left out, with the reason.
    pub fn open(cfg: &SoundConfig) -> (Sound, Vec<SoundError>) {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let cfg = cfg.clone();
        // The streams stay on the thread that made them (not every host's
        // streams may move between threads).
        let thread = std::thread::Builder::new().name("sound".into()).spawn(move || {
            let mut streams = Vec::new();
            let mut ports = Vec::new();
            for (dir, name) in [(Dir::In, &cfg.input), (Dir::Out, &cfg.output)] {
                match open_stream(dir, name.as_deref()) {
                    Ok((stream, port)) => {
                        streams.push((stream, port.1.clone()));
                        ports.push(Ok((dir, port)));
                    }
                    Err(e) => ports.push(Err(e)),
                }
            }
            let _ = ready_tx.send(ports);
            loop {
                match stop_rx.recv_timeout(Duration::from_millis(100)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // A failed stream may spin on its error: stop it.
                        streams.retain(|(_, shared): &(cpal::Stream, Arc<Shared>)| !shared.has_failed());
                    }
                    _ => return,
                }
            }
        });
        let mut sound = Sound {
            input: None,
            output: None,
            stop: Some(stop_tx),
            thread: None,
        };
        let mut problems = Vec::new();
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                problems.push(SoundError::Device {
                    direction: "any",
                    device: "(all)".into(),
                    reason: format!("no thread for it: {e}"),
                });
                return (sound, problems);
            }
        };
        sound.thread = Some(thread);
        for r in ready_rx.recv().unwrap_or_default() {
            match r {
                Ok((Dir::In, ((name, rate), shared))) => sound.input = Some(Input { name, rate, shared }),
                Ok((Dir::Out, ((name, rate), shared))) => sound.output = Some(Output { name, rate, shared }),
                Err(e) => problems.push(e),
            }
        }
        (sound, problems)
    }
}

type Port = ((String, u32), Arc<Shared>);

fn find(host: &cpal::Host, dir: Dir, name: Option<&str>) -> Result<cpal::Device, SoundError> {
    let Some(name) = name else {
        let d = match dir {
            Dir::In => host.default_input_device(),
            Dir::Out => host.default_output_device(),
        };
        return d.ok_or(SoundError::NoDevice(dir.name()));
    };
    let devices = host.devices().map_err(|e| SoundError::Device {
        direction: dir.name(),
        device: name.into(),
        reason: e.to_string(),
    })?;
    for d in devices {
        if let Ok(desc) = d.description() {
            if desc.name() == name || desc.driver() == Some(name) {
                return Ok(d);
            }
        }
    }
    Err(SoundError::NoSuchDevice {
        direction: dir.name(),
        name: name.into(),
    })
}

fn offers(device: &cpal::Device, dir: Dir) -> Result<Vec<Offer>, cpal::Error> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = match dir {
        Dir::In => device.supported_input_configs()?.collect(),
        Dir::Out => device.supported_output_configs()?.collect(),
    };
    Ok(ranges
        .iter()
        .map(|r| Offer {
            channels: r.channels(),
            min_rate: r.min_sample_rate(),
            max_rate: r.max_sample_rate(),
            format: match r.sample_format() {
                cpal::SampleFormat::I16 => Ok(Format::I16),
                cpal::SampleFormat::F32 => Ok(Format::F32),
                cpal::SampleFormat::I32 => Ok(Format::I32),
                cpal::SampleFormat::U16 => Ok(Format::U16),
                cpal::SampleFormat::I8 => Ok(Format::I8),
                cpal::SampleFormat::U8 => Ok(Format::U8),
                other => Err(format!("{other:?}")),
            },
            periods: match r.buffer_size() {
                cpal::SupportedBufferSize::Range { min, max } => Some((*min, *max)),
                cpal::SupportedBufferSize::Unknown => None,
            },
        })
        .collect())
}

fn open_stream(dir: Dir, name: Option<&str>) -> Result<(cpal::Stream, Port), SoundError> {
    let host = cpal::default_host();
    let device = find(&host, dir, name)?;
    let label = device
        .description()
        .map(|d| d.driver().unwrap_or(d.name()).to_string())
        .unwrap_or_else(|_| name.unwrap_or("default").to_string());
    let fail = |reason: String| SoundError::Device {
        direction: dir.name(),
        device: label.clone(),
        reason,
    };
    let offered = offers(&device, dir).map_err(|e| fail(e.to_string()))?;
    let choice = choose(&offered).map_err(|offered| SoundError::UnsupportedFormat {
        direction: dir.name(),
        device: label.clone(),
        offered,
    })?;
    let shared = Shared::new(target((choice.rate / 100) as usize));
    let mut config = cpal::StreamConfig {
        channels: choice.channels,
        sample_rate: choice.rate,
        buffer_size: choice.period.map_or(cpal::BufferSize::Default, cpal::BufferSize::Fixed),
    };
    let stream = match build(&device, dir, &config, &choice, &shared) {
        Ok(s) => s,
        Err(e) if choice.period.is_some() => {
            tracing::debug!(
                "{} {label}: fixed periods of {:?} frames refused ({e}), using the device's",
                dir.name(),
                choice.period
            );
            config.buffer_size = cpal::BufferSize::Default;
            build(&device, dir, &config, &choice, &shared).map_err(|e| fail(e.to_string()))?
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    // What the drift buffer keeps follows the period the device took (a
    // 20 ms frame's worth when it does not say).
    let period = stream
        .buffer_size()
        .ok()
        .filter(|p| *p > 0)
        .map_or((choice.rate / 50) as usize, |p| p as usize);
    *shared.buf() = DriftBuffer::new(target(period));
    stream.play().map_err(|e| fail(e.to_string()))?;
    tracing::info!(
        device = %label,
        rate = choice.rate,
        channels = choice.channels,
        format = ?choice.format,
        period,
        "sound {} open",
        dir.name()
    );
    Ok((stream, ((label, choice.rate), shared)))
}

/// What a drift buffer keeps after each read (at most; half of it at
/// least) for a device `period`, until jitter grows it: two periods. Less
/// is delay saved only while the two clocks agree exactly: when the
/// device's runs faster than the network's, its reads slide past the
/// phone's writes now and then, and such a read finds only what the last
/// one left, which must be a whole read (the drift tests show half a
/// period running dry every 20 s at 500 ppm).
fn target(period: usize) -> usize {
    2 * period
}

fn build(
    device: &cpal::Device,
    dir: Dir,
    config: &cpal::StreamConfig,
    choice: &Choice,
    shared: &Arc<Shared>,
) -> Result<cpal::Stream, cpal::Error> {
    match choice.format {
        Format::I16 => build_as::<i16>(device, dir, config, shared),
        Format::F32 => build_as::<f32>(device, dir, config, shared),
        Format::I32 => build_as::<i32>(device, dir, config, shared),
        Format::U16 => build_as::<u16>(device, dir, config, shared),
        Format::I8 => build_as::<i8>(device, dir, config, shared),
        Format::U8 => build_as::<u8>(device, dir, config, shared),
    }
}

fn build_as<T>(device: &cpal::Device, dir: Dir, config: &cpal::StreamConfig, shared: &Arc<Shared>) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<i16> + Send + 'static,
    i16: FromSample<T>,
{
    let ch = config.channels.max(1) as usize;
    let on_error = {
        let shared = shared.clone();
        let what = dir.name();
        move |e: cpal::Error| {
            if !shared.has_failed() {
                tracing::warn!("sound {what} failed: {e}");
            }
            shared.fail(e.to_string());
        }
    };
    let shared = shared.clone();
    let mut mono: Vec<i16> = Vec::new();
    match dir {
        Dir::In => device.build_input_stream::<T, _, _>(
            *config,
            move |data: &[T], _| {
                mono.clear();
                mono.extend(data.chunks(ch).map(|c| {
                    let sum: i32 = c.iter().map(|&s| <i16 as FromSample<T>>::from_sample_(s) as i32).sum();
                    (sum / c.len() as i32) as i16
                }));
                shared.buf().push(&mono);
            },
            on_error,
            None,
        ),
        Dir::Out => device.build_output_stream::<T, _, _>(
            *config,
            move |data: &mut [T], _| {
                mono.resize(data.len() / ch, 0);
                shared.buf().pull(&mut mono);
                for (frame, &s) in data.chunks_mut(ch).zip(&mono) {
                    frame.fill(T::from_sample_(s));
                }
            },
            on_error,
            None,
        ),
    }
}
