//! The metadata facts rules are checked against: everything `probe` knows, plus codec profile,
//! color description, bitrate, audio layout, keyframe spacing (a packet scan, no decoding) and
//! where the MP4 `moov` box sits (a top-level box walk).
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use ff::media::Type as MediaType;
use ffmpeg_next as ff;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::media::probe::{self, SourceInfo};

#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub source: SourceInfo,
    pub profile: Option<String>,
    pub color_range: Option<String>,
    pub color_primaries: Option<String>,
    /// Overall bits per second as the container states it (or size / duration).
    pub bitrate: Option<f64>,
    pub audio_channels: Option<u32>,
    pub audio_sample_rate: Option<u32>,
    /// Longest keyframe distance in seconds (only when asked for: it reads every packet).
    pub keyframe_interval_max: Option<f64>,
}

/// Collects the facts; `keyframes` asks for the packet scan.
pub fn collect(path: &Path, keyframes: bool) -> Result<Facts> {
    let (mut input, source) = probe::open(path)?;
    let video = input
        .stream(source.video_stream_index)
        .expect("probed stream");
    let params = video.parameters();
    // SAFETY: plain fields of the stream's codec parameters.
    let raw = unsafe { &*params.as_ptr() };
    let profile = unsafe {
        let name = ff::ffi::avcodec_profile_name(raw.codec_id, raw.profile);
        (!name.is_null()).then(|| {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        })
    };
    let color_range =
        unsafe { c_name(ff::ffi::av_color_range_name(raw.color_range)) }.filter(|n| n != "unknown");
    let color_primaries = unsafe { c_name(ff::ffi::av_color_primaries_name(raw.color_primaries)) }
        .filter(|n| n != "unknown");
    let bitrate = if input.bit_rate() > 0 {
        Some(input.bit_rate() as f64)
    } else {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        (source.duration > 0.0).then(|| size as f64 * 8.0 / source.duration)
    };
    let (audio_channels, audio_sample_rate) = match input.streams().best(MediaType::Audio) {
        Some(a) => {
            let raw = unsafe { &*a.parameters().as_ptr() };
            (
                Some(raw.channels.max(0) as u32),
                Some(raw.sample_rate.max(0) as u32),
            )
        }
        None => (None, None),
    };
    let keyframe_interval_max = if keyframes {
        Some(longest_keyframe_gap(
            path,
            &mut input,
            source.video_stream_index,
        )?)
    } else {
        None
    };
    Ok(Facts {
        source,
        profile,
        color_range,
        color_primaries,
        bitrate,
        audio_channels,
        audio_sample_rate,
        keyframe_interval_max,
    })
}

/// # Safety
/// `ptr` is null or a static C string from FFmpeg.
unsafe fn c_name(ptr: *const std::ffi::c_char) -> Option<String> {
    (!ptr.is_null()).then(|| {
        unsafe { std::ffi::CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    })
}

fn longest_keyframe_gap(
    path: &Path,
    input: &mut ff::format::context::Input,
    index: usize,
) -> Result<f64> {
    let tb = input.stream(index).expect("probed stream").time_base();
    let mut keyframes: Vec<i64> = Vec::new();
    let mut last = None;
    for (stream, packet) in input.packets() {
        if stream.index() != index {
            continue;
        }
        let ts = packet.pts().or(packet.dts());
        if let Some(t) = ts {
            last = Some(last.map_or(t, |l: i64| l.max(t)));
            if packet.is_key() {
                keyframes.push(t);
            }
        }
    }
    if keyframes.is_empty() {
        return Err(Error::input(path, "no keyframe in the video stream"));
    }
    keyframes.sort_unstable();
    let mut gap = keyframes.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    // The stretch after the last keyframe counts too.
    if let Some(l) = last {
        gap = gap.max(l - keyframes[keyframes.len() - 1]);
    }
    Ok(crate::media::seconds(gap, tb))
}

/// Whether an MP4/MOV file has its `moov` box before `mdat`; `None` for other containers or when
/// the top-level boxes cannot be walked.
pub fn moov_before_mdat(path: &Path) -> Option<bool> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut pos = 0u64;
    while pos + 8 <= len {
        file.seek(SeekFrom::Start(pos)).ok()?;
        let mut header = [0u8; 16];
        file.read_exact(&mut header[..8]).ok()?;
        let mut size = u64::from(u32::from_be_bytes(header[..4].try_into().ok()?));
        let kind: [u8; 4] = header[4..8].try_into().ok()?;
        if size == 1 {
            file.read_exact(&mut header[8..16]).ok()?;
            size = u64::from_be_bytes(header[8..16].try_into().ok()?);
        } else if size == 0 {
            size = len - pos;
        }
        match &kind {
            b"moov" => return Some(true),
            b"mdat" => return Some(false),
            _ if size < 8 => return None,
            _ => pos += size,
        }
    }
    None
}
