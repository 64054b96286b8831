//! The conference mixer's input path: arbitrary datagrams from three
//! participants (Opus, PCMU, PCMA, with DTMF), ticks in between, joins and
//! leaves driven by the input. Never a panic; every datagram out parses
//! as RTP of its participant's payload type.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_media::mixer::{Mixer, MixerConfig, ParticipantConfig};
use peerdial_media::rtp;
use peerdial_media::CodecKind;

fuzz_target!(|data: &[u8]| {
    let rate = [8000, 16_000, 48_000][data.first().copied().unwrap_or(0) as usize % 3];
    let mut m = Mixer::new(MixerConfig {
        rate,
        ..MixerConfig::default()
    })
    .unwrap();
    let kinds = [(CodecKind::Opus, 111), (CodecKind::Pcmu, 0), (CodecKind::Pcma, 8)];
    let join = |m: &mut Mixer, k: usize, now: u64| {
        let (codec, payload_type) = kinds[k % 3];
        m.join(
            ParticipantConfig {
                codec,
                payload_type,
                dtmf_payload_type: Some(101),
            },
            now,
        )
    };
    let mut ids: Vec<(u32, u8)> = (0..3).filter_map(|k| join(&mut m, k, 0).ok().map(|id| (id, kinds[k].1))).collect();
    let mut now = 0u64;
    for (i, chunk) in data.split(|b| *b == 0xfe).enumerate() {
        match chunk.first() {
            // A control byte: someone leaves, or a new one joins.
            Some(0xfd) if !ids.is_empty() => {
                let (id, _) = ids.remove(i % ids.len());
                m.leave(id);
            }
            Some(0xfc) => {
                if let Ok(id) = join(&mut m, i, now) {
                    ids.push((id, kinds[i % 3].1));
                }
            }
            _ => {
                if let Some(&(id, _)) = ids.get(i % ids.len().max(1)) {
                    m.handle_input(id, chunk, now);
                }
            }
        }
        now += 7;
        m.handle_timeout(now);
        while let Some(t) = m.poll_transmit() {
            let (h, _) = rtp::parse(&t.data).expect("the mixer sends RTP");
            let pt = ids.iter().find(|(id, _)| *id == t.participant).map(|x| x.1);
            assert_eq!(Some(h.payload_type), pt);
        }
        while m.poll_event().is_some() {}
    }
});
