//! Per-revision admission: Knative's activator throttler and queue-proxy breaker in one
//! (DESIGN.md "Queueing"; research note §5.2, §6.2, §11 points 16 and 17).
//!
//! Knative splits this between the activator (which buffers while there is no pod and
//! balances across pods) and each pod's queue-proxy (which enforces `containerConcurrency`).
//! The router is always in the path here, so one structure does both: it knows every
//! replica's in-flight count exactly, so the per-replica limit is exact (not the 70 %
//! autoscaling target) and a request only leaves the queue once a slot is reserved for it.
//!
//! Waiting requests form one FIFO queue per revision, bounded by `queue_depth` so a stuck
//! revision cannot hold unbounded memory; the caller turns a full queue into 503 +
//! `Retry-After`, and bounds the wait with the revision's `timeoutSeconds`.
//!
//! Slots are handed over, not raced for: whoever frees a slot (a dropped [`Permit`], new
//! replicas, a higher limit) reserves it for the oldest waiter and sends it the permit, so
//! a newcomer can never overtake the queue.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Why a request got no replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// `queue_depth` requests already wait; the caller answers 503 + Retry-After.
    QueueFull,
}

/// One revision's replicas, slots and queue. Cheap to share as `Arc<Throttler>`; the state
/// itself lives in an inner `Arc` so that [`Permit`]s can outlive any borrow of it.
pub struct Throttler {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
}

struct State {
    /// Per-replica limit; 0 = unlimited.
    cc: u32,
    queue_depth: usize,
    /// Replicas in rotation, sorted by address string: the order first-available scans in
    /// and round robin walks (Knative sorts its pod trackers by `ip:port` the same way).
    rotation: Vec<Replica>,
    /// Replicas whose connection was refused; out of rotation until the next
    /// `set_replicas` brings a fresh view of which replicas are ready.
    excluded: HashSet<String>,
    /// In-flight counts, for replicas in rotation and for removed ones that still have
    /// requests in flight (so that their permits release correctly and `drained` works).
    loads: HashMap<String, Load>,
    /// Waiters keyed by arrival number: the map's order is the queue's order, and a
    /// cancelled waiter is removed by key without scanning.
    waiters: BTreeMap<u64, oneshot::Sender<Permit>>,
    next_waiter: u64,
    /// Round robin position in `rotation`: the next search starts here.
    rr_next: usize,
}

struct Replica {
    id: String,
    addr: SocketAddr,
    /// `addr` as text, the sort key Knative uses ("10.0.0.10:80" < "10.0.0.9:80").
    key: String,
}

#[derive(Default)]
struct Load {
    in_flight: usize,
    /// Woken when `in_flight` reaches 0.
    drain: Vec<oneshot::Sender<()>>,
}

/// A slot on one replica; dropping it frees the slot and hands it to the next waiter.
pub struct Permit {
    replica: String,
    addr: SocketAddr,
    /// `None` only for a permit that was never delivered: the throttler took its slot back
    /// itself, under the lock, and dropping it must not release the slot a second time.
    inner: Option<Arc<Inner>>,
}

impl Permit {
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The replica's address when the permit was granted, which stays valid for this
    /// request even if the replica has since left the rotation.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("replica", &self.replica)
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let mut state = inner.lock();
            state.release(&self.replica);
            state.dispatch(&inner);
        }
    }
}

