//! Lambda handler: one group of detectors on one segment (which detectors is in the
//! payload, so one function serves every parallel branch).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use vqa_deploy_lambda::handlers::{detect, DetectorCache};
use vqa_deploy_lambda::payload::DetectTask;

#[tokio::main]
async fn main() -> Result<(), Error> {
    vqa_deploy_lambda::init_logging();
    let transport = vqa_deploy_lambda::handler_transport().await;
    let cache = DetectorCache::default();
    lambda_runtime::run(service_fn(|event: LambdaEvent<DetectTask>| {
        let (transport, cache) = (&transport, &cache);
        async move { detect(transport, cache, event.payload).await }
    }))
    .await
}
