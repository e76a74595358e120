//! A naming rule given by the user: which part of a file name is the identity and which the
//! sample, for datasets whose layout this crate does not know ([`Layout::Custom`]).
//!
//! # Templates
//!
//! `{subject}_{finger}_{sample}` reads `012_3_1.png` as subject `012`, finger `3`, sample `1`:
//!
//! - `{subject}` is required; `{sample}` is optional (without it, samples keep path order).
//! - Any other `{name}` (letters, digits and `_`, starting with a letter) is part of the identity.
//! - `{*}` and `{_}` match something that is ignored.
//! - Text outside braces is matched exactly (case included). Braces cannot be escaped.
//! - A placeholder matches a non-empty run of characters, never a `/`. Where the split is
//!   ambiguous it takes, in order of preference, a run of digits, then the longest text ending
//!   in a non-digit, then the longest text that lets the rest match: `{subject}{sample}` reads
//!   `abc123` as `abc` and `123`.
//! - The template matches the whole file name without its extension (`012_3_1`), unless its last
//!   path component has a literal `.`: `{subject}_{sample}.png` matches the whole name.
//!
//! # Regular expressions
//!
//! `re:^(?P<subject>\d+)_(?P<sample>\d+)\.png$` is a regular expression ([`regex`] syntax),
//! searched (not anchored unless it says so) in the whole file name with its extension. The group
//! named `subject` is required, `sample` is optional, other named groups are part of the identity,
//! groups whose name starts with `_` and unnamed groups are ignored. A group that takes part in
//! the identity must match non-empty text, or the file does not fit.
//!
//! # Identity and paths
//!
//! The identity label is the subject followed by every other identity field, joined with `_` in
//! the rule's order (`012_3`). A rule that contains a `/` is matched against the path relative to
//! the dataset folder (`{subject}/{*}_{sample}`); otherwise against the file name alone.

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Serialize};

#[cfg(doc)]
use crate::Layout;
use crate::{Error, Result};

/// The prefix that marks a rule as a regular expression rather than a template.
pub const REGEX_PREFIX: &str = "re:";

/// The placeholder or group name of the identity (required).
const SUBJECT: &str = "subject";
/// The placeholder or group name of the sample within its identity (optional).
const SAMPLE: &str = "sample";

/// A user-given rule that reads a subject (and maybe a sample number) from file names: a template
/// such as `{subject}_{finger}_{sample}` or a regular expression `re:...` with named groups. See
/// the module docs for the syntax. Two rules are equal when their texts are.
#[derive(Debug, Clone)]
pub struct NamingRule {
    /// The rule as given.
    text: String,
    /// The compiled matcher (templates are compiled to a regular expression too).
    regex: Regex,
    /// For each capture group index, what it is (`None`: ignored).
    groups: Vec<Option<Field>>,
    /// Whether the rule is matched against the relative path instead of the file name.
    on_path: bool,
    /// Whether the extension is stripped from the file name before matching (templates only).
    strip_extension: bool,
}

/// The role of a named part of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Subject,
    Sample,
    /// Part of the identity after the subject.
    Identity,
}

/// What a [`NamingRule`] read from one file name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamingMatch {
    /// Every named field, in the rule's order, with the text it matched (ignored parts left out).
    pub fields: Vec<FieldValue>,
    /// The identity label: the subject and the other identity fields joined with `_`.
    pub identity: String,
    /// The sample field, if the rule has one.
    pub sample: Option<String>,
}

/// One named field of a [`NamingMatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValue {
    /// The placeholder or group name (`subject`, `finger`, `sample`, ...).
    pub name: String,
    /// The text it matched.
    pub value: String,
}

impl NamingRule {
    /// Parses a rule: `re:` followed by a regular expression, or a template.
    ///
    /// # Errors
    /// [`Error::InvalidNaming`] naming what is wrong: no subject, an unbalanced brace, an empty or
    /// invalid placeholder name, a repeated field, an invalid regular expression, a regular
    /// expression without a `subject` group.
    pub fn parse(rule: &str) -> Result<Self> {
        match rule.strip_prefix(REGEX_PREFIX) {
            Some(re) => Self::from_regex(rule, re),
            None => Self::from_template(rule),
        }
    }

    /// The rule as it was given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the rule is matched against the path relative to the dataset folder (it has a `/`).
    pub fn matches_path(&self) -> bool {
        self.on_path
    }

