//! What the attributes read from the function: receiver, arguments, generics, return shape.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, GenericParam, Ident, ItemFn, Pat, PathArguments, Type};

use crate::options::error;

/// One argument of the function.
pub(crate) struct Arg {
    /// The name the wrapper gives it: the argument's own, or `__arg{i}` for a pattern.
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// A function under an attribute.
pub(crate) struct Func {
    pub(crate) item: ItemFn,
    /// `&self`.
    pub(crate) method: bool,
    pub(crate) args: Vec<Arg>,
}

impl Func {
    pub(crate) fn new(item: ItemFn, macro_name: &str) -> syn::Result<Self> {
        let sig = &item.sig;
        if sig.asyncness.is_none() {
            return Err(error(
                sig.fn_token.span(),
                format!(
                    "#[{macro_name}] works on `async fn`s only: the cache is async, so the \
                     function must be too"
                ),
            ));
        }
        if let Some(c) = &sig.constness {
            return Err(error(
                c.span(),
                format!("#[{macro_name}] cannot be used on a `const fn`"),
            ));
        }
        if let Some(v) = &sig.variadic {
            return Err(error(
                v.span(),
                format!("#[{macro_name}] cannot be used on a variadic fn"),
            ));
        }
        let mut method = false;
        let mut args = Vec::new();
        for (i, input) in sig.inputs.iter().enumerate() {
            match input {
                FnArg::Receiver(r) => {
                    if !matches!(r.kind, syn::ReceiverKind::Reference(_, _, None))
                        || r.mutability.is_some()
                    {
                        return Err(error(
                            r.span(),
                            format!(
                                "#[{macro_name}] works on methods taking `&self` (concurrent \
                                 callers share one run of the method)"
                            ),
                        ));
                    }
                    method = true;
                }
                FnArg::Typed(t) => {
                    let ident = match &*t.pat {
                        Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => {
                            Ident::new(&p.ident.to_string(), p.ident.span())
                        }
                        _ => format_ident!("__arg{}", i),
                    };
                    args.push(Arg {
                        ident,
                        ty: (*t.ty).clone(),
                    });
                }
            }
        }
        Ok(Func { item, method, args })
    }

    pub(crate) fn name(&self) -> &Ident {
        &self.item.sig.ident
    }

    /// The return type (`()` when none is written).
    pub(crate) fn ret(&self) -> Type {
        match &self.item.sig.output {
            syn::ReturnType::Default => syn::parse_quote!(()),
            syn::ReturnType::Type(_, t) => (**t).clone(),
        }
    }

    /// The name of the function holding the original body.
    pub(crate) fn body_name(&self) -> Ident {
        format_ident!("__{}_uncached", self.name())
    }

