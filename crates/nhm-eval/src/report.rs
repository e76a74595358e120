//! Evaluation reports in three forms from one [`Report`]: `report.json` (every figure, stable
//! keys, schema in REPORT_SCHEMA.md), `report.md` (a summary a person reads in two minutes) and
//! `report.html` (the same, self-contained: plots embedded as data URIs, no external assets).
//!
//! Nothing here reads the clock: the creation time is passed in, so the same inputs give the
//! same files byte for byte.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::plot::percent_2;
use crate::protocol::{FnmrAt, RecognitionFigures};
use crate::{Error, Result};

/// The version of report.json's layout; raised whenever a key changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// One evaluated system (for example "raw embedding", "binary hashmap") and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemResult {
    /// The system's name, as shown in tables and legends.
    pub name: String,
    /// Its recognition figures.
    pub figures: RecognitionFigures,
}

/// An evaluation report. Build it with a struct literal (`..Default::default()` for the rest),
/// then [`Report::write`] it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was evaluated, in a few words.
    pub title: String,
    /// When, as an RFC 3339 string chosen by the caller.
    pub created: String,
    /// How: dataset, model, seed, protocol, git revision... free-form.
    pub config: serde_json::Value,
    /// The systems compared, in the order they are shown.
    pub systems: Vec<SystemResult>,
    /// Further figures (protection, attacks, timings...), free-form.
    pub extra: serde_json::Value,
    /// Remarks shown at the end of the summary.
    pub notes: Vec<String>,
    /// Plots as (caption, file name relative to the report's folder).
    pub plots: Vec<(String, String)>,
}

/// What report.json holds: the report with its schema version in front.
#[derive(Serialize)]
struct Versioned<'a> {
    schema_version: u32,
    #[serde(flatten)]
    report: &'a Report,
}

impl Report {
    /// The figures of the first system whose name starts with `prefix` (`"binary hashmap ("`,
    /// `"raw pixels"`, ...).
    pub fn system(&self, prefix: &str) -> Option<&RecognitionFigures> {
        self.systems
            .iter()
            .find(|s| s.name.starts_with(prefix))
            .map(|s| &s.figures)
    }

