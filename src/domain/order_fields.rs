//! The fields an order carries besides its link, quantity and drip-feed runs, by service
//! type: which a type requires, what each may hold, and how each is cleaned before it is
//! stored and forwarded. The table is in docs/service-types.md.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::ServiceType;
use super::string_enum;

string_enum! {
    /// A field of an order besides `link`, `quantity`, `runs` and `interval`, under the
    /// panel dialect's name.
    OrderField {
        Comments => "comments",
        Usernames => "usernames",
        Hashtags => "hashtags",
        Hashtag => "hashtag",
        Username => "username",
        Media => "media",
        AnswerNumber => "answer_number",
        Groups => "groups",
        Keywords => "keywords",
        Country => "country",
        Device => "device",
        TypeOfTraffic => "type_of_traffic",
        GoogleKeyword => "google_keyword",
        ReferringUrl => "referring_url",
    }
}

/// The most lines of a list field, after blank lines are dropped.
pub const MAX_LIST_ITEMS: usize = 10_000;
/// The most characters of a list field, its lines joined by `\n`.
pub const MAX_LIST_CHARS: usize = 60_000;
/// The most characters of a single text field (URLs included).
pub const MAX_TEXT_CHARS: usize = 255;
/// `answer_number`: 1 to this.
pub const MAX_ANSWER_NUMBER: i64 = 1_000;
/// Web Traffic `device`: 1 desktop, 2 Android, 3 iOS, 4 mixed mobile, 5 mixed all.
pub const MAX_DEVICE: i64 = 5;
/// Web Traffic `type_of_traffic`: 1 Google keyword, 2 custom referrer, 3 blank.
pub const MAX_TRAFFIC_TYPE: i64 = 3;

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldShape {
    /// Lines: a JSON array of strings on REST, text with one item per line on API v2.
    List,
    /// One line of text.
    Text,
    /// An `http` or `https` URL.
    Url,
    /// A whole number in a range.
    Integer,
}

impl OrderField {
    pub fn shape(self) -> FieldShape {
        use OrderField::*;
        match self {
            Comments | Usernames | Hashtags | Groups | Keywords => FieldShape::List,
            Hashtag | Username | Country | GoogleKeyword => FieldShape::Text,
            Media | ReferringUrl => FieldShape::Url,
            AnswerNumber | Device | TypeOfTraffic => FieldShape::Integer,
        }
    }

    /// The range of an integer field.
    pub fn range(self) -> Option<(i64, i64)> {
        match self {
            OrderField::AnswerNumber => Some((1, MAX_ANSWER_NUMBER)),
            OrderField::Device => Some((1, MAX_DEVICE)),
            OrderField::TypeOfTraffic => Some((1, MAX_TRAFFIC_TYPE)),
            _ => None,
        }
    }
}

/// The type fields of an order: as a client sent them (before [`check`]), or cleaned
/// (after it, and as stored). Lists hold one item per line.
// No `deny_unknown_fields`: the schema is flattened into the order's, which has more
// properties; storage refuses unknown keys itself (`db::orders`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderFields {
    /// Comment lines (Custom Comments, Custom Comments Package, Comment Replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<Vec<String>>,
    /// Usernames to mention, without `@` (Mentions, Mentions with Hashtags, Mentions Custom List).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usernames: Option<Vec<String>>,
    /// Hashtags, without `#` (Mentions with Hashtags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashtags: Option<Vec<String>>,
    /// One hashtag, without `#` (Mentions Hashtag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashtag: Option<String>,
    /// One username, without `@` (Mentions User Followers, which also takes a profile URL;
    /// Comment Likes: the comment's author; Comment Replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The media whose likers are mentioned, a URL (Mentions Media Likers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    /// The poll answer to vote for, from 1 (Poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_number: Option<i64>,
    /// Groups to invite from (Invites from Groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Search keywords (SEO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    /// Country code or name the traffic comes from (Web Traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// 1 desktop, 2 Android, 3 iOS, 4 mixed mobile, 5 mixed all (Web Traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<i64>,
    /// 1 Google keyword (needs `google_keyword`), 2 custom referrer (needs
    /// `referring_url`), 3 blank (Web Traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_of_traffic: Option<i64>,
    /// The keyword searched, with traffic type 1 (Web Traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_keyword: Option<String>,
    /// The referrer URL, with traffic type 2 (Web Traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referring_url: Option<String>,
}

