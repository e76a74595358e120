//! The resolution an image file says it was scanned at, read from its header without decoding
//! the pixels.
//!
//! | format | where | units |
//! |---|---|---|
//! | TIFF | `XResolution` (tag 282) and `ResolutionUnit` (tag 296) of the first IFD | 2 inch (the default when the tag is absent), 3 centimetre; 1 (none) gives nothing |
//! | PNG | `pHYs` chunk before the first `IDAT` | 1 metre; 0 (aspect ratio only) gives nothing |
//! | JPEG | JFIF `APP0` density, else the EXIF `APP1` block's TIFF `XResolution` | JFIF 1 dpi, 2 dots per cm; 0 (aspect ratio only) gives nothing |
//! | BMP | `biXPelsPerMeter` of a `BITMAPINFOHEADER` or later | metre |
//!
//! Other formats (PNM, GIF, WebP) carry no resolution this reader knows: `None`.
//!
//! # Plausibility
//!
//! Only the horizontal resolution is read. A value outside [`MIN_PLAUSIBLE_DPI`]..=
//! [`MAX_PLAUSIBLE_DPI`] (250 to 5000 dpi), or not finite, is treated as absent: 72 and 96 dpi
//! are screen defaults that image converters write into files whatever the sensor was, and no
//! fingerprint or face sensor in use scans below 250 dpi or above 5000 dpi. A file whose header
//! is truncated or corrupt gives `None`; nothing here panics, whatever the bytes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Lowest resolution, in dpi, taken as a real scan resolution (below it: a converter's default).
pub const MIN_PLAUSIBLE_DPI: f32 = 250.0;
/// Highest resolution, in dpi, taken as a real scan resolution (above it: a corrupt header).
pub const MAX_PLAUSIBLE_DPI: f32 = 5000.0;

/// Metres (and centimetres) per inch, for the metric units of PNG, BMP, JFIF and TIFF.
const INCH_IN_METRES: f64 = 0.0254;
const INCH_IN_CM: f64 = 2.54;

/// At most this many PNG chunks or JPEG segments are looked at before giving up.
const MAX_BLOCKS: usize = 4096;

/// The horizontal resolution, in dots per inch, that the header of the image file at `path`
/// states, or `None` when it states none, states an implausible one (see the module docs), or
/// cannot be read. Reads only the header, never the pixels.
pub fn image_dpi(path: &Path) -> Option<f32> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut src = FileSource { f: &mut f, len };
    dpi_from(&mut src)
}

/// [`image_dpi`] on the bytes of a whole file held in memory (uploads, tests, fuzzing).
pub fn image_dpi_from_bytes(bytes: &[u8]) -> Option<f32> {
    dpi_from(&mut SliceSource(bytes))
}

/// Random access to the bytes of a file: `None` for any range that is not wholly inside it.
trait Source {
    fn read_at(&mut self, offset: u64, len: usize) -> Option<Vec<u8>>;
    fn len(&self) -> u64;
}

struct SliceSource<'a>(&'a [u8]);

impl Source for SliceSource<'_> {
    fn read_at(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(len)?;
        self.0.get(start..end).map(<[u8]>::to_vec)
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

struct FileSource<'a> {
    f: &'a mut File,
    len: u64,
}

impl Source for FileSource<'_> {
    fn read_at(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
        // Never allocate more than the file holds, whatever length a corrupt header asks for.
        if offset.checked_add(len as u64)? > self.len {
            return None;
        }
        self.f.seek(SeekFrom::Start(offset)).ok()?;
        let mut buf = vec![0; len];
        self.f.read_exact(&mut buf).ok()?;
        Some(buf)
    }
    fn len(&self) -> u64 {
        self.len
    }
}

fn dpi_from(src: &mut dyn Source) -> Option<f32> {
    let head = src.read_at(0, 8.min(src.len() as usize))?;
    let dpi = if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        png(src)
    } else if head.starts_with(&[0xFF, 0xD8]) {
        jpeg(src)
    } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        tiff(src, 0)
    } else if head.starts_with(b"BM") {
        bmp(src)
    } else {
        None
    };
    plausible(dpi?)
}