    /// Reads a file: `rel` is its path relative to the dataset folder, as components. `None` when
    /// the rule does not fit, or a field of the identity matched nothing.
    pub fn read(&self, rel: &[String]) -> Option<NamingMatch> {
        let name = rel.last()?;
        let name = if self.strip_extension {
            name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s)
        } else {
            name.as_str()
        };
        let target = if self.on_path {
            let mut parts: Vec<&str> = rel[..rel.len() - 1].iter().map(String::as_str).collect();
            parts.push(name);
            parts.join("/")
        } else {
            name.to_string()
        };
        let caps = self.regex.captures(&target)?;
        let mut fields = Vec::new();
        let mut identity: Vec<&str> = Vec::new();
        let mut sample = None;
        let mut subject = None;
        for (i, g) in self.groups.iter().enumerate() {
            let Some(f) = g else { continue };
            let value = caps.get(i).map(|m| m.as_str());
            match f.role {
                Role::Subject => subject = Some(value.filter(|v| !v.is_empty())?),
                Role::Identity => identity.push(value.filter(|v| !v.is_empty())?),
                Role::Sample => sample = value.map(str::to_string),
            }
            if let Some(v) = value {
                fields.push(FieldValue {
                    name: f.name.clone(),
                    value: v.to_string(),
                });
            }
        }
        let mut label = vec![subject?];
        label.extend(identity);
        Some(NamingMatch {
            fields,
            identity: label.join("_"),
            sample,
        })
    }

    fn invalid(rule: &str, reason: impl Into<String>) -> Error {
        Error::InvalidNaming {
            rule: rule.to_string(),
            reason: reason.into(),
        }
    }

    fn from_regex(rule: &str, re: &str) -> Result<Self> {
        let regex =
            Regex::new(re).map_err(|e| Self::invalid(rule, format!("invalid regular expression: {e}")))?;
        let groups: Vec<Option<Field>> = regex
            .capture_names()
            .map(|n| {
                n.filter(|n| !n.starts_with('_')).map(|n| Field {
                    name: n.to_string(),
                    role: match n {
                        SUBJECT => Role::Subject,
                        SAMPLE => Role::Sample,
                        _ => Role::Identity,
                    },
                })
            })
            .collect();
        if !groups.iter().flatten().any(|f| f.role == Role::Subject) {
            return Err(Self::invalid(
                rule,
                "the regular expression has no group named `subject`: write (?P<subject>...)",
            ));
        }
        Ok(NamingRule {
            text: rule.to_string(),
            regex,
            groups,
            on_path: re.contains('/'),
            strip_extension: false,
        })
    }

    fn from_template(rule: &str) -> Result<Self> {
        // Group 0 is the whole match: never a field.
        let mut groups: Vec<Option<Field>> = vec![None];
        let mut pattern = String::from("^");
        let mut literal = String::new();
        let mut chars = rule.char_indices();
        // Whether the last path component has a literal dot (then the extension is matched too).
        let mut dot_in_last = false;
        while let Some((at, c)) = chars.next() {
            match c {
                '{' => {
                    pattern.push_str(&regex::escape(&literal));
                    literal.clear();
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        match c {
                            '}' => {
                                closed = true;
                                break;
                            }
                            '{' => {
                                let why = format!(
                                    "unbalanced brace: `{{` at byte {at} is not closed before the next `{{`"
                                );
                                return Err(Self::invalid(rule, why));
                            }
                            c => name.push(c),
                        }
                    }
                    if !closed {
                        return Err(Self::invalid(
                            rule,
                            format!("unbalanced brace: `{{` at byte {at} is never closed"),
                        ));
                    }
                    const PLACEHOLDER: &str = r"\d+|[^/]*[^/\d]|[^/]+";
                    if name == "*" || name == "_" {
                        pattern.push_str(&format!("(?:{PLACEHOLDER})"));
                        continue;
                    }
                    check_name(rule, &name)?;
                    if groups.iter().flatten().any(|f| f.name == name) {
                        return Err(Self::invalid(rule, format!("the field {{{name}}} appears twice")));
                    }
                    let role = match name.as_str() {
                        SUBJECT => Role::Subject,
                        SAMPLE => Role::Sample,
                        _ => Role::Identity,
                    };
                    pattern.push_str(&format!("({PLACEHOLDER})"));
                    groups.push(Some(Field { name, role }));
                }
                '}' => {
                    return Err(Self::invalid(
                        rule,
                        format!("unbalanced brace: `}}` at byte {at} closes nothing"),
                    ))
                }
                '/' => {
                    dot_in_last = false;
                    literal.push(c);
                }
                '.' => {
                    dot_in_last = true;
                    literal.push(c);
                }
                c => literal.push(c),
            }
        }
        pattern.push_str(&regex::escape(&literal));
        pattern.push('$');
        if !groups.iter().flatten().any(|f| f.role == Role::Subject) {
            return Err(Self::invalid(
                rule,
                "no {subject} placeholder: the rule must say which part is the identity",
            ));
        }
        let regex = Regex::new(&pattern)
            .map_err(|e| Self::invalid(rule, format!("cannot compile the template: {e}")))?;
        Ok(NamingRule {
            text: rule.to_string(),
            regex,
            groups,
            on_path: rule.contains('/'),
            strip_extension: !dot_in_last,
        })
    }
}

