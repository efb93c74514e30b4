//! The S3 client: configuration from the usual AWS sources, and the few requests vqa makes,
//! each turning the SDK's errors into one sentence that says what to fix.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::Delete;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

/// Attempts per request, the first included: the SDK's standard strategy backs off
/// exponentially (with jitter) between them on throttling (503 SlowDown), 5xx and
/// connection errors. S3 asks clients to retry SlowDown; five attempts ride out a brief
/// emulator restart too.
pub const MAX_ATTEMPTS: u32 = 5;

/// Where requests go, for messages: the configured endpoint URL, or AWS itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub url: Option<String>,
    pub region: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.url {
            Some(url) => f.write_str(url),
            None => write!(f, "AWS ({})", self.region),
        }
    }
}

/// Why an S3 request failed, as a sentence that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("cannot reach S3 at {endpoint} ({detail}); check that it is running and that AWS_ENDPOINT_URL points at it")]
    Unreachable { endpoint: Endpoint, detail: String },
    #[error("no object s3://{bucket}/{key} at {endpoint}; check the bucket and key")]
    NoSuchKey {
        bucket: String,
        key: String,
        endpoint: Endpoint,
    },
    #[error(
        "bucket {bucket} does not exist at {endpoint}; create it, or set the right name (VQA_BUCKET, VQA_RESULTS_BUCKET)"
    )]
    NoBucket { bucket: String, endpoint: Endpoint },
    #[error("no usable AWS credentials for {endpoint}{detail}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")]
    Credentials { endpoint: Endpoint, detail: String },
    #[error("access denied to s3://{bucket}/{key} at {endpoint}; check that these credentials may {action} there")]
    AccessDenied {
        bucket: String,
        key: String,
        action: &'static str,
        endpoint: Endpoint,
    },
    #[error("cannot {action} s3://{bucket}/{key} at {endpoint}: {detail}")]
    Other {
        bucket: String,
        key: String,
        action: &'static str,
        endpoint: Endpoint,
        detail: String,
    },
}

/// Loads the AWS configuration the usual way (environment, profiles, SSO, instance roles),
/// with `endpoint_url` overriding `AWS_ENDPOINT_URL`, a region fallback of `us-east-1`, the
/// standard retry strategy and timeouts that turn a dead endpoint into an error, not a hang.
pub async fn aws_config(endpoint_url: Option<&str>) -> SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(Region::new("us-east-1"));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(300))
                .build(),
        );
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An S3 client for `config`. Path-style addressing when an endpoint URL is set: emulators
/// (moto, LocalStack) serve buckets on paths, not on virtual hosts.
pub fn connect(config: &SdkConfig) -> (aws_sdk_s3::Client, Endpoint) {
    let url = std::env::var("AWS_ENDPOINT_URL_S3")
        .ok()
        .or_else(|| config.endpoint_url().map(str::to_string));
    let endpoint = Endpoint {
        url: url.clone(),
        region: config
            .region()
            .map_or_else(|| "us-east-1".to_string(), |r| r.to_string()),
    };
    let mut s3 = aws_sdk_s3::config::Builder::from(config).force_path_style(url.is_some());
    if url.is_some() {
        // Emulators decode the SDK's default checksummed uploads (aws-chunked with a CRC
        // trailer) in Python, which makes them the benchmark's bottleneck; a checksum only
        // where S3 requires one is what the SDK did before 2025.
        s3 = s3.request_checksum_calculation(
            aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
        );
    }
    let s3 = s3.build();
    (aws_sdk_s3::Client::from_conf(s3), endpoint)
}

/// Turns an SDK error into an [`S3Error`].
fn classify<E>(
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    endpoint: &Endpoint,
    bucket: &str,
    key: &str,
    action: &'static str,
) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => causes(&e),
    };
    let code = e.code().map(str::to_string);
    let endpoint = endpoint.clone();
    let (bucket, key) = (bucket.to_string(), key.to_string());
    match (&e, code.as_deref()) {
        (_, Some("NoSuchBucket")) => S3Error::NoBucket { bucket, endpoint },
        (_, Some("NoSuchKey" | "NotFound")) => S3Error::NoSuchKey {
            bucket,
            key,
            endpoint,
        },
        (_, Some("AccessDenied" | "AllAccessDisabled")) => S3Error::AccessDenied {
            bucket,
            key,
            action,
            endpoint,
        },
        (
            _,
            Some(
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken"
                | "TokenRefreshRequired",
            ),
        ) => S3Error::Credentials {
            endpoint,
            detail: format!(" (the service says {})", code.unwrap_or_default()),
        },
        (SdkError::DispatchFailure(d), _) if d.is_io() || d.is_timeout() => S3Error::Unreachable {
            endpoint,
            detail: innermost(&e),
        },
        (SdkError::TimeoutError(_), _) => S3Error::Unreachable {
            endpoint,
            detail: "timed out".into(),
        },
        _ if detail.contains("credentials") => S3Error::Credentials {
            endpoint,
            detail: String::new(),
        },
        _ => S3Error::Other {
            bucket,
            key,
            action,
            endpoint,
            detail,
        },
    }
}

use vqa_core::causes;

/// The innermost cause: for a failed connection, the operating system's reason.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut err = e;
    while let Some(source) = err.source() {
        err = source;
    }
    err.to_string().replace('\n', " ")
}

pub(crate) async fn put(
    client: &aws_sdk_s3::Client,
    endpoint: &Endpoint,
    bucket: &str,
    key: &str,
    body: Bytes,
) -> Result<(), S3Error> {
    put_typed(
        client,
        endpoint,
        bucket,
        key,
        body,
        "application/octet-stream",
    )
    .await
}

