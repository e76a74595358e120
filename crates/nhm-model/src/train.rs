//! The training loop: P×K batches, AdamW with warm-up and cosine decay, validation EER each
//! epoch, best-weights keeping, early stopping, per-epoch checkpoints and exact resume.
//!
//! Reproducibility: the weights are initialised from the seed, and every epoch's randomness
//! (batch composition, augmentation) comes from a generator seeded with `(seed, epoch)`, so no
//! generator state needs saving: training N epochs straight and training k epochs, stopping and
//! resuming give the same weights.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Tensor, TensorData};
use nhm_data::augment::{augment, AugmentConfig};
use nhm_data::input::InputSpec;
use nhm_data::{Dataset, GrayImage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::encoder::{check_apply, check_size, load_init, load_safetensors, read_file, write_atomic};
use crate::loss::batch_loss;
use crate::net::{EncoderNet, TrainNet};
use crate::{compute_device, CheckpointMeta, Encoder, EncoderConfig, Error, LossKind, Result, TrainConfig};

/// Sub-folder of the output folder that holds the resume checkpoint.
pub const LAST_DIR: &str = "last";
const STATE_FILE: &str = "state.json";
const MODEL_FILE: &str = "model.bpk";
const OPTIM_FILE: &str = "optim.bpk";
const BEST_FILE: &str = "best.safetensors";
const STATE_FORMAT: &str = "nhm-train-state/1";

/// Figures of one finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch number, 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f32,
    /// Validation EER (fraction) after the epoch; NaN when there is no validation set.
    #[serde(with = "nan_as_null")]
    pub val_eer: f64,
    /// Training throughput (forward + backward + update), images per second.
    pub images_per_sec: f64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch including validation, seconds.
    pub seconds: f64,
}

/// Progress reports from [`train`], in order.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    /// One optimisation step finished.
    Step {
        /// Epoch, 1-based.
        epoch: usize,
        /// Step within the epoch, 0-based.
        step: usize,
        /// Steps in each epoch.
        steps_per_epoch: usize,
        /// The batch loss.
        loss: f32,
    },
    /// An epoch finished and was validated.
    Epoch(EpochStats),
    /// A checkpoint folder was written (the resume folder, or the best encoder).
    Checkpoint(PathBuf),
    /// Validation EER did not improve for `patience` epochs: training stops after `epoch`.
    EarlyStop {
        /// The last epoch trained.
        epoch: usize,
    },
}

/// What [`train`] returns.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The best encoder by validation EER (the last one when there is no validation set).
    pub encoder: Encoder,
    /// Every epoch's figures, including those before a resume.
    pub history: Vec<EpochStats>,
    /// The epoch (1-based) the returned weights come from.
    pub best_epoch: usize,
}

/// Sizes of the data a run was started on, checked on resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DataFingerprint {
    train_subjects: usize,
    train_samples: usize,
    val_subjects: usize,
    val_samples: usize,
}

/// The resume checkpoint's header (`last/state.json`).
#[derive(Debug, Serialize, Deserialize)]
struct ResumeState {
    format: String,
    encoder: EncoderConfig,
    train: TrainConfig,
    data: DataFingerprint,
    /// Epochs completed.
    epoch: usize,
    history: Vec<EpochStats>,
    best_epoch: usize,
    #[serde(with = "nan_as_null")]
    best_eer: f64,
    bad_epochs: usize,
    finished: bool,
}

