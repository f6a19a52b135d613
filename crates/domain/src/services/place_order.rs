//! Placing an order: idempotent with a key, admitted by the caller, and announced to the
//! manager through the outbox.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::entities::{Order, User};
use crate::error::RepositoryError;
use crate::idempotency::{IdempotencyKey, KeyClaim, RequestFingerprint, StoredResponse};
use crate::order::{NewOrder, OrderDraft, PlaceOrderError};
use crate::ports::{IdempotencyStore, OrderRepository};

/// Places orders. The manager is told through the outbox: placement writes the event in
/// the order's transaction, and the relay delivers it.
#[derive(Clone)]
pub struct OrderService {
    orders: Arc<dyn OrderRepository>,
    idempotency: Arc<dyn IdempotencyStore>,
    relay_wake: Arc<tokio::sync::Notify>,
    payment_terms: crate::payments::PaymentTerms,
}

/// An idempotency key with the fingerprint of the request that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRequest {
    pub key: IdempotencyKey,
    pub fingerprint: RequestFingerprint,
}

/// How a placement request was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A new order. With a key, store the response with [`OrderService::remember`].
    Placed(Order),
    /// The same request was answered before: send this response again, marked replayed.
    Replayed(StoredResponse),
    /// The same request placed this order before, but its response was lost: answer from
    /// the order, marked replayed, and store the response with [`OrderService::remember`].
    Recovered(Order),
}

impl std::fmt::Debug for OrderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderService").finish_non_exhaustive()
    }
}