pub(crate) async fn put_typed(
    client: &aws_sdk_s3::Client,
    endpoint: &Endpoint,
    bucket: &str,
    key: &str,
    body: Bytes,
    content_type: &str,
) -> Result<(), S3Error> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| classify(e, endpoint, bucket, key, "write"))?;
    Ok(())
}

/// Fetches an object; `None` when there is no such key.
pub(crate) async fn get(
    client: &aws_sdk_s3::Client,
    endpoint: &Endpoint,
    bucket: &str,
    key: &str,
) -> Result<Option<Bytes>, S3Error> {
    let response = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(r) => r,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(classify(e, endpoint, bucket, key, "read")),
    };
    Ok(Some(read_body(response.body, endpoint, bucket, key).await?))
}

/// An object's body, read to its end.
async fn read_body(
    body: aws_sdk_s3::primitives::ByteStream,
    endpoint: &Endpoint,
    bucket: &str,
    key: &str,
) -> Result<Bytes, S3Error> {
    let body = body.collect().await.map_err(|e| S3Error::Unreachable {
        endpoint: endpoint.clone(),
        detail: format!("reading s3://{bucket}/{key} broke off: {e}"),
    })?;
    Ok(body.into_bytes())
}

/// Bytes `range` of an object, and the object's whole size.
pub(crate) async fn get_range(
    client: &aws_sdk_s3::Client,
    endpoint: &Endpoint,
    bucket: &str,
    key: &str,
    range: std::ops::Range<u64>,
) -> Result<(Bytes, u64), S3Error> {
    let response = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!(
            "bytes={}-{}",
            range.start,
            range.end.saturating_sub(1)
        ))
        .send()
        .await
        .map_err(|e| classify(e, endpoint, bucket, key, "read"))?;
    // "bytes START-END/SIZE"
    let size = response
        .content_range()
        .and_then(|r| r.rsplit('/').next())
        .and_then(|n| n.parse().ok())
        .or(response
            .content_length()
            .and_then(|n| u64::try_from(n).ok()))
        .unwrap_or(0);
    Ok((read_body(response.body, endpoint, bucket, key).await?, size))
}

pub(crate) async fn delete(
    client: &aws_sdk_s3::Client,
    endpoint: &Endpoint,
    bucket: &str,
    key: &str,
) -> Result<(), S3Error> {
    client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(e, endpoint, bucket, key, "delete"))?;
    Ok(())
}

/// The keys under `prefix`, in S3's order (UTF-8 binary), every page of them.
pub(crate) async fn list(
    client: &aws_sdk_s3::Client,
    endpoint: &Endpoint,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, S3Error> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify(e, endpoint, bucket, prefix, "list"))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    Ok(keys)
}

pub(crate) async fn delete_many(
    client: &aws_sdk_s3::Client,
    endpoint: &Endpoint,
    bucket: &str,
    delete: Delete,
) -> Result<(), S3Error> {
    let first = delete
        .objects()
        .first()
        .map(|o| o.key().to_string())
        .unwrap_or_default();
    let out = client
        .delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await
        .map_err(|e| classify(e, endpoint, bucket, &first, "delete"))?;
    if let Some(failed) = out.errors().first() {
        return Err(S3Error::Other {
            bucket: bucket.to_string(),
            key: failed.key().unwrap_or_default().to_string(),
            action: "delete",
            endpoint: endpoint.clone(),
            detail: failed.message().unwrap_or("refused").to_string(),
        });
    }
    Ok(())
}

pub(crate) async fn head_bucket(
    client: &aws_sdk_s3::Client,
    endpoint: &Endpoint,
    bucket: &str,
) -> Result<(), S3Error> {
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        // HEAD responses carry no error body: a 404 is the missing bucket.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
            Err(S3Error::NoBucket {
                bucket: bucket.to_string(),
                endpoint: endpoint.clone(),
            })
        }
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
            Err(S3Error::AccessDenied {
                bucket: bucket.to_string(),
                key: String::new(),
                action: "list",
                endpoint: endpoint.clone(),
            })
        }
        Err(e) => Err(classify(e, endpoint, bucket, "", "reach")),
    }
}

pub(crate) async fn upload_file(
    client: &aws_sdk_s3::Client,
    endpoint: &Endpoint,
    bucket: &str,
    key: &str,
    path: &Path,
) -> Result<(), S3Error> {
    let body = ByteStream::from_path(path)
        .await
        .map_err(|e| S3Error::Other {
            bucket: bucket.to_string(),
            key: key.to_string(),
            action: "upload",
            endpoint: endpoint.clone(),
            detail: format!("cannot read {}: {e}", path.display()),
        })?;
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .send()
        .await
        .map_err(|e| classify(e, endpoint, bucket, key, "write"))?;
    Ok(())
}

pub(crate) async fn download_file(
    client: &aws_sdk_s3::Client,
    endpoint: &Endpoint,
    bucket: &str,
    key: &str,
    path: &Path,
) -> Result<(), S3Error> {
    let fail = |detail: String| S3Error::Other {
        bucket: bucket.to_string(),
        key: key.to_string(),
        action: "download",
        endpoint: endpoint.clone(),
        detail,
    };
    let response = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(e, endpoint, bucket, key, "read"))?;
    let mut body = response.body;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| fail(format!("transfer broke off: {e}")))?
    {
        file.write_all(&chunk)
            .await
            .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    }
    file.flush()
        .await
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}
