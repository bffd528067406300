//! Topic routing: which subscriptions does a topic reach?
//!
//! ```text
//!   exact: HashMap<"swarm.alpha.task", [ids]>      O(1), patterns without wildcards
//!
//!   trie (wildcard patterns only), one level per token:
//!
//!        root ── "swarm" ──┬── "*" ─── "task"  [here: #3]         swarm.*.task
//!                          ├── rest: [#4]                         swarm.>
//!                          └── "alpha" ── rest: [#7]              swarm.alpha.>
//! ```
//!
//! A lookup walks the topic once: at each level it collects the `>` slot, then
//! follows the literal child and the `*` child. Its cost depends on the topic's
//! length and on how many patterns actually match, not on how many are stored.
//!
//! Results go through a bounded LRU **route cache** keyed by topic. Every
//! subscribe and unsubscribe bumps a generation counter; a cached route from an
//! older generation is recomputed on its next lookup.
//!
//! **Delivery order**: a route lists subscription ids in ascending order, which
//! is the order the subscriptions were made, whatever kind of pattern they use.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::num::NonZeroUsize;

use hashbrown::HashMap;
use lru::LruCache;
use serde::{Deserialize, Serialize};

use crate::error::TopicError;
use crate::topic::{validate_pattern, validate_topic, PatternKind, MAX_TOKENS};

/// Identifies one subscription. Ids grow monotonically and are never reused
/// by the same router, so they also give the delivery order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionId(u64);

impl SubscriptionId {
    /// The numeric id.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from [`get`](Self::get), e.g. one that crossed a JS boundary.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

/// The subscriptions a topic reaches, in delivery order.
pub type Route = Arc<[SubscriptionId]>;

/// Default number of topics the route cache remembers.
pub const DEFAULT_ROUTE_CACHE: usize = 1024;

/// Hit and miss counts of the route cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that walked the router.
    pub misses: u64,
}

#[derive(Default)]
struct TrieNode {
    literal: HashMap<Box<str>, TrieNode>,
    any_one: Option<Box<TrieNode>>,
    /// Patterns that end at this node.
    here: Vec<SubscriptionId>,
    /// Patterns that end with `>` just below this node.
    rest: Vec<SubscriptionId>,
}

impl TrieNode {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.any_one.is_none() && self.here.is_empty() && self.rest.is_empty()
    }

    fn insert(&mut self, tokens: &[&str], id: SubscriptionId) {
        match tokens {
            [] => self.here.push(id),
            [">"] => self.rest.push(id),
            ["*", tail @ ..] => self.any_one.get_or_insert_with(Default::default).insert(tail, id),
            [token, tail @ ..] => self.literal.entry(Box::from(*token)).or_default().insert(tail, id),
        }
    }

    /// Removes `id`; returns whether it was found. Prunes nodes left empty.
    fn remove(&mut self, tokens: &[&str], id: SubscriptionId) -> bool {
        fn take(ids: &mut Vec<SubscriptionId>, id: SubscriptionId) -> bool {
            let before = ids.len();
            ids.retain(|x| *x != id);
            ids.len() != before
        }
        match tokens {
            [] => take(&mut self.here, id),
            [">"] => take(&mut self.rest, id),
            ["*", tail @ ..] => {
                let Some(child) = self.any_one.as_mut() else { return false };
                let found = child.remove(tail, id);
                if child.is_empty() {
                    self.any_one = None;
                }
                found
            }
            [token, tail @ ..] => {
                let Some(child) = self.literal.get_mut(*token) else { return false };
                let found = child.remove(tail, id);
                if child.is_empty() {
                    self.literal.remove(*token);
                }
                found
            }
        }
    }

    fn collect(&self, tokens: &[&str], out: &mut impl FnMut(SubscriptionId)) {
        match tokens.split_first() {
            None => self.here.iter().copied().for_each(out),
            Some((token, tail)) => {
                self.rest.iter().copied().for_each(&mut *out);
                if let Some(child) = self.literal.get(*token) {
                    child.collect(tail, out);
                }
                if let Some(child) = &self.any_one {
                    child.collect(tail, out);
                }
            }
        }
    }
}

/// A cached route, the generation it was computed at, and the interned topic.
struct CachedRoute {
    topic: Arc<str>,
    generation: u64,
    route: Route,
}

/// A topic resolved to its route, with the router generation the route is valid for.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The topic, shared with the router's tables when it is known to them.
    pub topic: Arc<str>,
    /// The matching subscriptions.
    pub route: Route,
    /// [`Router::generation`] when `route` was computed.
    pub generation: u64,
}

