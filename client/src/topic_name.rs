//! Topic names: the short forms users type and the names of partitions.

/// `my-topic` → `persistent://public/default/my-topic`; `t/ns/x` → `persistent://t/ns/x`.
pub fn full_topic_name(topic: &str) -> String {
    if topic.contains("://") {
        topic.to_owned()
    } else if topic.matches('/').count() == 2 {
        format!("persistent://{topic}")
    } else {
        format!("persistent://public/default/{topic}")
    }
}

/// The name of partition `i` of a partitioned topic.
pub fn partition_name(topic: &str, i: u32) -> String {
    format!("{topic}-partition-{i}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert_eq!(full_topic_name("a"), "persistent://public/default/a");
        assert_eq!(full_topic_name("t/n/a"), "persistent://t/n/a");
        assert_eq!(
            full_topic_name("non-persistent://t/n/a"),
            "non-persistent://t/n/a"
        );
        assert_eq!(
            partition_name("persistent://t/n/a", 3),
            "persistent://t/n/a-partition-3"
        );
    }
}
