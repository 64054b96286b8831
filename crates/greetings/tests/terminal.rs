//! The half-block terminal fallback.

mod common;

use common::*;
use image::Rgba;
use peerdial_greetings::{half_blocks, GreetingError};

/// Removes `ESC [ digits;... m` sequences; fails on any other escape.
fn strip_sgr(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            assert_eq!(chars.next(), Some('['), "only CSI sequences expected in {line:?}");
            loop {
                match chars.next() {
                    Some('m') => break,
                    Some(d) if d.is_ascii_digit() || d == ';' => {}
                    other => panic!("unexpected {other:?} in an escape sequence"),
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn upper_and_lower_pixels_become_foreground_and_background() {
    let mut img = solid(4, 4, [255, 0, 0, 255]);
    for y in 2..4 {
        for x in 0..4 {
            img.put_pixel(x, y, Rgba([0, 0, 255, 255]));
        }
    }
    // Rows 0 and 2 are the upper halves, 1 and 3 the lower.
    for x in 0..4 {
        img.put_pixel(x, 1, Rgba([0, 255, 0, 255]));
    }
    let lines = half_blocks(&png(&img), 4, 2).unwrap();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("\x1b[38;2;255;0;0;48;2;0;255;0m\u{2580}"), "{:?}", lines[0]);
    assert!(lines[1].contains("\x1b[38;2;0;0;255;48;2;0;0;255m\u{2580}"), "{:?}", lines[1]);
    for line in &lines {
        assert!(line.ends_with("\x1b[0m"));
        assert_eq!(strip_sgr(line), "\u{2580}".repeat(4));
    }
}

#[test]
fn the_picture_is_fitted_into_the_cells() {
    // 100x100 into 10 columns and 5 rows: 10x10 pixels, 5 lines of 10 cells.
    let lines = half_blocks(&png(&noise(100, 100)), 10, 5).unwrap();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| strip_sgr(l).chars().count() == 10));
    // A tall picture is limited by the rows.
    let lines = half_blocks(&png(&noise(10, 100)), 20, 5).unwrap();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| strip_sgr(l).chars().count() == 1));
    // Small pictures are not enlarged; an odd height leaves a lone upper half.
    let lines = half_blocks(&png(&noise(3, 3)), 80, 24).unwrap();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| strip_sgr(l).chars().count() == 3));
    assert!(half_blocks(&png(&noise(3, 3)), 0, 24).unwrap().is_empty());
}

#[test]
fn transparency_shows_the_terminal_background() {
    let lines = half_blocks(&png(&solid(2, 2, [9, 9, 9, 0])), 2, 1).unwrap();
    assert_eq!(strip_sgr(&lines[0]), "  ");
    let mut img = solid(1, 2, [0, 0, 0, 0]);
    img.put_pixel(0, 1, Rgba([1, 2, 3, 255]));
    let lines = half_blocks(&png(&img), 1, 1).unwrap();
    assert_eq!(lines[0], "\x1b[49;38;2;1;2;3m\u{2584}\x1b[0m");
}

#[test]
fn metadata_never_reaches_the_terminal() {
    let tagged = insert_after_ihdr(
        &png(&solid(4, 4, [1, 2, 3, 255])),
        &[chunk(b"tEXt", b"Title\0\x1b]2;pwned\x07\x1b[2J")],
    );
    let lines = half_blocks(&tagged, 4, 2).unwrap();
    for line in &lines {
        assert!(!line.contains("pwned"));
        assert!(!line.contains('\x07'));
        assert_eq!(strip_sgr(line), "\u{2580}".repeat(4)); // only colour sequences
    }
}

#[test]
fn bad_bytes_are_refused() {
    assert!(matches!(
        half_blocks(b"not a picture at all", 10, 10),
        Err(GreetingError::NotAnImage)
    ));
    assert!(matches!(
        half_blocks(&png_declaring(100_000, 100_000), 10, 10),
        Err(GreetingError::TooManyPixels { .. })
    ));
}