/// Trains an encoder on `train`, validating on the (subject-disjoint) `val` after each epoch.
///
/// With `out_dir`, writes after each epoch the resume checkpoint `out_dir/last/` and, whenever
/// validation improves, the best encoder to `out_dir/` (readable with [`Encoder::load`]).
/// `resume` is a `last/` folder of an earlier run with the same configurations and data; the run
/// continues after its last completed epoch and ends as the uninterrupted run would have.
/// `val` may be empty (no validation: the last weights are kept, no early stopping).
pub fn train(
    train: &Dataset,
    val: &Dataset,
    enc: &EncoderConfig,
    cfg: &TrainConfig,
    out_dir: Option<&Path>,
    resume: Option<&Path>,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<TrainOutcome> {
    train_until(train, val, enc, cfg, out_dir, resume, None, on_event)
}

/// [`train`], stopping (as if interrupted) after epoch `stop_after` when given.
#[allow(clippy::too_many_arguments)]
fn train_until(
    train: &Dataset,
    val: &Dataset,
    enc: &EncoderConfig,
    cfg: &TrainConfig,
    out_dir: Option<&Path>,
    resume: Option<&Path>,
    stop_after: Option<usize>,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<TrainOutcome> {
    enc.validate()?;
    cfg.validate()?;
    let input = cfg
        .input
        .clone()
        .unwrap_or_else(|| InputSpec::plain(enc.input_size as u32));
    let sampler = Sampler::new(train, enc.input_size)?;
    let validator = Validator::new(val, enc.input_size, cfg.max_val_impostor_pairs, cfg.seed)?;
    let fingerprint = DataFingerprint {
        train_subjects: train.n_subjects(),
        train_samples: train.samples.len(),
        val_subjects: val.n_subjects(),
        val_samples: val.samples.len(),
    };
    let p = cfg.subjects_per_batch.min(sampler.subjects.len());
    let k = cfg.samples_per_subject;
    let steps_per_epoch = (train.samples.len() / (p * k)).max(1);
    let total_steps = steps_per_epoch * cfg.epochs;
    let data_desc = describe(train, val);

    let device = compute_device().autodiff();
    let classes = matches!(cfg.loss, LossKind::ArcFace { .. }).then_some(train.n_subjects());
    let mut net = TrainNet::new(enc, classes, cfg.seed, &device);
    if let Some(dir) = &cfg.init {
        load_init(dir, enc, &mut net.enc)?;
    }
    let mut optim: ModuleOptimizer = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .init();

    let mut history = Vec::new();
    let mut best: Option<EncoderNet> = None;
    let (mut best_epoch, mut best_eer, mut bad_epochs, mut start_epoch) =
        (0usize, f64::INFINITY, 0usize, 1usize);
    if let Some(dir) = resume {
        let state = read_state(dir)?;
        check_resume(dir, &state, enc, cfg, &fingerprint)?;
        let mut store = BurnpackStore::from_file(dir.join(MODEL_FILE)).auto_extension(false);
        let applied = net.load_from(&mut store).map_err(|e| Error::Weights {
            path: dir.join(MODEL_FILE),
            reason: e.to_string(),
        })?;
        check_apply(&applied)?;
        let record = OptimizerRecord::load(dir.join(OPTIM_FILE)).map_err(|e| Error::Weights {
            path: dir.join(OPTIM_FILE),
            reason: e.to_string(),
        })?;
        optim = optim.load_record(record);
        let mut best_net = EncoderNet::new(enc, cfg.seed, &compute_device());
        load_safetensors(&mut best_net, &dir.join(BEST_FILE))?;
        best = Some(best_net);
        history = state.history;
        best_epoch = state.best_epoch;
        best_eer = if state.best_eer.is_nan() {
            f64::INFINITY
        } else {
            state.best_eer
        };
        bad_epochs = state.bad_epochs;
        start_epoch = state.epoch + 1;
        tracing::info!(epoch = state.epoch, "resuming from {}", dir.display());
        if state.finished {
            start_epoch = usize::MAX;
        }
    }

    // Without augmentation every step reads the same standardised pixels: compute them once.
    let cache: Option<Vec<Vec<f32>>> = (!cfg.augment).then(|| {
        train
            .samples
            .iter()
            .map(|s| nhm_data::preprocess::to_f32(&s.image))
            .collect()
    });
    let aug = AugmentConfig {
        flip: cfg.flip,
        ..AugmentConfig::default()
    };
    let s = enc.input_size;
    let mut epoch = start_epoch;
    while epoch <= cfg.epochs {
        let t_epoch = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(cfg.seed, epoch));
        let (mut loss_sum, mut train_secs, mut lr) = (0f64, 0f64, 0f64);
        for step in 0..steps_per_epoch {
            let (idx, labels) = sampler.batch(p, k, &mut rng);
            let pixels: Vec<f32> = match &cache {
                Some(c) => idx.iter().flat_map(|&i| c[i].iter().copied()).collect(),
                None => idx
                    .iter()
                    .flat_map(|&i| augmented(&train.samples[i].image, &aug, &mut rng))
                    .collect(),
            };
            let t = Instant::now();
            lr = lr_at(
                cfg,
                (epoch - 1) * steps_per_epoch + step,
                total_steps,
                steps_per_epoch,
            );
            let x = Tensor::<4>::from_data(TensorData::new(pixels, [idx.len(), 1, s, s]), &device);
            let emb = net.enc.forward(x);
            let loss = batch_loss(
                &cfg.loss,
                emb,
                &labels,
                net.class_weights.as_ref().map(|w| w.val()),
            );
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                return Err(Error::Diverged {
                    epoch,
                    step,
                    loss: value,
                });
            }
            let grads = loss.backward();
            let grads = GradientsParams::from_grads(grads, &net);
            net = optim.step(lr, net, grads);
            train_secs += t.elapsed().as_secs_f64();
            loss_sum += value as f64;
            on_event(&TrainEvent::Step {
                epoch,
                step,
                steps_per_epoch,
                loss: value,
            });
        }

        let current = net.enc.valid();
        let val_eer = match &validator {
            Some(v) => v.eer(&Encoder::from_net(enc.clone(), current.clone()))?,
            None => f64::NAN,
        };
        let improved = validator.is_none() || val_eer < best_eer;
        if improved {
            best = Some(current);
            best_epoch = epoch;
            if validator.is_some() {
                best_eer = val_eer;
            }
            bad_epochs = 0;
        } else {
            bad_epochs += 1;
        }
        let stats = EpochStats {
            epoch,
            train_loss: (loss_sum / steps_per_epoch as f64) as f32,
            val_eer,
            images_per_sec: (steps_per_epoch * p * k) as f64 / train_secs.max(1e-9),
            lr,
            seconds: t_epoch.elapsed().as_secs_f64(),
        };
        tracing::info!(?stats, "epoch done");
        history.push(stats.clone());
        on_event(&TrainEvent::Epoch(stats));
        let early = validator.is_some() && cfg.patience > 0 && bad_epochs >= cfg.patience;

        if let (Some(dir), Some(best_net)) = (out_dir, best.as_ref()) {
            if improved {
                let meta = CheckpointMeta::new(Some(cfg), data_desc.clone(), best_epoch, Some(best_eer));
                Encoder::from_net(enc.clone(), best_net.clone())
                    .with_input(input.clone())?
                    .save(dir, &meta)?;
                on_event(&TrainEvent::Checkpoint(dir.to_path_buf()));
            }
            let state = ResumeState {
                format: STATE_FORMAT.into(),
                encoder: enc.clone(),
                train: cfg.clone(),
                data: fingerprint.clone(),
                epoch,
                history: history.clone(),
                best_epoch,
                best_eer: if best_eer.is_finite() { best_eer } else { f64::NAN },
                bad_epochs,
                finished: early || epoch == cfg.epochs,
            };
            let last = write_last(dir, &net, &optim, best_net, &state)?;
            on_event(&TrainEvent::Checkpoint(last));
        }
        if early {
            on_event(&TrainEvent::EarlyStop { epoch });
            break;
        }
        if stop_after == Some(epoch) {
            break;
        }
        epoch += 1;
    }

    let best = match best {
        Some(b) => b,
        None => net.enc.valid(),
    };
    Ok(TrainOutcome {
        encoder: Encoder::from_net(enc.clone(), best).with_input(input)?,
        history,
        best_epoch,
    })
}