fn check_name(rule: &str, name: &str) -> Result<()> {
    let mut cs = name.chars();
    let ok = match cs.next() {
        None => {
            return Err(NamingRule::invalid(
                rule,
                "empty placeholder {}: name it ({subject}, {sample}, {finger}, ...) or write {*} to ignore a part",
            ))
        }
        Some(c) => c.is_ascii_alphabetic() && cs.all(|c| c.is_ascii_alphanumeric() || c == '_'),
    };
    if ok {
        Ok(())
    } else {
        Err(NamingRule::invalid(
            rule,
            format!(
                "invalid placeholder name {{{name}}}: use letters, digits and `_`, starting with a letter"
            ),
        ))
    }
}

impl PartialEq for NamingRule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for NamingRule {}

impl fmt::Display for NamingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for NamingRule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        NamingRule::parse(s)
    }
}

impl Serialize for NamingRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for NamingRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NamingRule::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rel(p: &str) -> Vec<String> {
        p.split('/').map(String::from).collect()
    }

    fn fields(m: &NamingMatch) -> Vec<(&str, &str)> {
        m.fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
            .collect()
    }

    #[test]
    fn template_reads_neurotech_names() {
        let r = NamingRule::parse("{subject}_{finger}_{sample}").unwrap();
        let m = r.read(&rel("012_3_1.png")).unwrap();
        assert_eq!(
            fields(&m),
            vec![("subject", "012"), ("finger", "3"), ("sample", "1")]
        );
        assert_eq!(m.identity, "012_3");
        assert_eq!(m.sample.as_deref(), Some("1"));
        assert!(r.read(&rel("012_3.png")).is_none());
        assert!(r.read(&rel("012__1.png")).is_none());
        assert!(!r.matches_path());
    }

    #[test]
    fn ambiguity_prefers_digits_then_text_ending_in_a_non_digit() {
        let r = NamingRule::parse("{subject}{sample}").unwrap();
        let m = r.read(&rel("abc123.bmp")).unwrap();
        assert_eq!((m.identity.as_str(), m.sample.as_deref()), ("abc", Some("123")));
        let r = NamingRule::parse("{subject}_{sample}").unwrap();
        let m = r.read(&rel("alice_smith_3.png")).unwrap();
        assert_eq!(
            (m.identity.as_str(), m.sample.as_deref()),
            ("alice_smith", Some("3"))
        );
        let m = r.read(&rel("alice2_3.png")).unwrap();
        assert_eq!((m.identity.as_str(), m.sample.as_deref()), ("alice2", Some("3")));
    }

    #[test]
    fn ignored_parts_extensions_and_paths() {
        let r = NamingRule::parse("{*}-{subject}-{_}-{sample}").unwrap();
        let m = r.read(&rel("scan-7-left-2.tif")).unwrap();
        assert_eq!(fields(&m), vec![("subject", "7"), ("sample", "2")]);
        // A template with a literal dot matches the extension too, exactly.
        let r = NamingRule::parse("{subject}_{sample}.png").unwrap();
        assert!(r.read(&rel("1_2.png")).is_some());
        assert!(r.read(&rel("1_2.PNG")).is_none());
        assert!(r.read(&rel("1_2.tif")).is_none());
        // A rule with a slash reads the relative path; placeholders never cross a folder.
        let r = NamingRule::parse("{subject}/{session}_{sample}").unwrap();
        assert!(r.matches_path());
        let m = r.read(&rel("alice/s1_4.png")).unwrap();
        assert_eq!(
            (m.identity.as_str(), m.sample.as_deref()),
            ("alice_s1", Some("4"))
        );
        assert!(r.read(&rel("a/b/s1_4.png")).is_none());
        assert!(r.read(&rel("s1_4.png")).is_none());
        // Without a sample the identity is all there is.
        let r = NamingRule::parse("person{subject}_{*}").unwrap();
        let m = r.read(&rel("person9_x.png")).unwrap();
        assert_eq!((m.identity.as_str(), m.sample), ("9", None));
    }

    #[test]
    fn regex_rules() {
        let r = NamingRule::parse(r"re:^(?P<subject>\d+)_(?P<hand>[LR])(?P<_x>x?)_(?P<sample>\d+)\.png$")
            .unwrap();
        let m = r.read(&rel("12_Lx_3.png")).unwrap();
        assert_eq!(
            fields(&m),
            vec![("subject", "12"), ("hand", "L"), ("sample", "3")]
        );
        assert_eq!(m.identity, "12_L");
        assert!(r.read(&rel("12_L_3.tif")).is_none());
        // An optional identity group that matched nothing: the file does not fit.
        let r = NamingRule::parse(r"re:^(?P<subject>\d+)(?P<finger>[a-z]*)\.png$").unwrap();
        assert!(r.read(&rel("12.png")).is_none());
        assert_eq!(r.read(&rel("12b.png")).unwrap().identity, "12_b");
        // The same rule is the same value, and serializes as its text.
        assert_eq!(r, r.as_str().parse::<NamingRule>().unwrap());
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            serde_json::to_string(r.as_str()).unwrap()
        );
    }

    #[test]
    fn bad_rules_are_typed_errors_saying_what_is_wrong() {
        for (rule, words) in [
            ("{finger}_{sample}", "no {subject}"),
            ("", "no {subject}"),
            ("plain.png", "no {subject}"),
            ("{subject_{sample}", "unbalanced brace"),
            ("{subject}_{sample", "never closed"),
            ("{subject}}_{sample}", "closes nothing"),
            ("{}_{subject}", "empty placeholder"),
            ("{subject}_{1x}", "invalid placeholder name {1x}"),
            ("{subject}_{a-b}", "invalid placeholder name"),
            ("{subject}_{subject}", "appears twice"),
            ("re:(?P<subject>\\d+", "invalid regular expression"),
            ("re:^(\\d+)_(?P<sample>\\d+)$", "no group named `subject`"),
            ("re:(?P<_subject>\\d+)", "no group named `subject`"),
        ] {
            match NamingRule::parse(rule) {
                Err(Error::InvalidNaming { rule: r, reason }) => {
                    assert_eq!(r, rule);
                    assert!(reason.contains(words), "{rule}: {reason}");
                }
                other => panic!("{rule}: {other:?}"),
            }
        }
        let e = "{x}".parse::<NamingRule>().unwrap_err().to_string();
        assert!(e.contains("{x}") && e.contains("subject"), "{e}");
    }

    fn value() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]{1,8}"
    }

    proptest! {
        /// A template filled with random field values reads the same values back.
        #[test]
        fn template_round_trips(
            extra in proptest::collection::vec(("[a-z][a-z0-9]{0,5}", value()), 0..3),
            subject in value(),
            sample in proptest::option::of(value()),
            seps in proptest::collection::vec(prop::sample::select(vec!["_", "-", "__", "+", " ", "~x~"]), 5),
            ext in prop::sample::select(vec!["png", "tif", "JPG"]),
        ) {
            // Field names must be distinct and not reserved.
            let mut names: Vec<String> = vec![];
            let mut parts: Vec<(String, String)> = vec![("subject".into(), subject.clone())];
            for (n, v) in extra {
                let n = format!("f{n}");
                if !names.contains(&n) {
                    names.push(n.clone());
                    parts.push((n, v));
                }
            }
            if let Some(s) = &sample {
                parts.push(("sample".into(), s.clone()));
            }
            let mut template = String::new();
            let mut name = String::new();
            for (i, (n, v)) in parts.iter().enumerate() {
                if i > 0 {
                    template.push_str(seps[i % seps.len()]);
                    name.push_str(seps[i % seps.len()]);
                }
                template.push_str(&format!("{{{n}}}"));
                name.push_str(v);
            }
            let rule = NamingRule::parse(&template).unwrap();
            let m = rule.read(&[format!("{name}.{ext}")]).unwrap();
            let got: Vec<(String, String)> = m.fields.iter().map(|f| (f.name.clone(), f.value.clone())).collect();
            prop_assert_eq!(&got, &parts);
            prop_assert_eq!(m.sample, sample);
            let ident: Vec<&str> = parts.iter().filter(|(n, _)| n != "sample").map(|(_, v)| v.as_str()).collect();
            prop_assert_eq!(m.identity, ident.join("_"));
        }

        /// Arbitrary rule text never panics: it parses or gives a typed error.
        #[test]
        fn arbitrary_rules_never_panic(rule in "[{}a-z_*/.\\\\()?<>P0-9re:]{0,24}") {
            if let Ok(r) = NamingRule::parse(&rule) {
                let _ = r.read(&["a_1.png".to_string()]);
            }
        }
    }
}
