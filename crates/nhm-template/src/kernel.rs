//! Hamming-distance kernels over packed u64 words, with runtime CPU dispatch.
//!
//! The x86-64 baseline target has no POPCNT instruction, so a plain `count_ones` compiles to a
//! bit-twiddling sequence. Here each kernel is compiled with its target features enabled and
//! picked at run time: AVX-512 VPOPCNTDQ, AVX2 (nibble look-up popcount), POPCNT, or the
//! portable fallback. All kernels return identical results (tested); which one is fastest is
//! measured by `cargo bench -p nhm-template --bench matching`.

use std::sync::OnceLock;

/// A Hamming kernel implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// `u64::count_ones` compiled for the baseline target: works everywhere.
    Portable,
    /// The x86-64 POPCNT instruction, one word at a time.
    Popcnt,
    /// AVX2: 256-bit XOR and a nibble look-up popcount (`vpshufb` + `vpsadbw`).
    Avx2,
    /// AVX-512 VPOPCNTDQ (with VL): a popcount instruction on four 64-bit lanes at once.
    Avx512,
}

impl Kernel {
    /// Every kernel, fastest first (by design; the benchmark says by measurement).
    pub const ALL: [Kernel; 4] = [Kernel::Avx512, Kernel::Avx2, Kernel::Popcnt, Kernel::Portable];

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Popcnt => std::arch::is_x86_feature_detected!("popcnt"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512vpopcntdq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("popcnt")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Short lower-case name, for benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Popcnt => "popcnt",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512-vpopcntdq",
        }
    }
}

/// The kernels this CPU can run, fastest first.
pub fn available() -> Vec<Kernel> {
    Kernel::ALL.into_iter().filter(|k| k.is_available()).collect()
}

/// The fastest available kernel for any row length, detected once: the first available of
/// [`Kernel::ALL`].
pub fn best() -> Kernel {
    static BEST: OnceLock<Kernel> = OnceLock::new();
    *BEST.get_or_init(|| available().first().copied().unwrap_or(Kernel::Portable))
}

/// The kernel used for rows of `words` u64 words.
///
/// Measured (`benches/matching.rs`, Xeon with AVX-512): for 256-bit rows (4 words) scalar
/// POPCNT beats the vector kernels, whose per-row horizontal sum costs more than it saves;
/// for wider rows (8 words and more) AVX-512 VPOPCNTDQ wins. AVX2 was never the fastest
/// where POPCNT exists, so it is kept as a tested alternative, not a default.
pub fn best_for(words: usize) -> Kernel {
    let b = best();
    if words < 8 && b == Kernel::Avx512 || b == Kernel::Avx2 {
        Kernel::Popcnt
    } else {
        b
    }
}

/// Hamming distance between two equally long word slices, with the best kernel.
///
/// Words beyond the shorter slice are ignored; callers check lengths.
pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
    hamming_with(best_for(a.len()), a, b)
}

/// Hamming distance with a given kernel (the portable one if `k` is not available here).
pub fn hamming_with(k: Kernel, a: &[u64], b: &[u64]) -> u32 {
    let n = a.len().min(b.len());
    let mut d = 0;
    scan_with(k, &a[..n], &b[..n], |_, x| d = x);
    d
}

/// Calls `f(row, distance)` for every row of `rows` (consecutive rows of `probe.len()` words),
/// with the kernel [`best_for`] picks. A partial last row is ignored.
pub fn scan<F: FnMut(usize, u32)>(probe: &[u64], rows: &[u64], f: F) {
    scan_with(best_for(probe.len()), probe, rows, f)
}

