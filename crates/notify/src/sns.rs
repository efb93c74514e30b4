//! Incident notifications to Amazon SNS (`aws-sdk-sns`): one message per incident opened
//! and closed, the JSON every notifier sends as its body. The distributed aggregator and
//! `vqa analyze`/`vqa monitor` (`--sns`) publish through it.
//!
//! Each message carries attributes `event`, `kind`, `stream` and `severity`, so that
//! subscriptions can filter (e.g. only critical closings of one channel) without parsing.

use aws_config::SdkConfig;
use aws_sdk_sns::types::MessageAttributeValue;
use vqa_core::notify::Notification;

use crate::NotifyError;

/// Publishes notifications to one topic.
#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic: String,
}

/// The topic ARN's last part, for messages (`arn:aws:sns:region:account:name` → `name`).
fn topic_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// The email subject line: at most 100 printable ASCII characters, as SNS requires.
fn subject(n: &Notification) -> String {
    let phase = match n.event {
        vqa_core::notify::Phase::Opened => "opened",
        vqa_core::notify::Phase::Closed => "closed",
        vqa_core::notify::Phase::Event => "event",
    };
    let text = format!("vqa: {} {phase} on {}", n.kind, n.stream);
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(100)
        .collect()
}

fn attribute(value: &str) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}

impl SnsNotifier {
    /// A notifier for `topic` (an ARN), with the SDK configuration's credentials, region,
    /// endpoint (`AWS_ENDPOINT_URL` for an emulator) and retries.
    pub fn new(sdk: &SdkConfig, topic: &str) -> Result<Self, NotifyError> {
        if !topic.starts_with("arn:") || topic.split(':').count() < 6 {
            return Err(NotifyError::NotTopicArn(topic.to_string()));
        }
        Ok(SnsNotifier {
            client: aws_sdk_sns::Client::new(sdk),
            topic: topic.to_string(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes one notification; the error is one sentence naming the topic.
    pub async fn publish(&self, n: &Notification) -> Result<(), NotifyError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic)
            .subject(subject(n))
            .message(n.to_json_line());
        let severity = format!("{:?}", n.severity).to_lowercase();
        let phase = format!("{:?}", n.event).to_lowercase();
        for (name, value) in [
            ("event", phase.as_str()),
            ("kind", n.kind.as_str()),
            ("stream", n.stream.as_str()),
            ("severity", severity.as_str()),
        ] {
            if let Some(v) = attribute(value) {
                request = request.message_attributes(name, v);
            }
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| NotifyError::Publish {
                topic: topic_name(&self.topic).to_string(),
                cause: vqa_core::causes(&e),
                transient: e
                    .raw_response()
                    .is_none_or(|r| r.status().as_u16() == 429 || r.status().is_server_error()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vqa_core::report::{Evidence, IncidentKind, Severity};

    #[test]
    fn subjects_are_short_printable_ascii() {
        let n = Notification {
            event: vqa_core::notify::Phase::Opened,
            stream: vqa_core::StreamId::new("chaîne-1".repeat(20)),
            kind: IncidentKind::Freeze,
            channel: None,
            start: 1.0,
            end: None,
            severity: Severity::Major,
            evidence: Evidence::new(),
            report: None,
        };
        let s = subject(&n);
        assert!(s.starts_with("vqa: freeze opened on cha?ne-1"));
        assert_eq!(s.chars().count(), 100);
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '));
        assert_eq!(
            topic_name("arn:aws:sns:us-east-1:123456789012:alerts"),
            "alerts"
        );
    }
}
