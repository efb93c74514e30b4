//! A live source read through FFmpeg's own protocols (`udp`, `srt`) as a Rust reader, so its
//! bytes can be teed into the TS health analyser on their way to FFmpeg's demuxer: the source
//! is read once, here, as a live source must be (a datagram read twice is not there the
//! second time).

use std::ffi::{c_int, c_void, CString};
use std::io::{self, Read};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;

/// An open FFmpeg I/O context reading a URL.
pub(crate) struct UrlReader {
    ctx: *mut ffi::AVIOContext,
    /// The flag FFmpeg's interrupt callback reads: it must outlive `ctx`.
    stop: Arc<AtomicBool>,
}

// SAFETY: the context is owned by this value alone and used by one thread at a time (`Read`
// takes `&mut self`); FFmpeg's protocol contexts have no thread affinity.
unsafe impl Send for UrlReader {}

/// FFmpeg's interrupt callback: `opaque` points at the reader's stop flag.
extern "C" fn interrupted(opaque: *mut c_void) -> c_int {
    // SAFETY: `opaque` is `Arc::as_ptr` of the flag the reader keeps alive while the
    // context that calls this exists.
    let stop = unsafe { &*(opaque as *const AtomicBool) };
    c_int::from(stop.load(Ordering::Relaxed))
}

impl UrlReader {
    /// Opens `url` for reading with the protocol options given (timeouts, the protocol
    /// whitelist); blocking reads and the opening itself give up once `stop` is set.
    pub(crate) fn open(
        url: &str,
        options: ffmpeg::Dictionary,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, ffmpeg::Error> {
        let c_url = CString::new(url).map_err(|_| ffmpeg::Error::InvalidData)?;
        let callback = ffi::AVIOInterruptCB {
            callback: Some(interrupted),
            opaque: Arc::as_ptr(&stop) as *mut c_void,
        };
        let mut ctx = ptr::null_mut();
        // SAFETY: every pointer is valid for the call; FFmpeg copies the callback and takes
        // the options it uses out of the dictionary, whose rest we own and free again.
        let r = unsafe {
            let mut options = options.disown();
            let r = ffi::avio_open2(
                &mut ctx,
                c_url.as_ptr(),
                ffi::AVIO_FLAG_READ,
                &callback,
                &mut options,
            );
            drop(ffmpeg::Dictionary::own(options));
            r
        };
        if r < 0 || ctx.is_null() {
            return Err(ffmpeg::Error::from(r.min(-1)));
        }
        Ok(UrlReader { ctx, stop })
    }
}

impl Read for UrlReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
        // SAFETY: `ctx` is open and `buf` holds `len` writable bytes. The partial read
        // returns what the source has (a datagram's worth) rather than waiting to fill `buf`.
        let n = unsafe { ffi::avio_read_partial(self.ctx, buf.as_mut_ptr(), len) };
        match n {
            n if n > 0 => Ok(n as usize),
            0 | ffi::AVERROR_EOF => Ok(0),
            _ if self.stop.load(Ordering::Relaxed) => Err(io::Error::other("stopped")),
            e => Err(io::Error::other(ffmpeg::Error::from(e).to_string())),
        }
    }
}

impl Drop for UrlReader {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from avio_open2 and is closed once, here.
        unsafe {
            ffi::avio_closep(&mut self.ctx);
        }
    }
}
