//! How the order service's notifications are delivered.

use std::sync::Arc;

use async_trait::async_trait;
use domain::ports::{Notifier, NotifyError, OrderPlaced};

/// Delivers through the inner notifier on a background task, so the customer's request
/// never waits on Telegram and a Telegram failure never fails the order. Failures are
/// logged here, once.
#[derive(Clone)]
pub struct BackgroundNotifier {
    inner: Arc<dyn Notifier>,
}

impl std::fmt::Debug for BackgroundNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundNotifier").finish_non_exhaustive()
    }
}

impl BackgroundNotifier {
    pub fn new(inner: Arc<dyn Notifier>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl Notifier for BackgroundNotifier {
    async fn order_placed(&self, notification: &OrderPlaced) -> Result<(), NotifyError> {
        let inner = Arc::clone(&self.inner);
        let notification = notification.clone();
        tokio::spawn(async move {
            let order_id = notification.order.id.0;
            match inner.order_placed(&notification).await {
                Ok(()) => tracing::info!(order_id, "manager notified of new order"),
                Err(error) => {
                    tracing::error!(order_id, %error, "could not notify the manager of a new order")
                }
            }
        });
        Ok(())
    }
}

/// Used when notifications are off (DEBUG=true without a token or chat): the order stands
/// and the log says that nobody was told.
#[derive(Debug, Clone, Copy)]
pub struct DisabledNotifier;

#[async_trait]
impl Notifier for DisabledNotifier {
    async fn order_placed(&self, notification: &OrderPlaced) -> Result<(), NotifyError> {
        tracing::info!(
            order_id = notification.order.id.0,
            "notifications are off: the manager was not told"
        );
        Ok(())
    }
}
