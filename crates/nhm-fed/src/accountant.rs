//! Rényi-DP (RDP) privacy accountant for the Poisson-subsampled Gaussian mechanism.
//!
//! This is the accountant behind user-level differential privacy in federated averaging: every
//! round samples each client independently with probability `q`, clips each client's update to
//! L2 norm `C` and adds Gaussian noise `N(0, (σC)²)` to the sum. One round is one step of the
//! sampled Gaussian mechanism with sampling rate `q` and noise multiplier `σ`.
//!
//! The RDP of one step is computed as in Mironov, Talwar & Zhang 2019, "Rényi Differential
//! Privacy of the Sampled Gaussian Mechanism" (arXiv:1908.10530), following Google's
//! `dp_accounting` (`rdp_privacy_accountant.py`, `_compute_log_a`) step for step: a binomial
//! expansion for integer orders and the two-sided series with `log erfc` for fractional orders,
//! all in log space. RDP composes additively over steps and is converted to (ε, δ)-DP with the
//! improved conversion of Balle et al. 2020 / Canonne, Kamath & Steinke 2020 (the one
//! `dp_accounting.rdp.RdpAccountant` uses), minimised over [`DEFAULT_ORDERS`].

use serde::{Deserialize, Serialize};

/// Orders α at which RDP is tracked: 1.1 to 10.9 in steps of 0.1, the integers 11 to 63, then
/// 128, 256, 512 and 1024 (exactly `dp_accounting.rdp.rdp_privacy_accountant.DEFAULT_RDP_ORDERS`).
pub const DEFAULT_ORDERS: &[f64] = &[
    1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0, 3.1,
    3.2, 3.3, 3.4, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1, 4.2, 4.3, 4.4, 4.5, 4.6, 4.7, 4.8, 4.9, 5.0, 5.1, 5.2,
    5.3, 5.4, 5.5, 5.6, 5.7, 5.8, 5.9, 6.0, 6.1, 6.2, 6.3, 6.4, 6.5, 6.6, 6.7, 6.8, 6.9, 7.0, 7.1, 7.2, 7.3,
    7.4, 7.5, 7.6, 7.7, 7.8, 7.9, 8.0, 8.1, 8.2, 8.3, 8.4, 8.5, 8.6, 8.7, 8.8, 8.9, 9.0, 9.1, 9.2, 9.3, 9.4,
    9.5, 9.6, 9.7, 9.8, 9.9, 10.0, 10.1, 10.2, 10.3, 10.4, 10.5, 10.6, 10.7, 10.8, 10.9, 11.0, 12.0, 13.0,
    14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0,
    31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0,
    48.0, 49.0, 50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0, 63.0, 128.0,
    256.0, 512.0, 1024.0,
];

/// Iteration cap of the fractional-order series (`_MAX_STEPS_LOG_A_FRAC` in `dp_accounting`);
/// an order whose series has not converged by then is excluded (its RDP is reported as +∞).
const MAX_STEPS_LOG_A_FRAC: usize = 1000;

/// Lower end of the noise-multiplier search of [`noise_for_epsilon`].
const SIGMA_SEARCH_MIN: f64 = 1e-3;
/// Upper end of the noise-multiplier search of [`noise_for_epsilon`]: a target not reached at
/// this noise multiplier is reported as unreachable.
const SIGMA_SEARCH_MAX: f64 = 1e6;
/// Relative tolerance of the noise-multiplier binary search.
const SIGMA_SEARCH_RTOL: f64 = 1e-3;

/// An (ε, δ)-DP guarantee obtained from RDP, with the order α that gave the tightest bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Epsilon {
    /// The privacy loss ε (≥ 0; +∞ if no order gives a finite bound).
    pub epsilon: f64,
    /// The RDP order α at which the minimum over [`DEFAULT_ORDERS`] was attained.
    pub order: f64,
}

/// Invalid input to the accountant, or a privacy target it cannot meet.
#[derive(Debug, thiserror::Error)]
pub enum AccountantError {
    /// The sampling rate is not in [0, 1].
    #[error("sampling rate q must be in [0, 1], got {0}")]
    InvalidSamplingRate(f64),
    /// The noise multiplier is not finite and positive.
    #[error("noise multiplier sigma must be finite and > 0, got {0}")]
    InvalidNoiseMultiplier(f64),
    /// δ is not in the open interval (0, 1).
    #[error("delta must be in (0, 1), got {0}")]
    InvalidDelta(f64),
    /// The target ε is not finite and positive.
    #[error("target epsilon must be finite and > 0, got {0}")]
    InvalidTargetEpsilon(f64),
    /// Even the largest noise multiplier searched does not bring ε down to the target.
    #[error(
        "target epsilon {target} is unreachable: with noise multiplier {max_sigma} epsilon is still \
         {achieved} (q = {q}, steps = {steps}, delta = {delta})"
    )]
    TargetUnreachable {
        /// The requested ε.
        target: f64,
        /// The largest noise multiplier tried.
        max_sigma: f64,
        /// The ε reached with `max_sigma`.
        achieved: f64,
        /// The sampling rate.
        q: f64,
        /// The number of steps.
        steps: u64,
        /// The δ.
        delta: f64,
    },
}

