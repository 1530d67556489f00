//! One client connection: reads frames, runs commands, writes responses. The connection is a
//! protocol adapter: it decodes commands, keeps the per-connection ids of producers and
//! consumers, and hands the work to topics and subscriptions.
//!
//! A reader loop (this file) decodes frames with `strata_proto::frame::PulsarCodec` (size checked
//! before any allocation, CRC32C verified); a writer task (`writer.rs`) owns the socket's write
//! half and drains an unbounded queue that handlers and dispatchers push frames into (consumers
//! are bounded by their permits, producers by `max_pending_sends`). Only CONNECT is accepted
//! until the connection is established. A malformed frame closes this connection only, with a
//! log line naming the peer and the reason; a SEND whose payload is corrupt (bad checksum) gets
//! a SEND_ERROR with `ChecksumError` and the connection stays up.
//!
//! Commands by family: `session.rs` (CONNECT, AUTH_RESPONSE, expiry checks), `authorize.rs`
//! (who may run what, and refusals in the shape each request expects), `producer.rs`
//! (PRODUCER, SEND, CLOSE_PRODUCER), `consumer.rs` (SUBSCRIBE, FLOW, ACK, ...),
//! `non_persistent.rs` (the same commands for non-persistent topics), `lookup.rs`
//! (LOOKUP, PARTITIONED_METADATA, GET_TOPICS_OF_NAMESPACE, schemas).
//!
//! PRODUCER and SUBSCRIBE run on tasks of the connection (`create.rs`, as Pulsar's ServerCnx):
//! the loop goes on with other frames while they load topics and write cursors.
//!
//! SEND receipts (`receipts.rs`) are queued by each append's reply where its outcome is decided
//! (no future per SEND); a producer's receipts keep its SEND order because a topic answers its
//! appends in log order, and the log order is the frame order.

mod authorize;
mod consumer;
mod create;
mod lookup;
mod non_persistent;
mod producer;
mod receipts;
mod session;
mod writer;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use strata_common::fast_map::FastMap;

use futures::StreamExt;
use strata_common::timer::sleep_until;
use strata_proto::commands;
use strata_proto::frame::{Frame, PulsarCodec};
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::{BaseCommand, MessageIdData, ServerError};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::error::BrokerError;
use crate::outbound::Outbound;
use crate::position::Position;
use crate::service::BrokerService;
use crate::stats::ClientInfo;
use consumer::ConsumerState;
use create::Creating;
use non_persistent::{NpConsumerState, NpProducerState};
use producer::ProducerState;
use receipts::Receipts;
use std::sync::atomic::AtomicBool;
use tokio::sync::oneshot;

/// Server version string sent in CONNECTED.
pub const SERVER_VERSION: &str = concat!("Strata ", env!("CARGO_PKG_VERSION"));

fn server_error(e: &BrokerError) -> ServerError {
    ServerError::try_from(e.server_error()).unwrap_or(ServerError::UnknownError)
}

fn wire_id(p: Position, partition: i32) -> MessageIdData {
    MessageIdData {
        ledger_id: p.ledger,
        entry_id: p.wire_entry(),
        partition: Some(partition),
        batch_index: None,
        ..Default::default()
    }
}

/// What a create task needs of its connection (cheap to clone).
#[derive(Clone)]
struct Origin {
    pub service: Arc<BrokerService>,
    pub out: Outbound,
    pub peer: SocketAddr,
    pub client_version: Arc<str>,
    /// The authenticated role (None: authentication is off).
    pub role: Option<Arc<str>>,
}

impl Origin {
    /// The client, for stats.
    pub fn client(&self) -> ClientInfo {
        ClientInfo::new(self.peer.to_string(), self.client_version.to_string())
    }
}

/// A producer made by a create task.
enum ProducerKind {
    Persistent(ProducerState),
    NonPersistent(NpProducerState),
}

