//! Choosing how to open a device from what it offers: the sample format
//! (16-bit integer first), the fewest channels, 48 kHz when it can (else
//! the nearest common rate), and 10 ms periods when the device allows
//! (else 20 ms; else the device's own choice).
//! Pure: the cpal layer turns the device's offers into [`Offer`]s.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    I16,
    F32,
    I32,
    U16,
    I8,
    U8,
}

/// The formats taken, in order of preference.
pub const TAKEN: [Format; 6] = [Format::I16, Format::F32, Format::I32, Format::U16, Format::I8, Format::U8];

/// One range of configurations a device offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub channels: u16,
    pub min_rate: u32,
    pub max_rate: u32,
    /// `Err`: a format peerdial does not take (its name, for the message).
    pub format: Result<Format, String>,
    /// The period sizes allowed, in frames, when the device says.
    pub periods: Option<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub channels: u16,
    pub rate: u32,
    pub format: Format,
    /// A fixed period, in frames: 10 ms when the device allows it, else
    /// 20 ms; `None` when it allows neither (or does not say).
    pub period: Option<u32>,
}

const RATES: [u32; 5] = [48_000, 44_100, 32_000, 16_000, 8_000];

/// The device periods asked for, in order: each is a block of audio the
/// card takes or gives at once, and a ring of two of them is delay.
pub const PERIOD_MS: [u32; 2] = [10, 20];

/// The configuration to open, or the list of what was offered.
pub fn choose(offers: &[Offer]) -> Result<Choice, String> {
    for want in TAKEN {
        let best = offers
            .iter()
            .filter(|o| o.format == Ok(want) && o.channels > 0 && o.min_rate <= o.max_rate)
            .min_by_key(|o| o.channels);
        if let Some(o) = best {
            let rate = RATES
                .into_iter()
                .find(|r| (o.min_rate..=o.max_rate).contains(r))
                .unwrap_or(o.max_rate.min(48_000).max(o.min_rate));
            let period = o
                .periods
                .and_then(|(lo, hi)| PERIOD_MS.into_iter().map(|ms| rate * ms / 1000).find(|f| (lo..=hi).contains(f)));
            return Ok(Choice {
                channels: o.channels,
                rate,
                format: want,
                period,
            });
        }
    }
    let mut offered: Vec<String> = offers
        .iter()
        .map(|o| match &o.format {
            Ok(f) => format!("{f:?}"),
            Err(name) => name.clone(),
        })
        .collect();
    offered.dedup();
    Err(if offered.is_empty() {
        "no configuration at all".into()
    } else {
        offered.join(", ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(channels: u16, rates: (u32, u32), format: Result<Format, String>) -> Offer {
        Offer {
            channels,
            min_rate: rates.0,
            max_rate: rates.1,
            format,
            periods: Some((32, 8192)),
        }
    }

    #[test]
    fn sixteen_bit_mono_at_48k_with_10_ms_periods_when_offered() {
        let c = choose(&[
            offer(2, (8000, 96_000), Ok(Format::F32)),
            offer(2, (8000, 96_000), Ok(Format::I16)),
            offer(1, (8000, 96_000), Ok(Format::I16)),
        ])
        .unwrap();
        assert_eq!(
            c,
            Choice {
                channels: 1,
                rate: 48_000,
                format: Format::I16,
                period: Some(480)
            }
        );
    }

    #[test]
    fn twenty_ms_periods_when_ten_are_too_small_for_the_device_and_none_when_both_are() {
        let mut o = offer(1, (8000, 48_000), Ok(Format::I16));
        o.periods = Some((512, 8192));
        assert_eq!(choose(std::slice::from_ref(&o)).unwrap().period, Some(960));
        o.periods = Some((1024, 8192));
        assert_eq!(choose(std::slice::from_ref(&o)).unwrap().period, None);
        // 10 ms at 44.1 kHz is 441 frames.
        o = offer(2, (44_100, 44_100), Ok(Format::I16));
        assert_eq!(choose(&[o]).unwrap().period, Some(441));
    }

    #[test]
    fn float_stereo_at_44k1_is_taken_when_that_is_all() {
        let mut o = offer(2, (44_100, 44_100), Ok(Format::F32));
        o.periods = None;
        let c = choose(&[o]).unwrap();
        assert_eq!((c.channels, c.rate, c.format, c.period), (2, 44_100, Format::F32, None));
    }

    #[test]
    fn a_device_with_only_unsupported_formats_is_named_in_the_error() {
        let e = choose(&[
            offer(2, (48_000, 48_000), Err("I24".into())),
            offer(1, (48_000, 48_000), Err("F64".into())),
        ])
        .unwrap_err();
        assert_eq!(e, "I24, F64");
        assert_eq!(choose(&[]).unwrap_err(), "no configuration at all");
    }
}
