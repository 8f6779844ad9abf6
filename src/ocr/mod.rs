//! Burned-in text reading: how much of a frame is covered by legible text (subtitles, title
//! cards, watermarks) and what it says, with Tesseract 5 (libtesseract's C API through
//! `tesseract-sys`, wrapped in [`engine`]).
//!
//! Responsible for: finding the language data before anything else starts (a missing
//! `<lang>.traineddata` is a start-up error that names the file and the fix), one engine reused
//! across frames (initialisation takes a while), turning an RGB frame into the grey, at most
//! [`TextSettings::max_width`]-wide picture Tesseract reads, and reducing Tesseract's words to a
//! [`ReadText`]: the fraction of the picture their boxes cover (union, not sum), how many there
//! are and their text. Not responsible for choosing frames or deciding what a clip's text means.
//!
//! Settings (measured on generated 1280x720 frames, see `tests/ocr.rs`): LSTM engine only (the
//! legacy engine is not loaded), two passes whose words are merged: page segmentation "sparse
//! text" (PSM 11: words anywhere, no page layout: 30% more text frames found than PSM 3's page
//! model) and then PSM 3, whose layout analysis finds what PSM 11 cannot see: the commonest
//! subtitle style, white words on a dark box over a lighter picture (`tests/ocr.rs`, release,
//! 2-core EPYC: 4 of 4 such cases read instead of 1, recall 0.62 → 0.76 at precision 1.0; median
//! per 1280x720 frame with text 39 → 68 ms, without 67 → 100 ms; both passes under the one
//! deadline), heavy noise removal (bounds the
//! time on grainy frames), frames scaled to at most 960 pixels wide and read as grey, Tesseract's
//! own messages sent to /dev/null, and OpenMP inside Tesseract limited to the calling thread (its
//! 4-thread LSTM sections spin on cores a pipeline's other stages need: 2-3x slower per frame and
//! 5x the system time on a 2-core machine).

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use std::time::Duration;

use tesseract_sys::{TessPageSegMode, TessPageSegMode_PSM_AUTO, TessPageSegMode_PSM_SPARSE_TEXT};

mod engine;
use engine::{Engine, Finished};

/// Longest text kept in [`ReadText::text`], in characters.
pub const MAX_TEXT_CHARS: usize = 200;

/// Where Debian/Ubuntu and source builds put the language files, tried in order when neither
/// [`TextSettings::data_path`] nor `TESSDATA_PREFIX` says where they are.
const DEFAULT_DATA_PATHS: &[&str] = &[
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
];

/// The page segmentation modes every frame is read with, in order (see the module
/// documentation); their words are merged.
const PAGE_SEG_MODES: [TessPageSegMode; 2] =
    [TessPageSegMode_PSM_SPARSE_TEXT, TessPageSegMode_PSM_AUTO];

/// How text is read.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSettings {
    /// Tesseract language(s), e.g. `"eng"` or `"eng+deu"`; each needs `<lang>.traineddata`.
    pub language: String,
    /// Words whose confidence (0-100) is below this are ignored. 75 by default: legible
    /// burned-in words score 85-96, while the "words" Tesseract sees in real footage (fur,
    /// grass) reached 60-75 and made text-free frames look like text at 60; 85 starts to drop
    /// real words on busy backgrounds (tests/ocr.rs).
    pub min_confidence: f32,
    /// The folder holding the `.traineddata` files; `None`: `TESSDATA_PREFIX`, else the usual
    /// system folders (`/usr/share/tesseract-ocr/5/tessdata`, ...).
    pub data_path: Option<PathBuf>,
    /// Frames wider than this are scaled down (keeping the aspect ratio) before reading: fewer
    /// pixels for Tesseract, and text on a 1280-pixel frame stays large enough. 0: never.
    pub max_width: u32,
    /// Recognition stops after this long on one frame, keeping the words read so far: fine
    /// texture (a cellular automaton, foliage) can otherwise take Tesseract a minute a frame.
    pub deadline: Duration,
}

impl Default for TextSettings {
    fn default() -> Self {
        Self {
            language: "eng".to_string(),
            min_confidence: 75.0,
            data_path: None,
            max_width: 960,
            deadline: Duration::from_secs(1),
        }
    }
}

