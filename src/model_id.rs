//! A model folder's fingerprint: what makes embeddings from two runs comparable.
//!
//! Embeddings of different CLIP models live in unrelated spaces, so `search` must refuse to mix
//! them; a folder path says nothing (copies move, folders get overwritten). The fingerprint is a
//! SHA-256 over `config.json` and, for every weight file (sorted by name), its name, length,
//! safetensors header (tensor names, dtypes, shapes, offsets) and its first MiB of tensor data.
//! That reads about a MiB per file, not the whole multi-GB model, and still tells apart two
//! fine-tunes of one architecture (their first tensors differ).
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Bytes of tensor data hashed per weight file.
const DATA_PREFIX: u64 = 1 << 20;

/// `sha256:<hex>` of the model in `folder` (see the module comment).
pub fn fingerprint(folder: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let config = folder.join("config.json");
    hasher.update(b"config.json\0");
    // TAESD's native folders have no config: their weights say everything.
    match std::fs::read(&config) {
        Ok(text) => hasher.update(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && folder.is_dir() => {
            hasher.update(b"\0none")
        }
        Err(e) => return Err(e),
    }
    let mut weights: Vec<_> = std::fs::read_dir(folder)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "safetensors" || e == "bin")
        })
        .collect();
    weights.sort();
    for path in weights {
        let len = std::fs::metadata(&path)?.len();
        hasher.update(path.file_name().unwrap_or_default().as_encoded_bytes());
        hasher.update(b"\0");
        hasher.update(len.to_le_bytes());
        let mut file = std::fs::File::open(&path)?;
        // A safetensors file starts with its header length; header + a data prefix, or just a
        // prefix of any other format.
        let mut head = [0u8; 8];
        let header_len = match file.read_exact(&mut head) {
            Ok(()) if path.extension().is_some_and(|e| e == "safetensors") => {
                hasher.update(head);
                u64::from_le_bytes(head).min(len)
            }
            Ok(()) => {
                hasher.update(head);
                0
            }
            Err(_) => continue,
        };
        let mut rest = Vec::new();
        file.take(header_len + DATA_PREFIX).read_to_end(&mut rest)?;
        hasher.update(&rest);
    }
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_files_same_print_and_any_weight_change_shows() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("config.json"), b"{\"a\": 1}").unwrap();
        let mut weights = 16u64.to_le_bytes().to_vec();
        weights.extend(b"{\"__metadata__\":{}}"[..16].iter());
        weights.extend(vec![7u8; 4096]);
        std::fs::write(dir.join("model.safetensors"), &weights).unwrap();
        let a = fingerprint(&dir).unwrap();
        assert_eq!(a, fingerprint(&dir).unwrap());
        assert!(a.starts_with("sha256:"));
        weights[100] = 8;
        std::fs::write(dir.join("model.safetensors"), &weights).unwrap();
        assert_ne!(
            a,
            fingerprint(&dir).unwrap(),
            "a changed weight changes the print"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("framepipe-model-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
