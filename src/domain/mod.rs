//! The business rules, free of HTTP and SQL.

pub mod account;
pub mod alert;
pub mod api_key;
pub mod audit;
pub mod cancel;
pub mod cost;
pub mod event;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod order;
pub mod order_fields;
pub mod policy;
pub mod provider;
pub mod refill;
pub mod refund;
pub mod report;
pub mod service;
pub mod subscription;

/// Declares a closed set of lowercase snake_case names with `as_str` and `parse`.
macro_rules! string_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        // How stored rows decode: a name that is not one of ours is an error, never a
        // value guessed in its place.
        impl TryFrom<String> for $name {
            type Error = $crate::domain::UnknownName;

            fn try_from(text: String) -> Result<$name, Self::Error> {
                $name::parse(&text).ok_or($crate::domain::UnknownName {
                    kind: stringify!($name),
                    text,
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // Written out rather than derived: the derive cannot see serde's renames
        // through this macro and would document the Rust variant names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc: &[&str] = &[$($doc),*];
                let description = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description((!description.is_empty()).then_some(description))
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use string_enum;

/// A name outside the closed set of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {text:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub text: String,
}

/// One field that failed validation, with a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// Free text that is trimmed, non-empty, at most `max_chars` long and free of control
/// characters (names, links, gateway references).
pub fn parse_text(raw: &str, max_chars: usize) -> Result<String, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(text.to_string())
}
