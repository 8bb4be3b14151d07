//! libember: Ember's C API (`include/ember.h`). Open a `.ember` model from a path or from
//! bytes, tokenize, generate with a per-token callback and sampler settings, reset, free.
//!
//! Every entry point checks its pointers, returns a status code, keeps a one-line message for
//! `ember_last_error`, and runs inside `catch_unwind`, so no panic crosses into C.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use ember_format::layout::DATA_ALIGN;
use ember_format::{AlignedBytes, EmberFile};
use ember_runtime::generate::Generator;
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{HeapSession, MappedFile, Model, SamplerConfig};

/// `ember_status` in ember.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    Null = 1,
    Io = 2,
    Format = 3,
    Model = 4,
    Argument = 5,
    Context = 6,
    Buffer = 7,
    Internal = 8,
}

/// `ember_sampling` in ember.h.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub seed: u64,
}

/// `EMBER_NO_TOKEN`: the token passed with text held back until the end.
pub const NO_TOKEN: u32 = u32::MAX;

/// `ember_token_fn`.
pub type TokenFn = Option<
    unsafe extern "C" fn(user: *mut c_void, token: u32, text: *const c_char, len: usize) -> c_int,
>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

type Failure = (Status, String);

fn set_error(message: &str) {
    // A message with a NUL in it is cut there.
    let message = message.split('\0').next().unwrap_or("");
    let c = CString::new(message).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs `f`, turning its error or panic into a status and a message.
fn guard(f: impl FnOnce() -> Result<(), Failure>) -> Status {
    set_error("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Status::Ok,
        Ok(Err((status, message))) => {
            set_error(&message);
            status
        }
        Err(_) => {
            set_error("internal error: Ember panicked (a bug; please report it)");
            Status::Internal
        }
    }
}

fn null(name: &str) -> Failure {
    (Status::Null, format!("{name} is NULL"))
}

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'s`.
unsafe fn text<'s>(p: *const c_char, name: &str) -> Result<&'s str, Failure> {
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        (
            Status::Argument,
            format!("{name} is not UTF-8 (byte {} is not)", e.valid_up_to()),
        )
    })
}

/// Where the model's bytes live.
enum Bytes {
    Mapped(MappedFile),
    Owned(AlignedBytes),
    /// The caller's 64-byte aligned buffer, valid until `ember_free`.
    Borrowed(*const u8, usize),
}

impl Bytes {
    fn slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m.bytes(),
            Bytes::Owned(b) => b,
            // SAFETY: ember_open_buffer's contract: the buffer stays valid and unchanged
            // until ember_free, which drops this value last.
            Bytes::Borrowed(p, n) => unsafe { std::slice::from_raw_parts(*p, *n) },
        }
    }
}

/// `ember_model`: the model, its tokenizer and one session, all borrowing `bytes`.
pub struct EmberModel {
    // Dropped by hand in this order (see Drop): what borrows comes before what it borrows.
    session: ManuallyDrop<HeapSession<'static, 'static>>,
    tokenizer: ManuallyDrop<Tokenizer<'static>>,
    model: *mut Model<'static>,
    bytes: ManuallyDrop<Bytes>,
}

impl Drop for EmberModel {
    fn drop(&mut self) {
        // SAFETY: each field is dropped once, borrowers first: the session borrows the model,
        // the model and tokenizer borrow the bytes. `model` came from Box::into_raw in `load`.
        unsafe {
            ManuallyDrop::drop(&mut self.session);
            ManuallyDrop::drop(&mut self.tokenizer);
            drop(Box::from_raw(self.model));
            ManuallyDrop::drop(&mut self.bytes);
        }
    }
}