    /// Writes report.json, report.md and report.html into `dir` (created if missing). The plot
    /// files must already be in `dir`: report.html embeds them.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut json = serde_json::to_string_pretty(&Versioned {
            schema_version: SCHEMA_VERSION,
            report: self,
        })
        .map_err(|source| Error::Json { source })?;
        json.push('\n');
        let html = self.html(dir)?;
        for (name, text) in [
            ("report.json", json),
            ("report.md", self.markdown()),
            ("report.html", html),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// The FMR targets of all systems, in order of first appearance.
    fn fmr_targets(&self) -> Vec<f64> {
        let mut t: Vec<f64> = Vec::new();
        for f in self.systems.iter().flat_map(|s| &s.figures.fnmr_at_fmr) {
            if !t.contains(&f.fmr_target) {
                t.push(f.fmr_target);
            }
        }
        t
    }

    /// The enrolment counts of all systems, ascending.
    fn enrolment_counts(&self) -> Vec<usize> {
        let mut k: Vec<usize> = self
            .systems
            .iter()
            .flat_map(|s| s.figures.identification.iter().map(|r| r.enrolled))
            .collect();
        k.sort_unstable();
        k.dedup();
        k
    }

    /// The summary table: header cells and one row per system.
    fn summary(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let targets = self.fmr_targets();
        let counts = self.enrolment_counts();
        let mut header = vec!["System".to_string(), "EER".to_string()];
        header.extend(
            targets
                .iter()
                .map(|t| format!("FNMR @ FMR {}", crate::plot::percent(*t))),
        );
        header.extend(counts.iter().map(|k| format!("Rank-1, {k} enrolled")));
        let rows =
            self.systems
                .iter()
                .map(|s| {
                    let f = &s.figures;
                    let mut row = vec![s.name.clone(), percent_2(f.eer)];
                    row.extend(targets.iter().map(
                        |t| match f.fnmr_at_fmr.iter().find(|x| x.fmr_target == *t) {
                            Some(x) if x.resolvable => percent_2(x.fnmr),
                            Some(_) => "n/r".to_string(),
                            None => "–".to_string(),
                        },
                    ));
                    row.extend(counts.iter().map(
                        |k| match f.identification.iter().find(|r| r.enrolled == *k) {
                            Some(r) => percent_2(r.rank1),
                            None => "–".to_string(),
                        },
                    ));
                    row
                })
                .collect();
        (header, rows)
    }

    /// Pair counts and identification details, one row per system.
    fn counts(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = [
            "System",
            "Genuine pairs",
            "Impostor pairs",
            "Non-mated pairs available",
            "Smallest FMR measurable",
        ]
        .map(String::from)
        .to_vec();
        let rows = self
            .systems
            .iter()
            .map(|s| {
                let f = &s.figures;
                vec![
                    s.name.clone(),
                    f.genuine_pairs.to_string(),
                    f.impostor_pairs.to_string(),
                    f.impostor_pairs_available.to_string(),
                    if f.impostor_pairs > 0 {
                        format!("{:.1e}", 1.0 / f.impostor_pairs as f64)
                    } else {
                        "–".into()
                    },
                ]
            })
            .collect();
        (header, rows)
    }

    /// Every operating point: threshold, measured FMR and FNMR per target.
    fn operating_points(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = [
            "System",
            "Target FMR",
            "Threshold",
            "Measured FMR",
            "FNMR",
            "Resolvable",
        ]
        .map(String::from)
        .to_vec();
        let mut rows = Vec::new();
        for s in &self.systems {
            let f = &s.figures;
            rows.push(vec![
                s.name.clone(),
                "EER".into(),
                format!("{:.6}", f.eer_threshold),
                "–".into(),
                "–".into(),
                "–".into(),
            ]);
            for x in &f.fnmr_at_fmr {
                rows.push(operating_row(&s.name, x));
            }
        }
        (header, rows)
    }

    /// Identification details.
    fn identification(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = [
            "System",
            "Enrolled",
            "Gallery subjects",
            "Probes",
            "Skipped subjects",
            "Rank-1",
            "Rank-5",
        ]
        .map(String::from)
        .to_vec();
        let rows = self
            .systems
            .iter()
            .flat_map(|s| {
                s.figures.identification.iter().map(|r| {
                    vec![
                        s.name.clone(),
                        r.enrolled.to_string(),
                        r.gallery_subjects.to_string(),
                        r.probes.to_string(),
                        r.skipped_subjects.to_string(),
                        percent_2(r.rank1),
                        percent_2(r.rank5),
                    ]
                })
            })
            .collect();
        (header, rows)
    }

    /// Fixed explanations shown under the tables, plus a warning per unresolvable figure.
    fn explanations(&self) -> Vec<String> {
        let mut e = vec![
            "EER: equal error rate, where FMR = FNMR. FNMR @ FMR x: the false non-match rate at the lowest \
             threshold whose measured FMR is at most x. All rates are shares of comparisons (ISO/IEC 19795-1)."
                .to_string(),
            "Rank-1 (k enrolled): share of probes whose own subject scores highest when every subject with more \
             than k samples enrols its first k and probes with the rest; ties count against the probe."
                .to_string(),
        ];
        for s in &self.systems {
            let n = s.figures.impostor_pairs;
            let bad: Vec<String> = s
                .figures
                .fnmr_at_fmr
                .iter()
                .filter(|x| !x.resolvable)
                .map(|x| crate::plot::percent(x.fmr_target))
                .collect();
            if !bad.is_empty() {
                e.push(format!(
                    "n/r (not resolvable) for {}: with {n} impostor pairs the smallest measurable FMR is 1/{n}, \
                     above FMR {}; more impostor pairs are needed to report it.",
                    s.name,
                    bad.join(", ")
                ));
            }
        }
        e
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "# {}\n", md_escape(&self.title));
        if !self.created.is_empty() {
            let _ = writeln!(m, "Created {}.\n", md_escape(&self.created));
        }
        let _ = writeln!(m, "## Summary\n");
        md_table(&mut m, self.summary());
        for e in self.explanations() {
            let _ = writeln!(m, "- {}", md_escape(&e));
        }
        if !self.notes.is_empty() {
            let _ = writeln!(m, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(m, "- {}", md_escape(n));
            }
        }
        if !self.plots.is_empty() {
            let _ = writeln!(m, "\n## Plots\n");
            for (caption, file) in &self.plots {
                let _ = writeln!(
                    m,
                    "![{}]({})\n\n*{}*\n",
                    md_escape(caption),
                    file.replace(' ', "%20"),
                    md_escape(caption)
                );
            }
        }
        let _ = writeln!(m, "\n## Comparisons\n");
        md_table(&mut m, self.counts());
        let _ = writeln!(m, "\n## Operating points\n");
        md_table(&mut m, self.operating_points());
        let ident = self.identification();
        if !ident.1.is_empty() {
            let _ = writeln!(m, "\n## Identification\n");
            md_table(&mut m, ident);
        }
        for (name, value) in [("Configuration", &self.config), ("Further figures", &self.extra)] {
            if !value.is_null() {
                let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
                let _ = writeln!(m, "\n## {name}\n\n```json\n{pretty}\n```");
            }
        }
        let _ = writeln!(
            m,
            "\nEvery figure, with the DET curves, is in report.json (schema version {SCHEMA_VERSION})."
        );
        // Sections each add their own spacing; keep at most one blank line between blocks.
        while m.contains("\n\n\n") {
            m = m.replace("\n\n\n", "\n\n");
        }
        m
    }

    /// The self-contained HTML report; plot files are read from `dir` and embedded.
    fn html(&self, dir: &Path) -> Result<String> {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n{}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
            esc(&self.title),
            CSS,
            esc(&self.title)
        );
        if !self.created.is_empty() {
            let _ = writeln!(h, "<p class=\"muted\">Created {}.</p>", esc(&self.created));
        }
        let _ = writeln!(h, "<h2>Summary</h2>");
        html_table(&mut h, self.summary());
        let _ = writeln!(h, "<ul class=\"muted\">");
        for e in self.explanations() {
            let _ = writeln!(h, "<li>{}</li>", esc(&e));
        }
        let _ = writeln!(h, "</ul>");
        if !self.notes.is_empty() {
            let _ = writeln!(h, "<h2>Notes</h2>\n<ul>");
            for n in &self.notes {
                let _ = writeln!(h, "<li>{}</li>", esc(n));
            }
            let _ = writeln!(h, "</ul>");
        }
        if !self.plots.is_empty() {
            let _ = writeln!(h, "<h2>Plots</h2>");
            for (caption, file) in &self.plots {
                let path = dir.join(file);
                let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                let mime = match Path::new(file).extension().and_then(|e| e.to_str()) {
                    Some("svg") => "image/svg+xml",
                    Some("jpg" | "jpeg") => "image/jpeg",
                    _ => "image/png",
                };
                let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                let _ = writeln!(
                    h,
                    "<figure><img alt=\"{}\" src=\"data:{mime};base64,{data}\"><figcaption>{}</figcaption></figure>",
                    esc(caption),
                    esc(caption)
                );
            }
        }
        let _ = writeln!(h, "<h2>Comparisons</h2>");
        html_table(&mut h, self.counts());
        let _ = writeln!(h, "<h2>Operating points</h2>");
        html_table(&mut h, self.operating_points());
        let ident = self.identification();
        if !ident.1.is_empty() {
            let _ = writeln!(h, "<h2>Identification</h2>");
            html_table(&mut h, ident);
        }
        for (name, value) in [("Configuration", &self.config), ("Further figures", &self.extra)] {
            if !value.is_null() {
                let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
                let _ = writeln!(h, "<h2>{name}</h2>\n<pre>{}</pre>", esc(&pretty));
            }
        }
        let _ = writeln!(
            h,
            "<p class=\"muted\">Every figure, with the DET curves, is in report.json (schema version {SCHEMA_VERSION}).</p>\n</body>\n</html>"
        );
        Ok(h)
    }
}

