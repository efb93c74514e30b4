//! Lambda handler: the aggregator stage (every segment's findings in order, state in S3,
//! the stream report to the results bucket). With `VQA_NOTIFY_TOPIC_ARN` set, each incident
//! opened and closed is published to that SNS topic.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use vqa_deploy_lambda::handlers::aggregate;
use vqa_deploy_lambda::payload::AggregateTask;

#[tokio::main]
async fn main() -> Result<(), Error> {
    vqa_deploy_lambda::init_logging();
    let transport = vqa_deploy_lambda::handler_transport().await;
    let notifier = match std::env::var("VQA_NOTIFY_TOPIC_ARN") {
        Ok(topic) if !topic.is_empty() => {
            let sdk = vqa_transport_s3::aws_config(None).await;
            Some(vqa_notify::sns::SnsNotifier::new(&sdk, &topic)?)
        }
        _ => None,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<AggregateTask>| {
        let (transport, notifier) = (&transport, notifier.as_ref());
        async move { aggregate(transport, event.payload, notifier).await }
    }))
    .await
}
