//! Peer messages between simulated members over madsim `Endpoint`s (no encoding: the message
//! value itself crosses the simulated network). Partitions are madsim link clogs; loss,
//! duplication and extra delay are ours, drawn from madsim's seeded RNG.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
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
}

impl NetFaults {
    pub fn clear(&self) {
        self.loss_pm.store(0, Ordering::SeqCst);
        self.dup_pm.store(0, Ordering::SeqCst);
        self.delay_max_ms.store(0, Ordering::SeqCst);
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
            let (loss, dup, delay) = (
                faults.loss_pm.load(Ordering::Relaxed),
                faults.dup_pm.load(Ordering::Relaxed),
                faults.delay_max_ms.load(Ordering::Relaxed),
            );
            let mut rng = madsim::rand::thread_rng();
            if loss > 0 && rng.gen_range(0..1000) < loss {
                continue;
            }
            let copies = if dup > 0 && rng.gen_range(0..1000) < dup {
                2
            } else {
                1
            };
            let dst = SocketAddr::new(member_ip(m.to), PORT);
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
