//! Builders for the `BaseCommand`s brokers and clients send most often.
//!
//! Each function sets `type` and the matching field, so a command can never carry a type that
//! disagrees with its body. Anything not covered here is built with struct-update syntax around
//! [`base`].

use bytes::Bytes;

use crate::pulsar::base_command::Type;
use crate::pulsar::command_ack::AckType;
use crate::pulsar::command_lookup_topic_response::LookupType;
use crate::pulsar::command_partitioned_topic_metadata_response::LookupType as PartitionLookupType;
use crate::pulsar::command_subscribe::{InitialPosition, SubType};
use crate::pulsar::*;

/// An empty command of type `t` (fill the matching field yourself).
pub fn base(t: Type) -> BaseCommand {
    BaseCommand {
        r#type: t as i32,
        ..Default::default()
    }
}

/// The command's type name as in the protocol (`"SEND"`, `"PING"`, ...), `"UNKNOWN"` otherwise.
pub fn type_name(command: &BaseCommand) -> &'static str {
    Type::try_from(command.r#type).map_or("UNKNOWN", |t| t.as_str_name())
}

/// CONNECT. `auth` is `(auth_method_name, auth_data)`.
pub fn connect(
    client_version: &str,
    protocol_version: i32,
    auth: Option<(String, Bytes)>,
) -> BaseCommand {
    let (auth_method_name, auth_data) = match auth {
        Some((m, d)) => (Some(m), Some(d)),
        None => (None, None),
    };
    BaseCommand {
        connect: Some(Box::new(CommandConnect {
            client_version: client_version.to_owned(),
            protocol_version: Some(protocol_version),
            auth_method_name,
            auth_data,
            feature_flags: Some(FeatureFlags::default()),
            ..Default::default()
        })),
        ..base(Type::Connect)
    }
}

/// CONNECTED. `server_version` must be present: the C++ client closes the connection otherwise.
pub fn connected(
    server_version: &str,
    protocol_version: i32,
    max_message_size: i32,
    feature_flags: FeatureFlags,
) -> BaseCommand {
    BaseCommand {
        connected: Some(Box::new(CommandConnected {
            server_version: server_version.to_owned(),
            protocol_version: Some(protocol_version),
            max_message_size: Some(max_message_size),
            feature_flags: Some(feature_flags),
        })),
        ..base(Type::Connected)
    }
}

/// AUTH_CHALLENGE asking the client to refresh its credentials.
pub fn auth_challenge(server_version: &str, protocol_version: i32, method: &str) -> BaseCommand {
    BaseCommand {
        auth_challenge: Some(Box::new(CommandAuthChallenge {
            server_version: Some(server_version.to_owned()),
            challenge: Some(AuthData {
                auth_method_name: Some(method.to_owned()),
                auth_data: Some(Bytes::from_static(b"refresh")),
            }),
            protocol_version: Some(protocol_version),
        })),
        ..base(Type::AuthChallenge)
    }
}

/// PING.
pub fn ping() -> BaseCommand {
    BaseCommand {
        ping: Some(Box::new(CommandPing {})),
        ..base(Type::Ping)
    }
}

/// PONG.
pub fn pong() -> BaseCommand {
    BaseCommand {
        pong: Some(Box::new(CommandPong {})),
        ..base(Type::Pong)
    }
}

/// ERROR answering `request_id`.
pub fn error(request_id: u64, error: ServerError, message: impl Into<String>) -> BaseCommand {
    BaseCommand {
        error: Some(Box::new(CommandError {
            request_id,
            error: error as i32,
            message: message.into(),
        })),
        ..base(Type::Error)
    }
}

/// SUCCESS answering `request_id`.
pub fn success(request_id: u64) -> BaseCommand {
    BaseCommand {
        success: Some(Box::new(CommandSuccess {
            request_id,
            schema: None,
        })),
        ..base(Type::Success)
    }
}

/// PRODUCER (client side).
pub fn producer(
    topic: &str,
    producer_id: u64,
    request_id: u64,
    producer_name: Option<String>,
) -> BaseCommand {
    BaseCommand {
        producer: Some(Box::new(CommandProducer {
            topic: topic.to_owned(),
            producer_id,
            request_id,
            user_provided_producer_name: Some(producer_name.is_some()),
            producer_name,
            ..Default::default()
        })),
        ..base(Type::Producer)
    }
}

