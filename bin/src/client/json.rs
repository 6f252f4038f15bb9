//! `-w json`: responses rendered as etcdctl renders them, i.e. Go's `encoding/json` of the
//! etcd message: etcd's field names (`cluster_id`, `create_revision`, `dbSize`, `peerURLs`),
//! zero fields left out (`omitempty`), bytes in standard base64, enums as numbers, and the
//! clientv3 wrapper shapes where etcdctl prints those (lease and watch responses).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{Map, Value};
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::response_op::Response;
use sextant_net::grpc::pb::mvccpb;

/// A JSON object whose zero-valued fields are omitted, as Go's `omitempty` does.
#[derive(Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    pub fn new() -> Obj {
        Obj::default()
    }
    pub fn u64(mut self, k: &str, v: u64) -> Obj {
        if v != 0 {
            self.0.insert(k.into(), v.into());
        }
        self
    }
    pub fn i64(mut self, k: &str, v: i64) -> Obj {
        if v != 0 {
            self.0.insert(k.into(), v.into());
        }
        self
    }
    pub fn bool(mut self, k: &str, v: bool) -> Obj {
        if v {
            self.0.insert(k.into(), v.into());
        }
        self
    }
    pub fn str(mut self, k: &str, v: &str) -> Obj {
        if !v.is_empty() {
            self.0.insert(k.into(), v.into());
        }
        self
    }
    pub fn bytes(mut self, k: &str, v: &[u8]) -> Obj {
        if !v.is_empty() {
            self.0.insert(k.into(), BASE64.encode(v).into());
        }
        self
    }
    pub fn value(mut self, k: &str, v: Option<Value>) -> Obj {
        if let Some(v) = v {
            self.0.insert(k.into(), v);
        }
        self
    }
    pub fn list(mut self, k: &str, v: Vec<Value>) -> Obj {
        if !v.is_empty() {
            self.0.insert(k.into(), Value::Array(v));
        }
        self
    }
    /// A field without `omitempty` (always present).
    pub fn always(mut self, k: &str, v: Value) -> Obj {
        self.0.insert(k.into(), v);
        self
    }
    /// The header's fields promoted into this object (clientv3 embeds `*pb.ResponseHeader`).
    pub fn embed_header(mut self, h: Option<&pb::ResponseHeader>) -> Obj {
        if let Some(Value::Object(m)) = h.map(header) {
            self.0.extend(m);
        }
        self
    }
    pub fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// Prints one JSON document on its own line (etcdctl's `printJSON`).
pub fn print(v: &Value) {
    println!("{v}");
}

pub fn header(h: &pb::ResponseHeader) -> Value {
    Obj::new()
        .u64("cluster_id", h.cluster_id)
        .u64("member_id", h.member_id)
        .i64("revision", h.revision)
        .u64("raft_term", h.raft_term)
        .done()
}

fn opt_header(h: &Option<pb::ResponseHeader>) -> Option<Value> {
    h.as_ref().map(header)
}

pub fn key_value(kv: &mvccpb::KeyValue) -> Value {
    Obj::new()
        .bytes("key", &kv.key)
        .i64("create_revision", kv.create_revision)
        .i64("mod_revision", kv.mod_revision)
        .i64("version", kv.version)
        .bytes("value", &kv.value)
        .i64("lease", kv.lease)
        .done()
}

pub fn range(r: &pb::RangeResponse) -> Value {
    Obj::new()
        .value("header", opt_header(&r.header))
        .list("kvs", r.kvs.iter().map(key_value).collect())
        .bool("more", r.more)
        .i64("count", r.count)
        .done()
}

pub fn put(r: &pb::PutResponse) -> Value {
    Obj::new()
        .value("header", opt_header(&r.header))
        .value("prev_kv", r.prev_kv.as_ref().map(key_value))
        .done()
}

pub fn delete(r: &pb::DeleteRangeResponse) -> Value {
    Obj::new()
        .value("header", opt_header(&r.header))
        .i64("deleted", r.deleted)
        .list("prev_kvs", r.prev_kvs.iter().map(key_value).collect())
        .done()
}

/// A txn response; each `ResponseOp` shows its oneof as Go does (`{"Response":{…}}`).
pub fn txn(r: &pb::TxnResponse) -> Value {
    let responses = r
        .responses
        .iter()
        .map(|op| {
            let inner = match &op.response {
                Some(Response::ResponseRange(r)) => Obj::new().always("response_range", range(r)),
                Some(Response::ResponsePut(r)) => Obj::new().always("response_put", put(r)),
                Some(Response::ResponseDeleteRange(r)) => {
                    Obj::new().always("response_delete_range", delete(r))
                }
                Some(Response::ResponseTxn(r)) => Obj::new().always("response_txn", txn(r)),
                None => Obj::new(),
            };
            Obj::new().always("Response", inner.done()).done()
        })
        .collect();
    Obj::new()
        .value("header", opt_header(&r.header))
        .bool("succeeded", r.succeeded)
        .list("responses", responses)
        .done()
}

