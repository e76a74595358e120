//! Training with a progress bar: shared by `nhm train` and `nhm demo`.

use std::path::Path;

use anyhow::{Context, Result};
use nhm_data::Dataset;
use nhm_model::{EncoderConfig, TrainConfig, TrainEvent, TrainOutcome};

use crate::progress;

/// Trains an encoder, showing the loss and the last validation EER on a progress bar and logging
/// each epoch.
pub fn train_with_progress(
    train: &Dataset,
    val: &Dataset,
    enc: &EncoderConfig,
    cfg: &TrainConfig,
    out_dir: Option<&Path>,
    resume: Option<&Path>,
) -> Result<TrainOutcome> {
    let pb = progress::bar(cfg.epochs as u64, "train");
    let mut last_eer = f64::NAN;
    let outcome = nhm_model::train(train, val, enc, cfg, out_dir, resume, &mut |event| match event {
        TrainEvent::Step {
            epoch,
            step,
            steps_per_epoch,
            loss,
        } => {
            pb.set_position(*epoch as u64 - 1);
            pb.set_message(format!(
                "epoch {epoch} step {}/{steps_per_epoch} loss {loss:.4} | val EER {}",
                step + 1,
                pct(last_eer)
            ));
        }
        TrainEvent::Epoch(s) => {
            last_eer = s.val_eer;
            let line = format!(
                "epoch {:>3}  loss {:.4}  val EER {:>7}  {:.0} img/s  lr {:.2e}  {:.1} s",
                s.epoch,
                s.train_loss,
                pct(s.val_eer),
                s.images_per_sec,
                s.lr,
                s.seconds
            );
            // Above the bar, or on stderr when the bar is hidden (--quiet, or no terminal).
            if pb.is_hidden() {
                eprintln!("{line}");
            } else {
                pb.println(&line);
            }
        }
        TrainEvent::Checkpoint(p) => tracing::debug!("checkpoint {}", p.display()),
        TrainEvent::EarlyStop { epoch } => {
            pb.println(format!(
                "early stop after epoch {epoch}: validation EER stopped improving"
            ));
        }
    })
    .context("training the encoder")?;
    pb.finish_and_clear();
    Ok(outcome)
}

/// A fraction as a percentage with three decimals, or "-" when unknown.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.3}%", x * 100.0)
    } else {
        "-".into()
    }
}