/// PRODUCER_SUCCESS.
pub fn producer_success(
    request_id: u64,
    producer_name: &str,
    last_sequence_id: i64,
    schema_version: Option<Bytes>,
) -> BaseCommand {
    BaseCommand {
        producer_success: Some(Box::new(CommandProducerSuccess {
            request_id,
            producer_name: producer_name.to_owned(),
            last_sequence_id: Some(last_sequence_id),
            schema_version,
            topic_epoch: None,
            producer_ready: Some(true),
        })),
        ..base(Type::ProducerSuccess)
    }
}

/// SEND header (the payload travels in the frame).
pub fn send(producer_id: u64, sequence_id: u64, num_messages: i32) -> BaseCommand {
    BaseCommand {
        send: Some(Box::new(send_command(
            producer_id,
            sequence_id,
            num_messages,
        ))),
        ..base(Type::Send)
    }
}

/// The SEND command alone, for [`crate::outgoing::Outgoing::Send`].
pub fn send_command(producer_id: u64, sequence_id: u64, num_messages: i32) -> CommandSend {
    CommandSend {
        producer_id,
        sequence_id,
        num_messages: Some(num_messages),
        ..Default::default()
    }
}

/// SEND_RECEIPT.
pub fn send_receipt(producer_id: u64, sequence_id: u64, message_id: MessageIdData) -> BaseCommand {
    BaseCommand {
        send_receipt: Some(Box::new(CommandSendReceipt {
            producer_id,
            sequence_id,
            message_id: Some(message_id),
            highest_sequence_id: None,
        })),
        ..base(Type::SendReceipt)
    }
}

/// SEND_ERROR.
pub fn send_error(
    producer_id: u64,
    sequence_id: u64,
    error: ServerError,
    message: impl Into<String>,
) -> BaseCommand {
    BaseCommand {
        send_error: Some(Box::new(CommandSendError {
            producer_id,
            sequence_id,
            error: error as i32,
            message: message.into(),
        })),
        ..base(Type::SendError)
    }
}

/// SUBSCRIBE (client side).
pub fn subscribe(
    topic: &str,
    subscription: &str,
    sub_type: SubType,
    consumer_id: u64,
    request_id: u64,
    initial_position: InitialPosition,
) -> BaseCommand {
    BaseCommand {
        subscribe: Some(Box::new(CommandSubscribe {
            topic: topic.to_owned(),
            subscription: subscription.to_owned(),
            sub_type: sub_type as i32,
            consumer_id,
            request_id,
            initial_position: Some(initial_position as i32),
            ..Default::default()
        })),
        ..base(Type::Subscribe)
    }
}

/// FLOW granting `permits` more messages.
pub fn flow(consumer_id: u64, permits: u32) -> BaseCommand {
    BaseCommand {
        flow: Some(Box::new(CommandFlow {
            consumer_id,
            message_permits: permits,
        })),
        ..base(Type::Flow)
    }
}

/// MESSAGE header (the entry travels as the payload).
pub fn message(consumer_id: u64, message_id: MessageIdData, redelivery_count: u32) -> BaseCommand {
    BaseCommand {
        message: Some(Box::new(message_command(
            consumer_id,
            message_id,
            redelivery_count,
        ))),
        ..base(Type::Message)
    }
}

/// The MESSAGE command alone, for [`crate::outgoing::Outgoing::Message`].
pub fn message_command(
    consumer_id: u64,
    message_id: MessageIdData,
    redelivery_count: u32,
) -> CommandMessage {
    CommandMessage {
        consumer_id,
        message_id,
        redelivery_count: Some(redelivery_count),
        ack_set: Vec::new(),
        consumer_epoch: None,
    }
}

/// ACK of one or more message ids.
pub fn ack(consumer_id: u64, ack_type: AckType, message_ids: Vec<MessageIdData>) -> BaseCommand {
    BaseCommand {
        ack: Some(Box::new(CommandAck {
            consumer_id,
            ack_type: ack_type as i32,
            message_id: message_ids,
            ..Default::default()
        })),
        ..base(Type::Ack)
    }
}

