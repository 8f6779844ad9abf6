//! Thin, safe wrappers over FFmpeg (through `ffmpeg-next`): probing an input, decoding its video,
//! normalizing frames to the target geometry, and encoding + muxing the result.
pub mod cut;
pub mod decode;
pub mod encode;
pub mod normalize;
pub mod probe;
pub mod small;

use std::sync::Once;

use ffmpeg_next as ff;

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

/// A swscale context for one output format and size, rebuilt whenever the input's format or
/// size changes (streams may change mid-way). Movable to the stage thread that uses it.
pub struct Scaler {
    context: Option<(
        ff::software::scaling::Context,
        (ff::format::Pixel, u32, u32),
    )>,
    output: (ff::format::Pixel, u32, u32),
    flags: ff::software::scaling::Flags,
}

// SAFETY: swscale contexts have no thread affinity; they must only not be used from two threads
// at once, which `&mut self` ensures.
unsafe impl Send for Scaler {}

impl Scaler {
    pub fn new(
        format: ff::format::Pixel,
        width: u32,
        height: u32,
        flags: ff::software::scaling::Flags,
    ) -> Self {
        Scaler {
            context: None,
            output: (format, width, height),
            flags,
        }
    }

    /// The input (format, width, height) the context was last built for.
    pub fn last_input(&self) -> Option<(ff::format::Pixel, u32, u32)> {
        self.context.as_ref().map(|(_, input)| *input)
    }

    /// Changes the output size (the context is rebuilt on the next frame).
    pub fn set_output_size(&mut self, width: u32, height: u32) {
        if (self.output.1, self.output.2) != (width, height) {
            self.output = (self.output.0, width, height);
            self.context = None;
        }
    }

    /// Scales/converts `src` into `dst` (allocated by swscale's wrapper when empty).
    pub fn run(
        &mut self,
        src: &ff::frame::Video,
        dst: &mut ff::frame::Video,
    ) -> Result<(), ff::Error> {
        let input = (src.format(), src.width(), src.height());
        if self.last_input() != Some(input) {
            let (format, width, height) = self.output;
            let context = ff::software::scaling::Context::get(
                input.0, input.1, input.2, format, width, height, self.flags,
            )?;
            self.context = Some((context, input));
        }
        let (context, _) = self.context.as_mut().expect("context just built");
        context.run(src, dst)
    }
}

/// Packed RGB24 copies of frames at a fixed size, for the model stages (they take RGB bytes).
pub struct RgbFrames {
    scaler: Scaler,
    out: ff::frame::Video,
}

impl RgbFrames {
    pub fn new(width: u32, height: u32, flags: ff::software::scaling::Flags) -> Self {
        RgbFrames {
            scaler: Scaler::new(ff::format::Pixel::RGB24, width, height, flags),
            out: ff::frame::Video::new(ff::format::Pixel::RGB24, width, height),
        }
    }

    /// Converts `src` and appends the `rect` part (the whole picture when `None`) to `bytes`,
    /// row by row without padding; returns the appended width and height.
    pub fn append(
        &mut self,
        src: &ff::frame::Video,
        rect: Option<normalize::Rect>,
        bytes: &mut Vec<u8>,
    ) -> Result<(u32, u32), ff::Error> {
        self.scaler.run(src, &mut self.out)?;
        let r = rect.unwrap_or(normalize::Rect {
            x: 0,
            y: 0,
            width: self.out.width(),
            height: self.out.height(),
        });
        let stride = self.out.stride(0);
        let data = self.out.data(0);
        for y in r.y..r.y + r.height {
            let start = y as usize * stride + r.x as usize * 3;
            bytes.extend_from_slice(&data[start..start + r.width as usize * 3]);
        }
        Ok((r.width, r.height))
    }
}
