//! What code names: the leaves of `use` trees, the paths in expressions and types, and the
//! paths inside macro invocations; and which items are test-only (`#[cfg(test)]`).

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Ident, ImplItem, Item, ItemUse, Meta, Token, TraitItem, UseTree};

/// One leaf of a `use` tree: `use a::{b, c as d, e::*}` has three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UseLeaf {
    /// The full path; a leading `::` is kept as a first segment `::` (never a local name).
    pub(crate) segments: Vec<String>,
    /// The name the leaf binds: none for `as _` and for a glob.
    pub(crate) binding: Option<String>,
    /// Whether the leaf is `*`.
    pub(crate) glob: bool,
    /// Where the leaf is written.
    pub(crate) line: usize,
}

/// A path written in code: `crate::a::f`, `Kind::Variant`, `x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodeRef {
    /// The path's segments, without generic arguments.
    pub(crate) segments: Vec<String>,
    /// Where the path starts.
    pub(crate) line: usize,
}

/// The leaves of a `use` item.
pub(crate) fn use_leaves(item: &ItemUse) -> Vec<UseLeaf> {
    let mut prefix = Vec::new();
    if item.leading_colon.is_some() {
        prefix.push("::".to_string());
    }
    let mut out = Vec::new();
    expand(&item.tree, &mut prefix, &mut out);
    out
}

fn expand(tree: &UseTree, prefix: &mut Vec<String>, out: &mut Vec<UseLeaf>) {
    match tree {
        UseTree::Path(p) => {
            prefix.push(name(&p.ident));
            expand(&p.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(n) => out.push(leaf(prefix, &n.ident, Some(name(&n.ident)))),
        UseTree::Rename(r) => {
            let binding = (r.rename != "_").then(|| name(&r.rename));
            out.push(leaf(prefix, &r.ident, binding));
        }
        UseTree::Glob(g) => out.push(UseLeaf {
            segments: prefix.clone(),
            binding: None,
            glob: true,
            line: g.star_token.spans[0].start().line,
        }),
        UseTree::Group(g) => {
            for tree in &g.items {
                expand(tree, prefix, out);
            }
        }
    }
}

/// A named leaf; `self` names the module the prefix leads to, and binds that module's name.
fn leaf(prefix: &[String], ident: &Ident, binding: Option<String>) -> UseLeaf {
    let mut segments = prefix.to_vec();
    let binding = if ident == "self" {
        binding.map(|b| {
            if b == "self" {
                prefix.last().cloned().unwrap_or(b)
            } else {
                b
            }
        })
    } else {
        segments.push(name(ident));
        binding
    };
    UseLeaf {
        segments,
        binding,
        glob: false,
        line: ident.span().start().line,
    }
}

/// An identifier without its `r#`.
pub(crate) fn name(ident: &Ident) -> String {
    ident.unraw().to_string()
}

/// Whether attributes make an item exist only in test builds: `#[cfg(test)]`,
/// `#[cfg(all(test, ...))]`, `#[cfg(any(test, test))]`.
pub(crate) fn is_test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let Meta::List(list) = &attr.meta else {
            return false;
        };
        list.path.is_ident("cfg")
            && list
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .is_ok_and(|preds| preds.len() == 1 && preds.iter().all(implies_test))
    })
}

fn implies_test(pred: &Meta) -> bool {
    match pred {
        Meta::Path(p) => p.is_ident("test"),
        Meta::List(list) => {
            let Ok(inner) = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            else {
                return false;
            };
            if list.path.is_ident("all") {
                inner.iter().any(implies_test)
            } else if list.path.is_ident("any") {
                !inner.is_empty() && inner.iter().all(implies_test)
            } else {
                false
            }
        }
        Meta::NameValue(_) => false,
    }
}

/// The attributes of an item.
pub(crate) fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// The names an item defines in its module's namespaces (not `use`, not `mod`).
pub(crate) fn item_names(item: &Item) -> Vec<String> {
    let ident = match item {
        Item::Const(i) => &i.ident,
        Item::Enum(i) => &i.ident,
        Item::Fn(i) => &i.sig.ident,
        Item::Static(i) => &i.ident,
        Item::Struct(i) => &i.ident,
        Item::Trait(i) => &i.ident,
        Item::TraitAlias(i) => &i.ident,
        Item::Type(i) => &i.ident,
        Item::Union(i) => &i.ident,
        Item::Macro(i) => match &i.ident {
            Some(ident) => ident,
            None => return Vec::new(),
        },
        Item::ForeignMod(m) => {
            return m
                .items
                .iter()
                .filter_map(|i| match i {
                    syn::ForeignItem::Fn(f) => Some(name(&f.sig.ident)),
                    syn::ForeignItem::Static(s) => Some(name(&s.ident)),
                    syn::ForeignItem::Type(t) => Some(name(&t.ident)),
                    _ => None,
                })
                .collect();
        }
        _ => return Vec::new(),
    };
    vec![name(ident)]
}

/// Collects the paths and block-level `use` leaves in the items it visits. Visibilities
/// (`pub(in crate::a)`) and attributes are not references and are skipped, and so are
/// test-only items nested in what it visits.
#[derive(Debug, Default)]
pub(crate) struct CodeRefs {
    /// Paths in code and in macro invocations.
    pub(crate) paths: Vec<CodeRef>,
    /// The leaves of `use` items inside function bodies and other blocks.
    pub(crate) uses: Vec<UseLeaf>,
}

