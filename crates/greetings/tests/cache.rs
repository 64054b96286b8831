//! The phone's on-disk cache of greeting pictures.

use std::fs;
use std::path::Path;
use std::time::Duration;

use peerdial_greetings::DiskCache;

/// Entry files hold a header (magic, ETag, length) besides the picture.
const PICTURE: usize = 1000;
const ETAG: &str = "\"0123456789abcdef0123456789abcdef\"";

fn picture(seed: u8) -> Vec<u8> {
    vec![seed; PICTURE]
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Room for `n` entries and not one more.
fn room_for(n: u64) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut probe = DiskCache::open(dir.path(), u64::MAX).unwrap();
    probe.put("https://r.example/a", ETAG, &picture(0)).unwrap();
    n * probe.total_bytes() + probe.total_bytes() / 2
}

#[test]
fn put_then_get() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = DiskCache::open(dir.path(), 1 << 20).unwrap();
    assert!(cache.is_empty());
    assert_eq!(cache.get("https://r.example/x"), None);
    cache.put("https://r.example/x", ETAG, &picture(7)).unwrap();
    assert_eq!(cache.get("https://r.example/x"), Some((ETAG.to_string(), picture(7))));
    assert_eq!(cache.get("https://r.example/y"), None);
    // Replacing an entry does not count it twice.
    let before = cache.total_bytes();
    cache.put("https://r.example/x", "\"new\"", &picture(8)).unwrap();
    assert_eq!(cache.len(), 1);
    assert!(cache.total_bytes() < before);
    assert_eq!(cache.get("https://r.example/x"), Some(("\"new\"".to_string(), picture(8))));
    cache.remove("https://r.example/x");
    assert_eq!(cache.get("https://r.example/x"), None);
    assert!(files(dir.path()).is_empty());
}

#[test]
fn entries_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut cache = DiskCache::open(dir.path(), 1 << 20).unwrap();
        cache.put("https://r.example/a", ETAG, &picture(1)).unwrap();
        cache.put("https://r.example/b", "W/\"b\"", &picture(2)).unwrap();
    }
    let mut cache = DiskCache::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.get("https://r.example/a"), Some((ETAG.to_string(), picture(1))));
    assert_eq!(cache.get("https://r.example/b"), Some(("W/\"b\"".to_string(), picture(2))));
}

#[test]
fn the_least_recently_used_entry_goes_first() {
    let dir = tempfile::tempdir().unwrap();
    let max = room_for(3);
    let mut cache = DiskCache::open(dir.path(), max).unwrap();
    for name in ["a", "b", "c"] {
        cache.put(&format!("https://r.example/{name}"), ETAG, &picture(1)).unwrap();
    }
    assert!(cache.get("https://r.example/a").is_some()); // a is now newer than b
    cache.put("https://r.example/d", ETAG, &picture(1)).unwrap();
    assert_eq!(cache.len(), 3);
    assert!(cache.total_bytes() <= max);
    assert_eq!(cache.get("https://r.example/b"), None);
    for name in ["a", "c", "d"] {
        assert!(cache.get(&format!("https://r.example/{name}")).is_some(), "{name}");
    }
    assert_eq!(files(dir.path()).len(), 3);
}

#[test]
fn the_order_of_use_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut cache = DiskCache::open(dir.path(), u64::MAX).unwrap();
        for name in ["a", "b", "c"] {
            cache.put(&format!("https://r.example/{name}"), ETAG, &picture(1)).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(cache.get("https://r.example/a").is_some());
    }
    // Reopened with room for two: b, the least recently used, goes.
    let mut cache = DiskCache::open(dir.path(), room_for(2)).unwrap();
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.get("https://r.example/b"), None);
    assert!(cache.get("https://r.example/a").is_some());
    assert!(cache.get("https://r.example/c").is_some());
}

#[test]
fn file_names_are_hashes_never_url_text() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("cache");
    let mut cache = DiskCache::open(&inner, 1 << 20).unwrap();
    let evil = "https://r.example/../../escape/../../../tmp/owned";
    cache.put(evil, ETAG, &picture(3)).unwrap();
    cache.put("/absolute/path", ETAG, &picture(4)).unwrap();
    assert_eq!(files(dir.path()), ["cache"]);
    for name in files(&inner) {
        let stem = name.strip_suffix(".entry").unwrap();
        assert_eq!(stem.len(), 64);
        assert!(stem.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_eq!(cache.get(evil), Some((ETAG.to_string(), picture(3))));
}

#[test]
fn an_entry_bigger_than_the_cache_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = DiskCache::open(dir.path(), 500).unwrap();
    cache.put("https://r.example/small", ETAG, b"tiny").unwrap();
    cache.put("https://r.example/big", ETAG, &picture(1)).unwrap();
    assert_eq!(cache.get("https://r.example/big"), None);
    assert!(cache.get("https://r.example/small").is_some());
    assert!(cache.total_bytes() <= 500);
}

#[test]
fn damaged_entries_read_as_misses_and_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = DiskCache::open(dir.path(), 1 << 20).unwrap();
    cache.put("https://r.example/a", ETAG, &picture(1)).unwrap();
    let name = files(dir.path()).pop().unwrap();
    let path = dir.path().join(&name);
    let data = fs::read(&path).unwrap();
    fs::write(&path, &data[..data.len() - 10]).unwrap(); // torn
    assert_eq!(cache.get("https://r.example/a"), None);
    assert!(cache.is_empty());
    assert_eq!(cache.total_bytes(), 0);
    assert!(files(dir.path()).is_empty());
}

#[test]
fn leftovers_of_interrupted_writes_are_cleaned_and_foreign_files_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let stale = format!("{}.1234.1.tmp", "ab".repeat(32));
    fs::write(dir.path().join(&stale), b"half").unwrap();
    fs::write(dir.path().join("README"), b"not ours").unwrap();
    let cache = DiskCache::open(dir.path(), 1 << 20).unwrap();
    assert!(cache.is_empty());
    assert_eq!(files(dir.path()), ["README"]);
}

#[test]
fn unusable_etags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = DiskCache::open(dir.path(), 1 << 20).unwrap();
    for bad in ["", "\"a\nb\"", "\"a b\"", &"x".repeat(300)] {
        assert!(cache.put("https://r.example/a", bad, b"png").is_err(), "{bad:?}");
    }
    assert!(cache.is_empty());
    assert!(files(dir.path()).is_empty());
}
