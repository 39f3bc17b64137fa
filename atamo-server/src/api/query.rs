//! Query strings: every parameter checked, unknown ones refused, every problem named.

use atamo_core::message::Timestamp;
use atamo_core::store::Cursor;
use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;

use super::error::{ApiError, FieldError};

/// The parameters of a query string, in order, decoded.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
    used: Vec<bool>,
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::field("query", e.to_string()))?;
        let pairs: Vec<(String, String)> = form_pairs(raw.as_deref().unwrap_or(""));
        let used = vec![false; pairs.len()];
        Ok(Self {
            pairs,
            errors: Vec::new(),
            used,
        })
    }
}

/// `application/x-www-form-urlencoded` pairs, keeping repeated and unknown keys so they can be
/// reported.
fn form_pairs(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl Query {
    /// A parameter's value (the last when repeated), marked as known.
    pub fn get(&mut self, name: &str) -> Option<String> {
        let mut found = None;
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if k == name {
                self.used[i] = true;
                found = Some(v.clone());
            }
        }
        found.filter(|v| !v.is_empty())
    }

    /// Every parameter whose name starts with `prefix`, as `(rest of the name, value)`.
    pub fn with_prefix(&mut self, prefix: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if let Some(rest) = k.strip_prefix(prefix) {
                self.used[i] = true;
                out.push((rest.to_owned(), v.clone()));
            }
        }
        out
    }

    /// Records a problem with a parameter.
    pub fn problem(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// A parameter parsed by `parse`, its problem recorded.
    pub fn parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.get(name)?;
        match parse(&v) {
            Ok(t) => Some(t),
            Err(m) => {
                self.problem(name, m);
                None
            }
        }
    }

    /// A time: RFC 3339 (`2026-11-26T10:00:00Z`) or unix milliseconds.
    pub fn time(&mut self, name: &str) -> Option<Timestamp> {
        self.parsed(name, parse_time)
    }

    /// The page cursor.
    pub fn cursor(&mut self) -> Option<Cursor> {
        self.parsed("cursor", |v| {
            v.parse::<Cursor>()
                .map_err(|_| "not a cursor this service gave".to_owned())
        })
    }

    /// The page size: 1 to 1000, 100 when absent.
    pub fn limit(&mut self) -> usize {
        self.parsed("limit", |v| match v.parse::<usize>() {
            Ok(n) if (1..=atamo_core::store::MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(format!(
                "must be a number from 1 to {}",
                atamo_core::store::MAX_PAGE
            )),
        })
        .unwrap_or(100)
    }

    /// Ends parsing: every parameter not asked for is an error, and so is every problem found.
    pub fn finish(mut self) -> Result<(), ApiError> {
        for (i, (k, _)) in self.pairs.iter().enumerate() {
            if !self.used[i] {
                self.errors.push(FieldError {
                    field: k.clone(),
                    message: "unknown query parameter".into(),
                });
            }
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.errors))
        }
    }
}

/// RFC 3339 or unix milliseconds.
pub fn parse_time(v: &str) -> Result<Timestamp, String> {
    if let Ok(ms) = v.parse::<u64>() {
        return Ok(Timestamp::from_unix_micros(ms.saturating_mul(1000)));
    }
    humantime::parse_rfc3339_weak(v)
        .map(Timestamp::from_system_time)
        .map_err(|_| "must be an RFC 3339 time (2026-11-26T10:00:00Z) or unix milliseconds".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pairs_decode() {
        assert_eq!(
            form_pairs("a=1&payload.state=open%20now&b=x+y&c&d=%zz&e=%4"),
            vec![
                ("a".into(), "1".into()),
                ("payload.state".into(), "open now".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "%4".into()),
            ]
        );
    }

    #[test]
    fn unknown_and_bad_parameters_are_all_named() {
        let pairs = form_pairs("limit=0&since=yesterday&colour=red&user=alice");
        let mut q = Query {
            used: vec![false; pairs.len()],
            pairs,
            errors: vec![],
        };
        assert_eq!(q.get("user").as_deref(), Some("alice"));
        q.limit();
        q.time("since");
        let e = q.finish().unwrap_err();
        let fields: Vec<_> = e.problem().errors.into_iter().map(|f| f.field).collect();
        assert_eq!(fields, ["limit", "since", "colour"]);
        assert_eq!(
            parse_time("2026-11-26T10:00:00Z").unwrap(),
            parse_time("1795687200000").unwrap()
        );
    }
}
