//! The lifecycle log: each [`Told`] step a use case wrote, one info line
//! with plainly typed fields (strings, integers; lists comma-separated;
//! a field absent rather than empty).

use crate::core::effects::Told;

/// How a call's media flows, as far as this node knows: `relayed` (the
/// built-in relay or rtpengine), `direct`, or `None` (an external PBX).
pub(crate) fn media_path(mode: &str) -> Option<&'static str> {
    match mode {
        "builtin" | "rtpengine" => Some("relayed"),
        "off" => Some("direct"),
        _ => None,
    }
}

/// Milliseconds, saturating.
fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Logs `story` at info; `media` is [`media_path`]'s answer.
pub(crate) fn log(story: &[Told], media: impl Fn() -> Option<&'static str>) {
    for t in story {
        match t {
            Told::Paired {
                pair_id,
                names: [a, b],
                shared,
                kind,
            } => {
                let interests = (!shared.is_empty()).then(|| shared.join(","));
                tracing::info!(
                    pair_id = %pair_id,
                    user = %a,
                    peer = %b,
                    kind = kind.as_str(),
                    shared_interests = interests.as_deref(),
                    "paired"
                );
            }
            Told::CallStarted {
                pair_id,
                names: [a, b],
                setup,
            } => tracing::info!(
                pair_id = %pair_id,
                user = %a,
                peer = %b,
                setup_ms = ms(*setup),
                media = media(),
                "call set up"
            ),
            Told::PairEnded {
                pair_id,
                names: [a, b],
                reason,
                paired,
                call,
            } => match call {
                Some(call) => tracing::info!(
                    pair_id = %pair_id,
                    user = %a,
                    peer = %b,
                    reason = reason.as_str(),
                    duration_secs = call.as_secs(),
                    duration_ms = ms(*call),
                    paired_ms = ms(*paired),
                    media = media(),
                    "call ended"
                ),
                None => tracing::info!(
                    pair_id = %pair_id,
                    user = %a,
                    peer = %b,
                    reason = reason.as_str(),
                    paired_ms = ms(*paired),
                    "pair ended before a call"
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::media_path;

    #[test]
    fn media_path_names_only_what_the_node_knows() {
        assert_eq!(media_path("builtin"), Some("relayed"));
        assert_eq!(media_path("rtpengine"), Some("relayed"));
        assert_eq!(media_path("off"), Some("direct"));
        assert_eq!(media_path("none"), None);
    }
}
