//! The catalog's answers, kept ready to send.
//!
//! A Mini App opens the catalog on every launch, so the same few pages are asked for again
//! and again. Each answer's JSON bytes and `ETag` are kept here, so a hit costs no database
//! round trip, no serialisation and no hashing.
//!
//! Freshness: an entry lives at most `ttl` (`CATALOG_CACHE_TTL`), which bounds staleness
//! after catalog writes made outside this process (another instance, an SQL console).
//! Writes made through this process invalidate at once: placing an order changes the
//! stock of the products it names, so every entry showing one of them is dropped, and so
//! is every listing filtered by stock (a product selling out changes which products it
//! shows, and its `total`). Other entries stay: an order for one product leaves every
//! answer that does not show it cached, so a steady flow of orders does not stop caching.
//! An answer loaded while one of the products it shows was invalidated is not kept (it may
//! predate the write); nor is a stock-filtered listing loaded while any stock changed.
//! Prices at checkout never come from here: the order's transaction reads them.
//!
//! Memory: at most `max_entries` entries and `max_bytes` of bodies; beyond either, the
//! oldest go first (the expired ones among them). Making room costs O(1) per entry
//! removed: a cache full of one-off answers (searches) is refilled on every request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;

/// One cached answer.
#[derive(Debug)]
pub(crate) struct Entry {
    pub body: Bytes,
    pub etag: String,
    /// For a list: the number of matches, every page together (`X-Total-Count`).
    pub total: Option<u64>,
    stored_at: Instant,
    /// The products this answer shows, for invalidation.
    products: Box<[i64]>,
    /// Whether stock decides which products the answer shows (`in_stock=true`).
    stock_filtered: bool,
}

/// An answer to keep: its bytes, its `ETag`, what it shows.
#[derive(Debug)]
pub(crate) struct Answer {
    pub body: Bytes,
    pub etag: String,
    /// For a list: the number of matches.
    pub total: Option<u64>,
    /// The products it shows.
    pub products: Vec<i64>,
    /// Whether stock decides which products it shows.
    pub stock_filtered: bool,
    /// When to keep it.
    pub keep: Keep,
}

/// When an answer is worth keeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Always (a catalog page: asked again and again).
    Always,
    /// Only when its key was asked for shortly before (a search: most are asked once, and
    /// kept they would push the pages out). "Shortly" is as long as its slot among
    /// [`RECENT_KEYS`] remembers it.
    WhenAskedAgain,
}

/// How many keys of answers not kept are remembered, each in a slot chosen by its hash
/// (a later key with the same slot takes it over): 8 bytes each.
const RECENT_KEYS: usize = 4096;

/// How many products' last invalidations are remembered before they are forgotten all at
/// once (then every answer still loading is refused, as it may predate one of them). Orders
/// name real products only, so a shop's catalog rarely comes near it.
const MAX_TOUCHED_PRODUCTS: usize = 65_536;

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Arc<Entry>>,
    /// The entries in the order they were stored, oldest first; an item whose entry was
    /// since replaced or dropped no longer points at the map's entry and is skipped.
    order: VecDeque<(String, Weak<Entry>)>,
    bytes: usize,
    /// Bumped by every invalidation.
    sequence: u64,
    /// The sequence number of the last invalidation of each product, for the invalidations
    /// numbered above `forgotten`.
    touched: HashMap<i64, u64>,
    /// Invalidations numbered up to this one are no longer in `touched`.
    forgotten: u64,
    /// The hashes of keys recently asked for and not kept ([`Keep::WhenAskedAgain`]), by
    /// slot; empty until the first.
    recent: Vec<u64>,
    hasher: std::collections::hash_map::RandomState,
}

/// Taken before an answer is loaded and handed back to [`CatalogCache::put`] with it: the
/// invalidations that happened in between decide whether the answer may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoadTicket(u64);

#[derive(Debug)]
pub(crate) struct CatalogCache {
    inner: Mutex<Inner>,
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
}

