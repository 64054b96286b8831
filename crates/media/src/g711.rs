//! G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711, by the classic
//! segment-search formulation (the one in Sun's reference g711.c).

const SEG_U_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const SEG_A_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
const BIAS: i32 = 0x84;

fn segment(v: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&e| v <= e).unwrap_or(8)
}

pub fn ulaw_encode(sample: i16) -> u8 {
    let mut v = (sample as i32) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(8159) + (BIAS >> 2);
    let seg = segment(v, &SEG_U_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    (((seg as i32) << 4) | ((v >> (seg + 1)) & 0xF)) as u8 ^ mask
}

pub fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte as i32;
    let t = (((u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { BIAS - t } else { t - BIAS }) as i16
}

pub fn alaw_encode(sample: i16) -> u8 {
    let mut v = (sample as i32) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &SEG_A_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut a = (seg as i32) << 4;
    a |= if seg < 2 { (v >> 1) & 0xF } else { (v >> seg) & 0xF };
    (a ^ mask) as u8
}

pub fn alaw_decode(byte: u8) -> i16 {
    let a = (byte ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_code_points() {
        // Silence encodes to the all-ones code in µ-law and 0xD5 in A-law.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0xAA), 32256);
    }

    proptest! {
        // Companding error grows with amplitude: about 1/16 of the value
        // plus a small step near zero.
        #[test]
        fn round_trip_error_is_bounded(s in any::<i16>()) {
            let bound = (s as i32).abs() / 15 + 40;
            let u = ulaw_decode(ulaw_encode(s)) as i32;
            let a = alaw_decode(alaw_encode(s)) as i32;
            prop_assert!((u - s as i32).abs() <= bound, "ulaw {} -> {}", s, u);
            prop_assert!((a - s as i32).abs() <= bound, "alaw {} -> {}", s, a);
        }

        #[test]
        fn decode_encode_is_identity_on_codes(b in any::<u8>()) {
            // Every code decodes to a value that encodes back to itself
            // (except µ-law's negative zero, 0x7F, which is +0's twin).
            if b != 0x7F {
                prop_assert_eq!(ulaw_encode(ulaw_decode(b)), b);
            }
            prop_assert_eq!(alaw_encode(alaw_decode(b)), b);
        }
    }
}
