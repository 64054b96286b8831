//! Greeting cards from text.

mod common;

use common::{chunk_types, decode};
use image::RgbaImage;
use peerdial_greetings::{etag_of, render_card, Card, Colour, GreetingError, Layout};

fn card(text: &str, layout: Layout) -> Card {
    Card {
        text: text.to_string(),
        foreground: "#ffffff".to_string(),
        background: "#102040".to_string(),
        layout,
    }
}

const BG: [u8; 4] = [0x10, 0x20, 0x40, 255];

/// Rows that hold any pixel other than the background.
fn inked_rows(img: &RgbaImage) -> Vec<u32> {
    (0..img.height())
        .filter(|&y| (0..img.width()).any(|x| img.get_pixel(x, y).0 != BG))
        .collect()
}

/// Separate bands of inked rows: the lines of text.
fn bands(rows: &[u32]) -> usize {
    rows.windows(2).filter(|w| w[1] != w[0] + 1).count() + usize::from(!rows.is_empty())
}

#[test]
fn a_centered_card_has_text_in_the_middle() {
    let g = render_card(&card("Hello, world", Layout::Centered)).unwrap();
    assert_eq!((g.width, g.height), (480, 480));
    assert_eq!(g.etag, etag_of(&g.png));
    assert_eq!(chunk_types(&g.png), ["IHDR", "IDAT", "IEND"]);
    let img = decode(&g.png);
    // Corners are background, some pixels are (nearly) pure foreground.
    for (x, y) in [(0, 0), (479, 0), (0, 479), (479, 479)] {
        assert_eq!(img.get_pixel(x, y).0, BG);
    }
    let white = img.pixels().filter(|p| p.0[..3].iter().all(|&c| c > 240)).count();
    assert!(white > 500, "only {white} white pixels");
    let rows = inked_rows(&img);
    let (first, last) = (rows[0], *rows.last().unwrap());
    assert!(first > 100 && last < 380, "text spans rows {first}..{last}");
    assert_eq!(bands(&rows), 1);
}

#[test]
fn a_banner_is_a_strip() {
    let g = render_card(&card("Alice", Layout::Banner)).unwrap();
    assert_eq!((g.width, g.height), (480, 160));
    assert!(!inked_rows(&decode(&g.png)).is_empty());
}

#[test]
fn top_left_starts_at_the_top_left() {
    let g = render_card(&card("Note to self", Layout::TopLeft)).unwrap();
    let img = decode(&g.png);
    let rows = inked_rows(&img);
    assert!(rows[0] < 80, "first inked row {}", rows[0]);
    let first_col = (0..480).find(|&x| (0..480).any(|y| img.get_pixel(x, y).0 != BG)).unwrap();
    assert!(first_col < 60, "first inked column {first_col}");
}

#[test]
fn long_text_is_wrapped_into_lines() {
    let text = "The quick brown fox jumps over the lazy dog while the phone rings and rings again";
    let img = decode(&render_card(&card(text, Layout::Centered)).unwrap().png);
    assert!(bands(&inked_rows(&img)) >= 3);
    // An explicit line break makes two lines of even a short text.
    let img = decode(&render_card(&card("Hi\nthere", Layout::Centered)).unwrap().png);
    assert_eq!(bands(&inked_rows(&img)), 2);
}

#[test]
fn the_longest_text_fits_every_layout() {
    let text = "word ".repeat(40);
    assert_eq!(text.chars().count(), 200);
    for layout in [Layout::Centered, Layout::Banner, Layout::TopLeft] {
        render_card(&card(text.trim_end(), layout)).unwrap_or_else(|e| panic!("{layout:?}: {e}"));
    }
    // One unbreakable 200-character word is broken between characters.
    render_card(&card(&"W".repeat(200), Layout::Centered)).unwrap();
}

#[test]
fn latin_greek_cyrillic_and_markup_render() {
    for text in ["Grüße, Zoë!", "Γειά σου", "Привет", "<script>alert(1)</script>"] {
        render_card(&card(text, Layout::Centered)).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}

#[test]
fn characters_without_a_glyph_are_refused() {
    match render_card(&card("你好", Layout::Centered)) {
        Err(GreetingError::UncoveredCharacter { code }) => assert_eq!(code, 0x4F60),
        other => panic!("{other:?}"),
    }
}

#[test]
fn control_characters_are_refused() {
    for (text, position, code) in [
        ("\x1b[31mred", 0, 0x1b),
        ("bell\x07", 4, 0x07),
        ("a\rb", 1, 0x0d),
        ("tab\there", 3, 0x09),
        ("c1\u{9b}31m", 2, 0x9b),
        ("abc\u{202E}cba", 3, 0x202E), // right-to-left override
        ("zero\u{200B}width", 4, 0x200B),
    ] {
        match render_card(&card(text, Layout::Centered)) {
            Err(GreetingError::ControlCharacter { position: p, code: c }) => {
                assert_eq!((p, c), (position, code), "{text:?}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn bad_text_is_refused() {
    assert!(matches!(render_card(&card("", Layout::Centered)), Err(GreetingError::EmptyText)));
    assert!(matches!(
        render_card(&card(" \n ", Layout::Centered)),
        Err(GreetingError::EmptyText)
    ));
    assert!(matches!(
        render_card(&card(&"x".repeat(201), Layout::Centered)),
        Err(GreetingError::TextTooLong { chars: 201, max: 200 })
    ));
    assert!(matches!(
        render_card(&card(&"a\n".repeat(13), Layout::Centered)),
        Err(GreetingError::TextDoesNotFit)
    ));
}

#[test]
fn colours_are_parsed_strictly() {
    assert_eq!(Colour::parse("#A0b1C2"), Some(Colour { r: 0xA0, g: 0xB1, b: 0xC2 }));
    for bad in [
        "red", "#fff", "#12345g", " #123456", "#123456 ", "#1234567", "123456", "#+12345", "",
    ] {
        assert_eq!(Colour::parse(bad), None, "{bad:?}");
        let mut c = card("Hi", Layout::Centered);
        c.foreground = bad.to_string();
        assert!(
            matches!(render_card(&c), Err(GreetingError::BadColour { field: "foreground" })),
            "{bad:?}"
        );
        let mut c = card("Hi", Layout::Centered);
        c.background = bad.to_string();
        assert!(matches!(render_card(&c), Err(GreetingError::BadColour { field: "background" })));
    }
}

#[test]
fn the_same_card_gives_the_same_etag() {
    let a = render_card(&card("Same", Layout::Banner)).unwrap();
    let b = render_card(&card("Same", Layout::Banner)).unwrap();
    assert_eq!(a.etag, b.etag);
    let c = render_card(&card("Different", Layout::Banner)).unwrap();
    assert_ne!(a.etag, c.etag);
}

#[test]
fn layouts_parse() {
    for l in [Layout::Centered, Layout::Banner, Layout::TopLeft] {
        assert_eq!(Layout::parse(l.as_str()), Some(l));
    }
    assert_eq!(Layout::parse("center"), None);
}
