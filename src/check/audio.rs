//! The audio half of the check decode pass: EBU R128 loudness (integrated LUFS, true peak, via
//! the `ebur128` crate) and silent stretches (20 ms windows whose peak stays below a level).
use std::path::Path;

use ebur128::{EbuR128, Mode};
use ff::format::sample::Type as SampleLayout;
use ff::format::Sample;
use ffmpeg_next as ff;

use crate::error::{Error, Result};

/// Silence is judged per window of this many seconds.
const WINDOW_SECONDS: f64 = 0.02;

#[derive(Debug, Clone, Default)]
pub struct AudioScan {
    /// (start, end) seconds of each stretch below the silence level.
    pub silence: Vec<(f64, f64)>,
    pub integrated_lufs: Option<f64>,
    /// Highest true peak over all channels, dBTP.
    pub true_peak_dbtp: Option<f64>,
}

pub struct AudioAnalyzer {
    path: std::path::PathBuf,
    decoder: ff::decoder::Audio,
    resampler: Option<(ff::software::resampling::Context, u32, u32)>,
    loudness: Option<EbuR128>,
    silence_level: Option<f32>,
    window: usize,
    window_peak: f32,
    window_filled: usize,
    samples_seen: u64,
    silent_since: Option<u64>,
    silence: Vec<(f64, f64)>,
    rate: u32,
    /// The meter is made on the first frame, when channels and rate are known.
    measure_loudness: bool,
}

impl AudioAnalyzer {
    /// `silence_db`: the level (dBFS) under which a window is silent; `loudness`: measure R128.
    pub fn new(
        path: &Path,
        stream: &ff::format::stream::Stream,
        silence_db: Option<f64>,
        loudness: bool,
    ) -> Result<Self> {
        let ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| Error::ffmpeg(path, "reading audio parameters", e))?;
        let mut decoder = ctx.decoder();
        decoder.set_packet_time_base(stream.time_base());
        let decoder = decoder
            .audio()
            .map_err(|e| Error::ffmpeg(path, "opening the audio decoder", e))?;
        Ok(AudioAnalyzer {
            path: path.to_path_buf(),
            decoder,
            resampler: None,
            loudness: None,
            silence_level: silence_db.map(|db| 10f64.powf(db / 20.0) as f32),
            window: 0,
            window_peak: 0.0,
            window_filled: 0,
            samples_seen: 0,
            silent_since: None,
            silence: Vec::new(),
            rate: 0,
            measure_loudness: loudness,
        })
    }

    pub fn send_packet(&mut self, packet: &ff::Packet) -> Result<()> {
        // A damaged audio packet is skipped, as a player would.
        if self.decoder.send_packet(packet).is_ok() {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<()> {
        let mut frame = ff::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            self.analyze(&mut frame)?;
        }
        Ok(())
    }

    fn analyze(&mut self, frame: &mut ff::frame::Audio) -> Result<()> {
        if frame.channel_layout().is_empty() {
            frame.set_channel_layout(ff::ChannelLayout::default(i32::from(frame.channels())));
        }
        let channels = u32::from(frame.channels().max(1));
        let rate = frame.rate().max(1);
        if self.resampler.as_ref().map(|(_, c, r)| (*c, *r)) != Some((channels, rate)) {
            let ctx = ff::software::resampling::Context::get(
                frame.format(),
                frame.channel_layout(),
                rate,
                Sample::F32(SampleLayout::Packed),
                frame.channel_layout(),
                rate,
            )
            .map_err(|e| Error::ffmpeg(&self.path, "setting up audio conversion", e))?;
            self.loudness = if self.measure_loudness {
                Some(
                    EbuR128::new(channels, rate, Mode::I | Mode::TRUE_PEAK)
                        .map_err(|e| Error::input(&self.path, format!("loudness meter: {e:?}")))?,
                )
            } else {
                None
            };
            self.resampler = Some((ctx, channels, rate));
            self.rate = rate;
            self.window = ((f64::from(rate) * WINDOW_SECONDS) as usize).max(1);
        }
        let mut out = ff::frame::Audio::new(
            Sample::F32(SampleLayout::Packed),
            frame.samples() + 64,
            frame.channel_layout(),
        );
        let (resampler, _, _) = self.resampler.as_mut().expect("resampler just built");
        resampler
            .run(frame, &mut out)
            .map_err(|e| Error::ffmpeg(&self.path, "converting audio", e))?;
        let n = out.samples() * channels as usize;
        let samples: &[f32] = &out.plane::<f32>(0)[..n];
        if let Some(meter) = self.loudness.as_mut() {
            meter
                .add_frames_f32(samples)
                .map_err(|e| Error::input(&self.path, format!("loudness meter: {e:?}")))?;
        }
        if let Some(level) = self.silence_level {
            for chunk in samples.chunks(channels as usize) {
                let peak = chunk.iter().fold(0f32, |m, s| m.max(s.abs()));
                self.window_peak = self.window_peak.max(peak);
                self.window_filled += 1;
                self.samples_seen += 1;
                if self.window_filled == self.window {
                    let window_start = self.samples_seen - self.window as u64;
                    match (self.window_peak < level, self.silent_since) {
                        (true, None) => self.silent_since = Some(window_start),
                        (false, Some(start)) => {
                            self.silence.push((
                                start as f64 / f64::from(self.rate),
                                window_start as f64 / f64::from(self.rate),
                            ));
                            self.silent_since = None;
                        }
                        _ => {}
                    }
                    self.window_peak = 0.0;
                    self.window_filled = 0;
                }
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<AudioScan> {
        let _ = self.decoder.send_eof();
        self.drain()?;
        if let Some(start) = self.silent_since {
            self.silence.push((
                start as f64 / f64::from(self.rate.max(1)),
                self.samples_seen as f64 / f64::from(self.rate.max(1)),
            ));
        }
        let (integrated_lufs, true_peak_dbtp) = match &self.loudness {
            Some(meter) => {
                let lufs = meter.loudness_global().ok().filter(|v| v.is_finite());
                let channels = self.resampler.as_ref().map_or(0, |(_, c, _)| *c);
                let peak = (0..channels)
                    .filter_map(|c| meter.true_peak(c).ok())
                    .fold(0f64, f64::max);
                (lufs, (peak > 0.0).then(|| 20.0 * peak.log10()))
            }
            None => (None, None),
        };
        Ok(AudioScan {
            silence: self.silence,
            integrated_lufs,
            true_peak_dbtp,
        })
    }
}