/// The policy of the module docs: finite and within the plausible range, or nothing.
fn plausible(dpi: f64) -> Option<f32> {
    let d = dpi as f32;
    (d.is_finite() && (MIN_PLAUSIBLE_DPI..=MAX_PLAUSIBLE_DPI).contains(&d)).then_some(d)
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn png(src: &mut dyn Source) -> Option<f64> {
    let mut pos = 8u64;
    for _ in 0..MAX_BLOCKS {
        let h = src.read_at(pos, 8)?;
        let len = be32(&h)?;
        match &h[4..8] {
            b"pHYs" => {
                let d = src.read_at(pos + 8, 9)?;
                let ppu = be32(&d)?;
                // Unit 1: pixels per metre; unit 0 states only the aspect ratio.
                return (d[8] == 1).then(|| f64::from(ppu) * INCH_IN_METRES);
            }
            // pHYs must come before the image data.
            b"IDAT" | b"IEND" => return None,
            _ => pos = pos.checked_add(12 + u64::from(len))?,
        }
    }
    None
}

fn jpeg(src: &mut dyn Source) -> Option<f64> {
    let mut pos = 2u64;
    let mut exif = None;
    for _ in 0..MAX_BLOCKS {
        let m = src.read_at(pos, 2)?;
        if m[0] != 0xFF {
            return exif;
        }
        let marker = m[1];
        match marker {
            // Fill byte: the marker follows.
            0xFF => {
                pos += 1;
                continue;
            }
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => {
                pos += 2;
                continue;
            }
            // Start of scan or end of image: the header is over.
            0xDA | 0xD9 => return exif,
            _ => {}
        }
        let l = src.read_at(pos + 2, 2)?;
        let len = u16::from_be_bytes([l[0], l[1]]);
        if len < 2 {
            return exif;
        }
        let body = pos + 4;
        let body_len = usize::from(len) - 2;
        if marker == 0xE0 && body_len >= 12 {
            let b = src.read_at(body, 12)?;
            if &b[..5] == b"JFIF\0" {
                let x = f64::from(u16::from_be_bytes([b[8], b[9]]));
                let d = match b[7] {
                    1 => Some(x),
                    2 => Some(x * INCH_IN_CM),
                    _ => None,
                };
                if d.and_then(plausible).is_some() {
                    return d;
                }
            }
        } else if marker == 0xE1 && body_len >= 14 && exif.is_none() {
            let b = src.read_at(body, 6)?;
            if b.as_slice() == b"Exif\0\0" {
                exif = tiff(src, body + 6);
            }
        }
        pos = body + body_len as u64;
    }
    exif
}

/// Reads XResolution and ResolutionUnit from the first IFD of a TIFF structure at `base`
/// (0 for a TIFF file, the start of the EXIF block in a JPEG).
fn tiff(src: &mut dyn Source, base: u64) -> Option<f64> {
    let h = src.read_at(base, 8)?;
    let le = match &h[..4] {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |b: &[u8]| -> Option<u16> {
        let a: [u8; 2] = b.get(..2)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        })
    };
    let u32_at = |b: &[u8]| -> Option<u32> {
        let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    let ifd = base + u64::from(u32_at(&h[4..])?);
    let n = u16_at(&src.read_at(ifd, 2)?)?;
    let entries = src.read_at(ifd + 2, usize::from(n) * 12)?;
    let mut x_res = None;
    // TIFF 6.0: ResolutionUnit defaults to 2 (inch) when absent.
    let mut unit = 2u16;
    for e in entries.chunks_exact(12) {
        let (tag, typ, count) = (u16_at(e)?, u16_at(&e[2..])?, u32_at(&e[4..])?);
        match (tag, typ) {
            // XResolution, RATIONAL: two u32 at the offset.
            (282, 5) if count >= 1 => {
                let r = src.read_at(base + u64::from(u32_at(&e[8..])?), 8)?;
                let (num, den) = (u32_at(&r)?, u32_at(&r[4..])?);
                if den != 0 {
                    x_res = Some(f64::from(num) / f64::from(den));
                }
            }
            // ResolutionUnit, SHORT, stored in the first two bytes of the value field.
            (296, 3) if count >= 1 => unit = u16_at(&e[8..])?,
            _ => {}
        }
    }
    match unit {
        2 => x_res,
        3 => x_res.map(|r| r * INCH_IN_CM),
        _ => None,
    }
}

fn bmp(src: &mut dyn Source) -> Option<f64> {
    let h = src.read_at(14, 4)?;
    let dib = u32::from_le_bytes(h.get(..4)?.try_into().ok()?);
    // BITMAPCOREHEADER (12 bytes) has no resolution; BITMAPINFOHEADER and later (40+) do.
    if dib < 40 {
        return None;
    }
    let p = src.read_at(38, 4)?;
    let ppm = i32::from_le_bytes(p.get(..4)?.try_into().ok()?);
    (ppm > 0).then(|| f64::from(ppm) * INCH_IN_METRES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn png_with(phys: Option<(u32, u8)>, before_idat: bool) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        let chunk = |v: &mut Vec<u8>, t: &[u8], d: &[u8]| {
            v.extend((d.len() as u32).to_be_bytes());
            v.extend(t);
            v.extend(d);
            v.extend([0, 0, 0, 0]);
        };
        chunk(&mut v, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
        let phys_chunk = |v: &mut Vec<u8>| {
            if let Some((ppm, unit)) = phys {
                let mut d = ppm.to_be_bytes().to_vec();
                d.extend(ppm.to_be_bytes());
                d.push(unit);
                chunk(v, b"pHYs", &d);
            }
        };
        if before_idat {
            phys_chunk(&mut v);
        }
        chunk(&mut v, b"IDAT", &[1, 2, 3]);
        if !before_idat {
            phys_chunk(&mut v);
        }
        chunk(&mut v, b"IEND", &[]);
        v
    }

    /// A minimal TIFF header with one IFD holding XResolution (and ResolutionUnit if given).
    fn tiff_with(le: bool, res: (u32, u32), unit: Option<u16>) -> Vec<u8> {
        let w16 = |v: &mut Vec<u8>, x: u16| v.extend(if le { x.to_le_bytes() } else { x.to_be_bytes() });
        let w32 = |v: &mut Vec<u8>, x: u32| v.extend(if le { x.to_le_bytes() } else { x.to_be_bytes() });
        let mut v = if le { b"II*\0".to_vec() } else { b"MM\0*".to_vec() };
        w32(&mut v, 8);
        let n = 1 + u16::from(unit.is_some());
        w16(&mut v, n);
        let rational_at = 8 + 2 + 12 * u32::from(n) + 4;
        w16(&mut v, 282);
        w16(&mut v, 5);
        w32(&mut v, 1);
        w32(&mut v, rational_at);
        if let Some(u) = unit {
            w16(&mut v, 296);
            w16(&mut v, 3);
            w32(&mut v, 1);
            w16(&mut v, u);
            w16(&mut v, 0);
        }
        w32(&mut v, 0);
        w32(&mut v, res.0);
        w32(&mut v, res.1);
        v
    }

    fn jfif(units: u8, x: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        v.extend(b"JFIF\0\x01\x01");
        v.push(units);
        v.extend(x.to_be_bytes());
        v.extend(x.to_be_bytes());
        v.extend([0, 0]);
        v.extend([0xFF, 0xDA, 0, 2]);
        v
    }

    fn exif_jpeg(tiff: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE1];
        v.extend(((tiff.len() + 8) as u16).to_be_bytes());
        v.extend(b"Exif\0\0");
        v.extend(tiff);
        v.extend([0xFF, 0xD9]);
        v
    }

    fn bmp_with(dib: u32, ppm: i32) -> Vec<u8> {
        let mut v = b"BM".to_vec();
        v.extend([0u8; 12]);
        v.extend(dib.to_le_bytes());
        v.extend([0u8; 20]);
        v.extend(ppm.to_le_bytes());
        v.extend(ppm.to_le_bytes());
        v.extend([0u8; 8]);
        v
    }

    fn near(a: Option<f32>, b: f32) -> bool {
        a.is_some_and(|a| (a - b).abs() < 0.5)
    }

    #[test]
    fn png_phys_in_metres() {
        assert!(near(
            image_dpi_from_bytes(&png_with(Some((19685, 1)), true)),
            500.0
        ));
        // Aspect ratio only, after IDAT, absent, a converter's 72 dpi (2835 px/m): nothing.
        assert_eq!(image_dpi_from_bytes(&png_with(Some((19685, 0)), true)), None);
        assert_eq!(image_dpi_from_bytes(&png_with(Some((19685, 1)), false)), None);
        assert_eq!(image_dpi_from_bytes(&png_with(None, true)), None);
        assert_eq!(image_dpi_from_bytes(&png_with(Some((2835, 1)), true)), None);
    }

    #[test]
    fn tiff_resolution_and_unit() {
        for le in [true, false] {
            assert!(near(
                image_dpi_from_bytes(&tiff_with(le, (500, 1), Some(2))),
                500.0
            ));
            assert!(near(image_dpi_from_bytes(&tiff_with(le, (1000, 2), None)), 500.0));
            assert!(near(
                image_dpi_from_bytes(&tiff_with(le, (200, 1), Some(3))),
                508.0
            ));
            assert_eq!(image_dpi_from_bytes(&tiff_with(le, (500, 1), Some(1))), None);
            assert_eq!(image_dpi_from_bytes(&tiff_with(le, (500, 0), Some(2))), None);
            assert_eq!(image_dpi_from_bytes(&tiff_with(le, (72, 1), Some(2))), None);
            assert_eq!(image_dpi_from_bytes(&tiff_with(le, (96, 1), Some(2))), None);
            assert_eq!(image_dpi_from_bytes(&tiff_with(le, (9000, 1), Some(2))), None);
        }
    }

    #[test]
    fn jpeg_jfif_and_exif() {
        assert!(near(image_dpi_from_bytes(&jfif(1, 500)), 500.0));
        assert!(near(image_dpi_from_bytes(&jfif(2, 197)), 500.4));
        assert_eq!(image_dpi_from_bytes(&jfif(0, 1)), None);
        assert_eq!(image_dpi_from_bytes(&jfif(1, 72)), None);
        assert!(near(
            image_dpi_from_bytes(&exif_jpeg(&tiff_with(false, (569, 1), Some(2)))),
            569.0
        ));
        // JFIF with a converter's 96 dpi does not hide a plausible EXIF resolution.
        let mut both = jfif(1, 96);
        both.truncate(both.len() - 4);
        both.extend(&exif_jpeg(&tiff_with(true, (1000, 1), None))[2..]);
        assert!(near(image_dpi_from_bytes(&both), 1000.0));
    }

    #[test]
    fn bmp_pixels_per_metre() {
        assert!(near(image_dpi_from_bytes(&bmp_with(40, 19685)), 500.0));
        assert_eq!(image_dpi_from_bytes(&bmp_with(12, 19685)), None);
        assert_eq!(image_dpi_from_bytes(&bmp_with(40, -19685)), None);
        assert_eq!(image_dpi_from_bytes(&bmp_with(40, 3780)), None);
    }

    #[test]
    fn truncated_and_unknown_headers_give_nothing() {
        for full in [
            png_with(Some((19685, 1)), true),
            tiff_with(true, (500, 1), Some(2)),
            jfif(1, 500),
            exif_jpeg(&tiff_with(true, (500, 1), None)),
            bmp_with(40, 19685),
        ] {
            for cut in 0..full.len().min(60) {
                let d = image_dpi_from_bytes(&full[..cut]);
                assert!(d.is_none() || near(d, 500.0), "{cut}: {d:?}");
            }
        }
        assert_eq!(image_dpi_from_bytes(b"P5\n1 1\n255\n\0"), None);
        assert_eq!(image_dpi_from_bytes(b"GIF89a"), None);
        assert_eq!(image_dpi_from_bytes(&[]), None);
        assert_eq!(image_dpi(Path::new("/no/such/file.png")), None);
    }

    #[test]
    fn reads_files_like_bytes() {
        let t = tempfile::TempDir::new().expect("tempdir");
        let p = t.path().join("x.tif");
        std::fs::write(&p, tiff_with(false, (500, 1), Some(2))).expect("write");
        assert!(near(image_dpi(&p), 500.0));
        // A huge offset in a corrupt header does not allocate or read past the end.
        let mut bad = tiff_with(true, (500, 1), Some(2));
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&p, &bad).expect("write");
        assert_eq!(image_dpi(&p), None);
    }

    proptest! {
        /// Random bytes, alone or behind each format's signature, never panic.
        #[test]
        fn random_bytes_never_panic(
            sig in 0usize..6,
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let prefix: &[u8] = [
                &b""[..], b"\x89PNG\r\n\x1a\n", b"\xFF\xD8", b"II*\0", b"MM\0*", b"BM",
            ][sig];
            let mut v = prefix.to_vec();
            v.extend(bytes);
            if let Some(d) = image_dpi_from_bytes(&v) {
                prop_assert!((MIN_PLAUSIBLE_DPI..=MAX_PLAUSIBLE_DPI).contains(&d));
            }
        }
    }
}

