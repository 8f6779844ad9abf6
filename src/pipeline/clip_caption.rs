//! Captions of the clips the encoder cuts (`caption`), asked for as each clip closes, from the
//! frames the encoder is given ([`super::clip_frames`]): `caption.frames` of them spread over
//! the clip go to the output's [`CaptionPool`], whose requests are in flight while decoding
//! and encoding go on. Outcomes are keyed by the clip's first output frame.
use std::path::PathBuf;
use std::sync::Arc;

use super::clip_frames::ClosedClip;
use super::normalize::{Canvas, NormFrame};
use crate::caption::cache::CaptionCache;
use crate::caption::images::JpegMaker;
use crate::caption::pool::{CaptionPool, ClipJob, ClipPictures, Outcomes};
use crate::caption::Captioner;
use crate::error::{Error, Result};

/// The captioner of the run and the cache of the output, for the encode stage.
#[derive(Clone)]
pub struct CaptionTarget {
    pub captioner: Arc<Captioner>,
    pub cache: Arc<CaptionCache>,
}

impl std::fmt::Debug for CaptionTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptionTarget")
            .field("endpoint", &self.captioner.config.endpoint)
            .field("model", &self.captioner.config.model)
            .finish()
    }
}

/// A closed clip's canvases, made into JPEGs by a caption worker.
struct CanvasPictures(Vec<Arc<NormFrame>>);

impl ClipPictures for CanvasPictures {
    fn jpegs(&self, maker: &mut JpegMaker, size: u32) -> std::result::Result<Vec<Vec<u8>>, String> {
        self.0
            .iter()
            .map(|norm| match &norm.frame {
                Canvas::Host(frame) => maker.jpeg(frame, norm.content, size),
                _ => Err("captions need frames in host memory, got a device canvas".into()),
            })
            .collect()
    }
}

/// The encode stage's captioning: the output's worker pool.
pub struct ClipCaptioning {
    /// The output video (named in errors).
    output: PathBuf,
    frames_per_clip: u32,
    pool: CaptionPool,
    cache: Arc<CaptionCache>,
}

impl ClipCaptioning {
    pub fn start(output: &std::path::Path, target: &CaptionTarget) -> ClipCaptioning {
        ClipCaptioning {
            output: output.to_path_buf(),
            frames_per_clip: target.captioner.config.frames,
            pool: CaptionPool::start(Arc::clone(&target.captioner)),
            cache: Arc::clone(&target.cache),
        }
    }

    /// Hands a closed clip to the pool (waits while `caption.concurrency` clips wait); an
    /// error once a clip's caption failed under `on_error: fail`.
    /// `cancelled`: whether the run is being cancelled (then a wait for room ends).
    pub fn clip(&mut self, clip: &ClosedClip, cancelled: &dyn Fn() -> bool) -> Result<()> {
        let job = ClipJob {
            number: clip.start,
            name: format!("the clip from output frame {}", clip.start),
            cache: Arc::clone(&self.cache),
            pictures: Box::new(CanvasPictures(clip.spread(self.frames_per_clip))),
        };
        self.pool
            .submit(job, cancelled)
            .map_err(|why| self.failed(&why))
    }

    /// Waits for every clip's outcome (by first output frame, ascending).
    pub fn finish(self) -> Result<Outcomes> {
        let output = self.output.clone();
        self.pool
            .finish()
            .map_err(|why| Error::input(output, format!("captioning {why}")))
    }

    fn failed(&self, why: &str) -> Error {
        Error::input(&self.output, format!("captioning {why}"))
    }
}
