//! A bounded on-disk cache of fetched greeting pictures, for phones.
//!
//! One file per URL, named by the SHA-256 of the URL (the URL's text never
//! becomes a path), holding the ETag and the picture. Writes go to a temporary
//! file that is renamed into place, so a reader (or a crash) never sees half
//! an entry. Past `max_bytes` the least recently used entries are removed;
//! the order of use survives a restart through the files' modification
//! times. This is the only part of the crate that does I/O.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::GreetingError;

const MAGIC: &[u8] = b"peerdial-greeting-cache 1\n";
const SUFFIX: &str = ".entry";
const TMP_SUFFIX: &str = ".tmp";
/// ETags longer than this are not kept (ours are 34 characters).
const MAX_ETAG: usize = 256;

#[derive(Debug)]
struct Entry {
    size: u64,
    /// Larger is more recent.
    used: u64,
}

/// Cached greeting pictures by URL; see the module docs.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    entries: HashMap<String, Entry>,
    total: u64,
    clock: u64,
    tmp_counter: u64,
}

impl DiskCache {
    /// Opens (creating it if needed) the cache in `dir`, keeping at most
    /// `max_bytes` of entry files. Leftover temporary files are removed;
    /// entries past the bound are evicted at once.
    pub fn open(dir: impl AsRef<Path>, max_bytes: u64) -> Result<DiskCache, GreetingError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        let mut found = Vec::new();
        for item in fs::read_dir(&dir)? {
            let item = item?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(key) = name.strip_suffix(SUFFIX).filter(|k| is_key(k)) {
                let meta = item.metadata()?;
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.push((mtime, key.to_string(), meta.len()));
            } else if name.ends_with(TMP_SUFFIX) && name.get(..64).is_some_and(is_key) {
                // A write interrupted by a crash.
                let _ = fs::remove_file(item.path());
            }
        }
        found.sort();
        let mut cache = DiskCache {
            dir,
            max_bytes,
            entries: HashMap::with_capacity(found.len()),
            total: 0,
            clock: 0,
            tmp_counter: 0,
        };
        for (_, key, size) in found {
            cache.clock += 1;
            cache.total += size;
            cache.entries.insert(key, Entry { size, used: cache.clock });
        }
        cache.evict();
        Ok(cache)
    }

    /// The cached ETag and picture for `url`, if any; marks it as used.
    /// An unreadable or damaged entry is dropped and reads as a miss.
    pub fn get(&mut self, url: &str) -> Option<(String, Vec<u8>)> {
        let key = key_of(url);
        self.entries.get(&key)?;
        let path = self.path(&key);
        let parsed = fs::read(&path).ok().and_then(|data| parse_entry(&data));
        let Some((etag, png)) = parsed else {
            tracing::debug!("dropping an unreadable greeting cache entry");
            self.forget(&key);
            return None;
        };
        self.clock += 1;
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.used = self.clock;
        }
        // The order of use across restarts; losing it only costs precision.
        if let Ok(f) = fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some((etag, png))
    }

    /// Stores `png` with its `etag` for `url`, replacing what was there, then
    /// evicts the least recently used entries past the bound. An entry
    /// bigger than the whole cache is not kept (and the URL's old entry goes).
    /// An ETag that is not visible ASCII, or is absurdly long, is refused.
    pub fn put(&mut self, url: &str, etag: &str, png: &[u8]) -> Result<(), GreetingError> {
        if etag.is_empty() || etag.len() > MAX_ETAG || !etag.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "unusable ETag").into());
        }
        let key = key_of(url);
        let mut data = Vec::with_capacity(MAGIC.len() + etag.len() + 24 + png.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(etag.as_bytes());
        data.push(b'\n');
        data.extend_from_slice(format!("{}\n", png.len()).as_bytes());
        data.extend_from_slice(png);
        let size = data.len() as u64;
        if size > self.max_bytes {
            tracing::debug!(size, max = self.max_bytes, "greeting too big to cache");
            self.forget(&key);
            return Ok(());
        }

        self.tmp_counter += 1;
        let tmp = self
            .dir
            .join(format!("{key}.{}.{}{TMP_SUFFIX}", std::process::id(), self.tmp_counter));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&data)?;
            fs::rename(&tmp, self.path(&key))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }

        self.clock += 1;
        if let Some(old) = self.entries.insert(key, Entry { size, used: self.clock }) {
            self.total -= old.size;
        }
        self.total += size;
        self.evict();
        Ok(())
    }

    /// Drops the entry for `url`, if any.
    pub fn remove(&mut self, url: &str) {
        self.forget(&key_of(url));
    }

    /// How many entries are cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes the entry files take (what `max_bytes` bounds).
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}{SUFFIX}"))
    }

    fn forget(&mut self, key: &str) {
        if let Some(entry) = self.entries.remove(key) {
            self.total -= entry.size;
            if let Err(e) = fs::remove_file(self.path(key)) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, "could not remove a greeting cache entry");
                }
            }
        }
    }

    fn evict(&mut self) {
        while self.total > self.max_bytes {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else {
                break;
            };
            self.forget(&oldest);
        }
    }
}

/// The file name stem for a URL: its SHA-256 in hex.
fn key_of(url: &str) -> String {
    hex::encode(Sha256::digest(url.as_bytes()))
}

fn is_key(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `MAGIC`, the ETag line, the length line, the picture; `None` if anything
/// does not add up (a damaged or foreign file).
fn parse_entry(data: &[u8]) -> Option<(String, Vec<u8>)> {
    let rest = data.strip_prefix(MAGIC)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let etag = std::str::from_utf8(&rest[..nl]).ok()?.to_string();
    let rest = &rest[nl + 1..];
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let len: usize = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    let png = &rest[nl + 1..];
    (png.len() == len && !etag.is_empty()).then(|| (etag, png.to_vec()))
}