/// A created producer and what to answer.
struct NewProducer {
    pub kind: ProducerKind,
    /// PRODUCER_SUCCESS to send once registered.
    pub success: BaseCommand,
    /// WaitForExclusive: the grant to wait for, the producer's ready flag and the second
    /// PRODUCER_SUCCESS (ready) the grant sends.
    pub waiting: Option<(
        oneshot::Receiver<crate::Result<u64>>,
        Arc<AtomicBool>,
        BaseCommand,
    )>,
}

/// A consumer made by a create task.
enum NewConsumer {
    Persistent(ConsumerState),
    NonPersistent(NpConsumerState),
}

/// Which id space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Producer,
    Consumer,
}

/// The state of one connection.
struct Conn {
    service: Arc<BrokerService>,
    peer: SocketAddr,
    out: Outbound,
    connected: bool,
    protocol_version: i32,
    producers: FastMap<u64, ProducerState>,
    consumers: FastMap<u64, ConsumerState>,
    /// Producers of non-persistent topics (`non_persistent.rs`).
    np_producers: FastMap<u64, NpProducerState>,
    /// Consumers of non-persistent topics.
    np_consumers: FastMap<u64, NpConsumerState>,
    /// The SENDs waiting for their outcome.
    receipts: Arc<Receipts>,
    /// PRODUCER and SUBSCRIBE being created on tasks (`create.rs`).
    creating: Creating,
    tasks: tokio_util::task::TaskTracker,
    /// The authenticated session (None: authentication is off).
    session: Option<strata_auth::AuthSession>,
    /// CONNECT's `supports_auth_refresh`.
    supports_refresh: bool,
    /// When to re-check the session's expiry.
    auth_check_at: tokio::time::Instant,
    /// Publish rate limit: do not read from the connection until then.
    throttle_until: Option<tokio::time::Instant>,
    /// Role of the verified client certificate (TLS listener with client certificates).
    tls_role: Option<String>,
    /// CONNECT's `client_version` (stats).
    client_version: String,
}

/// Serves one connection until the peer leaves, a frame is malformed or `cancel` fires.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    service: Arc<BrokerService>,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    serve_stream(stream, peer, None, service, cancel).await
}

/// Serves one connection over any byte stream (TLS included). `tls_role` is the role of a
/// verified client certificate (mTLS), used when the client authenticates with method `tls`.
pub async fn serve_stream<S>(
    stream: S,
    peer: SocketAddr,
    tls_role: Option<String>,
    service: Arc<BrokerService>,
    cancel: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    service.metrics.connections.inc();
    let (rd, wr) = tokio::io::split(stream);
    let codec = PulsarCodec::with_max_message_size(service.config.max_message_size);
    let mut reader = FramedRead::new(rd, codec);
    let (out, out_rx) = Outbound::channel();
    let writer = writer::spawn(wr, out_rx, peer);
    let receipts = Receipts::new(out.clone(), peer, service.config.max_pending_sends);
    let mut conn = Conn {
        service: service.clone(),
        peer,
        out,
        connected: false,
        protocol_version: 0,
        producers: FastMap::default(),
        consumers: FastMap::default(),
        np_producers: FastMap::default(),
        np_consumers: FastMap::default(),
        receipts,
        creating: Creating::new(),
        tasks: tokio_util::task::TaskTracker::new(),
        session: None,
        supports_refresh: false,
        auth_check_at: tokio::time::Instant::now() + Duration::from_secs(3600 * 24 * 365),
        throttle_until: None,
        tls_role,
        client_version: String::new(),
    };
    conn.read_loop(&mut reader, cancel).await;
    // Let in-flight sends complete so their producers get receipts where possible.
    conn.receipts.drain(Duration::from_secs(5)).await;
    conn.creating.shutdown().await;
    conn.cleanup().await;
    conn.tasks.close();
    conn.tasks.wait().await;
    drop(conn);
    let _ = writer.await;
    service.metrics.connections.dec();
}

