//! A strict parser of the Prometheus text format, for reading the metrics back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};

type LabelPairs = Vec<(String, String)>;

/// One sample line: `name{labels} value`.
#[derive(Debug)]
pub(super) struct Sample {
    pub(super) name: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) value: f64,
}

/// A parsed exposition, checked on the way in.
#[derive(Debug, Default)]
pub(super) struct Exposition {
    pub(super) help: BTreeMap<String, String>,
    pub(super) types: BTreeMap<String, String>,
    pub(super) samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the series with exactly these labels.
    pub(super) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// [`value`](Self::value), 0 when the series is absent (a counter never bumped).
    pub(super) fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// The sum over every series of `name`.
    pub(super) fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }

    /// The series of `name`, as their labels.
    pub(super) fn series(&self, name: &str) -> Vec<&BTreeMap<String, String>> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| &s.labels)
            .collect()
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// Parses `name{labels} value`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let end = line
        .find(['{', ' '])
        .ok_or("a sample needs a name and a value")?;
    let name = &line[..end];
    if !is_name(name, true) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let consumed;
        loop {
            let start = chars.peek().map(|(i, _)| *i).ok_or("unclosed labels")?;
            let mut key_end = start;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    key_end = i;
                    break;
                }
            }
            let key = &after[start..key_end];
            if !is_name(key, false) {
                return Err(format!("bad label name {key:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key} has no quoted value"));
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '"' => break,
                    '\\' => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    '\n' => return Err("raw newline in a label value".into()),
                    c => value.push(c),
                }
            }
            if labels.insert(key.to_owned(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => {
                    consumed = i + 1;
                    break;
                }
                other => return Err(format!("expected , or }} after a label, got {other:?}")),
            }
        }
        rest = &after[consumed..];
    }
    let value = rest.strip_prefix(' ').ok_or("one space before the value")?;
    if value.is_empty() || value.contains(' ') {
        return Err(format!("bad value {value:?}"));
    }
    let value: f64 = value
        .parse()
        .map_err(|e| format!("bad value {value:?}: {e}"))?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses the Prometheus text format strictly: every family has `# HELP` then `# TYPE`
/// then its samples, together; every sample is `name{labels} value` of the family above
/// it; no series twice; names prefixed `atamo_`, counters ending in `_total`, histograms
/// in `_seconds`, with cumulative buckets up to `+Inf` that match `_count`.
pub(super) fn parse(text: &str) -> Result<Exposition, String> {
    let mut x = Exposition::default();
    let mut current: Option<String> = None;
    let mut seen: HashSet<(String, LabelPairs)> = HashSet::new();
    let mut with_samples: BTreeSet<String> = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').ok_or_else(|| at("no help".into()))?;
            if !is_name(name, true) || help.trim().is_empty() {
                return Err(at("bad HELP".into()));
            }
            if x.help.insert(name.to_owned(), help.to_owned()).is_some() {
                return Err(at("family described twice".into()));
            }
            current = None;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').ok_or_else(|| at("no type".into()))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                return Err(at(format!("unknown type {ty}")));
            }
            if !x.help.contains_key(name) || current.is_some() {
                return Err(at("TYPE without a HELP just before it".into()));
            }
            if x.types.insert(name.to_owned(), ty.to_owned()).is_some() {
                return Err(at("family typed twice".into()));
            }
            current = Some(name.to_owned());
        } else if line.is_empty() || line.starts_with('#') {
            return Err(at("unexpected line".into()));
        } else {
            let s = parse_sample(line).map_err(at)?;
            let family = current
                .as_ref()
                .ok_or_else(|| at("sample outside a family".into()))?;
            let belongs = match x.types[family].as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| s.name == format!("{family}{suffix}")),
                _ => &s.name == family,
            };
            if !belongs {
                return Err(at(format!("sample of another family than {family}")));
            }
            let key = (
                s.name.clone(),
                s.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
            if !seen.insert(key) {
                return Err(at("series twice".into()));
            }
            with_samples.insert(family.clone());
            x.samples.push(s);
        }
    }
    for (family, ty) in &x.types {
        if !family.starts_with("atamo_") {
            return Err(format!("{family} is not prefixed atamo_"));
        }
        if !with_samples.contains(family) {
            return Err(format!("{family} has no samples"));
        }
        match ty.as_str() {
            "counter" if !family.ends_with("_total") => {
                return Err(format!("counter {family} does not end in _total"));
            }
            "histogram" => {
                if !family.ends_with("_seconds") {
                    return Err(format!("histogram {family} does not end in _seconds"));
                }
                check_histogram(&x, family)?;
            }
            _ => {}
        }
    }
    if x.help.len() != x.types.len() {
        return Err("a HELP without a TYPE".into());
    }
    Ok(x)
}

fn check_histogram(x: &Exposition, family: &str) -> Result<(), String> {
    let bucket = format!("{family}_bucket");
    // Labels other than `le`, to (le, cumulative count) of each bucket.
    let mut series: BTreeMap<LabelPairs, Vec<(f64, f64)>> = BTreeMap::new();
    for s in x.samples.iter().filter(|s| s.name == bucket) {
        let le = s.labels.get("le").ok_or("a bucket without le")?;
        let le: f64 = le.parse().map_err(|_| format!("bad le {le}"))?;
        let rest = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "le")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        series.entry(rest).or_default().push((le, s.value));
    }
    for (labels, buckets) in series {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        {
            return Err(format!("{family}{labels:?}: buckets not cumulative"));
        }
        let (last_le, last) = *buckets.last().ok_or("no buckets")?;
        let count = x
            .value(&format!("{family}_count"), &pairs)
            .ok_or("no _count")?;
        if last_le != f64::INFINITY || last != count {
            return Err(format!(
                "{family}{labels:?}: +Inf bucket {last} vs count {count}"
            ));
        }
        x.value(&format!("{family}_sum"), &pairs).ok_or("no _sum")?;
    }
    Ok(())
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    let good = "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_x_total{a=\"b\"} 1\n";
    assert!(parse(good).is_ok());
    for bad in [
        // No HELP.
        "# TYPE atamo_x_total counter\natamo_x_total 1\n",
        // No TYPE.
        "# HELP atamo_x_total X.\natamo_x_total 1\n",
        // A sample of another family.
        "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_y_total 1\n",
        // Unquoted label value, bad value, missing value.
        "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_x_total{a=b} 1\n",
        "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_x_total one\n",
        "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_x_total{a=\"b\"}\n",
        // A series twice.
        "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_x_total 1\natamo_x_total 2\n",
        // A histogram whose +Inf bucket does not match its count.
        "# HELP atamo_h_seconds H.\n# TYPE atamo_h_seconds histogram\natamo_h_seconds_bucket{le=\"1\"} 1\natamo_h_seconds_bucket{le=\"+Inf\"} 2\natamo_h_seconds_sum 1\natamo_h_seconds_count 3\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
