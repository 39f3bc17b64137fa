//! `[store]`: the kind of store and the settings that belong to it.

use std::ops::Range;

use super::checker::Checker;
use super::spans::{join, Value};
use crate::config::layer::{Layer, StoreKind};
use crate::config::units::{check_node, check_postgres_url, check_schema, FilePath};

impl<'i> Checker<'_> {
    pub(super) fn store(&mut self, path: &str, v: &Value<'i>, layer: &mut Layer) {
        let mut kind = None;
        let mut kind_unreadable = false;
        let mut given: Vec<(&str, Range<usize>, String)> = Vec::new();
        for (key, cv, p) in self.table(path, v, &["kind", "path", "url", "schema", "node"]) {
            match key {
                "kind" => {
                    kind = self.get::<StoreKind>(&p, cv);
                    kind_unreadable = kind.is_none();
                }
                "path" => {
                    layer.store_path = self.get::<FilePath>(&p, cv).map(|f| f.0);
                    given.push((key, cv.span(), p));
                }
                "url" => {
                    if let Some(url) = self.get::<String>(&p, cv) {
                        if let Err(e) = check_postgres_url(&url) {
                            self.error(cv.span(), &p, e);
                        }
                        layer.store_url = Some(url);
                    }
                    given.push((key, cv.span(), p));
                }
                "schema" => {
                    if let Some(schema) = self.get::<String>(&p, cv) {
                        if let Err(e) = check_schema(&schema) {
                            self.error(cv.span(), &p, e);
                        }
                        layer.store_schema = Some(schema);
                    }
                    given.push((key, cv.span(), p));
                }
                "node" => {
                    if let Some(node) = self.get::<String>(&p, cv) {
                        if let Err(e) = check_node(&node) {
                            self.error(cv.span(), &p, e);
                        }
                        layer.node = Some(node);
                    }
                }
                _ => {}
            }
        }
        layer.store_kind = kind;
        if kind_unreadable {
            return;
        }
        let kind = kind.unwrap_or(StoreKind::Sqlite);
        let name = |k: StoreKind| match k {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
            StoreKind::Memory => "memory",
        };
        for (key, span, p) in &given {
            let belongs = match *key {
                "path" => StoreKind::Sqlite,
                _ => StoreKind::Postgres,
            };
            if belongs != kind {
                self.error(
                    span.clone(),
                    p,
                    format!(
                        "`{key}` is a setting of the {} store, and this store is {}{}",
                        name(belongs),
                        name(kind),
                        if layer_kind_defaulted(v) {
                            format!(" (the default); set kind = \"{}\"", name(belongs))
                        } else {
                            String::new()
                        }
                    ),
                );
            }
        }
        if kind == StoreKind::Postgres && layer.store_url.is_none() && !given_has(&given, "url") {
            self.error(
                v.span(),
                &join(path, "url"),
                "the postgres store needs a url (`postgres://user:password@host/database`)",
            );
        }
    }
}

fn layer_kind_defaulted(store: &Value<'_>) -> bool {
    store
        .get_ref()
        .as_table()
        .is_some_and(|t| t.get("kind").is_none())
}

fn given_has(given: &[(&str, Range<usize>, String)], key: &str) -> bool {
    given.iter().any(|(k, _, _)| *k == key)
}