/// The seed of one epoch's generator, from the run's seed and the epoch number.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Learning rate at global step `step` (0-based): linear warm-up over `warmup_epochs`, then
/// cosine decay towards 0 at `total` steps.
fn lr_at(cfg: &TrainConfig, step: usize, total: usize, steps_per_epoch: usize) -> f64 {
    let warm = ((cfg.warmup_epochs * steps_per_epoch as f64).round() as usize).min(total.saturating_sub(1));
    if step < warm {
        return cfg.learning_rate * (step + 1) as f64 / warm as f64;
    }
    let t = (step - warm) as f64 / (total - warm).max(1) as f64;
    cfg.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
}

fn describe(train: &Dataset, val: &Dataset) -> String {
    format!(
        "{:?}{} train: {} subjects / {} samples; val: {} subjects / {} samples",
        train.layout,
        train
            .root
            .as_ref()
            .map(|r| format!(" {}", r.display()))
            .unwrap_or_default(),
        train.n_subjects(),
        train.samples.len(),
        val.n_subjects(),
        val.samples.len()
    )
}

/// One augmented (`nhm_data::augment`, default strengths), standardised training image.
pub(crate) fn augmented(img: &GrayImage, aug: &AugmentConfig, rng: &mut ChaCha8Rng) -> Vec<f32> {
    nhm_data::preprocess::to_f32(&augment(img, aug, rng))
}

