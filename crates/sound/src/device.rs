//! The device layer proper (feature `sound`): cpal streams on the system's
//! host (ALSA on Linux). One thread owns the streams; their callbacks mix
//! capture to mono 16-bit into the input's [`crate::port::CaptureQueue`]
//! and spread the output's [`crate::DriftBuffer`] over every channel of
//! the device. A stream
//! that fails is reported once through its port and dropped; the other one
//! goes on.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::format::{choose, Choice, Format, Offer};
use crate::port::{CaptureQueue, Input, Output, Shared, Status};
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
                        streams.push((stream, port.1.status()));
                        ports.push(Ok(port));
                    }
                    Err(e) => ports.push(Err(e)),
                }
            }
            let _ = ready_tx.send(ports);
            loop {
                match stop_rx.recv_timeout(Duration::from_millis(100)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // A failed stream may spin on its error: stop it.
                        streams.retain(|(_, status): &(cpal::Stream, Arc<Status>)| !status.has_failed());
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
                Ok(((name, rate), End::In(shared))) => sound.input = Some(Input { name, rate, shared }),
                Ok(((name, rate), End::Out(shared))) => sound.output = Some(Output { name, rate, shared }),
                Err(e) => problems.push(e),
            }
        }
        (sound, problems)
    }
}

/// A stream's buffer, shared with its callback.
enum End {
    In(Arc<Shared<CaptureQueue>>),
    Out(Arc<Shared<DriftBuffer>>),
}

impl End {
    fn status(&self) -> Arc<Status> {
        match self {
            End::In(s) => s.status.clone(),
            End::Out(s) => s.status.clone(),
        }
    }
}

type Port = ((String, u32), End);

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
    let end = match dir {
        // 200 ms of capture at most waits for a phone that stalls.
        Dir::In => End::In(Shared::new(CaptureQueue::new(choice.rate as usize / 5))),
        Dir::Out => End::Out(Shared::new(DriftBuffer::new(choice.rate))),
    };
    let mut config = cpal::StreamConfig {
        channels: choice.channels,
        sample_rate: choice.rate,
        buffer_size: choice.period.map_or(cpal::BufferSize::Default, cpal::BufferSize::Fixed),
    };
    let stream = match build(&device, &config, &choice, &end) {
        Ok(s) => s,
        Err(e) if choice.period.is_some() => {
            tracing::debug!(
                "{} {label}: fixed periods of {:?} frames refused ({e}), using the device's",
                dir.name(),
                choice.period
            );
            config.buffer_size = cpal::BufferSize::Default;
            build(&device, &config, &choice, &end).map_err(|e| fail(e.to_string()))?
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    // The output's buffer learns the period from the device's reads.
    let period = stream.buffer_size().ok();
    stream.play().map_err(|e| fail(e.to_string()))?;
    tracing::info!(
        device = %label,
        rate = choice.rate,
        channels = choice.channels,
        format = ?choice.format,
        period = ?period,
        "sound {} open",
        dir.name()
    );
    Ok((stream, ((label, choice.rate), end)))
}

fn build(device: &cpal::Device, config: &cpal::StreamConfig, choice: &Choice, end: &End) -> Result<cpal::Stream, cpal::Error> {
    match choice.format {
        Format::I16 => build_as::<i16>(device, config, end),
        Format::F32 => build_as::<f32>(device, config, end),
        Format::I32 => build_as::<i32>(device, config, end),
        Format::U16 => build_as::<u16>(device, config, end),
        Format::I8 => build_as::<i8>(device, config, end),
        Format::U8 => build_as::<u8>(device, config, end),
    }
}

fn build_as<T>(device: &cpal::Device, config: &cpal::StreamConfig, end: &End) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<i16> + Send + 'static,
    i16: FromSample<T>,
{
    let ch = config.channels.max(1) as usize;
    let on_error = |what: &'static str| {
        let status = end.status();
        move |e: cpal::Error| {
            if !status.has_failed() {
                tracing::warn!("sound {what} failed: {e}");
            }
            status.fail(e.to_string());
        }
    };
    let mut mono: Vec<i16> = Vec::new();
    match end {
        End::In(shared) => {
            let shared = shared.clone();
            device.build_input_stream::<T, _, _>(
                *config,
                move |data: &[T], _| {
                    mono.clear();
                    mono.extend(data.chunks(ch).map(|c| {
                        let sum: i32 = c.iter().map(|&s| <i16 as FromSample<T>>::from_sample_(s) as i32).sum();
                        (sum / c.len() as i32) as i16
                    }));
                    shared.buf().push(&mono);
                },
                on_error(Dir::In.name()),
                None,
            )
        }
        End::Out(shared) => {
            let shared = shared.clone();
            device.build_output_stream::<T, _, _>(
                *config,
                move |data: &mut [T], _| {
                    mono.resize(data.len() / ch, 0);
                    let mut b = shared.buf();
                    b.pull(&mut mono, shared.now_us());
                    drop(b);
                    for (frame, &s) in data.chunks_mut(ch).zip(&mono) {
                        frame.fill(T::from_sample_(s));
                    }
                },
                on_error(Dir::Out.name()),
                None,
            )
        }
    }
}
