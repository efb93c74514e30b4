//! `onnx`: any ONNX image model, run with tract on the luma plane.
//!
//! In `patches` mode the model scores `input_width` x `input_height` patches cut at native
//! resolution from a fixed grid of `patches` positions aligned to 16 pixels (the codec's
//! macroblock grid), and the frame's score is their mean; in `resize` mode it scores the whole
//! frame scaled (box filter) to its input size. Input values are `(luma * scale - mean) / std`
//! on every channel. Every `frame_step`-th frame of a segment is scored and its verdict holds
//! until the next scored frame. The model is checked once at load time with a dry run, so a
//! model whose input or output does not fit the configuration fails before any input is read.

use std::sync::Arc;

use tract_onnx::prelude::*;
use vqa_core::config::{OnnxConfig, OnnxMode};
use vqa_core::model::{Segment, VideoFrame};
use vqa_core::report::{Finding, IncidentKind, Measurements};
use vqa_core::{time, Detector, DetectorName, Micros};

use crate::runs::Runs;

type Plan = Arc<TypedRunnableModel>;

pub struct OnnxDetector {
    plan: Plan,
    config: OnnxConfig,
    batch: usize,
    outputs_per_item: usize,
    min_duration: Micros,
}

/// Why a model could not be used; the message names the file.
#[derive(Debug)]
pub struct ModelError(pub String);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

