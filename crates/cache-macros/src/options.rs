//! The options of the attributes: `name = value` pairs.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, LitStr, Path, Token};

/// One `name = value` option.
pub(crate) struct Opt {
    pub(crate) name: Ident,
    pub(crate) value: Expr,
}

impl Parse for Opt {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name = if input.peek(Token![crate]) {
            let kw: Token![crate] = input.parse()?;
            Ident::new("crate", kw.span)
        } else {
            input.parse::<Ident>()?
        };
        input.parse::<Token![=]>()?;
        let value = input.parse::<Expr>()?;
        Ok(Opt { name, value })
    }
}

/// A TTL: a literal parsed at compile time, or an expression (`Duration`, `Ttl`).
pub(crate) enum TtlOpt {
    Literal { secs: u64, nanos: u32 },
    Expr(Expr),
}

/// The options both attributes share, and the rest, by name.
pub(crate) struct Options {
    pub(crate) cache: Option<Expr>,
    pub(crate) caches: Option<Expr>,
    pub(crate) alias: Option<Expr>,
    pub(crate) key: Option<LitStr>,
    pub(crate) ttl: Option<TtlOpt>,
    pub(crate) namespace: Option<Expr>,
    pub(crate) unless: Option<Expr>,
    pub(crate) cache_none: Option<bool>,
    pub(crate) keys: Option<Ident>,
    pub(crate) krate: Option<Path>,
}

impl Options {
    /// Parses `attr`, accepting the option names in `allowed`.
    pub(crate) fn parse(
        attr: proc_macro2::TokenStream,
        macro_name: &str,
        allowed: &[&str],
    ) -> syn::Result<Self> {
        let opts =
            syn::parse::Parser::parse2(Punctuated::<Opt, Token![,]>::parse_terminated, attr)?;
        let mut out = Options {
            cache: None,
            caches: None,
            alias: None,
            key: None,
            ttl: None,
            namespace: None,
            unless: None,
            cache_none: None,
            keys: None,
            krate: None,
        };
        let mut seen: Vec<String> = Vec::new();
        for Opt { name, value } in opts {
            let n = name.to_string();
            if !allowed.contains(&n.as_str()) {
                return Err(syn::Error::new(
                    name.span(),
                    format!(
                        "unknown option `{n}` of #[{macro_name}]; the options are: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if seen.contains(&n) {
                return Err(syn::Error::new(
                    name.span(),
                    format!("option `{n}` given twice"),
                ));
            }
            seen.push(n.clone());
            match n.as_str() {
                "cache" => out.cache = Some(value),
                "caches" => out.caches = Some(value),
                "alias" => out.alias = Some(value),
                "key" => {
                    out.key = Some(lit_str(
                        &value,
                        "key",
                        "a string literal like \"user:{id}\"",
                    )?)
                }
                "ttl" => out.ttl = Some(ttl(value)?),
                "namespace" => out.namespace = Some(value),
                "unless" => out.unless = Some(value),
                "cache_none" => out.cache_none = Some(lit_bool(&value, "cache_none")?),
                "keys" => match &value {
                    Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                        out.keys = p.path.get_ident().cloned();
                    }
                    _ => {
                        return Err(syn::Error::new(
                            value.span(),
                            "`keys` names the argument that holds the keys: `keys = ids`",
                        ));
                    }
                },
                "crate" => {
                    let lit = lit_str(
                        &value,
                        "crate",
                        "a path in a string: crate = \"::stratacache\"",
                    )?;
                    out.krate = Some(lit.parse::<Path>().map_err(|_| {
                        syn::Error::new(
                            lit.span(),
                            "`crate` is a path in a string: crate = \"::stratacache\"",
                        )
                    })?);
                }
                _ => unreachable!("an allowed option without a branch"),
            }
        }
        Ok(out)
    }

    /// The path of the runtime: `crate = "…"`, or `::stratacache`.
    pub(crate) fn krate(&self) -> Path {
        self.krate
            .clone()
            .unwrap_or_else(|| syn::parse_quote!(::stratacache))
    }
}

fn lit_str(value: &Expr, name: &str, what: &str) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        _ => Err(syn::Error::new(
            value.span(),
            format!("`{name}` takes {what}"),
        )),
    }
}

fn lit_bool(value: &Expr, name: &str) -> syn::Result<bool> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        _ => Err(syn::Error::new(
            value.span(),
            format!("`{name}` takes `true` or `false`"),
        )),
    }
}

fn ttl(value: Expr) -> syn::Result<TtlOpt> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(s), ..
    }) = &value
    else {
        return Ok(TtlOpt::Expr(value));
    };
    match parse_duration(&s.value()) {
        Ok(0) => Err(syn::Error::new(
            s.span(),
            "a TTL must be longer than zero (leave `ttl` out to use the cache's default)",
        )),
        Ok(nanos) => Ok(TtlOpt::Literal {
            secs: (nanos / 1_000_000_000) as u64,
            nanos: (nanos % 1_000_000_000) as u32,
        }),
        Err(e) => Err(syn::Error::new(s.span(), e)),
    }
}

/// `250ms`, `2s`, `1.5s`, `5m`, `1h`, `500us`, `10ns`, as `cache_core::duration::parse`
/// reads them, in nanoseconds.
fn parse_duration(text: &str) -> Result<u128, String> {
    let v = text.trim();
    let bad = || format!("{v:?} is not a duration like 250ms, 30s, 5m or 1h");
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{v:?} has no unit; write it like 250ms, 30s, 5m or 1h"))?;
    let (number, unit) = v.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let per_unit: u128 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(format!("unknown unit {unit:?} in {v:?}; use ms, s, m or h")),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.contains('.') {
        return Err(bad());
    }
    let int: u128 = int.parse().map_err(|_| bad())?;
    let mut nanos = int.checked_mul(per_unit).ok_or_else(bad)?;
    let mut scale = per_unit;
    for digit in frac.bytes() {
        scale /= 10;
        nanos += u128::from(digit - b'0') * scale;
    }
    if nanos > u128::from(u64::MAX) * 1_000_000_000 {
        return Err(bad());
    }
    Ok(nanos)
}

/// An error at `span`.
pub(crate) fn error(span: Span, message: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, message)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_like_the_runtime() {
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("5m"), Ok(300_000_000_000));
        assert_eq!(parse_duration("2h"), Ok(7_200_000_000_000));
        assert_eq!(parse_duration("10ns"), Ok(10));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
    }
}
