use chrono::NaiveDateTime;

use super::money::{least_charged_units, Money, Percent};
use super::order_fields::OrderField;
use super::string_enum;
use crate::domain::ids::{ProviderId, ServiceId};

string_enum! {
    /// How a service takes orders: the panel dialect's service types, in snake case (see
    /// docs/service-types.md). Drip-feed is not a type: it is the `dripfeed` flag of
    /// Default and Web Traffic services.
    ServiceType {
        Default => "default",
        Package => "package",
        Seo => "seo",
        CustomComments => "custom_comments",
        CustomCommentsPackage => "custom_comments_package",
        Mentions => "mentions",
        MentionsWithHashtags => "mentions_with_hashtags",
        MentionsCustomList => "mentions_custom_list",
        MentionsHashtag => "mentions_hashtag",
        MentionsUserFollowers => "mentions_user_followers",
        MentionsMediaLikers => "mentions_media_likers",
        CommentLikes => "comment_likes",
        CommentReplies => "comment_replies",
        Poll => "poll",
        InvitesFromGroups => "invites_from_groups",
        WebTraffic => "web_traffic",
        Subscriptions => "subscriptions",
    }
}

/// How an order of a type is counted and priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityRule {
    /// The client names the quantity; the rate is per 1000 units.
    PerThousand,
    /// The quantity is the number of lines of this list field; the rate is per 1000.
    CountOf(OrderField),
    /// One package at a flat price: the rate is the price, the quantity 1.
    Flat,
}

impl ServiceType {
    /// The dialect's spelling, as `services` answers it.
    pub fn panel_name(self) -> &'static str {
        use ServiceType::*;
        match self {
            Default => "Default",
            Package => "Package",
            Seo => "SEO",
            CustomComments => "Custom Comments",
            CustomCommentsPackage => "Custom Comments Package",
            Mentions => "Mentions",
            MentionsWithHashtags => "Mentions with Hashtags",
            MentionsCustomList => "Mentions Custom List",
            MentionsHashtag => "Mentions Hashtag",
            MentionsUserFollowers => "Mentions User Followers",
            MentionsMediaLikers => "Mentions Media Likers",
            CommentLikes => "Comment Likes",
            CommentReplies => "Comment Replies",
            Poll => "Poll",
            InvitesFromGroups => "Invites from Groups",
            WebTraffic => "Web Traffic",
            Subscriptions => "Subscriptions",
        }
    }

    pub fn quantity_rule(self) -> QuantityRule {
        use ServiceType::*;
        match self {
            Package | CustomCommentsPackage => QuantityRule::Flat,
            CustomComments | CommentReplies => QuantityRule::CountOf(OrderField::Comments),
            MentionsCustomList => QuantityRule::CountOf(OrderField::Usernames),
            Default
            | Seo
            | Mentions
            | MentionsWithHashtags
            | MentionsHashtag
            | MentionsUserFollowers
            | MentionsMediaLikers
            | CommentLikes
            | Poll
            | InvitesFromGroups
            | WebTraffic
            // A child order of a post is priced per 1000 units like any order.
            | Subscriptions => QuantityRule::PerThousand,
        }
    }

    pub fn is_flat(self) -> bool {
        self.quantity_rule() == QuantityRule::Flat
    }

    /// The fields an order of this type must carry besides its link (and quantity).
    pub fn required_fields(self) -> &'static [OrderField] {
        use OrderField as F;
        use ServiceType::*;
        match self {
            // Subscriptions take their own fields (`domain::subscription`), no order's.
            Default | Package | Subscriptions => &[],
            Seo => &[F::Keywords],
            CustomComments | CustomCommentsPackage => &[F::Comments],
            Mentions | MentionsCustomList => &[F::Usernames],
            MentionsWithHashtags => &[F::Usernames, F::Hashtags],
            MentionsHashtag => &[F::Hashtag],
            MentionsUserFollowers | CommentLikes => &[F::Username],
            MentionsMediaLikers => &[F::Media],
            CommentReplies => &[F::Username, F::Comments],
            Poll => &[F::AnswerNumber],
            InvitesFromGroups => &[F::Groups],
            WebTraffic => &[F::Country, F::Device, F::TypeOfTraffic],
        }
    }

    /// The fields an order of this type may carry, some only in some cases (Web Traffic:
    /// `google_keyword` with traffic type 1, `referring_url` with 2).
    pub fn optional_fields(self) -> &'static [OrderField] {
        match self {
            ServiceType::WebTraffic => &[OrderField::GoogleKeyword, OrderField::ReferringUrl],
            _ => &[],
        }
    }

    /// Whether a service of this type may offer drip-feed (`runs` and `interval`).
    pub fn takes_dripfeed(self) -> bool {
        matches!(self, ServiceType::Default | ServiceType::WebTraffic)
    }
}