impl CatalogCache {
    /// A `ttl` of zero turns the cache off.
    pub fn new(ttl: Duration, max_entries: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            ttl,
            max_entries,
            max_bytes,
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // No critical section can panic halfway through an update, so a poisoned lock still
        // guards consistent data.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The fresh entry for `key`, if any.
    pub fn get(&self, key: &str, now: Instant) -> Option<Arc<Entry>> {
        if !self.enabled() {
            return None;
        }
        let inner = self.lock();
        let entry = inner.entries.get(key)?;
        (now.saturating_duration_since(entry.stored_at) < self.ttl).then(|| Arc::clone(entry))
    }

    /// Whole seconds left before `entry` (stored or just loaded) would expire here; 0 when
    /// the cache is off.
    pub fn remaining_secs(&self, entry: &Entry, now: Instant) -> u64 {
        if !self.enabled() {
            return 0;
        }
        self.ttl
            .saturating_sub(now.saturating_duration_since(entry.stored_at))
            .as_secs()
    }

    /// Take one before loading an answer, and hand it to [`Self::put`].
    pub fn ticket(&self) -> LoadTicket {
        LoadTicket(self.lock().sequence)
    }

    /// Stores an answer loaded under `ticket` and returns it as an entry (also when it is
    /// not kept — the cache is off, the body is too big, or one of the products it shows
    /// was invalidated while it was loaded — so callers always answer the same way).
    ///
    /// Only invalidations of the products the answer shows matter: an order for another
    /// product cannot have made it stale. A stock-filtered answer is refused after any
    /// invalidation, as it is dropped by any.
    pub fn put(&self, key: String, answer: Answer, ticket: LoadTicket, now: Instant) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            body: answer.body,
            etag: answer.etag,
            total: answer.total,
            stored_at: now,
            products: answer.products.into_boxed_slice(),
            stock_filtered: answer.stock_filtered,
        });
        let size = entry.body.len();
        if !self.enabled() || size > self.max_bytes {
            return entry;
        }
        let mut inner = self.lock();
        if answer.keep == Keep::WhenAskedAgain && !inner.asked_before(&key) {
            return entry;
        }
        // Checked under the lock that invalidation takes too, so no invalidation slips in
        // between the check and the insert.
        if !inner.unchanged_since(ticket, &entry) {
            return entry;
        }
        if let Some(old) = inner.entries.remove(&key) {
            inner.bytes -= old.body.len();
        }
        if inner.entries.len() >= self.max_entries || inner.bytes + size > self.max_bytes {
            self.evict(&mut inner, size);
        }
        inner.bytes += size;
        inner.order.push_back((key.clone(), Arc::downgrade(&entry)));
        inner.entries.insert(key, Arc::clone(&entry));
        // Items of dropped entries pile up only with invalidations; now and then they go.
        if inner.order.len() > 2 * self.max_entries.max(inner.entries.len()) {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(key, stored)| is_current(entries, key, stored));
        }
        entry
    }

    /// Makes room for `incoming` bytes: the oldest entries go first (entries are stored
    /// with the time of their storing, so the oldest are the expired ones, if any).
    fn evict(&self, inner: &mut Inner, incoming: usize) {
        while inner.entries.len() >= self.max_entries || inner.bytes + incoming > self.max_bytes {
            let Some((key, stored)) = inner.order.pop_front() else {
                break;
            };
            if is_current(&inner.entries, &key, &stored)
                && let Some(entry) = inner.entries.remove(&key)
            {
                inner.bytes -= entry.body.len();
            }
        }
    }

    /// Drops every entry: the catalog changed in a way no product list tells (a category
    /// renamed, moved, hidden or shown). Answers still loading are not kept.
    pub fn clear(&self) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.lock();
        inner.sequence += 1;
        // Forgetting every invalidation refuses every answer loaded before this one.
        inner.touched.clear();
        inner.forgotten = inner.sequence;
        inner.entries.clear();
        inner.order.clear();
        inner.bytes = 0;
    }

    /// Drops every entry that shows one of these products, and every stock-filtered
    /// listing; other entries stay.
    pub fn invalidate_products(&self, products: &[i64]) {
        if !self.enabled() || products.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.sequence += 1;
        if inner.touched.len() + products.len() > MAX_TOUCHED_PRODUCTS {
            inner.touched.clear();
            inner.forgotten = inner.sequence - 1;
        }
        let sequence = inner.sequence;
        for product in products {
            inner.touched.insert(*product, sequence);
        }
        let before = inner.entries.len();
        inner.entries.retain(|_, entry| {
            !entry.stock_filtered && !entry.products.iter().any(|p| products.contains(p))
        });
        if inner.entries.len() != before {
            inner.bytes = inner.entries.values().map(|e| e.body.len()).sum();
        }
    }

    #[cfg(test)]
    fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

/// Whether `stored` is still the entry `entries` holds under `key`.
fn is_current(entries: &HashMap<String, Arc<Entry>>, key: &str, stored: &Weak<Entry>) -> bool {
    entries
        .get(key)
        .is_some_and(|entry| std::ptr::eq(Arc::as_ptr(entry), stored.as_ptr()))
}

