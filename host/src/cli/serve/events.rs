//! The event stream: every progress and result object gets an id, is kept in a bounded history and is
//! broadcast to the connected `/api/events` clients. A client that reconnects with `Last-Event-ID` first
//! gets what it missed from the history, then the live events, with no gap and no repeat.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

/// Events kept for replay. Progress of a large upload is one event per 256 KiB chunk, so this covers a
/// reconnect during an upload of several GB; older events are gone (the page then reloads the state).
const HISTORY: usize = 50_000;

type Item = (u64, Arc<str>);

struct History {
    next_id: u64,
    events: VecDeque<Item>,
}

impl History {
    /// The id of the newest event (0 before the first).
    fn newest(&self) -> u64 {
        self.next_id - 1
    }
}

/// Publishes events and hands out subscriptions.
pub(crate) struct Hub {
    history: Mutex<History>,
    live: broadcast::Sender<Item>,
}

impl Hub {
    pub(crate) fn new() -> Hub {
        Hub {
            history: Mutex::new(History {
                next_id: 1,
                events: VecDeque::new(),
            }),
            live: broadcast::channel(4096).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `value` the next id, keeps it and sends it to every subscriber. Never blocks for long (it is
    /// called from plugin threads).
    pub(crate) fn publish(&self, value: &Value) -> u64 {
        let mut history = self.lock();
        let id = history.next_id;
        history.next_id += 1;
        let item: Item = (id, Arc::from(value.to_string()));
        if history.events.len() == HISTORY {
            history.events.pop_front();
        }
        history.events.push_back(item.clone());
        // Sent while holding the lock, so a subscriber that read the history under the lock and then
        // subscribed sees every later event exactly once.
        let _ = self.live.send(item);
        id
    }

    /// The kept events after `after`, a receiver for everything published from now on, and the id the
    /// subscription starts after.
    fn subscribe(&self, after: u64) -> (VecDeque<Item>, broadcast::Receiver<Item>, u64) {
        let history = self.lock();
        // An id this server never gave: the client saw an earlier run of it (a restart), so everything
        // here is new to it.
        let after = if after > history.newest() { 0 } else { after };
        let backlog = history
            .events
            .iter()
            .filter(|(id, _)| *id > after)
            .cloned()
            .collect();
        (backlog, self.live.subscribe(), after)
    }

    fn since(&self, after: u64) -> VecDeque<Item> {
        self.lock()
            .events
            .iter()
            .filter(|(id, _)| *id > after)
            .cloned()
            .collect()
    }
}

struct Subscription {
    hub: Arc<Hub>,
    backlog: VecDeque<Item>,
    live: broadcast::Receiver<Item>,
    last: u64,
    /// Whether the kept history was sent and `{"type": "live"}` said so.
    caught_up: bool,
    shutdown: watch::Receiver<bool>,
}

/// The SSE response for a client that last saw `last_event_id` (0: nothing, start with the live events
/// and the kept history of running uploads alike).
pub(crate) fn stream(
    hub: Arc<Hub>,
    last_event_id: u64,
    shutdown: watch::Receiver<bool>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (backlog, live, last) = hub.subscribe(last_event_id);
    let subscription = Subscription {
        hub,
        backlog,
        live,
        last,
        caught_up: false,
        shutdown,
    };
    let events = futures::stream::unfold(subscription, |mut s| async move {
        loop {
            if let Some((id, data)) = s.backlog.pop_front() {
                if id <= s.last {
                    continue;
                }
                s.last = id;
                let event = Event::default().id(id.to_string()).data(&*data);
                return Some((Ok(event), s));
            }
            if !s.caught_up {
                // Without an id (it is not part of the history): what came before was history, so a
                // page can show old events as state without raising them again as news.
                s.caught_up = true;
                let event = Event::default().data(r#"{"type":"live"}"#);
                return Some((Ok(event), s));
            }
            if *s.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                received = s.live.recv() => match received {
                    Ok(item) => s.backlog.push_back(item),
                    // Too slow a client: catch up from the history instead of losing events.
                    Err(broadcast::error::RecvError::Lagged(_)) => s.backlog = s.hub.since(s.last),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = s.shutdown.changed() => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_gets_the_history_after_its_last_id_then_the_live_events() {
        let hub = Hub::new();
        for n in 0..5 {
            hub.publish(&serde_json::json!({ "n": n }));
        }
        let (backlog, mut live, _) = hub.subscribe(3);
        let ids: Vec<u64> = backlog.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [4, 5]);
        hub.publish(&serde_json::json!({ "n": 5 }));
        let (id, data) = live.try_recv().unwrap();
        assert_eq!(id, 6);
        assert_eq!(&*data, r#"{"n":5}"#);
        // A client of an earlier run of the server (a restart) gets this run's whole history.
        let (backlog, _, after) = hub.subscribe(99);
        assert_eq!(after, 0);
        assert_eq!(backlog.len(), 6);
    }
}
