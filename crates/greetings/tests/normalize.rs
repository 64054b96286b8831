//! Uploads: what is taken, what is refused, what comes out.

mod common;

use common::*;
use peerdial_greetings::{etag_of, normalize, GreetingError, UploadLimits};

fn limits() -> UploadLimits {
    UploadLimits::default()
}

fn assert_colour_near(got: [u8; 4], want: [u8; 4], tolerance: i32) {
    for i in 0..4 {
        assert!(
            (got[i] as i32 - want[i] as i32).abs() <= tolerance,
            "pixel {got:?} is not near {want:?}"
        );
    }
}

/// Each accepted format comes out as a PNG of the same size and colour.
#[test]
fn accepts_png_jpeg_gif_webp() {
    let picture = solid(64, 48, [200, 30, 40, 255]);
    for (name, bytes, tolerance) in [
        ("png", png(&picture), 0),
        ("jpeg", jpeg(&picture), 8),
        ("gif", gif(std::slice::from_ref(&picture)), 8),
        ("webp", webp(&picture), 0),
    ] {
        let g = normalize(&bytes, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(g.png.starts_with(PNG_SIGNATURE), "{name}");
        assert_eq!((g.width, g.height), (64, 48), "{name}");
        let back = decode(&g.png);
        assert_eq!(back.dimensions(), (64, 48), "{name}");
        assert_colour_near(back.get_pixel(10, 10).0, [200, 30, 40, 255], tolerance);
    }
}

#[test]
fn gif_takes_the_first_frame() {
    let bytes = gif(&[solid(8, 8, [255, 0, 0, 255]), solid(8, 8, [0, 0, 255, 255])]);
    let g = normalize(&bytes, &limits()).unwrap();
    assert_colour_near(decode(&g.png).get_pixel(4, 4).0, [255, 0, 0, 255], 8);
}

#[test]
fn transparency_is_kept() {
    let mut picture = solid(10, 10, [0, 200, 0, 255]);
    picture.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
    let g = normalize(&png(&picture), &limits()).unwrap();
    let back = decode(&g.png);
    assert_eq!(back.get_pixel(0, 0)[3], 0);
    assert_eq!(back.get_pixel(5, 5).0, [0, 200, 0, 255]);
}

#[test]
fn the_format_is_sniffed_not_named() {
    // The function takes no name at all: the magic bytes decide which
    // decoder judges the rest, and that decoder's verdict is reported.
    let mut fake = b"GIF89a".to_vec();
    fake.extend_from_slice(&[4, 0, 4, 0, 0, 0, 0]);
    fake.extend_from_slice(b"this is not really a gif");
    let verdict = normalize(&fake, &limits());
    assert!(
        matches!(verdict, Err(GreetingError::Truncated("GIF") | GreetingError::Corrupt("GIF"))),
        "{verdict:?}"
    );
}

#[test]
fn random_bytes_are_not_an_image() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect();
    assert!(matches!(normalize(&bytes, &limits()), Err(GreetingError::NotAnImage)));
    assert!(matches!(
        normalize(b"<html><script>alert(1)</script></html>", &limits()),
        Err(GreetingError::NotAnImage)
    ));
}

#[test]
fn empty_upload() {
    assert!(matches!(normalize(&[], &limits()), Err(GreetingError::Empty)));
}