impl Inner {
    /// Whether `key` was asked for recently; remembers it when it was not.
    fn asked_before(&mut self, key: &str) -> bool {
        use std::hash::BuildHasher as _;
        let hash = self.hasher.hash_one(key);
        if self.recent.is_empty() {
            self.recent = vec![0; RECENT_KEYS];
        }
        // The modulo of a u64 by a small constant fits any usize.
        let slot = usize::try_from(hash % RECENT_KEYS as u64).unwrap_or(0);
        if self.recent[slot] == hash {
            return true;
        }
        self.recent[slot] = hash;
        false
    }

    /// Whether no invalidation since `ticket` concerns `entry`.
    fn unchanged_since(&self, ticket: LoadTicket, entry: &Entry) -> bool {
        if self.sequence == ticket.0 {
            return true;
        }
        if entry.stock_filtered || ticket.0 < self.forgotten {
            return false;
        }
        entry.products.iter().all(|product| {
            self.touched
                .get(product)
                .is_none_or(|&invalidated| invalidated <= ticket.0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> CatalogCache {
        CatalogCache::new(Duration::from_secs(5), 3, 100)
    }

    fn answer(size: usize, products: &[i64], stock_filtered: bool) -> Answer {
        Answer {
            total: None,
            body: Bytes::from(vec![b'x'; size]),
            etag: "\"e\"".into(),
            products: products.to_vec(),
            stock_filtered,
            keep: Keep::Always,
        }
    }

    #[test]
    fn an_answer_kept_when_asked_again_is_kept_the_second_time_only() {
        let cache = cache();
        let now = Instant::now();
        let search = |key: &str| {
            let mut answer = answer(10, &[1], false);
            answer.keep = Keep::WhenAskedAgain;
            cache.put(key.into(), answer, cache.ticket(), now);
        };
        search("products:q=сок");
        assert!(cache.get("products:q=сок", now).is_none(), "asked once");
        search("products:q=сок");
        assert!(
            cache.get("products:q=сок", now).is_some(),
            "asked again: kept"
        );
        search("products:q=чай");
        assert!(cache.get("products:q=чай", now).is_none(), "asked once");
        // A page is kept the first time.
        put(&cache, "products:page", 10, &[2], now);
        assert!(cache.get("products:page", now).is_some());
    }

    fn put(cache: &CatalogCache, key: &str, size: usize, products: &[i64], at: Instant) {
        cache.put(
            key.into(),
            answer(size, products, false),
            cache.ticket(),
            at,
        );
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = cache();
        let t0 = Instant::now();
        put(&cache, "a", 10, &[], t0);
        assert!(cache.get("a", t0 + Duration::from_millis(4_999)).is_some());
        assert!(cache.get("a", t0 + Duration::from_secs(5)).is_none());
    }

    #[test]
    fn entries_and_bytes_are_bounded_evicting_the_oldest() {
        let cache = cache();
        let t0 = Instant::now();
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            put(&cache, key, 10, &[], t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(cache.usage().0, 3);
        assert!(cache.get("a", t0).is_none(), "the oldest went first");
        put(&cache, "big", 90, &[], t0 + Duration::from_millis(10));
        let (entries, bytes) = cache.usage();
        assert!(bytes <= 100, "{bytes} bytes kept");
        assert!(entries >= 1 && cache.get("big", t0 + Duration::from_millis(10)).is_some());
        put(&cache, "huge", 101, &[], t0);
        assert!(
            cache.get("huge", t0).is_none(),
            "a body over the whole budget is not kept"
        );
    }

    #[test]
    fn invalidation_drops_every_answer_showing_the_product() {
        let cache = cache();
        let t0 = Instant::now();
        put(&cache, "card:7", 10, &[7], t0);
        put(&cache, "page:1", 10, &[5, 7, 9], t0);
        put(&cache, "page:2", 10, &[11, 12], t0);
        cache.invalidate_products(&[7]);
        assert!(cache.get("card:7", t0).is_none());
        assert!(cache.get("page:1", t0).is_none());
        assert!(cache.get("page:2", t0).is_some());
        assert_eq!(cache.usage(), (1, 10));
    }

    #[test]
    fn an_answer_loaded_across_an_invalidation_is_not_kept() {
        let cache = cache();
        let t0 = Instant::now();
        let loaded_at = cache.ticket();
        // An order commits while the answer is being loaded...
        cache.invalidate_products(&[7]);
        let entry = cache.put("card:7".into(), answer(10, &[7], false), loaded_at, t0);
        assert_eq!(entry.body.len(), 10, "the caller still answers with it");
        assert!(
            cache.get("card:7", t0).is_none(),
            "...so it may be stale: not kept"
        );
    }

    #[test]
    fn an_answer_loaded_across_an_invalidation_of_other_products_is_kept() {
        let cache = cache();
        let t0 = Instant::now();
        let loaded_at = cache.ticket();
        // Orders for other products commit while the answer is being loaded...
        cache.invalidate_products(&[7]);
        cache.invalidate_products(&[8, 9]);
        cache.put("card:5".into(), answer(10, &[5], false), loaded_at, t0);
        cache.put(
            "page:1".into(),
            answer(10, &[4, 5, 6], false),
            loaded_at,
            t0,
        );
        assert!(
            cache.get("card:5", t0).is_some(),
            "...which cannot make it stale"
        );
        assert!(cache.get("page:1", t0).is_some());
        // One of its products among several invalidated products still refuses it.
        cache.put("page:2".into(), answer(10, &[1, 9], false), loaded_at, t0);
        assert!(cache.get("page:2", t0).is_none());
    }

    #[test]
    fn a_stock_filtered_answer_loaded_across_any_invalidation_is_not_kept() {
        let cache = cache();
        let t0 = Instant::now();
        let loaded_at = cache.ticket();
        cache.invalidate_products(&[3]);
        cache.put("in-stock".into(), answer(10, &[40], true), loaded_at, t0);
        assert!(cache.get("in-stock", t0).is_none());
        // Loaded after it: kept.
        let loaded_at = cache.ticket();
        cache.put("in-stock".into(), answer(10, &[40], true), loaded_at, t0);
        assert!(cache.get("in-stock", t0).is_some());
    }

    #[test]
    fn answers_loaded_before_forgotten_invalidations_are_not_kept() {
        let cache = cache();
        let t0 = Instant::now();
        let early = cache.ticket();
        let many: Vec<i64> = (1..=MAX_TOUCHED_PRODUCTS as i64).collect();
        cache.invalidate_products(&many);
        let middle = cache.ticket();
        // One more product than it remembers: the memory of the earlier ones goes.
        cache.invalidate_products(&[0]);
        cache.put("card:-1".into(), answer(10, &[-1], false), early, t0);
        assert!(
            cache.get("card:-1", t0).is_none(),
            "it may predate an invalidation no longer remembered"
        );
        cache.put("card:5".into(), answer(10, &[5], false), middle, t0);
        assert!(
            cache.get("card:5", t0).is_some(),
            "loaded after product 5's invalidation"
        );
        cache.put("card:0".into(), answer(10, &[0], false), middle, t0);
        assert!(
            cache.get("card:0", t0).is_none(),
            "loaded before product 0's"
        );
    }

    #[test]
    fn any_stock_change_drops_stock_filtered_listings() {
        let cache = cache();
        let t0 = Instant::now();
        cache.put(
            "in-stock:page2".into(),
            answer(10, &[40, 41], true),
            cache.ticket(),
            t0,
        );
        put(&cache, "page:2", 10, &[40, 41], t0);
        cache.invalidate_products(&[3]);
        assert!(cache.get("in-stock:page2", t0).is_none());
        assert!(cache.get("page:2", t0).is_some());
    }

    #[test]
    fn a_zero_ttl_turns_the_cache_off() {
        let cache = CatalogCache::new(Duration::ZERO, 10, 1_000);
        let t0 = Instant::now();
        put(&cache, "a", 10, &[], t0);
        assert!(cache.get("a", t0).is_none());
        assert_eq!(cache.usage(), (0, 0));
    }

    #[test]
    fn replaced_and_dropped_entries_do_not_count_as_the_oldest_and_do_not_pile_up() {
        let cache = cache();
        let t0 = Instant::now();
        put(&cache, "a", 10, &[1], t0);
        put(&cache, "b", 10, &[2], t0);
        // "a" stored again: its first place in line no longer counts.
        put(&cache, "a", 10, &[1], t0);
        // "b" dropped: nor does its place.
        cache.invalidate_products(&[2]);
        put(&cache, "c", 10, &[3], t0);
        put(&cache, "d", 10, &[4], t0);
        // Full (3 entries): the oldest still there is the second "a".
        put(&cache, "e", 10, &[5], t0);
        assert!(cache.get("a", t0).is_none());
        for key in ["c", "d", "e"] {
            assert!(cache.get(key, t0).is_some(), "{key}");
        }
        // Storing one key over and over leaves a bounded line behind.
        for _ in 0..100 {
            put(&cache, "c", 10, &[3], t0);
        }
        assert!(cache.lock().order.len() <= 6);
        assert_eq!(cache.usage(), (3, 30));
    }
}
