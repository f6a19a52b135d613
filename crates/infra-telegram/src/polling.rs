//! Long polling: [`UpdateSource`] over `getUpdates`, for bots without a webhook.

use std::time::Duration;

use async_trait::async_trait;
use domain::bot::Update;
use domain::ports::{NotifyError, PollError, UpdateSource};
use reqwest::StatusCode;
use serde::Serialize;

use crate::notifier::TelegramNotifier;
use crate::webhook::ALLOWED_UPDATES;

/// Telegram's longest long poll, in seconds.
const MAX_WAIT_SECS: u64 = 50;

/// How much longer than the long poll itself a `getUpdates` may take on the wire.
const WIRE_ALLOWANCE: Duration = Duration::from_secs(10);

#[derive(Serialize)]
struct GetUpdates {
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    timeout: u64,
    allowed_updates: [&'static str; 3],
}

#[async_trait]
impl UpdateSource for TelegramNotifier {
    async fn next_updates(
        &self,
        offset: Option<i64>,
        wait: Duration,
    ) -> Result<Vec<Update>, PollError> {
        let timeout = wait.as_secs().min(MAX_WAIT_SECS);
        let request = GetUpdates {
            offset,
            timeout,
            allowed_updates: ALLOWED_UPDATES,
        };
        let updates: Vec<serde_json::Value> = self
            .call_waiting(
                "getUpdates",
                &request,
                Some(Duration::from_secs(timeout) + WIRE_ALLOWANCE),
            )
            .await
            .map_err(|failed| match (failed.status, failed.error) {
                (Some(StatusCode::CONFLICT), error) => PollError::Conflict(reason(error)),
                (_, NotifyError::Permanent { reason }) => PollError::Refused(reason),
                (
                    _,
                    NotifyError::RateLimited {
                        reason,
                        retry_after,
                    },
                ) => PollError::Unavailable {
                    reason,
                    retry_after: u64::try_from(retry_after.whole_seconds())
                        .ok()
                        .map(Duration::from_secs),
                },
                (
                    _,
                    NotifyError::Transient {
                        reason,
                        retry_after,
                    },
                ) => PollError::Unavailable {
                    reason,
                    retry_after: retry_after.and_then(|wait| {
                        u64::try_from(wait.whole_seconds())
                            .ok()
                            .map(Duration::from_secs)
                    }),
                },
            })?;
        // An update without an id cannot be confirmed or deduplicated: it is skipped, and
        // confirmed with the next one.
        Ok(updates.iter().filter_map(Update::from_json).collect())
    }
}

fn reason(error: NotifyError) -> String {
    match error {
        NotifyError::Permanent { reason }
        | NotifyError::RateLimited { reason, .. }
        | NotifyError::Transient { reason, .. } => reason,
    }
}