/// RDP ε(α) of ONE step of the Poisson-subsampled Gaussian mechanism with sampling rate `q` in
/// [0, 1] and noise multiplier `sigma` > 0, at order `alpha` > 1.
///
/// `q == 0` gives 0 and `q == 1` gives the plain Gaussian mechanism's α/(2σ²). A fractional
/// order whose series does not converge within 1000 terms gives +∞ (as in `dp_accounting`, the
/// order is then effectively excluded), as do `sigma == 0` and `alpha == +∞`. Inputs outside
/// the domain (NaN, `q` outside [0, 1], negative `sigma`, `alpha` ≤ 1) give NaN. Integer
/// orders cost O(α) operations.
pub fn rdp_subsampled_gaussian(q: f64, sigma: f64, alpha: f64) -> f64 {
    if !(0.0..=1.0).contains(&q) || sigma.is_nan() || sigma < 0.0 || alpha.is_nan() || alpha <= 1.0 {
        return f64::NAN;
    }
    if q == 0.0 {
        return 0.0;
    }
    if alpha.is_infinite() || sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    compute_log_a(q, sigma, alpha) / (alpha - 1.0)
}

/// (ε, best order) after `steps` compositions of the Poisson-subsampled Gaussian mechanism
/// (rate `q`, noise multiplier `sigma`) at `delta`, minimised over [`DEFAULT_ORDERS`].
///
/// Uses the conversion ε = rdp + ln((α−1)/α) − (ln δ + ln α)/(α−1) (Balle et al. 2020,
/// Canonne-Kamath-Steinke 2020), plus `dp_accounting`'s shortcut ε = 0 when
/// δ ≥ √(1 − e^(−rdp)); the result is clamped at ≥ 0. `steps == 0` or `q == 0` gives ε = 0.
pub fn epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> Result<Epsilon, AccountantError> {
    check_q(q)?;
    if !sigma.is_finite() || sigma <= 0.0 {
        return Err(AccountantError::InvalidNoiseMultiplier(sigma));
    }
    check_delta(delta)?;
    Ok(epsilon_unchecked(q, sigma, steps, delta))
}

