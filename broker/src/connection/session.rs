//! The session of a connection: CONNECT (authentication, protocol version, feature flags),
//! AUTH_RESPONSE (refreshed credentials) and the periodic expiry check that sends
//! AUTH_CHALLENGE or closes.

use std::time::Duration;

use strata_proto::commands;
use strata_proto::frame::PROTOCOL_VERSION;
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::{BaseCommand, FeatureFlags};
use tracing::{debug, info, warn};

use strata_auth::basic::AUTH_METHOD_BASIC;

use super::{Conn, SERVER_VERSION};

impl Conn {
    /// CONNECT; returns false if the connection must close.
    pub(super) async fn connect(&mut self, cmd: BaseCommand) -> bool {
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
        let authenticated = if c.auth_method_name.as_deref() == Some(AUTH_METHOD_BASIC) {
            // Password hashes (bcrypt) are slow on purpose: off the runtime's threads.
            let (sec, method, data, role) = (
                security.clone(),
                c.auth_method_name.clone(),
                c.auth_data.clone(),
                self.tls_role.clone(),
            );
            let r = tokio::task::spawn_blocking(move || {
                sec.authenticate_connect(method.as_deref(), data.as_deref(), role.as_deref())
            })
            .await;
            match r {
                Ok(r) => r,
                Err(e) => {
                    warn!(peer = %self.peer, error = %e, "authentication task failed; closing connection");
                    return false;
                }
            }
        } else {
            security.authenticate_connect(
                c.auth_method_name.as_deref(),
                c.auth_data.as_deref(),
                self.tls_role.as_deref(),
            )
        };
        match authenticated {
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
        self.client_version = c.client_version.clone();
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
    pub(super) fn check_session(&mut self) -> bool {
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
                    auth_challenge: Some(Box::new(strata_proto::pulsar::CommandAuthChallenge {
                        server_version: Some(SERVER_VERSION.to_owned()),
                        challenge: Some(strata_proto::pulsar::AuthData {
                            auth_method_name: Some(strata_auth::token::AUTH_METHOD_TOKEN.into()),
                            auth_data: Some(bytes::Bytes::from_static(
                                strata_auth::token::REFRESH_AUTH_DATA,
                            )),
                        }),
                        protocol_version: Some(self.protocol_version),
                    })),
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

    /// AUTH_RESPONSE: fresh credentials for the same role, or the connection closes. Without
    /// authentication there is no session to refresh and it is ignored.
    pub(super) fn auth_response(&mut self, cmd: BaseCommand) -> bool {
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
}
