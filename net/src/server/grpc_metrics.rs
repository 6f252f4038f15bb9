//! A tower layer over the client listeners that counts gRPC calls as go-grpc-prometheus
//! does (etcd's `grpc_server_started_total` and `grpc_server_handled_total`, by service,
//! method and status code). A call is handled when its status is known: at once for a
//! trailers-only answer (tonic's errors), else when the response body yields its trailers;
//! a response dropped before that (the client went away) counts as `Canceled`. Requests that
//! are not gRPC (`/metrics`, `/health`) are not counted.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use prometheus::IntCounterVec;
use tonic::Code;
use tower::{Layer, Service};

/// Counts the calls of the service it wraps into `grpc_server_*_total`.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    started: IntCounterVec,
    handled: IntCounterVec,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: &super::Metrics) -> GrpcMetricsLayer {
        GrpcMetricsLayer {
            started: metrics.grpc_started.clone(),
            handled: metrics.grpc_handled.clone(),
        }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`GrpcMetricsLayer`] makes.
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    layer: GrpcMetricsLayer,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = http::Response<Counted<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let call = grpc_call(&req).map(|(service, method)| {
            self.layer
                .started
                .with_label_values(&[&service, &method])
                .inc();
            Pending {
                handled: self.layer.handled.clone(),
                service,
                method,
            }
        });
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let pending = match (call, status_of(resp.headers())) {
                (Some(p), Some(code)) => {
                    p.record(code);
                    None
                }
                (call, _) => call,
            };
            Ok(resp.map(|inner| Counted { inner, pending }))
        })
    }
}

/// `(service, method)` of a gRPC request: `POST /pkg.Service/Method` with a gRPC content
/// type.
fn grpc_call<B>(req: &http::Request<B>) -> Option<(String, String)> {
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if !grpc {
        return None;
    }
    let path = req.uri().path().strip_prefix('/')?;
    let (service, method) = path.split_once('/')?;
    Some((service.to_string(), method.to_string()))
}

fn status_of(headers: &http::HeaderMap) -> Option<Code> {
    let v = headers.get("grpc-status")?;
    Some(Code::from_bytes(v.as_bytes()))
}

/// A call whose status is not known yet.
struct Pending {
    handled: IntCounterVec,
    service: String,
    method: String,
}

impl Pending {
    fn record(self, code: Code) {
        self.handled
            .with_label_values(&[&self.service, &self.method, code_name(code)])
            .inc();
    }
}

/// A response body that records its call's status when the trailers go by.
pub struct Counted<B> {
    inner: B,
    pending: Option<Pending>,
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(status_of),
            Poll::Ready(Some(Err(_))) => Some(Some(Code::Unknown)),
            Poll::Ready(None) => Some(None),
            Poll::Pending => None,
        };
        if let Some(code) = code {
            if let Some(p) = this.pending.take() {
                // A gRPC body that ends without a status is an error (gRPC's rule).
                p.record(code.unwrap_or(Code::Unknown));
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.record(Code::Cancelled);
        }
    }
}

/// gRPC's names for the codes, as go-grpc-prometheus labels them.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}
