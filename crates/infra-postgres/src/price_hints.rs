//! What the last placements saw of each product, so that the next one can be priced before
//! it reaches the database and placed in one statement (see `crate::orders`).
//!
//! A hint is never trusted: the statement that places the order writes nothing unless
//! every locked product still has the revision that was priced. A stale hint costs one
//! refused statement, after which the order is priced from the rows it locked; never a
//! wrong price.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use domain::{Product, ProductId};

/// The most products remembered. A shop with more still places orders for the others,
/// with a plain read of them first whenever their hint has been dropped.
const CAPACITY: usize = 10_000;

/// Products as read, with their revisions (`revisions[i]` is `products[i]`'s).
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    pub(crate) products: Vec<Product>,
    pub(crate) revisions: Vec<i64>,
}

impl Seen {
    pub(crate) fn from_rows(rows: Vec<(Product, i64)>) -> Self {
        let (products, revisions) = rows.into_iter().unzip();
        Self {
            products,
            revisions,
        }
    }
}

/// Products as a placement last read them: only the fields pricing reads (`description`
/// and `images` are left out), and the revision.
#[derive(Default)]
pub(crate) struct PriceHints {
    products: Mutex<HashMap<ProductId, (Product, i64)>>,
}

impl std::fmt::Debug for PriceHints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.lock().len();
        f.debug_struct("PriceHints")
            .field("products", &len)
            .finish()
    }
}

impl PriceHints {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProductId, (Product, i64)>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters: every entry is a whole product, and each one is only a hint.
        self.products.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hinted products for `ids`, or `None` if any of them has no hint.
    pub(crate) fn get(&self, ids: &[ProductId]) -> Option<Seen> {
        let products = self.lock();
        let mut seen = Seen {
            products: Vec::with_capacity(ids.len()),
            revisions: Vec::with_capacity(ids.len()),
        };
        for id in ids {
            let (product, revision) = products.get(id)?;
            seen.products.push(product.clone());
            seen.revisions.push(*revision);
        }
        Some(seen)
    }

    /// Remembers the products a placement read for `asked`: `seen` as they are now, and
    /// forgets those asked for but not found.
    pub(crate) fn remember(&self, asked: &[ProductId], seen: Seen) {
        let mut products = self.lock();
        for id in asked {
            if !seen.products.iter().any(|product| product.id == *id) {
                products.remove(id);
            }
        }
        for (mut product, revision) in seen.products.into_iter().zip(seen.revisions) {
            if products.len() >= CAPACITY && !products.contains_key(&product.id) {
                // Bounded memory: start over rather than track recency. The products
                // being ordered now come back with their next placement.
                products.clear();
            }
            product.description = None;
            product.images = Vec::new();
            products.insert(product.id, (product, revision));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use domain::{CategoryId, Money};

    use super::*;

    fn product(id: i64) -> Product {
        Product {
            price_stars: None,
            id: ProductId(id),
            category_id: CategoryId(1),
            name: format!("Товар {id}"),
            description: Some("long text".into()),
            price: Money::from_minor(100 * id).unwrap(),
            images: vec!["https://example.com/p.jpg".into()],
            is_active: true,
            sort_order: 0,
            stock: Some(3),
        }
    }

    fn seen(products: impl IntoIterator<Item = Product>) -> Seen {
        Seen::from_rows(products.into_iter().map(|p| (p, 7)).collect())
    }

    #[test]
    fn all_or_nothing() {
        let hints = PriceHints::default();
        hints.remember(&[], seen([product(1), product(2)]));
        let got = hints.get(&[ProductId(2), ProductId(1)]).unwrap();
        assert_eq!(got.products[0].id, ProductId(2));
        assert_eq!(got.products[0].price, product(2).price);
        assert_eq!(got.revisions, [7, 7]);
        assert_eq!(
            got.products[0].description, None,
            "only what pricing reads is kept"
        );
        assert!(hints.get(&[ProductId(1), ProductId(3)]).is_none());
    }

    #[test]
    fn gone_products_are_forgotten_and_newer_rows_replace_older() {
        let hints = PriceHints::default();
        hints.remember(&[], seen([product(1), product(2)]));
        let mut repriced = product(2);
        repriced.price = Money::from_minor(1).unwrap();
        hints.remember(
            &[ProductId(1), ProductId(2)],
            Seen::from_rows(vec![(repriced, 8)]),
        );
        assert!(hints.get(&[ProductId(1)]).is_none());
        let got = hints.get(&[ProductId(2)]).unwrap();
        assert_eq!(got.products[0].price, Money::from_minor(1).unwrap());
        assert_eq!(got.revisions, [8]);
    }

    #[test]
    fn memory_is_bounded() {
        let hints = PriceHints::default();
        let capacity = i64::try_from(CAPACITY).unwrap();
        hints.remember(&[], seen((1..=capacity).map(product)));
        assert_eq!(hints.len(), CAPACITY);
        hints.remember(&[], seen([product(capacity + 1)]));
        assert!(hints.len() <= CAPACITY);
        assert!(hints.get(&[ProductId(capacity + 1)]).is_some());
    }
}
