//! The strategy × schema change table (Pulsar's documented evolution rules), through the
//! registry over an in-memory metadata store.

use bytes::Bytes;
use strata_proto::pulsar::Schema;

use super::types::kind;
use super::*;

fn avro(fields: &str) -> Schema {
    Schema {
        name: "t".into(),
        schema_data: Bytes::from(format!(
            r#"{{"type":"record","name":"User","fields":[{fields}]}}"#
        )),
        r#type: kind::AVRO,
        properties: vec![],
    }
}

const V1: &str = r#"{"name":"name","type":"string"},{"name":"age","type":"int"}"#;
/// v1 + an optional field (with a default).
const ADD_OPTIONAL: &str = r#"{"name":"name","type":"string"},{"name":"age","type":"int"},{"name":"mail","type":["null","string"],"default":null}"#;
/// v1 + a required field (no default).
const ADD_REQUIRED: &str = r#"{"name":"name","type":"string"},{"name":"age","type":"int"},{"name":"mail","type":"string"}"#;
/// v1 less a required field.
const DELETE_REQUIRED: &str = r#"{"name":"name","type":"string"}"#;
/// v1 with a field's type changed.
const CHANGE_TYPE: &str = r#"{"name":"name","type":"string"},{"name":"age","type":"string"}"#;
/// v1 with int widened to long.
const WIDEN: &str = r#"{"name":"name","type":"string"},{"name":"age","type":"long"}"#;

fn registry() -> SchemaRegistry {
    SchemaRegistry::new(crate::metadata::in_memory().unwrap())
}

fn topic(i: usize) -> TopicName {
    TopicName::parse(&format!("persistent://public/default/schema-{i}")).unwrap()
}

