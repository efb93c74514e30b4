//! Lambda handler: the converter stage (decode the input, store its segments in S3).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use vqa_deploy_lambda::handlers::convert;
use vqa_deploy_lambda::payload::Job;

#[tokio::main]
async fn main() -> Result<(), Error> {
    vqa_deploy_lambda::init_logging();
    let transport = vqa_deploy_lambda::handler_transport().await;
    // Lambda's writable local storage.
    let scratch = std::env::temp_dir();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Job>| {
        let (transport, scratch) = (&transport, &scratch);
        async move { convert(transport, event.payload, scratch).await }
    }))
    .await
}
