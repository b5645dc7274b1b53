//! Queue names: upstream's `class:topicspace:topic`, and what each broker makes of them.

use std::fmt;

/// A queue's class decides how brokers treat it (upstream's `schema/core/topic.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueClass {
    /// Persistent work queue, shared by competing consumers.
    Flow,
    /// RPC requests, shared by the service's instances.
    Request,
    /// RPC answers, seen by every subscriber.
    Response,
    /// Broadcasts, seen by every subscriber.
    Notify,
}

/// The default topicspace, as upstream's.
pub const TOPICSPACE: &str = "tg";

/// One queue, `class:topicspace:topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub class: QueueClass,
    pub topicspace: String,
    pub topic: String,
}

impl Queue {
    /// `request:tg:<service>`.
    pub fn request(service: &str) -> Self {
        Self { class: QueueClass::Request, topicspace: TOPICSPACE.into(), topic: service.into() }
    }

    /// `response:tg:<service>`.
    pub fn response(service: &str) -> Self {
        Self { class: QueueClass::Response, topicspace: TOPICSPACE.into(), topic: service.into() }
    }

    /// `request:tg:<service>:<workspace>`: a service's request queue for one workspace, as
    /// flow-svc serves it from TrustGraph 2.4.13 on (upstream's `f"{flow_request_queue}:{ws}"`).
    pub fn request_for(service: &str, workspace: &str) -> Self {
        Self::request(&format!("{service}:{workspace}"))
    }

    /// `response:tg:<service>:<workspace>`, where [`Queue::request_for`] is answered.
    pub fn response_for(service: &str, workspace: &str) -> Self {
        Self::response(&format!("{service}:{workspace}"))
    }

    /// Whether consumers share one subscription (and so split the messages between them).
    pub fn is_shared(&self) -> bool {
        matches!(self.class, QueueClass::Flow | QueueClass::Request)
    }

    /// The Pulsar topic: `persistent://tg/flow/<topic>` for the flow class,
    /// `non-persistent://<topicspace>/<class>/<topic>` for the others.
    pub fn pulsar_topic(&self) -> String {
        let persistence = if self.class == QueueClass::Flow { "persistent" } else { "non-persistent" };
        format!("{persistence}://{}/{}/{}", self.topicspace, self.class.name(), self.topic)
    }

    /// The RabbitMQ fanout exchange: `<topicspace>.<class>.<topic>`.
    pub fn rabbitmq_exchange(&self) -> String {
        format!("{}.{}.{}", self.topicspace, self.class.name(), self.topic)
    }

    /// The Kafka topic: `<topicspace>.<class>.<topic>` with every further `:` as `.` (Kafka
    /// allows no `:` in a topic name), as upstream's Kafka backend names it.
    pub fn kafka_topic(&self) -> String {
        self.rabbitmq_exchange().replace(':', ".")
    }
}

impl QueueClass {
    pub fn name(self) -> &'static str {
        match self {
            Self::Flow => "flow",
            Self::Request => "request",
            Self::Response => "response",
            Self::Notify => "notify",
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.class.name(), self.topicspace, self.topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_queue_keeps_its_colon_as_upstream_maps_it() {
        // Upstream splits `class:topicspace:topic` at the first two colons only.
        let request = Queue::request_for("flow", "acme");
        assert_eq!(request.to_string(), "request:tg:flow:acme");
        assert_eq!(request.pulsar_topic(), "non-persistent://tg/request/flow:acme");
        assert_eq!(request.rabbitmq_exchange(), "tg.request.flow:acme");
        assert_eq!(request.kafka_topic(), "tg.request.flow.acme");
        assert!(request.is_shared());
        let response = Queue::response_for("flow", "acme");
        assert_eq!(response.pulsar_topic(), "non-persistent://tg/response/flow:acme");
        assert_eq!(response.rabbitmq_exchange(), "tg.response.flow:acme");
        assert!(!response.is_shared());
    }

    #[test]
    fn names_follow_upstream() {
        let request = Queue::request("config");
        assert_eq!(request.to_string(), "request:tg:config");
        assert_eq!(request.pulsar_topic(), "non-persistent://tg/request/config");
        assert_eq!(request.rabbitmq_exchange(), "tg.request.config");
        assert_eq!(request.kafka_topic(), "tg.request.config");
        assert!(request.is_shared());

        let response = Queue::response("flow");
        assert_eq!(response.pulsar_topic(), "non-persistent://tg/response/flow");
        assert!(!response.is_shared());

        let work = Queue { class: QueueClass::Flow, topicspace: "tg".into(), topic: "load".into() };
        assert_eq!(work.pulsar_topic(), "persistent://tg/flow/load");
    }
}