/// Draws P×K batches: P distinct subjects, K samples each (without repetition when the subject
/// has K or more, else all of them and random repeats).
pub(crate) struct Sampler {
    /// Sample indices of each usable subject.
    by_subject: Vec<Vec<usize>>,
    /// Subject id of each entry of `by_subject`.
    subjects: Vec<u32>,
}

impl Sampler {
    pub(crate) fn new(train: &Dataset, size: usize) -> Result<Self> {
        let mut by = vec![Vec::new(); train.n_subjects()];
        for (i, s) in train.samples.iter().enumerate() {
            check_size(&s.image, size)?;
            match by.get_mut(s.subject as usize) {
                Some(v) => v.push(i),
                None => {
                    return Err(Error::Dataset {
                        purpose: "training",
                        reason: format!("sample {i} has subject {} beyond the subject list", s.subject),
                    })
                }
            }
        }
        let (mut by_subject, mut subjects) = (Vec::new(), Vec::new());
        for (sid, v) in by.into_iter().enumerate() {
            if !v.is_empty() {
                by_subject.push(v);
                subjects.push(sid as u32);
            }
        }
        if subjects.len() < 2 {
            return Err(Error::Dataset {
                purpose: "training",
                reason: format!("{} subject(s) with samples; need at least 2", subjects.len()),
            });
        }
        Ok(Sampler { by_subject, subjects })
    }

    pub(crate) fn batch(&self, p: usize, k: usize, rng: &mut ChaCha8Rng) -> (Vec<usize>, Vec<u32>) {
        let order: Vec<usize> = (0..self.subjects.len()).collect();
        let chosen: Vec<usize> = order.choose_multiple(rng, p).copied().collect();
        let (mut idx, mut labels) = (Vec::with_capacity(p * k), Vec::with_capacity(p * k));
        for c in chosen {
            let pool = &self.by_subject[c];
            let mut picks: Vec<usize> = pool.choose_multiple(rng, k.min(pool.len())).copied().collect();
            while picks.len() < k {
                picks.push(pool[rng.gen_range(0..pool.len())]);
            }
            labels.extend(std::iter::repeat_n(self.subjects[c], k));
            idx.extend(picks);
        }
        (idx, labels)
    }
}

/// Validation: the held-out images and the pairs scored each epoch (fixed for the run).
pub(crate) struct Validator {
    pixels: Vec<Vec<f32>>,
    genuine: Vec<(usize, usize)>,
    impostor: Vec<(usize, usize)>,
}

