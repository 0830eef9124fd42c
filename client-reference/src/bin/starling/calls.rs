//! `starling call` and `starling answer`: headless calls that publish
//! synthetic audio (and video) and print what they measured.

use starling_client::{CallOptions, CallReport, Client};

use crate::error::{Result, seconds};
use crate::output::Output;

fn report(out: Output, report: &CallReport) {
    out.print(report, || {
        format!(
            "call {} ended: {} participants, {} frames sent, {} received ({} without key, {} corrupt, {} refused; {} keys refused), loss {:.2}%, latency p50 {:.1} ms, p99 {:.1} ms",
            report.call_id.get(..8).unwrap_or(&report.call_id),
            report.participants,
            report.frames_sent,
            report.frames_received,
            report.frames_without_key,
            report.frames_corrupt,
            report.frames_refused,
            report.keys_refused,
            report.loss * 100.0,
            report.latency_p50_ms,
            report.latency_p99_ms,
        )
    });
}

/// Places a call and stays in it for `duration` seconds.
pub(crate) async fn call(
    client: &mut Client,
    with: &str,
    duration: f64,
    audio_only: bool,
    out: Output,
) -> Result<()> {
    let options = CallOptions {
        duration: seconds("--duration", duration)?,
        video: !audio_only,
    };
    let conversation = client.resolve(with).await?;
    let measured = client.place_call(&conversation, options).await?;
    report(out, &measured);
    Ok(())
}

/// Waits up to `wait` seconds for a call, answers it and stays `duration`.
pub(crate) async fn answer(
    client: &mut Client,
    wait: f64,
    duration: f64,
    audio_only: bool,
    out: Output,
) -> Result<()> {
    let wait = seconds("--wait", wait)?;
    let options = CallOptions {
        duration: seconds("--duration", duration)?,
        video: !audio_only,
    };
    let measured = client.answer_call(wait, options).await?;
    report(out, &measured);
    Ok(())
}