/// One field's value, whatever its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    List(&'a [String]),
    Text(&'a str),
    Integer(i64),
}

impl FieldValue<'_> {
    /// The value as the dialect sends it: lines joined by `\n`, numbers as text.
    pub fn panel_text(&self) -> String {
        match self {
            FieldValue::List(items) => items.join("\n"),
            FieldValue::Text(text) => text.to_string(),
            FieldValue::Integer(n) => n.to_string(),
        }
    }
}

impl OrderFields {
    /// The fields present, in [`OrderField::ALL`] order.
    pub fn present(&self) -> Vec<(OrderField, FieldValue<'_>)> {
        OrderField::ALL
            .iter()
            .filter_map(|&field| self.get(field).map(|value| (field, value)))
            .collect()
    }

    pub fn get(&self, field: OrderField) -> Option<FieldValue<'_>> {
        use OrderField as F;
        fn list(v: &Option<Vec<String>>) -> Option<FieldValue<'_>> {
            v.as_deref().map(FieldValue::List)
        }
        fn text(v: &Option<String>) -> Option<FieldValue<'_>> {
            v.as_deref().map(FieldValue::Text)
        }
        match field {
            F::Comments => list(&self.comments),
            F::Usernames => list(&self.usernames),
            F::Hashtags => list(&self.hashtags),
            F::Groups => list(&self.groups),
            F::Keywords => list(&self.keywords),
            F::Hashtag => text(&self.hashtag),
            F::Username => text(&self.username),
            F::Media => text(&self.media),
            F::Country => text(&self.country),
            F::GoogleKeyword => text(&self.google_keyword),
            F::ReferringUrl => text(&self.referring_url),
            F::AnswerNumber => self.answer_number.map(FieldValue::Integer),
            F::Device => self.device.map(FieldValue::Integer),
            F::TypeOfTraffic => self.type_of_traffic.map(FieldValue::Integer),
        }
    }

    fn list_mut(&mut self, field: OrderField) -> Option<&mut Option<Vec<String>>> {
        use OrderField as F;
        match field {
            F::Comments => Some(&mut self.comments),
            F::Usernames => Some(&mut self.usernames),
            F::Hashtags => Some(&mut self.hashtags),
            F::Groups => Some(&mut self.groups),
            F::Keywords => Some(&mut self.keywords),
            _ => None,
        }
    }

    fn text_mut(&mut self, field: OrderField) -> Option<&mut Option<String>> {
        use OrderField as F;
        match field {
            F::Hashtag => Some(&mut self.hashtag),
            F::Username => Some(&mut self.username),
            F::Media => Some(&mut self.media),
            F::Country => Some(&mut self.country),
            F::GoogleKeyword => Some(&mut self.google_keyword),
            F::ReferringUrl => Some(&mut self.referring_url),
            _ => None,
        }
    }

    /// The number of lines of a list field (0 when absent).
    pub fn count(&self, field: OrderField) -> i64 {
        match self.get(field) {
            Some(FieldValue::List(items)) => items.len() as i64,
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.present().is_empty()
    }
}

/// Why a type field is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("is required for a {kind} service")]
    Required { kind: ServiceType },
    #[error("is not taken by a {kind} service")]
    NotTaken { kind: ServiceType },
    #[error("is required with type_of_traffic {traffic}")]
    RequiredWithTraffic { traffic: i64 },
    #[error("is taken only with type_of_traffic {traffic}")]
    OnlyWithTraffic { traffic: i64 },
    #[error("must hold at least one non-blank line")]
    NoLines,
    #[error("must hold at most {MAX_LIST_ITEMS} lines")]
    TooManyLines,
    #[error("must hold at most {MAX_LIST_CHARS} characters")]
    ListTooLong,
    #[error("{reason}")]
    BadText { reason: String },
    #[error("must be an http or https URL")]
    NotUrl,
    #[error("must not contain spaces")]
    HasSpaces,
    #[error("must be between {min} and {max}")]
    OutOfRange { min: i64, max: i64 },
    #[error("must be a country code or name (letters, spaces, '-', '.', apostrophes)")]
    NotCountry,
}

