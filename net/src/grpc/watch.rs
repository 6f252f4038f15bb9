//! The `etcdserverpb.Watch` service, as etcd 3.5's `v3rpc/watch.go`: one gRPC stream is one
//! node watch stream ([`NodeHandle::watch_stream`]), served from this member's applied state.
//!
//! - Requests (create, cancel, progress) are read in order and handed to the node, which
//!   answers every one in order on the stream (`created`, refusals as `created` + `canceled`
//!   with etcd's reason, compaction answers, `canceled`, progress notifications, events).
//!   A request with nothing in it is ignored, as etcd ignores it.
//! - Every response gets the full header: cluster and member ids, the revision the node
//!   reports, and the member's Raft term when it is sent.
//! - A watcher created with `fragment` gets responses larger than the member's request size
//!   limit split into several, all but the last marked `fragment` (etcd's `sendFragments`).
//! - Back-pressure: responses wait in a small channel towards the client; a client that stops
//!   reading stops this relay, and the node's bounded per-stream queue then cancels its slow
//!   watchers with a reason naming the revision to resume from, instead of growing.
//! - When the client closes only its sending side the stream keeps delivering, as etcd does;
//!   when the call ends, the node's stream is closed and its watchers go.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prost::Message as _;
use sextant_core::kv::{Event, EventKind};
use sextant_core::watch::{WatchCreateRequest, WatchFilters, WatchId, WatchResponse};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use super::pb::etcdserverpb as pb;
use super::pb::etcdserverpb::watch_server::Watch;
use super::pb::mvccpb;
use super::status::to_status;
use crate::node::{ClientError, Header, NodeHandle, WatchReceiver, WatchSender};

/// Responses buffered towards one client before the relay stops reading the node's stream.
const RESPONSES_BUFFERED: usize = 16;

pub struct WatchService {
    node: NodeHandle,
    /// Responses of watchers that asked for `fragment` are split above this size (etcd:
    /// `--max-request-bytes`).
    fragment_bytes_max: usize,
}

impl WatchService {
    pub fn new(node: NodeHandle, fragment_bytes_max: usize) -> WatchService {
        WatchService {
            node,
            fragment_bytes_max,
        }
    }

    pub fn server(
        node: NodeHandle,
        fragment_bytes_max: usize,
    ) -> pb::watch_server::WatchServer<WatchService> {
        pb::watch_server::WatchServer::new(WatchService::new(node, fragment_bytes_max))
            .max_encoding_message_size(usize::MAX)
    }
}

/// Which watchers asked for fragmented responses. Creations are answered in the order they
/// were sent, so the flag of each one waits in `pending` until its `created` answer names the
/// watch id.
#[derive(Default)]
struct Fragmenting {
    pending: VecDeque<bool>,
    watchers: BTreeSet<i64>,
}

type Shared = Arc<Mutex<Fragmenting>>;

fn lock(f: &Shared) -> std::sync::MutexGuard<'_, Fragmenting> {
    f.lock().unwrap_or_else(|p| p.into_inner())
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = futures::stream::BoxStream<'static, Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let requests = req.into_inner();
        let stream = self.node.watch_stream().await.map_err(to_status)?;
        let (sender, receiver) = stream.split();
        let fragmenting = Shared::default();
        let (tx, rx) = mpsc::channel(RESPONSES_BUFFERED);
        tokio::spawn(recv_loop(requests, sender, fragmenting.clone()));
        tokio::spawn(send_loop(
            receiver,
            self.node.clone(),
            fragmenting,
            self.fragment_bytes_max,
            tx,
        ));
        let responses =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        Ok(Response::new(Box::pin(responses)))
    }
}

