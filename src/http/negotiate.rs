//! Which exposition format `/metrics` answers, from the request's `Accept` header.
//!
//! Prometheus' own client libraries answer the classic text format (0.0.4) unless the
//! client names OpenMetrics: Prometheus does, with a higher `q` than `text/plain`; curl
//! sends `*/*` and `promtool check metrics` reads only the classic format.

/// The two formats `/metrics` can answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Classic,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

/// How well one media range of an `Accept` header matches an offered type: its quality,
/// how specific the range is (`*/*` 0, `type/*` 1, `type/subtype` 2), and its position
/// (an earlier range wins a tie, as the client listed it first).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Match {
    quality: f32,
    specificity: u8,
    position: usize,
}

impl Match {
    /// Whether `self` beats `other` for the client: higher quality, then the more
    /// specific range, then the one listed first.
    fn beats(&self, other: &Match) -> bool {
        (
            self.quality,
            self.specificity,
            std::cmp::Reverse(self.position),
        ) > (
            other.quality,
            other.specificity,
            std::cmp::Reverse(other.position),
        )
    }
}

/// The format for the `Accept` header values of a request (several headers count as one
/// list). OpenMetrics only when the client names `application/openmetrics-text` itself,
/// acceptably (q > 0), and prefers it to what it says about `text/plain`; everything
/// else, no header included, gets the classic format.
pub fn format(accept: &[&str]) -> Format {
    let ranges: Vec<(usize, &str)> = accept
        .iter()
        .flat_map(|value| value.split(','))
        .enumerate()
        .collect();
    let openmetrics = best_match(&ranges, "application", "openmetrics-text");
    let classic = best_match(&ranges, "text", "plain");
    match (openmetrics, classic) {
        (Some(om), _) if om.specificity < 2 || om.quality <= 0.0 => Format::Classic,
        (Some(_), None) => Format::OpenMetrics,
        (Some(om), Some(text)) if om.beats(&text) => Format::OpenMetrics,
        _ => Format::Classic,
    }
}

/// The range that decides how acceptable `kind/subtype` is: the most specific one that
/// matches it (RFC 9110, 12.5.1), or `None` when no range matches.
fn best_match(ranges: &[(usize, &str)], kind: &str, subtype: &str) -> Option<Match> {
    let mut best: Option<Match> = None;
    for &(position, range) in ranges {
        let Some((specificity, quality)) = parse_range(range, kind, subtype) else {
            continue;
        };
        let candidate = Match {
            quality,
            specificity,
            position,
        };
        let replace = match best {
            None => true,
            // The more specific range decides; among equally specific ones, the best q.
            Some(b) => {
                specificity > b.specificity || (specificity == b.specificity && candidate.beats(&b))
            }
        };
        if replace {
            best = Some(candidate);
        }
    }
    best
}

/// `(specificity, q)` when `range` (`type/subtype;param=value;q=0.5`) matches
/// `kind/subtype`; `None` when it does not or cannot be read.
fn parse_range(range: &str, kind: &str, subtype: &str) -> Option<(u8, f32)> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim();
    let (range_kind, range_subtype) = media.split_once('/')?;
    let specificity = match (range_kind.trim(), range_subtype.trim()) {
        ("*", "*") => 0,
        (k, "*") if k.eq_ignore_ascii_case(kind) => 1,
        (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => 2,
        _ => return None,
    };
    let mut quality = 1.0;
    for param in parts {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("q")
        {
            quality = value
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q))?;
        }
    }
    Some((specificity, quality))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus 2's scrape header.
    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// Prometheus 3's default scrape protocols.
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    #[test]
    fn prometheus_gets_openmetrics() {
        assert_eq!(format(&[PROMETHEUS_2]), Format::OpenMetrics);
        assert_eq!(format(&[PROMETHEUS_3]), Format::OpenMetrics);
        assert_eq!(
            format(&["application/openmetrics-text"]),
            Format::OpenMetrics
        );
    }

    #[test]
    fn curl_a_browser_and_no_header_get_the_classic_format() {
        assert_eq!(format(&["*/*"]), Format::Classic);
        assert_eq!(format(&[]), Format::Classic);
        assert_eq!(format(&["text/plain"]), Format::Classic);
        assert_eq!(
            format(&["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"]),
            Format::Classic
        );
        assert_eq!(format(&["application/json"]), Format::Classic);
    }

    #[test]
    fn openmetrics_must_be_named_acceptable_and_preferred() {
        // Only through a wildcard: not asked for.
        assert_eq!(format(&["application/*"]), Format::Classic);
        // Named but refused.
        assert_eq!(
            format(&["application/openmetrics-text;q=0, */*"]),
            Format::Classic
        );
        // Named, but text/plain is preferred.
        assert_eq!(
            format(&["application/openmetrics-text;q=0.4,text/plain;q=0.9"]),
            Format::Classic
        );
        // Equal preference: the one listed first.
        assert_eq!(
            format(&["text/plain, application/openmetrics-text"]),
            Format::Classic
        );
        assert_eq!(
            format(&["application/openmetrics-text, text/plain"]),
            Format::OpenMetrics
        );
        // Preferred to what a wildcard says about text/plain.
        assert_eq!(
            format(&["*/*", "application/openmetrics-text"]),
            Format::OpenMetrics
        );
    }

    #[test]
    fn unreadable_ranges_are_ignored() {
        assert_eq!(
            format(&["application/openmetrics-text;q=high"]),
            Format::Classic
        );
        assert_eq!(format(&["garbage,;;,=,/"]), Format::Classic);
        assert_eq!(
            format(&["APPLICATION/OpenMetrics-Text ; q=1"]),
            Format::OpenMetrics
        );
    }
}