/// ACK_RESPONSE (only when the client asked for a receipt with `request_id`).
pub fn ack_response(
    consumer_id: u64,
    request_id: Option<u64>,
    error: Option<(ServerError, String)>,
) -> BaseCommand {
    let (error, message) = match error {
        Some((e, m)) => (Some(e as i32), Some(m)),
        None => (None, None),
    };
    BaseCommand {
        ack_response: Some(Box::new(CommandAckResponse {
            consumer_id,
            request_id,
            error,
            message,
            ..Default::default()
        })),
        ..base(Type::AckResponse)
    }
}

/// REDELIVER_UNACKNOWLEDGED_MESSAGES (empty `message_ids` = all of the consumer's).
pub fn redeliver_unacknowledged(consumer_id: u64, message_ids: Vec<MessageIdData>) -> BaseCommand {
    BaseCommand {
        redeliver_unacknowledged_messages: Some(Box::new(CommandRedeliverUnacknowledgedMessages {
            consumer_id,
            message_ids,
            consumer_epoch: None,
        })),
        ..base(Type::RedeliverUnacknowledgedMessages)
    }
}

/// UNSUBSCRIBE.
pub fn unsubscribe(consumer_id: u64, request_id: u64) -> BaseCommand {
    BaseCommand {
        unsubscribe: Some(Box::new(CommandUnsubscribe {
            consumer_id,
            request_id,
            force: None,
        })),
        ..base(Type::Unsubscribe)
    }
}

/// SEEK to a message id.
pub fn seek_to_message(
    consumer_id: u64,
    request_id: u64,
    message_id: MessageIdData,
) -> BaseCommand {
    BaseCommand {
        seek: Some(Box::new(CommandSeek {
            consumer_id,
            request_id,
            message_id: Some(message_id),
            message_publish_time: None,
        })),
        ..base(Type::Seek)
    }
}

/// SEEK to a publish time (milliseconds since the epoch).
pub fn seek_to_time(consumer_id: u64, request_id: u64, publish_time_ms: u64) -> BaseCommand {
    BaseCommand {
        seek: Some(Box::new(CommandSeek {
            consumer_id,
            request_id,
            message_id: None,
            message_publish_time: Some(publish_time_ms),
        })),
        ..base(Type::Seek)
    }
}

/// CLOSE_PRODUCER; the broker sets `assigned_broker_url` when the topic moved.
pub fn close_producer(
    producer_id: u64,
    request_id: u64,
    assigned_broker_url: Option<String>,
) -> BaseCommand {
    BaseCommand {
        close_producer: Some(Box::new(CommandCloseProducer {
            producer_id,
            request_id,
            assigned_broker_service_url: assigned_broker_url,
            assigned_broker_service_url_tls: None,
        })),
        ..base(Type::CloseProducer)
    }
}

/// CLOSE_CONSUMER; the broker sets `assigned_broker_url` when the topic moved.
pub fn close_consumer(
    consumer_id: u64,
    request_id: u64,
    assigned_broker_url: Option<String>,
) -> BaseCommand {
    BaseCommand {
        close_consumer: Some(Box::new(CommandCloseConsumer {
            consumer_id,
            request_id,
            assigned_broker_service_url: assigned_broker_url,
            assigned_broker_service_url_tls: None,
        })),
        ..base(Type::CloseConsumer)
    }
}

/// ACTIVE_CONSUMER_CHANGE (Failover).
pub fn active_consumer_change(consumer_id: u64, is_active: bool) -> BaseCommand {
    BaseCommand {
        active_consumer_change: Some(Box::new(CommandActiveConsumerChange {
            consumer_id,
            is_active: Some(is_active),
        })),
        ..base(Type::ActiveConsumerChange)
    }
}

/// REACHED_END_OF_TOPIC.
pub fn reached_end_of_topic(consumer_id: u64) -> BaseCommand {
    BaseCommand {
        reached_end_of_topic: Some(Box::new(CommandReachedEndOfTopic { consumer_id })),
        ..base(Type::ReachedEndOfTopic)
    }
}

