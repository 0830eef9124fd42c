//! Reading values from a Prometheus / OpenMetrics text exposition (the
//! server's and the media relay's `/metrics`).

/// The value of the series `name` in `exposition`, summed over its label
/// sets; `None` if no such series is there. Counters carry their `_total`
/// suffix in the name: `value(text, "starling_envelopes_stored_total")`.
pub fn value(exposition: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in exposition.lines() {
        if line.starts_with('#') {
            continue;
        }
        let series = line
            .split(|c: char| c == '{' || c.is_whitespace())
            .next()
            .unwrap_or_default();
        if series != name {
            continue;
        }
        // `name{labels} value [timestamp]`: the value follows the labels.
        let after_labels = line.rsplit_once('}').map_or(line, |(_, rest)| rest);
        let Some(value) = after_labels
            .split_whitespace()
            .find(|token| *token != name)
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        *found.get_or_insert(0.0) += value;
    }
    found
}

/// The scraper's token the end-to-end tests start the server and the
/// media relay with (`STARLING_METRICS_TOKEN`,
/// `STARLING_RELAY_METRICS_TOKEN`).
pub const TEST_TOKEN: &str = "e2e-metrics-token";

/// Fetches `url` (a `/metrics` endpoint, TLS certificates unchecked) with
/// the [`TEST_TOKEN`] and returns its text; `Err` if it cannot be fetched.
pub async fn scrape(url: &str) -> Result<String, reqwest::Error> {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?;
    client
        .get(url)
        .bearer_auth(TEST_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

#[cfg(test)]
mod tests {
    use super::value;

    #[test]
    fn reads_gauges_counters_and_labelled_series() {
        let text = "# HELP starling_relay_participants Participants now\n\
                    # TYPE starling_relay_participants gauge\n\
                    starling_relay_participants 2\n\
                    starling_relay_forwarded_packets_total 1234\n\
                    starling_drops_total{reason=\"late\"} 3\n\
                    starling_drops_total{reason=\"unknown ssrc\"} 4\n\
                    # EOF\n";
        assert_eq!(value(text, "starling_relay_participants"), Some(2.0));
        assert_eq!(
            value(text, "starling_relay_forwarded_packets_total"),
            Some(1234.0)
        );
        assert_eq!(value(text, "starling_drops_total"), Some(7.0));
        assert_eq!(value(text, "starling_relay"), None);
    }
}