pub fn header_only(h: &Option<pb::ResponseHeader>) -> Value {
    Obj::new().value("header", opt_header(h)).done()
}

pub fn status(r: &pb::StatusResponse) -> Value {
    Obj::new()
        .value("header", opt_header(&r.header))
        .str("version", &r.version)
        .i64("dbSize", r.db_size)
        .u64("leader", r.leader)
        .u64("raftIndex", r.raft_index)
        .u64("raftTerm", r.raft_term)
        .u64("raftAppliedIndex", r.raft_applied_index)
        .list(
            "errors",
            r.errors.iter().map(|e| e.as_str().into()).collect(),
        )
        .i64("dbSizeInUse", r.db_size_in_use)
        .bool("isLearner", r.is_learner)
        .done()
}

pub fn hash_kv(r: &pb::HashKvResponse) -> Value {
    Obj::new()
        .value("header", opt_header(&r.header))
        .u64("hash", u64::from(r.hash))
        .i64("compact_revision", r.compact_revision)
        .i64("hash_revision", r.hash_revision)
        .done()
}

pub fn member(m: &pb::Member) -> Value {
    let urls = |v: &[String]| v.iter().map(|u| u.as_str().into()).collect();
    Obj::new()
        .u64("ID", m.id)
        .str("name", &m.name)
        .list("peerURLs", urls(&m.peer_ur_ls))
        .list("clientURLs", urls(&m.client_ur_ls))
        .bool("isLearner", m.is_learner)
        .done()
}

/// A membership response: header, the members, and the added member where there is one.
pub fn members(
    h: &Option<pb::ResponseHeader>,
    added: Option<&pb::Member>,
    members: &[pb::Member],
) -> Value {
    Obj::new()
        .value("header", opt_header(h))
        .value("member", added.map(member))
        .list("members", members.iter().map(member).collect())
        .done()
}

pub fn alarms(r: &pb::AlarmResponse) -> Value {
    let alarms = r
        .alarms
        .iter()
        .map(|a| {
            Obj::new()
                .u64("memberID", a.member_id)
                .i64("alarm", a.alarm.into())
                .done()
        })
        .collect();
    Obj::new()
        .value("header", opt_header(&r.header))
        .list("alarms", alarms)
        .done()
}

