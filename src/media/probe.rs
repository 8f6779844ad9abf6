//! What an input is: container, video codec, size, rate, frame count, duration, rotation, audio.
//! Used by `framepipe probe`, recorded as `source` in the report, and checked against the limits
//! before anything is decoded.
use std::path::Path;

use ff::codec::packet::side_data::Type as SideDataType;
use ff::media::Type as MediaType;
use ffmpeg_next as ff;
use serde::Serialize;

use crate::error::{Error, Result};

/// The facts about an input's video (and whether it has audio), as ffprobe would report them.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    pub path: String,
    /// Demuxer name(s), e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub container: String,
    /// Video codec name, e.g. `h264`.
    pub codec: String,
    /// Coded (stored) size, before rotation.
    pub width: u32,
    pub height: u32,
    /// Sample aspect ratio (1/1 for square pixels).
    pub sample_aspect_ratio: [i32; 2],
    /// Size as displayed: sample aspect ratio and rotation applied.
    pub display_width: u32,
    pub display_height: u32,
    pub pixel_format: String,
    pub bit_depth: u8,
    /// Average frame rate (frames / seconds).
    pub fps: f64,
    /// Frame count from the container (0 when the container does not say; the decode count is in
    /// the report's stats).
    pub frames: u64,
    pub duration: f64,
    /// Clockwise rotation applied for display: 0, 90, 180 or 270 (the angle of `ffmpeg`'s
    /// autorotate; ffprobe prints its counter-clockwise negation, e.g. 90 for our 270).
    pub rotation: u32,
    pub has_audio: bool,
    pub audio_codec: Option<String>,
    #[serde(skip)]
    pub video_stream_index: usize,
    #[serde(skip)]
    pub audio_stream_index: Option<usize>,
}

/// Opens `path` with FFmpeg and reads its stream facts. Errors say what is wrong in words a user
/// understands (missing, a folder, empty, not media, no video, unknown codec).
pub fn probe(path: &Path) -> Result<SourceInfo> {
    open(path).map(|(_, info)| info)
}

/// Opens `path` and reads its facts, keeping the opened input for callers that go on reading.
pub fn open(path: &Path) -> Result<(ff::format::context::Input, SourceInfo)> {
    super::init();
    check_readable_file(path)?;
    let input = ff::format::input(&path).map_err(|e| match e {
        ff::Error::InvalidData => Error::input(path, "not a readable media file (FFmpeg: invalid data found when processing input; truncated, or not a video)"),
        other => Error::input(path, format!("cannot open as media: {other}")),
    })?;
    let info = from_input(path, &input)?;
    Ok((input, info))
}

fn check_readable_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::input(path, "no such file"),
        _ => Error::io(path, "cannot read", e),
    })?;
    if meta.is_dir() {
        return Err(Error::input(path, "is a directory, not a video file"));
    }
    if meta.len() == 0 {
        return Err(Error::input(path, "empty file (0 bytes)"));
    }
    Ok(())
}

/// Reads the facts from an already opened input.
pub fn from_input(path: &Path, input: &ff::format::context::Input) -> Result<SourceInfo> {
    let stream = best_video_stream(path, input)?;
    let params = stream.parameters();
    let codec_id = params.id();
    check_decodable(path, &params)?;
    let raw = unsafe { &*params.as_ptr() };
    let (width, height) = (raw.width.max(0) as u32, raw.height.max(0) as u32);
    let sar = ff::Rational::new(raw.sample_aspect_ratio.num, raw.sample_aspect_ratio.den);
    let sar = if sar.numerator() > 0 && sar.denominator() > 0 {
        sar
    } else {
        ff::Rational::new(1, 1)
    };
    let (pixel_format, bit_depth) = pixel_format_of(raw.format);
    let rotation = rotation_of(&stream);
    let display_w = (f64::from(width) * f64::from(sar)).round().max(1.0) as u32;
    let (display_width, display_height) = if rotation % 180 == 90 {
        (height, display_w)
    } else {
        (display_w, height)
    };
    let audio = input.streams().best(MediaType::Audio);
    Ok(SourceInfo {
        path: path.display().to_string(),
        container: input.format().name().to_string(),
        codec: codec_id.name().to_string(),
        width,
        height,
        sample_aspect_ratio: [sar.numerator(), sar.denominator()],
        display_width,
        display_height,
        pixel_format,
        bit_depth,
        fps: fps_of(&stream),
        frames: stream.frames().max(0) as u64,
        duration: duration_of(input, &stream),
        rotation,
        has_audio: audio.is_some(),
        audio_codec: audio
            .as_ref()
            .map(|a| a.parameters().id().name().to_string()),
        video_stream_index: stream.index(),
        audio_stream_index: audio.map(|a| a.index()),
    })
}

/// The input's main video stream, or an error listing the kinds of stream it has instead.
fn best_video_stream<'a>(
    path: &Path,
    input: &'a ff::format::context::Input,
) -> Result<ff::format::stream::Stream<'a>> {
    input.streams().best(MediaType::Video).ok_or_else(|| {
        let kinds: Vec<String> = input
            .streams()
            .map(|s| format!("{:?}", s.parameters().medium()).to_lowercase())
            .collect();
        Error::input(
            path,
            format!(
                "no video stream (streams found: {})",
                if kinds.is_empty() {
                    "none".into()
                } else {
                    kinds.join(", ")
                }
            ),
        )
    })
}