/// Maps topics to the subscriptions whose patterns match them.
///
/// # Examples
/// ```
/// use swarmbus_core::Router;
/// let mut router = Router::new();
/// let all = router.subscribe("swarm.>")?;
/// let tasks = router.subscribe("swarm.*.task")?;
/// let alpha = router.subscribe("swarm.alpha.task")?;
/// assert_eq!(&*router.route("swarm.alpha.task")?, &[all, tasks, alpha]);
/// assert_eq!(&*router.route("swarm.beta")?, &[all]);
/// router.unsubscribe(all);
/// assert!(router.route("swarm.beta")?.is_empty());
/// # Ok::<(), swarmbus_core::TopicError>(())
/// ```
pub struct Router {
    exact: HashMap<Arc<str>, Route>,
    trie: TrieNode,
    patterns: HashMap<SubscriptionId, (Box<str>, PatternKind)>,
    wildcard_count: usize,
    next_id: u64,
    generation: u64,
    cache: Option<LruCache<Arc<str>, CachedRoute>>,
    stats: CacheStats,
    empty: Route,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    /// A router with a route cache of [`DEFAULT_ROUTE_CACHE`] topics.
    pub fn new() -> Self {
        Self::with_cache_capacity(DEFAULT_ROUTE_CACHE)
    }

    /// A router whose route cache holds at most `capacity` topics (0 turns it off).
    pub fn with_cache_capacity(capacity: usize) -> Self {
        Self {
            exact: HashMap::new(),
            trie: TrieNode::default(),
            patterns: HashMap::new(),
            wildcard_count: 0,
            next_id: 1,
            generation: 0,
            cache: NonZeroUsize::new(capacity).map(LruCache::new),
            stats: CacheStats::default(),
            empty: Arc::from(Vec::new()),
        }
    }

    /// Adds a subscription for `pattern` and returns its id.
    pub fn subscribe(&mut self, pattern: &str) -> Result<SubscriptionId, TopicError> {
        let kind = validate_pattern(pattern)?;
        let id = SubscriptionId(self.next_id);
        self.next_id += 1;
        match kind {
            PatternKind::Exact => {
                let ids = self.exact.entry(Arc::from(pattern)).or_insert_with(|| self.empty.clone());
                *ids = ids.iter().copied().chain([id]).collect();
            }
            PatternKind::Wildcard => {
                let mut buf = [""; MAX_TOKENS];
                self.trie.insert(tokens(pattern, &mut buf), id);
                self.wildcard_count += 1;
            }
        }
        self.patterns.insert(id, (Box::from(pattern), kind));
        self.generation += 1;
        Ok(id)
    }

    /// Removes a subscription; returns false if the id is unknown.
    pub fn unsubscribe(&mut self, id: SubscriptionId) -> bool {
        let Some((pattern, kind)) = self.patterns.remove(&id) else { return false };
        match kind {
            PatternKind::Exact => {
                if let Some(ids) = self.exact.get_mut(&*pattern) {
                    *ids = ids.iter().copied().filter(|x| *x != id).collect();
                    if ids.is_empty() {
                        self.exact.remove(&*pattern);
                    }
                }
            }
            PatternKind::Wildcard => {
                let mut buf = [""; MAX_TOKENS];
                self.trie.remove(tokens(&pattern, &mut buf), id);
                self.wildcard_count -= 1;
            }
        }
        self.generation += 1;
        true
    }

    /// The pattern a subscription was made with.
    pub fn pattern(&self, id: SubscriptionId) -> Option<&str> {
        self.patterns.get(&id).map(|(p, _)| &**p)
    }

    /// Number of live subscriptions.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// True when there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Bumped by every subscribe and unsubscribe.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Route cache hits and misses so far.
    pub fn cache_stats(&self) -> CacheStats {
        self.stats
    }

    /// Validates `topic` and returns the subscriptions it reaches, in delivery order.
    pub fn route(&mut self, topic: &str) -> Result<Route, TopicError> {
        self.resolve(topic).map(|r| r.route)
    }

    /// Resolves a topic to its route and an interned copy of the topic.
    ///
    /// A topic already present in the exact table or the route cache was
    /// validated when it got there, so the hot path neither validates nor
    /// allocates; a new topic is validated before anything is stored.
    pub(crate) fn resolve(&mut self, topic: &str) -> Result<Resolved, TopicError> {
        let generation = self.generation;
        if self.wildcard_count == 0 {
            // Exact-only routers need no cache: the map lookup is the whole answer.
            if let Some((known, route)) = self.exact.get_key_value(topic) {
                return Ok(Resolved { topic: known.clone(), route: route.clone(), generation });
            }
            validate_topic(topic)?;
            return Ok(Resolved { topic: Arc::from(topic), route: self.empty.clone(), generation });
        }
        if let Some(cached) = self.cache.as_mut().and_then(|c| c.get_mut(topic)) {
            if cached.generation == generation {
                self.stats.hits += 1;
                return Ok(Resolved { topic: cached.topic.clone(), route: cached.route.clone(), generation });
            }
            // Cached at an older generation: the topic is known valid, only the route is stale.
            let topic = cached.topic.clone();
            self.stats.misses += 1;
            let route = self.compute_route(&topic);
            if let Some(cached) = self.cache.as_mut().and_then(|c| c.get_mut(&*topic)) {
                cached.route = route.clone();
                cached.generation = generation;
            }
            return Ok(Resolved { topic, route, generation });
        }
        validate_topic(topic)?;
        self.stats.misses += 1;
        let interned: Arc<str> = Arc::from(topic);
        let route = self.compute_route(topic);
        if let Some(cache) = self.cache.as_mut() {
            let entry = CachedRoute { topic: interned.clone(), generation, route: route.clone() };
            cache.put(interned.clone(), entry);
        }
        Ok(Resolved { topic: interned, route, generation })
    }

