//! One client connection: reads frames, runs commands, writes responses.
//!
//! A reader loop decodes frames with `strata_proto::frame::PulsarCodec` (size checked before any
//! allocation, CRC32C verified); a writer task owns the socket's write half and drains an
//! unbounded channel that handlers and dispatchers push frames into (consumers are bounded by
//! their permits, producers by `max_pending_sends`). Only CONNECT is accepted until the
//! connection is established. A malformed frame closes this connection only, with a log line
//! naming the peer and the reason; a SEND whose payload is corrupt (bad checksum) gets a
//! SEND_ERROR with `ChecksumError` and the connection stays up.
//!
//! SEND receipts go out in the order of the SENDs: appends are enqueued in frame order and their
//! completions are awaited in that order (a `FuturesOrdered`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesOrdered;
use futures::{SinkExt, StreamExt};
use strata_proto::commands;
use strata_proto::frame::{Frame, PROTOCOL_VERSION, PulsarCodec};
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_ack::AckType;
use strata_proto::pulsar::command_get_topics_of_namespace::Mode as TopicsMode;
use strata_proto::pulsar::command_subscribe::{InitialPosition as WireInitial, SubType};
use strata_proto::pulsar::{
    BaseCommand, CommandConsumerStatsResponse, FeatureFlags, KeySharedMode, MessageIdData,
    ProducerAccessMode, ServerError,
};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::error::{BrokerError, Result};
use crate::position::Position;
use crate::schema::{SchemaVersionExt, parse_version, version_bytes};
use crate::service::{BrokerService, Owner};
use crate::subscription::{
    AckId, ConsumerSpec, InitialPosition, KeySharedSpec, Outbound, SeekTarget, Subscription,
};
use crate::topic::{ProducerAdmission, Topic};
use crate::topic_name::TopicName;

/// Server version string sent in CONNECTED.
pub const SERVER_VERSION: &str = concat!("Strata ", env!("CARGO_PKG_VERSION"));

fn server_error(e: &BrokerError) -> ServerError {
    ServerError::try_from(e.server_error()).unwrap_or(ServerError::UnknownError)
}

struct ProducerState {
    topic: Arc<Topic>,
    key: u64,
    /// False while waiting for exclusive access (WaitForExclusive).
    ready: Arc<std::sync::atomic::AtomicBool>,
}

struct ConsumerState {
    topic: Arc<Topic>,
    sub: Subscription,
    key: u64,
}

type SendResult = (u64, u64, u64, Result<Position>, i32); // producer id, seq, highest seq, result, partition
type PendingSend = Pin<Box<dyn std::future::Future<Output = SendResult> + Send>>;