/// What was read from one frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadText {
    /// Fraction (0..=1) of the frame covered by the union of the kept words' boxes.
    pub area: f64,
    /// How many words were kept (confidence ≥ `min_confidence`, not blank, not a lone symbol).
    pub words: u32,
    /// The kept words joined by single spaces, cut to [`MAX_TEXT_CHARS`] characters.
    pub text: String,
    /// Recognition passed [`TextSettings::deadline`]: only what a finished earlier pass read
    /// is here (often nothing).
    pub gave_up: bool,
}

/// Why text could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error(
        "Tesseract language data for {language:?} not found: {} does not exist. Install it \
         (apt-get install tesseract-ocr-{language}) or point TESSDATA_PREFIX (or the OCR data \
         path setting) at a folder that holds {language}.traineddata",
        path.display()
    )]
    MissingLanguage { language: String, path: PathBuf },
    #[error("no Tesseract language data folder found (looked in {searched}); install tesseract-ocr-eng (Debian) or set TESSDATA_PREFIX to the folder holding the .traineddata files")]
    NoDataPath { searched: String },
    #[error("invalid OCR language {0:?}: expected names like \"eng\" or \"eng+deu\"")]
    BadLanguage(String),
    #[error(
        "Tesseract could not start for language {language:?} with data path {}: is {}.traineddata \
         a valid Tesseract 4/5 (LSTM) language file?",
        data_path.display(), language
    )]
    Init {
        language: String,
        data_path: PathBuf,
    },
    #[error("OCR frame {width}x{height} with stride {stride} needs {needed} bytes, got {len}")]
    BadFrame {
        width: u32,
        height: u32,
        stride: usize,
        needed: usize,
        len: usize,
    },
    #[error("Tesseract failed to recognise a {width}x{height} frame")]
    Recognize { width: u32, height: u32 },
}

/// One Tesseract engine, reused for every frame. `Send`; use it from one thread at a time.
pub struct TextReader {
    api: Engine,
    deadline: Duration,
    min_confidence: f32,
    max_width: u32,
    /// The grey picture handed to Tesseract (reused between frames).
    grey: Vec<u8>,
    /// The full-size grey picture when the frame is scaled down (reused between frames).
    full: Vec<u8>,
}

impl std::fmt::Debug for TextReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextReader")
            .field("min_confidence", &self.min_confidence)
            .field("max_width", &self.max_width)
            .finish_non_exhaustive()
    }
}

/// The folder the language files are read from, and that each of `languages` is there.
pub fn language_data_path(settings: &TextSettings) -> Result<PathBuf, OcrError> {
    let languages = languages(&settings.language)?;
    let dir = match &settings.data_path {
        Some(dir) => dir.clone(),
        None => match std::env::var_os("TESSDATA_PREFIX").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => default_data_path(&languages)?,
        },
    };
    for language in &languages {
        let path = dir.join(format!("{language}.traineddata"));
        if !path.is_file() {
            return Err(OcrError::MissingLanguage {
                language: language.to_string(),
                path,
            });
        }
    }
    Ok(dir)
}