fn operating_row(name: &str, x: &FnmrAt) -> Vec<String> {
    vec![
        name.to_string(),
        crate::plot::percent(x.fmr_target),
        if x.resolvable {
            format!("{:.6}", x.threshold)
        } else {
            "above every impostor score".into()
        },
        percent_2(x.fmr),
        percent_2(x.fnmr),
        if x.resolvable {
            "yes".into()
        } else {
            "no (too few impostor pairs)".into()
        },
    ]
}

const CSS: &str =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;\
padding:0 1em;color:#222;line-height:1.45}\n\
table{border-collapse:collapse;margin:0.6em 0 1em}\n\
th,td{border:1px solid #ccc;padding:0.3em 0.7em}\n\
th{background:#f2f2f2}\n\
td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums}\n\
figure{margin:1em 0}\nimg{max-width:100%;border:1px solid #ddd}\n\
figcaption{color:#555;font-size:0.92em}\n\
.muted{color:#555;font-size:0.92em}\n\
pre{background:#f6f6f6;padding:0.8em;overflow:auto}\n";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escapes the characters that would break a Markdown table cell or start markup.
fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn md_table(m: &mut String, (header, rows): (Vec<String>, Vec<Vec<String>>)) {
    let _ = writeln!(
        m,
        "| {} |",
        header
            .iter()
            .map(|c| md_escape(c))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        m,
        "|{}|",
        (0..header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in rows {
        let _ = writeln!(
            m,
            "| {} |",
            r.iter().map(|c| md_escape(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    m.push('\n');
}

fn html_table(h: &mut String, (header, rows): (Vec<String>, Vec<Vec<String>>)) {
    let _ = write!(h, "<table>\n<tr>");
    for c in &header {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    let _ = writeln!(h, "</tr>");
    for r in rows {
        let _ = write!(h, "<tr>");
        for c in &r {
            let _ = write!(h, "<td>{}</td>", esc(c));
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</table>");
}
