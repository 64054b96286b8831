//! A terminal's version answer (XTVERSION), as the phone's display reads
//! it to spot a kitty without Unicode placeholders: arbitrary bytes never
//! panic, and a version named is part of the answer, after `kitty(`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_greetings::kitty_without_placeholders;

fuzz_target!(|data: &[u8]| {
    let answer = String::from_utf8_lossy(data);
    if let Some(v) = kitty_without_placeholders(&answer) {
        assert!(answer.contains(&format!("kitty({v}")), "{v:?}");
    }
});