struct Conn {
    service: Arc<BrokerService>,
    peer: SocketAddr,
    out: Outbound,
    connected: bool,
    protocol_version: i32,
    producers: HashMap<u64, ProducerState>,
    consumers: HashMap<u64, ConsumerState>,
    sends: FuturesOrdered<PendingSend>,
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
    let mut reader = FramedRead::new(rd, codec.clone());
    let (out_tx, mut out_rx) = crate::outbound::Outbound::channel();
    let writer = tokio::spawn(async move {
        let mut w = FramedWrite::new(wr, PulsarCodec::with_max_frame_size(usize::MAX / 2));
        while let Some(f) = out_rx.recv().await {
            if let Err(e) = w.feed(f).await {
                debug!(%peer, error = %e, "write failed");
                return;
            }
            // Batch whatever is queued into one flush.
            while let Some(f) = out_rx.try_recv() {
                if let Err(e) = w.feed(f).await {
                    debug!(%peer, error = %e, "write failed");
                    return;
                }
            }
            if let Err(e) = w.flush().await {
                debug!(%peer, error = %e, "flush failed");
                return;
            }
        }
        let _ = w.close().await;
    });
    let mut conn = Conn {
        service: service.clone(),
        peer,
        out: out_tx,
        connected: false,
        protocol_version: 0,
        producers: HashMap::new(),
        consumers: HashMap::new(),
        sends: FuturesOrdered::new(),
        tasks: tokio_util::task::TaskTracker::new(),
        session: None,
        supports_refresh: false,
        auth_check_at: tokio::time::Instant::now() + Duration::from_secs(3600 * 24 * 365),
        throttle_until: None,
        tls_role,
    };
    let keepalive = service.config.keepalive_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let mut heard = true;
    let max_pending = service.config.max_pending_sends;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(conn.throttle_until.unwrap_or_else(tokio::time::Instant::now)), if conn.throttle_until.is_some() => {
                conn.throttle_until = None;
                heard = true;
            }
            frame = reader.next(), if conn.sends.len() < max_pending && conn.throttle_until.is_none() => {
                heard = true;
                match frame {
                    None => {
                        debug!(%peer, "connection closed by peer");
                        break;
                    }
                    Some(Err(e)) => {
                        if matches!(e, strata_proto::FrameError::Io(_)) {
                            debug!(%peer, error = %e, "read failed; closing connection");
                        } else {
                            warn!(%peer, error = %e, "malformed frame; closing connection");
                            service.metrics.bad_frames.inc();
                        }
                        break;
                    }
                    Some(Ok(Err(bad))) => {
                        if !conn.bad_payload(bad) {
                            service.metrics.bad_frames.inc();
                            break;
                        }
                    }
                    Some(Ok(Ok(frame))) => {
                        if !conn.handle(frame).await {
                            break;
                        }
                    }
                }
            }
            Some((producer_id, seq, highest, res, partition)) = conn.sends.next(), if !conn.sends.is_empty() => {
                conn.send_done(producer_id, seq, highest, res, partition);
            }
            _ = ticker.tick() => {
                if !heard && conn.throttle_until.is_none() {
                    info!(%peer, "no answer to keep-alive ping; closing connection");
                    break;
                }
                heard = false;
                if conn.connected {
                    let _ = conn.out.send(Frame::simple(commands::ping()));
                }
            }
            _ = tokio::time::sleep_until(conn.auth_check_at), if conn.session.is_some() => {
                if !conn.check_session() {
                    break;
                }
            }
            _ = cancel.cancelled() => break,
        }
    }
    // Let in-flight sends complete so their producers get receipts where possible.
    let drain = async {
        while let Some((p, s, h, r, part)) = conn.sends.next().await {
            conn.send_done(p, s, h, r, part);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    conn.cleanup().await;
    conn.tasks.close();
    conn.tasks.wait().await;
    drop(conn);
    let _ = writer.await;
    service.metrics.connections.dec();
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

impl Conn {
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

    async fn cleanup(&mut self) {
        for (_, p) in self.producers.drain() {
            p.topic.remove_producer(p.key);
        }
        let consumers: Vec<ConsumerState> = self.consumers.drain().map(|(_, c)| c).collect();
        for c in consumers {
            let left = c.sub.remove_consumer(c.key).await;
            if left == 0 && !c.sub.is_durable() {
                c.topic.remove_subscription(c.sub.name(), false).await;
            }
        }
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
        let span = info_span!("cmd", cmd = t.as_str_name(), peer = %self.peer);
        let Frame { command, payload } = frame;
        let cmd = *command;
        match t {
            Type::Connect => self.connect(cmd),
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
                let role = self.session.as_ref().map(|s| s.role().to_owned());
                let svc = self.service.clone();
                if let Err(e) = authorize(&svc, role.as_deref(), t, &cmd).await {
                    self.refuse(t, &cmd, &e);
                    return true;
                }
                self.dispatch(t, cmd).instrument(span).await;
                true
            }
        }
    }

    fn connect(&mut self, cmd: BaseCommand) -> bool {
        let Some(c) = cmd.connect else {
            warn!(peer = %self.peer, "CONNECT without body; closing connection");
            return false;
        };
        if self.connected {
            warn!(peer = %self.peer, "second CONNECT; closing connection");
            return false;
        }
        let client_version = c.protocol_version.unwrap_or(0);
        self.protocol_version = client_version.clamp(0, PROTOCOL_VERSION);
        let security = self.service.security();
        match security.authenticate_connect(
            c.auth_method_name.as_deref(),
            c.auth_data.as_deref(),
            self.tls_role.as_deref(),
        ) {
            Ok(session) => {
                if let Some(sess) = &session {
                    debug!(peer = %self.peer, role = sess.role(), "authenticated");
                    self.auth_check_at = tokio::time::Instant::now();
                }
                self.session = session;
            }
            Err(e) => {
                // The error never contains the token.
                warn!(peer = %self.peer, error = %e, "authentication failed");
                self.send(commands::error(0, e.server_error(), e.to_string()));
                return false;
            }
        }
        self.supports_refresh = c
            .feature_flags
            .as_ref()
            .and_then(|f| f.supports_auth_refresh)
            .unwrap_or(false);
        self.connected = true;
        info!(peer = %self.peer, client = %c.client_version, protocol = self.protocol_version, "client connected");
        let flags = FeatureFlags {
            supports_auth_refresh: Some(security.authentication_enabled()),
            supports_broker_entry_metadata: Some(false),
            supports_partial_producer: Some(false),
            supports_topic_watchers: Some(false),
            ..Default::default()
        };
        self.send(commands::connected(
            SERVER_VERSION,
            self.protocol_version,
            self.service.config.max_message_size as i32,
            flags,
        ));
        true
    }

    /// The periodic expiry check: AUTH_CHALLENGE once expired (if the client can refresh),
    /// close if still expired at the next check. Returns false to close.
    fn check_session(&mut self) -> bool {
        let Some(sess) = self.session.as_mut() else {
            return true;
        };
        let interval = self
            .service
            .config
            .auth_check_interval
            .max(Duration::from_millis(100));
        match sess.on_check(
            std::time::SystemTime::now(),
            self.supports_refresh,
            interval,
        ) {
            strata_auth::SessionAction::Wait(d) => {
                self.auth_check_at = tokio::time::Instant::now() + d.max(Duration::from_millis(10));
                true
            }
            strata_auth::SessionAction::SendChallenge => {
                info!(peer = %self.peer, role = sess.role(), "credentials expired; sending AUTH_CHALLENGE");
                self.send(BaseCommand {
                    auth_challenge: Some(strata_proto::pulsar::CommandAuthChallenge {
                        server_version: Some(SERVER_VERSION.to_owned()),
                        challenge: Some(strata_proto::pulsar::AuthData {
                            auth_method_name: Some(strata_auth::token::AUTH_METHOD_TOKEN.into()),
                            auth_data: Some(bytes::Bytes::from_static(
                                strata_auth::token::REFRESH_AUTH_DATA,
                            )),
                        }),
                        protocol_version: Some(self.protocol_version),
                    }),
                    ..commands::base(Type::AuthChallenge)
                });
                self.auth_check_at = tokio::time::Instant::now() + interval;
                true
            }
            strata_auth::SessionAction::Close => {
                info!(peer = %self.peer, role = sess.role(), "credentials expired; closing connection");
                false
            }
        }
    }

    /// AUTH_RESPONSE: fresh credentials for the same role, or the connection closes.
    fn auth_response(&mut self, cmd: BaseCommand) -> bool {
        let Some(sess) = self.session.as_mut() else {
            debug!("auth response ignored (authentication disabled)");
            return true;
        };
        let Some(r) = cmd.auth_response else {
            return false;
        };
        let (method, data) = match &r.response {
            Some(d) => (d.auth_method_name.as_deref(), d.auth_data.as_deref()),
            None => (None, None),
        };
        match self.service.security().refresh(sess, method, data) {
            Ok(()) => {
                debug!(peer = %self.peer, role = sess.role(), "credentials refreshed");
                self.auth_check_at = tokio::time::Instant::now();
                true
            }
            Err(e) => {
                warn!(peer = %self.peer, error = %e, "credential refresh refused; closing connection");
                self.send(commands::error(0, e.server_error(), e.to_string()));
                false
            }
        }
    }

    /// Answers a refused command in the shape its request expects.
    fn refuse(&self, t: Type, cmd: &BaseCommand, e: &BrokerError) {
        debug!(peer = %self.peer, command = t.as_str_name(), error = %e, "refused");
        let se = server_error(e);
        match t {
            Type::Lookup => {
                if let Some(c) = &cmd.lookup_topic {
                    self.send(commands::lookup_error(c.request_id, se, e.to_string()));
                }
            }
            Type::PartitionedMetadata => {
                if let Some(c) = &cmd.partition_metadata {
                    self.send(commands::partitioned_metadata_error(
                        c.request_id,
                        se,
                        e.to_string(),
                    ));
                }
            }
            Type::GetSchema => {
                if let Some(c) = &cmd.get_schema {
                    self.send(commands::get_schema_error(c.request_id, se, e.to_string()));
                }
            }
            Type::GetOrCreateSchema => {
                if let Some(c) = &cmd.get_or_create_schema {
                    self.send(commands::get_or_create_schema_response(
                        c.request_id,
                        Err((se, e.to_string())),
                    ));
                }
            }
            Type::Producer => {
                if let Some(c) = &cmd.producer {
                    self.error(c.request_id, e);
                }
            }
            Type::Subscribe => {
                if let Some(c) = &cmd.subscribe {
                    self.error(c.request_id, e);
                }
            }
            Type::GetTopicsOfNamespace => {
                if let Some(c) = &cmd.get_topics_of_namespace {
                    self.error(c.request_id, e);
                }
            }
            _ => {
                if let Some(rid) = request_id_of(cmd) {
                    self.error(rid, e);
                }
            }
        }
    }

    fn on_send(&mut self, cmd: BaseCommand, payload: Option<strata_proto::frame::Payload>) {
        let Some(s) = cmd.send else { return };
        let pid = s.producer_id;
        let seq = s.sequence_id;
        let highest = s.highest_sequence_id.unwrap_or(0);
        let fail = |this: &Self, e: ServerError, msg: &str| {
            this.send(commands::send_error(pid, seq, e, msg.to_owned()));
        };
        let Some(p) = self.producers.get(&pid) else {
            fail(self, ServerError::NotAllowedError, "producer not found");
            return;
        };
        if !p.ready.load(std::sync::atomic::Ordering::Acquire) {
            fail(
                self,
                ServerError::NotAllowedError,
                "producer is waiting for exclusive access",
            );
            return;
        }
        let Some(payload) = payload else {
            fail(self, ServerError::UnknownError, "SEND without payload");
            return;
        };
        if p.topic
            .quota_exceeded
            .load(std::sync::atomic::Ordering::Acquire)
        {
            fail(
                self,
                ServerError::ProducerBlockedQuotaExceededException,
                "backlog quota exceeded",
            );
            return;
        }
        let n = payload.metadata.num_messages_in_batch.unwrap_or(1).max(1) as u64;
        let partition = p.topic.partition;
        if let Some(until) = p.topic.throttle(n, payload.raw.len() as u64) {
            self.throttle_until = Some(self.throttle_until.map_or(until, |t| t.max(until)));
        }
        if p.topic.dedup.enabled() {
            let m = &payload.metadata;
            let producer = m.producer_name.clone();
            let hi = m.highest_sequence_id.unwrap_or(0).max(m.sequence_id);
            match p.topic.dedup.check(&producer, hi) {
                crate::dedup::Verdict::Publish => {}
                crate::dedup::Verdict::Duplicate => {
                    debug!(producer = %producer, seq = hi, "duplicate message dropped");
                    // Answered in order with this connection's earlier sends.
                    self.sends.push_back(Box::pin(async move {
                        (
                            pid,
                            seq,
                            highest,
                            Ok(crate::dedup::DUPLICATE_POSITION),
                            partition,
                        )
                    }));
                    return;
                }
                crate::dedup::Verdict::InFlight => {
                    fail(
                        self,
                        ServerError::ServiceNotReady,
                        "an earlier copy of this message is still being persisted; retry",
                    );
                    return;
                }
            }
            let topic = p.topic.clone();
            let fut = p.topic.publish(payload.raw, n);
            self.sends.push_back(Box::pin(async move {
                let res = fut.await;
                match &res {
                    Ok(pos) => topic.dedup.persisted(&producer, hi, *pos),
                    Err(_) => topic.dedup.failed(&producer),
                }
                (pid, seq, highest, res, partition)
            }));
            return;
        }
        let fut = p.topic.publish(payload.raw, n);
        self.sends.push_back(Box::pin(async move {
            (pid, seq, highest, fut.await, partition)
        }));
    }

    fn send_done(
        &mut self,
        pid: u64,
        seq: u64,
        highest: u64,
        res: Result<Position>,
        partition: i32,
    ) {
        match res {
            Ok(p) => {
                let mut cmd = commands::send_receipt(pid, seq, wire_id(p, partition));
                if let Some(r) = cmd.send_receipt.as_mut()
                    && highest > 0
                {
                    r.highest_sequence_id = Some(highest);
                }
                self.send(cmd);
            }
            Err(e) => {
                warn!(peer = %self.peer, producer = pid, seq, error = %e, "send failed");
                self.send(commands::send_error(
                    pid,
                    seq,
                    server_error(&e),
                    e.to_string(),
                ));
            }
        }
    }

    async fn dispatch(&mut self, t: Type, cmd: BaseCommand) {
        match t {
            Type::PartitionedMetadata => {
                let Some(c) = cmd.partition_metadata else {
                    return;
                };
                match TopicName::parse(&c.topic) {
                    Ok(name) => match self.service.partitions(&name).await {
                        Ok(n) => {
                            self.send(commands::partitioned_metadata_response(c.request_id, n))
                        }
                        Err(e) => self.send(commands::partitioned_metadata_error(
                            c.request_id,
                            server_error(&e),
                            e.to_string(),
                        )),
                    },
                    Err(e) => self.send(commands::partitioned_metadata_error(
                        c.request_id,
                        server_error(&e),
                        e.to_string(),
                    )),
                }
            }
            Type::Lookup => {
                let Some(c) = cmd.lookup_topic else { return };
                let authoritative = c.authoritative.unwrap_or(false);
                let res = async {
                    let name = TopicName::parse(&c.topic)?;
                    self.service.lookup(&name, authoritative).await
                }
                .await;
                match res {
                    Ok(Owner::Local) => self.send(commands::lookup_connect_tls(
                        c.request_id,
                        &self.service.broker_url(),
                        self.service.broker_url_tls().as_deref(),
                        true,
                    )),
                    // The owner (or the broker the leader assigned the bundle to): final answer.
                    Ok(Owner::Remote {
                        broker_url,
                        broker_url_tls,
                        ..
                    }) => self.send(commands::lookup_redirect_tls(
                        c.request_id,
                        &broker_url,
                        broker_url_tls.as_deref(),
                        true,
                    )),
                    // Unowned: the leader decides (its answer is authoritative).
                    Ok(Owner::Leader {
                        broker_url,
                        broker_url_tls,
                        ..
                    }) => self.send(commands::lookup_redirect_tls(
                        c.request_id,
                        &broker_url,
                        broker_url_tls.as_deref(),
                        false,
                    )),
                    Err(e) => self.send(commands::lookup_error(
                        c.request_id,
                        server_error(&e),
                        e.to_string(),
                    )),
                }
            }
            Type::Producer => {
                let Some(c) = cmd.producer else { return };
                let rid = c.request_id;
                if let Err(e) = self.add_producer(c).await {
                    debug!(error = %e, "producer rejected");
                    self.error(rid, &e);
                }
            }
            Type::CloseProducer => {
                let Some(c) = cmd.close_producer else { return };
                if let Some(p) = self.producers.remove(&c.producer_id) {
                    p.topic.remove_producer(p.key);
                }
                self.send(commands::success(c.request_id));
            }
            Type::Subscribe => {
                let Some(c) = cmd.subscribe else { return };
                let rid = c.request_id;
                match self.subscribe(c).await {
                    Ok(()) => self.send(commands::success(rid)),
                    Err(e) => {
                        debug!(error = %e, "subscribe rejected");
                        self.error(rid, &e);
                    }
                }
            }
            Type::Flow => {
                let Some(c) = cmd.flow else { return };
                if let Some(cs) = self.consumers.get(&c.consumer_id) {
                    cs.sub.flow(cs.key, c.message_permits);
                }
            }
            Type::Ack => {
                let Some(c) = cmd.ack else { return };
                let Some(cs) = self.consumers.get(&c.consumer_id) else {
                    if let Some(rid) = c.request_id {
                        self.send(commands::ack_response(
                            c.consumer_id,
                            Some(rid),
                            Some((ServerError::ConsumerNotFound, "consumer not found".into())),
                        ));
                    }
                    return;
                };
                let cumulative = c.ack_type == AckType::Cumulative as i32;
                let ids: Vec<AckId> = c
                    .message_id
                    .iter()
                    .map(|m| AckId {
                        position: Position::from_wire(m.ledger_id, m.entry_id),
                        ack_set: m.ack_set.clone(),
                    })
                    .collect();
                let want = c.request_id.is_some();
                let seq = cs.sub.ack(cs.key, cumulative, ids, want).await;
                if let (Some(rid), Some(seq)) = (c.request_id, seq) {
                    let sub = cs.sub.clone();
                    let out = self.out.clone();
                    let consumer_id = c.consumer_id;
                    self.tasks.spawn(async move {
                        sub.wait_durable(seq).await;
                        let _ = out.send(Frame::simple(commands::ack_response(
                            consumer_id,
                            Some(rid),
                            None,
                        )));
                    });
                }
            }
            Type::RedeliverUnacknowledgedMessages => {
                let Some(c) = cmd.redeliver_unacknowledged_messages else {
                    return;
                };
                if let Some(cs) = self.consumers.get(&c.consumer_id) {
                    let ids: Vec<Position> = c
                        .message_ids
                        .iter()
                        .map(|m| Position::from_wire(m.ledger_id, m.entry_id))
                        .collect();
                    cs.sub
                        .redeliver(cs.key, if ids.is_empty() { None } else { Some(ids) });
                }
            }
            Type::Unsubscribe => {
                let Some(c) = cmd.unsubscribe else { return };
                let Some(cs) = self.consumers.get(&c.consumer_id) else {
                    self.error(c.request_id, &BrokerError::ConsumerNotFound(c.consumer_id));
                    return;
                };
                match cs.sub.unsubscribe(cs.key).await {
                    Ok(()) => {
                        let name = cs.sub.name().to_owned();
                        let topic = cs.topic.clone();
                        self.consumers.remove(&c.consumer_id);
                        self.service.metrics.consumers.dec();
                        topic.remove_subscription(&name, true).await;
                        info!(topic = %topic.name, sub = %name, "unsubscribed");
                        self.send(commands::success(c.request_id));
                    }
                    Err(e) => self.error(c.request_id, &e),
                }
            }
            Type::CloseConsumer => {
                let Some(c) = cmd.close_consumer else { return };
                if let Some(cs) = self.consumers.remove(&c.consumer_id) {
                    let left = cs.sub.remove_consumer(cs.key).await;
                    if left == 0 && !cs.sub.is_durable() {
                        cs.topic.remove_subscription(cs.sub.name(), false).await;
                    }
                    // A closed consumer's acks are durable when the close is answered.
                    if tokio::time::timeout(Duration::from_secs(5), cs.sub.flush())
                        .await
                        .is_err()
                    {
                        warn!(sub = %cs.sub.name(), "cursor flush on consumer close timed out");
                    }
                }
                self.send(commands::success(c.request_id));
            }
            Type::Seek => {
                let Some(c) = cmd.seek else { return };
                let Some(cs) = self.consumers.get(&c.consumer_id) else {
                    self.error(c.request_id, &BrokerError::ConsumerNotFound(c.consumer_id));
                    return;
                };
                let target = match (&c.message_id, c.message_publish_time) {
                    (Some(m), _) => {
                        SeekTarget::Position(Position::from_wire(m.ledger_id, m.entry_id))
                    }
                    (None, Some(t)) => SeekTarget::PublishTime(t),
                    (None, None) => {
                        self.error(
                            c.request_id,
                            &BrokerError::Protocol("SEEK without target".into()),
                        );
                        return;
                    }
                };
                let sub = cs.sub.clone();
                match sub.seek(target).await {
                    Ok(()) => {
                        // The subscription disconnected its consumers (they resubscribe).
                        self.send(commands::success(c.request_id));
                    }
                    Err(e) => self.error(c.request_id, &e),
                }
            }
            Type::GetLastMessageId => {
                let Some(c) = cmd.get_last_message_id else {
                    return;
                };
                let Some(cs) = self.consumers.get(&c.consumer_id) else {
                    self.error(c.request_id, &BrokerError::ConsumerNotFound(c.consumer_id));
                    return;
                };
                let ml = cs.topic.ledger().clone();
                let partition = cs.topic.partition;
                let lac = ml.last_confirmed();
                let mut last = wire_id(lac, partition);
                if lac.entry >= 0
                    && let Ok(Some(d)) = ml.read_one(lac).await
                    && let Ok(p) = strata_proto::frame::Payload::from_raw(d)
                    && let Some(n) = p.metadata.num_messages_in_batch
                    && n > 1
                {
                    last.batch_index = Some(n - 1);
                }
                let md = cs.sub.mark_delete().await.map(|p| wire_id(p, partition));
                self.send(commands::get_last_message_id_response(
                    c.request_id,
                    last,
                    md,
                ));
            }
            Type::GetTopicsOfNamespace => {
                let Some(c) = cmd.get_topics_of_namespace else {
                    return;
                };
                self.topics_of_namespace(c).await;
            }
            Type::GetSchema => {
                let Some(c) = cmd.get_schema else { return };
                let res = async {
                    let name = TopicName::parse(&c.topic)?;
                    let v = c.schema_version.as_deref().and_then(parse_version);
                    self.service.schemas.get(&name, v).await
                }
                .await;
                match res {
                    Ok(Some(s)) => self.send(commands::get_schema_response(
                        c.request_id,
                        s.to_proto(),
                        version_bytes(s.version),
                    )),
                    Ok(None) => self.send(commands::get_schema_error(
                        c.request_id,
                        ServerError::TopicNotFound,
                        "schema not found",
                    )),
                    Err(e) => self.send(commands::get_schema_error(
                        c.request_id,
                        server_error(&e),
                        e.to_string(),
                    )),
                }
            }
            Type::GetOrCreateSchema => {
                let Some(c) = cmd.get_or_create_schema else {
                    return;
                };
                let res = async {
                    let name = TopicName::parse(&c.topic)?;
                    self.service.schemas.get_or_create(&name, &c.schema).await
                }
                .await;
                let r = res
                    .map(version_bytes)
                    .map_err(|e| (server_error(&e), e.to_string()));
                self.send(commands::get_or_create_schema_response(c.request_id, r));
            }
            Type::ConsumerStats => {
                let Some(c) = cmd.consumer_stats else { return };
                let stats = match self.consumers.get(&c.consumer_id) {
                    Some(cs) => cs.sub.stats(cs.key).await,
                    None => None,
                };
                let body = match stats {
                    Some(s) => CommandConsumerStatsResponse {
                        request_id: c.request_id,
                        consumer_name: Some(s.name),
                        available_permits: Some(s.permits.max(0) as u64),
                        unacked_messages: Some(s.unacked),
                        msg_backlog: Some(s.backlog),
                        address: Some(s.address),
                        r#type: Some(s.sub_type),
                        msg_rate_out: Some(0.0),
                        msg_throughput_out: Some(0.0),
                        msg_rate_redeliver: Some(0.0),
                        blocked_consumer_on_unacked_msgs: Some(false),
                        ..Default::default()
                    },
                    None => CommandConsumerStatsResponse {
                        request_id: c.request_id,
                        error_code: Some(ServerError::ConsumerNotFound as i32),
                        error_message: Some("consumer not found".into()),
                        ..Default::default()
                    },
                };
                self.send(BaseCommand {
                    consumer_stats_response: Some(body),
                    ..commands::base(Type::ConsumerStatsResponse)
                });
            }
            other => {
                warn!(peer = %self.peer, command = other.as_str_name(), "unsupported command");
                if let Some(rid) = request_id_of(&cmd) {
                    self.send(commands::error(
                        rid,
                        ServerError::NotAllowedError,
                        format!("{} is not supported", other.as_str_name()),
                    ));
                }
            }
        }
    }

    async fn add_producer(&mut self, c: strata_proto::pulsar::CommandProducer) -> Result<()> {
        let name = TopicName::parse(&c.topic)?;
        if let Some(old) = self.producers.remove(&c.producer_id) {
            old.topic.remove_producer(old.key);
        }
        let topic = self
            .service
            .topic(&name, self.service.config.allow_auto_topic_creation)
            .await?;
        crate::policy::admit_producer(&self.service, &topic).await?;
        let schema_version = match &c.schema {
            Some(s) => Some(version_bytes(
                self.service.schemas.get_or_create(&name, s).await?,
            )),
            None => None,
        };
        let pname = match c.producer_name.as_deref() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => self.service.producer_name(),
        };
        let key = self.service.next_key();
        let mode = c
            .producer_access_mode
            .and_then(|m| ProducerAccessMode::try_from(m).ok())
            .unwrap_or(ProducerAccessMode::Shared);
        let admission = topic.add_producer(key, c.producer_id, &pname, mode, self.out.clone())?;
        let rid = c.request_id;
        let success = |epoch: Option<u64>, ready: bool| {
            let last_seq = if topic.dedup.enabled() {
                topic.dedup.last_sequence_id(&pname)
            } else {
                -1
            };
            let mut cmd = commands::producer_success(rid, &pname, last_seq, schema_version.clone());
            if let Some(ps) = cmd.producer_success.as_mut() {
                ps.topic_epoch = epoch;
                ps.producer_ready = Some(ready);
            }
            cmd
        };
        match admission {
            ProducerAdmission::Ready(epoch) => {
                let exclusive = mode != ProducerAccessMode::Shared;
                self.producers.insert(
                    c.producer_id,
                    ProducerState {
                        topic: topic.clone(),
                        key,
                        ready: Arc::new(true.into()),
                    },
                );
                info!(topic = %name, producer = %pname, ?mode, "producer created");
                self.send(success(exclusive.then_some(epoch), true));
            }
            ProducerAdmission::Waiting(rx) => {
                let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
                self.producers.insert(
                    c.producer_id,
                    ProducerState {
                        topic: topic.clone(),
                        key,
                        ready: ready.clone(),
                    },
                );
                info!(topic = %name, producer = %pname, "producer waiting for exclusive access");
                self.send(success(None, false));
                // Granted when the current exclusive producer leaves.
                let out = self.out.clone();
                let ready_cmd = success(None, true);
                self.tasks.spawn(async move {
                    if let Ok(epoch) = rx.await {
                        ready.store(true, std::sync::atomic::Ordering::Release);
                        let mut cmd = ready_cmd;
                        if let Some(ps) = cmd.producer_success.as_mut() {
                            ps.topic_epoch = Some(epoch);
                        }
                        let _ = out.send(Frame::simple(cmd));
                    }
                });
            }
        }
        Ok(())
    }

    async fn subscribe(&mut self, c: strata_proto::pulsar::CommandSubscribe) -> Result<()> {
        let name = TopicName::parse(&c.topic)?;
        if let Some(old) = self.consumers.remove(&c.consumer_id) {
            old.sub.remove_consumer(old.key).await;
        }
        if c.subscription.is_empty() {
            return Err(BrokerError::NotAllowed("empty subscription name".into()));
        }
        let topic = self
            .service
            .topic(
                &name,
                self.service.config.allow_auto_topic_creation || c.force_topic_creation(),
            )
            .await?;
        if let Some(s) = &c.schema {
            // Consumers may register a schema when the topic has none (no compatibility check yet).
            if self.service.schemas.get(&name, None).await?.is_none() {
                self.service.schemas.get_or_create(&name, s).await?;
            }
        }
        let durable = c.durable();
        let initial = match (&c.start_message_id, durable) {
            (Some(m), false) => {
                let p = Position::from_wire(m.ledger_id, m.entry_id);
                if m.ledger_id == u64::MAX {
                    InitialPosition::Earliest
                } else if m.ledger_id >= i64::MAX as u64 {
                    InitialPosition::Latest
                } else {
                    InitialPosition::At(p)
                }
            }
            _ => match c.initial_position() {
                WireInitial::Earliest => InitialPosition::Earliest,
                WireInitial::Latest => InitialPosition::Latest,
            },
        };
        let sub_type = c.sub_type();
        crate::policy::admit_consumer(&self.service, &topic, &c.subscription).await?;
        let sub = topic.subscribe(&c.subscription, durable, initial).await?;
        let key_shared = (sub_type == SubType::KeyShared).then(|| {
            let meta = c.key_shared_meta.clone().unwrap_or_default();
            KeySharedSpec {
                mode: KeySharedMode::try_from(meta.key_shared_mode)
                    .unwrap_or(KeySharedMode::AutoSplit),
                ranges: meta.hash_ranges.iter().map(|r| (r.start, r.end)).collect(),
            }
        });
        let key = self.service.next_key();
        let cname = c
            .consumer_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("consumer-{key}"));
        let spec = ConsumerSpec {
            key,
            consumer_id: c.consumer_id,
            name: cname.clone(),
            priority: c.priority_level.unwrap_or(0),
            sub_type,
            key_shared,
            out: self.out.clone(),
            address: self.peer.to_string(),
        };
        if let Err(e) = sub.add_consumer(spec).await {
            if !durable {
                topic.remove_subscription(&c.subscription, false).await;
            }
            return Err(e);
        }
        info!(topic = %name, sub = %c.subscription, consumer = %cname, ?sub_type, durable, "subscribed");
        self.consumers
            .insert(c.consumer_id, ConsumerState { topic, sub, key });
        Ok(())
    }

    async fn topics_of_namespace(&mut self, c: strata_proto::pulsar::CommandGetTopicsOfNamespace) {
        let res = async {
            let (tenant, ns) = c.namespace.split_once('/').ok_or_else(|| {
                BrokerError::NotAllowed(format!("invalid namespace {}", c.namespace))
            })?;
            if c.mode() == TopicsMode::NonPersistent {
                return Ok((vec![], false));
            }
            let mut topics = self.service.topics_of_namespace(tenant, ns).await?;
            let mut filtered = false;
            if let Some(p) = c.topics_pattern.as_deref().filter(|p| !p.is_empty()) {
                // Patterns name whole topics; strip the domain as Pulsar does before matching.
                let re = regex::Regex::new(&format!(
                    "^(?:{})$",
                    p.split_once("://").map(|(_, r)| r).unwrap_or(p)
                ))
                .map_err(|e| BrokerError::NotAllowed(format!("invalid topics pattern: {e}")))?;
                topics.retain(|t| re.is_match(t.split_once("://").map(|(_, r)| r).unwrap_or(t)));
                filtered = true;
            }
            Ok::<_, BrokerError>((topics, filtered))
        }
        .await;
        match res {
            Ok((topics, filtered)) => {
                let hash = format!("{:08x}", crc32c::crc32c(topics.join(",").as_bytes()));
                self.send(commands::get_topics_of_namespace_response(
                    c.request_id,
                    topics,
                    filtered,
                    Some(hash),
                ));
            }
            Err(e) => self.error(c.request_id, &e),
        }
    }
}

