//! WebDataset shards (<https://github.com/webdataset/webdataset>): plain tar files whose members
//! are grouped into samples by key. Per clip, in this order: `<key>.mp4` (the clip file, when the
//! record has one), `<key>.json` (the `clips.jsonl` record plus a `source` object naming the input,
//! the output folder and the config hash), `<key>.txt` (the caption, UTF-8: the member
//! text-video loaders read), `<key>.npy` (the embedding, float32 1-D), `<key>.latents.npy` (the latent rows [n, C, h, w] as stored: F16 or F32; BF16,
//! which numpy lacks, widened to F32 exactly). Members carry fixed metadata (mode 0644, uid/gid
//! 0, mtime 0), so the same outputs always give byte-identical shards. Every optional member is
//! written for every clip when any clip of the export has it ([`Members`]; empty otherwise).
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use serde::Serialize;

use super::latents::Shards;
use super::{npy, ClipRef, ExportError, Output};
use crate::output::clip_record::ClipRecord;

/// The `.json` member: the record as `clips.jsonl` has it, and where it came from.
#[derive(Serialize)]
struct SampleJson<'a> {
    #[serde(flatten)]
    record: &'a ClipRecord,
    source: Source<'a>,
}

#[derive(Serialize)]
struct Source<'a> {
    /// The input video (the done marker's `input`).
    input: &'a str,
    /// The output folder the clip was read from.
    output: String,
    config_hash: &'a str,
}

/// The optional members every sample of an export carries: Hugging Face `datasets` refuses
/// WebDataset tars whose samples do not share one set of member types, so a member some clip
/// has is written for every clip, empty where the clip has none: `.mp4` of 0 bytes, `.txt` "",
/// `.npy` a float32 array of length 0, `.latents.npy` 0 rows of the first latents' dtype and
/// frame shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Members {
    pub mp4: bool,
    pub txt: bool,
    pub npy: bool,
    /// The dtype and [C, h, w] of the first clip's latents, when any clip has some.
    pub latents: Option<(npy::Dtype, [usize; 3])>,
}

impl Members {
    pub fn of(clips: &[ClipRef]) -> Result<Members, ExportError> {
        let records = || clips.iter().map(|c| &c.clip.record);
        let mut latents = None;
        for c in clips.iter().filter(|c| c.clip.record.latents.is_some()) {
            if let Some(rows) = Shards::new(&c.output.dir).rows(&c.clip.record)? {
                let [_, channels, h, w] = rows.shape;
                latents = Some((rows.dtype, [channels, h, w]));
                break;
            }
        }
        Ok(Members {
            mp4: records().any(|r| r.file.is_some()),
            txt: records().any(|r| r.caption.is_some()),
            npy: records().any(|r| r.embedding.is_some()),
            latents,
        })
    }
}

/// Checks every clip's latents before anything is written (shards readable, tensors as
/// expected, row counts as the records say).
pub fn check_latents(outputs: &[Output]) -> Result<(), ExportError> {
    for output in outputs {
        let mut shards = Shards::new(&output.dir);
        for clip in &output.clips {
            shards.check(&clip.record)?;
        }
    }
    Ok(())
}

/// Writes one tar of `clips` at `path`.
pub fn write_shard(path: &Path, clips: &[ClipRef], members: Members) -> Result<(), ExportError> {
    let fail = |e: std::io::Error| ExportError::write(path, "writing the shard", e);
    let file = File::create(path).map_err(fail)?;
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    // Latent shards stay mapped while consecutive clips come from the same output folder.
    let mut latents: Option<(&Path, Shards)> = None;
    for c in clips {
        let record = &c.clip.record;
        let key = &c.clip.key;
        if let (None, true) = (&record.file, members.mp4) {
            append_bytes(&mut tar, &format!("{key}.mp4"), &[]).map_err(fail)?;
        }
        if let Some(file) = &record.file {
            let clip_path = c.output.dir.join(file);
            let clip_file = File::open(&clip_path)
                .map_err(|e| ExportError::write(&clip_path, "reading the clip file", e))?;
            let size = clip_file
                .metadata()
                .map_err(|e| ExportError::write(&clip_path, "reading the clip file", e))?
                .len();
            append(&mut tar, &format!("{key}.mp4"), size, clip_file).map_err(fail)?;
        }
        let json = serde_json::to_vec(&SampleJson {
            record,
            source: Source {
                input: &c.output.marker.input,
                output: c.output.dir.display().to_string(),
                config_hash: &c.output.marker.config_hash,
            },
        })
        .expect("a clip record serializes");
        append_bytes(&mut tar, &format!("{key}.json"), &json).map_err(fail)?;
        if members.txt {
            let caption = record.caption.as_deref().unwrap_or("");
            append_bytes(&mut tar, &format!("{key}.txt"), caption.as_bytes()).map_err(fail)?;
        }
        if members.npy {
            let embedding = record.embedding.as_deref().unwrap_or(&[]);
            append_bytes(&mut tar, &format!("{key}.npy"), &npy::f32_vector(embedding))
                .map_err(fail)?;
        }
        if record.latents.is_some() {
            let dir = c.output.dir.as_path();
            if latents.as_ref().is_none_or(|(d, _)| *d != dir) {
                latents = Some((dir, Shards::new(dir)));
            }
            let (_, shards) = latents.as_mut().expect("just set");
            if let Some(rows) = shards.rows(record)? {
                let header = npy::header(rows.dtype, &rows.shape);
                let size = (header.len() + rows.data.len()) as u64;
                let member = format!("{key}.latents.npy");
                append(
                    &mut tar,
                    &member,
                    size,
                    header.as_slice().chain(&rows.data[..]),
                )
                .map_err(fail)?;
                continue;
            }
        }
        if let Some((dtype, [channels, h, w])) = members.latents {
            let none = npy::header(dtype, &[0, channels, h, w]);
            append_bytes(&mut tar, &format!("{key}.latents.npy"), &none).map_err(fail)?;
        }
    }
    let mut writer = tar.into_inner().map_err(fail)?;
    writer.flush().map_err(fail)?;
    Ok(())
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    // append_data writes a GNU long-name entry first when the name does not fit the header.
    tar.append_data(&mut header, name, data)
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    append(tar, name, bytes.len() as u64, bytes)
}
