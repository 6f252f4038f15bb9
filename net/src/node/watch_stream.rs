//! The client side of a watch stream: what [`super::NodeHandle::watch_stream`] returns.
//!
//! A stream is one etcd gRPC `Watch` call: requests (create, cancel, progress) go into the
//! node loop through its request queue, and every answer — `created` (with the watch id),
//! refusals, events, cancellations, compaction answers, progress notifications — comes back in
//! order through [`WatchStream::next`], exactly as etcd sends them on the wire. Sending a
//! request only waits for room in the loop's queue, never for the stream to drain, so a client
//! may send and receive from one task without deadlocking.
//!
//! Back-pressure: the loop moves responses into a bounded channel only while it has room. A
//! client that stops reading leaves them in the watch hub's bounded per-stream queue, which
//! cancels its slow synced watchers (with a reason naming the revision to resume from) rather
//! than growing; see `sextant_core::watch`. When the channel was full, the receiver tells the
//! loop as soon as it has read something, so delivery resumes at once.
//!
//! Dropping the stream (both halves, if split) closes it in the loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sextant_core::watch::{StreamId, WatchCreateRequest, WatchId, WatchResponse};
use tokio::sync::{mpsc, oneshot};

use super::client::{ClientError, ClientRequest};

/// What a stream sends the loop.
pub(crate) enum WatchRequest {
    Open {
        reply: oneshot::Sender<Opened>,
    },
    Create {
        stream: StreamId,
        req: WatchCreateRequest,
    },
    Cancel {
        stream: StreamId,
        watch_id: WatchId,
    },
    Progress {
        stream: StreamId,
    },
    /// A receiver read from a channel the loop found full: deliver more.
    Poll,
    Close {
        stream: StreamId,
    },
}

/// The loop's answer to `Open`.
pub(crate) struct Opened {
    pub stream: StreamId,
    pub responses: mpsc::Receiver<WatchResponse>,
    /// Set by the loop when it found the channel full.
    pub starved: Arc<AtomicBool>,
}

/// Closes the stream in the loop when the last half goes.
struct Guard {
    stream: StreamId,
    tx: mpsc::Sender<ClientRequest>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Never blocks; if the queue is full the loop notices the closed channel on a tick.
        let _ = self.tx.try_send(ClientRequest::Watch(WatchRequest::Close {
            stream: self.stream,
        }));
    }
}

/// The sending half of a watch stream (cloneable).
#[derive(Clone)]
pub struct WatchSender {
    guard: Arc<Guard>,
}

/// The receiving half of a watch stream.
pub struct WatchReceiver {
    guard: Arc<Guard>,
    responses: mpsc::Receiver<WatchResponse>,
    starved: Arc<AtomicBool>,
}

/// A watch stream on one member. See the [module docs](self).
pub struct WatchStream {
    sender: WatchSender,
    receiver: WatchReceiver,
}

impl WatchStream {
    pub(crate) fn new(tx: mpsc::Sender<ClientRequest>, opened: Opened) -> WatchStream {
        let guard = Arc::new(Guard {
            stream: opened.stream,
            tx,
        });
        WatchStream {
            sender: WatchSender {
                guard: guard.clone(),
            },
            receiver: WatchReceiver {
                guard,
                responses: opened.responses,
                starved: opened.starved,
            },
        }
    }

    pub fn id(&self) -> StreamId {
        self.sender.id()
    }

    /// etcd's `WatchCreateRequest`. The answer (`created` with the watch id, or `created` and
    /// `canceled` with the reason) arrives through [`next`](Self::next).
    pub async fn create(&self, req: WatchCreateRequest) -> Result<(), ClientError> {
        self.sender.create(req).await
    }

    /// etcd's `WatchCancelRequest`; a `canceled` response follows what was already queued
    /// for the watcher. Unknown ids are ignored, as in etcd.
    pub async fn cancel(&self, watch_id: WatchId) -> Result<(), ClientError> {
        self.sender.cancel(watch_id).await
    }

    /// etcd's `WatchProgressRequest`: a response with watch id -1 and the current revision
    /// once every watcher of the stream is synced.
    pub async fn progress(&self) -> Result<(), ClientError> {
        self.sender.progress().await
    }

    /// The next response; `None` once the stream is closed (the node stopped, or the stream
    /// was closed for sending more requests than the loop would queue).
    pub async fn next(&mut self) -> Option<WatchResponse> {
        self.receiver.next().await
    }

    /// Splits into halves that can live in different tasks; the stream closes when both are
    /// dropped.
    pub fn split(self) -> (WatchSender, WatchReceiver) {
        (self.sender, self.receiver)
    }
}

impl WatchSender {
    pub fn id(&self) -> StreamId {
        self.guard.stream
    }

    /// Completes once the node loop has stopped.
    pub async fn stopped(&self) {
        self.guard.tx.closed().await
    }

    async fn send(&self, req: WatchRequest) -> Result<(), ClientError> {
        self.guard
            .tx
            .send(ClientRequest::Watch(req))
            .await
            .map_err(|_| ClientError::Stopped)
    }

    pub async fn create(&self, req: WatchCreateRequest) -> Result<(), ClientError> {
        let stream = self.id();
        self.send(WatchRequest::Create { stream, req }).await
    }

    pub async fn cancel(&self, watch_id: WatchId) -> Result<(), ClientError> {
        let stream = self.id();
        self.send(WatchRequest::Cancel { stream, watch_id }).await
    }

    pub async fn progress(&self) -> Result<(), ClientError> {
        let stream = self.id();
        self.send(WatchRequest::Progress { stream }).await
    }
}

impl WatchReceiver {
    pub fn id(&self) -> StreamId {
        self.guard.stream
    }

    pub async fn next(&mut self) -> Option<WatchResponse> {
        let response = self.responses.recv().await?;
        if self.starved.swap(false, Ordering::AcqRel) {
            // Best effort: if the loop's queue is full, its next tick delivers instead.
            let _ = self
                .guard
                .tx
                .try_send(ClientRequest::Watch(WatchRequest::Poll));
        }
        Some(response)
    }
}
