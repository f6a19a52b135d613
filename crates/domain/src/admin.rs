//! Who runs the shop: the admin API's callers, and what they see of orders and of each
//! other's changes.
//!
//! An admin is a person whose verified Telegram id is in `ADMIN_TELEGRAM_IDS` (the same
//! initData as customers send, `Authorization: tma …`), or a program holding
//! `ADMIN_API_TOKEN` (`Authorization: Bearer …`). Every admin change is recorded in the
//! audit log, in the transaction of the change, naming who made it.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::auth::{AuthError, InitDataVerifier, constant_time_eq, init_data_from_authorization};
use crate::entities::{Order, OrderStatus, User};
use crate::lifecycle::{ChangedBy, StatusHistoryEntry};
use crate::settings::InvalidSetting;
use crate::values::TelegramId;

/// Someone allowed to run the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Admin {
    /// A person, by the Telegram id their initData proved.
    Person(TelegramId),
    /// A program holding `ADMIN_API_TOKEN`.
    ApiToken,
    /// An operator at the server's command line (`server catalog import`).
    Operator,
}

/// The audit log's name for [`Admin::ApiToken`].
pub const API_TOKEN_ACTOR: &str = "api-token";

impl Admin {
    /// How the audit log names them: the Telegram id, `api-token`, or `cli`.
    pub fn actor(&self) -> String {
        match self {
            Admin::Person(id) => id.get().to_string(),
            Admin::ApiToken => API_TOKEN_ACTOR.to_owned(),
            Admin::Operator => "cli".to_owned(),
        }
    }

    /// Who an order's history says changed it: a person is a manager; a program (a
    /// delivery service, a CRM) is the system.
    pub fn changed_by(&self) -> ChangedBy {
        match self {
            Admin::Person(id) => ChangedBy::Manager(*id),
            Admin::ApiToken | Admin::Operator => ChangedBy::System,
        }
    }

    /// The key the admin API's rate limit counts them under (Telegram ids are positive,
    /// so 0 is free for the token).
    pub fn rate_key(&self) -> i64 {
        match self {
            Admin::Person(id) => id.get(),
            Admin::ApiToken | Admin::Operator => 0,
        }
    }
}

/// The shortest `ADMIN_API_TOKEN` accepted, in characters.
pub const MIN_API_TOKEN_CHARS: usize = 32;

/// `ADMIN_API_TOKEN`: a secret of at least [`MIN_API_TOKEN_CHARS`] visible ASCII
/// characters. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// # Errors
    /// Naming `ADMIN_API_TOKEN` (never its value) when it is too short or holds anything
    /// but visible ASCII.
    pub fn new(token: &str) -> Result<Self, InvalidSetting> {
        if token.chars().count() < MIN_API_TOKEN_CHARS {
            return Err(InvalidSetting::new(
                "ADMIN_API_TOKEN",
                format!("must be at least {MIN_API_TOKEN_CHARS} characters"),
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidSetting::new(
                "ADMIN_API_TOKEN",
                "must be visible ASCII characters (no spaces)",
            ));
        }
        Ok(Self(token.to_owned()))
    }

    /// Whether `candidate` is this token, compared in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(candidate.as_bytes(), self.0.as_bytes())
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// Why a caller of the admin API was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminAuthError {
    /// No valid credentials: 401.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// A valid customer who is not an admin: 403.
    #[error("this Telegram user is not an admin of the shop")]
    Forbidden,
}

/// Decides who an admin API request comes from.
#[derive(Clone)]
pub struct AdminAuthenticator {
    verifier: Arc<InitDataVerifier>,
    admins: Vec<TelegramId>,
    token: Option<ApiToken>,
}

impl fmt::Debug for AdminAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminAuthenticator")
            .field("admins", &self.admins.len())
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl AdminAuthenticator {
    pub fn new(
        verifier: Arc<InitDataVerifier>,
        admins: Vec<TelegramId>,
        token: Option<ApiToken>,
    ) -> Self {
        Self {
            verifier,
            admins,
            token,
        }
    }

    /// The admin behind an `Authorization` header: `Bearer <ADMIN_API_TOKEN>`, or
    /// `tma <initData>` of a Telegram user in `ADMIN_TELEGRAM_IDS`.
    ///
    /// # Errors
    /// [`AdminAuthError::Unauthorized`] for missing or invalid credentials (a wrong token,
    /// or a token when none is configured, is [`AuthError::InvalidApiToken`]);
    /// [`AdminAuthError::Forbidden`] for a valid customer who is not an admin.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Admin, AdminAuthError> {
        let header = authorization.ok_or(AuthError::MissingAuthorization)?;
        let header = header.trim();
        let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return match &self.token {
                Some(expected) if expected.matches(token.trim()) => Ok(Admin::ApiToken),
                _ => Err(AuthError::InvalidApiToken.into()),
            };
        }
        let init_data = init_data_from_authorization(Some(header))?;
        let verified = self.verifier.verify(init_data, now)?;
        let id = verified.user.id;
        if self.admins.contains(&id) {
            Ok(Admin::Person(id))
        } else {
            Err(AdminAuthError::Forbidden)
        }
    }
}

