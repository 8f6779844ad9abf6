//! Thin, safe wrappers over FFmpeg (through `ffmpeg-next`): probing an input, decoding its video,
//! normalizing frames to the target geometry, and encoding + muxing the result.
pub mod clip_mux;
pub mod cut;
pub mod decode;
pub mod encode;
pub mod normalize;
pub mod probe;
pub mod small;
pub mod thumbnail;

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
    /// YUV→RGB with the matrix and range each frame is tagged with (see [`RgbFrames`]).
    honor_color_tags: bool,
    /// The (swscale colorspace, full range) the current context was set up for; `None` until
    /// set (a new context starts at swscale's BT.601 default).
    applied_matrix: Option<(i32, i32)>,
    /// RGB→YUV with BT.709 coefficients into limited range (see [`Scaler::to_bt709`]).
    to_bt709: bool,
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
            honor_color_tags: false,
            applied_matrix: None,
            to_bt709: false,
        }
    }

    /// For RGB input: YUV out with BT.709 coefficients in limited range (what HD video is
    /// tagged with), instead of swscale's BT.601 default.
    pub fn to_bt709(mut self) -> Self {
        self.to_bt709 = true;
        self
    }

    /// Converts YUV to RGB with the matrix and range each frame is tagged with (BT.709 for HD
    /// video, as `ffmpeg`'s scale filter does), instead of swscale's fixed BT.601 default.
    pub fn honoring_color_tags(mut self) -> Self {
        self.honor_color_tags = true;
        self
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
            self.applied_matrix = None;
        }
        let (context, _) = self.context.as_mut().expect("context just built");
        if self.to_bt709 && self.applied_matrix.is_none() {
            // SAFETY: a live context; the coefficient table is static in libswscale.
            unsafe {
                let table = ff::ffi::sws_getCoefficients(ff::ffi::SWS_CS_ITU709);
                ff::ffi::sws_setColorspaceDetails(
                    context.as_mut_ptr(),
                    table,
                    1,
                    table,
                    0,
                    0,
                    1 << 16,
                    1 << 16,
                );
            }
            self.applied_matrix = Some((ff::ffi::SWS_CS_ITU709, 0));
        }
        if self.honor_color_tags {
            let wanted = (
                swscale_matrix(src.color_space()),
                i32::from(src.color_range() == ff::color::Range::JPEG),
            );
            if self.applied_matrix != Some(wanted) {
                // SAFETY: a live context; the coefficient tables are static in libswscale.
                unsafe {
                    let table = ff::ffi::sws_getCoefficients(wanted.0);
                    ff::ffi::sws_setColorspaceDetails(
                        context.as_mut_ptr(),
                        table,
                        wanted.1,
                        table,
                        1,
                        0,
                        1 << 16,
                        1 << 16,
                    );
                }
                self.applied_matrix = Some(wanted);
            }
        }
        context.run(src, dst)
    }
}

/// swscale's name for a frame's YUV matrix; untagged video gets BT.601, as in `ffmpeg`.
fn swscale_matrix(space: ff::color::Space) -> i32 {
    use ff::color::Space;
    match space {
        Space::BT709 => ff::ffi::SWS_CS_ITU709,
        Space::FCC => ff::ffi::SWS_CS_FCC,
        Space::SMPTE240M => ff::ffi::SWS_CS_SMPTE240M,
        Space::BT2020NCL | Space::BT2020CL => ff::ffi::SWS_CS_BT2020,
        _ => ff::ffi::SWS_CS_DEFAULT,
    }
}

/// Packed RGB24 copies of frames at a fixed size, for the model stages (they take RGB bytes),
/// converted with the matrix and range each frame is tagged with: the colors a player (and
/// `ffmpeg -pix_fmt rgb24`) shows, not swscale's BT.601 default applied to BT.709 video.
pub struct RgbFrames {
    scaler: Scaler,
    out: ff::frame::Video,
}

impl RgbFrames {
    pub fn new(width: u32, height: u32, flags: ff::software::scaling::Flags) -> Self {
        RgbFrames {
            scaler: Scaler::new(ff::format::Pixel::RGB24, width, height, flags)
                .honoring_color_tags(),
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

/// How a frame's pixels travel to the libtorch side (the boundary's definition): packed RGB24
/// made here by swscale, or YUV 4:2:0 planes converted (and cropped) on the device.
pub use framepipe_proto::{FrameLayout, Matrix};

/// The part of a frame the model sees, as the boundary names it.
pub fn crop_of(r: normalize::Rect) -> framepipe_proto::Crop {
    framepipe_proto::Crop {
        x: r.x,
        y: r.y,
        width: r.width,
        height: r.height,
    }
}

/// The model stages' frame packer: RGB made here by swscale, or (`on_device`) the YUV planes
/// as they are, for the device to convert (a GPU then uploads half the bytes and spares the
/// CPU cores the conversion, which x264 wants).
pub struct ModelFrames {
    rgb: Option<RgbFrames>,
    on_device: bool,
    flags: ff::software::scaling::Flags,
}

impl ModelFrames {
    pub fn new(on_device: bool, flags: ff::software::scaling::Flags) -> Self {
        ModelFrames {
            rgb: None,
            on_device,
            flags,
        }
    }

    /// Appends `src` (its `rect` part for the model) to `bytes`; returns how it is laid out.
    pub fn append(
        &mut self,
        src: &ff::frame::Video,
        rect: Option<normalize::Rect>,
        bytes: &mut Vec<u8>,
    ) -> Result<FrameLayout, ff::Error> {
        let (w, h) = (src.width(), src.height());
        if self.on_device && src.format() == ff::format::Pixel::YUV420P && w % 2 == 0 && h % 2 == 0
        {
            for (plane, (pw, ph)) in [(0, (w, h)), (1, (w / 2, h / 2)), (2, (w / 2, h / 2))] {
                let stride = src.stride(plane);
                let data = src.data(plane);
                for y in 0..ph as usize {
                    bytes.extend_from_slice(&data[y * stride..y * stride + pw as usize]);
                }
            }
            return Ok(FrameLayout::yuv420p(
                (w, h),
                matrix_of(src.color_space()),
                src.color_range() == ff::color::Range::JPEG,
                rect.map(crop_of),
            ));
        }
        let flags = self.flags;
        let rgb = self.rgb.get_or_insert_with(|| RgbFrames::new(w, h, flags));
        let (width, height) = rgb.append(src, rect, bytes)?;
        Ok(FrameLayout::rgb24(width, height))
    }
}

/// The matrix the libtorch side's YUV conversion takes (as [`swscale_matrix`] picks it).
pub fn matrix_of(space: ff::color::Space) -> Matrix {
    match swscale_matrix(space) {
        ff::ffi::SWS_CS_ITU709 => Matrix::Bt709,
        ff::ffi::SWS_CS_FCC => Matrix::Fcc,
        ff::ffi::SWS_CS_SMPTE240M => Matrix::Smpte240m,
        ff::ffi::SWS_CS_BT2020 => Matrix::Bt2020,
        _ => Matrix::Bt601,
    }
}
