//! One latents file as the vae stage and `vae encode` write it: `latents` [N, C, h, w] in F16,
//! BF16 or F32, `frame_index` [N] i64 (absent in `vae encode IMAGES` output), and string
//! metadata. Memory-mapped with its header checked once; rows are read where they lie. What
//! `framepipe export` and `framepipe vae decode` both read.
use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::output::tensors;

/// A mapped latents file.
pub struct LatentShard {
    map: memmap2::Mmap,
    pub dtype: Dtype,
    pub rows: usize,
    /// C, h, w.
    pub row_shape: [usize; 3],
    /// Where `latents`' data starts in the file, and one row's bytes.
    data_start: usize,
    pub row_bytes: usize,
    /// `frame_index`, when the file has one.
    pub frames: Option<Vec<i64>>,
    pub metadata: HashMap<String, String>,
}

impl LatentShard {
    /// Maps `path` and checks its header; the error message leaves naming the file to the caller.
    pub fn open(path: &Path) -> Result<LatentShard, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("latent shard: {e}"))?;
        // SAFETY: finished outputs are not written to again (a rerun replaces the folder by a
        // rename, which leaves this mapping's file intact).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("mapping: {e}"))?;
        let (header_len, header) =
            SafeTensors::read_metadata(&map).map_err(|e| format!("not a safetensors file: {e}"))?;
        let data_base = 8 + header_len;
        let latents = header
            .info(tensors::LATENTS)
            .ok_or_else(|| "no `latents` tensor".to_string())?;
        let dtype = latents.dtype;
        if !matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32) {
            return Err(format!("`latents` is {dtype:?}; expected F16, BF16 or F32"));
        }
        let &[n, c, h, w] = latents.shape.as_slice() else {
            return Err(format!(
                "`latents` has shape {:?}; expected [N, C, h, w]",
                latents.shape
            ));
        };
        let frames = match header.info(tensors::FRAME_INDEX) {
            None => None,
            Some(index) if index.dtype != Dtype::I64 || index.shape != [n] => {
                return Err(format!(
                    "`frame_index` is {:?} {:?}; expected I64 [{n}] (one per latent row)",
                    index.dtype, index.shape
                ))
            }
            Some(index) => {
                let (start, end) = index.data_offsets;
                Some(
                    map[data_base + start..data_base + end]
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                        .collect(),
                )
            }
        };
        Ok(LatentShard {
            dtype,
            rows: n,
            row_shape: [c, h, w],
            data_start: data_base + latents.data_offsets.0,
            row_bytes: c * h * w * dtype.bitsize() / 8,
            frames,
            metadata: header.metadata().clone().unwrap_or_default(),
            map,
        })
    }

    /// Row `i`'s bytes, little-endian elements of `dtype`.
    pub fn row(&self, i: usize) -> &[u8] {
        let start = self.data_start + i * self.row_bytes;
        &self.map[start..start + self.row_bytes]
    }

    /// Rows `range` widened to f32 (exactly), row after row.
    pub fn rows_f32(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let start = self.data_start + range.start * self.row_bytes;
        let bytes = &self.map[start..start + range.len() * self.row_bytes];
        match self.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        }
    }
}

/// Writes a latents file: `values` (f32, `frames.len()` rows of `row_shape`) stored as `dtype`,
/// `frame_index` = `frames`, and `metadata`.
pub fn write(
    path: &Path,
    values: &[f32],
    row_shape: &[i64],
    frames: &[i64],
    dtype: framepipe_proto::ops::LatentDtype,
    metadata: HashMap<String, String>,
) -> std::io::Result<()> {
    use framepipe_proto::ops::LatentDtype;
    use safetensors::tensor::TensorView;
    let mut shape = vec![frames.len()];
    shape.extend(row_shape.iter().map(|&d| d as usize));
    let (stored, bytes): (Dtype, Vec<u8>) = match dtype {
        LatentDtype::F32 => (
            Dtype::F32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        LatentDtype::F16 => (
            Dtype::F16,
            values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        ),
    };
    let index: Vec<u8> = frames.iter().flat_map(|f| f.to_le_bytes()).collect();
    let views = vec![
        (
            tensors::LATENTS,
            TensorView::new(stored, shape, &bytes).map_err(std::io::Error::other)?,
        ),
        (
            tensors::FRAME_INDEX,
            TensorView::new(Dtype::I64, vec![frames.len()], &index)
                .map_err(std::io::Error::other)?,
        ),
    ];
    std::fs::write(
        path,
        safetensors::serialize(views, Some(metadata)).map_err(std::io::Error::other)?,
    )
}