/// LOOKUP (client side).
pub fn lookup(request_id: u64, topic: &str, authoritative: bool) -> BaseCommand {
    BaseCommand {
        lookup_topic: Some(Box::new(CommandLookupTopic {
            topic: topic.to_owned(),
            request_id,
            authoritative: Some(authoritative),
            ..Default::default()
        })),
        ..base(Type::Lookup)
    }
}

/// LOOKUP_RESPONSE: connect to `broker_url` (this broker owns the topic).
pub fn lookup_connect(request_id: u64, broker_url: &str, authoritative: bool) -> BaseCommand {
    lookup_answer(
        request_id,
        broker_url,
        None,
        authoritative,
        LookupType::Connect,
    )
}

/// LOOKUP_RESPONSE: connect to `broker_url`, or to `broker_url_tls` for a TLS client.
pub fn lookup_connect_tls(
    request_id: u64,
    broker_url: &str,
    broker_url_tls: Option<&str>,
    authoritative: bool,
) -> BaseCommand {
    lookup_answer(
        request_id,
        broker_url,
        broker_url_tls,
        authoritative,
        LookupType::Connect,
    )
}

/// LOOKUP_RESPONSE: ask `broker_url` instead (the client looks up again there).
pub fn lookup_redirect(request_id: u64, broker_url: &str, authoritative: bool) -> BaseCommand {
    lookup_answer(
        request_id,
        broker_url,
        None,
        authoritative,
        LookupType::Redirect,
    )
}

/// LOOKUP_RESPONSE: ask `broker_url` (a TLS client: `broker_url_tls`) instead.
pub fn lookup_redirect_tls(
    request_id: u64,
    broker_url: &str,
    broker_url_tls: Option<&str>,
    authoritative: bool,
) -> BaseCommand {
    lookup_answer(
        request_id,
        broker_url,
        broker_url_tls,
        authoritative,
        LookupType::Redirect,
    )
}

fn lookup_answer(
    request_id: u64,
    url: &str,
    url_tls: Option<&str>,
    authoritative: bool,
    t: LookupType,
) -> BaseCommand {
    BaseCommand {
        lookup_topic_response: Some(Box::new(CommandLookupTopicResponse {
            broker_service_url: Some(url.to_owned()),
            broker_service_url_tls: url_tls.map(str::to_owned),
            response: Some(t as i32),
            request_id,
            authoritative: Some(authoritative),
            proxy_through_service_url: Some(false),
            ..Default::default()
        })),
        ..base(Type::LookupResponse)
    }
}

/// LOOKUP_RESPONSE with an error.
pub fn lookup_error(
    request_id: u64,
    error: ServerError,
    message: impl Into<String>,
) -> BaseCommand {
    BaseCommand {
        lookup_topic_response: Some(Box::new(CommandLookupTopicResponse {
            response: Some(LookupType::Failed as i32),
            request_id,
            error: Some(error as i32),
            message: Some(message.into()),
            ..Default::default()
        })),
        ..base(Type::LookupResponse)
    }
}

/// PARTITIONED_METADATA (client side).
pub fn partitioned_metadata(request_id: u64, topic: &str) -> BaseCommand {
    BaseCommand {
        partition_metadata: Some(Box::new(CommandPartitionedTopicMetadata {
            topic: topic.to_owned(),
            request_id,
            ..Default::default()
        })),
        ..base(Type::PartitionedMetadata)
    }
}

/// PARTITIONED_METADATA_RESPONSE (0 partitions = not a partitioned topic).
pub fn partitioned_metadata_response(request_id: u64, partitions: u32) -> BaseCommand {
    BaseCommand {
        partition_metadata_response: Some(Box::new(CommandPartitionedTopicMetadataResponse {
            partitions: Some(partitions),
            request_id,
            response: Some(PartitionLookupType::Success as i32),
            error: None,
            message: None,
        })),
        ..base(Type::PartitionedMetadataResponse)
    }
}