#[test]
fn other_image_formats_are_unsupported() {
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0; 60]);
    match normalize(&bmp, &limits()) {
        Err(GreetingError::Unsupported(name)) => assert_eq!(name, "image/bmp"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_truncated_png_is_refused() {
    let full = png(&noise(64, 64));
    let cut = &full[..full.len() / 2];
    match normalize(cut, &limits()) {
        Err(GreetingError::Truncated("PNG")) => {}
        other => panic!("{other:?}"),
    }
    // Only the signature: the header itself is missing.
    assert!(matches!(normalize(PNG_SIGNATURE, &limits()), Err(GreetingError::Truncated("PNG"))));
}

#[test]
fn a_corrupt_png_is_refused() {
    let mut bytes = png(&noise(16, 16));
    // Break the IHDR's CRC.
    bytes[8 + 8 + 13] ^= 0xFF;
    assert!(matches!(normalize(&bytes, &limits()), Err(GreetingError::Corrupt("PNG"))));
}

#[test]
fn huge_declared_dimensions_are_refused_before_decoding() {
    match normalize(&png_declaring(100_000, 100_000), &limits()) {
        Err(GreetingError::TooManyPixels { w, h, max_w, max_h }) => {
            assert_eq!((w, h, max_w, max_h), (100_000, 100_000, 4096, 4096));
        }
        other => panic!("{other:?}"),
    }
    // One side too big is enough.
    assert!(matches!(
        normalize(&png_declaring(4097, 10), &limits()),
        Err(GreetingError::TooManyPixels { w: 4097, h: 10, .. })
    ));
}

#[test]
fn zero_sized_images_are_refused() {
    // The PNG decoder itself calls a zero-width IHDR corrupt; a GIF's logical
    // screen can say 0x0, which is our check.
    let mut bytes = gif(&[solid(4, 4, [1, 2, 3, 255])]);
    bytes[6..10].copy_from_slice(&[0, 0, 0, 0]);
    match normalize(&bytes, &limits()) {
        Err(GreetingError::ZeroSized { w: 0, h: 0 }) => {}
        other => panic!("{other:?}"),
    }
    assert!(normalize(&png_declaring(0, 10), &limits()).is_err());
}

#[test]
fn a_gif_bomb_is_refused() {
    // A tiny GIF whose logical screen claims 65535x65535.
    let mut bytes = gif(&[solid(4, 4, [1, 2, 3, 255])]);
    bytes[6..10].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(bytes.len() < 200);
    assert!(matches!(
        normalize(&bytes, &limits()),
        Err(GreetingError::TooManyPixels { w: 65535, h: 65535, .. })
    ));
}

#[test]
fn the_allocation_limit_holds() {
    let tight = UploadLimits {
        max_alloc: 1024 * 1024,
        ..limits()
    };
    // 1000x1000 RGBA needs 4 MB.
    let bytes = png(&solid(1000, 1000, [9, 9, 9, 255]));
    assert!(matches!(normalize(&bytes, &tight), Err(GreetingError::TooMuchMemory)));
    assert!(normalize(&bytes, &limits()).is_ok());
}

#[test]
fn oversize_bodies_are_refused_before_anything_else() {
    // A real PNG signature followed by 2 MiB: the size alone decides.
    let mut bytes = png(&solid(2, 2, [0, 0, 0, 255]));
    bytes.resize(2 * 1024 * 1024, 0);
    match normalize(&bytes, &limits()) {
        Err(GreetingError::TooLarge { bytes, max }) => {
            assert_eq!((bytes, max), (2 * 1024 * 1024, 1024 * 1024));
        }
        other => panic!("{other:?}"),
    }
    // Exactly at the limit is still looked at (and here found corrupt or
    // truncated, not too large).
    let mut at_limit = png(&solid(2, 2, [0, 0, 0, 255]));
    at_limit.resize(1024 * 1024, 0);
    assert!(!matches!(normalize(&at_limit, &limits()), Err(GreetingError::TooLarge { .. })));
}

#[test]
fn metadata_is_stripped() {
    let original = png(&solid(20, 20, [10, 20, 30, 255]));
    let tagged = insert_after_ihdr(
        &original,
        &[
            chunk(b"tEXt", b"Comment\0secret \x1b]0;owned\x07 text"),
            chunk(b"tIME", &[7, 0xE8, 1, 2, 3, 4, 5]),
        ],
    );
    assert!(chunk_types(&tagged).contains(&"tEXt".to_string()));
    let g = normalize(&tagged, &limits()).unwrap();
    assert_eq!(chunk_types(&g.png), ["IHDR", "IDAT", "IEND"]);
    assert!(!g.png.windows(6).any(|w| w == b"secret"));
}

#[test]
fn jpeg_exif_does_not_survive() {
    // A JPEG with an APP1 Exif segment carrying a marker string.
    let plain = jpeg(&solid(16, 16, [50, 60, 70, 255]));
    let mut app1 = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\0GPS-SECRET".to_vec();
    let len = (app1.len() + 2) as u16;
    let mut with_exif = plain[..2].to_vec(); // SOI
    with_exif.extend_from_slice(&[0xFF, 0xE1]);
    with_exif.extend_from_slice(&len.to_be_bytes());
    with_exif.append(&mut app1);
    with_exif.extend_from_slice(&plain[2..]);
    let g = normalize(&with_exif, &limits()).unwrap();
    assert_eq!(chunk_types(&g.png), ["IHDR", "IDAT", "IEND"]);
    assert!(!g.png.windows(10).any(|w| w == b"GPS-SECRET"));
}

#[test]
fn pictures_are_scaled_into_the_box_keeping_aspect() {
    for ((w, h), want) in [
        ((1000, 500), (480, 240)),
        ((100, 2000), (24, 480)),
        ((480, 480), (480, 480)),
        ((4096, 4096), (480, 480)),
        ((300, 200), (300, 200)), // never upscaled
        ((1, 4000), (1, 480)),    // never zero
    ] {
        let g = normalize(&png(&solid(w, h, [1, 2, 3, 255])), &limits()).unwrap();
        assert_eq!((g.width, g.height), want, "{w}x{h}");
        assert_eq!(decode(&g.png).dimensions(), want, "{w}x{h}");
    }
}

#[test]
fn a_custom_box_is_honoured() {
    let small = UploadLimits {
        fit_width: 100,
        fit_height: 50,
        ..limits()
    };
    let g = normalize(&png(&solid(400, 400, [1, 2, 3, 255])), &small).unwrap();
    assert_eq!((g.width, g.height), (50, 50));
}

#[test]
fn the_etag_is_stable_and_follows_the_content() {
    let bytes = png(&noise(50, 40));
    let a = normalize(&bytes, &limits()).unwrap();
    let b = normalize(&bytes, &limits()).unwrap();
    assert_eq!(a.etag, b.etag);
    assert_eq!(a.png, b.png);
    assert_eq!(a.etag, etag_of(&a.png));
    assert_eq!(a.etag.len(), 34);
    assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
    assert!(a.etag[1..33].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

    let other = normalize(&png(&noise(50, 41)), &limits()).unwrap();
    assert_ne!(a.etag, other.etag);
    // The same picture through another format gives the same PNG, so the same code.
    let p = solid(30, 30, [5, 6, 7, 255]);
    assert_eq!(
        normalize(&png(&p), &limits()).unwrap().etag,
        normalize(&webp(&p), &limits()).unwrap().etag
    );
}

#[test]
fn the_output_is_accepted_again_unchanged() {
    let g = normalize(&jpeg(&noise(640, 480)), &limits()).unwrap();
    let again = normalize(&g.png, &limits()).unwrap();
    assert_eq!(again.png, g.png);
    assert_eq!(again.etag, g.etag);
}

#[test]
fn scaling_does_not_bleed_transparent_colour_into_edges() {
    // Left half transparent black, right half opaque white, with a soft edge.
    let img = image::RgbaImage::from_fn(961, 400, |x, _| match x {
        0..=470 => image::Rgba([0, 0, 0, 0]),
        471..=490 => image::Rgba([255, 255, 255, ((x - 470) * 12) as u8]),
        _ => image::Rgba([255, 255, 255, 255]),
    });
    let g = normalize(&png(&img), &limits()).unwrap();
    assert_eq!(chunk_types(&g.png)[0], "IHDR");
    let back = decode(&g.png);
    assert_eq!(back.get_pixel(10, 10)[3], 0);
    assert_eq!(back.get_pixel(470, 10).0, [255, 255, 255, 255]);
    for p in back.pixels().filter(|p| p[3] > 0) {
        assert!(p[0] > 245, "edge pixel darkened: {p:?}");
    }
}
