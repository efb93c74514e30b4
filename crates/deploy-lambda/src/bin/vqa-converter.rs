//! Lambda handler: the converter stage (read a chunk of the input from S3, decode it, store
//! its segments in S3) and, for an object a packager created, the state that makes it a
//! chunk of its stream (reports go to `VQA_RESULTS_BUCKET`).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::{Deserialize, Serialize};
use vqa_deploy_lambda::handlers::{convert, prepare, StageError};
use vqa_deploy_lambda::packager::PackagerObject;
use vqa_deploy_lambda::payload::{Converted, Job};

#[derive(Deserialize)]
#[serde(untagged)]
enum Event {
    Packager { packager: Box<PackagerObject> },
    Job(Box<Job>),
}

#[derive(Serialize)]
#[serde(untagged)]
enum Output {
    Prepared(Box<Job>),
    Converted(Box<Converted>),
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    vqa_deploy_lambda::init_logging();
    let transport = vqa_deploy_lambda::handler_transport().await;
    let results = std::env::var("VQA_RESULTS_BUCKET").unwrap_or_default();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Event>| {
        let (transport, results) = (&transport, &results);
        async move {
            Ok::<_, StageError>(match event.payload {
                Event::Packager { packager } => {
                    Output::Prepared(Box::new(prepare(transport, results, *packager).await?))
                }
                Event::Job(job) => Output::Converted(Box::new(convert(transport, *job).await?)),
            })
        }
    }))
    .await
}