/// Cleans and checks the type fields of an order of `kind`: every problem, in field
/// order. Lists are split on `\n` (and `\r\n`), items trimmed and blank ones dropped;
/// `@` is stripped from usernames and `#` from hashtags, as panels do; keywords sent
/// comma-separated on one line are split on the commas.
pub fn check(
    kind: ServiceType,
    sent: &OrderFields,
) -> Result<OrderFields, Vec<(OrderField, FieldProblem)>> {
    let mut problems = Vec::new();
    let mut clean = OrderFields::default();
    let required = kind.required_fields();
    let optional = kind.optional_fields();
    for &field in OrderField::ALL {
        let value = sent.get(field);
        let taken = required.contains(&field) || optional.contains(&field);
        match value {
            None if required.contains(&field) => {
                problems.push((field, FieldProblem::Required { kind }))
            }
            None => {}
            Some(_) if !taken => problems.push((field, FieldProblem::NotTaken { kind })),
            Some(value) => match clean_value(kind, field, value) {
                Ok(Cleaned::List(items)) => {
                    if let Some(slot) = clean.list_mut(field) {
                        *slot = Some(items);
                    }
                }
                Ok(Cleaned::Text(text)) => {
                    if let Some(slot) = clean.text_mut(field) {
                        *slot = Some(text);
                    }
                }
                Ok(Cleaned::Integer(n)) => match field {
                    OrderField::AnswerNumber => clean.answer_number = Some(n),
                    OrderField::Device => clean.device = Some(n),
                    _ => clean.type_of_traffic = Some(n),
                },
                Err(problem) => problems.push((field, problem)),
            },
        }
    }
    if kind == ServiceType::WebTraffic {
        // Each referrer field goes with its own traffic type, and only with it.
        if let Some(traffic) = clean.type_of_traffic {
            for (field, needed_with, present) in [
                (OrderField::GoogleKeyword, 1, sent.google_keyword.is_some()),
                (OrderField::ReferringUrl, 2, sent.referring_url.is_some()),
            ] {
                if traffic == needed_with && !present {
                    problems.push((field, FieldProblem::RequiredWithTraffic { traffic }));
                } else if traffic != needed_with && present {
                    problems.push((
                        field,
                        FieldProblem::OnlyWithTraffic {
                            traffic: needed_with,
                        },
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(clean)
    } else {
        problems.sort_by_key(|(field, _)| OrderField::ALL.iter().position(|f| f == field));
        Err(problems)
    }
}

enum Cleaned {
    List(Vec<String>),
    Text(String),
    Integer(i64),
}

fn clean_value(
    kind: ServiceType,
    field: OrderField,
    value: FieldValue<'_>,
) -> Result<Cleaned, FieldProblem> {
    match (field.shape(), value) {
        (FieldShape::List, FieldValue::List(items)) => clean_list(field, items).map(Cleaned::List),
        (FieldShape::List, FieldValue::Text(text)) => {
            clean_list(field, std::slice::from_ref(&text.to_string())).map(Cleaned::List)
        }
        (FieldShape::Integer, FieldValue::Integer(n)) => {
            let (min, max) = field.range().unwrap_or((1, i64::MAX));
            if (min..=max).contains(&n) {
                Ok(Cleaned::Integer(n))
            } else {
                Err(FieldProblem::OutOfRange { min, max })
            }
        }
        (FieldShape::Text | FieldShape::Url, FieldValue::Text(text)) => {
            clean_text(kind, field, text).map(Cleaned::Text)
        }
        // The API layers type each field by its shape; a mismatch is the client's.
        (FieldShape::Integer, _) => {
            let (min, max) = field.range().unwrap_or((1, i64::MAX));
            Err(FieldProblem::OutOfRange { min, max })
        }
        (_, _) => Err(FieldProblem::BadText {
            reason: "must be text".into(),
        }),
    }
}

fn clean_list(field: OrderField, items: &[String]) -> Result<Vec<String>, FieldProblem> {
    let mut lines = Vec::new();
    let mut chars = 0usize;
    for item in items {
        for line in item.split('\n') {
            let line = line.trim();
            let pieces: Box<dyn Iterator<Item = &str>> = if field == OrderField::Keywords {
                Box::new(line.split(',').map(str::trim))
            } else {
                Box::new(std::iter::once(line))
            };
            for piece in pieces {
                let piece = match field {
                    OrderField::Usernames => piece.trim_start_matches('@').trim(),
                    OrderField::Hashtags => piece.trim_start_matches('#').trim(),
                    _ => piece,
                };
                if piece.is_empty() {
                    continue;
                }
                if piece.chars().any(char::is_control) {
                    return Err(FieldProblem::BadText {
                        reason: "must not contain control characters".into(),
                    });
                }
                if matches!(field, OrderField::Usernames | OrderField::Hashtags)
                    && piece.chars().any(char::is_whitespace)
                {
                    return Err(FieldProblem::HasSpaces);
                }
                if lines.len() == MAX_LIST_ITEMS {
                    return Err(FieldProblem::TooManyLines);
                }
                // Joined by `\n`: one character between lines.
                chars += piece.chars().count() + usize::from(!lines.is_empty());
                if chars > MAX_LIST_CHARS {
                    return Err(FieldProblem::ListTooLong);
                }
                lines.push(piece.to_string());
            }
        }
    }
    if lines.is_empty() {
        return Err(FieldProblem::NoLines);
    }
    Ok(lines)
}

fn clean_text(kind: ServiceType, field: OrderField, raw: &str) -> Result<String, FieldProblem> {
    let text = super::parse_text(raw, MAX_TEXT_CHARS)
        .map_err(|reason| FieldProblem::BadText { reason })?;
    match field {
        OrderField::Media | OrderField::ReferringUrl => {
            if is_web_url(&text) {
                Ok(text)
            } else {
                Err(FieldProblem::NotUrl)
            }
        }
        // Mentions User Followers also takes the profile's URL.
        OrderField::Username
            if kind == ServiceType::MentionsUserFollowers && text.contains("://") =>
        {
            if is_web_url(&text) {
                Ok(text)
            } else {
                Err(FieldProblem::NotUrl)
            }
        }
        OrderField::Username | OrderField::Hashtag => {
            let mark = if field == OrderField::Username {
                '@'
            } else {
                '#'
            };
            let bare = text.trim_start_matches(mark).trim();
            if bare.is_empty() {
                return Err(FieldProblem::BadText {
                    reason: "must not be empty".into(),
                });
            }
            if bare.chars().any(char::is_whitespace) {
                return Err(FieldProblem::HasSpaces);
            }
            Ok(bare.to_string())
        }
        OrderField::Country => {
            let fits = text
                .chars()
                .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '.' | '\'' | '’'));
            if fits {
                Ok(text)
            } else {
                Err(FieldProblem::NotCountry)
            }
        }
        _ => Ok(text),
    }
}

/// An absolute `http` or `https` URL with a host and no spaces.
pub fn is_web_url(text: &str) -> bool {
    !text.chars().any(char::is_whitespace)
        && url::Url::parse(text).is_ok_and(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|h| !h.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn lists_split_trim_and_strip() {
        let sent = OrderFields {
            usernames: lines(&["@alice\r\n  bob \n\n", "@carol"]),
            hashtags: lines(&["#one\n two"]),
            ..OrderFields::default()
        };
        let clean = check(ServiceType::MentionsWithHashtags, &sent).unwrap();
        assert_eq!(clean.usernames, lines(&["alice", "bob", "carol"]));
        assert_eq!(clean.hashtags, lines(&["one", "two"]));
    }

    #[test]
    fn keywords_split_on_commas() {
        let sent = OrderFields {
            keywords: lines(&["best pizza, cheap pizza\nnear me"]),
            ..OrderFields::default()
        };
        let clean = check(ServiceType::Seo, &sent).unwrap();
        assert_eq!(
            clean.keywords,
            lines(&["best pizza", "cheap pizza", "near me"])
        );
    }

    #[test]
    fn missing_extra_and_malformed_fields_are_named() {
        let sent = OrderFields {
            usernames: lines(&["a"]),
            answer_number: Some(0),
            ..OrderFields::default()
        };
        let problems = check(ServiceType::Poll, &sent).unwrap_err();
        assert_eq!(
            problems,
            vec![
                (
                    OrderField::Usernames,
                    FieldProblem::NotTaken {
                        kind: ServiceType::Poll
                    }
                ),
                (
                    OrderField::AnswerNumber,
                    FieldProblem::OutOfRange { min: 1, max: 1000 }
                ),
            ]
        );
        let problems = check(ServiceType::Poll, &OrderFields::default()).unwrap_err();
        assert_eq!(problems[0].0, OrderField::AnswerNumber);
    }

    #[test]
    fn list_bounds() {
        let many = vec!["x".to_string(); MAX_LIST_ITEMS + 1];
        let sent = OrderFields {
            groups: Some(many),
            ..OrderFields::default()
        };
        assert_eq!(
            check(ServiceType::InvitesFromGroups, &sent).unwrap_err()[0].1,
            FieldProblem::TooManyLines
        );
        let exactly = vec!["x".to_string(); MAX_LIST_ITEMS];
        let sent = OrderFields {
            groups: Some(exactly),
            ..OrderFields::default()
        };
        assert!(check(ServiceType::InvitesFromGroups, &sent).is_ok());
        // 60,000 characters joined: 59,999 + 1 line is just in, one more character is out.
        let long = |n: usize| OrderFields {
            groups: Some(vec!["a".repeat(n), "b".into()]),
            ..OrderFields::default()
        };
        assert!(check(ServiceType::InvitesFromGroups, &long(MAX_LIST_CHARS - 2)).is_ok());
        assert_eq!(
            check(ServiceType::InvitesFromGroups, &long(MAX_LIST_CHARS - 1)).unwrap_err()[0].1,
            FieldProblem::ListTooLong
        );
        let blank = OrderFields {
            groups: lines(&[" \n\r\n"]),
            ..OrderFields::default()
        };
        assert_eq!(
            check(ServiceType::InvitesFromGroups, &blank).unwrap_err()[0].1,
            FieldProblem::NoLines
        );
    }

    #[test]
    fn web_traffic_referrers_follow_the_traffic_type() {
        let base = OrderFields {
            country: Some("US".into()),
            device: Some(5),
            type_of_traffic: Some(1),
            ..OrderFields::default()
        };
        let problems = check(ServiceType::WebTraffic, &base).unwrap_err();
        assert_eq!(
            problems,
            vec![(
                OrderField::GoogleKeyword,
                FieldProblem::RequiredWithTraffic { traffic: 1 }
            )]
        );
        let with_referrer = OrderFields {
            type_of_traffic: Some(3),
            referring_url: Some("https://ref.example".into()),
            ..base.clone()
        };
        assert_eq!(
            check(ServiceType::WebTraffic, &with_referrer).unwrap_err(),
            vec![(
                OrderField::ReferringUrl,
                FieldProblem::OnlyWithTraffic { traffic: 2 }
            )]
        );
        let bad_url = OrderFields {
            type_of_traffic: Some(2),
            referring_url: Some("ftp://x".into()),
            ..base.clone()
        };
        assert_eq!(
            check(ServiceType::WebTraffic, &bad_url).unwrap_err()[0].1,
            FieldProblem::NotUrl
        );
        let device = OrderFields {
            device: Some(6),
            type_of_traffic: Some(3),
            ..base
        };
        assert_eq!(
            check(ServiceType::WebTraffic, &device).unwrap_err()[0],
            (
                OrderField::Device,
                FieldProblem::OutOfRange { min: 1, max: 5 }
            )
        );
    }

    #[test]
    fn single_fields_strip_their_mark() {
        let sent = OrderFields {
            username: Some(" @author ".into()),
            ..OrderFields::default()
        };
        let clean = check(ServiceType::CommentLikes, &sent).unwrap();
        assert_eq!(clean.username.as_deref(), Some("author"));
        let url = OrderFields {
            username: Some("https://instagram.com/author".into()),
            ..OrderFields::default()
        };
        let clean = check(ServiceType::MentionsUserFollowers, &url).unwrap();
        assert_eq!(
            clean.username.as_deref(),
            Some("https://instagram.com/author")
        );
        let hashtag = OrderFields {
            hashtag: Some("#sale".into()),
            ..OrderFields::default()
        };
        assert_eq!(
            check(ServiceType::MentionsHashtag, &hashtag)
                .unwrap()
                .hashtag
                .as_deref(),
            Some("sale")
        );
        let long = OrderFields {
            hashtag: Some("x".repeat(MAX_TEXT_CHARS + 1)),
            ..OrderFields::default()
        };
        assert!(check(ServiceType::MentionsHashtag, &long).is_err());
    }
}
