//! Score files: CSV with the columns `reference_subject,probe_subject,probe_sample,score`
//! (DESIGN.md §4), and bob.measure's 4-column text format `claimed_id real_id probe_label score`,
//! so that results can be re-evaluated by this crate or by other tools.
//!
//! Scores are written with Rust's shortest round-trip formatting: reading a file back gives the
//! exact same numbers. Subjects are written by label (`labels(subject_id)`); in the 4-column
//! format the probe label is `<probe subject label>/<probe sample index>`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use crate::protocol::ScoreRecord;
use crate::{Error, Result, ScoreSet};

/// Writes `records` as CSV with a header line `reference_subject,probe_subject,probe_sample,score`.
/// Labels holding a comma, a quote or a line break are quoted as RFC 4180 says.
pub fn write_csv(path: &Path, records: &[ScoreRecord], labels: &dyn Fn(u32) -> String) -> Result<()> {
    write_lines(path, |w| {
        writeln!(w, "reference_subject,probe_subject,probe_sample,score")?;
        for r in records {
            let reference = csv_field(&labels(r.reference_subject));
            let probe = csv_field(&labels(r.probe_subject));
            writeln!(w, "{reference},{probe},{},{}", r.probe_sample, r.score)?;
        }
        Ok(())
    })
}

/// Writes `records` in bob.measure's 4-column format, one comparison a line:
/// `claimed_id real_id probe_label score`, where `claimed_id` is the reference subject's label,
/// `real_id` the probe subject's label and `probe_label` names the probe sample.
/// Labels must be non-empty and free of whitespace (the format splits on it).
pub fn write_bob4(path: &Path, records: &[ScoreRecord], labels: &dyn Fn(u32) -> String) -> Result<()> {
    // Check every label before creating the file, so a bad one leaves nothing half-written.
    let mut checked = std::collections::HashMap::new();
    for r in records {
        for id in [r.reference_subject, r.probe_subject] {
            if let std::collections::hash_map::Entry::Vacant(e) = checked.entry(id) {
                let label = labels(id);
                let reason = if label.is_empty() {
                    Some("it is empty")
                } else if label.chars().any(char::is_whitespace) {
                    Some("it contains whitespace")
                } else if label.starts_with('#') {
                    Some("it starts with '#', which marks a comment")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(Error::BadLabel {
                        subject: id,
                        label,
                        format: "bob4",
                        reason,
                    });
                }
                e.insert(label);
            }
        }
    }
    write_lines(path, |w| {
        for r in records {
            let claimed = &checked[&r.reference_subject];
            let real = &checked[&r.probe_subject];
            writeln!(w, "{claimed} {real} {real}/{} {}", r.probe_sample, r.score)?;
        }
        Ok(())
    })
}

/// Reads a 4-column score file: a line is genuine when `claimed_id == real_id`. Blank lines
/// and lines starting with `#` are skipped. A line without exactly four fields, or whose score
/// is not a finite number, is an error naming the line.
pub fn read_bob4(path: &Path) -> Result<ScoreSet> {
    read_scores(path, |_, line| {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(None);
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let [claimed, real, _probe, score] = fields[..] else {
            return Err(format!(
                "expected 4 fields (claimed_id real_id probe_label score), found {}",
                fields.len()
            ));
        };
        Ok(Some((claimed == real, parse_score(score)?)))
    })
}

/// Reads a CSV score file written by [`write_csv`] (header required): a line is genuine when
/// `reference_subject == probe_subject`. Errors name the line.
pub fn read_csv(path: &Path) -> Result<ScoreSet> {
    read_scores(path, |n, line| {
        if n == 0 {
            if line.trim() != "reference_subject,probe_subject,probe_sample,score" {
                return Err("expected the header reference_subject,probe_subject,probe_sample,score".into());
            }
            return Ok(None);
        }
        if line.trim().is_empty() {
            return Ok(None);
        }
        let fields = split_csv(line).map_err(String::from)?;
        let [reference, probe, _sample, score] = &fields[..] else {
            return Err(format!("expected 4 fields, found {}", fields.len()));
        };
        Ok(Some((reference == probe, parse_score(score)?)))
    })
}

/// Reads a score file line by line: `parse(line_index, line)` gives `(genuine, score)`, `None`
/// for a line to skip, or a reason that becomes an error naming the line.
fn read_scores(
    path: &Path,
    mut parse: impl FnMut(usize, &str) -> std::result::Result<Option<(bool, f64)>, String>,
) -> Result<ScoreSet> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let parsed = parse(n, &line).map_err(|reason| Error::ScoreFileLine {
            path: path.to_path_buf(),
            line: n + 1,
            reason,
        })?;
        match parsed {
            Some((true, score)) => genuine.push(score),
            Some((false, score)) => impostor.push(score),
            None => {}
        }
    }
    ScoreSet::new(genuine, impostor)
}

fn parse_score(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("score {v} is not a finite number")),
        Err(_) => Err(format!("score {text:?} is not a number")),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Splits one CSV line, honouring RFC 4180 quotes.
fn split_csv(line: &str) -> std::result::Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if field.is_empty() => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => {
                quoted = false;
                if !matches!(chars.peek(), None | Some(',')) {
                    return Err("text after a closing quote");
                }
            }
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote");
    }
    fields.push(field);
    Ok(fields)
}

fn write_lines(path: &Path, body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(file);
    body(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_round_trip() {
        for s in ["plain", "a,b", "say \"hi\"", ""] {
            let line = format!("{},x", csv_field(s));
            assert_eq!(split_csv(&line).unwrap(), vec![s.to_string(), "x".to_string()]);
        }
        assert!(split_csv("\"open,x").is_err());
        assert!(split_csv("\"a\"b,x").is_err());
    }
}
