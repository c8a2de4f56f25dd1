//! What the server accepts, stated as schemas: each type here documents one input rule
//! (`domain::parse_text`, `Money::parse`, …) exactly, as a JSON Schema `pattern`, so the
//! spec rejects what the server rejects and accepts what it accepts. Request fields point
//! at them with `#[schema(value_type = …)]`; the field's Rust type stays what it was.
//!
//! The patterns are ECMA-262 and Python `re` compatible: plain character classes with
//! `\xNN`/`\uNNNN` escapes, no lookaround, no Unicode property classes.

use std::borrow::Cow;

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// Unicode `White_Space`, which Rust's `str::trim` removes from both ends.
const SPACE: &str = r"[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// Neither white space nor a control character: what a trimmed text starts and ends with.
const SOLID: &str = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// Not a control character (`char::is_control`, category Cc).
const PRINTABLE: &str = r"[^\x00-\x1f\x7f-\x9f]";

/// `domain::parse_text(raw, max)`: 1 to `max` characters once surrounding white space is
/// trimmed, none of them a control character.
pub fn text_pattern(max: usize) -> String {
    format!(
        "^{SPACE}*{SOLID}(?:{PRINTABLE}{{0,{inner}}}{SOLID})?{SPACE}*$",
        inner = max - 2
    )
}

/// An order link: trimmed text of 1 to `max` characters with no white space inside.
pub fn link_pattern(max: usize) -> String {
    format!("^{SPACE}*{SOLID}{{1,{max}}}{SPACE}*$")
}

/// A provider URL: trimmed text of at most `max` characters starting `http://` or `https://`.
pub fn url_pattern(max: usize) -> String {
    format!(
        "^{SPACE}*(?:http://(?:{PRINTABLE}{{0,{http}}}{SOLID})?|https://(?:{PRINTABLE}{{0,{https}}}{SOLID})?){SPACE}*$",
        http = max - 8,
        https = max - 9
    )
}

/// `Money::parse` of an amount more than zero: a decimal string up to one billion, at
/// most 6 significant fractional digits (trailing zeros are fine), trimmed. Leading and
/// trailing zeros are bounded here (10 each) to stay inside the parser's 40 characters.
const POSITIVE: &str = r"0{0,10}(?:[1-9][0-9]{0,8}(?:\.[0-9]{1,6}0{0,10})?|1000000000(?:\.0{1,16})?)|0{1,10}\.[0-9]{0,5}[1-9]0{0,10}";
/// Zero, which `Money::parse` also takes with a minus sign.
const ZERO: &str = r"-?0{1,10}(?:\.0{1,16})?";

pub fn positive_amount_pattern() -> String {
    format!("^{SPACE}*(?:{POSITIVE}){SPACE}*$")
}

pub fn amount_pattern() -> String {
    format!("^{SPACE}*(?:{POSITIVE}|{ZERO}){SPACE}*$")
}

/// `api::orders::parse_id_list`: comma-separated integer ids, at least one, at most 100
/// (empty items are skipped; each item is trimmed and may carry a sign).
pub fn id_list_pattern(max: usize) -> String {
    let item = format!("{SPACE}*[+-]?0{{0,10}}[0-9]{{1,18}}{SPACE}*");
    format!(
        "^(?:{SPACE}*,)*{item}(?:,(?:{item}|{SPACE}*)){{0,{more}}}$",
        more = max - 1
    )
}

/// `domain::report::parse_timezone`: `UTC` (any case), `Z`, or an offset up to ±14:00.
pub fn timezone_pattern() -> String {
    format!("^{SPACE}*(?:[Uu][Tt][Cc]|Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00){SPACE}*$")
}

fn string_schema(description: &str, pattern: String, example: Option<&str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .examples(example)
        .into()
}