/// An event as `mvccpb.Event` marshals (`type` 0 = PUT is omitted).
pub fn event(e: &mvccpb::Event) -> Value {
    Obj::new()
        .i64("type", e.r#type.into())
        .value("kv", e.kv.as_ref().map(key_value))
        .value("prev_kv", e.prev_kv.as_ref().map(key_value))
        .done()
}

/// clientv3's `WatchResponse` (exported Go field names, no `omitempty`).
pub fn watch(r: &pb::WatchResponse) -> Value {
    let hdr = r
        .header
        .as_ref()
        .map(header)
        .unwrap_or(Value::Object(Map::new()));
    let events = r.events.iter().map(event).collect::<Vec<_>>();
    Obj::new()
        .always("Header", hdr)
        .always(
            "Events",
            if events.is_empty() {
                Value::Null
            } else {
                Value::Array(events)
            },
        )
        .always("CompactRevision", r.compact_revision.into())
        .always("Canceled", r.canceled.into())
        .always("Created", r.created.into())
        .done()
}

/// clientv3's `LeaseGrantResponse`.
pub fn lease_grant(r: &pb::LeaseGrantResponse) -> Value {
    Obj::new()
        .embed_header(r.header.as_ref())
        .always("ID", r.id.into())
        .always("TTL", r.ttl.into())
        .always("Error", r.error.as_str().into())
        .done()
}

/// clientv3's `LeaseKeepAliveResponse`.
pub fn lease_keep_alive(r: &pb::LeaseKeepAliveResponse) -> Value {
    Obj::new()
        .embed_header(r.header.as_ref())
        .always("ID", r.id.into())
        .always("TTL", r.ttl.into())
        .done()
}

/// clientv3's `LeaseTimeToLiveResponse` (its own json tags).
pub fn lease_time_to_live(r: &pb::LeaseTimeToLiveResponse) -> Value {
    let keys = if r.keys.is_empty() {
        Value::Null
    } else {
        r.keys
            .iter()
            .map(|k| Value::String(BASE64.encode(k)))
            .collect()
    };
    Obj::new()
        .embed_header(r.header.as_ref())
        .always("id", r.id.into())
        .always("ttl", r.ttl.into())
        .always("granted-ttl", r.granted_ttl.into())
        .always("keys", keys)
        .done()
}

/// clientv3's `LeaseLeasesResponse`.
pub fn lease_leases(r: &pb::LeaseLeasesResponse) -> Value {
    let leases = if r.leases.is_empty() {
        Value::Null
    } else {
        r.leases
            .iter()
            .map(|l| Obj::new().always("id", l.id.into()).done())
            .collect()
    };
    Obj::new()
        .embed_header(r.header.as_ref())
        .always("leases", leases)
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: 14841639068965178418,
            member_id: 10276657743932975437,
            revision: 7,
            raft_term: 2,
        })
    }

    fn kv() -> mvccpb::KeyValue {
        mvccpb::KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 7,
            version: 3,
            value: b"bar".to_vec(),
            lease: 0,
        }
    }

    #[test]
    fn range_matches_etcdctl() {
        let r = pb::RangeResponse {
            header: hdr(),
            kvs: vec![kv()],
            more: false,
            count: 1,
        };
        assert_eq!(
            range(&r).to_string(),
            r#"{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":7,"raft_term":2},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":7,"version":3,"value":"YmFy"}],"count":1}"#
        );
    }

    #[test]
    fn empty_range_omits_zero_fields() {
        let r = pb::RangeResponse {
            header: Some(pb::ResponseHeader {
                revision: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(range(&r).to_string(), r#"{"header":{"revision":1}}"#);
    }

    #[test]
    fn txn_wraps_oneof_like_go() {
        let r = pb::TxnResponse {
            header: hdr(),
            succeeded: true,
            responses: vec![pb::ResponseOp {
                response: Some(Response::ResponsePut(pb::PutResponse {
                    header: Some(pb::ResponseHeader {
                        revision: 7,
                        ..Default::default()
                    }),
                    prev_kv: None,
                })),
            }],
        };
        let v = txn(&r);
        assert_eq!(v["succeeded"], true);
        assert_eq!(
            v["responses"][0].to_string(),
            r#"{"Response":{"response_put":{"header":{"revision":7}}}}"#
        );
    }

    #[test]
    fn delete_event_has_numeric_type_and_put_omits_it() {
        let del = mvccpb::Event {
            r#type: mvccpb::event::EventType::Delete.into(),
            kv: Some(mvccpb::KeyValue {
                key: b"k".to_vec(),
                mod_revision: 9,
                ..Default::default()
            }),
            prev_kv: None,
        };
        assert_eq!(
            event(&del).to_string(),
            r#"{"type":1,"kv":{"key":"aw==","mod_revision":9}}"#
        );
        let put = mvccpb::Event {
            r#type: mvccpb::event::EventType::Put.into(),
            kv: Some(kv()),
            prev_kv: None,
        };
        assert!(event(&put).get("type").is_none());
    }

    #[test]
    fn lease_grant_promotes_header_fields() {
        let r = pb::LeaseGrantResponse {
            header: Some(pb::ResponseHeader {
                revision: 3,
                ..Default::default()
            }),
            id: 0x694d77aa9e38260f,
            ttl: 60,
            error: String::new(),
        };
        assert_eq!(
            lease_grant(&r).to_string(),
            r#"{"revision":3,"ID":7587852521871779343,"TTL":60,"Error":""}"#
        );
    }

    #[test]
    fn status_and_member_use_etcd_camel_case_names() {
        let s = pb::StatusResponse {
            header: None,
            version: "3.5.0".into(),
            db_size: 4096,
            leader: 5,
            raft_index: 10,
            raft_term: 2,
            raft_applied_index: 10,
            errors: vec![],
            db_size_in_use: 0,
            is_learner: false,
        };
        assert_eq!(
            status(&s).to_string(),
            r#"{"version":"3.5.0","dbSize":4096,"leader":5,"raftIndex":10,"raftTerm":2,"raftAppliedIndex":10}"#
        );
        let m = pb::Member {
            id: 1,
            name: "n1".into(),
            peer_ur_ls: vec!["http://a:2380".into()],
            client_ur_ls: vec![],
            is_learner: true,
        };
        assert_eq!(
            member(&m).to_string(),
            r#"{"ID":1,"name":"n1","peerURLs":["http://a:2380"],"isLearner":true}"#
        );
    }
}