/// [`scan`] with a given kernel (the portable one if `k` is not available here).
pub fn scan_with<F: FnMut(usize, u32)>(k: Kernel, probe: &[u64], rows: &[u64], f: F) {
    if probe.is_empty() {
        return;
    }
    let k = if k.is_available() { k } else { Kernel::Portable };
    match k {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: is_available() checked the CPU features each function enables.
        Kernel::Avx512 => unsafe { x86::scan_avx512(probe, rows, f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Kernel::Avx2 => unsafe { x86::scan_avx2(probe, rows, f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Kernel::Popcnt => unsafe { x86::scan_popcnt(probe, rows, f) },
        _ => scan_portable(probe, rows, f),
    }
}

/// One row's distance, word by word; inlined into each kernel so `count_ones` compiles to
/// whatever that kernel's target features allow.
#[inline(always)]
fn row_distance(probe: &[u64], row: &[u64]) -> u32 {
    probe.iter().zip(row).map(|(a, b)| (a ^ b).count_ones()).sum()
}

/// The portable scan.
fn scan_portable<F: FnMut(usize, u32)>(probe: &[u64], rows: &[u64], mut f: F) {
    for (i, row) in rows.chunks_exact(probe.len()).enumerate() {
        f(i, row_distance(probe, row));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The x86-64 kernels. Each is an `unsafe fn` only because of its target features.
    use std::arch::x86_64::*;

    use super::row_distance;

    /// Scan with the POPCNT instruction.
    #[target_feature(enable = "popcnt")]
    pub(super) unsafe fn scan_popcnt<F: FnMut(usize, u32)>(probe: &[u64], rows: &[u64], mut f: F) {
        let w = probe.len();
        if w == 4 {
            // The common 256-bit case, unrolled.
            let p = [probe[0], probe[1], probe[2], probe[3]];
            for (i, r) in rows.chunks_exact(4).enumerate() {
                let d = (p[0] ^ r[0]).count_ones()
                    + (p[1] ^ r[1]).count_ones()
                    + (p[2] ^ r[2]).count_ones()
                    + (p[3] ^ r[3]).count_ones();
                f(i, d);
            }
        } else {
            for (i, row) in rows.chunks_exact(w).enumerate() {
                f(i, row_distance(probe, row));
            }
        }
    }

    /// Popcount of each byte of `v`, summed into four u64 lanes (Muła's nibble look-up).
    #[target_feature(enable = "avx2")]
    fn popcnt_lanes_avx2(v: __m256i) -> __m256i {
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0f);
        let lo = _mm256_and_si256(v, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
        let cnt = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
        _mm256_sad_epu8(cnt, _mm256_setzero_si256())
    }

    /// Sum of the four u64 lanes.
    #[target_feature(enable = "avx2")]
    fn hsum_avx2(v: __m256i) -> u32 {
        let s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        (_mm_cvtsi128_si64(s) + _mm_extract_epi64::<1>(s)) as u32
    }

    /// Loads four words.
    ///
    /// # Safety
    /// `s` must hold at least four words.
    #[inline(always)]
    unsafe fn load4(s: &[u64]) -> __m256i {
        debug_assert!(s.len() >= 4);
        // SAFETY: the caller guarantees four readable words; loadu has no alignment need.
        unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
    }

    /// Scan with AVX2: four words at a time, POPCNT for the remainder.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn scan_avx2<F: FnMut(usize, u32)>(probe: &[u64], rows: &[u64], mut f: F) {
        let w = probe.len();
        let full = w / 4 * 4;
        for (i, row) in rows.chunks_exact(w).enumerate() {
            let mut acc = _mm256_setzero_si256();
            for j in (0..full).step_by(4) {
                // SAFETY: j + 4 <= full <= w = probe.len() = row.len().
                let x = unsafe { _mm256_xor_si256(load4(&probe[j..]), load4(&row[j..])) };
                acc = _mm256_add_epi64(acc, popcnt_lanes_avx2(x));
            }
            f(i, hsum_avx2(acc) + row_distance(&probe[full..], &row[full..]));
        }
    }

    /// Scan with AVX-512 VPOPCNTDQ on 256-bit vectors, POPCNT for the remainder.
    #[target_feature(enable = "avx512vpopcntdq,avx512vl,avx2,popcnt")]
    pub(super) unsafe fn scan_avx512<F: FnMut(usize, u32)>(probe: &[u64], rows: &[u64], mut f: F) {
        let w = probe.len();
        let full = w / 4 * 4;
        for (i, row) in rows.chunks_exact(w).enumerate() {
            let mut acc = _mm256_setzero_si256();
            for j in (0..full).step_by(4) {
                // SAFETY: j + 4 <= full <= w = probe.len() = row.len().
                let x = unsafe { _mm256_xor_si256(load4(&probe[j..]), load4(&row[j..])) };
                acc = _mm256_add_epi64(acc, _mm256_popcnt_epi64(x));
            }
            f(i, hsum_avx2(acc) + row_distance(&probe[full..], &row[full..]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn all_kernels_agree() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let kernels = available();
        assert!(kernels.contains(&Kernel::Portable));
        for words in [1usize, 2, 3, 4, 5, 7, 8, 9, 16, 17] {
            let probe: Vec<u64> = (0..words).map(|_| rng.gen()).collect();
            let rows: Vec<u64> = (0..words * 37).map(|_| rng.gen()).collect();
            let reference: Vec<u32> = rows
                .chunks_exact(words)
                .map(|r| probe.iter().zip(r).map(|(a, b)| (a ^ b).count_ones()).sum())
                .collect();
            for &k in &kernels {
                let mut got = Vec::new();
                scan_with(k, &probe, &rows, |i, d| {
                    assert_eq!(i, got.len());
                    got.push(d)
                });
                assert_eq!(got, reference, "kernel {k:?}, {words} words");
                assert_eq!(hamming_with(k, &probe, &rows[..words]), reference[0]);
            }
        }
    }

    #[test]
    fn unavailable_kernels_fall_back_and_extremes_count() {
        let a = [u64::MAX; 4];
        let b = [0u64; 4];
        for k in Kernel::ALL {
            assert_eq!(hamming_with(k, &a, &b), 256);
            assert_eq!(hamming_with(k, &a, &a), 0);
        }
        let mut n = 0;
        scan(&[], &[1, 2], |_, _| n += 1);
        assert_eq!(n, 0);
    }
}
