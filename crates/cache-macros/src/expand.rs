//! The code the attributes generate.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Path, Token, Type};

use crate::func::{Func, last_segment, type_arg};
use crate::key;
use crate::options::{Options, TtlOpt, error};

const CACHED_OPTIONS: &[&str] = &[
    "cache",
    "caches",
    "alias",
    "key",
    "ttl",
    "namespace",
    "unless",
    "cache_none",
    "crate",
];
const MULTI_OPTIONS: &[&str] = &[
    "cache",
    "caches",
    "alias",
    "keys",
    "key",
    "ttl",
    "namespace",
    "crate",
];

/// Where a cached function's cache comes from.
enum Source<'a> {
    /// `cache = EXPR`.
    Expr(&'a syn::Expr),
    /// `caches = EXPR, alias = "name"`: the shared cache of a name in a `Caches` registry.
    Registry(&'a syn::Expr, &'a syn::Expr),
}

impl<'a> Source<'a> {
    fn new(opts: &'a Options, macro_name: &str) -> syn::Result<Self> {
        match (&opts.cache, &opts.caches, &opts.alias) {
            (Some(cache), None, None) => Ok(Source::Expr(cache)),
            (None, Some(caches), Some(alias)) => Ok(Source::Registry(caches, alias)),
            (Some(cache), _, _) => Err(error(
                cache.span(),
                "give either `cache = EXPR` or `caches = EXPR, alias = \"name\"`, not both",
            )),
            (None, Some(caches), None) => Err(error(
                caches.span(),
                "`caches` needs `alias = \"name\"`, the name of the cache in the registry",
            )),
            (None, None, Some(alias)) => Err(error(
                alias.span(),
                "`alias` needs `caches = EXPR`, the registry (a `Caches`) it names a cache of",
            )),
            (None, None, None) => Err(error(
                Span::call_site(),
                format!(
                    "#[{macro_name}] needs its cache: `cache = EXPR` (a static such as a \
                     `LazyLock<Cache>`, a field such as `self.cache`, or a call), or \
                     `caches = EXPR, alias = \"name\"` (a `Caches` registry and a name)"
                ),
            )),
        }
    }