/// Refuses a video codec this FFmpeg cannot decode, naming it and its fourcc tag.
fn check_decodable(path: &Path, params: &ff::codec::Parameters) -> Result<()> {
    let codec_id = params.id();
    if codec_id == ff::codec::Id::None || ff::decoder::find(codec_id).is_none() {
        let tag = unsafe { (*params.as_ptr()).codec_tag };
        let fourcc: String = tag
            .to_le_bytes()
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        return Err(Error::input(
            path,
            format!("unsupported video codec ({codec_id:?}, tag {fourcc:?}): this FFmpeg has no decoder for it"),
        ));
    }
    Ok(())
}

/// The name and bit depth of the raw `AVPixelFormat` value `format`.
fn pixel_format_of(format: i32) -> (String, u8) {
    let pixel = ff::format::Pixel::from(unsafe {
        std::mem::transmute::<i32, ff::ffi::AVPixelFormat>(format)
    });
    match pixel.descriptor() {
        Some(d) => (d.name().to_string(), unsafe {
            (*d.as_ptr()).comp[0].depth as u8
        }),
        None => ("unknown".to_string(), 0),
    }
}

/// The average frame rate, else the stream's base rate; 0 when neither is known.
fn fps_of(stream: &ff::format::stream::Stream) -> f64 {
    let rate = stream.avg_frame_rate();
    let rate = if rate.numerator() > 0 && rate.denominator() > 0 {
        rate
    } else {
        stream.rate()
    };
    if rate.denominator() > 0 {
        f64::from(rate)
    } else {
        0.0
    }
}

/// Seconds: the stream's duration, else the container's; 0 when neither says.
fn duration_of(input: &ff::format::context::Input, stream: &ff::format::stream::Stream) -> f64 {
    if stream.duration() > 0 {
        super::seconds(stream.duration(), stream.time_base())
    } else if input.duration() > 0 {
        input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
    } else {
        0.0
    }
}

/// The clockwise display rotation from the stream's display matrix, snapped to a multiple of 90
/// (what `ffmpeg`'s autorotate does).
fn rotation_of(stream: &ff::format::stream::Stream) -> u32 {
    for side in stream.side_data() {
        if side.kind() == SideDataType::DisplayMatrix && side.data().len() >= 36 {
            let m: Vec<i32> = side
                .data()
                .chunks_exact(4)
                .take(9)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            return rotation_from_matrix(&m);
        }
    }
    0
}

/// The clockwise rotation that displays the frame upright, snapped to a multiple of 90: the
/// negation of FFmpeg's `av_display_rotation_get` (a counter-clockwise angle), as `ffmpeg`'s
/// autorotate computes it.
pub fn rotation_from_matrix(m: &[i32]) -> u32 {
    let fp = |v: i32| f64::from(v) / 65536.0;
    let scale0 = fp(m[0]).hypot(fp(m[3]));
    let scale1 = fp(m[1]).hypot(fp(m[4]));
    if scale0 == 0.0 || scale1 == 0.0 {
        return 0;
    }
    let clockwise = (fp(m[1]) / scale1).atan2(fp(m[0]) / scale0).to_degrees();
    ((clockwise / 90.0).round() as i64 * 90).rem_euclid(360) as u32
}

/// Refuses inputs outside the configured limits, before anything is decoded.
pub fn check_limits(info: &SourceInfo, limits: &crate::config::LimitsConfig) -> Result<()> {
    let path = Path::new(&info.path);
    if info.width < limits.min_side || info.height < limits.min_side {
        return Err(Error::input(
            path,
            format!(
                "video is {}x{}: smaller than the minimum side of {} px (limits.min_side)",
                info.width, info.height, limits.min_side
            ),
        ));
    }
    let pixels = u64::from(info.width) * u64::from(info.height);
    if pixels > limits.max_pixels {
        return Err(Error::input(
            path,
            format!(
                "video is {}x{} ({pixels} pixels per frame): over the limit of {} (limits.max_pixels); raise it in the pipeline config to accept such inputs",
                info.width, info.height, limits.max_pixels
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::rotation_from_matrix;

    /// The matrices MP4 muxers write for a `rotate` tag of 90/180/270 (movenc's write_matrix).
    fn mov_matrix(a: i32, b: i32, c: i32, d: i32) -> Vec<i32> {
        vec![a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0, 1 << 30]
    }

    #[test]
    fn rotation_snaps_like_ffmpeg_autorotate() {
        assert_eq!(rotation_from_matrix(&mov_matrix(1, 0, 0, 1)), 0);
        assert_eq!(rotation_from_matrix(&mov_matrix(0, 1, -1, 0)), 90);
        assert_eq!(rotation_from_matrix(&mov_matrix(-1, 0, 0, -1)), 180);
        assert_eq!(rotation_from_matrix(&mov_matrix(0, -1, 1, 0)), 270);
        assert_eq!(rotation_from_matrix(&[0; 9]), 0);
    }
}
