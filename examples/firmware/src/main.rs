//! Ember on a microcontroller: no heap, no OS. A Cortex-M4 (qemu's `mps2-an386` board)
//! generates text greedily from a tiny q8_0 model read in place from flash, in static
//! buffers sized by `SessionPlan`, and prints over semihosting:
//!
//! ```text
//! cargo run --release        (from examples/firmware; needs qemu-system-arm)
//! ```
//!
//! `scripts/firmware.sh` builds it, runs it and checks its ids against `ember run` on the host.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprint, hprintln};
use panic_semihosting as _;

use ember_format::EmberFile;
use ember_runtime::exec::Serial;
use ember_runtime::model::Layer;
use ember_runtime::{argmax, Logits, Model, Session, SessionPlan};

/// Keeps the model 64-byte aligned, as `EmberFile::parse` and the tensors need.
#[repr(C, align(64))]
struct Aligned<T: ?Sized>(T);

/// The model, in flash with the code (see model/make-model.sh for how it was made).
static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!("../model/tiny-q8_0.ember"));

/// "First Citizen:\n", as `ember tokenize model/tiny-q8_0.ember "First Citizen:\n" --json`
/// gives it (the host encodes; the firmware carries no tokenizer encoder).
const PROMPT: &[u32] = &[18, 47, 56, 57, 58, 1, 15, 47, 58, 47, 64, 43, 52, 10, 0];
/// Tokens to generate.
const N: usize = 48;
/// KV cache positions: the prompt plus what is generated (at most the model's context).
const CTX: usize = 64;
/// Tokens per forward pass in prefill: the host's default (`DEFAULT_BATCH`), so both sides
/// do the same arithmetic in the same order.
const BATCH: usize = ember_runtime::session::DEFAULT_BATCH;
/// Layer views: at least the model's layer count.
const MAX_LAYERS: usize = 8;

/// Static RAM for the session: the KV cache and f32 scratch share `F32_ARENA`.
const F32_ARENA: usize = 56 * 1024;
const I8_ARENA: usize = 8 * 1024;

#[entry]
fn main() -> ! {
    let code = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            hprintln!("error: {}", e);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(code);
    #[allow(clippy::empty_loop)]
    loop {}
}

fn run() -> Result<(), ember_runtime::Error> {
    let f32_arena =
        cortex_m::singleton!(: [f32; F32_ARENA] = [0.0; F32_ARENA]).expect("run is called once");
    let i8_arena =
        cortex_m::singleton!(: [i8; I8_ARENA] = [0; I8_ARENA]).expect("run is called once");

    let file = EmberFile::parse(&MODEL.0)?;
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load_into(&file, &mut layers)?;
    let cfg = &model.config;
    let plan = SessionPlan::new(cfg, CTX.min(cfg.context_length), BATCH, Logits::Last)?;
    hprintln!(
        "ember on Cortex-M4: {} layers, dim {}, vocab {}, ctx {}; model {} bytes in flash; \
         RAM {} bytes (KV {} f32, scratch {} f32 + {} i8)",
        cfg.layers,
        cfg.dim,
        cfg.vocab_size,
        plan.capacity,
        MODEL.0.len(),
        plan.bytes_required(),
        plan.kv_floats,
        plan.scratch.floats,
        plan.scratch.bytes
    );

    let floats = plan.kv_floats + plan.scratch.floats;
    if floats > F32_ARENA || plan.scratch.bytes > I8_ARENA {
        return Err(ember_runtime::Error::BufferTooSmall {
            needed: floats.max(plan.scratch.bytes),
            got: F32_ARENA.min(I8_ARENA),
        });
    }
    let (kv, rest) = f32_arena.split_at_mut(plan.kv_floats);
    let scratch_f = &mut rest[..plan.scratch.floats];
    let scratch_i = &mut i8_arena[..plan.scratch.bytes];
    let mut session = Session::with_buffers(&model, plan, kv, scratch_f, scratch_i, Serial)?;

    // Each token's decoded bytes (docs/FORMAT.md, Tokenizer): enough to print the output.
    let tokens = file
        .get("tokenizer.tokens")
        .and_then(|v| v.as_bytes_array())
        .ok_or(ember_runtime::Error::Tokenizer)?;
    let mut text = [0u8; 4 * N];
    let mut text_len = 0;
    let mut ids = [0u32; N];

    let mut next = argmax(session.prefill(PROMPT)?);
    for (i, id) in ids.iter_mut().enumerate() {
        *id = next;
        let piece = tokens.get(next as usize).unwrap_or(b"");
        let end = (text_len + piece.len()).min(text.len());
        text[text_len..end].copy_from_slice(&piece[..end - text_len]);
        text_len = end;
        if i + 1 < N {
            next = argmax(session.step(next)?);
        }
    }

    hprint!("prompt_ids=");
    print_ids(PROMPT);
    hprint!("ids=");
    print_ids(&ids);
    // The generated text between two marker lines (a token may end inside a UTF-8
    // character: print the valid prefix).
    let text = &text[..text_len];
    let valid = match core::str::from_utf8(text) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&text[..e.valid_up_to()]).unwrap_or(""),
    };
    hprintln!("--- text ---");
    hprintln!("{}", valid);
    hprintln!("--- end ---");
    Ok(())
}

/// Prints `1,2,3` and a newline.
fn print_ids(ids: &[u32]) {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            hprint!(",");
        }
        hprint!("{}", id);
    }
    hprintln!();
}