impl Validator {
    /// `None` when `val` cannot give both mated and non-mated pairs.
    /// At most `max_impostor` non-mated pairs, sampled with `seed` when there are more.
    pub(crate) fn new(val: &Dataset, size: usize, max_impostor: usize, seed: u64) -> Result<Option<Self>> {
        for s in &val.samples {
            check_size(&s.image, size)?;
        }
        let n = val.samples.len();
        let subj: Vec<u32> = val.samples.iter().map(|s| s.subject).collect();
        let mut genuine = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                if subj[i] == subj[j] {
                    genuine.push((i, j));
                }
            }
        }
        let all_pairs = n * n.saturating_sub(1) / 2;
        let n_impostor = all_pairs - genuine.len();
        if genuine.is_empty() || n_impostor == 0 {
            tracing::warn!("validation set has no mated or no non-mated pairs: training without validation");
            return Ok(None);
        }
        let mut impostor = Vec::new();
        if n_impostor <= max_impostor {
            for i in 0..n {
                for j in i + 1..n {
                    if subj[i] != subj[j] {
                        impostor.push((i, j));
                    }
                }
            }
        } else {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7661_6c69_6461_7465);
            while impostor.len() < max_impostor {
                let (i, j) = (rng.gen_range(0..n), rng.gen_range(0..n));
                if subj[i] != subj[j] {
                    impostor.push((i.min(j), i.max(j)));
                }
            }
        }
        let pixels = val
            .samples
            .iter()
            .map(|s| nhm_data::preprocess::to_f32(&s.image))
            .collect();
        Ok(Some(Validator {
            pixels,
            genuine,
            impostor,
        }))
    }

    /// The encoder's EER on the fixed pairs.
    pub(crate) fn eer(&self, enc: &Encoder) -> Result<f64> {
        let mut emb = Vec::with_capacity(self.pixels.len());
        for chunk in self.pixels.chunks(crate::EMBED_BATCH) {
            emb.extend(enc.embed_pixels(chunk.concat(), chunk.len())?);
        }
        let cos = |&(i, j): &(usize, usize)| -> f64 {
            emb[i]
                .iter()
                .zip(&emb[j])
                .map(|(a, b)| (a * b) as f64)
                .sum::<f64>()
        };
        let genuine = self.genuine.iter().map(cos).collect();
        let impostor = self.impostor.iter().map(cos).collect();
        Ok(nhm_eval::ScoreSet::new(genuine, impostor)?.eer().eer)
    }
}

/// Where the training run that wrote a model folder stands, from its resume checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrainingProgress {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Epochs the run was set to train.
    pub epochs_planned: usize,
    /// Whether the run ended (all epochs, or early stopping); `false` while it still runs or
    /// after it was interrupted.
    pub finished: bool,
}

/// The progress of the run that writes `model_dir` (a folder of [`Encoder::save`] with its
/// `last/` resume checkpoint), or `None` when it has no readable resume checkpoint. A run saves
/// its best weights whenever validation improves, so an unfinished run's folder holds an earlier
/// epoch than the run will end with: callers warn before evaluating it.
pub fn training_progress(model_dir: &Path) -> Option<TrainingProgress> {
    let state = read_state(&model_dir.join(LAST_DIR)).ok()?;
    Some(TrainingProgress {
        epochs_done: state.epoch,
        epochs_planned: state.train.epochs,
        finished: state.finished,
    })
}

fn read_state(dir: &Path) -> Result<ResumeState> {
    let path = dir.join(STATE_FILE);
    let bytes = read_file(&path)?;
    let state: ResumeState = serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })?;
    if state.format != STATE_FORMAT {
        return Err(Error::Resume {
            path: dir.into(),
            reason: format!("unknown format {:?}", state.format),
        });
    }
    Ok(state)
}

/// Refuses to resume a run made with other settings or data (the result would not be the
/// uninterrupted run's). Only `epochs` and `patience` may change.
fn check_resume(
    dir: &Path,
    state: &ResumeState,
    enc: &EncoderConfig,
    cfg: &TrainConfig,
    data: &DataFingerprint,
) -> Result<()> {
    let fail = |reason: String| {
        Err(Error::Resume {
            path: dir.into(),
            reason,
        })
    };
    if &state.encoder != enc {
        return fail(format!(
            "encoder configuration differs: checkpoint has {:?}",
            state.encoder
        ));
    }
    let comparable = TrainConfig {
        epochs: cfg.epochs,
        patience: cfg.patience,
        ..state.train.clone()
    };
    if &comparable != cfg {
        return fail(format!(
            "training configuration differs: checkpoint has {:?}",
            state.train
        ));
    }
    if &state.data != data {
        return fail(format!(
            "data differs: checkpoint was trained on {:?}, now {:?}",
            state.data, data
        ));
    }
    Ok(())
}

