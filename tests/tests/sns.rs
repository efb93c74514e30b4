//! Notifications to Amazon SNS, over the real SNS protocol (the emulator), delivered by
//! the emulator to an HTTP subscriber the test runs.

use std::time::Duration;

use serde_json::Value;
use vqa_core::report::{Evidence, Incident, IncidentKind, Severity};
use vqa_core::{IncidentEvent, StreamId};
use vqa_notify::Notifiers;
use vqa_testkit::emulator::{subscriber, Emulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_are_published_to_sns_once_each_with_filterable_attributes() {
    let emu = Emulator::shared();
    let sdk = emu.sdk().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name("vqa-alerts")
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn");
    let (endpoint, received) = subscriber();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&endpoint)
        .send()
        .await
        .expect("subscribe");
    // A subscription filtering on the message attributes: closings only.
    let (closings_endpoint, closings) = subscriber();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&closings_endpoint)
        .attributes(
            "FilterPolicy",
            r#"{"event": ["closed"], "kind": ["black"]}"#,
        )
        .send()
        .await
        .expect("subscribe with a filter");

    let mut notifiers = Notifiers::new(Some("s3://results/news.json".into()));
    notifiers.add_sns(&topic, &sdk).expect("sns notifier");
    let stream = StreamId::new("news");
    let incident = Incident {
        kind: IncidentKind::Black,
        channel: None,
        start: 2_000_000,
        end: 3_500_000,
        duration: 1_500_000,
        severity: Severity::Major,
        segments: [2, 3],
        evidence: Evidence::new(),
    };
    notifiers.send(
        &stream,
        &IncidentEvent::Opened {
            kind: IncidentKind::Black,
            channel: None,
            start: 2_000_000,
        },
    );
    notifiers.send(&stream, &IncidentEvent::Closed(incident));
    let stats = tokio::task::spawn_blocking(move || notifiers.finish())
        .await
        .expect("finish");
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].1.delivered, stats[0].1.failed),
        (2, 0),
        "{stats:?}"
    );

    let mut messages = Vec::new();
    while let Ok(envelope) = received.recv_timeout(Duration::from_secs(10)) {
        if envelope["Type"] == "Notification" {
            messages.push(envelope);
        }
        if messages.len() == 2 {
            break;
        }
    }
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        received.recv_timeout(Duration::from_millis(500)).is_err(),
        "one message each"
    );
    let bodies: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::from_str(m["Message"].as_str().expect("message")).expect("json"))
        .collect();
    assert_eq!(bodies[0]["event"], "opened");
    assert_eq!(bodies[1]["event"], "closed");
    for (m, b) in messages.iter().zip(&bodies) {
        assert_eq!(b["stream"], "news");
        assert_eq!(b["kind"], "black");
        assert_eq!(b["start"], 2.0);
        assert_eq!(b["report"], "s3://results/news.json");
        assert_eq!(m["TopicArn"], topic.as_str());
        assert!(
            m["Subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("vqa: black ")),
            "{m}"
        );
    }
    assert_eq!(bodies[1]["end"], 3.5);
    let filtered: Vec<Value> =
        std::iter::from_fn(|| closings.recv_timeout(Duration::from_secs(2)).ok())
            .filter(|m| m["Type"] == "Notification")
            .collect();
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert!(filtered[0]["Message"]
        .as_str()
        .is_some_and(|m| m.contains(r#""event":"closed""#)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_does_not_exist_is_reported_not_fatal() {
    let emu = Emulator::shared();
    let sdk = emu.sdk().await;
    let mut notifiers = Notifiers::new(None);
    notifiers
        .add_sns("arn:aws:sns:us-east-1:123456789012:missing", &sdk)
        .expect("notifier");
    notifiers.send(
        &StreamId::new("s"),
        &IncidentEvent::Opened {
            kind: IncidentKind::Freeze,
            channel: None,
            start: 0,
        },
    );
    let stats = tokio::task::spawn_blocking(move || notifiers.finish())
        .await
        .expect("finish");
    assert_eq!((stats[0].1.delivered, stats[0].1.failed), (0, 1));
    assert!(stats[0].0.contains("missing"));
    let mut bad = Notifiers::new(None);
    let e = bad.add_sns("alerts", &sdk).unwrap_err().to_string();
    assert!(e.contains("expected a topic ARN"), "{e}");
}