    /// `self, a, b` or `a, b`: the arguments of a call of the body function.
    pub(crate) fn call_args(&self) -> TokenStream {
        let idents = self.args.iter().map(|a| &a.ident);
        if self.method {
            quote!(self, #(#idents),*)
        } else {
            quote!(#(#idents),*)
        }
    }

    /// `::<T, U, N>`, the type and const parameters of the function, when they can be written
    /// (not with `impl Trait` arguments).
    pub(crate) fn turbofish(&self) -> TokenStream {
        let has_impl = self.args.iter().any(|a| contains_impl(&a.ty));
        let params: Vec<TokenStream> = self
            .item
            .sig
            .generics
            .params
            .iter()
            .filter_map(|p| match p {
                GenericParam::Type(t) => {
                    let i = &t.ident;
                    Some(quote!(#i))
                }
                GenericParam::Const(c) => {
                    let i = &c.ident;
                    Some(quote!(#i))
                }
                GenericParam::Lifetime(_) => None,
            })
            .collect();
        if has_impl || params.is_empty() {
            quote!()
        } else {
            quote!(::<#(#params),*>)
        }
    }

    /// The path of the body function, ready to call: `Self::__f_uncached::<T>` or
    /// `__f_uncached::<T>`.
    pub(crate) fn body_path(&self) -> TokenStream {
        let body = self.body_name();
        let tf = self.turbofish();
        if self.method {
            quote!(Self::#body #tf)
        } else {
            quote!(#body #tf)
        }
    }

    /// The key's prefix expression (`&str` or `String`): the module path and name of a free
    /// function, the `type_name` of `Self` and the name of a method.
    pub(crate) fn key_writer(&self, krate: &syn::Path) -> TokenStream {
        let name = self.name().to_string();
        let mut writer = if self.method {
            quote! {
                #krate::__macros::KeyWriter::new(#krate::__macros::type_name::<Self>()).segment(#name)
            }
        } else {
            quote! {
                #krate::__macros::KeyWriter::new(::core::concat!(::core::module_path!(), "::", #name))
            }
        };
        for p in &self.item.sig.generics.params {
            match p {
                GenericParam::Type(t) => {
                    let i = &t.ident;
                    writer = quote!(#writer.generic(#krate::__macros::type_name::<#i>()));
                }
                GenericParam::Const(c) => {
                    let i = &c.ident;
                    writer = quote!(#writer.generic(&::std::string::ToString::to_string(&#i)));
                }
                GenericParam::Lifetime(_) => {}
            }
        }
        writer
    }

    /// The name of the function for logs: `module::path::name`.
    pub(crate) fn what(&self) -> TokenStream {
        let name = self.name().to_string();
        quote!(::core::concat!(::core::module_path!(), "::", #name))
    }

    /// The argument list of a helper that takes the arguments by reference (a reference
    /// type is taken as it is).
    pub(crate) fn ref_params(&self, skip: Option<&Ident>) -> TokenStream {
        let params =
            self.args
                .iter()
                .filter(|a| Some(&a.ident) != skip)
                .map(|Arg { ident, ty }| match ty {
                    Type::Reference(_) => quote!(#ident: #ty),
                    Type::ImplTrait(_) | Type::TraitObject(_) => quote!(#ident: &(#ty)),
                    _ => quote!(#ident: &#ty),
                });
        if self.method {
            quote!(&self, #(#params),*)
        } else {
            quote!(#(#params),*)
        }
    }

    /// The argument list of the wrapper: the same types, plain names.
    pub(crate) fn value_params(&self) -> TokenStream {
        let params = self
            .args
            .iter()
            .map(|Arg { ident, ty }| quote!(#ident: #ty));
        if self.method {
            quote!(&self, #(#params),*)
        } else {
            quote!(#(#params),*)
        }
    }

    /// The attributes that must follow the function to its helpers (`cfg`s).
    pub(crate) fn cfg_attrs(&self) -> Vec<&syn::Attribute> {
        self.item
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .collect()
    }

    /// The attributes of the body function: conditions and lint levels. The others (docs,
    /// `#[tracing::instrument]`, `#[must_use]`, …) stay on the cached function only.
    pub(crate) fn body_attrs(&self) -> Vec<&syn::Attribute> {
        const KEPT: [&str; 7] = [
            "cfg", "cfg_attr", "allow", "expect", "warn", "deny", "forbid",
        ];
        self.item
            .attrs
            .iter()
            .filter(|a| KEPT.iter().any(|k| a.path().is_ident(k)))
            .collect()
    }
}

fn contains_impl(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Reference(r) => contains_impl(&r.elem),
        Type::Paren(p) => contains_impl(&p.elem),
        Type::Slice(s) => contains_impl(&s.elem),
        Type::Array(a) => contains_impl(&a.elem),
        Type::Tuple(t) => t.elems.iter().any(contains_impl),
        Type::Path(p) => p.path.segments.iter().any(|s| match &s.arguments {
            PathArguments::AngleBracketed(a) => a.args.iter().any(|g| match g {
                GenericArgument::Type(t) => contains_impl(t),
                _ => false,
            }),
            _ => false,
        }),
        _ => false,
    }
}

/// The one type argument of `ty` if its last path segment is `name` (`Option<T>`,
/// `std::option::Option<T>`), or the first of `Result<T, E>` / `io::Result<T>`.
pub(crate) fn type_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(a) = &last.arguments else {
        return None;
    };
    a.args.iter().find_map(|g| match g {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// The last path segment's name of `ty`.
pub(crate) fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}
