//! One TCP connection to a broker: handshake, a reader task that routes frames to requests,
//! producers and consumers, a writer task that batches frames into few writes, and keep-alive.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use parking_lot::Mutex;
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload, PulsarCodec};
use strata_proto::frame_writer::FrameWriter;
use strata_proto::outgoing::Outgoing;
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::{BaseCommand, CommandMessage};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::error::{ClientError, Result};
use crate::inflight::Inflight;
use crate::receipt_batch::ReceiptBatch;

/// Protocol version this client announces in CONNECT.
pub const CLIENT_PROTOCOL_VERSION: i32 = 20;
/// Keep-alive period: a PING after this much silence, the connection dies after three.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Frames queued for the writer before senders wait.
const OUTBOUND_QUEUE: usize = 4096;

/// What the reader task hands to a consumer (tagged with the consumer's partition slot).
// Message is the common variant: boxing it would add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum ConsumerEvent {
    Message {
        slot: usize,
        command: CommandMessage,
        payload: Option<Payload>,
    },
    ActiveChange {
        slot: usize,
        active: bool,
    },
    EndOfTopic {
        slot: usize,
    },
    Closed {
        slot: usize,
    },
}

#[derive(Default)]
struct Routes {
    requests: HashMap<u64, oneshot::Sender<Result<BaseCommand>>>,
    producers: HashMap<u64, Arc<Inflight>>,
    consumers: HashMap<u64, (usize, mpsc::UnboundedSender<ConsumerEvent>)>,
}

struct Shared {
    routes: Mutex<Routes>,
    closed: AtomicBool,
}

impl Shared {
    fn close_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let routes = std::mem::take(&mut *self.routes.lock());
        for (_, tx) in routes.requests {
            let _ = tx.send(Err(ClientError::Disconnected));
        }
        for (_, inflight) in routes.producers {
            inflight.close();
        }
        for (_, (slot, tx)) in routes.consumers {
            let _ = tx.send(ConsumerEvent::Closed { slot });
        }
    }
}

/// A live connection. Cheap to share (`Arc`); dropping the last handle closes it.
pub struct Connection {
    url: String,
    out: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
    ids: AtomicU64,
    cancel: CancellationToken,
    tracker: TaskTracker,
    max_message_size: usize,
    op_timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .finish()
    }
}

/// `pulsar://host:port` or `pulsar+ssl://host:port` → `host:port`.
pub fn socket_addr_of(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("pulsar://")
        .or_else(|| url.strip_prefix("pulsar+ssl://"))
        .ok_or_else(|| ClientError::InvalidUrl(url.to_owned()))?;
    let hostport = rest.trim_end_matches('/');
    // A service URL may list several hosts; take the first.
    let first = hostport.split(',').next().unwrap_or_default();
    if first.is_empty() || !first.contains(':') {
        return Err(ClientError::InvalidUrl(url.to_owned()));
    }
    Ok(first.to_owned())
}

/// How connections authenticate and encrypt, and how many a client keeps to each broker.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// A token sent in CONNECT (method `token`) and in answers to AUTH_CHALLENGE.
    pub auth_token: Option<String>,
    /// CA certificates (PEM) that sign the brokers' certificates (`pulsar+ssl://` URLs). The
    /// chain is verified and the host name checked.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// A client certificate and key (PEM) for mTLS; with no token the client authenticates
    /// with method `tls` (the certificate's CN is the role).
    pub tls_identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Connections the client keeps to each broker (the Java client's `connectionsPerBroker`;
    /// 0 counts as 1). Each producer and consumer uses one of them, taken in turn: a broker
    /// bounds the SENDs it has pending per connection, so many producers of one client need
    /// several connections to have more of them in flight.
    pub connections_per_broker: usize,
}

impl ConnectOptions {
    /// `(method, data)` sent in CONNECT.
    fn auth(&self) -> Option<(String, Bytes)> {
        match (&self.auth_token, &self.tls_identity) {
            (Some(t), _) => Some(("token".to_owned(), Bytes::from(t.clone()))),
            (None, Some(_)) => Some(("tls".to_owned(), Bytes::new())),
            (None, None) => None,
        }
    }

