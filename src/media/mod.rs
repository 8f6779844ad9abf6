//! Thin, safe wrappers over FFmpeg (through `ffmpeg-next`): probing an input, decoding its video,
//! normalizing frames to the target geometry, and encoding + muxing the result.
pub mod decode;
pub mod encode;
pub mod normalize;
pub mod probe;
pub mod small;

use std::sync::Once;

/// Initializes FFmpeg once per process and keeps its own logging to errors only (our warnings
/// carry the file name; FFmpeg's would not).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        ffmpeg_next::init().expect("FFmpeg initializes");
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}

/// Seconds of `ts` in `time_base`.
pub fn seconds(ts: i64, time_base: ffmpeg_next::Rational) -> f64 {
    ts as f64 * f64::from(time_base.numerator()) / f64::from(time_base.denominator())
}

/// A swscale context that can move to the stage thread that uses it. swscale contexts have no
/// thread affinity; they must only not be used from two threads at once, which `&mut` ensures.
pub struct Scaler(pub ffmpeg_next::software::scaling::Context);

// SAFETY: see above; the context is owned and only reached through `&mut self`.
unsafe impl Send for Scaler {}
