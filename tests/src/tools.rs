//! Running the `ffmpeg` and `ffprobe` command-line programs.
//!
//! Everything in the testkit goes through [`run_ffmpeg`] / [`probe`] so that every
//! invocation uses the same quiet, non-interactive flags, checks the exit status and,
//! on failure, returns an error that carries ffmpeg's own stderr (which is usually
//! the only useful diagnostic).

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// What to tell the user when the ffmpeg CLI is not installed.
pub const FFMPEG_INSTALL_HINT: &str =
    "ffmpeg/ffprobe not found on PATH; install them with `apt-get install ffmpeg`";

/// Flags every ffmpeg invocation gets: never read stdin (tests run without a
/// terminal), no banner, only errors on stderr (so stderr is the error message), and
/// overwrite outputs.
const FFMPEG_BASE_FLAGS: [&str; 5] = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"];

/// For tests: true when the ffmpeg CLI is there; otherwise says the test is skipped and why.
pub fn ffmpeg_or_skip() -> bool {
    let available = ffmpeg_available();
    if !available {
        eprintln!("skipping: the ffmpeg CLI is not installed (bash scripts/install-deps.sh)");
    }
    available
}

/// True when both `ffmpeg` and `ffprobe` can be started and report their version.
///
/// Tests use this to skip (rather than fail) on machines without the CLI.
pub fn ffmpeg_available() -> bool {
    ["ffmpeg", "ffprobe"].iter().all(|tool| {
        Command::new(tool)
            .arg("-version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false)
    })
}

/// Runs `program` with `args`, returns its stderr, and fails with that stderr when the
/// exit status is not success.
fn run_capturing_stderr<I, S>(program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let output = match Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => bail!("{FFMPEG_INSTALL_HINT}"),
        Err(err) => return Err(err).with_context(|| format!("cannot start {program}")),
    };
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        bail!(
            "{program} failed ({}): {}\ncommand: {program} {}",
            output.status,
            stderr.trim(),
            shell_words(&args)
        );
    }
    Ok(stderr)
}

