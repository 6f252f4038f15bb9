//! etcdctl's simple output: key/value lines, event and lease lines, and the small formatting
//! helpers it uses (humanized byte sizes, Go-style durations).

use std::time::Duration;

use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::etcdserverpb::response_op::Response;
use sextant_net::grpc::pb::mvccpb;

/// What `get` prints: a flag set shared by `get` and txn's `get` ops.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvStyle {
    pub value_only: bool,
}

/// The key line then the value line (only the value with `--print-value-only`).
pub fn print_kv(kv: &mvccpb::KeyValue, style: KvStyle) {
    if !style.value_only {
        println!("{}", String::from_utf8_lossy(&kv.key));
    }
    println!("{}", String::from_utf8_lossy(&kv.value));
}

pub fn print_range(r: &pb::RangeResponse, style: KvStyle) {
    for kv in &r.kvs {
        print_kv(kv, style);
    }
}

pub fn print_put(r: &pb::PutResponse) {
    println!("OK");
    if let Some(kv) = &r.prev_kv {
        print_kv(kv, KvStyle::default());
    }
}

pub fn print_delete(r: &pb::DeleteRangeResponse) {
    println!("{}", r.deleted);
    for kv in &r.prev_kvs {
        print_kv(kv, KvStyle::default());
    }
}

/// `SUCCESS`/`FAILURE`, then each op's result after a blank line.
pub fn print_txn(r: &pb::TxnResponse) {
    println!("{}", if r.succeeded { "SUCCESS" } else { "FAILURE" });
    for op in &r.responses {
        println!();
        match &op.response {
            Some(Response::ResponseRange(r)) => print_range(r, KvStyle::default()),
            Some(Response::ResponsePut(r)) => print_put(r),
            Some(Response::ResponseDeleteRange(r)) => print_delete(r),
            Some(Response::ResponseTxn(r)) => print_txn(r),
            None => println!("unexpected empty response"),
        }
    }
}

/// Each event: `PUT`/`DELETE`, the previous pair (with `--prev-kv`), then the pair.
pub fn print_events(r: &pb::WatchResponse) {
    for e in &r.events {
        let kind = match mvccpb::event::EventType::try_from(e.r#type) {
            Ok(mvccpb::event::EventType::Put) => "PUT",
            Ok(mvccpb::event::EventType::Delete) => "DELETE",
            Err(_) => "UNKNOWN",
        };
        println!("{kind}");
        if let Some(prev) = &e.prev_kv {
            print_kv(prev, KvStyle::default());
        }
        if let Some(kv) = &e.kv {
            print_kv(kv, KvStyle::default());
        }
    }
}

/// go-humanize's `Bytes`: SI units, one decimal below 10 (`8.2 kB`, `25 MB`, `512 B`).
pub fn humanize_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / 1000f64.ln()).floor() as usize;
    let exp = exp.min(UNITS.len() - 1);
    let val = (bytes as f64 / 1000f64.powi(exp as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[exp])
    } else {
        format!("{val:.0} {}", UNITS[exp])
    }
}

/// Go's `time.Duration.String()` for durations under a minute (`850µs`, `2.044ms`, `1.5s`).
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    let (value, unit, scale) = if nanos < 1_000 {
        return format!("{nanos}ns");
    } else if nanos < 1_000_000 {
        (nanos, "µs", 1_000u128)
    } else if nanos < 1_000_000_000 {
        (nanos, "ms", 1_000_000)
    } else {
        (nanos, "s", 1_000_000_000)
    };
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return format!("{whole}{unit}");
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}{unit}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanized_like_go_humanize() {
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(512), "512 B");
        assert_eq!(humanize_bytes(8192), "8.2 kB");
        assert_eq!(humanize_bytes(25_000_000), "25 MB");
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(go_duration(Duration::from_nanos(850)), "850ns");
        assert_eq!(go_duration(Duration::from_micros(2044)), "2.044ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(3)), "3ms");
    }
}
