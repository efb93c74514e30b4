//! Lambda handler: the aggregator stage (every segment's findings in order, state in S3,
//! the stream report to the results bucket).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use vqa_deploy_lambda::handlers::aggregate;
use vqa_deploy_lambda::payload::AggregateTask;

#[tokio::main]
async fn main() -> Result<(), Error> {
    vqa_deploy_lambda::init_logging();
    let transport = vqa_deploy_lambda::handler_transport().await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<AggregateTask>| {
        let transport = &transport;
        async move { aggregate(transport, event.payload).await }
    }))
    .await
}