impl OnnxDetector {
    pub fn load(config: &OnnxConfig) -> Result<Self, ModelError> {
        let path = std::path::Path::new(&config.model);
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            let detail = e.to_string();
            let detail = detail.lines().next().unwrap_or_default().to_string();
            ModelError(format!(
                "onnx model {}: {what}: {detail}; check onnx.model and the input settings",
                path.display()
            ))
        };
        if !path.is_file() {
            return Err(ModelError(format!(
                "onnx model {}: no such file; set onnx.model to a .onnx file (the repository ships models/blockiness.onnx)",
                path.display()
            )));
        }
        let batch = match config.mode {
            OnnxMode::Patches => config.patches as usize,
            OnnxMode::Resize => 1,
        };
        let shape = [
            batch,
            config.channels as usize,
            config.input_height as usize,
            config.input_width as usize,
        ];
        let plan = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| fail("cannot read it as ONNX", &e))?
            .with_input_fact(0, f32::fact(shape).into())
            .map_err(|e| fail("cannot set its input shape", &e))?
            .into_optimized()
            .map_err(|e| fail(&format!("does not take input {shape:?}"), &e))?
            .into_runnable()
            .map_err(|e| fail("cannot prepare it", &e))?;
        let dry = Tensor::zero::<f32>(&shape).map_err(|e| fail("dry run", &e))?;
        let out = plan
            .run(tvec!(dry.into()))
            .map_err(|e| fail("dry run failed", &e))?;
        let first = out
            .first()
            .ok_or_else(|| ModelError(format!("onnx model {}: no output", path.display())))?;
        let len = first.len();
        if len < batch || len % batch != 0 || len / batch <= config.output_index as usize {
            return Err(ModelError(format!(
                "onnx model {}: output has {len} values for {batch} inputs, no element {} per input; check onnx.output_index",
                path.display(),
                config.output_index
            )));
        }
        Ok(OnnxDetector {
            plan,
            config: config.clone(),
            batch,
            outputs_per_item: len / batch,
            min_duration: time::from_secs(config.min_duration),
        })
    }

    /// Top-left corners of the patches of a `w` x `h` frame.
    fn patch_corners(&self, w: usize, h: usize) -> Option<Vec<(usize, usize)>> {
        let (pw, ph) = (
            self.config.input_width as usize,
            self.config.input_height as usize,
        );
        if w < pw || h < ph {
            return None;
        }
        let n = self.batch;
        // A grid of about the frame's aspect ratio with at least n cells.
        let mut cols = ((n as f64 * w as f64 / h as f64).sqrt().ceil() as usize).clamp(1, n);
        let mut rows = n.div_ceil(cols);
        while rows * cols < n {
            cols += 1;
            rows = n.div_ceil(cols);
        }
        let place = |i: usize, cells: usize, extent: usize, size: usize| {
            let span = extent - size;
            let centre = (2 * i + 1) * span / (2 * cells);
            (centre / 16 * 16).min(span)
        };
        Some(
            (0..n)
                .map(|k| (place(k % cols, cols, w, pw), place(k / cols, rows, h, ph)))
                .collect(),
        )
    }

    fn input(&self, frame: &VideoFrame) -> Option<Tensor> {
        let c = &self.config;
        let (w, h, s) = (
            frame.width as usize,
            frame.height as usize,
            frame.stride as usize,
        );
        let (pw, ph, ch) = (
            c.input_width as usize,
            c.input_height as usize,
            c.channels as usize,
        );
        let (scale, mean, std) = (c.scale as f32, c.mean as f32, c.std as f32);
        let norm = |v: f32| (v * scale - mean) / std;
        let mut data = Vec::with_capacity(self.batch * ch * ph * pw);
        match c.mode {
            OnnxMode::Patches => {
                for (x0, y0) in self.patch_corners(w, h)? {
                    let start = data.len();
                    for y in y0..y0 + ph {
                        let row = &frame.luma[y * s + x0..y * s + x0 + pw];
                        data.extend(row.iter().map(|&p| norm(f32::from(p))));
                    }
                    for _ in 1..ch {
                        data.extend_from_within(start..start + ph * pw);
                    }
                }
            }
            OnnxMode::Resize => {
                for oy in 0..ph {
                    let (y0, y1) = (oy * h / ph, ((oy + 1) * h / ph).max(oy * h / ph + 1));
                    for ox in 0..pw {
                        let (x0, x1) = (ox * w / pw, ((ox + 1) * w / pw).max(ox * w / pw + 1));
                        let mut sum = 0u32;
                        for y in y0..y1.min(h) {
                            sum += frame.luma[y * s + x0..y * s + x1.min(w)]
                                .iter()
                                .map(|&p| u32::from(p))
                                .sum::<u32>();
                        }
                        let n = ((y1.min(h) - y0) * (x1.min(w) - x0)).max(1) as f32;
                        data.push(norm(sum as f32 / n));
                    }
                }
                for _ in 1..ch {
                    data.extend_from_within(0..ph * pw);
                }
            }
        }
        Tensor::from_shape(&[self.batch, ch, ph, pw], &data).ok()
    }

    /// The frame's score: the mean over its patches (or its single resized input).
    pub fn score(&self, frame: &VideoFrame) -> Option<f64> {
        let input = self.input(frame)?;
        let out = self.plan.run(tvec!(input.into())).ok()?;
        let values = out.first()?.to_plain_array_view::<f32>().ok()?;
        let values: Vec<f32> = values.iter().copied().collect();
        let k = self.config.output_index as usize;
        let sum: f64 = (0..self.batch)
            .filter_map(|i| values.get(i * self.outputs_per_item + k))
            .map(|&v| f64::from(v))
            .sum();
        Some(sum / self.batch as f64)
    }
}

impl Detector for OnnxDetector {
    fn name(&self) -> DetectorName {
        DetectorName::Onnx
    }

    fn analyze_measuring(&self, segment: &Segment, m: &mut Measurements) -> Vec<Finding> {
        let mut runs = Runs::new(IncidentKind::Onnx, self.min_duration);
        let step = self.config.frame_step.max(1) as usize;
        let frames = &segment.video;
        for i in (0..frames.len()).step_by(step) {
            let last = &frames[(i + step).min(frames.len()) - 1];
            let score = self.score(&frames[i]);
            if let Some(s) = score {
                m.add("onnx.score", s);
            }
            let hit = score.map(|s| [("score", s)]);
            let defective = score.is_some_and(|s| s >= self.config.threshold);
            runs.push(
                frames[i].pts,
                last.end(),
                hit.as_ref().filter(|_| defective).map(|h| &h[..]),
            );
        }
        runs.finish()
    }
}