fn load(bytes: Bytes, ctx: u32) -> Result<Box<EmberModel>, Failure> {
    // SAFETY: the slice points into memory that does not move when `bytes` moves (a mapping,
    // a heap buffer or the caller's buffer) and that lives until EmberModel drops `bytes`,
    // after everything made from the slice below.
    let slice: &'static [u8] =
        unsafe { std::mem::transmute::<&[u8], &'static [u8]>(bytes.slice()) };
    let file = EmberFile::parse(slice)
        .map_err(|e| (Status::Format, format!("not a valid .ember file: {e}")))?;
    let model =
        Model::load(&file).map_err(|e| (Status::Model, format!("cannot load the model: {e}")))?;
    let tokenizer = Tokenizer::from_file(&file)
        .map_err(|e| (Status::Model, format!("cannot load the tokenizer: {e}")))?;
    let context = model.config.context_length;
    let capacity = match ctx as usize {
        0 => context.min(2048),
        c if c > context => {
            return Err((
                Status::Argument,
                format!("ctx {c} is beyond the model's context length {context}"),
            ))
        }
        c => c,
    };
    let model = Box::into_raw(Box::new(model));
    // SAFETY: `model` is a live heap allocation freed only in EmberModel's Drop, after the
    // session that borrows it.
    let model_ref: &'static Model<'static> = unsafe { &*model };
    let session = match HeapSession::new(model_ref, capacity) {
        Ok(mut s) => {
            s.set_threads(0);
            s
        }
        Err(e) => {
            // SAFETY: nothing borrows the model any more.
            drop(unsafe { Box::from_raw(model) });
            return Err((
                Status::Model,
                format!("cannot make a session of {capacity} positions: {e}"),
            ));
        }
    };
    Ok(Box::new(EmberModel {
        session: ManuallyDrop::new(session),
        tokenizer: ManuallyDrop::new(tokenizer),
        model,
        bytes: ManuallyDrop::new(bytes),
    }))
}

/// # Safety
/// `out` is NULL or writable.
unsafe fn put(
    out: *mut *mut EmberModel,
    result: Result<Box<EmberModel>, Failure>,
) -> Result<(), Failure> {
    let m = result?;
    // SAFETY: checked not NULL by the callers; the caller promises it is writable.
    unsafe { *out = Box::into_raw(m) };
    Ok(())
}

/// Ember's CLI defaults.
#[no_mangle]
pub extern "C" fn ember_sampling_default() -> Sampling {
    let d = SamplerConfig::default();
    Sampling {
        temperature: d.temperature,
        top_k: d.top_k as i32,
        top_p: d.top_p,
        min_p: d.min_p,
        repeat_penalty: d.repeat_penalty,
        seed: d.seed,
    }
}

/// Greedy decoding.
#[no_mangle]
pub extern "C" fn ember_sampling_greedy() -> Sampling {
    Sampling {
        temperature: 0.0,
        ..ember_sampling_default()
    }
}

/// Opens a .ember file.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ember_open(
    path: *const c_char,
    ctx: u32,
    out: *mut *mut EmberModel,
) -> Status {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        // SAFETY: the caller's contract on `path`.
        let path = unsafe { text(path, "path") }?;
        // Its errors name the file.
        let mapped = MappedFile::open(Path::new(path)).map_err(|e| {
            let status = match e.kind() {
                std::io::ErrorKind::InvalidData => Status::Format,
                _ => Status::Io,
            };
            (status, e.to_string())
        })?;
        let loaded = load(Bytes::Mapped(mapped), ctx).map_err(|(s, m)| (s, format!("{path}: {m}")));
        // SAFETY: `out` is not NULL and the caller promises it is writable.
        unsafe { put(out, loaded) }
    })
}

/// Opens a model from bytes in memory.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes; if it is 64-byte aligned they must stay
/// valid and unchanged until `ember_free`. `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ember_open_buffer(
    data: *const u8,
    len: usize,
    ctx: u32,
    out: *mut *mut EmberModel,
) -> Status {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        if data.is_null() {
            return Err(null("data"));
        }
        let bytes = if (data as usize).is_multiple_of(DATA_ALIGN as usize) {
            Bytes::Borrowed(data, len)
        } else {
            // SAFETY: the caller promises `len` readable bytes at `data`.
            let slice = unsafe { std::slice::from_raw_parts(data, len) };
            Bytes::Owned(AlignedBytes::from(slice))
        };
        // SAFETY: `out` is not NULL and the caller promises it is writable.
        unsafe { put(out, load(bytes, ctx)) }
    })
}

/// Token ids of a text.
///
/// # Safety
/// `m` is NULL or from `ember_open*`; `text` NULL or NUL-terminated; `ids` NULL or writable
/// for `cap` ids; `n` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ember_tokenize(
    m: *const EmberModel,
    text_ptr: *const c_char,
    ids: *mut u32,
    cap: usize,
    n: *mut usize,
) -> Status {
    guard(|| {
        // SAFETY: the caller's contract: NULL or a live handle.
        let m = unsafe { m.as_ref() }.ok_or_else(|| null("model"))?;
        if n.is_null() {
            return Err(null("n"));
        }
        if ids.is_null() && cap > 0 {
            return Err(null("ids"));
        }
        // SAFETY: the caller's contract on `text`.
        let t = unsafe { text(text_ptr, "text") }?;
        let mut out = Vec::new();
        m.tokenizer.encode(t, &mut out);
        // SAFETY: `n` is not NULL and writable by contract.
        unsafe { *n = out.len() };
        if out.len() > cap {
            return Err((
                Status::Buffer,
                format!("{} ids do not fit in {cap}", out.len()),
            ));
        }
        if !out.is_empty() {
            // SAFETY: `ids` is writable for `cap` >= out.len() ids by contract.
            unsafe { std::ptr::copy_nonoverlapping(out.as_ptr(), ids, out.len()) };
        }
        Ok(())
    })
}

