//! Streaming detokenization: tokens end in the middle of UTF-8 characters (byte-level BPE,
//! SentencePiece byte fallback), so the decoder holds the partial character until the next
//! token completes it. A 4-byte buffer, no allocation.

/// Turns a stream of token bytes into `&str` pieces.
///
/// ```
/// use ember_runtime::tokenizer::StreamDecoder;
/// let mut d = StreamDecoder::new(false);
/// let mut s = String::new();
/// for bytes in [&b"caf"[..], &[0xC3], &[0xA9, b'!']] {
///     d.push(bytes, |p| s.push_str(p));
/// }
/// d.flush(|p| s.push_str(p));
/// assert_eq!(s, "café!");
/// ```
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    pending: [u8; 4],
    len: usize,
    strip_space: bool,
}

impl StreamDecoder {
    /// `strip_leading_space`: drop one space at the very start of the output, as Hugging
    /// Face's SentencePiece decoders do (`Strip(" ", 1, 0)`): the prefix space the encoder
    /// added. [`Tokenizer::stream_decoder`](super::Tokenizer::stream_decoder) sets it per model.
    pub fn new(strip_leading_space: bool) -> Self {
        StreamDecoder {
            pending: [0; 4],
            len: 0,
            strip_space: strip_leading_space,
        }
    }

    /// Feeds one token's bytes; `emit` receives every complete, valid piece of UTF-8. Invalid
    /// bytes become U+FFFD, as `String::from_utf8_lossy` would give.
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&str)) {
        self.push_inner(bytes, &mut emit);
    }

    fn push_inner(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&str)) {
        // First complete the character held from the previous token, one byte at a time.
        while self.len > 0 && !bytes.is_empty() {
            self.pending[self.len] = bytes[0];
            self.len += 1;
            bytes = &bytes[1..];
            let (buf, n) = (self.pending, self.len);
            match core::str::from_utf8(&buf[..n]) {
                Ok(s) => {
                    self.len = 0;
                    self.out(s, emit);
                }
                Err(e) if e.error_len().is_some() => {
                    // The held bytes were not a character after all: replace the invalid
                    // prefix and feed the rest again.
                    let bad = e.valid_up_to() + e.error_len().unwrap_or(1);
                    self.len = 0;
                    self.out("\u{FFFD}", emit);
                    self.push_inner(&buf[bad.min(n)..n], emit);
                }
                Err(_) if self.len == 4 => {
                    // Cannot happen (4 bytes always decide), but never overflow the buffer.
                    self.len = 0;
                    self.out("\u{FFFD}", emit);
                }
                Err(_) => {}
            }
        }
        loop {
            match core::str::from_utf8(bytes) {
                Ok(s) => {
                    if !s.is_empty() {
                        self.out(s, emit);
                    }
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if valid > 0 {
                        if let Ok(s) = core::str::from_utf8(&bytes[..valid]) {
                            self.out(s, emit);
                        }
                    }
                    match e.error_len() {
                        Some(n) => {
                            self.out("\u{FFFD}", emit);
                            bytes = &bytes[valid + n..];
                        }
                        None => {
                            // An incomplete character at the end (at most 3 bytes): hold it.
                            let rest = &bytes[valid..];
                            self.pending[..rest.len()].copy_from_slice(rest);
                            self.len = rest.len();
                            return;
                        }
                    }
                }
            }
        }
    }

    fn out(&mut self, s: &str, emit: &mut impl FnMut(&str)) {
        if s.is_empty() {
            return;
        }
        if self.strip_space {
            self.strip_space = false;
            if let Some(rest) = s.strip_prefix(' ') {
                if !rest.is_empty() {
                    emit(rest);
                }
                return;
            }
        }
        emit(s);
    }

    /// Emits what is still held (an incomplete character) as U+FFFD.
    pub fn flush(&mut self, mut emit: impl FnMut(&str)) {
        if self.len > 0 {
            self.len = 0;
            self.out("\u{FFFD}", &mut emit);
        }
    }
}