fn languages(language: &str) -> Result<Vec<&str>, OcrError> {
    let parts: Vec<&str> = language.split('+').collect();
    let valid = |l: &str| {
        !l.is_empty()
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if parts.iter().all(|l| valid(l)) {
        Ok(parts)
    } else {
        Err(OcrError::BadLanguage(language.to_string()))
    }
}

/// The first system folder that holds all `languages`, else the first that exists (so the error
/// names a file in it).
fn default_data_path(languages: &[&str]) -> Result<PathBuf, OcrError> {
    let existing: Vec<&Path> = DEFAULT_DATA_PATHS
        .iter()
        .map(Path::new)
        .filter(|d| d.is_dir())
        .collect();
    let complete = existing.iter().find(|d| {
        languages
            .iter()
            .all(|l| d.join(format!("{l}.traineddata")).is_file())
    });
    match complete.or(existing.first()) {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Err(OcrError::NoDataPath {
            searched: DEFAULT_DATA_PATHS.join(", "),
        }),
    }
}

/// Limits OpenMP parallel regions started by this thread to the thread itself.
///
/// Debian's libtesseract is built with OpenMP and runs parts of the LSTM in 4-thread sections;
/// on a busy pipeline those threads spin on cores the other stages need and make a frame slower,
/// not faster (see the report in `tests/ocr.rs`). `OMP_THREAD_LIMIT` only works when set before
/// the process starts, so the same is done here through `omp_set_max_active_levels(0)` (no
/// active parallel levels: every region runs on the calling thread). It is a per-thread setting,
/// hence called before each frame. The symbol is looked up in the libgomp already loaded by
/// libtesseract; a Tesseract built without OpenMP has nothing to limit.
fn limit_openmp_to_this_thread() {
    type SetLevels = unsafe extern "C" fn(std::os::raw::c_int);
    static SET_LEVELS: std::sync::OnceLock<Option<SetLevels>> = std::sync::OnceLock::new();
    let set = SET_LEVELS.get_or_init(|| {
        // SAFETY: libgomp's initialisers have already run (libtesseract links it), opening it
        // again only takes a reference; the symbol has the C signature declared above.
        unsafe {
            let lib = libloading::Library::new("libgomp.so.1").ok()?;
            let f = *lib.get::<SetLevels>(b"omp_set_max_active_levels\0").ok()?;
            // Keep the library (and so `f`) loaded for the life of the process.
            std::mem::forget(lib);
            Some(f)
        }
    });
    if let Some(set) = set {
        // SAFETY: a plain setter of the calling thread's OpenMP state.
        unsafe { set(0) };
    }
}

impl TextReader {
    /// Finds the language data (an error naming the missing file otherwise) and starts Tesseract.
    pub fn new(settings: &TextSettings) -> Result<Self, OcrError> {
        let data_path = language_data_path(settings)?;
        let init_error = || OcrError::Init {
            language: settings.language.clone(),
            data_path: data_path.clone(),
        };
        let c_path =
            CString::new(data_path.as_os_str().as_encoded_bytes()).map_err(|_| init_error())?;
        let c_language = CString::new(settings.language.as_str())
            .map_err(|_| OcrError::BadLanguage(settings.language.clone()))?;
        let mut api = Engine::create();
        // Tesseract prints through its `debug_file` (stderr when empty): "Estimating resolution",
        // "Empty page!!", init complaints. Set before Init so that those are silenced too.
        set_variable(&mut api, c"debug_file", c"/dev/null");
        if !api.init_lstm(&c_path, &c_language) {
            return Err(init_error());
        }
        set_variable(&mut api, c"debug_file", c"/dev/null");
        // Vigorous noise removal: without it a frame of fine grain (film grain, sensor noise) can
        // take Tesseract 25 s instead of 0.3 s, with no loss on the text frames tried.
        set_variable(&mut api, c"textord_heavy_nr", c"1");
        Ok(Self {
            api,
            deadline: settings.deadline,
            min_confidence: settings.min_confidence,
            max_width: settings.max_width,
            grey: Vec::new(),
            full: Vec::new(),
        })
    }

    /// Reads the text in one frame: `rgb` holds rgb24 pixels, `stride` bytes per row.
    pub fn read(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        stride: usize,
    ) -> Result<ReadText, OcrError> {
        let needed = if width == 0 || height == 0 {
            0
        } else {
            stride * (height as usize - 1) + width as usize * 3
        };
        if stride < width as usize * 3 || rgb.len() < needed || width == 0 || height == 0 {
            return Err(OcrError::BadFrame {
                width,
                height,
                stride,
                needed,
                len: rgb.len(),
            });
        }
        let (w, h) = scaled_size(width, height, self.max_width);
        let mut grey = std::mem::take(&mut self.grey);
        if (w, h) == (width, height) {
            grey_from_rgb(rgb, width, height, stride, &mut grey);
        } else {
            grey_from_rgb(rgb, width, height, stride, &mut self.full);
            resize_bilinear(&self.full, width, height, w, h, &mut grey);
        }
        let read = self.recognize(&grey, w, h);
        self.grey = grey;
        read
    }

    /// Reads the text in a grey picture made by [`grey_from_luma`] (tightly packed, at most
    /// the reader's `max_width` wide: it is read as it is).
    pub fn read_grey(&mut self, picture: &GreyPicture) -> Result<ReadText, OcrError> {
        let (w, h) = (picture.width, picture.height);
        if picture.pixels.len() != w as usize * h as usize || w == 0 || h == 0 {
            return Err(OcrError::BadFrame {
                width: w,
                height: h,
                stride: w as usize,
                needed: w as usize * h as usize,
                len: picture.pixels.len(),
            });
        }
        self.recognize(&picture.pixels, w, h)
    }

    /// Both passes over the `w` x `h` grey picture `grey`.
    fn recognize(&mut self, grey: &[u8], w: u32, h: u32) -> Result<ReadText, OcrError> {
        let (width, height) = (w, h);
        limit_openmp_to_this_thread();
        let failed = || OcrError::Recognize { width, height };
        let started = std::time::Instant::now();
        let mut words: Vec<Word> = Vec::new();
        for mode in PAGE_SEG_MODES {
            self.api.set_page_seg_mode(mode);
            // Both passes share the one deadline.
            let left = self.deadline.saturating_sub(started.elapsed());
            // Burned-in text is seen at screen size; 70 ppi is Tesseract's own fallback for
            // pictures without a resolution, set here so that it does not estimate one (and
            // say so) per frame.
            let finished = self
                .api
                .recognize_grey(grey, w, h, 70, left)
                .map_err(|_| failed())?;
            if finished == Finished::Deadline {
                // Tesseract's results after a passed deadline are not safe to read (its TSV
                // call crashed on Tesseract 5.3): the frame counts as unread, with what an
                // earlier pass read.
                return Ok(ReadText {
                    gave_up: true,
                    ..summarize(&words, self.min_confidence, w, h)
                });
            }
            let tsv = self.api.tsv_text().ok_or_else(failed)?;
            let more = tsv_words(tsv.as_ref())
                .into_iter()
                .filter(|word| keeps(word, self.min_confidence));
            add_new_words(&mut words, more);
        }
        Ok(summarize(&words, self.min_confidence, w, h))
    }
}

/// Adds the words of a later pass that no word already there overlaps (by more than half of
/// the smaller box): the passes read the same text wherever both find it.
fn add_new_words(words: &mut Vec<Word>, more: impl Iterator<Item = Word>) {
    let known = words.len();
    for word in more {
        if !words[..known].iter().any(|w| overlaps(w, &word)) {
            words.push(word);
        }
    }
}

/// Whether two boxes share more than half of the smaller one.
fn overlaps(a: &Word, b: &Word) -> bool {
    let x = (a.left + a.width)
        .min(b.left + b.width)
        .saturating_sub(a.left.max(b.left));
    let y = (a.top + a.height)
        .min(b.top + b.height)
        .saturating_sub(a.top.max(b.top));
    let smaller = (a.width * a.height).min(b.width * b.height);
    2 * u64::from(x) * u64::from(y) > u64::from(smaller)
}

/// A grey picture the size text is read at (see [`grey_from_luma`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GreyPicture {
    pub width: u32,
    pub height: u32,
    /// `width * height` bytes, full range (0 black, 255 white).
    pub pixels: Vec<u8>,
}