fn sampler_config(s: &Sampling) -> Result<SamplerConfig, Failure> {
    let bad = |m: String| (Status::Argument, m);
    if s.temperature.is_nan() {
        return Err(bad("temperature is NaN".into()));
    }
    for (name, v) in [("top_p", s.top_p), ("min_p", s.min_p)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(bad(format!("{name} must be in [0, 1], got {v}")));
        }
    }
    if !(s.repeat_penalty > 0.0 && s.repeat_penalty.is_finite()) {
        return Err(bad(format!(
            "repeat_penalty must be > 0, got {}",
            s.repeat_penalty
        )));
    }
    Ok(SamplerConfig {
        temperature: s.temperature.max(0.0),
        top_k: usize::try_from(s.top_k).unwrap_or(0),
        top_p: s.top_p,
        min_p: s.min_p,
        repeat_penalty: s.repeat_penalty,
        repeat_last_n: 64,
        seed: s.seed,
    })
}

/// Feeds a prompt and generates, calling `on_token` per token.
///
/// # Safety
/// `m` is NULL or from `ember_open*` and not used by another thread meanwhile; `prompt` NULL
/// or NUL-terminated; `sampling` NULL or readable; `on_token` NULL or a function that may be
/// called with `user`.
#[no_mangle]
pub unsafe extern "C" fn ember_generate(
    m: *mut EmberModel,
    prompt: *const c_char,
    n_predict: u32,
    sampling: *const Sampling,
    on_token: TokenFn,
    user: *mut c_void,
) -> Status {
    guard(|| {
        // SAFETY: the caller's contract: NULL or a live handle used by this thread only.
        let m = unsafe { m.as_mut() }.ok_or_else(|| null("model"))?;
        let on_token = on_token.ok_or_else(|| null("on_token"))?;
        // SAFETY: the caller's contract on `prompt`.
        let prompt = unsafe { text(prompt, "prompt") }?;
        // SAFETY: NULL or readable by contract.
        let cfg = match unsafe { sampling.as_ref() } {
            Some(s) => sampler_config(s)?,
            None => SamplerConfig::greedy(),
        };
        let ids = if m.session.position() == 0 {
            let mut ids = Vec::new();
            m.tokenizer.encode(prompt, &mut ids);
            ids
        } else {
            m.tokenizer.encode_plain(prompt)
        };
        if ids.is_empty() {
            return Err((
                Status::Argument,
                "the prompt is empty (it encodes to no tokens)".into(),
            ));
        }
        let (used, capacity) = (m.session.position(), m.session.capacity());
        if used + ids.len() > capacity {
            return Err((
                Status::Context,
                format!(
                    "the prompt is {} tokens but the context has {} of {capacity} positions left",
                    ids.len(),
                    capacity - used
                ),
            ));
        }
        let call = |token: u32, t: &str| -> bool {
            // SAFETY: the caller's contract on `on_token` and `user`; `t` lives during the call.
            unsafe { on_token(user, token, t.as_ptr().cast(), t.len()) == 0 }
        };
        let mut gen = Generator::new(&mut m.session, &m.tokenizer, cfg, &[]);
        gen.prefill(&ids)
            .map_err(|e| (Status::Model, e.to_string()))?;
        let mut n = 0u32;
        let mut piece = String::new();
        let mut go_on = true;
        while go_on && n < n_predict {
            piece.clear();
            match gen
                .next(&mut |t| piece.push_str(t))
                .map_err(|e| (Status::Model, e.to_string()))?
            {
                Some(id) => {
                    n += 1;
                    go_on = call(id, &piece);
                }
                None => break,
            }
        }
        piece.clear();
        gen.finish(&mut |t| piece.push_str(t));
        if go_on && !piece.is_empty() {
            call(NO_TOKEN, &piece);
        }
        Ok(())
    })
}

/// Forgets the session's tokens.
///
/// # Safety
/// `m` is NULL or from `ember_open*`, not used by another thread meanwhile.
#[no_mangle]
pub unsafe extern "C" fn ember_reset(m: *mut EmberModel) -> Status {
    guard(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { m.as_mut() }.ok_or_else(|| null("model"))?;
        m.session.reset();
        Ok(())
    })
}

/// Frees a model.
///
/// # Safety
/// `m` is NULL or from `ember_open*` and not freed before.
#[no_mangle]
pub unsafe extern "C" fn ember_free(m: *mut EmberModel) {
    if !m.is_null() {
        // SAFETY: `m` came from Box::into_raw in `put` and is freed once.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(m) })));
    }
}

/// The last error on this thread.
#[no_mangle]
pub extern "C" fn ember_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}
