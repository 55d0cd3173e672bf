//! The int8 seed model on a Cortex-M: sixteen MNIST test digits classified
//! with no std and no heap, the logits printed through semihosting.
//!
//! The model stays in flash (borrowed, never copied); the workspace is a
//! static array of the 649 words the model asks for. `.ci/cortex-m.sh`
//! runs this under QEMU and compares every printed logit with the host's.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprint, hprintln};
use microvit_engine::{argmax, Model};
use panic_semihosting as _;

/// Words of workspace the seed int8 model needs
/// (`Model::workspace_words`, checked at start).
const WORKSPACE_WORDS: usize = 649;
const PIXELS: usize = 28 * 28;

/// The blob must be 4-byte aligned to be used in place
/// (`microvit_engine::BORROWED_ALIGN`); `include_bytes!` guarantees 1.
#[repr(C, align(4))]
struct Aligned<T: ?Sized>(T);

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!("../../../models/microvit-seed.int8.mvit"));
/// The first 16 digits of the MNIST test set and their labels (make-digits.sh).
static DIGITS: &[u8] = include_bytes!("../digits.bin");
static LABELS: &[u8] = include_bytes!("../labels.bin");

#[entry]
fn main() -> ! {
    // cortex-m-rt makes this a `&'static mut` that only this function holds.
    static mut WORKSPACE: [u32; WORKSPACE_WORDS] = [0; WORKSPACE_WORDS];
    stack::paint();

    // Errors are not formatted: their messages print floats, and float
    // formatting alone is 20 KB of flash. The host tells what is wrong.
    let Ok(model) = Model::from_bytes_borrowed(&MODEL.0) else { fail("the model did not load") };
    let Ok(mut ws) = model.workspace_in(WORKSPACE) else { fail("workspace memory is too small") };
    hprintln!("model {} bytes, {}, workspace {} words", MODEL.0.len(), model.encoding(), model.workspace_words());

    let mut correct = 0;
    for (i, (digit, &label)) in DIGITS.chunks_exact(PIXELS).zip(LABELS).enumerate() {
        inference_marker();
        let result = model.infer(digit, &mut ws);
        inference_marker();
        let Ok(logits) = result else { fail("inference failed") };
        let class = argmax(logits);
        correct += usize::from(class == label as usize);
        // The Q.16 integers: exact, so the host's must be the same. (The
        // semihosting macros take positional arguments only.)
        hprint!("digit {:2} label {} class {} logits", i, label, class);
        for logit in ws.logits_fixed() {
            hprint!(" {}", logit);
        }
        hprintln!();
    }
    hprintln!("correct {}/{}", correct, LABELS.len());
    hprintln!("stack {} bytes at most", stack::used());
    debug::exit(debug::EXIT_SUCCESS);
    unreachable!("semihosting exit returned")
}

fn fail(why: &str) -> ! {
    hprintln!("error: {}", why);
    debug::exit(debug::EXIT_FAILURE);
    unreachable!("semihosting exit returned")
}

/// An empty call before and after each inference, never inlined: between
/// its hits lie the instructions `.ci/cortex-m.sh --count` attributes to
/// inference. (One function: two empty ones would be folded into one.)
#[inline(never)]
#[no_mangle]
extern "C" fn inference_marker() {
    cortex_m::asm::nop();
}

/// The most stack the program used: the free RAM below the stack is
/// painted with a pattern at start, and the lowest overwritten word found
/// at the end.
mod stack {
    const PAINT: u32 = 0xa5a5_a5a5;

    extern "C" {
        /// cortex-m-rt's linker script: the top of the stack, and the end
        /// of the statics (the lowest address the stack may reach).
        static _stack_start: u32;
        static _stack_end: u32;
    }

    fn bounds() -> (*mut u32, usize) {
        // Only the symbols' addresses are taken, never their values.
        (&raw const _stack_end as *mut u32, &raw const _stack_start as usize)
    }

    /// Paints from the end of the statics up to 256 bytes below the
    /// caller's stack pointer.
    #[inline(never)]
    pub fn paint() {
        let (bottom, _) = bounds();
        let limit = cortex_m::register::msp::read() as usize - 256;
        let mut word = bottom;
        while (word as usize) < limit {
            // SAFETY: between the end of the statics and the live stack: RAM
            // nothing else uses.
            unsafe { word.write_volatile(PAINT) };
            word = word.wrapping_add(1);
        }
    }

    /// Bytes from the stack top down to the lowest word no longer painted.
    pub fn used() -> usize {
        let (bottom, top) = bounds();
        let mut word = bottom;
        // SAFETY: reads RAM between the statics and the stack top, all of it
        // initialised (painted, or written by the stack).
        while (word as usize) < top && unsafe { word.read_volatile() } == PAINT {
            word = word.wrapping_add(1);
        }
        top - word as usize
    }
}