impl OrderService {
    /// `relay_wake` is the relay's wake-up: notified after each commit so the manager's
    /// message goes out at once rather than at the relay's next poll.
    pub fn new(
        orders: Arc<dyn OrderRepository>,
        idempotency: Arc<dyn IdempotencyStore>,
        relay_wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            orders,
            idempotency,
            relay_wake,
            payment_terms: crate::payments::PaymentTerms::default(),
        }
    }

    /// Orders are to be paid online under `terms` (`PAYMENTS`); by default they are not.
    pub fn with_payment_terms(mut self, terms: crate::payments::PaymentTerms) -> Self {
        self.payment_terms = terms;
        self
    }

    /// Prices and stores the order with its notification event, then wakes the relay.
    ///
    /// The customer never waits on Telegram, and a Telegram failure can never fail or roll
    /// back an order: delivery happens later, durably, in the relay.
    ///
    /// With a key, a retry of the same request places nothing new: it gets the first
    /// answer back ([`Placement::Replayed`] or [`Placement::Recovered`]). A request that
    /// fails without placing an order releases its key, so the client may retry with it.
    ///
    /// `admit` is asked only before a NEW placement (a rate limit, say): a retry answered
    /// from its key is never refused by it, and never counts against it.
    ///
    /// # Errors
    /// As [`OrderRepository::place`], plus [`PlaceOrderError::IdempotencyKeyInUse`] while
    /// the key's first request runs, [`PlaceOrderError::IdempotencyKeyReused`] when the
    /// key was used for a different request, and [`PlaceOrderError::NotAdmitted`] when
    /// `admit` refuses.
    pub async fn place(
        &self,
        customer: &User,
        draft: OrderDraft,
        key: Option<KeyedRequest>,
        now: OffsetDateTime,
        admit: impl FnOnce() -> Result<(), std::time::Duration>,
    ) -> Result<Placement, PlaceOrderError> {
        let Some(KeyedRequest { key, fingerprint }) = key else {
            admit().map_err(PlaceOrderError::NotAdmitted)?;
            return self
                .place_new(customer, draft, None, now)
                .await
                .map(Placement::Placed);
        };
        match self
            .idempotency
            .claim(customer.id, &key, fingerprint, now)
            .await?
        {
            KeyClaim::Claimed => {}
            KeyClaim::Replay(response) => return Ok(Placement::Replayed(response)),
            KeyClaim::OrderPlaced(order_id) => {
                return match self.orders.find_for_user(customer.id, order_id).await? {
                    Some(order) => Ok(Placement::Recovered(order)),
                    None => Err(RepositoryError::Unknown(anyhow::anyhow!(
                        "idempotency key points at order {order_id}, which does not exist"
                    ))
                    .into()),
                };
            }
            KeyClaim::InProgress => return Err(PlaceOrderError::IdempotencyKeyInUse),
            KeyClaim::Mismatch => return Err(PlaceOrderError::IdempotencyKeyReused),
        }
        let placed = match admit() {
            Ok(()) => {
                self.place_new(customer, draft, Some(key.clone()), now)
                    .await
            }
            Err(retry_after) => Err(PlaceOrderError::NotAdmitted(retry_after)),
        };
        match placed {
            Ok(order) => Ok(Placement::Placed(order)),
            Err(error) => {
                // Nothing was placed: free the key for a corrected retry. If this fails the
                // key's claim simply runs out (IN_PROGRESS_LEASE).
                if let Err(release) = self.idempotency.release(customer.id, &key).await {
                    tracing::warn!(error = %release, "could not release an idempotency key");
                }
                Err(error)
            }
        }
    }

    /// Stores the response to a keyed placement, for replay.
    pub async fn remember(
        &self,
        customer: &User,
        key: &IdempotencyKey,
        response: StoredResponse,
    ) -> Result<(), RepositoryError> {
        self.idempotency.complete(customer.id, key, response).await
    }

    async fn place_new(
        &self,
        customer: &User,
        draft: OrderDraft,
        idempotency_key: Option<IdempotencyKey>,
        now: OffsetDateTime,
    ) -> Result<Order, PlaceOrderError> {
        let order = self
            .orders
            .place(NewOrder {
                user_id: customer.id,
                draft,
                placed_at: now,
                idempotency_key,
                payment_terms: self.payment_terms,
            })
            .await?;
        self.relay_wake.notify_one();
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::{OrderItem, OrderStatus};
    use crate::money::Money;
    use crate::order::{OrderInput, OrderLineInput};
    use crate::ports::{MockIdempotencyStore, MockOrderRepository};
    use crate::values::{OrderId, ProductId, TelegramId, UserId};

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

    fn draft() -> OrderDraft {
        OrderDraft::parse(OrderInput {
            items: vec![OrderLineInput {
                product_id: 1,
                quantity: 2,
            }],
            delivery_address: "ул. Пушкина, д. 10".into(),
            phone: "+79001234567".into(),
            comment: None,
        })
        .unwrap()
    }

    fn stored(new: &NewOrder) -> Order {
        Order {
            payment: Default::default(),
            id: OrderId(123),
            user_id: new.user_id,
            status: OrderStatus::Pending,
            total_amount: Money::from_minor(50_000).unwrap(),
            delivery_address: new.draft.delivery_address().as_str().into(),
            phone: new.draft.phone().as_str().into(),
            comment: None,
            created_at: new.placed_at,
            updated_at: new.placed_at,
            items: vec![OrderItem {
                product_id: ProductId(1),
                product_name: "Товар 1".into(),
                quantity: 2,
                price: Money::from_minor(25_000).unwrap(),
            }],
        }
    }

    #[tokio::test]
    async fn placement_wakes_the_relay_after_the_commit() {
        let mut orders = MockOrderRepository::new();
        orders
            .expect_place()
            .times(1)
            .returning(|new| Ok(stored(&new)));
        let wake = Arc::new(tokio::sync::Notify::new());
        let service = OrderService::new(
            Arc::new(orders),
            Arc::new(MockIdempotencyStore::new()),
            wake.clone(),
        );

        let placement = service
            .place(&customer(), draft(), None, now(), || Ok(()))
            .await
            .unwrap();
        assert!(matches!(placement, Placement::Placed(order) if order.id == OrderId(123)));
        // notify_one stores a permit, so this resolves only if the service notified.
        tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified())
            .await
            .expect("the relay was not woken");
    }

    #[tokio::test]
    async fn a_failed_placement_does_not_wake_the_relay() {
        let mut orders = MockOrderRepository::new();
        orders
            .expect_place()
            .returning(|_| Err(PlaceOrderError::ProductNotFound(vec![ProductId(1)])));
        let wake = Arc::new(tokio::sync::Notify::new());
        let service = OrderService::new(
            Arc::new(orders),
            Arc::new(MockIdempotencyStore::new()),
            wake.clone(),
        );
        assert!(matches!(
            service
                .place(&customer(), draft(), None, now(), || Ok(()))
                .await,
            Err(PlaceOrderError::ProductNotFound(_))
        ));
        let woken =
            tokio::time::timeout(std::time::Duration::from_millis(1), wake.notified()).await;
        assert!(
            woken.is_err(),
            "the relay must not be woken for an order that was not stored"
        );
    }

    fn keyed() -> KeyedRequest {
        KeyedRequest {
            key: IdempotencyKey::parse("checkout-1").unwrap(),
            fingerprint: RequestFingerprint::of(b"body"),
        }
    }

    fn keyed_service(orders: MockOrderRepository, store: MockIdempotencyStore) -> OrderService {
        OrderService::new(
            Arc::new(orders),
            Arc::new(store),
            Arc::new(tokio::sync::Notify::new()),
        )
    }

    #[tokio::test]
    async fn a_claimed_key_is_attached_to_the_order_in_its_transaction() {
        let mut store = MockIdempotencyStore::new();
        store
            .expect_claim()
            .times(1)
            .returning(|_, _, _, _| Ok(KeyClaim::Claimed));
        let mut orders = MockOrderRepository::new();
        orders
            .expect_place()
            .withf(|new| {
                new.idempotency_key.as_ref().map(IdempotencyKey::as_str) == Some("checkout-1")
            })
            .times(1)
            .returning(|new| Ok(stored(&new)));
        let placement = keyed_service(orders, store)
            .place(&customer(), draft(), Some(keyed()), now(), || Ok(()))
            .await
            .unwrap();
        assert!(matches!(placement, Placement::Placed(_)));
    }

    #[tokio::test]
    async fn a_finished_request_is_replayed_without_placing_anything() {
        let mut store = MockIdempotencyStore::new();
        store.expect_claim().returning(|_, _, _, _| {
            Ok(KeyClaim::Replay(StoredResponse {
                status: 201,
                body: b"{\"id\":123}".to_vec(),
            }))
        });
        let mut orders = MockOrderRepository::new();
        orders.expect_place().times(0);
        let placement = keyed_service(orders, store)
            .place(&customer(), draft(), Some(keyed()), now(), || Ok(()))
            .await
            .unwrap();
        assert_eq!(
            placement,
            Placement::Replayed(StoredResponse {
                status: 201,
                body: b"{\"id\":123}".to_vec()
            })
        );
    }

    #[tokio::test]
    async fn an_order_whose_response_was_lost_is_recovered_from_storage() {
        let mut store = MockIdempotencyStore::new();
        store
            .expect_claim()
            .returning(|_, _, _, _| Ok(KeyClaim::OrderPlaced(OrderId(123))));
        let mut orders = MockOrderRepository::new();
        orders.expect_place().times(0);
        orders
            .expect_find_for_user()
            .withf(|user, id| *user == UserId(1) && *id == OrderId(123))
            .returning(|_, _| {
                Ok(Some(stored(&NewOrder {
                    payment_terms: Default::default(),
                    user_id: UserId(1),
                    draft: draft(),
                    placed_at: now(),
                    idempotency_key: None,
                })))
            });
        let placement = keyed_service(orders, store)
            .place(&customer(), draft(), Some(keyed()), now(), || Ok(()))
            .await
            .unwrap();
        assert!(matches!(placement, Placement::Recovered(order) if order.id == OrderId(123)));
    }

    #[tokio::test]
    async fn a_key_in_use_or_reused_places_nothing() {
        for (claim, expected) in [
            (KeyClaim::InProgress, "in use"),
            (KeyClaim::Mismatch, "different"),
        ] {
            let mut store = MockIdempotencyStore::new();
            store
                .expect_claim()
                .returning(move |_, _, _, _| Ok(claim.clone()));
            let mut orders = MockOrderRepository::new();
            orders.expect_place().times(0);
            let error = keyed_service(orders, store)
                .place(&customer(), draft(), Some(keyed()), now(), || Ok(()))
                .await
                .unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    #[tokio::test]
    async fn a_replay_is_never_refused_by_admission() {
        let mut store = MockIdempotencyStore::new();
        store.expect_claim().returning(|_, _, _, _| {
            Ok(KeyClaim::Replay(StoredResponse {
                status: 201,
                body: b"{}".to_vec(),
            }))
        });
        let placement = keyed_service(MockOrderRepository::new(), store)
            .place(&customer(), draft(), Some(keyed()), now(), || {
                panic!("admission must not be consulted for a replay")
            })
            .await
            .unwrap();
        assert!(matches!(placement, Placement::Replayed(_)));
    }

    #[tokio::test]
    async fn a_refused_new_placement_releases_its_key_and_places_nothing() {
        let mut store = MockIdempotencyStore::new();
        store
            .expect_claim()
            .returning(|_, _, _, _| Ok(KeyClaim::Claimed));
        store.expect_release().times(1).returning(|_, _| Ok(()));
        let mut orders = MockOrderRepository::new();
        orders.expect_place().times(0);
        let result = keyed_service(orders, store)
            .place(&customer(), draft(), Some(keyed()), now(), || {
                Err(std::time::Duration::from_secs(6))
            })
            .await;
        assert!(matches!(result, Err(PlaceOrderError::NotAdmitted(d)) if d.as_secs() == 6));
    }

    #[tokio::test]
    async fn a_failed_keyed_placement_releases_its_key() {
        let mut store = MockIdempotencyStore::new();
        store
            .expect_claim()
            .returning(|_, _, _, _| Ok(KeyClaim::Claimed));
        store
            .expect_release()
            .withf(|user, key| *user == UserId(1) && key.as_str() == "checkout-1")
            .times(1)
            .returning(|_, _| Ok(()));
        let mut orders = MockOrderRepository::new();
        orders
            .expect_place()
            .returning(|_| Err(PlaceOrderError::ProductUnavailable(vec![ProductId(1)])));
        let result = keyed_service(orders, store)
            .place(&customer(), draft(), Some(keyed()), now(), || Ok(()))
            .await;
        assert!(matches!(
            result,
            Err(PlaceOrderError::ProductUnavailable(_))
        ));
    }
}