    fn compute_route(&self, topic: &str) -> Route {
        let mut ids = Vec::new();
        self.for_each_match(topic, |id| ids.push(id));
        if ids.is_empty() {
            self.empty.clone()
        } else {
            Arc::from(ids)
        }
    }

    /// Calls `f` for every subscription `topic` reaches, in delivery order,
    /// without touching the cache. `topic` should be valid; an invalid one
    /// simply matches what its tokens match.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(SubscriptionId)) {
        let mut matched: Vec<SubscriptionId> = Vec::new();
        if let Some(ids) = self.exact.get(topic) {
            matched.extend_from_slice(ids);
        }
        if self.wildcard_count > 0 {
            let mut buf = [""; MAX_TOKENS];
            if topic.split('.').nth(MAX_TOKENS).is_none() {
                self.trie.collect(tokens(topic, &mut buf), &mut |id| matched.push(id));
            }
        }
        matched.sort_unstable();
        matched.into_iter().for_each(&mut f);
    }
}

/// Splits a valid topic or pattern into `buf`; extra tokens are ignored.
fn tokens<'a, 'b>(input: &'a str, buf: &'b mut [&'a str; MAX_TOKENS]) -> &'b [&'a str] {
    let mut n = 0;
    for (slot, token) in buf.iter_mut().zip(input.split('.')) {
        *slot = token;
        n += 1;
    }
    &buf[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(router: &mut Router, topic: &str) -> Vec<u64> {
        router.route(topic).unwrap().iter().map(|id| id.get()).collect()
    }

    // Every behaviour test runs with and without the cache, as nats-server does.
    fn both(test: impl Fn(Router)) {
        test(Router::new());
        test(Router::with_cache_capacity(0));
    }

    #[test]
    fn exact_and_wildcards_in_subscription_order() {
        both(|mut r| {
            let a = r.subscribe("a.b.c").unwrap().get();
            let b = r.subscribe("a.*.c").unwrap().get();
            let c = r.subscribe("a.>").unwrap().get();
            let d = r.subscribe("*.b.*").unwrap().get();
            let e = r.subscribe(">").unwrap().get();
            let f = r.subscribe("a.b.c").unwrap().get();
            assert_eq!(ids(&mut r, "a.b.c"), [a, b, c, d, e, f]);
            assert_eq!(ids(&mut r, "a.x.c"), [b, c, e]);
            assert_eq!(ids(&mut r, "a"), [e]);
            assert_eq!(ids(&mut r, "z.b.z"), [d, e]);
        });
    }

    #[test]
    fn unsubscribe_invalidates_cached_routes() {
        both(|mut r| {
            let wide = r.subscribe("a.>").unwrap();
            let narrow = r.subscribe("a.b").unwrap();
            assert_eq!(ids(&mut r, "a.b"), [wide.get(), narrow.get()]);
            assert!(r.unsubscribe(wide));
            assert!(!r.unsubscribe(wide));
            assert_eq!(ids(&mut r, "a.b"), [narrow.get()]);
            let star = r.subscribe("*.b").unwrap();
            assert_eq!(ids(&mut r, "a.b"), [narrow.get(), star.get()]);
        });
    }

    #[test]
    fn trie_prunes_empty_nodes() {
        let mut r = Router::new();
        let a = r.subscribe("x.*.y.>").unwrap();
        let b = r.subscribe("x.q.y").unwrap();
        r.unsubscribe(a);
        r.unsubscribe(b);
        assert!(r.trie.is_empty());
        assert!(r.exact.is_empty());
        assert!(r.is_empty());
    }

    #[test]
    fn cache_hits_and_generation() {
        let mut r = Router::new();
        r.subscribe("a.*").unwrap();
        r.route("a.b").unwrap();
        r.route("a.b").unwrap();
        assert_eq!(r.cache_stats(), CacheStats { hits: 1, misses: 1 });
        let g = r.generation();
        r.subscribe("a.b").unwrap();
        assert_eq!(r.generation(), g + 1);
        assert_eq!(r.route("a.b").unwrap().len(), 2);
        assert_eq!(r.cache_stats().misses, 2);
    }

    #[test]
    fn cache_is_bounded() {
        let mut r = Router::with_cache_capacity(4);
        r.subscribe("t.*").unwrap();
        for i in 0..100 {
            r.route(&alloc::format!("t.{i}")).unwrap();
        }
        assert_eq!(r.cache.as_ref().unwrap().len(), 4);
    }

    #[test]
    fn route_rejects_invalid_topics() {
        let mut r = Router::new();
        assert!(r.route("a.*").is_err());
        assert!(r.subscribe("a.>.b").is_err());
        assert!(r.is_empty());
    }
}