/// Renders arguments for an error message, quoting the ones a shell would split.
fn shell_words(args: &[OsString]) -> String {
    args.iter()
        .map(|a| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\";|&[]()".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `ffmpeg` with the standard flags (`-nostdin -hide_banner -loglevel error -y`)
/// followed by `args`.
pub fn run_ffmpeg<I, S>(args: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let all = FFMPEG_BASE_FLAGS
        .iter()
        .map(OsString::from)
        .chain(args.into_iter().map(|a| a.as_ref().to_owned()));
    run_capturing_stderr("ffmpeg", all).map(|_| ())
}

/// Runs `ffmpeg` at `-loglevel info` and returns stderr.
///
/// Only for FFmpeg's detector filters (freezedetect, blackdetect, silencedetect),
/// which report at info level; `-nostats` keeps the progress line from being
/// interleaved with their output.
pub(crate) fn run_ffmpeg_info<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let base = [
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "info",
        "-y",
    ];
    let all = base
        .iter()
        .map(OsString::from)
        .chain(args.into_iter().map(|a| a.as_ref().to_owned()));
    run_capturing_stderr("ffmpeg", all)
}

/// The file's integrated loudness (EBU R128 / BS.1770), LUFS, as FFmpeg's `ebur128`
/// measures it: an independent meter, for truth about a whole programme.
pub fn integrated_loudness(path: &Path) -> Result<f64> {
    let log = run_ffmpeg_info([
        OsStr::new("-i"),
        path.as_os_str(),
        OsStr::new("-map"),
        OsStr::new("0:a:0"),
        OsStr::new("-af"),
        OsStr::new("ebur128"),
        OsStr::new("-f"),
        OsStr::new("null"),
        OsStr::new("-"),
    ])?;
    // The summary's "I: -23.0 LUFS" comes last.
    log.lines()
        .rev()
        .find_map(|l| {
            l.trim()
                .strip_prefix("I:")
                .and_then(|v| v.trim().strip_suffix("LUFS"))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .ok_or_else(|| anyhow!("ebur128 gave no integrated loudness for {}", path.display()))
}

/// One stream as `ffprobe` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// `video`, `audio`, ...
    pub codec_type: String,
    pub codec_name: String,
    /// Stream start time in seconds, as stored in the container (not file-relative).
    pub start_time: Option<f64>,
    pub duration: Option<f64>,
    pub channels: Option<u16>,
    pub sample_rate: Option<u32>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Frame count from the container header, when it has one (MP4 does).
    pub nb_frames: Option<u64>,
}

/// What `ffprobe` reports about a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeInfo {
    /// Earliest start time over all streams; ffmpeg's CLI subtracts this, so
    /// "seconds from start of file" means `stream time - format_start`.
    pub format_start: f64,
    pub duration: Option<f64>,
    pub streams: Vec<StreamInfo>,
}

impl ProbeInfo {
    /// The first stream of the given type (`"video"` or `"audio"`).
    pub fn first(&self, codec_type: &str) -> Option<&StreamInfo> {
        self.streams.iter().find(|s| s.codec_type == codec_type)
    }

    /// How many streams of the given type the file has.
    pub fn count(&self, codec_type: &str) -> usize {
        self.streams
            .iter()
            .filter(|s| s.codec_type == codec_type)
            .count()
    }
}

/// Runs `ffprobe -of json` with `entries` on `path` and parses the JSON.
fn ffprobe_json(path: &Path, entries: &[&str]) -> Result<Value> {
    let mut args: Vec<OsString> = ["-hide_banner", "-loglevel", "error"]
        .iter()
        .chain(entries)
        .map(OsString::from)
        .collect();
    args.extend(["-of".into(), "json".into(), path.as_os_str().to_owned()]);
    let output = match Command::new("ffprobe")
        .args(&args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => bail!("{FFMPEG_INSTALL_HINT}"),
        Err(err) => return Err(err).context("cannot start ffprobe"),
    };
    if !output.status.success() {
        bail!(
            "ffprobe failed on {} ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("ffprobe printed invalid JSON for {}", path.display()))
}

/// Probes `path` with `ffprobe` (format and stream level only; fast).
pub fn probe(path: &Path) -> Result<ProbeInfo> {
    let json = ffprobe_json(
        path,
        &[
            "-show_entries",
            "format=start_time,duration:stream=index,codec_type,codec_name,start_time,\
             duration,channels,sample_rate,width,height,nb_frames",
        ],
    )?;
    parse_probe_json(&json)
        .with_context(|| format!("unexpected ffprobe output for {}", path.display()))
}

/// One packet of the first video stream, as `ffprobe` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPacket {
    /// Presentation time, seconds from the start of the file.
    pub time: f64,
    pub keyframe: bool,
    /// MD5 of the packet's bytes, to tell which packets two files differ in.
    pub hash: String,
}

/// The packets of the first stream `select` names (`v:0`, `a:0`), each mapped by `packet`
/// with its time in seconds from the start of the file (`None` skips it), by time.
fn packets_of<T>(
    path: &Path,
    select: &str,
    extra: &[&str],
    entries: &str,
    packet: impl Fn(&Value, f64) -> Option<T>,
    time: impl Fn(&T) -> f64,
) -> Result<Vec<T>> {
    let mut args = vec!["-select_streams", select];
    args.extend_from_slice(extra);
    let entries = format!("format=start_time:packet=pts_time{entries}");
    args.extend(["-show_entries", &entries]);
    let json = ffprobe_json(path, &args)?;
    let format_start = number(json.get("format").and_then(|f| f.get("start_time"))).unwrap_or(0.0);
    let mut packets: Vec<T> = json
        .get("packets")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| packet(p, number(p.get("pts_time"))? - format_start))
        .collect();
    packets.sort_by(|a, b| time(a).total_cmp(&time(b)));
    Ok(packets)
}

/// The packets of the first video stream in presentation order, with their hashes. Reads
/// packets only (no decoding), so it is fast.
pub fn video_packets(path: &Path) -> Result<Vec<VideoPacket>> {
    packets_of(
        path,
        "v:0",
        &["-show_data_hash", "md5"],
        ",flags,data_hash",
        |p, time| {
            Some(VideoPacket {
                time,
                keyframe: p
                    .get("flags")
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.starts_with('K')),
                hash: p.get("data_hash")?.as_str()?.to_owned(),
            })
        },
        |p| p.time,
    )
}