/// Smallest noise multiplier (binary search, relative tolerance 1e-3) reaching at most
/// `target_epsilon` after `steps` steps at rate `q` and `delta`.
///
/// The returned value always satisfies the target (it is the upper end of the final bracket).
/// The search covers noise multipliers from 0.001 to 10⁶: if 0.001 already meets the target,
/// 0.001 is returned; if 10⁶ does not, the target is reported as unreachable. With `q == 0` or
/// `steps == 0` nothing is spent and the result is 0 (no noise needed; note that [`epsilon`]
/// itself requires a positive noise multiplier).
pub fn noise_for_epsilon(
    q: f64,
    steps: u64,
    delta: f64,
    target_epsilon: f64,
) -> Result<f64, AccountantError> {
    check_q(q)?;
    check_delta(delta)?;
    if !target_epsilon.is_finite() || target_epsilon <= 0.0 {
        return Err(AccountantError::InvalidTargetEpsilon(target_epsilon));
    }
    if q == 0.0 || steps == 0 {
        return Ok(0.0);
    }
    let meets = |sigma: f64| epsilon_unchecked(q, sigma, steps, delta).epsilon <= target_epsilon;

    // Bracket: `lo` misses the target, `hi` meets it (ε decreases as σ grows).
    let mut hi = 1.0_f64;
    let mut lo;
    if meets(hi) {
        loop {
            lo = hi / 2.0;
            if lo < SIGMA_SEARCH_MIN {
                if meets(SIGMA_SEARCH_MIN) {
                    return Ok(SIGMA_SEARCH_MIN);
                }
                lo = SIGMA_SEARCH_MIN;
                break;
            }
            if !meets(lo) {
                break;
            }
            hi = lo;
        }
    } else {
        loop {
            lo = hi;
            hi *= 2.0;
            if hi > SIGMA_SEARCH_MAX {
                let achieved = epsilon_unchecked(q, SIGMA_SEARCH_MAX, steps, delta).epsilon;
                if achieved <= target_epsilon {
                    hi = SIGMA_SEARCH_MAX;
                    break;
                }
                return Err(AccountantError::TargetUnreachable {
                    target: target_epsilon,
                    max_sigma: SIGMA_SEARCH_MAX,
                    achieved,
                    q,
                    steps,
                    delta,
                });
            }
            if meets(hi) {
                break;
            }
        }
    }
    while hi - lo > SIGMA_SEARCH_RTOL * hi {
        let mid = 0.5 * (lo + hi);
        if meets(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

fn check_q(q: f64) -> Result<(), AccountantError> {
    if (0.0..=1.0).contains(&q) {
        Ok(())
    } else {
        Err(AccountantError::InvalidSamplingRate(q))
    }
}

fn check_delta(delta: f64) -> Result<(), AccountantError> {
    if delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(AccountantError::InvalidDelta(delta))
    }
}

/// [`epsilon`] for already validated inputs.
fn epsilon_unchecked(q: f64, sigma: f64, steps: u64, delta: f64) -> Epsilon {
    let mut best = Epsilon {
        epsilon: f64::INFINITY,
        order: DEFAULT_ORDERS[0],
    };
    if steps == 0 || q == 0.0 {
        best.epsilon = 0.0;
        return best;
    }
    let steps = steps as f64;
    for &alpha in DEFAULT_ORDERS {
        let rdp = steps * rdp_subsampled_gaussian(q, sigma, alpha);
        let eps = rdp_to_epsilon(rdp, alpha, delta);
        // Strict `<` keeps the first order among ties, like `np.argmin`.
        if eps < best.epsilon {
            best = Epsilon {
                epsilon: eps,
                order: alpha,
            };
        }
    }
    best.epsilon = best.epsilon.max(0.0);
    best
}

/// ε of an (α, rdp)-RDP guarantee at `delta`, as `dp_accounting.rdp.compute_epsilon` does it
/// for one order.
fn rdp_to_epsilon(rdp: f64, alpha: f64, delta: f64) -> f64 {
    if rdp.is_nan() || rdp.is_infinite() {
        f64::INFINITY
    } else if rdp < 0.0 {
        // Only possible through rounding in extreme settings; dp_accounting reports 0 too.
        0.0
    } else if delta * delta + (-rdp).exp_m1() > 0.0 {
        // δ ≥ √(1 − e^(−KL)) already holds with ε = 0.
        0.0
    } else if alpha > 1.01 {
        // The conversion is numerically unstable as α → 1 (and useless there anyway).
        rdp + (-1.0 / alpha).ln_1p() - (delta * alpha).ln() / (alpha - 1.0)
    } else {
        f64::INFINITY
    }
}

/// ln(A_α) for 0 < q < 1 (`_compute_log_a`).
fn compute_log_a(q: f64, sigma: f64, alpha: f64) -> f64 {
    if alpha.fract() == 0.0 {
        compute_log_a_int(q, sigma, alpha)
    } else {
        compute_log_a_frac(q, sigma, alpha)
    }
}

/// ln(A_α) for integer α by the binomial expansion (`_compute_log_a_int`).
fn compute_log_a_int(q: f64, sigma: f64, alpha: f64) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    let log_q = q.ln();
    let log1mq = (-q).ln_1p();
    let two_var = 2.0 * sigma * sigma;
    let mut i = 0.0_f64;
    while i <= alpha {
        let log_coef_i = log_comb(alpha, i) + i * log_q + (alpha - i) * log1mq;
        let s = log_coef_i + (i * i - i) / two_var;
        log_a = log_add(log_a, s);
        i += 1.0;
    }
    log_a
}

/// ln(A_α) for fractional α by the series of Sec. 3.3 of arXiv:1908.10530
/// (`_compute_log_a_frac`): the integrals over (−∞, z0] and [z0, +∞) are summed separately.
fn compute_log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let mut log_a0 = f64::NEG_INFINITY;
    let mut log_a1 = f64::NEG_INFINITY;
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let log_q = q.ln();
    let log1mq = (-q).ln_1p();
    let log_half = 0.5_f64.ln();
    let sqrt2_sigma = std::f64::consts::SQRT_2 * sigma;
    let two_var = 2.0 * sigma * sigma;

    let mut last_s0 = f64::NEG_INFINITY;
    let mut last_s1 = f64::NEG_INFINITY;
    for step in 0..MAX_STEPS_LOG_A_FRAC {
        let i = step as f64;
        let log_coef = log_comb(alpha, i);
        let j = alpha - i;

        let log_t0 = log_coef + i * log_q + j * log1mq;
        let log_t1 = log_coef + j * log_q + i * log1mq;

        let log_e0 = log_half + log_erfc((i - z0) / sqrt2_sigma);
        let log_e1 = log_half + log_erfc((z0 - j) / sqrt2_sigma);

        let log_s0 = log_t0 + (i * i - i) / two_var + log_e0;
        let log_s1 = log_t1 + (j * j - j) / two_var + log_e1;

        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);

        let total = log_add(log_a0, log_a1);

        // Stop when both terms are decreasing and negligible relative to the total.
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    f64::INFINITY
}