impl Inner {
    /// A panic while the lock was held cannot leave the counts half-updated (every update
    /// is a single statement), so a poisoned lock is still usable; refusing it would turn
    /// one bug into every request of the revision failing.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Throttler {
    /// `container_concurrency`: per-replica hard limit, 0 = unlimited. `queue_depth`: most
    /// requests waiting for a slot (DESIGN.md default 10,000).
    pub fn new(container_concurrency: u32, queue_depth: usize) -> Throttler {
        Throttler {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    cc: container_concurrency,
                    queue_depth,
                    rotation: Vec::new(),
                    excluded: HashSet::new(),
                    loads: HashMap::new(),
                    waiters: BTreeMap::new(),
                    next_waiter: 0,
                    rr_next: 0,
                }),
            }),
        }
    }

    /// The replicas that may take requests now (ready ones), by container id and address.
    /// Replicas no longer listed get no new requests (their in-flight requests finish;
    /// their permits stay valid). New ones may take waiting requests at once. Also clears
    /// every exclusion, since the list reflects fresh readiness information.
    pub fn set_replicas(&self, replicas: &[(String, SocketAddr)]) {
        let mut state = self.inner.lock();
        let mut seen = HashSet::new();
        let mut rotation: Vec<Replica> = replicas
            .iter()
            .filter(|(id, _)| seen.insert(id.as_str()))
            .map(|(id, addr)| Replica {
                id: id.clone(),
                addr: *addr,
                key: addr.to_string(),
            })
            .collect();
        rotation.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.id.cmp(&b.id)));
        // Removed replicas keep their entry only while something is in flight on them.
        state
            .loads
            .retain(|id, load| load.in_flight > 0 || seen.contains(id.as_str()));
        for r in &rotation {
            state.loads.entry(r.id.clone()).or_default();
        }
        state.rotation = rotation;
        state.excluded.clear();
        state.dispatch(&self.inner);
    }

    pub fn set_container_concurrency(&self, cc: u32) {
        let mut state = self.inner.lock();
        state.cc = cc;
        state.dispatch(&self.inner);
    }

    /// A lower depth does not evict requests already waiting; it only refuses new ones
    /// until the queue is below it.
    pub fn set_queue_depth(&self, depth: usize) {
        self.inner.lock().queue_depth = depth;
    }

    /// Takes a replica out of rotation until the next `set_replicas` (a connection to it
    /// was refused: it died). Its in-flight requests are left alone; they fail on their own.
    pub fn exclude(&self, replica: &str) {
        let mut state = self.inner.lock();
        if state.rotation.iter().any(|r| r.id == replica) {
            state.excluded.insert(replica.to_string());
        }
    }

    /// Waits for a slot (FIFO among waiters). Immediately `Err(QueueFull)` when
    /// `queue_depth` requests already wait. Cancellation-safe: dropping the future frees its
    /// place in the queue, and a slot handed to a waiter that is gone goes to the next one.
    /// No timeout here (the caller wraps it).
    pub async fn acquire(&self) -> Result<Permit, Rejected> {
        loop {
            let (id, rx) = {
                let mut state = self.inner.lock();
                // Only skip the queue when nobody waits, otherwise a newcomer could take a
                // slot freed for the oldest waiter.
                if state.waiters.is_empty() {
                    if let Some(i) = state.pick() {
                        return Ok(state.grant(i, &self.inner));
                    }
                }
                if state.waiters.len() >= state.queue_depth {
                    return Err(Rejected::QueueFull);
                }
                let id = state.next_waiter;
                state.next_waiter += 1;
                let (tx, rx) = oneshot::channel();
                state.waiters.insert(id, tx);
                (id, rx)
            };
            let mut place = QueuePlace {
                inner: &self.inner,
                id,
                armed: true,
            };
            let received = rx.await;
            place.armed = false;
            match received {
                Ok(permit) => return Ok(permit),
                // The sender only goes away unsent once this waiter is known to be gone,
                // which cannot be while it is awaited; queue again rather than assume.
                Err(_) => continue,
            }
        }
    }

    /// Requests waiting for a slot.
    pub fn queued(&self) -> usize {
        self.inner.lock().waiters.len()
    }

    /// Requests holding a slot, on replicas in rotation or removed ones still finishing.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().loads.values().map(|l| l.in_flight).sum()
    }

    /// Ready replicas in rotation (excluded ones not counted).
    pub fn replicas(&self) -> usize {
        let state = self.inner.lock();
        state
            .rotation
            .iter()
            .filter(|r| !state.excluded.contains(&r.id))
            .count()
    }

    /// Resolves once `replica` has no request in flight (used to drain a replica before it
    /// stops). Returns at once if it has none. The caller takes the replica out of rotation
    /// first; otherwise new requests may keep arriving after this resolves.
    pub async fn drained(&self, replica: &str) {
        let rx = {
            let mut state = self.inner.lock();
            match state.loads.get_mut(replica) {
                Some(load) if load.in_flight > 0 => {
                    // Drop the senders of callers that gave up, so a replica drained
                    // over and over does not collect them.
                    load.drain.retain(|tx| !tx.is_closed());
                    let (tx, rx) = oneshot::channel();
                    load.drain.push(tx);
                    rx
                }
                _ => return,
            }
        };
        // An error means the entry went away, which only happens once nothing is in flight.
        let _ = rx.await;
    }
}

