//! Key templates: `"user:{id}"`, checked against the function's arguments at compile time.

use syn::LitStr;

use crate::options::error;

/// What a template holds beyond the argument names it was checked for.
pub(crate) struct Template {
    /// How many `{}` there are.
    pub(crate) positional: usize,
}

/// Reads `lit`, checking each `{name}` against `args` (`keys_arg`: the collection of keys of
/// a `#[multi_cached]` function, which a template cannot name).
pub(crate) fn parse(
    lit: &LitStr,
    args: &[String],
    keys_arg: Option<&str>,
) -> syn::Result<Template> {
    let text = lit.value();
    let mut positional = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '}' => {
                return Err(error(
                    lit.span(),
                    "unmatched `}` in the key template; write `}}` for a literal brace",
                ));
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => {
                            return Err(error(
                                lit.span(),
                                "unclosed `{` in the key template; write `{{` for a literal brace",
                            ));
                        }
                    }
                }
                let name = inner.split(':').next().unwrap_or("").trim().to_owned();
                if name.is_empty() {
                    positional += 1;
                    continue;
                }
                if Some(name.as_str()) == keys_arg {
                    return Err(error(
                        lit.span(),
                        format!(
                            "`{{{name}}}` is the collection of keys; write `{{}}` for the place \
                             of each key"
                        ),
                    ));
                }
                if name == "self" || name.starts_with("self.") {
                    return Err(error(
                        lit.span(),
                        format!(
                            "the key template names `{name}`; it can name the function's \
                             arguments only (use `namespace = …` to tell instances apart)"
                        ),
                    ));
                }
                if !args.contains(&name) {
                    let known = if args.is_empty() {
                        "the function has no arguments".to_owned()
                    } else {
                        format!("the arguments are: {}", args.join(", "))
                    };
                    return Err(error(
                        lit.span(),
                        format!(
                            "the key template names `{name}`, which is no argument of the function; {known}"
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(Template { positional })
}