/// Times of the packets of the first audio stream, in seconds from the start of the file,
/// ascending.
pub fn audio_packet_times(path: &Path) -> Result<Vec<f64>> {
    packets_of(path, "a:0", &[], "", |_, time| Some(time), |t| *t)
}

/// The sample aspect ratio each decoded picture of the first video stream declares, with
/// the picture's time in seconds from the start of the file, by time (`[0, 1]` where it
/// declares none). Decodes the stream.
pub(crate) fn frame_sars(path: &Path) -> Result<Vec<(f64, [u32; 2])>> {
    let json = ffprobe_json(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "format=start_time:frame=pts_time,sample_aspect_ratio",
        ],
    )?;
    let format_start = number(json.get("format").and_then(|f| f.get("start_time"))).unwrap_or(0.0);
    let ratio = |v: Option<&Value>| -> [u32; 2] {
        v.and_then(Value::as_str)
            .and_then(|s| s.split_once(':'))
            .and_then(|(n, d)| Some([n.parse().ok()?, d.parse().ok()?]))
            .unwrap_or([0, 1])
    };
    let mut frames: Vec<(f64, [u32; 2])> = json
        .get("frames")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| {
            let time = number(f.get("pts_time"))? - format_start;
            Some((time, ratio(f.get("sample_aspect_ratio"))))
        })
        .collect();
    frames.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(frames)
}

/// Times of the keyframes of the first video stream, in seconds from the start of the
/// file, ascending.
pub fn video_keyframes(path: &Path) -> Result<Vec<f64>> {
    Ok(video_packets(path)?
        .into_iter()
        .filter(|p| p.keyframe)
        .map(|p| p.time)
        .collect())
}

/// ffprobe prints most numbers as strings ("0.000000", "48000"); accept both forms.
fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_probe_json(json: &Value) -> Result<ProbeInfo> {
    let format = json
        .get("format")
        .ok_or_else(|| anyhow!("no `format` section"))?;
    let streams = json
        .get("streams")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let text = |key: &str| {
                s.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            StreamInfo {
                codec_type: text("codec_type"),
                codec_name: text("codec_name"),
                start_time: number(s.get("start_time")),
                duration: number(s.get("duration")),
                channels: number(s.get("channels")).map(|v| v as u16),
                sample_rate: number(s.get("sample_rate")).map(|v| v as u32),
                width: number(s.get("width")).map(|v| v as u32),
                height: number(s.get("height")).map(|v| v as u32),
                nb_frames: number(s.get("nb_frames")).map(|v| v as u64),
            }
        })
        .collect();
    Ok(ProbeInfo {
        format_start: number(format.get("start_time")).unwrap_or(0.0),
        duration: number(format.get("duration")),
        streams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ffprobe_json_with_string_numbers() {
        let json: Value = serde_json::from_str(
            r#"{"streams":[{"index":0,"codec_name":"h264","codec_type":"video","width":320,
                "height":240,"start_time":"0.021000","nb_frames":"250"},
               {"index":1,"codec_name":"aac","codec_type":"audio","sample_rate":"48000",
                "channels":2,"start_time":"0.000000"}],
               "format":{"start_time":"0.000000","duration":"10.021000"}}"#,
        )
        .expect("test JSON is valid");
        let info = parse_probe_json(&json).expect("parses");
        assert_eq!(info.count("video"), 1);
        assert_eq!(info.first("video").and_then(|s| s.start_time), Some(0.021));
        assert_eq!(info.first("video").and_then(|s| s.nb_frames), Some(250));
        assert_eq!(info.first("audio").and_then(|s| s.sample_rate), Some(48000));
        assert_eq!(info.first("audio").and_then(|s| s.channels), Some(2));
        assert_eq!(info.duration, Some(10.021));
    }

    #[test]
    fn quotes_arguments_for_error_messages() {
        let args = vec![
            OsString::from("-i"),
            OsString::from("a b.mp4"),
            OsString::from("x"),
        ];
        assert_eq!(shell_words(&args), "-i 'a b.mp4' x");
    }
}
