//! Live atoms: every commit and release publishes on the atom's channel
//! (`enduro:` and the key), and one subscriber connection per server and process hands
//! what it hears to the live atoms of those keys.
//!
//! The subscriber runs on a thread of its own, started with the first live atom of a
//! server and ended when the last one is dropped. After a lost connection it connects
//! again (waiting 50 ms, doubling up to 5 s), subscribes again and nudges every live atom
//! once, so a commit made meanwhile is picked up then. A new live atom is nudged once its
//! channel is subscribed, for a commit made while it was being set up.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use enduro_core::{Nudge, Subscription, Version};
use redis::{Client, Connection};

/// The channel a key's commits are published on.
pub(crate) fn channel_of(key: &str) -> Vec<u8> {
    let mut channel = b"enduro:".to_vec();
    channel.extend_from_slice(key.as_bytes());
    channel
}

/// What a live atom's store asks of its server's subscriber.
enum Request {
    Follow {
        id: u64,
        channel: Vec<u8>,
        nudge: Nudge,
    },
    Stop {
        id: u64,
    },
}

/// One server's subscriber, shared by the live atoms of that server in this process.
struct Listener {
    requests: Sender<Request>,
}

/// Keeps one live atom's following; dropping it stops the nudges.
struct Following {
    listener: Arc<Listener>,
    id: u64,
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.listener.requests.send(Request::Stop { id: self.id });
    }
}

/// The subscribers of this process, by server (the URL as given, and whether TLS
/// certificates were given); a subscriber ends when its last live atom is dropped.
fn listeners() -> &'static Mutex<HashMap<String, Weak<Listener>>> {
    static LISTENERS: std::sync::OnceLock<Mutex<HashMap<String, Weak<Listener>>>> =
        std::sync::OnceLock::new();
    LISTENERS.get_or_init(Default::default)
}

/// Starts nudging `nudge` whenever `key` on the server `client` reaches is committed to
/// or released, until the returned subscription drops. Fails only when no thread can be
/// started.
pub(crate) fn follow(
    server: String,
    client: &Client,
    connect_timeout: Duration,
    key: &str,
    nudge: Nudge,
) -> std::io::Result<Subscription> {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let listener = {
        let mut all = listeners().lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, listener| listener.strong_count() > 0);
        match all.get(&server).and_then(Weak::upgrade) {
            Some(listener) => listener,
            None => {
                let (requests, received) = channel();
                let listener = Arc::new(Listener { requests });
                let client = client.clone();
                std::thread::Builder::new()
                    .name("enduro-redis-listen".into())
                    .spawn(move || listen(&client, connect_timeout, &received))?;
                all.insert(server, Arc::downgrade(&listener));
                listener
            }
        }
    };
    let _ = listener.requests.send(Request::Follow {
        id,
        channel: channel_of(key),
        nudge,
    });
    Ok(Subscription::new(Following { listener, id }))
}

/// The live atoms of one subscriber, by channel.
#[derive(Default)]
struct Followers {
    by_channel: HashMap<Vec<u8>, Vec<(u64, Nudge)>>,
}

impl Followers {
    fn nudge_all(&self) {
        for nudge in self.by_channel.values().flatten().map(|(_, n)| n) {
            nudge.changed();
        }
    }
}

/// How often the subscriber looks at new requests while no message comes.
const POLL: Duration = Duration::from_millis(100);

/// The subscriber's thread: connects, subscribes, hands messages out, connects again after
/// a failure; ends once every live atom is gone.
fn listen(client: &Client, connect_timeout: Duration, requests: &Receiver<Request>) {
    let mut followers = Followers::default();
    let mut pause = Duration::from_millis(50);
    loop {
        let connection = client
            .get_connection_with_timeout(connect_timeout)
            .and_then(|c| {
                c.set_read_timeout(Some(POLL))?;
                c.set_write_timeout(Some(connect_timeout))?;
                Ok(c)
            });
        let outcome = match connection {
            Ok(mut connection) => {
                pause = Duration::from_millis(50);
                serve(&mut connection, &mut followers, requests)
            }
            Err(_) => Served::Lost,
        };
        if matches!(outcome, Served::Done) {
            return;
        }
        // Wait before the next attempt, still taking requests (and ending if none remain).
        match requests.recv_timeout(pause) {
            Ok(request) => apply(request, &mut followers, None),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

enum Served {
    /// Every live atom is gone.
    Done,
    /// The connection failed.
    Lost,
}

/// Applies one request; subscribes or unsubscribes on `pubsub` when given.
fn apply(request: Request, followers: &mut Followers, pubsub: Option<&mut redis::PubSub<'_>>) {
    match request {
        Request::Follow { id, channel, nudge } => {
            let list = followers.by_channel.entry(channel.clone()).or_default();
            let first = list.is_empty();
            list.push((id, nudge.clone()));
            if first
                && let Some(pubsub) = pubsub
                && pubsub.subscribe(&channel[..]).is_err()
            {
                // The connection failed: the reconnect subscribes and nudges everyone.
                return;
            }
            nudge.changed();
        }
        Request::Stop { id } => {
            let mut emptied = None;
            for (channel, list) in &mut followers.by_channel {
                list.retain(|(other, _)| *other != id);
                if list.is_empty() {
                    emptied = Some(channel.clone());
                }
            }
            if let Some(channel) = emptied {
                followers.by_channel.remove(&channel);
                if let Some(pubsub) = pubsub {
                    let _ = pubsub.unsubscribe(&channel[..]);
                }
            }
        }
    }
}

fn serve(
    connection: &mut Connection,
    followers: &mut Followers,
    requests: &Receiver<Request>,
) -> Served {
    let mut pubsub = connection.as_pubsub();
    for channel in followers.by_channel.keys() {
        if pubsub.subscribe(&channel[..]).is_err() {
            return Served::Lost;
        }
    }
    // Commits made while the connection was down (or being made) are picked up now.
    followers.nudge_all();
    loop {
        loop {
            match requests.try_recv() {
                Ok(request) => {
                    apply(request, followers, Some(&mut pubsub));
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Served::Done,
            }
        }
        match pubsub.get_message() {
            Ok(message) => {
                let Some(list) = followers
                    .by_channel
                    .get(message.get_channel_name().as_bytes())
                else {
                    continue;
                };
                let version = version_in(message.get_payload_bytes());
                for (_, nudge) in list {
                    match version {
                        Some(version) => nudge.changed_to(version),
                        None => nudge.changed(),
                    }
                }
            }
            Err(e) if e.is_timeout() => {}
            Err(_) => return Served::Lost,
        }
    }
}

/// The version a commit published (`gen inc`); `None` for a release.
fn version_in(payload: &[u8]) -> Option<Version> {
    let text = std::str::from_utf8(payload).ok()?;
    let (generation, incarnation) = text.split_once(' ')?;
    Some(Version::new(
        generation.parse().ok()?,
        incarnation.parse().ok()?,
    ))
}