impl<'ast> Visit<'ast> for CodeRefs {
    /// Attributes are not code, but derive helpers take code in strings
    /// (`#[serde(serialize_with = "crate::telemetry::ser_ms")]`): those paths count.
    fn visit_attribute(&mut self, attr: &'ast Attribute) {
        if let Meta::List(list) = &attr.meta {
            self.scan_code_strings(list.tokens.clone());
        }
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_item(&mut self, item: &'ast Item) {
        if !is_test_only(item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast ImplItem) {
        let attrs = match item {
            ImplItem::Const(i) => &i.attrs,
            ImplItem::Fn(i) => &i.attrs,
            ImplItem::Type(i) => &i.attrs,
            ImplItem::Macro(i) => &i.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !is_test_only(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast TraitItem) {
        let attrs = match item {
            TraitItem::Const(i) => &i.attrs,
            TraitItem::Fn(i) => &i.attrs,
            TraitItem::Type(i) => &i.attrs,
            TraitItem::Macro(i) => &i.attrs,
            _ => return visit::visit_trait_item(self, item),
        };
        if !is_test_only(attrs) {
            visit::visit_trait_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast ItemUse) {
        if !is_test_only(&item.attrs) {
            self.uses.extend(use_leaves(item));
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            if let Some(first) = path.segments.first() {
                self.paths.push(CodeRef {
                    segments: path.segments.iter().map(|s| name(&s.ident)).collect(),
                    line: first.ident.span().start().line,
                });
            }
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.scan_tokens(mac.tokens.clone());
    }
}

impl CodeRefs {
    /// Visits the paths in `key = "path"` pairs whose key names code ([`CODE_KEYS`]).
    fn scan_code_strings(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Group(g) => self.scan_code_strings(g.stream()),
                TokenTree::Ident(key) if CODE_KEYS.iter().any(|k| key == k) => {
                    let (Some(TokenTree::Punct(eq)), Some(TokenTree::Literal(lit))) =
                        (tokens.get(i + 1), tokens.get(i + 2))
                    else {
                        continue;
                    };
                    if eq.as_char() != '=' {
                        continue;
                    }
                    let Ok(lit) =
                        syn::parse2::<syn::LitStr>(TokenTree::Literal(lit.clone()).into())
                    else {
                        continue;
                    };
                    if let Ok(ty) = lit.parse::<syn::Type>() {
                        let line = lit.span().start().line;
                        let mut inner = CodeRefs::default();
                        inner.visit_type(&ty);
                        // The parsed string's spans start over at line 1: use the literal's.
                        self.paths
                            .extend(inner.paths.into_iter().map(|p| CodeRef { line, ..p }));
                    }
                }
                _ => {}
            }
        }
    }

    /// Finds paths of two or more segments in a macro's tokens (`crate::a::f`, `$crate::x`,
    /// `super::{a, b}`), since macro arguments are not parsed as code.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    self.scan_tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(first) if starts_path(&tokens, i) => {
                    let mut segments = vec![name(first)];
                    let mut j = i + 1;
                    let mut braces = false;
                    while is_path_sep(&tokens, j) {
                        match tokens.get(j + 2) {
                            Some(TokenTree::Ident(next)) => {
                                segments.push(name(next));
                                j += 3;
                            }
                            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                                braces = true;
                                j += 3;
                                break;
                            }
                            _ => break,
                        }
                    }
                    let line = first.span().start().line;
                    if braces {
                        let tree: TokenStream = tokens[i..j].iter().cloned().collect();
                        if let Ok(tree) = syn::parse2::<UseTree>(tree) {
                            let mut leaves = Vec::new();
                            expand(&tree, &mut Vec::new(), &mut leaves);
                            self.paths.extend(leaves.into_iter().map(|l| CodeRef {
                                segments: l.segments,
                                line: l.line,
                            }));
                        }
                    } else if segments.len() >= 2 {
                        self.paths.push(CodeRef { segments, line });
                    }
                    i = j.max(i + 1);
                }
                _ => i += 1,
            }
        }
    }
}

/// The keys of attribute arguments whose string value is a path in code (serde's and the like).
const CODE_KEYS: [&str; 9] = [
    "with",
    "serialize_with",
    "deserialize_with",
    "default",
    "skip_serializing_if",
    "from",
    "try_from",
    "into",
    "remote",
];

/// Whether `tokens[i]` is an identifier that starts a path: not after `::` or `.`, and not
/// a macro variable (`$name`) unless it is `$crate`.
fn starts_path(tokens: &[TokenTree], i: usize) -> bool {
    let Some(prev) = i.checked_sub(1).and_then(|p| tokens.get(p)) else {
        return true;
    };
    match prev {
        TokenTree::Punct(p) if p.as_char() == '$' => {
            matches!(&tokens[i], TokenTree::Ident(id) if id == "crate")
        }
        TokenTree::Punct(p) if p.as_char() == '.' => false,
        TokenTree::Punct(p) if p.as_char() == ':' => !(i >= 2 && is_path_sep(tokens, i - 2)),
        _ => true,
    }
}

/// Whether `tokens[j]` and `tokens[j + 1]` are `::`.
fn is_path_sep(tokens: &[TokenTree], j: usize) -> bool {
    matches!(
        (tokens.get(j), tokens.get(j + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
    )
}
