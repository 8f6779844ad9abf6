//! The Tesseract C API (`tesseract-sys`) behind a safe handle: the calls `TextReader` makes,
//! and recognition under a deadline (a frame of fine texture can keep Tesseract busy for a
//! minute; `tesseract-plumbing`'s wrapper has no monitor, which is why it is not used).
use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::time::Duration;

use tesseract_sys::{
    TessBaseAPI, TessBaseAPICreate, TessBaseAPIDelete, TessBaseAPIGetTsvText, TessBaseAPIInit2,
    TessBaseAPIRecognize, TessBaseAPISetImage, TessBaseAPISetPageSegMode,
    TessBaseAPISetSourceResolution, TessBaseAPISetVariable, TessDeleteText, TessMonitorCreate,
    TessMonitorDelete, TessMonitorSetDeadlineMSecs, TessOcrEngineMode_OEM_LSTM_ONLY,
    TessPageSegMode,
};

/// One `TessBaseAPI`, deleted on drop.
pub struct Engine(NonNull<TessBaseAPI>);

// SAFETY: a TessBaseAPI may move between threads; `&mut self` keeps it to one at a time.
unsafe impl Send for Engine {}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: created by TessBaseAPICreate, deleted once.
        unsafe { TessBaseAPIDelete(self.0.as_ptr()) }
    }
}

/// How a recognition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Every word was recognised.
    Complete,
    /// The deadline passed: the words recognised until then are all there is.
    Deadline,
}

impl Engine {
    pub fn create() -> Self {
        // SAFETY: no arguments; a null result is an allocation failure.
        let api = unsafe { TessBaseAPICreate() };
        Engine(NonNull::new(api).expect("TessBaseAPICreate returned null"))
    }

    /// Sets a Tesseract variable; false when Tesseract does not know the name.
    pub fn set_variable(&mut self, name: &CStr, value: &CStr) -> bool {
        // SAFETY: valid handle and NUL-terminated strings that outlive the call.
        unsafe { TessBaseAPISetVariable(self.0.as_ptr(), name.as_ptr(), value.as_ptr()) != 0 }
    }

    /// Starts the LSTM engine for `language` from `data_path`; false when Tesseract cannot.
    pub fn init_lstm(&mut self, data_path: &CStr, language: &CStr) -> bool {
        // SAFETY: valid handle and strings; Tesseract copies what it keeps.
        unsafe {
            TessBaseAPIInit2(
                self.0.as_ptr(),
                data_path.as_ptr(),
                language.as_ptr(),
                TessOcrEngineMode_OEM_LSTM_ONLY,
            ) == 0
        }
    }

    pub fn set_page_seg_mode(&mut self, mode: TessPageSegMode) {
        // SAFETY: valid handle.
        unsafe { TessBaseAPISetPageSegMode(self.0.as_ptr(), mode) }
    }

    /// Recognises the `width` x `height` grey picture `grey` (tightly packed), at `ppi`, giving
    /// up after `deadline`.
    pub fn recognize_grey(
        &mut self,
        grey: &[u8],
        width: u32,
        height: u32,
        ppi: i32,
        deadline: Duration,
    ) -> Result<Finished, ()> {
        let needed = width as usize * height as usize;
        if grey.len() < needed || width == 0 || height == 0 {
            return Err(());
        }
        let (w, h) = (
            i32::try_from(width).map_err(|_| ())?,
            i32::try_from(height).map_err(|_| ())?,
        );
        let ms = i32::try_from(deadline.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `grey` holds width*height bytes and outlives the recognition (Tesseract
        // copies the picture in SetImage); the monitor lives until after Recognize returns.
        unsafe {
            TessBaseAPISetImage(self.0.as_ptr(), grey.as_ptr(), w, h, 1, w);
            TessBaseAPISetSourceResolution(self.0.as_ptr(), ppi);
            let monitor = TessMonitorCreate();
            if monitor.is_null() {
                return Err(());
            }
            TessMonitorSetDeadlineMSecs(monitor, ms);
            let started = std::time::Instant::now();
            let status = TessBaseAPIRecognize(self.0.as_ptr(), monitor);
            TessMonitorDelete(monitor);
            match status {
                0 => Ok(Finished::Complete),
                // Tesseract returns -1 both for a failure and for a passed deadline; the clock
                // tells them apart.
                _ if started.elapsed() >= deadline => Ok(Finished::Deadline),
                _ => Err(()),
            }
        }
    }

    /// The words of the last recognition as Tesseract's TSV (level 5 rows are words).
    pub fn tsv_text(&mut self) -> Option<CString> {
        // SAFETY: valid handle; the returned text is copied and then freed with TessDeleteText.
        unsafe {
            let text = TessBaseAPIGetTsvText(self.0.as_ptr(), 0);
            if text.is_null() {
                return None;
            }
            let owned = CStr::from_ptr(text).to_owned();
            TessDeleteText(text);
            Some(owned)
        }
    }
}