/// A waiter's place in the queue, given back if its `acquire` future is dropped before a
/// permit arrives. A permit already sent to it is dropped with the receiver, which releases
/// the slot to the next waiter, so cancellation never swallows a slot.
struct QueuePlace<'a> {
    inner: &'a Arc<Inner>,
    id: u64,
    armed: bool,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.lock().waiters.remove(&self.id);
        }
    }
}

impl State {
    /// The replica (index into `rotation`) the next request should go to, or `None` when
    /// no replica in rotation has a free slot. Reserves nothing; see `grant`.
    fn pick(&mut self) -> Option<usize> {
        let candidates: Vec<Candidate> = self
            .rotation
            .iter()
            .map(|r| Candidate {
                in_flight: self.loads.get(&r.id).map_or(0, |l| l.in_flight),
                usable: !self.excluded.contains(&r.id),
            })
            .collect();
        match self.cc {
            0 => {
                let usable: Vec<usize> = (0..candidates.len())
                    .filter(|&i| candidates[i].usable)
                    .collect();
                let loads: Vec<usize> = usable.iter().map(|&i| candidates[i].in_flight).collect();
                let (r1, r2) = match loads.len() {
                    0 => return None,
                    1 => (0, 0),
                    n => (fastrand::usize(..n), fastrand::usize(..n - 1)),
                };
                two_choices(&loads, r1, r2, fastrand::bool()).map(|j| usable[j])
            }
            1..=3 => first_available(&candidates, self.cc),
            _ => {
                let chosen = round_robin(&candidates, self.cc, self.rr_next)?;
                self.rr_next = chosen + 1;
                Some(chosen)
            }
        }
    }

    /// Reserves a slot on `rotation[i]`.
    fn grant(&mut self, i: usize, inner: &Arc<Inner>) -> Permit {
        let replica = &self.rotation[i];
        self.loads.entry(replica.id.clone()).or_default().in_flight += 1;
        Permit {
            replica: replica.id.clone(),
            addr: replica.addr,
            inner: Some(Arc::clone(inner)),
        }
    }

    /// Frees a slot on `replica`; does not hand it on (see `dispatch`).
    fn release(&mut self, replica: &str) {
        let Some(load) = self.loads.get_mut(replica) else {
            return;
        };
        load.in_flight = load.in_flight.saturating_sub(1);
        if load.in_flight > 0 {
            return;
        }
        for tx in load.drain.drain(..) {
            let _ = tx.send(());
        }
        if !self.rotation.iter().any(|r| r.id == replica) {
            self.loads.remove(replica);
        }
    }

    /// Hands free slots to waiters, oldest first, for as long as both remain.
    fn dispatch(&mut self, inner: &Arc<Inner>) {
        while let Some((&id, tx)) = self.waiters.first_key_value() {
            if tx.is_closed() {
                // Its future was dropped and will find its place already gone.
                self.waiters.remove(&id);
                continue;
            }
            let Some(i) = self.pick() else { break };
            let Some(tx) = self.waiters.remove(&id) else {
                break;
            };
            if let Err(mut permit) = tx.send(self.grant(i, inner)) {
                // The waiter went away between the check and the send. Take the slot back
                // here: dropping the permit normally would lock the state again.
                permit.inner = None;
                self.release(&permit.replica);
            }
        }
    }
}

