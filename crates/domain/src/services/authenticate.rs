//! Authentication: an `Authorization` header's Telegram initData becomes a known
//! customer, onboarded on first sight and remembered for a few minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

use crate::auth::{AuthError, InitDataVerifier, VerifiedInitData, init_data_from_authorization};
use crate::entities::User;
use crate::error::RepositoryError;
use crate::ports::UserRepository;

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    #[error(transparent)]
    Rejected(#[from] AuthError),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Turns an `Authorization` header into a known customer, onboarding them on first sight.
///
/// Customers it has just seen, with the same profile, are answered from memory: the
/// upsert would change nothing, and skipping it saves a database write on every request.
#[derive(Clone)]
pub struct Authenticator {
    verifier: Arc<InitDataVerifier>,
    users: Arc<dyn UserRepository>,
    known: Arc<KnownUsers>,
}

/// How long a remembered customer is trusted without asking storage again.
const KNOWN_USER_TTL: Duration = Duration::minutes(5);
/// The most customers remembered: a few MB at most.
const KNOWN_USERS_MAX: usize = 20_000;

/// Recently upserted customers by Telegram id. Bounded in size and age.
///
/// Ages are measured with the `now` the caller passes (the request's time), never with a
/// clock of its own: a customer is remembered for [`KNOWN_USER_TTL`] after the `now` of
/// the write-through, and a `now` earlier than that (the wall clock stepped back) counts
/// as fresh.
///
/// A hit needs the same initData session (the same `auth_date`) as well as the same
/// profile: a new launch of the Mini App always writes through once, so a profile changed
/// meanwhile through another server instance is corrected at the next launch.
#[derive(Default)]
struct KnownUsers {
    users: Mutex<HashMap<i64, KnownUser>>,
}

struct KnownUser {
    user: User,
    auth_date: OffsetDateTime,
    seen: OffsetDateTime,
}

impl KnownUsers {
    fn get(&self, verified: &VerifiedInitData, now: OffsetDateTime) -> Option<User> {
        let users = self
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = users.get(&verified.user.id.get())?;
        let profile = &verified.user;
        let unchanged = known.auth_date == verified.auth_date
            && known.user.username == profile.username
            && known.user.first_name == profile.first_name
            && known.user.last_name == profile.last_name;
        (unchanged && is_fresh(known, now)).then(|| known.user.clone())
    }

    fn remember(&self, user: &User, auth_date: OffsetDateTime, now: OffsetDateTime) {
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if users.len() >= KNOWN_USERS_MAX {
            users.retain(|_, known| is_fresh(known, now));
            if users.len() >= KNOWN_USERS_MAX {
                users.clear();
            }
        }
        users.insert(
            user.telegram_id.get(),
            KnownUser {
                user: user.clone(),
                auth_date,
                seen: now,
            },
        );
    }
}

/// Whether `known` was written through less than [`KNOWN_USER_TTL`] before `now`.
fn is_fresh(known: &KnownUser, now: OffsetDateTime) -> bool {
    now - known.seen < KNOWN_USER_TTL
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(verifier: Arc<InitDataVerifier>, users: Arc<dyn UserRepository>) -> Self {
        Self {
            verifier,
            users,
            known: Arc::default(),
        }
    }

    /// Verifies the header's initData and upserts the user it names.
    ///
    /// The user's identity comes only from the verified `user` field. `now` is the
    /// request's time: it checks the initData's age, stamps the upsert and ages the
    /// known-customers memory.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<User, AuthenticateError> {
        let init_data = init_data_from_authorization(authorization)?;
        let verified = self.verifier.verify(init_data, now)?;
        if let Some(user) = self.known.get(&verified, now) {
            return Ok(user);
        }
        let user = self.users.upsert(&verified.user, now).await?;
        self.known.remember(&user, verified.auth_date, now);
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use mockall::predicate::always;

    use super::*;
    use crate::auth::DEFAULT_MAX_AGE;
    use crate::ports::MockUserRepository;
    use crate::values::{TelegramId, UserId};

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_766_400_000).unwrap()
    }

    fn customer() -> User {
        User {
            id: UserId(1),
            telegram_id: TelegramId::parse(987_654_321).unwrap(),
            username: None,
            first_name: Some("Иван".into()),
            last_name: None,
            created_at: now(),
            updated_at: now(),
        }
    }

    #[tokio::test]
    async fn authentication_upserts_the_verified_user_only() {
        let verifier = Arc::new(InitDataVerifier::new("1:T", DEFAULT_MAX_AGE));
        let auth_date = now().unix_timestamp().to_string();
        let header = format!(
            "tma {}",
            verifier.sign(&[
                ("auth_date", &auth_date),
                ("user", r#"{"id":987654321,"first_name":"Иван"}"#)
            ])
        );
        let mut users = MockUserRepository::new();
        users
            .expect_upsert()
            .withf(|profile, _| profile.id.get() == 987_654_321)
            .times(1)
            .returning(|_, _| Ok(customer()));
        let auth = Authenticator::new(verifier, Arc::new(users));
        let user = auth.authenticate(Some(&header), now()).await.unwrap();
        assert_eq!(user.id, UserId(1));
    }

    #[tokio::test]
    async fn a_returning_customer_with_the_same_profile_skips_the_upsert() {
        let verifier = Arc::new(InitDataVerifier::new("1:T", DEFAULT_MAX_AGE));
        let auth_date = now().unix_timestamp().to_string();
        let header = |name: &str| {
            let user = format!(r#"{{"id":987654321,"first_name":"{name}"}}"#);
            format!(
                "tma {}",
                verifier.sign(&[("auth_date", &auth_date), ("user", &user)])
            )
        };
        let mut users = MockUserRepository::new();
        users.expect_upsert().times(2).returning(|profile, _| {
            Ok(User {
                first_name: profile.first_name.clone(),
                ..customer()
            })
        });
        let auth = Authenticator::new(verifier.clone(), Arc::new(users));
        for _ in 0..3 {
            let user = auth
                .authenticate(Some(&header("Иван")), now())
                .await
                .unwrap();
            assert_eq!(user.first_name.as_deref(), Some("Иван"));
        }
        // A changed name is written through at once.
        let user = auth
            .authenticate(Some(&header("Ваня")), now())
            .await
            .unwrap();
        assert_eq!(user.first_name.as_deref(), Some("Ваня"));
    }

    #[tokio::test]
    async fn a_remembered_customer_is_written_through_again_after_five_minutes() {
        let verifier = Arc::new(InitDataVerifier::new("1:T", DEFAULT_MAX_AGE));
        let auth_date = now().unix_timestamp().to_string();
        let header = format!(
            "tma {}",
            verifier.sign(&[
                ("auth_date", &auth_date),
                ("user", r#"{"id":987654321,"first_name":"Иван"}"#)
            ])
        );
        let mut users = MockUserRepository::new();
        // At 0 s, then again at 5 min (the memory expired), not at 4 min 59 s.
        users
            .expect_upsert()
            .withf(|_, at| [now(), now() + Duration::minutes(5)].contains(at))
            .times(2)
            .returning(|_, _| Ok(customer()));
        let auth = Authenticator::new(verifier, Arc::new(users));
        for elapsed in [
            Duration::ZERO,
            Duration::seconds(299),
            Duration::minutes(5),
            Duration::seconds(301),
        ] {
            auth.authenticate(Some(&header), now() + elapsed)
                .await
                .unwrap();
        }
    }

    #[test]
    fn a_full_memory_forgets_stale_customers_first() {
        let known = KnownUsers::default();
        let user = |telegram_id: i64| User {
            telegram_id: TelegramId::parse(telegram_id).unwrap(),
            ..customer()
        };
        // Full: half of it seen long ago, half just now.
        for telegram_id in 1..=KNOWN_USERS_MAX as i64 {
            let seen = if telegram_id % 2 == 0 {
                now()
            } else {
                now() - Duration::hours(1)
            };
            known.remember(&user(telegram_id), now(), seen);
        }
        known.remember(&user(1_000_000), now(), now());
        let users = known.users.lock().unwrap();
        assert_eq!(users.len(), KNOWN_USERS_MAX / 2 + 1, "the stale half went");
        assert!(users.contains_key(&2) && users.contains_key(&1_000_000));
        assert!(!users.contains_key(&1));
    }

    #[tokio::test]
    async fn rejected_init_data_never_reaches_the_repository() {
        let verifier = Arc::new(InitDataVerifier::new("1:T", DEFAULT_MAX_AGE));
        let mut users = MockUserRepository::new();
        users.expect_upsert().with(always(), always()).times(0);
        let auth = Authenticator::new(verifier, Arc::new(users));
        let result = auth
            .authenticate(Some("tma user=%7B%7D&hash=00"), now())
            .await;
        assert!(matches!(
            result,
            Err(AuthenticateError::Rejected(AuthError::InvalidHashFormat))
        ));
    }
}