/// Writes `out_dir/last/` as a whole: into `last.tmp/`, then swapped in by renames.
fn write_last(
    out_dir: &Path,
    net: &TrainNet,
    optim: &ModuleOptimizer,
    best: &EncoderNet,
    state: &ResumeState,
) -> Result<PathBuf> {
    let last = out_dir.join(LAST_DIR);
    let tmp = out_dir.join(format!("{LAST_DIR}.tmp"));
    let old = out_dir.join(format!("{LAST_DIR}.old"));
    for d in [&tmp, &old] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let model = tmp.join(MODEL_FILE);
    let mut store = BurnpackStore::from_file(&model)
        .auto_extension(false)
        .overwrite(true);
    net.save_into(&mut store).map_err(|e| Error::Weights {
        path: model.clone(),
        reason: e.to_string(),
    })?;
    let opt = tmp.join(OPTIM_FILE);
    optim.to_record().save(&opt).map_err(|e| Error::Weights {
        path: opt.clone(),
        reason: e.to_string(),
    })?;
    crate::encoder::save_weights(best, &tmp.join(BEST_FILE))?;
    let state_path = tmp.join(STATE_FILE);
    let json = serde_json::to_vec_pretty(state).map_err(|source| Error::Json {
        path: state_path.clone(),
        source,
    })?;
    write_atomic(&state_path, &json)?;
    if last.exists() {
        std::fs::rename(&last, &old).map_err(|e| Error::io(&last, e))?;
    }
    std::fs::rename(&tmp, &last).map_err(|e| Error::io(&last, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(last)
}

/// Serialises NaN as JSON `null` (JSON has no NaN) and reads `null` back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use nhm_data::{Layout, Sample};

    /// A tiny separable dataset: each subject is a bright square at its own place, with noise.
    pub(crate) fn blobs(subjects: u32, per: u32, size: u32, seed: u64) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut samples = Vec::new();
        for s in 0..subjects {
            let (cx, cy) = (4 + (s * 7) % (size - 12), 4 + (s * 11) % (size - 12));
            for i in 0..per {
                let (dx, dy) = (rng.gen_range(0..3), rng.gen_range(0..3));
                let image = GrayImage::from_fn(size, size, |x, y| {
                    let inside = x >= cx + dx && x < cx + dx + 6 && y >= cy + dy && y < cy + dy + 6;
                    let base = if inside { 200 } else { 40 };
                    image::Luma([(base + rng.gen_range(0..30)) as u8])
                });
                samples.push(Sample {
                    subject: s,
                    subject_label: format!("s{s}"),
                    index: i,
                    image,
                    original_size: (size, size),
                    source: None,
                    dpi: None,
                });
            }
        }
        Dataset {
            layout: Layout::Synthetic,
            root: None,
            subjects: (0..subjects).map(|s| format!("s{s}")).collect(),
            samples,
            problems: vec![],
        }
    }

    fn tiny() -> EncoderConfig {
        EncoderConfig::tiny_for_tests()
    }

    fn quick(loss: LossKind, epochs: usize) -> TrainConfig {
        TrainConfig {
            loss,
            epochs,
            subjects_per_batch: 4,
            samples_per_subject: 3,
            learning_rate: 5e-3,
            warmup_epochs: 0.0,
            augment: false,
            patience: 0,
            seed: 7,
            ..Default::default()
        }
    }

    fn embeddings(o: &TrainOutcome, d: &Dataset) -> Vec<Vec<f32>> {
        let imgs: Vec<GrayImage> = d.samples.iter().map(|s| s.image.clone()).collect();
        o.encoder.embed(&imgs).unwrap()
    }

    #[test]
    fn init_starts_from_the_checkpoint_and_refuses_another_architecture() {
        let train_set = blobs(6, 4, 32, 1);
        let val_set = blobs(3, 3, 32, 9);
        let fit = |enc: &EncoderConfig, cfg: &TrainConfig, out: Option<&Path>| {
            train(&train_set, &val_set, enc, cfg, out, None, &mut |_| {})
        };
        let enc = tiny();
        let dir = tempfile::tempdir().unwrap();
        let cfg = quick(LossKind::SupCon { temperature: 0.2 }, 3);
        let ea = embeddings(&fit(&enc, &cfg, Some(dir.path())).unwrap(), &val_set);

        // A negligible learning rate: only BatchNorm's running statistics can move.
        let still = TrainConfig {
            learning_rate: 1e-12,
            epochs: 1,
            seed: 99,
            ..cfg.clone()
        };
        let fresh = fit(&enc, &still, None).unwrap();
        let init = TrainConfig {
            init: Some(dir.path().to_path_buf()),
            ..still.clone()
        };
        let b = fit(&enc, &init, None).unwrap();
        let dist = |x: &[Vec<f32>], y: &[Vec<f32>]| -> f32 {
            x.iter()
                .flatten()
                .zip(y.iter().flatten())
                .map(|(p, q)| (p - q).abs())
                .sum()
        };
        let from_init = dist(&embeddings(&b, &val_set), &ea);
        let from_fresh = dist(&embeddings(&fresh, &val_set), &ea);
        assert!(
            from_init < 0.25 * from_fresh,
            "initialised run is {from_init} from its checkpoint, a random one {from_fresh}"
        );

        // Another architecture: refused by name, before any training.
        let other = EncoderConfig {
            embedding_dim: enc.embedding_dim * 2,
            ..enc.clone()
        };
        let err = fit(&other, &init, None).unwrap_err();
        assert!(err.to_string().contains("init"), "{err}");
        // A folder that holds no checkpoint.
        let empty = tempfile::tempdir().unwrap();
        let missing = TrainConfig {
            init: Some(empty.path().to_path_buf()),
            ..still
        };
        let err = fit(&enc, &missing, None).unwrap_err();
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
    }

    #[test]
    fn each_loss_decreases_on_separable_data() {
        let train_set = blobs(6, 4, 32, 1);
        let empty = blobs(0, 0, 32, 2);
        for loss in ["contrastive", "arcface", "supcon"] {
            let kind: LossKind = loss.parse().unwrap();
            let cfg = TrainConfig {
                subjects_per_batch: 6,
                samples_per_subject: 4,
                ..quick(kind, 1)
            };
            // One epoch = one step here (24 samples / (6×4)); train 30 single-step epochs.
            let cfg = TrainConfig { epochs: 30, ..cfg };
            let mut losses = Vec::new();
            train(&train_set, &empty, &tiny(), &cfg, None, None, &mut |e| {
                if let TrainEvent::Step { loss, .. } = e {
                    losses.push(*loss)
                }
            })
            .unwrap();
            // SupCon cannot go below ln(K − 1) (K − 1 positives share the softmax); the others reach 0.
            let floor = if loss == "supcon" { 3f32.ln() } else { 0.0 };
            let first: f32 = losses[..5].iter().sum::<f32>() / 5.0 - floor;
            let last: f32 = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0 - floor;
            assert!(
                last < 0.5 * first,
                "{loss}: loss above its floor went {first} -> {last}"
            );
        }
    }

    #[test]
    fn same_seed_same_weights_and_resume_equals_straight_run() {
        let train_set = blobs(6, 4, 32, 1);
        let val_set = blobs(3, 3, 32, 9);
        // Augmentation on: its randomness must be reproduced on resume too.
        let cfg = TrainConfig {
            patience: 5,
            augment: true,
            ..quick(LossKind::SupCon { temperature: 0.2 }, 2)
        };
        let enc = tiny();
        let straight_dir = tempfile::tempdir().unwrap();
        let a = train(
            &train_set,
            &val_set,
            &enc,
            &cfg,
            Some(straight_dir.path()),
            None,
            &mut |_| {},
        )
        .unwrap();
        let b = train(&train_set, &val_set, &enc, &cfg, None, None, &mut |_| {}).unwrap();
        let (ea, eb) = (embeddings(&a, &val_set), embeddings(&b, &val_set));
        assert_eq!(ea, eb, "same seed must give the same weights");
        assert_eq!(a.history.len(), 2);
        // The best encoder was written to the output folder.
        let saved = Encoder::load(straight_dir.path()).unwrap();
        let imgs: Vec<GrayImage> = val_set.samples.iter().map(|s| s.image.clone()).collect();
        assert_eq!(saved.embed(&imgs).unwrap(), ea);

        // Interrupted after epoch 1, then resumed.
        let dir = tempfile::tempdir().unwrap();
        let mut events = Vec::new();
        train_until(
            &train_set,
            &val_set,
            &enc,
            &cfg,
            Some(dir.path()),
            None,
            Some(1),
            &mut |e| events.push(e.clone()),
        )
        .unwrap();
        assert!(events
            .iter()
            .any(|e| matches!(e, TrainEvent::Checkpoint(p) if p.ends_with(LAST_DIR))));
        // The folder says its run is unfinished, and finished once resumed to the end.
        let unfinished = TrainingProgress {
            epochs_done: 1,
            epochs_planned: 2,
            finished: false,
        };
        assert_eq!(training_progress(dir.path()), Some(unfinished));
        assert_eq!(training_progress(&dir.path().join("nowhere")), None);
        let last = dir.path().join(LAST_DIR);
        let r = train(
            &train_set,
            &val_set,
            &enc,
            &cfg,
            Some(dir.path()),
            Some(&last),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(r.best_epoch, a.best_epoch);
        assert_eq!(r.history.len(), 2);
        assert!(training_progress(dir.path()).is_some_and(|p| p.finished && p.epochs_done == 2));
        let er = embeddings(&r, &val_set);
        for (x, y) in er.iter().flatten().zip(ea.iter().flatten()) {
            assert!((x - y).abs() < 1e-6, "resumed {x} vs straight {y}");
        }
        for (h, g) in r.history.iter().zip(&a.history) {
            assert_eq!(h.train_loss, g.train_loss);
        }

        // A different seed gives different weights.
        let c = train(
            &train_set,
            &val_set,
            &enc,
            &TrainConfig {
                seed: 8,
                ..cfg.clone()
            },
            None,
            None,
            &mut |_| {},
        )
        .unwrap();
        assert_ne!(embeddings(&c, &val_set), ea);

        // Resuming with other settings is refused.
        let other = TrainConfig {
            learning_rate: 1e-2,
            ..cfg
        };
        let err = train(&train_set, &val_set, &enc, &other, None, Some(&last), &mut |_| {}).unwrap_err();
        assert!(matches!(err, Error::Resume { .. }), "{err}");
    }

    #[test]
    fn bad_datasets_are_refused() {
        let one = blobs(1, 4, 32, 1);
        let empty = blobs(0, 0, 32, 2);
        let cfg = quick(LossKind::Contrastive { margin: 1.0 }, 1);
        let err = train(&one, &empty, &tiny(), &cfg, None, None, &mut |_| {}).unwrap_err();
        assert!(matches!(err, Error::Dataset { .. }), "{err}");
        let wrong = blobs(3, 2, 40, 1);
        let err = train(&wrong, &empty, &tiny(), &cfg, None, None, &mut |_| {}).unwrap_err();
        assert!(matches!(err, Error::InputSize { expected: 32, .. }), "{err}");
        let missing = std::path::Path::new("/nonexistent/last");
        let err = train(
            &blobs(3, 2, 32, 1),
            &empty,
            &tiny(),
            &cfg,
            None,
            Some(missing),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
    }

    #[test]
    fn lr_schedule_warms_up_then_decays() {
        let cfg = TrainConfig {
            learning_rate: 1.0,
            warmup_epochs: 1.0,
            ..Default::default()
        };
        let lrs: Vec<f64> = (0..40).map(|s| lr_at(&cfg, s, 40, 10)).collect();
        assert!((lrs[0] - 0.1).abs() < 1e-12);
        assert!((lrs[9] - 1.0).abs() < 1e-12);
        assert!((lrs[10] - 1.0).abs() < 1e-12);
        assert!(lrs[10..].windows(2).all(|w| w[1] <= w[0]));
        assert!(lrs[39] < 0.01);
    }
}