    fn tls_connector(&self) -> Result<tokio_rustls::TlsConnector> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let tls_err = |m: String| ClientError::Tls(m);
        let ca = self
            .tls_ca_file
            .as_ref()
            .ok_or_else(|| tls_err("a pulsar+ssl:// URL needs a CA file (--tls-ca-file)".into()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .map_err(|e| tls_err(format!("read {}: {e}", ca.display())))?
        {
            let cert = cert.map_err(|e| tls_err(format!("parse {}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| tls_err(format!("{}: {e}", ca.display())))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(e.to_string()))?
            .with_root_certificates(roots);
        let config = match &self.tls_identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| tls_err(format!("read {}: {e}", cert.display())))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| tls_err(format!("parse {}: {e}", cert.display())))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| tls_err(format!("read {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_err(e.to_string()))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

type BoxRead = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

impl Connection {
    /// Connects to `url` (`pulsar://host:port`) and performs the CONNECT/CONNECTED handshake.
    ///
    /// # Cancel safety
    /// Not cancel-safe: a cancelled call may leave a half-open socket that is then dropped.
    pub async fn connect(url: &str, op_timeout: Duration) -> Result<Arc<Connection>> {
        Self::connect_with(url, op_timeout, &ConnectOptions::default()).await
    }

    /// Connects to `url` (`pulsar://` or `pulsar+ssl://`) with `opts` (token, TLS).
    ///
    /// # Cancel safety
    /// Not cancel-safe: a cancelled call may leave a half-open socket that is then dropped.
    pub async fn connect_with(
        url: &str,
        op_timeout: Duration,
        opts: &ConnectOptions,
    ) -> Result<Arc<Connection>> {
        let addr = socket_addr_of(url)?;
        let stream = tokio::time::timeout(op_timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| ClientError::Timeout("tcp connect"))??;
        stream.set_nodelay(true)?;
        let (r, w): (BoxRead, BoxWrite) = if url.starts_with("pulsar+ssl://") {
            let host = addr
                .rsplit_once(':')
                .map_or(addr.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| ClientError::Tls(format!("bad server name in {url}: {e}")))?;
            let tls = tokio::time::timeout(op_timeout, opts.tls_connector()?.connect(name, stream))
                .await
                .map_err(|_| ClientError::Timeout("tls handshake"))?
                .map_err(|e| ClientError::Tls(format!("handshake with {addr}: {e}")))?;
            let (r, w) = tokio::io::split(tls);
            (Box::new(r), Box::new(w))
        } else {
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        };
        let mut reader = FramedRead::new(r, PulsarCodec::new());
        let mut writer = FramedWrite::new(w, PulsarCodec::new());
        let version = concat!("strata-client-", env!("CARGO_PKG_VERSION"));
        writer
            .send(Frame::simple(commands::connect(
                version,
                CLIENT_PROTOCOL_VERSION,
                opts.auth(),
            )))
            .await?;
        let answer = tokio::time::timeout(op_timeout, reader.next())
            .await
            .map_err(|_| ClientError::Timeout("CONNECTED"))?
            .ok_or(ClientError::Disconnected)??
            .map_err(|bad| ClientError::Protocol(bad.to_string()))?;
        let command = *answer.command;
        let max_message_size = match (command.connected, command.error) {
            (Some(c), _) => c
                .max_message_size
                .and_then(|m| usize::try_from(m).ok())
                .filter(|m| *m > 0)
                .unwrap_or(strata_proto::frame::DEFAULT_MAX_MESSAGE_SIZE),
            (None, Some(e)) => return Err(ClientError::server(e.error, e.message)),
            _ => return Err(ClientError::Protocol("expected CONNECTED".into())),
        };
        reader.decoder_mut().set_max_message_size(max_message_size);
        writer.encoder_mut().set_max_message_size(max_message_size);

        let shared = Arc::new(Shared {
            routes: Mutex::new(Routes::default()),
            closed: AtomicBool::new(false),
        });
        let (out, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let max_frame_size = writer.encoder().max_frame_size();
        tracker.spawn(write_loop(
            writer.into_inner(),
            max_frame_size,
            out_rx,
            cancel.clone(),
            shared.clone(),
        ));
        tracker.spawn(read_loop(
            reader,
            opts.auth(),
            out.clone(),
            cancel.clone(),
            shared.clone(),
        ));
        tracker.close();
        debug!(url, "connected");
        Ok(Arc::new(Connection {
            url: url.to_owned(),
            out,
            shared,
            ids: AtomicU64::new(1),
            cancel,
            tracker,
            max_message_size,
            op_timeout,
        }))
    }

    /// The broker URL of this connection.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the connection has failed or been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst) || self.cancel.is_cancelled()
    }

    /// How long an operation on this connection may take.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// The broker's `max_message_size`.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// A fresh id for requests, producers and consumers on this connection.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues a frame for the writer (waits when the queue is full).
    pub async fn send(&self, frame: Frame) -> Result<()> {
        self.out
            .send(Outgoing::Frame(frame))
            .await
            .map_err(|_| ClientError::Disconnected)
    }

    /// A place in the queue for one frame (waits while the queue is full).
    pub(crate) async fn reserve(&self) -> Result<mpsc::Permit<'_, Outgoing>> {
        self.out
            .reserve()
            .await
            .map_err(|_| ClientError::Disconnected)
    }

    /// Queues a frame without waiting (fails when the queue is full or the connection closed).
    pub fn try_send(&self, frame: Frame) -> Result<()> {
        self.out
            .try_send(Outgoing::Frame(frame))
            .map_err(|_| ClientError::Disconnected)
    }

    /// Sends `command` (which carries `request_id`) and waits for the answer with the same id.
    /// An ERROR answer becomes [`ClientError::Server`].
    pub async fn request(&self, request_id: u64, command: BaseCommand) -> Result<BaseCommand> {
        let (tx, rx) = oneshot::channel();
        {
            if self.is_closed() {
                return Err(ClientError::Disconnected);
            }
            self.shared.routes.lock().requests.insert(request_id, tx);
        }
        if let Err(e) = self.send(Frame::simple(command)).await {
            self.shared.routes.lock().requests.remove(&request_id);
            return Err(e);
        }
        let answer = match tokio::time::timeout(self.op_timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(ClientError::Disconnected),
            Err(_) => {
                self.shared.routes.lock().requests.remove(&request_id);
                return Err(ClientError::Timeout("broker answer"));
            }
        };
        if let Some(e) = answer.error {
            return Err(ClientError::server(e.error, e.message));
        }
        Ok(answer)
    }

    /// Routes producer `id`'s receipts and errors to `inflight` (resolved by the reader task).
    pub(crate) fn register_producer(&self, id: u64, inflight: Arc<Inflight>) {
        self.shared.routes.lock().producers.insert(id, inflight);
    }

    /// Stops routing producer `id`'s receipts; what it still has in flight is not answered
    /// (the producer is closed).
    pub(crate) fn unregister_producer(&self, id: u64) {
        let inflight = self.shared.routes.lock().producers.remove(&id);
        if let Some(inflight) = inflight {
            inflight.close();
        }
    }

    pub(crate) fn register_consumer(
        &self,
        id: u64,
        slot: usize,
        tx: mpsc::UnboundedSender<ConsumerEvent>,
    ) {
        self.shared.routes.lock().consumers.insert(id, (slot, tx));
    }

    pub(crate) fn unregister_consumer(&self, id: u64) {
        self.shared.routes.lock().consumers.remove(&id);
    }

    /// Closes the connection and waits for its tasks.
    pub async fn close(&self) {
        self.cancel.cancel();
        self.tracker.wait().await;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn write_loop(
    w: BoxWrite,
    max_frame_size: usize,
    mut rx: mpsc::Receiver<Outgoing>,
    cancel: CancellationToken,
    shared: Arc<Shared>,
) {
    let mut w = FrameWriter::new(w);
    // made once: a new one per pass would register with (and leave) the token's waiters
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let first = tokio::select! {
            _ = &mut cancelled => {
                // Closing: write what is already queued (acks, CLOSE_*), bounded in time.
                let drain = async {
                    while let Ok(o) = rx.try_recv() {
                        if w.encode(&o, max_frame_size).is_err() {
                            break;
                        }
                    }
                    let _ = w.write().await;
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                break;
            }
            o = rx.recv() => match o { Some(o) => o, None => break },
        };
        // The task that queued this frame woke this one, which tokio runs right after it: let
        // the other ready tasks (producers, consumers acking) queue theirs first, so that they
        // share one write.
        tokio::task::yield_now().await;
        // Coalesce whatever else is queued into the same write (frames can be up to the
        // broker's `max_message_size`: the writer bounds the buffer).
        let mut res = w.encode(&first, max_frame_size);
        let mut n = 1;
        while res.is_ok() && n < 256 && !w.is_full() {
            match rx.try_recv() {
                Ok(o) => {
                    res = w.encode(&o, max_frame_size);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = res {
            warn!(error = %e, "frame not encoded; closing connection");
            break;
        }
        if let Err(e) = w.write().await {
            warn!(error = %e, "write failed; closing connection");
            break;
        }
    }
    cancel.cancel();
    shared.close_all();
}

async fn read_loop(
    mut reader: FramedRead<BoxRead, PulsarCodec>,
    auth: Option<(String, Bytes)>,
    out: mpsc::Sender<Outgoing>,
    cancel: CancellationToken,
    shared: Arc<Shared>,
) {
    let mut silent_periods = 0u32;
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.tick().await;
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let mut receipts = ReceiptBatch::default();
    let producer = |id: u64| shared.routes.lock().producers.get(&id).cloned();
    loop {
        // receipts are collected while frames can be read without waiting (see
        // `receipt_batch`), and answered before the reader waits
        let ready = match receipts.is_empty() {
            true => None,
            false => reader.next().now_or_never(),
        };
        let item = if let Some(item) = ready {
            item
        } else {
            receipts.answer(producer);
            tokio::select! {
            _ = &mut cancelled => break,
            _ = tick.tick() => {
                silent_periods += 1;
                if silent_periods >= 3 {
                    warn!("broker stopped answering pings; closing connection");
                    break;
                }
                let _ = out.try_send(Frame::simple(commands::ping()).into());
                continue;
            }
            item = reader.next() => item,
            }
        };
        silent_periods = 0;
        let frame = match item {
            None => {
                debug!("broker closed the connection");
                break;
            }
            Some(Err(e)) => {
                warn!(error = %e, "bad frame from broker; closing connection");
                break;
            }
            Some(Ok(Err(bad))) => {
                warn!(error = %bad, "dropping frame with a bad payload");
                continue;
            }
            Some(Ok(Ok(mut frame))) => {
                if let Some(r) = frame.command.send_receipt.take() {
                    receipts.push(*r, producer);
                    continue;
                }
                frame
            }
        };
        // answers keep the broker's order
        receipts.answer(producer);
        route(frame, auth.as_ref(), &out, &shared);
    }
    receipts.answer(producer);
    cancel.cancel();
    shared.close_all();
}

/// The request id of a response command, if it is one.
fn response_request_id(c: &BaseCommand) -> Option<u64> {
    c.success
        .as_ref()
        .map(|x| x.request_id)
        .or(c.error.as_ref().map(|x| x.request_id))
        .or(c.producer_success.as_ref().map(|x| x.request_id))
        .or(c.lookup_topic_response.as_ref().map(|x| x.request_id))
        .or(c.partition_metadata_response.as_ref().map(|x| x.request_id))
        .or(c
            .get_last_message_id_response
            .as_ref()
            .map(|x| x.request_id))
        .or(c
            .get_topics_of_namespace_response
            .as_ref()
            .map(|x| x.request_id))
        .or(c.get_schema_response.as_ref().map(|x| x.request_id))
        .or(c
            .get_or_create_schema_response
            .as_ref()
            .map(|x| x.request_id))
        .or(c.consumer_stats_response.as_ref().map(|x| x.request_id))
        .or(c.ack_response.as_ref().and_then(|x| x.request_id))
}

fn route(
    frame: Frame,
    auth: Option<&(String, Bytes)>,
    out: &mpsc::Sender<Outgoing>,
    shared: &Shared,
) {
    let Frame { command, payload } = frame;
    let command = *command;
    let t = Type::try_from(command.r#type).ok();
    match t {
        Some(Type::Ping) => {
            let _ = out.try_send(Frame::simple(commands::pong()).into());
        }
        Some(Type::Pong) => {}
        Some(Type::AuthChallenge) => {
            // Answer with our credentials (the same token), or empty ones of method "none".
            let (method, data) = auth
                .cloned()
                .unwrap_or_else(|| ("none".to_owned(), Bytes::new()));
            let resp = BaseCommand {
                auth_response: Some(Box::new(strata_proto::pulsar::CommandAuthResponse {
                    client_version: Some("strata-client".into()),
                    response: Some(strata_proto::pulsar::AuthData {
                        auth_method_name: Some(method),
                        auth_data: Some(data),
                    }),
                    protocol_version: Some(CLIENT_PROTOCOL_VERSION),
                })),
                ..commands::base(Type::AuthResponse)
            };
            let _ = out.try_send(Frame::simple(resp).into());
        }
        // SendReceipt: collected and answered by the read loop (`ReceiptBatch`)
        Some(Type::SendError) => {
            if let Some(r) = command.send_error {
                let error = ClientError::server(r.error, r.message);
                to_producer(shared, r.producer_id, |p| p.error(r.sequence_id, &error));
            }
        }
        Some(Type::CloseProducer) => {
            if let Some(c) = command.close_producer {
                let inflight = shared.routes.lock().producers.remove(&c.producer_id);
                if let Some(inflight) = inflight {
                    inflight.close();
                }
            }
        }
        Some(Type::Message) => {
            if let Some(m) = command.message {
                let id = m.consumer_id;
                to_consumer(shared, id, |slot| ConsumerEvent::Message {
                    slot,
                    command: *m,
                    payload,
                });
            }
        }
        Some(Type::ActiveConsumerChange) => {
            if let Some(c) = command.active_consumer_change {
                to_consumer(shared, c.consumer_id, |slot| ConsumerEvent::ActiveChange {
                    slot,
                    active: c.is_active(),
                });
            }
        }
        Some(Type::ReachedEndOfTopic) => {
            if let Some(c) = command.reached_end_of_topic {
                to_consumer(shared, c.consumer_id, |slot| ConsumerEvent::EndOfTopic {
                    slot,
                });
            }
        }
        Some(Type::CloseConsumer) => {
            if let Some(c) = command.close_consumer {
                let route = shared.routes.lock().consumers.remove(&c.consumer_id);
                if let Some((slot, tx)) = route {
                    let _ = tx.send(ConsumerEvent::Closed { slot });
                }
            }
        }
        _ => match response_request_id(&command) {
            Some(rid) => {
                let tx = shared.routes.lock().requests.remove(&rid);
                match tx {
                    Some(tx) => {
                        let _ = tx.send(Ok(command));
                    }
                    None => debug!(request_id = rid, "answer to an unknown request"),
                }
            }
            None => debug!(
                command = commands::type_name(&command),
                "ignoring unexpected command"
            ),
        },
    }
}

// Both act under the routes lock rather than clone the route out of it: resolving a receipt and
// an unbounded send never wait, and a clone and drop are two atomic updates of the counters.
fn to_producer(shared: &Shared, id: u64, resolve: impl FnOnce(&Inflight)) {
    if let Some(inflight) = shared.routes.lock().producers.get(&id) {
        resolve(inflight);
    }
}

fn to_consumer(shared: &Shared, id: u64, ev: impl FnOnce(usize) -> ConsumerEvent) {
    if let Some((slot, tx)) = shared.routes.lock().consumers.get(&id) {
        let _ = tx.send(ev(*slot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_urls() {
        assert_eq!(
            socket_addr_of("pulsar://127.0.0.1:6650").ok().as_deref(),
            Some("127.0.0.1:6650")
        );
        assert_eq!(
            socket_addr_of("pulsar://a:1,b:2/").ok().as_deref(),
            Some("a:1")
        );
        assert!(socket_addr_of("http://a:1").is_err());
        assert!(socket_addr_of("pulsar://nohost").is_err());
    }
}