/// The picture a reader with `max_width` reads, from a frame's limited-range luma plane (the Y
/// of yuv420p, `stride` bytes per row): stretched to full range and scaled down to at most
/// `max_width` (0: no limit) like [`TextReader::read`] scales RGB frames.
pub fn grey_from_luma(
    luma: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    max_width: u32,
) -> GreyPicture {
    let (w, h) = (width as usize, height as usize);
    // 16..=235 to 0..=255, 8-bit fixed point.
    let stretch = |y: u8| ((i32::from(y) - 16).clamp(0, 219) * 255 * 256 / 219 + 128) as u32 >> 8;
    let mut full = Vec::with_capacity(w * h);
    for row in luma.chunks(stride).take(h) {
        full.extend(row[..w].iter().map(|&y| stretch(y) as u8));
    }
    let (sw, sh) = scaled_size(width, height, max_width);
    let pixels = if (sw, sh) == (width, height) {
        full
    } else {
        let mut out = Vec::new();
        resize_bilinear(&full, width, height, sw, sh, &mut out);
        out
    };
    GreyPicture {
        width: sw,
        height: sh,
        pixels,
    }
}

fn set_variable(api: &mut Engine, name: &CStr, value: &CStr) {
    // Only fails for an unknown name; the names used here exist in Tesseract 4 and 5.
    let _ = api.set_variable(name, value);
}

