//! Never paying twice: every caption an output got, in `captions.jsonl` inside the output
//! folder, one line per request ever answered. A line's key is the SHA-256 of the settings
//! ([`crate::config::CaptionConfig::settings_id`]) and the exact JPEG bytes sent, so the same
//! frames asked the same way are answered from here, and a changed prompt or model asks again.
//!
//! Lines are appended as answers arrive, each in one `write` (a killed run leaves whole lines,
//! or a last broken one that loading skips), and a key is written once.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The cache file's name in an output folder.
pub const CAPTIONS_FILE: &str = "captions.jsonl";

/// One answered request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachedCaption {
    /// `sha256:<hex>` of the settings and the frames sent.
    pub key: String,
    pub caption: String,
    /// The model that answered.
    pub model: String,
    /// The settings' id ([`crate::config::CaptionConfig::settings_id`]).
    pub settings: String,
}

/// The key of a request: the settings' id and each JPEG's bytes, in order.
pub fn request_key(settings_id: &str, jpegs: &[Vec<u8>]) -> String {
    let mut h = Sha256::new();
    h.update(settings_id.as_bytes());
    for jpeg in jpegs {
        h.update((jpeg.len() as u64).to_le_bytes());
        h.update(jpeg);
    }
    format!("sha256:{:x}", h.finalize())
}

/// The captions known for one output, and the file new ones are appended to.
pub struct CaptionCache {
    path: PathBuf,
    known: Mutex<HashMap<String, CachedCaption>>,
    file: Mutex<std::fs::File>,
}

impl CaptionCache {
    /// The cache at `path`, holding its own lines and those of `earlier` files (a previous
    /// output's, an interrupted run's), which are copied into it.
    pub fn open(path: &Path, earlier: &[PathBuf]) -> Result<CaptionCache> {
        let mut known = HashMap::new();
        let mut lines = Vec::new();
        // Its own lines first: an earlier file's line already copied in is not copied again.
        for source in [path]
            .into_iter()
            .chain(earlier.iter().map(PathBuf::as_path))
        {
            for line in read_lines(source)? {
                if !known.contains_key(&line.key) {
                    if source != path {
                        lines.push(line.clone());
                    }
                    known.insert(line.key.clone(), line);
                }
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, "opening the caption cache", e))?;
        for line in &lines {
            file.write_all(&encode(line))
                .map_err(|e| Error::io(path, "copying earlier captions", e))?;
        }
        Ok(CaptionCache {
            path: path.to_path_buf(),
            known: Mutex::new(known),
            file: Mutex::new(file),
        })
    }

    pub fn get(&self, key: &str) -> Option<CachedCaption> {
        self.known.lock().expect("cache lock").get(key).cloned()
    }

    /// Records an answer (once per key) and appends it to the file.
    pub fn put(&self, line: CachedCaption) -> Result<()> {
        let mut known = self.known.lock().expect("cache lock");
        if known.contains_key(&line.key) {
            return Ok(());
        }
        self.file
            .lock()
            .expect("cache file lock")
            .write_all(&encode(&line))
            .map_err(|e| Error::io(&self.path, "appending a caption", e))?;
        known.insert(line.key.clone(), line);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.known.lock().expect("cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn encode(line: &CachedCaption) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(line).expect("a cache line serializes");
    bytes.push(b'\n');
    bytes
}

/// The lines of a cache file (none when it does not exist). A line that does not parse is
/// skipped with a warning: a killed run's last, half-written one.
fn read_lines(path: &Path) -> Result<Vec<CachedCaption>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, "reading the caption cache", e)),
    };
    let mut out = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str(line) {
            Ok(line) => out.push(line),
            Err(e) => tracing::warn!(
                file = %path.display(),
                line = n + 1,
                error = %e,
                "skipping a broken caption cache line"
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(key: &str) -> CachedCaption {
        CachedCaption {
            key: key.into(),
            caption: format!("caption {key}"),
            model: "m".into(),
            settings: "s".into(),
        }
    }

    #[test]
    fn keys_follow_settings_and_bytes() {
        let a = request_key("s", &[vec![1, 2], vec![3]]);
        assert_eq!(a, request_key("s", &[vec![1, 2], vec![3]]));
        assert_ne!(a, request_key("t", &[vec![1, 2], vec![3]]));
        assert_ne!(a, request_key("s", &[vec![1], vec![2, 3]]));
        assert!(a.starts_with("sha256:"));
    }

    #[test]
    fn lines_are_written_once_and_earlier_files_are_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.jsonl");
        std::fs::write(
            &old,
            format!(
                "{}\n{{\"key\": \"half",
                serde_json::to_string(&line("a")).unwrap()
            ),
        )
        .unwrap();
        let path = dir.path().join(CAPTIONS_FILE);
        let cache = CaptionCache::open(&path, std::slice::from_ref(&old)).unwrap();
        assert_eq!(cache.get("a"), Some(line("a")));
        cache.put(line("b")).unwrap();
        cache.put(line("b")).unwrap();
        drop(cache);
        let again = CaptionCache::open(&path, &[old]).unwrap();
        assert_eq!(again.len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}