/// ln(e^x + e^y).
fn log_add(x: f64, y: f64) -> f64 {
    let (a, b) = if x < y { (x, y) } else { (y, x) };
    if a == f64::NEG_INFINITY {
        return b;
    }
    (a - b).exp().ln_1p() + b
}

/// ln |C(n, k)| = ln |Γ(n+1)| − ln Γ(k+1) − ln |Γ(n−k+1)| (as `scipy.special.gammaln` does it,
/// so for fractional `n` this is the log of the coefficient's absolute value).
fn log_comb(n: f64, k: f64) -> f64 {
    ln_abs_gamma(n + 1.0) - ln_abs_gamma(k + 1.0) - ln_abs_gamma(n - k + 1.0)
}

/// Lanczos coefficients (g = 7, n = 9).
const LANCZOS_G: f64 = 7.0;
const LANCZOS_P: [f64; 9] = [
    0.9999999999998099,
    676.5203681218851,
    -1259.1392167224028,
    771.3234287776531,
    -176.6150291621406,
    12.507343278686905,
    -0.13857109526572012,
    9.984369578019572e-6,
    1.5056327351493116e-7,
];

/// ln |Γ(x)| (Lanczos approximation, reflection for x < 1/2); +∞ at the poles.
fn ln_abs_gamma(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.5 {
        if x.fract() == 0.0 {
            return f64::INFINITY;
        }
        // Γ(x) Γ(1−x) = π / sin(πx); reduce x modulo 2 first so sin stays accurate.
        let r = x - 2.0 * (x / 2.0).floor();
        let sin = (std::f64::consts::PI * r).sin().abs();
        return std::f64::consts::PI.ln() - sin.ln() - ln_abs_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + LANCZOS_G + 0.5;
    let mut a = LANCZOS_P[0];
    for (k, p) in LANCZOS_P.iter().enumerate().skip(1) {
        a += p / (x + k as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Below this |x|, erf comes from its power series; above it erfc comes from its continued
/// fraction.
const ERF_SERIES_LIMIT: f64 = 1.25;

/// 1/√π.
const FRAC_1_SQRT_PI: f64 = 0.5641895835477563;

/// ln erfc(x), accurate (≈1e-14 relative or better) over the whole real line, including far
/// into the tail where erfc(x) underflows.
fn log_erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x == f64::INFINITY {
        return f64::NEG_INFINITY;
    }
    if x == f64::NEG_INFINITY {
        return std::f64::consts::LN_2;
    }
    let ax = x.abs();
    if ax < ERF_SERIES_LIMIT {
        // erfc(x) = 1 − erf(x), erf odd.
        let e = erf_series(ax);
        if x >= 0.0 {
            (-e).ln_1p()
        } else {
            e.ln_1p()
        }
    } else if x > 0.0 {
        log_erfc_cf(x)
    } else {
        // erfc(x) = 2 − erfc(−x), with erfc(−x) < 0.08 here.
        (2.0 - log_erfc_cf(ax).exp()).ln()
    }
}

/// erf(x) for 0 ≤ x < ~2 by the series with positive terms
/// erf(x) = (2/√π) e^(−x²) Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)).
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0_f64;
    while term > 1e-17 * sum && n < 200.0 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 * FRAC_1_SQRT_PI * (-x2).exp() * sum
}

/// ln erfc(x) for x ≥ ~1 from the continued fraction
/// erfc(x) = (2x/√π) e^(−x²) / (2x²+1 − 1·2/(2x²+5 − 3·4/(2x²+9 − …))),
/// evaluated with the modified Lentz algorithm; the e^(−x²) factor is kept in log space.
fn log_erfc_cf(x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let x2 = x * x;
    let mut f = 2.0 * x2 + 1.0;
    let mut c = f;
    let mut d = 0.0_f64;
    let mut k = 1.0_f64;
    while k < 5000.0 {
        let a = -(2.0 * k - 1.0) * (2.0 * k);
        let b = 2.0 * x2 + 1.0 + 4.0 * k;
        d = b + a * d;
        if d == 0.0 {
            d = TINY;
        }
        d = 1.0 / d;
        c = b + a / c;
        if c == 0.0 {
            c = TINY;
        }
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 3e-16 {
            break;
        }
        k += 1.0;
    }
    -x2 + (2.0 * x * FRAC_1_SQRT_PI).ln() - f.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_rel(actual: f64, expected: f64, tol: f64, what: &str) {
        let err = (actual - expected).abs() / expected.abs().max(f64::MIN_POSITIVE);
        assert!(
            err <= tol,
            "{what}: got {actual}, expected {expected}, relative error {err:e} > {tol:e}"
        );
    }

    // Reference values below come from Google's `dp_accounting` 0.6.0 (pip install
    // dp-accounting==0.6.0; Python 3.11.7, numpy 2.4.6, scipy 1.17.1), with
    //   from dp_accounting.rdp import rdp_privacy_accountant as r
    //   import dp_accounting
    // and, for (ε, order):
    //   acc = dp_accounting.rdp.RdpAccountant()   # default orders == DEFAULT_ORDERS
    //   acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    //   acc.get_epsilon_and_optimal_order(delta)
    // The crate must agree within a relative error of 1e-3 (it agrees to ~1e-12 in practice).

    /// (q, sigma, alpha, RDP of one step), from
    /// `r._compute_rdp_poisson_subsampled_gaussian(q, sigma, [alpha])[0]`
    /// (which is `r._compute_log_a(q, sigma, alpha) / (alpha - 1)` for 0 < q < 1).
    const RDP_REFERENCE: &[(f64, f64, f64, f64)] = &[
        (0.01, 1.1, 2.5, 0.00016215219755506363),
        (0.01, 1.1, 8.1, 0.0005930470508416175),
        (0.1, 1.0, 2.9, 0.030026230691289922),
        (0.1, 1.0, 32.0, 13.623137968522595),
        (256.0 / 60000.0, 1.1, 8.1, 9.965972767911822e-05),
        (256.0 / 60000.0, 1.1, 1024.0, 417.6782392360519),
        (0.001, 5.0, 63.0, 1.2887908643007149e-06),
        (0.05, 0.8, 256.0, 196.99251975674576),
        (0.2, 4.0, 1.2, 0.006263047567339773),
        (0.0001, 20.0, 3.3, 4.13016192231531e-11),
        (0.9, 3.0, 5.5, 0.25781458544904967),
        (0.3, 0.5, 10.9, 20.474413781095684),
        (0.5, 1.0, 2.0, 0.35737401950878855),
    ];

    #[test]
    fn default_orders_are_dp_accountings() {
        // DEFAULT_RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64))
        //                      + [128, 256, 512, 1024]
        let mut expected: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
        expected.extend((11..64).map(f64::from));
        expected.extend([128.0, 256.0, 512.0, 1024.0]);
        assert_eq!(DEFAULT_ORDERS, expected.as_slice());
    }

    #[test]
    fn rdp_matches_dp_accounting() {
        for &(q, sigma, alpha, expected) in RDP_REFERENCE {
            let got = rdp_subsampled_gaussian(q, sigma, alpha);
            assert_rel(
                got,
                expected,
                1e-3,
                &format!("rdp(q={q}, sigma={sigma}, alpha={alpha})"),
            );
        }
    }

    #[test]
    fn rdp_non_converging_fractional_order_is_infinite_like_dp_accounting() {
        // dp_accounting logs "_compute_log_a_frac failed to converge after 1000 iterations" and
        // returns inf for these two (q, sigma, alpha).
        assert_eq!(rdp_subsampled_gaussian(0.5, 2.0, 1.5), f64::INFINITY);
        assert_eq!(rdp_subsampled_gaussian(0.1, 1.0, 1.1), f64::INFINITY);
    }

    #[test]
    fn rdp_special_cases() {
        assert_eq!(rdp_subsampled_gaussian(0.0, 1.0, 2.5), 0.0);
        assert_eq!(rdp_subsampled_gaussian(1.0, 2.0, 3.0), 3.0 / 8.0);
        assert_eq!(rdp_subsampled_gaussian(1.0, 0.5, 2.5), 5.0);
        assert_eq!(rdp_subsampled_gaussian(0.1, 0.0, 2.0), f64::INFINITY);
        assert_eq!(rdp_subsampled_gaussian(0.1, 1.0, f64::INFINITY), f64::INFINITY);
        assert!(rdp_subsampled_gaussian(1.5, 1.0, 2.0).is_nan());
        assert!(rdp_subsampled_gaussian(0.1, -1.0, 2.0).is_nan());
        assert!(rdp_subsampled_gaussian(0.1, 1.0, 1.0).is_nan());
        assert!(rdp_subsampled_gaussian(f64::NAN, 1.0, 2.0).is_nan());
        // Subsampling amplifies privacy: never worse than the full-batch Gaussian.
        for &alpha in DEFAULT_ORDERS {
            let sub = rdp_subsampled_gaussian(0.05, 1.3, alpha);
            let full = rdp_subsampled_gaussian(1.0, 1.3, alpha);
            assert!(sub.is_infinite() || sub <= full, "alpha {alpha}: {sub} > {full}");
        }
    }

    /// (q, sigma, steps, delta, epsilon, order) from `RdpAccountant` as described above.
    const EPSILON_REFERENCE: &[(f64, f64, u64, f64, f64, f64)] = &[
        // TF Privacy MNIST tutorial: batch 256 of 60000, sigma 1.1, 60 epochs, delta 1e-5.
        (
            256.0 / 60000.0,
            1.1,
            60 * 60000 / 256,
            1e-5,
            2.5965558697943036,
            8.1,
        ),
        // Federated: 10% of clients per round, sigma 1, 100 rounds, delta 1e-3.
        (0.1, 1.0, 100, 1e-3, 5.6550528193561735, 2.9),
        // Fractional orders dominate (the best α is small and fractional).
        (0.01, 0.6, 1000, 1e-5, 8.680395753417068, 2.7),
        (0.05, 0.8, 500, 1e-5, 13.406213146089476, 2.5),
        (0.3, 0.9, 200, 1e-5, 47.44755657429704, 1.8),
        // Full batch (plain Gaussian mechanism).
        (1.0, 2.0, 10, 1e-5, 8.079406222420491, 3.9),
        // Small rate, much noise, many steps: an integer order wins.
        (0.001, 5.0, 100000, 1e-6, 0.2688848068831907, 63.0),
        (0.02, 1.5, 10000, 1e-6, 8.435528357195064, 4.2),
    ];

    #[test]
    fn epsilon_matches_dp_accounting() {
        for &(q, sigma, steps, delta, expected, order) in EPSILON_REFERENCE {
            let got = epsilon(q, sigma, steps, delta).expect("valid input");
            let what = format!("epsilon(q={q}, sigma={sigma}, steps={steps}, delta={delta})");
            assert_rel(got.epsilon, expected, 1e-3, &what);
            assert_eq!(got.order, order, "{what}: best order");
        }
    }

    #[test]
    fn mnist_tutorial_setting() {
        let steps = 60 * 60000 / 256;
        assert_eq!(steps, 14062);
        let e = epsilon(256.0 / 60000.0, 1.1, steps, 1e-5).expect("valid input");
        // dp_accounting 0.6.0: (2.5965558697943036, 8.1).
        assert_rel(e.epsilon, 2.5965558697943036, 1e-3, "MNIST epsilon");
        assert_eq!(e.order, 8.1);
    }

    #[test]
    fn full_batch_matches_closed_form() {
        // q = 1: RDP is steps·α/(2σ²) at every order, so ε has a closed form per order.
        let (sigma, steps, delta) = (2.0_f64, 10_u64, 1e-5_f64);
        let mut best = (f64::INFINITY, 0.0);
        for &alpha in DEFAULT_ORDERS {
            let rdp = steps as f64 * alpha / (2.0 * sigma * sigma);
            let eps = rdp + ((alpha - 1.0) / alpha).ln() - (delta.ln() + alpha.ln()) / (alpha - 1.0);
            if eps < best.0 {
                best = (eps, alpha);
            }
        }
        let got = epsilon(1.0, sigma, steps, delta).expect("valid input");
        assert_rel(got.epsilon, best.0, 1e-12, "closed form");
        assert_eq!(got.order, best.1);
        // dp_accounting 0.6.0: (8.079406222420491, 3.9).
        assert_rel(got.epsilon, 8.079406222420491, 1e-3, "q = 1 vs dp_accounting");
        assert_eq!(got.order, 3.9);
    }

    #[test]
    fn no_privacy_loss_gives_zero() {
        assert_eq!(epsilon(0.0, 1.0, 100, 1e-5).expect("valid").epsilon, 0.0);
        assert_eq!(epsilon(0.1, 1.0, 0, 1e-5).expect("valid").epsilon, 0.0);
        // Negligible RDP: δ ≥ √(1 − e^(−rdp)), ε = 0 (dp_accounting 0.6.0 gives (0, 1.1)).
        let e = epsilon(1e-6, 10.0, 1, 1e-3).expect("valid");
        assert_eq!(
            e,
            Epsilon {
                epsilon: 0.0,
                order: 1.1
            }
        );
    }

    #[test]
    fn more_steps_cost_more() {
        let mut last = 0.0;
        for steps in [1, 10, 100, 1_000, 10_000] {
            let e = epsilon(0.01, 1.0, steps, 1e-5).expect("valid").epsilon;
            assert!(e > last, "steps {steps}: {e} <= {last}");
            last = e;
        }
    }

    #[test]
    fn more_noise_costs_less() {
        let mut last = f64::INFINITY;
        for sigma in [0.5, 0.8, 1.0, 1.5, 3.0, 10.0] {
            let e = epsilon(0.05, sigma, 1_000, 1e-5).expect("valid").epsilon;
            assert!(e < last, "sigma {sigma}: {e} >= {last}");
            last = e;
        }
    }

    #[test]
    fn larger_rate_or_smaller_delta_costs_more() {
        let a = epsilon(0.01, 1.0, 1_000, 1e-5).expect("valid").epsilon;
        let b = epsilon(0.02, 1.0, 1_000, 1e-5).expect("valid").epsilon;
        let c = epsilon(0.01, 1.0, 1_000, 1e-7).expect("valid").epsilon;
        assert!(b > a && c > a, "{a} {b} {c}");
    }

    #[test]
    fn noise_for_epsilon_round_trip() {
        let (q, steps, delta) = (0.01, 1_000, 1e-5);
        for target in [0.5, 2.0, 8.0] {
            let sigma = noise_for_epsilon(q, steps, delta, target).expect("reachable");
            let at = epsilon(q, sigma, steps, delta).expect("valid").epsilon;
            assert!(at <= target, "target {target}: sigma {sigma} gives {at}");
            // Within the 1e-3 relative tolerance of the smallest such sigma.
            let below = epsilon(q, sigma * (1.0 - 2e-3), steps, delta)
                .expect("valid")
                .epsilon;
            assert!(
                below > target,
                "target {target}: sigma {sigma} is not minimal ({below})"
            );
        }
        // dp_accounting 0.6.0: calibrate_dp_mechanism(RdpAccountant, lambda s:
        //   SelfComposedDpEvent(PoissonSampledDpEvent(0.01, GaussianDpEvent(s)), 1000), 2.0, 1e-5,
        //   bracket_interval=ExplicitBracketInterval(0.1, 100.0), tol=1e-9) == 1.0222898284037971
        let sigma = noise_for_epsilon(q, steps, delta, 2.0).expect("reachable");
        assert_rel(sigma, 1.0222898284037971, 2e-3, "calibrated sigma");
    }

    #[test]
    fn noise_for_epsilon_edge_cases() {
        assert_eq!(noise_for_epsilon(0.0, 100, 1e-5, 1.0).expect("valid"), 0.0);
        assert_eq!(noise_for_epsilon(0.1, 0, 1e-5, 1.0).expect("valid"), 0.0);
        // A huge budget is met by the smallest noise multiplier searched.
        assert_eq!(
            noise_for_epsilon(0.001, 1, 1e-5, 1e12).expect("valid"),
            SIGMA_SEARCH_MIN
        );
        // A large budget: the answer lies below 1, found by halving down from σ = 1.
        let sigma = noise_for_epsilon(1.0, 1, 1e-5, 50.0).expect("reachable");
        assert!(sigma < 0.5, "{sigma}");
        assert!(epsilon(1.0, sigma, 1, 1e-5).expect("valid").epsilon <= 50.0);
        assert!(
            epsilon(1.0, sigma * (1.0 - 2e-3), 1, 1e-5)
                .expect("valid")
                .epsilon
                > 50.0
        );
        // Full batch: ε is decreasing in σ and reachable.
        let sigma = noise_for_epsilon(1.0, 10, 1e-5, 8.079406222420491).expect("reachable");
        assert_rel(sigma, 2.0, 2e-3, "q = 1 inverse");
    }

    #[test]
    fn errors_name_the_bad_value() {
        let check = |r: Result<Epsilon, AccountantError>, needle: &str| match r {
            Err(e) => assert!(e.to_string().contains(needle), "{e} lacks {needle}"),
            Ok(v) => panic!("expected an error containing {needle}, got {v:?}"),
        };
        for q in [-0.1, 1.5, f64::NAN] {
            let r = epsilon(q, 1.0, 10, 1e-5);
            assert!(
                matches!(r, Err(AccountantError::InvalidSamplingRate(_))),
                "q {q}: {r:?}"
            );
            check(r, &q.to_string());
            assert!(matches!(
                noise_for_epsilon(q, 10, 1e-5, 1.0),
                Err(AccountantError::InvalidSamplingRate(_))
            ));
        }
        for sigma in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            let r = epsilon(0.1, sigma, 10, 1e-5);
            assert!(
                matches!(r, Err(AccountantError::InvalidNoiseMultiplier(_))),
                "sigma {sigma}: {r:?}"
            );
            check(r, &sigma.to_string());
        }
        for delta in [0.0, 1.0, -1e-5, f64::NAN] {
            let r = epsilon(0.1, 1.0, 10, delta);
            assert!(
                matches!(r, Err(AccountantError::InvalidDelta(_))),
                "delta {delta}: {r:?}"
            );
            check(r, &delta.to_string());
            assert!(matches!(
                noise_for_epsilon(0.1, 10, delta, 1.0),
                Err(AccountantError::InvalidDelta(_))
            ));
        }
        for target in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            let r = noise_for_epsilon(0.1, 10, 1e-5, target);
            match r {
                Err(e @ AccountantError::InvalidTargetEpsilon(_)) => {
                    assert!(e.to_string().contains(&target.to_string()), "{e}")
                }
                other => panic!("target {target}: {other:?}"),
            }
        }
        // 10¹⁵ full-batch steps: even σ = 10⁶ leaves ε in the hundreds.
        match noise_for_epsilon(1.0, 1_000_000_000_000_000, 1e-5, 1.0) {
            Err(e @ AccountantError::TargetUnreachable { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("target epsilon 1 ") && msg.contains("1000000"),
                    "{msg}"
                );
            }
            other => panic!("expected TargetUnreachable, got {other:?}"),
        }
    }

    #[test]
    fn epsilon_serde_round_trip() {
        let e = Epsilon {
            epsilon: 2.5965558697943036,
            order: 8.1,
        };
        let json = serde_json::to_string(&e).expect("serialize");
        assert_eq!(serde_json::from_str::<Epsilon>(&json).expect("deserialize"), e);
    }

    /// (x, ln erfc(x)) from mpmath 1.3 at 40 digits: `float(mpmath.log(mpmath.erfc(mpmath.mpf(x))))`
    /// (these also agree with dp_accounting's `math.log(2) + scipy.special.log_ndtr(-x * 2**0.5)`
    /// to ≤ 1e-13 relative).
    const LOG_ERFC_REFERENCE: &[(f64, f64)] = &[
        (-30.0, std::f64::consts::LN_2), // 0.6931471805599453
        (-5.0, 0.6931471805591766),
        (-1.3, 0.6595945050581623),
        (-1.2, 0.6472676150562195),
        (-0.3, 0.28414589714140825),
        (0.001, -0.0011290158896213548),
        (0.7, -1.1325865135143411),
        (1.2, -2.4114403551669295),
        (1.3, -2.7182209220903846),
        (2.0, -5.364941264616638),
        (3.7, -15.604367894999848),
        (5.0, -27.200889545537436),
        (6.5, -44.705670189533116),
        (10.0, -102.87988902484489),
        (27.0, -732.8688865078974),
        (40.0, -1604.2615566532736),
        (100.0, -10005.177585122665),
        (1000.0, -1000007.4801207219),
        (100000.0, -10000000012.08529),
    ];

    #[test]
    fn log_erfc_is_accurate() {
        for &(x, expected) in LOG_ERFC_REFERENCE {
            assert_rel(log_erfc(x), expected, 1e-13, &format!("log_erfc({x})"));
        }
        assert_eq!(log_erfc(0.0), 0.0);
        assert_eq!(log_erfc(f64::INFINITY), f64::NEG_INFINITY);
        assert_eq!(log_erfc(f64::NEG_INFINITY), std::f64::consts::LN_2);
        assert!(log_erfc(f64::NAN).is_nan());
        // Continuity across the series / continued-fraction switch.
        for x in [ERF_SERIES_LIMIT, -ERF_SERIES_LIMIT] {
            let (below, above) = (log_erfc(x - 1e-12), log_erfc(x + 1e-12));
            assert!((below - above).abs() < 1e-10, "jump at {x}: {below} vs {above}");
        }
    }

    /// (x, ln |Γ(x)|) from `scipy.special.gammaln(x)` (scipy 1.17.1).
    const LN_GAMMA_REFERENCE: &[(f64, f64)] = &[
        (0.5, 0.5723649429247),
        (2.5, 0.2846828704729192),
        (7.3, 7.147892523022249),
        (100.5, 361.43554046777757),
        (1025.0, 6078.211884750051),
        (-0.5, 1.2655121234846454),
        (-2.7, -0.0714070853156458),
        (-998.9, -5902.210613800816),
        (-1000.3, -5912.84403477852),
    ];

    #[test]
    fn ln_abs_gamma_is_accurate() {
        for &(x, expected) in LN_GAMMA_REFERENCE {
            assert_rel(ln_abs_gamma(x), expected, 1e-12, &format!("ln_abs_gamma({x})"));
        }
        assert!(ln_abs_gamma(1.0).abs() < 1e-14 && ln_abs_gamma(2.0).abs() < 1e-14);
        assert_eq!(ln_abs_gamma(-3.0), f64::INFINITY);
        assert_rel(log_comb(10.0, 3.0), 120.0_f64.ln(), 1e-13, "ln C(10, 3)");
    }
}
