//! A clip's latent frames out of its output's latent shards (`latents/NNNNNN.safetensors`:
//! `latents` [N, C, h, w] and `frame_index` [N] i64, output frames): the rows whose frame lies
//! in the clip's `start_frame .. end_frame`, in the order of the record's `files` and of the rows
//! within each. Shards are memory-mapped and their headers read once per output folder, since
//! consecutive clips share them; only the rows a clip needs are touched.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::Dtype;

use super::npy;
use super::ExportError;
use crate::latent_shard::LatentShard;
use crate::output::clip_record::ClipRecord;
use crate::output::files::CLIPS_FILE;

/// One mapped shard with its header read, and its `frame_index` (which clips need).
struct Shard {
    shard: LatentShard,
    frames: Vec<i64>,
}

/// A clip's latent rows, ready to follow an NPY header.
#[derive(Debug)]
pub struct Rows {
    pub dtype: npy::Dtype,
    /// n, C, h, w.
    pub shape: [usize; 4],
    /// Little-endian elements, C order. BF16 (which numpy has no dtype for) is widened to F32,
    /// exactly.
    pub data: Vec<u8>,
}

/// Where a clip's latent rows are: the row kind (dtype, C/h/w) of its shards, the rows per
/// shard, their count.
struct Located {
    kind: Option<(Dtype, [usize; 3])>,
    picked: Vec<(PathBuf, Vec<usize>)>,
    found: usize,
}

/// The shards of one output folder, opened as clips ask for them.
pub struct Shards<'a> {
    dir: &'a Path,
    open: HashMap<PathBuf, Shard>,
}

impl<'a> Shards<'a> {
    pub fn new(dir: &'a Path) -> Self {
        Shards {
            dir,
            open: HashMap::new(),
        }
    }

    /// Checks that the clip's latents can be gathered (without copying them).
    pub fn check(&mut self, clip: &ClipRecord) -> Result<(), ExportError> {
        self.locate(clip).map(|_| ())
    }

    /// The clip's rows, `None` when the record lists no latents. Errors name the shard and the
    /// clip: a missing or unreadable shard, a tensor missing or of another dtype, shards of one
    /// clip that disagree on shape, or a row count other than the record's `latents.frames`.
    pub fn rows(&mut self, clip: &ClipRecord) -> Result<Option<Rows>, ExportError> {
        let Some(located) = self.locate(clip)? else {
            return Ok(None);
        };
        let Some((dtype, [c, h, w])) = located.kind else {
            // No files listed and no frames: an empty array of unknown row shape.
            return Ok(Some(Rows {
                dtype: npy::Dtype::F32,
                shape: [0, 0, 0, 0],
                data: Vec::new(),
            }));
        };
        let out_dtype = match dtype {
            Dtype::F16 => npy::Dtype::F16,
            _ => npy::Dtype::F32,
        };
        let mut data = Vec::with_capacity(located.found * c * h * w * out_dtype.size());
        for (path, rows) in &located.picked {
            let shard = &self.open[path].shard;
            for &i in rows {
                let bytes = shard.row(i);
                match dtype {
                    Dtype::BF16 => data.extend(bytes.chunks_exact(2).flat_map(|b| {
                        // bf16 is the top half of an f32.
                        f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
                            .to_le_bytes()
                    })),
                    _ => data.extend_from_slice(bytes),
                }
            }
        }
        Ok(Some(Rows {
            dtype: out_dtype,
            shape: [located.found, c, h, w],
            data,
        }))
    }

    /// Which rows of which shards are the clip's.
    fn locate(&mut self, clip: &ClipRecord) -> Result<Option<Located>, ExportError> {
        let Some(latents) = &clip.latents else {
            return Ok(None);
        };
        let range = i64::try_from(clip.start_frame).unwrap_or(i64::MAX)
            ..i64::try_from(clip.end_frame).unwrap_or(i64::MAX);
        let mut kind: Option<(Dtype, [usize; 3])> = None;
        let mut picked: Vec<(PathBuf, Vec<usize>)> = Vec::new();
        for file in &latents.files {
            let path = super::inside(self.dir, file, &clip.id, "latent shard")?;
            let shard = self.shard(&path)?;
            let here = (shard.shard.dtype, shard.shard.row_shape);
            match kind {
                None => kind = Some(here),
                Some(first) if first != here => {
                    return Err(ExportError::input(
                        &path,
                        format!(
                            "clip {}: latents are {:?} {:?} here but {:?} {:?} in its first shard",
                            clip.id, here.0, here.1, first.0, first.1
                        ),
                    ))
                }
                Some(_) => {}
            }
            let rows: Vec<usize> = (shard.frames.iter().enumerate())
                .filter(|(_, f)| range.contains(f))
                .map(|(i, _)| i)
                .collect();
            picked.push((path, rows));
        }
        let found: usize = picked.iter().map(|(_, r)| r.len()).sum();
        if found as u64 != latents.frames {
            return Err(ExportError::input(
                self.dir.join(CLIPS_FILE),
                format!(
                    "clip {}: latents.frames is {}, but its shards ({}) hold {found} rows with frame_index in {}..{}",
                    clip.id,
                    latents.frames,
                    latents.files.join(", "),
                    clip.start_frame,
                    clip.end_frame
                ),
            ));
        }
        Ok(Some(Located {
            kind,
            picked,
            found,
        }))
    }

    fn shard(&mut self, path: &Path) -> Result<&Shard, ExportError> {
        if !self.open.contains_key(path) {
            let shard = open_shard(path)?;
            self.open.insert(path.to_path_buf(), shard);
        }
        Ok(&self.open[path])
    }
}

fn open_shard(path: &Path) -> Result<Shard, ExportError> {
    let shard = LatentShard::open(path).map_err(|m| ExportError::input(path, m))?;
    let frames = shard
        .frames
        .clone()
        .ok_or_else(|| ExportError::input(path, "no `frame_index` tensor"))?;
    Ok(Shard { shard, frames })
}