/// A type word of a provider's catalog, read case-insensitively with spaces, `_` and `-`
/// ignored (`Default`, `default `, `custom_comments`, `Mentions with Hashtags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogType {
    Offered(ServiceType),
    /// Subscriptions: the dialect names them apart from the types orders take; synced as
    /// `subscriptions` services.
    Subscriptions,
    /// A word that is none of the dialect's types.
    Unknown,
}

impl CatalogType {
    /// Reads a type word; `dripfeed_word` is true for the legacy word `drip-feed`, which
    /// names Default with the flag.
    pub fn read(word: &str) -> (CatalogType, bool) {
        let folded: String = word
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        if folded.is_empty() {
            return (CatalogType::Offered(ServiceType::Default), false);
        }
        if folded == "dripfeed" {
            return (CatalogType::Offered(ServiceType::Default), true);
        }
        if folded == "subscriptions" || folded == "subscription" {
            return (CatalogType::Subscriptions, false);
        }
        let kind = ServiceType::ALL.iter().copied().find(|kind| {
            kind.as_str().replace('_', "") == folded
                || kind
                    .panel_name()
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .eq(folded.chars())
        });
        (
            kind.map_or(CatalogType::Unknown, CatalogType::Offered),
            false,
        )
    }
}

string_enum! {
    /// Disabled services take no new orders.
    ServiceStatus { Active => "active", Disabled => "disabled" }
}

/// The largest quantity a service may allow; keeps every charge far inside `i64` micros.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub struct Service {
    pub id: ServiceId,
    pub name: String,
    pub category: String,
    pub kind: ServiceType,
    /// Drip-feed offered (`runs` and `interval`): Default and Web Traffic only.
    pub dripfeed: bool,
    /// Price per 1000 units; for a flat-price type, the price of one order.
    pub rate: Money,
    pub min_quantity: i64,
    pub max_quantity: i64,
    pub refill: bool,
    /// Days after an order is placed during which a refill may be asked for.
    pub refill_days: i64,
    pub cancel: bool,
    pub status: ServiceStatus,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The upstream provider and the provider's own service id, for provider-backed services.
    pub provider: Option<(ProviderId, String)>,
    /// What the service delivers, for the reseller's eyes; `None` when not said.
    pub description: Option<String>,
    /// What a subscriptions service offers (posts bound, delays, old posts); the defaults
    /// on services of other types, where it means nothing.
    pub subscription: super::subscription::SubscriptionTerms,
}

/// Checks an order-size window: `1 <= min <= max <= MAX_QUANTITY`.
pub fn check_quantity_window(min: i64, max: i64) -> Result<(), (&'static str, String)> {
    if !(1..=MAX_QUANTITY).contains(&min) {
        return Err(("min", format!("must be between 1 and {MAX_QUANTITY}")));
    }
    if !(1..=MAX_QUANTITY).contains(&max) {
        return Err(("max", format!("must be between 1 and {MAX_QUANTITY}")));
    }
    if max < min {
        return Err(("max", "must not be less than min".into()));
    }
    Ok(())
}

