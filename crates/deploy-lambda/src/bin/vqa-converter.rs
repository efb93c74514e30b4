//! Lambda handler: the converter stage (read a chunk of the input from S3, decode it, store its segments in S3).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use vqa_deploy_lambda::handlers::convert;
use vqa_deploy_lambda::payload::Job;

#[tokio::main]
async fn main() -> Result<(), Error> {
    vqa_deploy_lambda::init_logging();
    let transport = vqa_deploy_lambda::handler_transport().await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Job>| {
        let transport = &transport;
        async move { convert(transport, event.payload).await }
    }))
    .await
}