/// Client requests into the node, until the client stops sending (its half-close, or the end
/// of the call). Dropping `sender` at the end leaves the stream to the receiving half.
async fn recv_loop(
    mut requests: Streaming<pb::WatchRequest>,
    sender: WatchSender,
    fragmenting: Shared,
) {
    use pb::watch_request::RequestUnion;
    loop {
        let req = tokio::select! {
            next = requests.message() => match next {
                Ok(Some(req)) => req,
                Ok(None) | Err(_) => return,
            },
            // The node stopped; the receiving half ends the call.
            _ = sender.stopped() => return,
        };
        let sent = match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => {
                lock(&fragmenting).pending.push_back(c.fragment);
                sender.create(create_request(c)).await
            }
            Some(RequestUnion::CancelRequest(c)) => sender.cancel(WatchId(c.watch_id)).await,
            Some(RequestUnion::ProgressRequest(_)) => sender.progress().await,
            None => Ok(()),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// etcd's `WatchCreateRequest` as the node takes it: watch id 0 is etcd's `AutoWatchID`;
/// unknown filter values are ignored.
fn create_request(c: pb::WatchCreateRequest) -> WatchCreateRequest {
    use pb::watch_create_request::FilterType;
    let mut filters = WatchFilters::default();
    for f in &c.filters {
        match FilterType::try_from(*f) {
            Ok(FilterType::Noput) => filters.no_put = true,
            Ok(FilterType::Nodelete) => filters.no_delete = true,
            Err(_) => {}
        }
    }
    WatchCreateRequest {
        key: Bytes::from(c.key),
        range_end: Bytes::from(c.range_end),
        start_revision: c.start_revision,
        watch_id: (c.watch_id != 0).then_some(WatchId(c.watch_id)),
        prev_kv: c.prev_kv,
        progress_notify: c.progress_notify,
        filters,
    }
}

/// The node's responses to the client, until either goes away.
async fn send_loop(
    mut receiver: WatchReceiver,
    node: NodeHandle,
    fragmenting: Shared,
    fragment_bytes_max: usize,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
) {
    loop {
        let next = tokio::select! {
            next = receiver.next() => next,
            _ = tx.closed() => return,
        };
        let Some(r) = next else {
            // The node closed the stream (stopping, or the client flooded it with requests).
            let _ = tx.send(Err(to_status(ClientError::Stopped))).await;
            return;
        };
        let fragment = track(&fragmenting, &r);
        let wire = response(&node, r);
        for part in fragments(wire, fragment.then_some(fragment_bytes_max)) {
            if tx.send(Ok(part)).await.is_err() {
                return;
            }
        }
    }
}

/// Updates which watchers fragment from `r` and says whether `r` may be fragmented.
fn track(fragmenting: &Shared, r: &WatchResponse) -> bool {
    let mut f = lock(fragmenting);
    if r.created {
        let wants = f.pending.pop_front().unwrap_or(false);
        if wants && !r.canceled {
            f.watchers.insert(r.watch_id.0);
        }
    }
    let fragment = f.watchers.contains(&r.watch_id.0);
    if r.canceled {
        f.watchers.remove(&r.watch_id.0);
    }
    fragment
}

fn response(node: &NodeHandle, r: WatchResponse) -> pb::WatchResponse {
    pb::WatchResponse {
        header: convert::header(Header {
            cluster_id: node.cluster_id(),
            member_id: node.member_id(),
            revision: r.header_revision,
            raft_term: node.raft_term(),
        }),
        watch_id: r.watch_id.0,
        created: r.created,
        canceled: r.canceled,
        compact_revision: r.compact_revision,
        cancel_reason: r.cancel_reason,
        fragment: false,
        events: r.events.into_iter().map(event).collect(),
    }
}

fn event(e: Event) -> mvccpb::Event {
    let kind = match e.kind {
        EventKind::Put => mvccpb::event::EventType::Put,
        EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(convert::kv(e.kv)),
        prev_kv: e.prev_kv.map(convert::kv),
    }
}

/// etcd's `sendFragments`: a response of at least `bytes_max` encoded bytes with two or more
/// events is split into responses that each stay below `bytes_max` (or hold a single event),
/// all but the last marked `fragment`. `None`: never split.
fn fragments(r: pb::WatchResponse, bytes_max: Option<usize>) -> Vec<pb::WatchResponse> {
    let Some(bytes_max) = bytes_max else {
        return vec![r];
    };
    if r.encoded_len() < bytes_max || r.events.len() < 2 {
        return vec![r];
    }
    let mut shell = r;
    let events = std::mem::take(&mut shell.events);
    let shell_bytes = shell.encoded_len();
    let mut parts = Vec::new();
    let mut current: Vec<mvccpb::Event> = Vec::new();
    let mut current_bytes = shell_bytes;
    for e in events {
        // The event's size as a repeated field: tag, length prefix, body.
        let e_bytes = 1 + prost::length_delimiter_len(e.encoded_len()) + e.encoded_len();
        if !current.is_empty() && current_bytes + e_bytes >= bytes_max {
            parts.push(pb::WatchResponse {
                events: std::mem::take(&mut current),
                fragment: true,
                ..shell.clone()
            });
            current_bytes = shell_bytes;
        }
        current_bytes += e_bytes;
        current.push(e);
    }
    parts.push(pb::WatchResponse {
        events: current,
        fragment: false,
        ..shell
    });
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value_bytes: usize) -> mvccpb::Event {
        mvccpb::Event {
            r#type: 0,
            kv: Some(mvccpb::KeyValue {
                key: key.into(),
                value: vec![b'v'; value_bytes],
                mod_revision: 7,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    fn with_events(events: Vec<mvccpb::Event>) -> pb::WatchResponse {
        pb::WatchResponse {
            header: Some(pb::ResponseHeader {
                revision: 7,
                ..Default::default()
            }),
            watch_id: 3,
            events,
            ..Default::default()
        }
    }

    #[test]
    fn small_or_single_event_responses_are_not_split() {
        let r = with_events(vec![put("a", 10), put("b", 10)]);
        assert_eq!(fragments(r.clone(), Some(1024)), vec![r.clone()]);
        assert_eq!(fragments(r.clone(), None), vec![r]);
        let big = with_events(vec![put("a", 4096)]);
        assert_eq!(fragments(big.clone(), Some(1024)), vec![big]);
    }

    #[test]
    fn large_responses_split_below_the_limit_in_order() {
        let events: Vec<_> = (0..10).map(|i| put(&format!("k{i}"), 300)).collect();
        let parts = fragments(with_events(events.clone()), Some(1024));
        assert!(parts.len() > 1);
        let (last, rest) = parts.split_last().unwrap();
        assert!(rest.iter().all(|p| p.fragment) && !last.fragment);
        for p in &parts {
            assert!(
                p.encoded_len() < 1024 || p.events.len() == 1,
                "{}",
                p.encoded_len()
            );
            assert_eq!((p.watch_id, p.header), (3, with_events(vec![]).header));
        }
        let joined: Vec<_> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);
    }
}