/// The most characters of a service's description.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// A service's description: trimmed, 1 to [`MAX_DESCRIPTION_CHARS`] characters, on several
/// lines if need be (line breaks and tabs are its only control characters).
pub fn parse_description(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "must be at most {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("must not contain control characters other than line breaks and tabs".into());
    }
    Ok(text.to_string())
}

/// A provider's description made one of ours: other control characters dropped, cut to
/// [`MAX_DESCRIPTION_CHARS`]; `None` when nothing is left.
pub fn clean_description(raw: &str) -> Option<String> {
    let kept: String = raw
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .collect();
    let cut: String = kept.trim().chars().take(MAX_DESCRIPTION_CHARS).collect();
    parse_description(&cut).ok()
}

/// Checks what a type allows of a service: drip-feed only on the types that take it, and
/// a flat-price type sells one package, so its window is exactly 1.
pub fn check_type_shape(
    kind: ServiceType,
    dripfeed: bool,
    min: i64,
    max: i64,
) -> Result<(), (&'static str, String)> {
    if dripfeed && !kind.takes_dripfeed() {
        return Err((
            "dripfeed",
            format!("a {kind} service cannot offer drip-feed (only default and web_traffic can)"),
        ));
    }
    if kind.is_flat() && (min != 1 || max != 1) {
        return Err((
            if min != 1 { "min" } else { "max" },
            format!("must be 1: a {kind} service sells one package at a flat price (the rate)"),
        ));
    }
    Ok(())
}

/// Checks that the smallest order a service takes costs something at its rate: a
/// service is free only by an operator's choice (a rate of 0), never because `min × rate`
/// rounds below one micro-unit.
pub fn check_min_charge(rate: Money, min: i64) -> Result<(), (&'static str, String)> {
    let least = least_charged_units(rate);
    if min < least {
        return Err((
            "min",
            format!(
                "at a rate of {rate} per 1000, an order of {min} costs less than 0.000001; \
                 the least that costs something is {least} (or make the service free with a rate of 0)"
            ),
        ));
    }
    Ok(())
}

/// One service of a provider's catalog (`action=services`), read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The provider's own id for the service.
    pub provider_service_id: String,
    pub name: String,
    pub category: String,
    /// The type the word names; a type we do not offer is skipped, never guessed.
    pub kind: CatalogType,
    /// The type word as the provider sent it.
    pub type_word: String,
    /// The `dripfeed` flag (or the legacy type word `drip-feed`).
    pub dripfeed: bool,
    /// `desc` or `description`, when the entry has one.
    pub description: Option<String>,
    /// The provider's price per 1000 units (for a flat-price type, per package).
    pub rate: Money,
    pub min_quantity: i64,
    pub max_quantity: i64,
    /// `None` when the provider's entry has no `refill` key (many panels send none): an
    /// absent key says nothing, so it never turns off a flag an operator set.
    pub refill: Option<bool>,
    /// As `refill`, for the `cancel` key.
    pub cancel: Option<bool>,
}

/// A provider's rate with our markup, rounded half-up to micro-units.
pub fn marked_up(rate: Money, markup: Percent) -> Money {
    markup.added_to(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(micros: i64) -> Money {
        Money::try_from_micros(micros).unwrap()
    }

    fn p(micros: i64) -> Percent {
        Percent::try_from_micros(micros).unwrap()
    }

    #[test]
    fn markup_rounds_half_up_to_micros() {
        assert_eq!(marked_up(m(1_000_000), p(25_000_000)).micros(), 1_250_000);
        assert_eq!(marked_up(m(1), p(50_000_000)).micros(), 2);
        assert_eq!(marked_up(m(900_000), p(0)).micros(), 900_000);
        assert_eq!(marked_up(m(333_333), p(10_000_000)).micros(), 366_666);
    }
}