    /// `let __stratacache_cache = …;`. When a registry cannot give its cache, a function runs
    /// without it (`fallback`: the call of the function's body) and a helper returns the error.
    fn bind(
        &self,
        krate: &Path,
        what: &TokenStream,
        fallback: Option<&TokenStream>,
    ) -> TokenStream {
        match (self, fallback) {
            (Source::Expr(cache), _) => quote!(let __stratacache_cache = &(#cache);),
            (Source::Registry(caches, alias), Some(fallback)) => quote! {
                let __stratacache_owned = match (#caches).get(#alias).await {
                    ::core::result::Result::Ok(cache) => cache,
                    ::core::result::Result::Err(e) => {
                        #krate::__macros::unavailable(#what, &e);
                        return #fallback.await;
                    }
                };
                let __stratacache_cache = &__stratacache_owned;
            },
            (Source::Registry(caches, alias), None) => quote! {
                let __stratacache_owned = (#caches).get(#alias).await?;
                let __stratacache_cache = &__stratacache_owned;
            },
        }
    }
}

/// The `Shape` of a `#[cached]` function's return type, and the type its cache entries hold.
fn shape(ret: &Type, cache_none: Option<bool>, krate: &Path) -> syn::Result<(TokenStream, Type)> {
    let (ok, result) = match type_arg(ret, "Result") {
        Some(ok) => (ok, true),
        None => (ret, false),
    };
    let (inner, stored) = match type_arg(ok, "Option") {
        Some(_) if cache_none == Some(true) => (quote!(#krate::__macros::OptWithNone), ok.clone()),
        Some(t) => (quote!(#krate::__macros::Opt), t.clone()),
        None => {
            if cache_none.is_some() {
                return Err(error(
                    ret.span(),
                    "`cache_none` is for functions returning `Option<T>` or `Result<Option<T>, E>`",
                ));
            }
            (quote!(#krate::__macros::Plain), ok.clone())
        }
    };
    if result {
        Ok((quote!(#krate::__macros::Res<#inner>), stored))
    } else {
        Ok((inner, stored))
    }
}

/// `.with_ttl(…)` and `.with_namespace(…)` of the scoped calls, and the `let` that holds the
/// namespace.
fn scope(opts: &Options) -> (TokenStream, TokenStream, TokenStream) {
    let ttl = match &opts.ttl {
        Some(TtlOpt::Literal { secs, nanos }) => {
            quote!(.with_ttl(::core::time::Duration::new(#secs, #nanos)))
        }
        Some(TtlOpt::Expr(e)) => quote!(.with_ttl(#e)),
        None => quote!(),
    };
    match &opts.namespace {
        Some(ns) => (
            ttl,
            quote!(.with_namespace(::core::convert::AsRef::<str>::as_ref(__stratacache_ns))),
            quote!(let __stratacache_ns = &(#ns);),
        ),
        None => (ttl, quote!(), quote!()),
    }
}

/// `.arg(…)` of a default key, so that the argument's own type (never a reference to it)
/// must be `Serialize`: `by_ref` when `ident` holds a reference to the argument (in helpers),
/// or to a key of a `#[multi_cached]` function.
fn key_arg(arg: &crate::func::Arg, by_ref: bool, ident: &syn::Ident) -> TokenStream {
    let reference = by_ref || matches!(arg.ty, Type::Reference(_));
    if reference {
        quote_spanned!(arg.ty.span()=> .arg(#ident))
    } else {
        quote_spanned!(arg.ty.span()=> .arg(&#ident))
    }
}

fn fn_args(tokens: TokenStream) -> syn::Result<Punctuated<FnArg, Token![,]>> {
    syn::parse::Parser::parse2(Punctuated::<FnArg, Token![,]>::parse_terminated, tokens)
}

/// A helper's signature: the function's, renamed, with other arguments and output.
fn helper_sig(
    f: &Func,
    name: &syn::Ident,
    params: TokenStream,
    output: TokenStream,
) -> syn::Result<syn::Signature> {
    let mut sig = f.item.sig.clone();
    sig.ident = name.clone();
    sig.inputs = fn_args(params)?;
    sig.output = syn::parse2(quote!(-> #output))?;
    Ok(sig)
}

/// A link to the function in generated docs.
fn link(f: &Func) -> String {
    if f.method {
        format!("[`{0}`](Self::{0})", f.name())
    } else {
        format!("[`{0}`]", f.name())
    }
}

/// The original function, renamed: what the cached function and its helpers run.
fn body_fn(f: &Func) -> TokenStream {
    let mut item: ItemFn = f.item.clone();
    item.sig.ident = f.body_name();
    item.vis = syn::Visibility::Inherited;
    item.attrs = f.body_attrs().into_iter().cloned().collect();
    quote! {
        #[doc(hidden)]
        #[allow(dead_code)]
        #item
    }
}

pub(crate) fn cached(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let opts = Options::parse(attr, "cached", CACHED_OPTIONS)?;
    let f = Func::new(syn::parse2(item)?, "cached")?;
    let krate = opts.krate();
    let source = Source::new(&opts, "cached")?;
    let ret = f.ret();
    let (shape, stored) = shape(&ret, opts.cache_none, &krate)?;
    let arg_names: Vec<String> = f.args.iter().map(|a| a.ident.to_string()).collect();

    if let Some(lit) = &opts.key {
        let t = key::parse(lit, &arg_names, None)?;
        if t.positional > 0 {
            return Err(error(
                lit.span(),
                "the key template of #[cached] names arguments: `\"user:{id}\"`, not `{}`",
            ));
        }
    }
    // The key, in the wrapper (arguments by value) or in a helper (arguments by reference).
    let key_in = |by_ref: bool| match &opts.key {
        Some(lit) => {
            quote!(::core::result::Result::<::std::string::String, #krate::Error>::Ok(::std::format!(#lit)))
        }
        None => {
            let writer = f.key_writer(&krate);
            let args = f.args.iter().map(|a| key_arg(a, by_ref, &a.ident));
            quote!(#writer #(#args)* .finish())
        }
    };
    let key = key_in(false);
    let key_ref = key_in(true);
    let (ttl, ns, ns_let) = scope(&opts);
    let unless = match &opts.unless {
        Some(u) => quote!(#u),
        None => quote!(#krate::__macros::never),
    };
    let what = f.what();
    let body_path = f.body_path();
    let call_args = f.call_args();
    let name = f.name();
    let vis = &f.item.vis;
    let attrs = &f.item.attrs;
    let cfgs = f.cfg_attrs();
    let link = link(&f);

    let mut sig = f.item.sig.clone();
    sig.inputs = fn_args(f.value_params())?;
    let body = body_fn(&f);

    let invalidate = format_ident!("{}_invalidate", name);
    let refresh = format_ident!("{}_refresh", name);
    let peek = format_ident!("{}_cached", name);
    let key_fn = format_ident!("{}_key", name);
    let ref_params = f.ref_params(None);
    let sig_invalidate = helper_sig(
        &f,
        &invalidate,
        ref_params.clone(),
        quote!(#krate::Result<bool>),
    )?;
    let sig_peek = helper_sig(
        &f,
        &peek,
        ref_params.clone(),
        quote!(#krate::Result<::core::option::Option<#stored>>),
    )?;
    let sig_key = {
        let mut s = helper_sig(
            &f,
            &key_fn,
            ref_params,
            quote!(#krate::Result<::std::string::String>),
        )?;
        s.asyncness = None;
        s
    };
    let mut sig_refresh = sig.clone();
    sig_refresh.ident = refresh.clone();

    let doc_invalidate = format!(
        "Removes the cached result of {link} for these arguments; `true` if there was one.\n\n\
         # Errors\nThe cache's, and `Serialization` when the key cannot be built from the arguments."
    );
    let doc_refresh = format!(
        "Runs {link} without reading the cache and stores its result as {link} would (an \
         error is not stored and leaves the entry; a result that is not cached removes it); \
         returns the result."
    );
    let doc_peek = format!(
        "The cached result of {link} for these arguments, without running it: `None` when \
         nothing is cached.\n\n# Errors\nThe cache's (`Serialization` when the stored value does \
         not decode)."
    );
    let doc_key = format!(
        "The cache key of {link} for these arguments (before the cache's namespace and key \
         builder).\n\n# Errors\n`Serialization` when an argument cannot be serialized into the key."
    );

    let body_call = quote!(#body_path(#call_args));
    let bind_run = source.bind(&krate, &what, Some(&body_call));
    let bind_helper = source.bind(&krate, &what, None);

    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #bind_run
            #ns_let
            #krate::__macros::cached::<_, #shape, #ret, _, _, _>(
                __stratacache_cache.scoped() #ttl #ns,
                #what,
                #key,
                #unless,
                move || #body_path(#call_args),
            )
            .await
        }

        #body

        #(#cfgs)*
        #[doc = #doc_invalidate]
        #[allow(dead_code, unused_variables)]
        #vis #sig_invalidate {
            #bind_helper
            #ns_let
            #krate::__macros::invalidate(__stratacache_cache.scoped() #ns, #key_ref).await
        }

        #(#cfgs)*
        #[doc = #doc_refresh]
        #[allow(dead_code, unused_variables)]
        #vis #sig_refresh {
            #bind_run
            #ns_let
            #krate::__macros::refresh::<_, #shape, #ret, _, _, _>(
                __stratacache_cache.scoped() #ttl #ns,
                #what,
                #key,
                #unless,
                move || #body_path(#call_args),
            )
            .await
        }

        #(#cfgs)*
        #[doc = #doc_peek]
        #[allow(dead_code, unused_variables)]
        #vis #sig_peek {
            #bind_helper
            #ns_let
            #krate::__macros::peek(__stratacache_cache.scoped() #ns, #key_ref).await
        }

        #(#cfgs)*
        #[doc = #doc_key]
        #[allow(dead_code, unused_variables)]
        #vis #sig_key {
            #key_ref
        }
    })
}

/// Whether `ty` is a map a `#[multi_cached]` function can return.
fn is_map(ty: &Type) -> bool {
    match last_segment(ty) {
        Some(s) if s.ends_with("Map") => type_arg(ty, &s).is_some(),
        Some(s) if s == "Vec" => {
            matches!(type_arg(ty, "Vec"), Some(Type::Tuple(t)) if t.elems.len() == 2)
        }
        _ => false,
    }
}

pub(crate) fn multi_cached(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let opts = Options::parse(attr, "multi_cached", MULTI_OPTIONS)?;
    let f = Func::new(syn::parse2(item)?, "multi_cached")?;
    let krate = opts.krate();
    let source = Source::new(&opts, "multi_cached")?;
    let ret = f.ret();
    let (map, shape) = match type_arg(&ret, "Result") {
        Some(m) => (m, quote!(#krate::__macros::Res<#krate::__macros::Plain>)),
        None => (&ret, quote!(#krate::__macros::Plain)),
    };
    if !is_map(map) {
        let span = match &f.item.sig.output {
            syn::ReturnType::Default => f.item.sig.ident.span(),
            syn::ReturnType::Type(_, t) => t.span(),
        };
        return Err(error(
            span,
            "#[multi_cached] functions return a map from the keys they found to their values: \
             `HashMap<K, V>`, `BTreeMap<K, V>`, `Vec<(K, V)>`, or a `Result` of one",
        ));
    }
    let keys_arg = match (&opts.keys, f.args.as_slice()) {
        (Some(k), _) => match f.args.iter().find(|a| a.ident == *k) {
            Some(a) => a,
            None => {
                return Err(error(
                    k.span(),
                    format!("`keys = {k}` names no argument of the function"),
                ));
            }
        },
        (None, [only]) => only,
        (None, _) => {
            return Err(error(
                f.item.sig.ident.span(),
                "#[multi_cached] needs `keys = <argument>`, the argument holding the keys, when \
                 the function has more than one",
            ));
        }
    };
    let keys_ident = &keys_arg.ident;
    let ref_keys = matches!(keys_arg.ty, Type::Reference(_));
    let arg_names: Vec<String> = f.args.iter().map(|a| a.ident.to_string()).collect();

    if let Some(lit) = &opts.key {
        let t = key::parse(lit, &arg_names, Some(&keys_ident.to_string()))?;
        if t.positional != 1 {
            return Err(error(
                lit.span(),
                "the key template of #[multi_cached] has one `{}`, the place of each key: \
                 `\"user:{}\"`",
            ));
        }
    }
    // The cache key of one key `__stratacache_k: &K`, with the other arguments by value (in
    // the wrapper) or by reference (in a helper).
    let key_of = |by_ref: bool| match &opts.key {
        Some(lit) => quote!(::core::result::Result::<::std::string::String, #krate::Error>::Ok(
            ::std::format!(#lit, __stratacache_k)
        )),
        None => {
            let writer = f.key_writer(&krate);
            let args = f.args.iter().map(|a| {
                if a.ident == *keys_ident {
                    key_arg(a, true, &format_ident!("__stratacache_k"))
                } else {
                    key_arg(a, by_ref, &a.ident)
                }
            });
            quote!(#writer #(#args)* .finish())
        }
    };
    let cache_keys = |source: TokenStream, by_ref: bool| {
        let key_of = key_of(by_ref);
        quote! {
            ::core::iter::Iterator::collect::<#krate::Result<::std::vec::Vec<::std::string::String>>>(
                ::core::iter::Iterator::map(::core::iter::IntoIterator::into_iter(#source), |__stratacache_k| #key_of)
            )
        }
    };
    let wrapper_keys = cache_keys(quote!(&__stratacache_keys), false);
    let helper_keys = cache_keys(quote!(#keys_ident), true);

    let collect_keys = if ref_keys {
        quote!(::core::iter::Iterator::collect::<::std::vec::Vec<_>>(
            ::core::iter::Iterator::cloned(::core::iter::IntoIterator::into_iter(#keys_ident))
        ))
    } else {
        quote!(::core::iter::Iterator::collect::<::std::vec::Vec<_>>(
            ::core::iter::IntoIterator::into_iter(#keys_ident)
        ))
    };
    let clones = f.args.iter().filter(|a| a.ident != *keys_ident).map(|a| {
        let i = &a.ident;
        quote!(let #i = ::core::clone::Clone::clone(&#i);)
    });
    let body_path = f.body_path();
    let pass = f.args.iter().map(|a| {
        if a.ident == *keys_ident {
            if ref_keys {
                quote!(&__stratacache_missing)
            } else {
                quote!(::core::iter::Iterator::collect(
                    ::core::iter::IntoIterator::into_iter(__stratacache_missing)
                ))
            }
        } else {
            let i = &a.ident;
            quote!(#i)
        }
    });
    let self_arg = if f.method { quote!(self,) } else { quote!() };
    let call = quote! {
        |__stratacache_missing: ::std::vec::Vec<_>| {
            #(#clones)*
            async move { #body_path(#self_arg #(#pass),*).await }
        }
    };

    let (ttl, ns, ns_let) = scope(&opts);
    let what = f.what();
    let name = f.name();
    let vis = &f.item.vis;
    let attrs = &f.item.attrs;
    let cfgs = f.cfg_attrs();
    let link = link(&f);
    let mut sig = f.item.sig.clone();
    sig.inputs = fn_args(f.value_params())?;
    let body = body_fn(&f);
    let invalidate = format_ident!("{}_invalidate", name);
    let sig_invalidate = helper_sig(
        &f,
        &invalidate,
        f.ref_params(None),
        quote!(#krate::Result<u64>),
    )?;
    let doc_invalidate = format!(
        "Removes the cached values of {link} for these keys (and arguments); how many there \
         were.\n\n# Errors\nThe cache's, and `Serialization` when a key cannot be built."
    );

    let all_args = f.args.iter().map(|a| &a.ident);
    let body_call = quote!(#body_path(#self_arg #(#all_args),*));
    let bind_run = source.bind(&krate, &what, Some(&body_call));
    let bind_helper = source.bind(&krate, &what, None);

    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #bind_run
            #ns_let
            let __stratacache_keys = #collect_keys;
            let __stratacache_cache_keys = #wrapper_keys;
            #krate::__macros::multi_cached::<_, #shape, #ret, _, _, _, _>(
                __stratacache_cache.scoped() #ttl #ns,
                #what,
                __stratacache_keys,
                __stratacache_cache_keys,
                #call,
            )
            .await
        }

        #body

        #(#cfgs)*
        #[doc = #doc_invalidate]
        #[allow(dead_code, unused_variables)]
        #vis #sig_invalidate {
            #bind_helper
            #ns_let
            #krate::__macros::invalidate_many(__stratacache_cache.scoped() #ns, #helper_keys).await
        }
    })
}
