//! Arbitrary uploads never panic or run away with memory under the production
//! limits; what is accepted is a bounded PNG that is accepted again unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_greetings::{etag_of, if_none_match, normalize, UploadLimits};

fuzz_target!(|data: &[u8]| {
    let limits = UploadLimits::default();
    if let Ok(g) = normalize(data, &limits) {
        assert!(g.width >= 1 && g.width <= limits.fit_width);
        assert!(g.height >= 1 && g.height <= limits.fit_height);
        assert_eq!(g.etag, etag_of(&g.png));
        assert!(if_none_match(&g.etag, &g.etag));
        let again = normalize(&g.png, &limits).expect("our own output is accepted");
        assert_eq!((again.width, again.height), (g.width, g.height));
        assert_eq!(again.etag, g.etag);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = if_none_match(s, "\"0123456789abcdef0123456789abcdef\"");
    }
});