/// Writes `img` as an 8-bit grey PNG whose `pHYs` chunk states `dpi` (square pixels): how a set
/// resampled to another resolution carries it, so that [`image_dpi`] reads it back and the input
/// contract scales the images without being told.
///
/// # Errors
/// [`crate::Error::InvalidParameter`] for a resolution that is not positive and finite;
/// [`crate::Error::Io`] naming the file when it cannot be written.
pub fn save_png_with_dpi(img: &image::GrayImage, dpi: f32, path: &Path) -> crate::Result<()> {
    if !(dpi.is_finite() && dpi > 0.0) {
        return Err(crate::Error::InvalidParameter {
            name: "dpi",
            reason: format!("{dpi} is not a resolution"),
        });
    }
    let io = |e: std::io::Error| crate::Error::io(path, e);
    let file = File::create(path).map_err(io)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), img.width(), img.height());
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let per_metre = (f64::from(dpi) / INCH_IN_METRES).round() as u32;
    enc.set_pixel_dims(Some(png::PixelDimensions {
        xppu: per_metre,
        yppu: per_metre,
        unit: png::Unit::Meter,
    }));
    let mut w = enc.write_header().map_err(|e| io(std::io::Error::other(e)))?;
    w.write_image_data(img.as_raw())
        .and_then(|()| w.finish())
        .map_err(|e| io(std::io::Error::other(e)))
}

#[cfg(test)]
mod save_tests {
    use super::*;

    #[test]
    fn saved_resolution_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::GrayImage::from_fn(40, 30, |x, y| image::Luma([(x * 5 + y) as u8]));
        let path = dir.path().join("r.png");
        save_png_with_dpi(&img, 569.0, &path).unwrap();
        let dpi = image_dpi(&path).unwrap();
        assert!((dpi - 569.0).abs() < 0.1, "{dpi}");
        assert_eq!(crate::loaders::load_image(&path).unwrap(), img);
        assert!(save_png_with_dpi(&img, 0.0, &path).is_err());
        let err = save_png_with_dpi(&img, 500.0, &dir.path().join("no/such/dir/x.png")).unwrap_err();
        assert!(err.to_string().contains("no/such/dir"), "{err}");
    }
}