/// The size a `width`x`height` frame is read at: at most `max_width` wide (0: no limit).
fn scaled_size(width: u32, height: u32, max_width: u32) -> (u32, u32) {
    if max_width == 0 || width <= max_width {
        return (width, height);
    }
    let h = (u64::from(height) * u64::from(max_width) + u64::from(width) / 2) / u64::from(width);
    (max_width, (h as u32).max(1))
}

/// BT.601 luma, 8-bit fixed point, into a tightly packed `out`.
fn grey_from_rgb(rgb: &[u8], width: u32, height: u32, stride: usize, out: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    out.clear();
    out.reserve(w * h);
    for y in 0..h {
        let row = &rgb[y * stride..y * stride + w * 3];
        out.extend(row.chunks_exact(3).map(|p| {
            ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2]) + 128) >> 8) as u8
        }));
    }
}

/// Bilinear resize of a packed grey picture (pixel centres aligned), 8-bit fixed-point weights.
fn resize_bilinear(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32, out: &mut Vec<u8>) {
    let (sw, sh, dw, dh) = (sw as usize, sh as usize, dw as usize, dh as usize);
    // Source position of each destination column: index and weight of the right neighbour.
    let taps = |s: usize, d: usize| -> Vec<(usize, u32)> {
        (0..d)
            .map(|i| {
                let pos = ((i as f64 + 0.5) * s as f64 / d as f64 - 0.5).clamp(0.0, (s - 1) as f64);
                let i0 = pos.floor() as usize;
                (i0, ((pos - i0 as f64) * 256.0).round() as u32)
            })
            .collect()
    };
    let xs = taps(sw, dw);
    let ys = taps(sh, dh);
    out.clear();
    out.reserve(dw * dh);
    for &(y0, fy) in &ys {
        let y1 = (y0 + 1).min(sh - 1);
        let (r0, r1) = (&src[y0 * sw..(y0 + 1) * sw], &src[y1 * sw..(y1 + 1) * sw]);
        out.extend(xs.iter().map(|&(x0, fx)| {
            let x1 = (x0 + 1).min(sw - 1);
            let top = u32::from(r0[x0]) * (256 - fx) + u32::from(r0[x1]) * fx;
            let bottom = u32::from(r1[x0]) * (256 - fx) + u32::from(r1[x1]) * fx;
            ((top * (256 - fy) + bottom * fy + 32768) >> 16) as u8
        }));
    }
}

/// One word of Tesseract's TSV output.
#[derive(Debug, Clone, PartialEq)]
struct Word {
    left: u32,
    top: u32,
    width: u32,
    height: u32,
    confidence: f32,
    text: String,
}

/// The words (level 5 rows) of Tesseract's TSV: `level page block par line word left top width
/// height conf text`.
fn tsv_words(tsv: &CStr) -> Vec<Word> {
    let tsv = tsv.to_string_lossy();
    tsv.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.splitn(12, '\t').collect();
            if f.len() < 12 || f[0] != "5" {
                return None;
            }
            Some(Word {
                left: f[6].parse().ok()?,
                top: f[7].parse().ok()?,
                width: f[8].parse().ok()?,
                height: f[9].parse().ok()?,
                confidence: f[10].parse().ok()?,
                text: f[11].trim().to_string(),
            })
        })
        .collect()
}

/// Whether a word counts: confident, not blank and not a lone symbol (`|`, `-`, `.` are what
/// edges and noise are read as).
fn keeps(word: &Word, min_confidence: f32) -> bool {
    let mut chars = word.text.chars();
    let lone_symbol = match (chars.next(), chars.next()) {
        (None, _) => true,
        (Some(c), None) => !c.is_alphanumeric(),
        _ => false,
    };
    word.confidence >= min_confidence && !lone_symbol && word.width > 0 && word.height > 0
}

fn summarize(words: &[Word], min_confidence: f32, width: u32, height: u32) -> ReadText {
    let kept: Vec<&Word> = words.iter().filter(|w| keeps(w, min_confidence)).collect();
    let boxes: Vec<[u32; 4]> = kept
        .iter()
        .map(|w| {
            let x1 = (w.left + w.width).min(width);
            let y1 = (w.top + w.height).min(height);
            [w.left.min(x1), w.top.min(y1), x1, y1]
        })
        .collect();
    let area = union_area(&boxes) as f64 / (f64::from(width) * f64::from(height));
    let mut text = String::new();
    for w in &kept {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&w.text);
    }
    if let Some((cut, _)) = text.char_indices().nth(MAX_TEXT_CHARS) {
        text.truncate(cut);
    }
    ReadText {
        area,
        words: kept.len() as u32,
        text,
        gave_up: false,
    }
}