async fn outcome(
    r: &SchemaRegistry,
    t: &TopicName,
    history: &[&str],
    next: &str,
    s: Strategy,
) -> bool {
    let all = PutRules {
        strategy: Strategy::AlwaysCompatible,
        may_add: true,
    };
    for h in history {
        r.put_if_absent(t, &avro(h), all).await.unwrap();
    }
    let rules = PutRules {
        strategy: s,
        may_add: true,
    };
    match r.put_if_absent(t, &avro(next), rules).await {
        Ok(_) => true,
        Err(BrokerError::IncompatibleSchema(_)) => false,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn strategy_by_change_table() {
    use Strategy::*;
    // (strategy, history, new schema, accepted)
    let table: &[(Strategy, &[&str], &str, bool)] = &[
        (AlwaysCompatible, &[V1], CHANGE_TYPE, true),
        (AlwaysIncompatible, &[V1], ADD_OPTIONAL, false),
        (AlwaysIncompatible, &[V1], V1, true), // an identical schema is no change
        // BACKWARD: consumers of the new schema read old data.
        (Backward, &[V1], ADD_OPTIONAL, true),
        (Backward, &[V1], ADD_REQUIRED, false),
        (Backward, &[V1], DELETE_REQUIRED, true),
        (Backward, &[V1], CHANGE_TYPE, false),
        (Backward, &[V1], WIDEN, true),
        // FORWARD: consumers of the old schema read new data.
        (Forward, &[V1], ADD_OPTIONAL, true),
        (Forward, &[V1], ADD_REQUIRED, true),
        (Forward, &[V1], DELETE_REQUIRED, false),
        (Forward, &[V1], WIDEN, false),
        // FULL: both.
        (Full, &[V1], ADD_OPTIONAL, true),
        (Full, &[V1], ADD_REQUIRED, false),
        (Full, &[V1], DELETE_REQUIRED, false),
        (Full, &[V1], WIDEN, false),
        // Transitive forms check every live version, not only the latest.
        (Backward, &[CHANGE_TYPE, V1], WIDEN, true),
        (BackwardTransitive, &[CHANGE_TYPE, V1], WIDEN, false),
        (Backward, &[DELETE_REQUIRED, V1], ADD_OPTIONAL, true),
        (Forward, &[ADD_REQUIRED, V1], ADD_OPTIONAL, true),
        (ForwardTransitive, &[ADD_REQUIRED, V1], ADD_OPTIONAL, false),
        (Forward, &[V1, ADD_REQUIRED], DELETE_REQUIRED, false),
        (Forward, &[DELETE_REQUIRED, V1], DELETE_REQUIRED, true), // already registered
        (Full, &[ADD_REQUIRED, V1], ADD_OPTIONAL, true),
        (FullTransitive, &[ADD_REQUIRED, V1], ADD_OPTIONAL, false),
        (FullTransitive, &[ADD_OPTIONAL, V1], ADD_OPTIONAL, true), // already registered
    ];
    let r = registry();
    for (i, (s, history, next, expected)) in table.iter().enumerate() {
        let got = outcome(&r, &topic(i), history, next, *s).await;
        assert_eq!(got, *expected, "row {i}: {s} {history:?} -> {next}");
    }
}

#[tokio::test]
async fn type_change_is_refused_unless_always_compatible() {
    let r = registry();
    let t = topic(100);
    let rules = |strategy| PutRules {
        strategy,
        may_add: true,
    };
    r.put_if_absent(&t, &avro(V1), rules(Strategy::Full))
        .await
        .unwrap();
    let string = Schema {
        name: "t".into(),
        schema_data: Bytes::new(),
        r#type: 1,
        properties: vec![],
    };
    assert!(
        r.put_if_absent(&t, &string, rules(Strategy::Full))
            .await
            .is_err()
    );
    assert_eq!(
        r.put_if_absent(&t, &string, rules(Strategy::AlwaysCompatible))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn auto_update_off_accepts_only_registered_schemas_and_deletion_restarts() {
    let r = registry();
    let t = topic(101);
    let open = PutRules {
        strategy: Strategy::Full,
        may_add: true,
    };
    let closed = PutRules {
        may_add: false,
        ..open
    };
    assert!(r.put_if_absent(&t, &avro(V1), closed).await.is_err());
    assert_eq!(r.put_if_absent(&t, &avro(V1), open).await.unwrap(), 0);
    assert_eq!(r.put_if_absent(&t, &avro(V1), closed).await.unwrap(), 0);
    assert!(
        r.put_if_absent(&t, &avro(ADD_OPTIONAL), closed)
            .await
            .is_err()
    );
    // delete: a marker version; the next schema is not checked against the old ones
    assert_eq!(r.delete(&t, false).await.unwrap(), Some(1));
    assert!(r.get(&t, None).await.unwrap().is_none());
    assert_eq!(
        r.put_if_absent(&t, &avro(CHANGE_TYPE), open).await.unwrap(),
        2
    );
    assert_eq!(r.all(&t).await.unwrap().len(), 1);
}

#[tokio::test]
async fn consumer_check_reads_with_backward_and_needs_a_schema() {
    let r = registry();
    let t = topic(102);
    let e = r.check_consumer(&t, &avro(V1), Strategy::Full).await;
    assert!(matches!(e, Err(BrokerError::IncompatibleSchema(_))));
    let open = PutRules {
        strategy: Strategy::Full,
        may_add: true,
    };
    r.put_if_absent(&t, &avro(V1), open).await.unwrap();
    r.check_consumer(&t, &avro(V1), Strategy::Full)
        .await
        .unwrap();
    r.check_consumer(&t, &avro(ADD_OPTIONAL), Strategy::Full)
        .await
        .unwrap();
    assert!(
        r.check_consumer(&t, &avro(CHANGE_TYPE), Strategy::Full)
            .await
            .is_err()
    );
    assert!(
        r.check_consumer(&t, &avro(ADD_REQUIRED), Strategy::Forward)
            .await
            .is_err()
    );
    // ALWAYS_INCOMPATIBLE checks against all without the identical-schema shortcut
    assert!(
        r.check_consumer(&t, &avro(V1), Strategy::AlwaysIncompatible)
            .await
            .is_err()
    );
    assert!(
        r.check_consumer(&t, &avro(CHANGE_TYPE), Strategy::AlwaysCompatible)
            .await
            .is_ok()
    );
}
