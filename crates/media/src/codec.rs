//! Audio codecs behind one interface: 20 ms of mono 16-bit samples at the
//! codec's clock rate in, an RTP payload out, and back.

use crate::g711;
use crate::sdp::CodecKind;
use crate::MediaError;

pub enum Encoder {
    Pcmu,
    Pcma,
    Opus(Box<opus_rs::OpusEncoder>),
}

pub enum Decoder {
    Pcmu,
    Pcma,
    Opus(Box<opus_rs::OpusDecoder>, Vec<f32>),
}

impl Encoder {
    pub fn new(kind: CodecKind) -> Result<Encoder, MediaError> {
        Encoder::with_rate(kind, 48_000)
    }

    /// An encoder whose input is at `rate` Hz. G.711 is 8 kHz whatever
    /// `rate` says; Opus takes 8, 12, 16, 24 or 48 kHz (its RTP clock
    /// stays 48 kHz), so a mixer at one of those rates needs no resampling.
    pub fn with_rate(kind: CodecKind, rate: u32) -> Result<Encoder, MediaError> {
        Ok(match kind {
            CodecKind::Pcmu => Encoder::Pcmu,
            CodecKind::Pcma => Encoder::Pcma,
            CodecKind::Opus => {
                // CELT only: opus-rs's SILK encoder has an AVX2 kernel that
                // over-reads a stack buffer (our fuzzing found it under ASan).
                let mut e =
                    opus_rs::OpusEncoder::new(rate as i32, 1, opus_rs::Application::RestrictedLowDelay).map_err(MediaError::Codec)?;
                e.bitrate_bps = 48_000;
                Encoder::Opus(Box::new(e))
            }
        })
    }

    /// Encodes one frame (20 ms: 160 samples at 8 kHz, 960 at 48 kHz).
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), MediaError> {
        out.clear();
        match self {
            Encoder::Pcmu => out.extend(pcm.iter().map(|&s| g711::ulaw_encode(s))),
            Encoder::Pcma => out.extend(pcm.iter().map(|&s| g711::alaw_encode(s))),
            Encoder::Opus(e) => {
                out.resize(1275, 0);
                let n = e.encode_i16(pcm, pcm.len(), out).map_err(MediaError::Codec)?;
                out.truncate(n);
            }
        }
        Ok(())
    }
}

impl Decoder {
    pub fn new(kind: CodecKind) -> Result<Decoder, MediaError> {
        Decoder::with_rate(kind, 48_000)
    }

    /// A decoder whose output is at `rate` Hz (as [`Encoder::with_rate`]).
    pub fn with_rate(kind: CodecKind, rate: u32) -> Result<Decoder, MediaError> {
        Ok(match kind {
            CodecKind::Pcmu => Decoder::Pcmu,
            CodecKind::Pcma => Decoder::Pcma,
            CodecKind::Opus => Decoder::Opus(
                Box::new(opus_rs::OpusDecoder::new(rate as i32, 1).map_err(MediaError::Codec)?),
                Vec::new(),
            ),
        })
    }

    /// Decodes a payload into `frame` samples; `None` conceals a lost frame.
    pub fn decode(&mut self, payload: Option<&[u8]>, frame: usize, out: &mut Vec<i16>) -> Result<(), MediaError> {
        let start = out.len();
        match (self, payload) {
            (Decoder::Pcmu, Some(p)) => out.extend(p.iter().map(|&b| g711::ulaw_decode(b))),
            (Decoder::Pcma, Some(p)) => out.extend(p.iter().map(|&b| g711::alaw_decode(b))),
            (Decoder::Opus(d, buf), p) => {
                // Opus packets may carry up to 120 ms.
                buf.resize(frame.max(5760), 0.0);
                let n = d.decode(p.unwrap_or(&[]), frame, buf).map_err(MediaError::Codec)?;
                out.extend(buf[..n].iter().map(|&s| (s * 32768.0).clamp(-32768.0, 32767.0) as i16));
            }
            // G.711 concealment: repeat nothing, play silence.
            (_, None) => out.resize(start + frame, 0),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{frequency, tone};

    fn round_trip(kind: CodecKind) -> Vec<i16> {
        let rate = kind.clock_rate();
        let frame = (rate / 50) as usize;
        let input = tone(1000.0, rate, rate as usize, 8000.0);
        let mut enc = Encoder::new(kind).unwrap();
        let mut dec = Decoder::new(kind).unwrap();
        let mut out = Vec::new();
        let mut payload = Vec::new();
        for chunk in input.chunks_exact(frame) {
            enc.encode(chunk, &mut payload).unwrap();
            dec.decode(Some(&payload), frame, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn a_tone_survives_every_codec() {
        for kind in [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::Opus] {
            let out = round_trip(kind);
            let f = frequency(&out[out.len() / 2..], kind.clock_rate());
            assert!((f - 1000.0).abs() < 20.0, "{kind:?}: {f} Hz");
        }
    }

    #[test]
    fn opus_conceals_a_lost_frame() {
        let mut dec = Decoder::new(CodecKind::Opus).unwrap();
        let mut out = Vec::new();
        dec.decode(None, 960, &mut out).unwrap();
        assert_eq!(out.len(), 960);
    }
}