/// The area covered by the union of `[x0, y0, x1, y1)` boxes: a sweep over the horizontal bands
/// between box edges, merging each band's x intervals (overlaps count once).
fn union_area(boxes: &[[u32; 4]]) -> u64 {
    let mut ys: Vec<u32> = boxes.iter().flat_map(|b| [b[1], b[3]]).collect();
    ys.sort_unstable();
    ys.dedup();
    let mut total = 0u64;
    let mut spans: Vec<(u32, u32)> = Vec::new();
    for band in ys.windows(2) {
        let (y0, y1) = (band[0], band[1]);
        spans.clear();
        spans.extend(
            boxes
                .iter()
                .filter(|b| b[1] <= y0 && b[3] >= y1 && b[0] < b[2])
                .map(|b| (b[0], b[2])),
        );
        spans.sort_unstable();
        let mut covered = 0u64;
        let mut end = 0u32;
        for &(x0, x1) in &spans {
            let start = x0.max(end);
            if x1 > start {
                covered += u64::from(x1 - start);
            }
            end = end.max(x1);
        }
        total += covered * u64::from(y1 - y0);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(left: u32, top: u32, width: u32, height: u32, conf: f32, text: &str) -> Word {
        Word {
            left,
            top,
            width,
            height,
            confidence: conf,
            text: text.to_string(),
        }
    }

    #[test]
    fn union_counts_overlaps_once() {
        assert_eq!(union_area(&[]), 0);
        assert_eq!(union_area(&[[0, 0, 10, 10]]), 100);
        assert_eq!(union_area(&[[0, 0, 10, 10], [0, 0, 10, 10]]), 100);
        assert_eq!(union_area(&[[0, 0, 10, 10], [5, 5, 15, 15]]), 175);
        assert_eq!(union_area(&[[0, 0, 10, 10], [20, 0, 30, 10]]), 200);
        assert_eq!(union_area(&[[0, 0, 10, 10], [2, 2, 4, 4]]), 100);
    }

    #[test]
    fn summary_filters_and_joins() {
        let words = [
            word(0, 0, 10, 10, 95.0, "Hello"),
            word(5, 0, 10, 10, 90.0, "world"),
            word(50, 50, 10, 10, 30.0, "junk"),
            word(60, 60, 10, 10, 99.0, "|"),
            word(70, 70, 10, 10, 99.0, " "),
            word(80, 80, 10, 10, 99.0, "A"),
        ];
        let read = summarize(&words, 60.0, 100, 100);
        assert_eq!(read.words, 3);
        assert_eq!(read.text, "Hello world A");
        assert!((read.area - 0.025).abs() < 1e-9, "{}", read.area);
    }

    #[test]
    fn text_is_cut_on_a_char_boundary() {
        let words: Vec<Word> = (0..100).map(|i| word(i, 0, 1, 1, 99.0, "éé")).collect();
        let read = summarize(&words, 60.0, 200, 10);
        assert_eq!(read.text.chars().count(), MAX_TEXT_CHARS);
    }

    #[test]
    fn tsv_rows_parse() {
        let tsv = c"level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n1\t1\t0\t0\t0\t0\t0\t0\t960\t540\t-1\t\n5\t1\t1\t1\t1\t1\t10\t20\t30\t40\t96.5\tHi there\n";
        assert_eq!(tsv_words(tsv), vec![word(10, 20, 30, 40, 96.5, "Hi there")]);
    }

    #[test]
    fn scaling_and_grey() {
        assert_eq!(scaled_size(1280, 720, 960), (960, 540));
        assert_eq!(scaled_size(640, 360, 960), (640, 360));
        assert_eq!(scaled_size(1920, 1080, 0), (1920, 1080));
        let mut grey = Vec::new();
        // Two rows of one pixel each, a stride with padding.
        grey_from_rgb(&[255, 255, 255, 0, 0, 0, 0, 0], 1, 2, 4, &mut grey);
        assert_eq!(grey, vec![255, 0]);
        let mut out = Vec::new();
        resize_bilinear(&[100; 16], 4, 4, 2, 2, &mut out);
        assert_eq!(out, vec![100; 4]);
    }
}
