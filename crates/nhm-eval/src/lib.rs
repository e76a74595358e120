//! Measuring what the system does.
//!
//! - Recognition after ISO/IEC 19795-1: FMR, FNMR, EER and FNMR at a fixed FMR ([`metrics`]),
//!   DET curves ([`det`]), and the verification and identification protocol of DESIGN.md §4
//!   over any template type with a similarity score ([`protocol`]).
//! - Protection after ISO/IEC 30136: unlinkability ([`unlinkability`]).
//! - Output: score files in CSV and bob.measure's 4-column format ([`scorefile`]), PNG plots
//!   ([`plot`]) and reports in JSON, Markdown and self-contained HTML ([`report`]).
//!
//! Scores follow one convention everywhere: higher means more similar, and a comparison is
//! accepted when its score is at least the threshold.
//!
//! ```
//! use nhm_eval::{evaluate, Protocol};
//! // Four 1-D templates of two subjects; similarity is minus the distance.
//! let items = [0.0f64, 0.1, 5.0, 5.1];
//! let (figures, _) = evaluate(&items, &[1, 1, 2, 2], &[0, 1, 0, 1], |a, b| -(a - b).abs(),
//!                             &Protocol::default()).unwrap();
//! assert_eq!(figures.eer, 0.0);
//! assert_eq!(figures.identification[0].rank1, 1.0);
//! ```
#![deny(missing_docs)]

pub mod det;
pub mod error;
pub mod metrics;
pub mod plot;
pub mod protocol;
pub mod report;
pub mod scorefile;
pub mod unlinkability;

pub use det::{det_curve, probit, DetPoint};
pub use error::{Error, Result};
pub use metrics::{Eer, ScoreSet};
pub use plot::{plot_det, plot_rate_series, plot_score_distributions, plot_unlinkability};
pub use protocol::{
    cross_comparison, evaluate, identification, verification_scores, Comparisons, CrossFigures, FnmrAt,
    Fusion, Protocol, RankAt, RecognitionFigures, ScoreRecord,
};
pub use report::{Report, SystemResult};
pub use scorefile::{read_bob4, read_csv, write_bob4, write_csv};
pub use unlinkability::{unlinkability, Unlinkability};
