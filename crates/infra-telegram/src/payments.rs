//! Telegram's payment calls: `createInvoiceLink` and `answerPreCheckoutQuery` (the
//! [`PaymentGateway`] port), and `refundStarPayment` (delivered by the outbox relay, see
//! [`TelegramNotifier::refund_star_payment`]).
//!
//! Amounts go to Telegram as integers in the currency's smallest units, exactly as the
//! order stored them (whole stars for `XTR`); the provider token (`PAYMENT_PROVIDER_TOKEN`)
//! is sent only for a provider's currency, never for Stars.

use async_trait::async_trait;
use domain::payments::{InvoiceRequest, PaymentGateway};
use domain::ports::NotifyError;
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::notifier::TelegramNotifier;

#[derive(Serialize)]
struct CreateInvoiceLink<'a> {
    title: String,
    description: String,
    payload: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_token: Option<&'a str>,
    currency: &'a str,
    prices: [LabeledPrice; 1],
}

#[derive(Serialize)]
struct LabeledPrice {
    label: String,
    amount: i64,
}

#[derive(Serialize)]
struct AnswerPreCheckoutQuery<'a> {
    pre_checkout_query_id: &'a str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
}

#[derive(Serialize)]
struct RefundStarPayment<'a> {
    user_id: i64,
    telegram_payment_charge_id: &'a str,
}

/// The invoice's title (Telegram allows 1–32 characters) and description (1–255).
fn invoice_texts(request: &InvoiceRequest) -> (String, String) {
    (
        format!("Заказ #{}", request.order_id),
        format!(
            "Оплата заказа #{} ({})",
            request.order_id,
            request.due.display()
        ),
    )
}

#[async_trait]
impl PaymentGateway for TelegramNotifier {
    async fn create_invoice_link(&self, request: &InvoiceRequest) -> Result<String, NotifyError> {
        let (title, description) = invoice_texts(request);
        let provider_token = if request.due.currency.is_stars() {
            None
        } else {
            Some(
                self.payment_provider_token()
                    .ok_or_else(|| NotifyError::Permanent {
                        reason: "PAYMENT_PROVIDER_TOKEN is not set".into(),
                    })?
                    .expose_secret(),
            )
        };
        let body = CreateInvoiceLink {
            title: title.clone(),
            description,
            payload: &request.payload,
            provider_token,
            currency: request.due.currency.code(),
            prices: [LabeledPrice {
                label: title,
                amount: request.due.amount,
            }],
        };
        self.call("createInvoiceLink", &body).await
    }

    async fn answer_pre_checkout(
        &self,
        query_id: &str,
        error_message: Option<String>,
    ) -> Result<(), NotifyError> {
        let body = AnswerPreCheckoutQuery {
            pre_checkout_query_id: query_id,
            ok: error_message.is_none(),
            error_message: error_message.as_deref(),
        };
        let _: bool = self.call("answerPreCheckoutQuery", &body).await?;
        Ok(())
    }
}

impl TelegramNotifier {
    /// `refundStarPayment`. A payment Telegram says is refunded already counts as done, so
    /// the relay's redelivery of a refund is harmless.
    ///
    /// # Errors
    /// Telegram's refusal, or a network failure.
    pub async fn refund_star_payment(
        &self,
        user_id: i64,
        telegram_payment_charge_id: &str,
    ) -> Result<(), NotifyError> {
        let body = RefundStarPayment {
            user_id,
            telegram_payment_charge_id,
        };
        match self.call::<bool>("refundStarPayment", &body).await {
            Ok(_) => Ok(()),
            Err(NotifyError::Permanent { reason })
                if reason.contains("CHARGE_ALREADY_REFUNDED") =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}