/// Which orders the admin list shows: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    /// Created at or after.
    pub created_from: Option<OffsetDateTime>,
    /// Created before.
    pub created_to: Option<OffsetDateTime>,
    /// The customer's Telegram id.
    pub customer: Option<TelegramId>,
}

/// One order as the admin sees it: its lines, its customer and its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDetails {
    pub order: Order,
    pub customer: User,
    pub history: Vec<StatusHistoryEntry>,
}

/// One recorded admin change.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: OffsetDateTime,
    /// [`Admin::actor`].
    pub actor: String,
    /// What was done, such as `order.status`.
    pub action: String,
    /// What it was done to (`order`) and its id.
    pub entity: String,
    pub entity_id: String,
    /// The fields it changed, before and after (JSON objects).
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// Which audit entries to list: every condition given must hold. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn authenticator(token: Option<&str>) -> (AdminAuthenticator, Arc<InitDataVerifier>) {
        let verifier = Arc::new(InitDataVerifier::new("123:TEST", time::Duration::hours(1)));
        let admins = vec![TelegramId::parse(42).unwrap()];
        let token = token.map(|t| ApiToken::new(t).unwrap());
        (
            AdminAuthenticator::new(Arc::clone(&verifier), admins, token),
            verifier,
        )
    }

    fn tma(verifier: &InitDataVerifier, id: i64, now: OffsetDateTime) -> String {
        let user = format!(r#"{{"id":{id},"first_name":"A"}}"#);
        let auth_date = now.unix_timestamp().to_string();
        format!(
            "tma {}",
            verifier.sign(&[("auth_date", auth_date.as_str()), ("user", user.as_str())])
        )
    }

    #[test]
    fn admins_are_the_listed_people_and_the_token_holder() {
        let now = OffsetDateTime::now_utc();
        let (admins, verifier) = authenticator(Some(TOKEN));
        assert_eq!(
            admins.authenticate(Some(&tma(&verifier, 42, now)), now),
            Ok(Admin::Person(TelegramId::parse(42).unwrap()))
        );
        assert_eq!(
            admins.authenticate(Some(&tma(&verifier, 7, now)), now),
            Err(AdminAuthError::Forbidden)
        );
        assert_eq!(
            admins.authenticate(Some(&format!("Bearer {TOKEN}")), now),
            Ok(Admin::ApiToken)
        );
        assert_eq!(
            admins.authenticate(Some(&format!("bearer  {TOKEN} ")), now),
            Ok(Admin::ApiToken)
        );
        for wrong in ["Bearer nope", &format!("Bearer {TOKEN}x"), "Bearer "] {
            assert_eq!(
                admins.authenticate(Some(wrong), now),
                Err(AdminAuthError::Unauthorized(AuthError::InvalidApiToken)),
                "{wrong}"
            );
        }
        assert_eq!(
            admins.authenticate(None, now),
            Err(AdminAuthError::Unauthorized(
                AuthError::MissingAuthorization
            ))
        );
        let forged = tma(&verifier, 42, now).replace("42", "43");
        assert!(matches!(
            admins.authenticate(Some(&forged), now),
            Err(AdminAuthError::Unauthorized(_))
        ));
        // Without a configured token, no Bearer is an admin.
        let (no_token, _) = authenticator(None);
        assert_eq!(
            no_token.authenticate(Some(&format!("Bearer {TOKEN}")), now),
            Err(AdminAuthError::Unauthorized(AuthError::InvalidApiToken))
        );
    }

    #[test]
    fn a_token_is_long_visible_and_never_printed() {
        assert!(ApiToken::new("short").is_err());
        assert!(ApiToken::new(&format!("{TOKEN} with space")).is_err());
        let token = ApiToken::new(TOKEN).unwrap();
        assert!(!format!("{token:?}").contains(TOKEN));
        let error = ApiToken::new("tiny-secret").unwrap_err().to_string();
        assert!(error.contains("ADMIN_API_TOKEN") && !error.contains("tiny-secret"));
    }

    #[test]
    fn the_token_is_the_system_in_history_and_api_token_in_the_audit() {
        assert_eq!(Admin::ApiToken.changed_by(), ChangedBy::System);
        assert_eq!(Admin::ApiToken.actor(), "api-token");
        let person = Admin::Person(TelegramId::parse(42).unwrap());
        assert_eq!(person.actor(), "42");
        assert_eq!(
            person.changed_by(),
            ChangedBy::Manager(TelegramId::parse(42).unwrap())
        );
    }
}