/// Declares a named string schema (a component of the spec) for one input rule.
macro_rules! input_schema {
    ($(#[doc = $doc:literal])* $name:ident, $pattern:expr, $example:expr) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let doc: &[&str] = &[$($doc),*];
                let description = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                string_schema(&description, $pattern, $example)
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

input_schema!(
    /// Text of 1 to 100 characters after trimming surrounding white space, with no
    /// control characters.
    Text100,
    text_pattern(100),
    Some("fuzz-1")
);
input_schema!(
    /// Text of 1 to 200 characters after trimming surrounding white space, with no
    /// control characters.
    Text200,
    text_pattern(200),
    Some("Instagram likes")
);
input_schema!(
    /// Text of 1 to 255 characters after trimming surrounding white space, with no
    /// control characters.
    Text255,
    text_pattern(crate::domain::order_fields::MAX_TEXT_CHARS),
    None
);
input_schema!(
    /// An `http://` or `https://` URL of at most 255 characters, with no control
    /// characters (surrounding white space is trimmed).
    HttpUrl255,
    url_pattern(crate::domain::order_fields::MAX_TEXT_CHARS),
    Some("https://instagram.com/p/abc")
);
input_schema!(
    /// Text of 1 to 500 characters after trimming surrounding white space, with no
    /// control characters.
    Text500,
    text_pattern(500),
    None
);
input_schema!(
    /// Text of 1 to 2000 characters after trimming surrounding white space, with no
    /// control characters.
    Text2000,
    text_pattern(2000),
    Some("The likes never arrived")
);
input_schema!(
    /// Where to deliver: 1 to 2048 characters with no white space or control characters
    /// (surrounding white space is trimmed).
    Link,
    link_pattern(crate::domain::order::MAX_LINK_CHARS),
    Some("https://instagram.com/p/abc")
);
input_schema!(
    /// An `http://` or `https://` URL of at most 2000 characters, with no control
    /// characters (surrounding white space is trimmed).
    HttpUrl,
    url_pattern(2000),
    Some("https://provider.example/api/v2")
);
input_schema!(
    /// A money amount more than zero and at most 1000000000: a decimal string with at most
    /// 6 significant fractional digits.
    PositiveAmount,
    positive_amount_pattern(),
    Some("10.5")
);
input_schema!(
    /// A money amount from 0 to 1000000000: a decimal string with at most 6 significant
    /// fractional digits.
    NonNegativeAmount,
    amount_pattern(),
    Some("0.9")
);
input_schema!(
    /// Comma-separated order ids, 1 to 100 of them.
    OrderIdList,
    id_list_pattern(100),
    Some("1,2,3")
);
input_schema!(
    /// `UTC` or a fixed offset from -14:00 to +14:00 such as `+03:00`.
    TimeZone,
    timezone_pattern(),
    Some("+03:00")
);
input_schema!(
    /// Three uppercase letters, such as `USD`.
    CurrencyCode,
    "^[A-Z]{3}$".to_string(),
    Some("USD")
);

/// A list field of an order: a JSON array of strings, one item per line (an item holding
/// line breaks is split on them; items are trimmed and blank ones dropped), at most 10000
/// lines and 60000 characters joined by `\n`.
pub struct Lines;

impl utoipa::PartialSchema for Lines {
    fn schema() -> RefOr<Schema> {
        use crate::domain::order_fields::{MAX_LIST_CHARS, MAX_LIST_ITEMS};
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(MAX_LIST_CHARS)),
            )
            .max_items(Some(MAX_LIST_ITEMS))
            .description(Some(
                "One item per line (an item holding line breaks is split on them; items are \
                 trimmed and blank ones dropped); at most 10000 lines and 60000 characters \
                 joined by `\\n`",
            ))
            .examples([serde_json::json!(["first line", "second line"])])
            .into()
    }
}

impl utoipa::ToSchema for Lines {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Lines")
    }
}

/// `comments`: [`Lines`], or (as before lists were arrays) one string with a line per
/// comment.
pub struct CommentLines;

impl utoipa::PartialSchema for CommentLines {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("Lines"))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "The comments as one text, one per line (the form before lists were \
                         arrays)",
                    )),
            )
            .description(Some(
                "Comment lines: an array of strings, or one text with a line per comment",
            ))
            .into()
    }
}

impl utoipa::ToSchema for CommentLines {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CommentLines")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            "Lines".to_string(),
            <Lines as utoipa::PartialSchema>::schema(),
        ));
    }
}