impl Conn {
    /// Reads and runs frames until the connection must close.
    async fn read_loop<R>(
        &mut self,
        reader: &mut FramedRead<R, PulsarCodec>,
        cancel: CancellationToken,
    ) where
        R: tokio::io::AsyncRead + Unpin,
    {
        let keepalive = self.service.config.keepalive_interval;
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let mut heard = true;
        let peer = self.peer;
        // made once: a new one per pass would register with (and leave) the token's waiters
        // every frame
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            let throttled = self.throttle_until;
            // Read once for both branches below: a reply can free room between two readings, and
            // with one reading saying full and the next not, neither the frame branch nor the
            // room branch would run, until the next keep-alive tick (up to 30 s without reading).
            let full = self.receipts.is_full();
            tokio::select! {
                _ = sleep_until(throttled), if throttled.is_some() => {
                    self.throttle_until = None;
                    heard = true;
                }
                frame = reader.next(), if !full && throttled.is_none() => {
                    heard = true;
                    let Some(frame) = frame else {
                        debug!(%peer, "connection closed by peer");
                        return;
                    };
                    if !self.on_frame(frame).await {
                        return;
                    }
                }
                // `room` resolves once a reply freed room after `full` was read (a reply in
                // between leaves a permit): the loop then reads `full` again
                _ = self.receipts.room(), if full => {}
                Some(created) = self.creating.next() => self.on_created(created).await,
                _ = ticker.tick() => {
                    if !heard && self.throttle_until.is_none() {
                        info!(%peer, "no answer to keep-alive ping; closing connection");
                        return;
                    }
                    heard = false;
                    if self.connected {
                        let _ = self.out.send(Frame::simple(commands::ping()));
                    }
                }
                _ = sleep_until(Some(self.auth_check_at)), if self.session.is_some() => {
                    if !self.check_session() {
                        return;
                    }
                }
                _ = &mut cancelled => return,
            }
        }
    }

    /// What the codec produced; returns false if the connection must close.
    async fn on_frame(
        &mut self,
        frame: Result<Result<Frame, strata_proto::frame::BadPayload>, strata_proto::FrameError>,
    ) -> bool {
        match frame {
            Err(e) => {
                if matches!(e, strata_proto::FrameError::Io(_)) {
                    debug!(peer = %self.peer, error = %e, "read failed; closing connection");
                } else {
                    warn!(peer = %self.peer, error = %e, "malformed frame; closing connection");
                    self.service.metrics.bad_frames.inc();
                }
                false
            }
            Ok(Err(bad)) => {
                let keep = self.bad_payload(bad);
                if !keep {
                    self.service.metrics.bad_frames.inc();
                }
                keep
            }
            Ok(Ok(frame)) => self.handle(frame).await,
        }
    }

    fn send(&self, cmd: BaseCommand) {
        let _ = self.out.send(Frame::simple(cmd));
    }

    fn error(&self, request_id: u64, e: &BrokerError) {
        self.send(commands::error(request_id, server_error(e), e.to_string()));
    }

    /// A frame with a corrupt payload. Returns false if the connection must close.
    fn bad_payload(&mut self, bad: strata_proto::frame::BadPayload) -> bool {
        if let Some(s) = bad.command.send.as_ref()
            && bad.command.r#type == Type::Send as i32
        {
            warn!(peer = %self.peer, producer = s.producer_id, error = %bad.error, "rejecting SEND with a corrupt payload");
            self.send(commands::send_error(
                s.producer_id,
                s.sequence_id,
                ServerError::ChecksumError,
                bad.error.to_string(),
            ));
            return true;
        }
        warn!(peer = %self.peer, error = %bad, "malformed payload; closing connection");
        false
    }

    /// Detaches this connection's producers and consumers.
    async fn cleanup(&mut self) {
        for (_, p) in self.producers.drain() {
            p.topic.remove_producer(p.key);
        }
        let consumers: Vec<ConsumerState> = self.consumers.drain().map(|(_, c)| c).collect();
        for c in consumers {
            c.detach().await;
        }
        self.np_cleanup();
    }

    /// Handles one frame; returns false if the connection must close.
    async fn handle(&mut self, frame: Frame) -> bool {
        let t = match frame.command_type() {
            Ok(t) => t,
            Err(e) => {
                warn!(peer = %self.peer, error = %e, "unknown command; closing connection");
                return false;
            }
        };
        if !self.connected && t != Type::Connect {
            warn!(peer = %self.peer, command = t.as_str_name(), "command before CONNECT; closing connection");
            return false;
        }
        let Frame { command, payload } = frame;
        let cmd = *command;
        match t {
            Type::Connect => self.connect(cmd).await,
            Type::Ping => {
                self.send(commands::pong());
                true
            }
            Type::Pong => true,
            Type::Send => {
                self.on_send(cmd, payload);
                true
            }
            Type::AuthResponse => self.auth_response(cmd),
            _ => {
                let span = info_span!("cmd", cmd = t.as_str_name(), peer = %self.peer);
                if matches!(t, Type::Producer | Type::Subscribe) {
                    // Authorized on the create's task (`create.rs`).
                    self.dispatch(t, cmd).instrument(span).await;
                    return true;
                }
                let role = self.session.as_ref().map(|s| s.role().to_owned());
                if let Err(e) = authorize::check(&self.service, role.as_deref(), t, &cmd).await {
                    self.refuse(t, &cmd, &e);
                    return true;
                }
                self.dispatch(t, cmd).instrument(span).await;
                true
            }
        }
    }

    /// Runs an authorized command by family.
    async fn dispatch(&mut self, t: Type, cmd: BaseCommand) {
        match t {
            Type::PartitionedMetadata | Type::Lookup | Type::GetTopicsOfNamespace => {
                self.on_lookup(t, cmd).await
            }
            Type::GetSchema | Type::GetOrCreateSchema => self.on_schema(t, cmd).await,
            Type::Producer | Type::CloseProducer => self.on_producer(t, cmd).await,
            Type::Subscribe
            | Type::Flow
            | Type::Ack
            | Type::RedeliverUnacknowledgedMessages
            | Type::Unsubscribe
            | Type::CloseConsumer
            | Type::Seek
            | Type::GetLastMessageId
            | Type::ConsumerStats => self.on_consumer(t, cmd).await,
            other => {
                warn!(peer = %self.peer, command = other.as_str_name(), "unsupported command");
                if let Some(rid) = authorize::request_id_of(&cmd) {
                    self.send(commands::error(
                        rid,
                        ServerError::NotAllowedError,
                        format!("{} is not supported", other.as_str_name()),
                    ));
                }
            }
        }
    }
}

/// The Key_Shared settings a SUBSCRIBE asks for (`None` for the other subscription types).
fn key_shared_spec(
    c: &strata_proto::pulsar::CommandSubscribe,
) -> Option<crate::subscription::KeySharedSpec> {
    use strata_proto::pulsar::KeySharedMode;
    (c.sub_type() == strata_proto::pulsar::command_subscribe::SubType::KeyShared).then(|| {
        let meta = c.key_shared_meta.clone().unwrap_or_default();
        crate::subscription::KeySharedSpec {
            mode: KeySharedMode::try_from(meta.key_shared_mode).unwrap_or(KeySharedMode::AutoSplit),
            ranges: meta.hash_ranges.iter().map(|r| (r.start, r.end)).collect(),
        }
    })
}

/// The consumer's name: the client's, or one made from its key when it gave none.
fn consumer_name(c: &strata_proto::pulsar::CommandSubscribe, key: u64) -> String {
    c.consumer_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("consumer-{key}"))
}

/// A PRODUCER's or SUBSCRIBE's `metadata` as owned (key, value) pairs.
fn key_values<C: FromIterator<(String, String)>>(kvs: &[strata_proto::pulsar::KeyValue]) -> C {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}