/// PARTITIONED_METADATA_RESPONSE with an error.
pub fn partitioned_metadata_error(
    request_id: u64,
    error: ServerError,
    message: impl Into<String>,
) -> BaseCommand {
    BaseCommand {
        partition_metadata_response: Some(Box::new(CommandPartitionedTopicMetadataResponse {
            partitions: None,
            request_id,
            response: Some(PartitionLookupType::Failed as i32),
            error: Some(error as i32),
            message: Some(message.into()),
        })),
        ..base(Type::PartitionedMetadataResponse)
    }
}

/// GET_LAST_MESSAGE_ID (client side).
pub fn get_last_message_id(consumer_id: u64, request_id: u64) -> BaseCommand {
    BaseCommand {
        get_last_message_id: Some(Box::new(CommandGetLastMessageId {
            consumer_id,
            request_id,
        })),
        ..base(Type::GetLastMessageId)
    }
}

/// GET_LAST_MESSAGE_ID_RESPONSE.
pub fn get_last_message_id_response(
    request_id: u64,
    last_message_id: MessageIdData,
    mark_delete_position: Option<MessageIdData>,
) -> BaseCommand {
    BaseCommand {
        get_last_message_id_response: Some(Box::new(CommandGetLastMessageIdResponse {
            last_message_id,
            request_id,
            consumer_mark_delete_position: mark_delete_position,
        })),
        ..base(Type::GetLastMessageIdResponse)
    }
}

/// GET_TOPICS_OF_NAMESPACE_RESPONSE.
pub fn get_topics_of_namespace_response(
    request_id: u64,
    topics: Vec<String>,
    filtered: bool,
    topics_hash: Option<String>,
) -> BaseCommand {
    BaseCommand {
        get_topics_of_namespace_response: Some(Box::new(CommandGetTopicsOfNamespaceResponse {
            request_id,
            topics,
            filtered: Some(filtered),
            topics_hash,
            changed: Some(true),
        })),
        ..base(Type::GetTopicsOfNamespaceResponse)
    }
}

/// GET_SCHEMA_RESPONSE with a schema.
pub fn get_schema_response(request_id: u64, schema: Schema, schema_version: Bytes) -> BaseCommand {
    BaseCommand {
        get_schema_response: Some(Box::new(CommandGetSchemaResponse {
            request_id,
            error_code: None,
            error_message: None,
            schema: Some(schema),
            schema_version: Some(schema_version),
        })),
        ..base(Type::GetSchemaResponse)
    }
}

/// GET_SCHEMA_RESPONSE with an error (e.g. `TopicNotFound` when the topic has no schema).
pub fn get_schema_error(
    request_id: u64,
    error: ServerError,
    message: impl Into<String>,
) -> BaseCommand {
    BaseCommand {
        get_schema_response: Some(Box::new(CommandGetSchemaResponse {
            request_id,
            error_code: Some(error as i32),
            error_message: Some(message.into()),
            schema: None,
            schema_version: None,
        })),
        ..base(Type::GetSchemaResponse)
    }
}

/// GET_OR_CREATE_SCHEMA_RESPONSE: `Ok(version)` or `Err((error, message))`.
pub fn get_or_create_schema_response(
    request_id: u64,
    result: Result<Bytes, (ServerError, String)>,
) -> BaseCommand {
    let (schema_version, error_code, error_message) = match result {
        Ok(v) => (Some(v), None, None),
        Err((e, m)) => (None, Some(e as i32), Some(m)),
    };
    BaseCommand {
        get_or_create_schema_response: Some(Box::new(CommandGetOrCreateSchemaResponse {
            request_id,
            error_code,
            error_message,
            schema_version,
        })),
        ..base(Type::GetOrCreateSchemaResponse)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_matching_type() {
        assert_eq!(type_name(&ping()), "PING");
        assert_eq!(type_name(&send(1, 2, 3)), "SEND");
        assert_eq!(
            type_name(&lookup_redirect(1, "pulsar://x:1", true)),
            "LOOKUP_RESPONSE"
        );
        assert_eq!(type_name(&base_unknown()), "UNKNOWN");
    }

    fn base_unknown() -> BaseCommand {
        BaseCommand {
            r#type: 1,
            ..Default::default()
        }
    }
}
