//! Inputs given as URLs may carry credentials (`rtmp://user:pass@host/app`,
//! `https://host/live.m3u8?token=...`). They must never reach logs, errors or reports:
//! everything that shows an input shows [`redact_url`] of it.

/// Query parameters whose values are secrets, by a part of their name (case-insensitive).
const SECRET_PARAMETERS: [&str; 8] = [
    "pass",
    "pwd",
    "token",
    "secret",
    "key",
    "signature",
    "auth",
    "credential",
];

/// The input with any user name and password, and any secret-looking query value, replaced
/// by `***`. Plain paths are returned as they are.
pub fn redact_url(input: &str) -> String {
    let Some((scheme, rest)) = input.split_once("://") else {
        return input.to_string();
    };
    let (authority_end, _) = rest
        .char_indices()
        .find(|(_, c)| matches!(c, '/' | '?' | '#'))
        .unwrap_or((rest.len(), ' '));
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((name, _)) if is_secret(name) => format!("{name}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMETERS.iter().any(|s| name.contains(s))
}

/// The scheme of a URL input (`udp`, `https`, ...), lower-cased; `None` for a plain path.
pub fn url_scheme(input: &str) -> Option<String> {
    let (scheme, _) = input.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_secret_parameters_are_hidden() {
        assert_eq!(
            redact_url("rtmp://alice:s3cret@live.example.com:1935/app/key1"),
            "rtmp://***@live.example.com:1935/app/key1"
        );
        assert_eq!(
            redact_url(
                "https://cdn.example.com/ch1/index.m3u8?token=abc&quality=hd&X-Amz-Signature=f00"
            ),
            "https://cdn.example.com/ch1/index.m3u8?token=***&quality=hd&X-Amz-Signature=***"
        );
        assert_eq!(
            redact_url("srt://host:9000?streamid=x&passphrase=longsecret#frag"),
            "srt://host:9000?streamid=x&passphrase=***#frag"
        );
        assert_eq!(redact_url("udp://127.0.0.1:1234"), "udp://127.0.0.1:1234");
        assert_eq!(redact_url("/media/clip@2x.mp4"), "/media/clip@2x.mp4");
        // An '@' after the authority is not a user name.
        assert_eq!(
            redact_url("http://host/path/a@b.ts"),
            "http://host/path/a@b.ts"
        );
    }

    #[test]
    fn schemes_are_recognised_only_in_urls() {
        assert_eq!(url_scheme("UDP://127.0.0.1:1"), Some("udp".into()));
        assert_eq!(url_scheme("rtmps://h/app"), Some("rtmps".into()));
        assert_eq!(url_scheme("clip.mp4"), None);
        assert_eq!(url_scheme("/tmp/a b://c"), None);
    }
}
