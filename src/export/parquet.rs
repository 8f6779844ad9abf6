//! Parquet tables (Apache Arrow's Rust writer, snappy-compressed, one row group per file): one
//! row per clip, one typed column per field, the clip's MP4 by path only. Columns:
//!
//! | column | type |
//! |---|---|
//! | `key`, `id`, `input`, `output`, `config_hash`, `motion_source` | utf8 |
//! | `file` | utf8, null without a clip file (relative to `output`) |
//! | `scene`, `start_frame`, `end_frame`, `frames` | int64 |
//! | `start_time`, `end_time`, `motion` | float64 |
//! | `tags` | list<struct<label: utf8, score: float64>>, null without tags |
//! | `embedding` | fixed_size_list<float32, D>, null without one; the column is left out when no clip of the export has one |
//! | `latent_frames` | int64, null without latents |
//! | `blank`, `frozen` | float64, null in outputs of versions before them |
//! | `phash` | list<uint64>: the clip's signature (16 frames' pHash bits), empty in outputs of versions before it |
//! | `text_area`, `text_words`, `text` | float64, int64, utf8: the clip's burned-in text, null when not read |
//! | `heads` | list<struct<name: utf8, score: float64>>, empty without heads |
//! | `dropped` | list<utf8>, the reasons `clips.filters` dropped the clip (empty when kept) |
//! | `caption`, `caption_model` | utf8: the clip's caption and the model that wrote it, null without one |
//!
//! Signed integers because most readers (pandas, Spark, DuckDB's casts) handle them best. D is
//! the first embedding's size across the whole export, so every file has one schema; a clip with
//! another size is an error before anything is written. An export without any embedding has no
//! `embedding` column (a zero-length fixed-size list breaks Hugging Face `datasets`).
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray, UInt64Array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{ClipRef, ExportError};
use crate::output::files::CLIPS_FILE;

