//! Peer messages between simulated members over madsim `Endpoint`s (no encoding: the message
//! value itself crosses the simulated network). Partitions are madsim link clogs; loss,
//! duplication, extra delay and stale replays are ours, drawn from madsim's seeded RNG.
//! Stale replays are held by the network itself (a node of its own, see `start_replayer`),
//! so they outlive a crash of their sender.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use madsim::net::Endpoint;
use madsim::rand::Rng;
use sextant_core::{Message, NodeId};
use sextant_net::node::PeerSender;
use tokio::sync::mpsc;

const TAG: u64 = 0x5e7a;
const PORT: u16 = 2380;
/// Messages queued to the network per member before drops.
const QUEUE_MSGS_MAX: usize = 4096;
/// How late a replayed copy arrives after the original was sent, in milliseconds.
const REPLAY_LATE_MS: std::ops::Range<u64> = 500..3_000;
/// Stale copies the network holds at most; more are not kept.
const REPLAY_HELD_MAX: usize = 4096;
/// The simulated address of the network's replay buffer.
const REPLAYER_IP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

/// The simulated address of member `id`.
pub fn member_ip(id: NodeId) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, (id >> 8) as u8, id as u8))
}

/// Fault knobs of the network, in per-mille and milliseconds; shared by every member.
#[derive(Debug, Default)]
pub struct NetFaults {
    pub loss_pm: AtomicU32,
    pub dup_pm: AtomicU32,
    pub delay_max_ms: AtomicU32,
    /// Stale replays: a message sent is delivered once more 0.5–3 s later, as by a network
    /// element that retransmits from a stale buffer; by then terms and leaders have changed.
    pub replay_pm: AtomicU32,
    /// Where senders hand the copies to replay (set by `start_replayer`).
    replayer: OnceLock<mpsc::Sender<StaleCopy>>,
}

/// A copy of a message the network delivers once more, `late` after it was sent.
struct StaleCopy {
    late: Duration,
    dst: SocketAddr,
    msg: Message,
}

/// Starts the network's replay buffer on a madsim node of its own, which the nemesis never
/// crashes or cuts off: a stale copy arrives even if its sender has crashed or been cut off
/// since (as from a retransmitting middlebox), and it does not wait for its sender to learn
/// anything newer.
pub fn start_replayer(handle: &madsim::runtime::Handle, faults: &NetFaults) {
    let (tx, mut rx) = mpsc::channel::<StaleCopy>(REPLAY_HELD_MAX);
    if faults.replayer.set(tx).is_err() {
        return;
    }
    let node = handle
        .create_node()
        .name("network-replayer")
        .ip(IpAddr::V4(REPLAYER_IP))
        .build();
    node.spawn(async move {
        let Ok(ep) = Endpoint::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT)).await
        else {
            return;
        };
        let ep = Arc::new(ep);
        while let Some(c) = rx.recv().await {
            let ep = ep.clone();
            tokio::spawn(async move {
                tokio::time::sleep(c.late).await;
                let _ = ep.send_to_raw(c.dst, TAG, Box::new(c.msg)).await;
            });
        }
    });
}

impl NetFaults {
    pub fn clear(&self) {
        self.loss_pm.store(0, Ordering::SeqCst);
        self.dup_pm.store(0, Ordering::SeqCst);
        self.delay_max_ms.store(0, Ordering::SeqCst);
        self.replay_pm.store(0, Ordering::SeqCst);
    }
}

pub struct SimSender {
    tx: mpsc::Sender<Message>,
}

impl PeerSender for SimSender {
    fn send(&self, msg: Message) {
        // Full queue: drop; Raft retransmits.
        let _ = self.tx.try_send(msg);
    }
}

/// Binds this member's endpoint and starts its send and receive tasks (on the current madsim
/// node, so they die with it). Received messages go to `inbound`.
pub async fn start(
    faults: Arc<NetFaults>,
    inbound: mpsc::Sender<Message>,
) -> std::io::Result<SimSender> {
    let ep =
        Arc::new(Endpoint::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT)).await?);
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE_MSGS_MAX);
    let send_ep = ep.clone();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let (loss, dup, delay, replay) = (
                faults.loss_pm.load(Ordering::Relaxed),
                faults.dup_pm.load(Ordering::Relaxed),
                faults.delay_max_ms.load(Ordering::Relaxed),
                faults.replay_pm.load(Ordering::Relaxed),
            );
            let mut rng = madsim::rand::thread_rng();
            if loss > 0 && rng.gen_range(0..1000) < loss {
                continue;
            }
            let dst = SocketAddr::new(member_ip(m.to), PORT);
            if replay > 0 && rng.gen_range(0..1000) < replay {
                if let Some(held) = faults.replayer.get() {
                    let late = Duration::from_millis(rng.gen_range(REPLAY_LATE_MS));
                    // Full: the copy is not kept.
                    let _ = held.try_send(StaleCopy {
                        late,
                        dst,
                        msg: m.clone(),
                    });
                }
            }
            let copies = if dup > 0 && rng.gen_range(0..1000) < dup {
                2
            } else {
                1
            };
            for _ in 0..copies {
                // A long tail: most messages are quick, a few straggle for nearly the whole
                // `delay` (u^4: median delay/16, one in ten beyond delay/2).
                let extra = if delay > 0 {
                    let u: f64 = rng.gen_range(0.0..1.0);
                    (f64::from(delay) * u.powi(4)) as u32
                } else {
                    0
                };
                let ep = send_ep.clone();
                let m = m.clone();
                if extra == 0 {
                    let _ = ep.send_to_raw(dst, TAG, Box::new(m)).await;
                } else {
                    // Delayed copies overtake later messages: reordering.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(u64::from(extra))).await;
                        let _ = ep.send_to_raw(dst, TAG, Box::new(m)).await;
                    });
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Ok((payload, _from)) = ep.recv_from_raw(TAG).await {
            if let Ok(m) = payload.downcast::<Message>() {
                if inbound.send(*m).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(SimSender { tx })
}