/// The request id of a command that has one (for errors to unsupported commands).
/// Authorization of a command that names a topic or namespace (PRODUCER, SUBSCRIBE, LOOKUP,
/// PARTITIONED_METADATA, GET_TOPICS_OF_NAMESPACE, GET_SCHEMA, GET_OR_CREATE_SCHEMA).
/// Commands on a producer or consumer id act on what this connection was allowed to open.
async fn authorize(
    service: &BrokerService,
    role: Option<&str>,
    t: Type,
    cmd: &BaseCommand,
) -> Result<()> {
    use strata_auth::BinaryCommand as B;
    let Some(role) = role else {
        return Ok(());
    };
    let security = service.security();
    let (op, topic, sub): (B, &str, Option<&str>) = match t {
        Type::Producer => match &cmd.producer {
            Some(c) => (B::Producer, &c.topic, None),
            None => return Ok(()),
        },
        Type::Subscribe => match &cmd.subscribe {
            Some(c) => (B::Subscribe, &c.topic, Some(c.subscription.as_str())),
            None => return Ok(()),
        },
        Type::Lookup => match &cmd.lookup_topic {
            Some(c) => (B::Lookup, &c.topic, None),
            None => return Ok(()),
        },
        Type::PartitionedMetadata => match &cmd.partition_metadata {
            Some(c) => (B::PartitionedMetadata, &c.topic, None),
            None => return Ok(()),
        },
        Type::GetSchema => match &cmd.get_schema {
            Some(c) => (B::GetSchema, &c.topic, None),
            None => return Ok(()),
        },
        Type::GetOrCreateSchema => match &cmd.get_or_create_schema {
            Some(c) => (B::GetOrCreateSchema, &c.topic, None),
            None => return Ok(()),
        },
        Type::GetTopicsOfNamespace => {
            let Some(c) = &cmd.get_topics_of_namespace else {
                return Ok(());
            };
            let (tenant, ns) = c.namespace.split_once('/').ok_or_else(|| {
                BrokerError::InvalidTopicName(format!("bad namespace {:?}", c.namespace))
            })?;
            let info = service.tenant_info(tenant).await?;
            let pol = service.policies(tenant, ns).await?;
            return security
                .check_command(
                    Some(role),
                    B::GetTopicsOfNamespace,
                    &strata_auth::Resource::namespace(tenant, info.as_ref(), pol.as_ref()),
                )
                .map_err(|e| BrokerError::Unauthorized(e.to_string()));
        }
        _ => return Ok(()),
    };
    let name = TopicName::parse(topic)?;
    let info = service.tenant_info(&name.tenant).await?;
    let pol = service.policies(&name.tenant, &name.namespace).await?;
    let path = crate::admin::topic_path(&name);
    let mut res = strata_auth::Resource::topic(&path, info.as_ref(), pol.as_ref());
    if let Some(sub) = sub {
        res = res.with_subscription(sub);
    }
    security
        .check_command(Some(role), op, &res)
        .map_err(|e| BrokerError::Unauthorized(e.to_string()))
}

fn request_id_of(cmd: &BaseCommand) -> Option<u64> {
    cmd.new_txn
        .as_ref()
        .map(|c| c.request_id)
        .or(cmd.add_partition_to_txn.as_ref().map(|c| c.request_id))
        .or(cmd.add_subscription_to_txn.as_ref().map(|c| c.request_id))
        .or(cmd.end_txn.as_ref().map(|c| c.request_id))
        .or(cmd.tc_client_connect_request.as_ref().map(|c| c.request_id))
        .or(cmd.watch_topic_list.as_ref().map(|c| c.request_id))
}