impl Layout {
    /// The columns, as the export's `schema.json` lists them.
    pub fn columns(&self) -> Vec<super::card::Column> {
        self.schema
            .fields()
            .iter()
            .map(|f| super::card::Column {
                name: f.name().clone(),
                kind: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect()
    }
}

/// Where `embedding` sits among the columns (after `tags`), when there is one.
const EMBEDDING_COLUMN: usize = 15;

/// The export's one schema.
pub struct Layout {
    schema: SchemaRef,
    /// D of the `embedding` column; `None`: no clip of the export has an embedding, and the
    /// column is left out (a zero-length fixed-size list is refused by Hugging Face `datasets`).
    embedding_dim: Option<usize>,
}

impl Layout {
    /// The schema for `clips`; refuses embeddings of different sizes, naming the clips.
    pub fn of(clips: &[ClipRef]) -> Result<Layout, ExportError> {
        let mut first: Option<(usize, &ClipRef)> = None;
        for c in clips {
            let Some(e) = &c.clip.record.embedding else {
                continue;
            };
            match first {
                None => first = Some((e.len(), c)),
                Some((dim, f)) if dim != e.len() => {
                    return Err(ExportError::input(
                        c.output.dir.join(CLIPS_FILE),
                        format!(
                            "line {}: clip {} has an embedding of {} values, but clip {} of {} has {dim}: one Parquet column holds one size",
                            c.clip.line,
                            c.clip.record.id,
                            e.len(),
                            f.clip.record.id,
                            f.output.dir.display()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let embedding_dim = first.map(|(dim, _)| dim);
        let utf8 = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        let int = |name: &str, nullable| Field::new(name, DataType::Int64, nullable);
        let float = |name: &str| Field::new(name, DataType::Float64, false);
        let mut fields = vec![
            utf8("key", false),
            utf8("id", false),
            utf8("file", true),
            utf8("input", false),
            utf8("output", false),
            utf8("config_hash", false),
            int("scene", false),
            int("start_frame", false),
            int("end_frame", false),
            int("frames", false),
            float("start_time"),
            float("end_time"),
            float("motion"),
            utf8("motion_source", false),
            Field::new("tags", DataType::List(Arc::new(tag_item())), true),
            int("latent_frames", true),
            Field::new("blank", DataType::Float64, true),
            Field::new("frozen", DataType::Float64, true),
            Field::new("phash", DataType::List(Arc::new(phash_item())), false),
            Field::new("text_area", DataType::Float64, true),
            int("text_words", true),
            utf8("text", true),
            Field::new("heads", DataType::List(Arc::new(head_item())), false),
            Field::new("dropped", DataType::List(Arc::new(reason_item())), false),
            utf8("caption", true),
            utf8("caption_model", true),
        ];
        if let Some(dim) = embedding_dim {
            let item = Arc::new(Field::new_list_field(DataType::Float32, false));
            let column = Field::new(
                "embedding",
                DataType::FixedSizeList(item, dim_i32(dim)?),
                true,
            );
            fields.insert(EMBEDDING_COLUMN, column);
        }
        let schema = Schema::new(fields);
        Ok(Layout {
            schema: Arc::new(schema),
            embedding_dim,
        })
    }
}

fn tag_fields() -> Fields {
    Fields::from(vec![
        Field::new("label", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
    ])
}

fn tag_item() -> Field {
    Field::new_list_field(DataType::Struct(tag_fields()), false)
}

fn head_fields() -> Fields {
    Fields::from(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
    ])
}

fn head_item() -> Field {
    Field::new_list_field(DataType::Struct(head_fields()), false)
}

fn phash_item() -> Field {
    Field::new_list_field(DataType::UInt64, false)
}

fn reason_item() -> Field {
    Field::new_list_field(DataType::Utf8, false)
}

fn dim_i32(dim: usize) -> Result<i32, ExportError> {
    i32::try_from(dim).map_err(|_| ExportError::Usage(format!("an embedding of {dim} values")))
}

/// Writes one Parquet file of `clips` at `path`.
pub fn write_shard(path: &Path, layout: &Layout, clips: &[ClipRef]) -> Result<(), ExportError> {
    let batch = batch(layout, clips)
        .map_err(|e| ExportError::write(path, "assembling the Parquet columns", e))?;
    let fail = |e: parquet::errors::ParquetError| ExportError::write(path, "writing Parquet", e);
    let file =
        File::create(path).map_err(|e| ExportError::write(path, "creating the Parquet file", e))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // One row group per file: a shard is read whole, and readers parallelize over files.
        .set_max_row_group_row_count(Some(clips.len().max(1)))
        .build();
    let mut writer = ArrowWriter::try_new(
        BufWriter::with_capacity(1 << 20, file),
        layout.schema.clone(),
        Some(properties),
    )
    .map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.close().map_err(fail)?;
    Ok(())
}

/// The clips as one record batch of the layout's schema.
fn batch(layout: &Layout, clips: &[ClipRef]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let records = || clips.iter().map(|c| &c.clip.record);
    let strings = |f: &dyn Fn(&ClipRef) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(clips.iter().map(f)))
    };
    let ints = |values: Vec<u64>| -> Result<ArrayRef, arrow_schema::ArrowError> {
        let values = values
            .into_iter()
            .map(|v| {
                i64::try_from(v).map_err(|_| {
                    arrow_schema::ArrowError::InvalidArgumentError(format!("{v} > i64"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Int64Array::from(values)))
    };
    let floats = |f: &dyn Fn(&crate::output::clip_record::ClipRecord) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(records().map(f)))
    };
    let optional_strings =
        |f: &dyn Fn(&crate::output::clip_record::ClipRecord) -> Option<&str>| -> ArrayRef {
            Arc::new(StringArray::from(records().map(f).collect::<Vec<_>>()))
        };
    let mut columns: Vec<ArrayRef> = vec![
        strings(&|c| c.clip.key.clone()),
        strings(&|c| c.clip.record.id.clone()),
        optional_strings(&|r| r.file.as_deref()),
        strings(&|c| c.output.marker.input.clone()),
        strings(&|c| c.output.dir.display().to_string()),
        strings(&|c| c.output.marker.config_hash.clone()),
        ints(records().map(|r| r.scene as u64).collect())?,
        ints(records().map(|r| r.start_frame).collect())?,
        ints(records().map(|r| r.end_frame).collect())?,
        ints(records().map(|r| r.frames).collect())?,
        floats(&|r| r.start_time),
        floats(&|r| r.end_time),
        floats(&|r| r.motion),
        Arc::new(StringArray::from_iter_values(
            records().map(|r| r.motion_source.name()),
        )),
        tags(clips)?,
        Arc::new(Int64Array::from(
            records()
                .map(|r| r.latents.as_ref().map(|l| l.frames as i64))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            records().map(|r| r.blank).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            records().map(|r| r.frozen).collect::<Vec<_>>(),
        )),
        phashes(clips)?,
        Arc::new(Float64Array::from(
            records()
                .map(|r| r.text.as_ref().map(|t| t.area))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            records()
                .map(|r| r.text.as_ref().map(|t| i64::from(t.words)))
                .collect::<Vec<_>>(),
        )),
        optional_strings(&|r| r.text.as_ref().map(|t| t.text.as_str())),
        heads(clips)?,
        reasons(clips)?,
        optional_strings(&|r| r.caption.as_deref()),
        optional_strings(&|r| r.caption_model.as_deref()),
    ];
    if let Some(dim) = layout.embedding_dim {
        columns.insert(EMBEDDING_COLUMN, embeddings(dim, clips)?);
    }
    RecordBatch::try_new(layout.schema.clone(), columns)
}

fn tags(clips: &[ClipRef]) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let all = || {
        clips
            .iter()
            .filter_map(|c| c.clip.record.tags.as_ref())
            .flatten()
    };
    let labels = StringArray::from_iter_values(all().map(|t| t.label.as_str()));
    let scores = Float64Array::from_iter_values(all().map(|t| t.score));
    let items = StructArray::try_new(tag_fields(), vec![Arc::new(labels), Arc::new(scores)], None)?;
    let lengths = clips
        .iter()
        .map(|c| c.clip.record.tags.as_ref().map_or(0, Vec::len));
    let valid: Vec<bool> = clips.iter().map(|c| c.clip.record.tags.is_some()).collect();
    Ok(Arc::new(ListArray::try_new(
        Arc::new(tag_item()),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(items),
        Some(NullBuffer::from(valid)),
    )?))
}

fn heads(clips: &[ClipRef]) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let all = || clips.iter().flat_map(|c| &c.clip.record.heads);
    let names = StringArray::from_iter_values(all().map(|(name, _)| name.as_str()));
    let scores = Float64Array::from_iter_values(all().map(|(_, &score)| score));
    let items = StructArray::try_new(head_fields(), vec![Arc::new(names), Arc::new(scores)], None)?;
    let lengths = clips.iter().map(|c| c.clip.record.heads.len());
    Ok(Arc::new(ListArray::try_new(
        Arc::new(head_item()),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(items),
        None,
    )?))
}

fn phashes(clips: &[ClipRef]) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let values =
        UInt64Array::from_iter_values(clips.iter().flat_map(|c| &c.clip.record.phash).map(|h| h.0));
    let lengths = clips.iter().map(|c| c.clip.record.phash.len());
    Ok(Arc::new(ListArray::try_new(
        Arc::new(phash_item()),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(values),
        None,
    )?))
}

fn reasons(clips: &[ClipRef]) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let values = StringArray::from_iter_values(
        clips
            .iter()
            .flat_map(|c| &c.clip.record.dropped)
            .map(String::as_str),
    );
    let lengths = clips.iter().map(|c| c.clip.record.dropped.len());
    Ok(Arc::new(ListArray::try_new(
        Arc::new(reason_item()),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(values),
        None,
    )?))
}

fn embeddings(dim: usize, clips: &[ClipRef]) -> Result<ArrayRef, arrow_schema::ArrowError> {
    // A null row still takes D slots in the values (zeros).
    let mut values = Vec::with_capacity(clips.len() * dim);
    for c in clips {
        match &c.clip.record.embedding {
            Some(e) => values.extend_from_slice(e),
            None => values.extend(std::iter::repeat_n(0.0, dim)),
        }
    }
    let valid: Vec<bool> = clips
        .iter()
        .map(|c| c.clip.record.embedding.is_some())
        .collect();
    let size = i32::try_from(dim).expect("checked by Layout::of");
    // With the length given, since D = 0 values cannot tell it.
    Ok(Arc::new(FixedSizeListArray::try_new_with_length(
        Arc::new(Field::new_list_field(DataType::Float32, false)),
        size,
        Arc::new(Float32Array::from(values)),
        Some(NullBuffer::from(valid)),
        clips.len(),
    )?))
}