/// What the balancing policies see of one replica in rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    in_flight: usize,
    /// False for an excluded replica: it keeps its position, so round robin does not jump.
    usable: bool,
}

impl Candidate {
    fn has_room(self, cc: u32) -> bool {
        self.usable && (cc == 0 || self.in_flight < cc as usize)
    }
}

/// Knative's `firstAvailableLBPolicy`, used for CC 1..=3: with so few slots per replica,
/// packing requests onto the first replicas keeps the others idle enough to scale down.
fn first_available(candidates: &[Candidate], cc: u32) -> Option<usize> {
    candidates.iter().position(|c| c.has_room(cc))
}

/// Knative's `roundRobinPolicy`, used for CC > 3: the search starts at `next` (wrapping to
/// 0 when the rotation shrank below it) and skips replicas without a free slot.
fn round_robin(candidates: &[Candidate], cc: u32, next: usize) -> Option<usize> {
    let n = candidates.len();
    let start = if next >= n { 0 } else { next };
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| candidates[i].has_room(cc))
}

/// Knative's `randomChoice2Policy`, used for CC 0 (every replica always has room): of two
/// distinct random replicas, the one with fewer requests in flight. Two random picks
/// instead of the global minimum avoids sending a burst all to the same replica.
///
/// `r1` is in `0..n` and `r2` in `0..n-1`; `r2` is shifted past `r1` so the two differ.
/// With two replicas both are compared whatever the random numbers; `coin` breaks ties.
fn two_choices(loads: &[usize], r1: usize, r2: usize, coin: bool) -> Option<usize> {
    let (a, b) = match loads.len() {
        0 => return None,
        1 => return Some(0),
        2 => (0, 1),
        _ => (r1, if r2 >= r1 { r2 + 1 } else { r2 }),
    };
    Some(match loads[a].cmp(&loads[b]) {
        std::cmp::Ordering::Less => a,
        std::cmp::Ordering::Greater => b,
        std::cmp::Ordering::Equal if coin => b,
        std::cmp::Ordering::Equal => a,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::{pin, Pin};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    /// Polls once without waiting: `Pending` means the future is still waiting. Every hand
    /// over happens synchronously in the call that frees the slot, so a waiter that should
    /// have been served is `Ready` on the very next poll, with no sleeping.
    fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn ready<F: Future>(f: Pin<&mut F>) -> F::Output {
        match poll_once(f) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("expected the future to be ready"),
        }
    }

    fn pending<F: Future>(f: Pin<&mut F>) {
        assert!(poll_once(f).is_pending(), "expected the future to wait");
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn replicas(list: &[(&str, &str)]) -> Vec<(String, SocketAddr)> {
        list.iter()
            .map(|(id, a)| (id.to_string(), addr(a)))
            .collect()
    }

    fn throttler(cc: u32, depth: usize, list: &[(&str, &str)]) -> Throttler {
        let t = Throttler::new(cc, depth);
        t.set_replicas(&replicas(list));
        t
    }

    fn got(r: Result<Permit, Rejected>) -> Permit {
        r.expect("expected a permit")
    }

    const AB: &[(&str, &str)] = &[("a", "10.0.0.1:80"), ("b", "10.0.0.2:80")];
    const ABC: &[(&str, &str)] = &[
        ("a", "10.0.0.1:80"),
        ("b", "10.0.0.2:80"),
        ("c", "10.0.0.3:80"),
    ];

    #[test]
    fn throttler_is_shareable_and_permits_are_sendable() {
        fn shareable<T: Send + Sync + 'static>() {}
        fn sendable<T: Send + 'static>() {}
        shareable::<Throttler>();
        sendable::<Permit>();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_acquirers_never_exceed_one_per_replica_and_all_are_served() {
        let t = Arc::new(throttler(1, 100, AB));
        let busy: Arc<HashMap<String, AtomicUsize>> = Arc::new(
            ["a", "b"]
                .into_iter()
                .map(|id| (id.to_string(), AtomicUsize::new(0)))
                .collect(),
        );
        let served = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (t, busy, served) = (t.clone(), busy.clone(), served.clone());
            tasks.push(tokio::spawn(async move {
                let permit = t.acquire().await.unwrap();
                let n = busy[permit.replica()].fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(n, 1, "two requests at once on {}", permit.replica());
                tokio::task::yield_now().await;
                busy[permit.replica()].fetch_sub(1, Ordering::SeqCst);
                served.fetch_add(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("all acquirers are served")
                .unwrap();
        }
        assert_eq!(served.load(Ordering::SeqCst), 10);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.queued(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancelled_waiters_under_load_lose_no_slot() {
        let t = Arc::new(throttler(1, 1000, ABC));
        let mut tasks = Vec::new();
        for i in 0..300 {
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                // Every third request gives up after a few scheduler turns, wherever it is
                // then: queued, or with a slot already handed to it.
                let patience = if i % 3 == 0 { i % 7 } else { usize::MAX };
                tokio::select! {
                    permit = t.acquire() => {
                        let _permit = permit.unwrap();
                        tokio::task::yield_now().await;
                    }
                    _ = async {
                        for _ in 0..patience {
                            tokio::task::yield_now().await;
                        }
                    }, if patience != usize::MAX => {}
                }
            }));
        }
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("every request is served or gives up")
                .unwrap();
        }
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.queued(), 0);
        // All three slots are free again.
        let held: Vec<Permit> = vec![
            got(ready(pin!(t.acquire()))),
            got(ready(pin!(t.acquire()))),
            got(ready(pin!(t.acquire()))),
        ];
        assert_eq!(held.len(), 3);
    }

    #[tokio::test]
    async fn waiters_are_served_in_arrival_order() {
        let t = throttler(1, 100, AB);
        let first = got(t.acquire().await);
        let second = got(t.acquire().await);
        assert_ne!(first.replica(), second.replica());

        let mut waiters: Vec<_> = (0..8).map(|_| Box::pin(t.acquire())).collect();
        for w in &mut waiters {
            pending(w.as_mut());
        }
        assert_eq!(t.queued(), 8);

        // Each freed slot goes to the oldest waiter, and to no one else.
        let mut held = vec![first, second];
        for i in 0..8 {
            drop(held.remove(0));
            let permit = got(ready(waiters[i].as_mut()));
            for later in &mut waiters[i + 1..] {
                pending(later.as_mut());
            }
            held.push(permit);
            assert_eq!(t.in_flight(), 2);
        }
        assert_eq!(t.queued(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_rejects_at_once_and_frees_up_as_waiters_are_served() {
        let t = throttler(1, 2, &[("a", "10.0.0.1:80")]);
        let p0 = got(t.acquire().await);
        let mut w1 = pin!(t.acquire());
        let mut w2 = pin!(t.acquire());
        pending(w1.as_mut());
        pending(w2.as_mut());
        assert_eq!(t.queued(), 2);

        let w3 = pin!(t.acquire());
        assert_eq!(ready(w3).unwrap_err(), Rejected::QueueFull);

        drop(p0);
        let _p1 = got(ready(w1.as_mut()));
        assert_eq!(t.queued(), 1);
        let mut w4 = pin!(t.acquire());
        pending(w4.as_mut());
        assert_eq!(t.queued(), 2);
    }

    #[tokio::test]
    async fn queue_depth_zero_serves_only_what_fits() {
        let t = throttler(1, 0, &[("a", "10.0.0.1:80")]);
        let _p = got(t.acquire().await);
        assert_eq!(t.acquire().await.unwrap_err(), Rejected::QueueFull);
        t.set_queue_depth(1);
        let mut w = pin!(t.acquire());
        pending(w.as_mut());
        assert_eq!(t.queued(), 1);
    }

    #[tokio::test]
    async fn a_dropped_waiter_frees_its_place_and_no_slot() {
        let t = throttler(1, 10, &[("a", "10.0.0.1:80")]);
        let p0 = got(t.acquire().await);
        let mut w1 = Box::pin(t.acquire());
        let mut w2 = Box::pin(t.acquire());
        pending(w1.as_mut());
        pending(w2.as_mut());
        assert_eq!(t.queued(), 2);

        drop(w1);
        assert_eq!(t.queued(), 1);

        drop(p0);
        let _p2 = got(ready(w2.as_mut()));
        assert_eq!(t.in_flight(), 1);
    }

    #[tokio::test]
    async fn a_slot_sent_to_a_waiter_that_is_gone_goes_to_the_next() {
        let t = throttler(1, 10, &[("a", "10.0.0.1:80")]);
        let p0 = got(t.acquire().await);
        let mut w1 = Box::pin(t.acquire());
        let mut w2 = Box::pin(t.acquire());
        pending(w1.as_mut());
        pending(w2.as_mut());

        // The slot is handed to w1, which is cancelled before it looks at it.
        drop(p0);
        assert_eq!(t.queued(), 1);
        drop(w1);

        let p2 = got(ready(w2.as_mut()));
        assert_eq!(t.in_flight(), 1);
        drop(p2);
        assert_eq!(t.in_flight(), 0);
    }

    #[tokio::test]
    async fn with_no_replicas_requests_wait_until_one_is_ready() {
        for cc in [0, 1, 10] {
            let t = Throttler::new(cc, 10);
            assert_eq!(t.replicas(), 0);
            let mut w = pin!(t.acquire());
            pending(w.as_mut());
            assert_eq!(t.queued(), 1);

            t.set_replicas(&replicas(&[("a", "10.0.0.1:80")]));
            let p = got(ready(w.as_mut()));
            assert_eq!(p.replica(), "a");
            assert_eq!(p.addr(), addr("10.0.0.1:80"));
            assert_eq!(t.queued(), 0);
        }
    }

    #[tokio::test]
    async fn new_replicas_serve_as_many_waiters_as_fit_in_order() {
        let t = Throttler::new(2, 10);
        let mut ws: Vec<_> = (0..5).map(|_| Box::pin(t.acquire())).collect();
        for w in &mut ws {
            pending(w.as_mut());
        }
        t.set_replicas(&replicas(AB));
        let served: Vec<Permit> = ws[..4].iter_mut().map(|w| got(ready(w.as_mut()))).collect();
        pending(ws[4].as_mut());
        let on: Vec<&str> = served.iter().map(|p| p.replica()).collect();
        assert_eq!(on, ["a", "a", "b", "b"]);
    }

    #[tokio::test]
    async fn a_removed_replica_takes_no_new_requests_and_drains() {
        let t = throttler(1, 10, AB);
        let on_a = got(t.acquire().await);
        assert_eq!(on_a.replica(), "a");

        t.set_replicas(&replicas(&[("b", "10.0.0.2:80")]));
        assert_eq!(t.replicas(), 1);
        let on_b = got(t.acquire().await);
        assert_eq!(on_b.replica(), "b");
        let mut waiting = pin!(t.acquire());
        pending(waiting.as_mut());

        // The permit on the removed replica is still counted and still points at it.
        assert_eq!(on_a.addr(), addr("10.0.0.1:80"));
        assert_eq!(t.in_flight(), 2);

        let mut drained = pin!(t.drained("a"));
        pending(drained.as_mut());
        drop(on_a);
        ready(drained.as_mut());
        // Its slot does not go to the waiter: the replica is gone.
        pending(waiting.as_mut());
        assert_eq!(t.in_flight(), 1);

        drop(on_b);
        assert_eq!(got(ready(waiting.as_mut())).replica(), "b");
    }

    #[tokio::test]
    async fn drained_returns_at_once_for_an_idle_or_unknown_replica() {
        let t = throttler(1, 10, AB);
        ready(pin!(t.drained("a")));
        ready(pin!(t.drained("nope")));
    }

    #[tokio::test]
    async fn drained_waits_for_every_request_on_the_replica() {
        let t = throttler(0, 10, &[("a", "10.0.0.1:80")]);
        let p1 = got(t.acquire().await);
        let p2 = got(t.acquire().await);
        let mut drained = pin!(t.drained("a"));
        pending(drained.as_mut());
        drop(p1);
        pending(drained.as_mut());
        drop(p2);
        ready(drained.as_mut());
    }

    #[tokio::test]
    async fn an_excluded_replica_gets_nothing_until_set_replicas() {
        let t = throttler(0, 10, AB);
        t.exclude("a");
        assert_eq!(t.replicas(), 1);
        let held: Vec<Permit> = {
            let mut v = Vec::new();
            for _ in 0..20 {
                v.push(got(t.acquire().await));
            }
            v
        };
        assert!(held.iter().all(|p| p.replica() == "b"));

        // b carries 20, a none: two replicas are always both compared, so a wins.
        t.set_replicas(&replicas(AB));
        assert_eq!(t.replicas(), 2);
        assert_eq!(got(t.acquire().await).replica(), "a");
    }

    #[tokio::test]
    async fn with_every_replica_excluded_requests_wait() {
        let t = throttler(1, 10, AB);
        t.exclude("a");
        t.exclude("b");
        t.exclude("unknown");
        assert_eq!(t.replicas(), 0);
        let mut w = pin!(t.acquire());
        pending(w.as_mut());
        t.set_replicas(&replicas(AB));
        assert_eq!(got(ready(w.as_mut())).replica(), "a");
    }

    #[tokio::test]
    async fn first_available_goes_by_address_text() {
        // "10.0.0.10:80" sorts before "10.0.0.9:80" as text, as in Knative.
        let t = throttler(2, 10, &[("nine", "10.0.0.9:80"), ("ten", "10.0.0.10:80")]);
        let p: Vec<Permit> = vec![
            got(t.acquire().await),
            got(t.acquire().await),
            got(t.acquire().await),
        ];
        let on: Vec<&str> = p.iter().map(|p| p.replica()).collect();
        assert_eq!(on, ["ten", "ten", "nine"]);
    }

    #[tokio::test]
    async fn first_available_refills_the_first_replica() {
        let t = throttler(1, 10, ABC);
        let a = got(t.acquire().await);
        let _b = got(t.acquire().await);
        drop(a);
        assert_eq!(got(t.acquire().await).replica(), "a");
    }

    #[tokio::test]
    async fn round_robin_rotates() {
        let t = throttler(4, 10, ABC);
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(got(t.acquire().await));
        }
        let on: Vec<&str> = held.iter().map(|p| p.replica()).collect();
        assert_eq!(on, ["a", "b", "c", "a", "b", "c"]);
    }

    #[tokio::test]
    async fn round_robin_skips_full_replicas() {
        let t = throttler(4, 10, AB);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(got(t.acquire().await));
        }
        // Both full; free a slot on b while the rotation points at a.
        let i = held.iter().position(|p| p.replica() == "b").unwrap();
        held.remove(i);
        assert_eq!(got(t.acquire().await).replica(), "b");
    }

    #[tokio::test]
    async fn cc_zero_has_no_per_replica_limit() {
        let t = throttler(0, 0, &[("a", "10.0.0.1:80")]);
        let held: Vec<Permit> = {
            let mut v = Vec::new();
            for _ in 0..1000 {
                v.push(got(t.acquire().await));
            }
            v
        };
        assert_eq!(t.in_flight(), 1000);
        assert_eq!(t.queued(), 0);
        drop(held);
        assert_eq!(t.in_flight(), 0);
    }

    #[tokio::test]
    async fn cc_zero_spreads_load_between_two_replicas() {
        let t = throttler(0, 0, AB);
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(got(t.acquire().await));
        }
        let on_a = held.iter().filter(|p| p.replica() == "a").count();
        // The less loaded of the two always wins, so they never differ by more than one.
        assert_eq!(on_a, 5);
    }

    #[tokio::test]
    async fn raising_cc_wakes_waiters() {
        let t = throttler(1, 10, &[("a", "10.0.0.1:80")]);
        let _p0 = got(t.acquire().await);
        let mut ws: Vec<_> = (0..3).map(|_| Box::pin(t.acquire())).collect();
        for w in &mut ws {
            pending(w.as_mut());
        }
        t.set_container_concurrency(3);
        let _p1 = got(ready(ws[0].as_mut()));
        let _p2 = got(ready(ws[1].as_mut()));
        pending(ws[2].as_mut());
        assert_eq!(t.in_flight(), 3);

        t.set_container_concurrency(0);
        let _p3 = got(ready(ws[2].as_mut()));
        assert_eq!(t.in_flight(), 4);
    }

    #[tokio::test]
    async fn lowering_cc_keeps_permits_and_holds_new_requests() {
        let t = throttler(3, 10, &[("a", "10.0.0.1:80")]);
        let mut held = vec![
            got(t.acquire().await),
            got(t.acquire().await),
            got(t.acquire().await),
        ];
        t.set_container_concurrency(1);
        let mut w = pin!(t.acquire());
        pending(w.as_mut());
        held.pop();
        pending(w.as_mut());
        held.pop();
        pending(w.as_mut());
        held.pop();
        got(ready(w.as_mut()));
    }

    #[test]
    fn first_available_policy() {
        let c = |in_flight, usable| Candidate { in_flight, usable };
        assert_eq!(first_available(&[], 1), None);
        assert_eq!(first_available(&[c(1, true), c(0, true)], 1), Some(1));
        assert_eq!(first_available(&[c(1, true), c(0, true)], 2), Some(0));
        assert_eq!(first_available(&[c(0, false), c(2, true)], 3), Some(1));
        assert_eq!(first_available(&[c(3, true), c(3, true)], 3), None);
    }

    #[test]
    fn round_robin_policy() {
        let c = |in_flight, usable| Candidate { in_flight, usable };
        let free = [c(0, true), c(0, true), c(0, true)];
        assert_eq!(round_robin(&free, 4, 0), Some(0));
        assert_eq!(round_robin(&free, 4, 2), Some(2));
        // Past the end (the rotation shrank): start again at the beginning.
        assert_eq!(round_robin(&free, 4, 3), Some(0));
        assert_eq!(round_robin(&free, 4, 7), Some(0));
        let mixed = [c(0, true), c(4, true), c(0, false)];
        assert_eq!(
            round_robin(&mixed, 4, 1),
            Some(0),
            "skips full and excluded"
        );
        assert_eq!(round_robin(&[c(4, true), c(9, true)], 4, 0), None);
        assert_eq!(round_robin(&[], 4, 0), None);
    }

    #[test]
    fn two_choices_policy() {
        assert_eq!(two_choices(&[], 0, 0, false), None);
        assert_eq!(two_choices(&[7], 0, 0, false), Some(0));
        // Two replicas: always both, whatever the random numbers.
        assert_eq!(two_choices(&[3, 1], 0, 0, false), Some(1));
        assert_eq!(two_choices(&[1, 3], 1, 0, true), Some(0));
        // Three or more: r1 and the shifted r2 are compared.
        let loads = [5, 1, 3, 0];
        assert_eq!(two_choices(&loads, 0, 0, false), Some(1), "0 vs 1");
        assert_eq!(
            two_choices(&loads, 1, 1, false),
            Some(1),
            "1 vs 2 (shifted)"
        );
        assert_eq!(two_choices(&loads, 2, 1, false), Some(1), "2 vs 1");
        assert_eq!(
            two_choices(&loads, 0, 2, false),
            Some(3),
            "0 vs 3 (shifted)"
        );
        assert_eq!(two_choices(&loads, 3, 2, false), Some(3), "3 vs 2");
        assert_eq!(
            two_choices(&loads, 0, 1, false),
            Some(2),
            "0 vs 2 (shifted)"
        );
        // Ties: the coin decides.
        assert_eq!(two_choices(&[2, 2, 2], 0, 1, false), Some(0));
        assert_eq!(two_choices(&[2, 2, 2], 0, 1, true), Some(2));
    }
}
