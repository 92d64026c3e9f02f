//! A panic is a bug in this library: say so, and where, on the console instead of a bare
//! `unreachable` trap.
//!
//! With std (tests), a panic hook reports std's formatted message. Without it (the
//! published build), the crate's `#[panic_handler]` (in `lib.rs`) calls
//! [`report_panic`], which formats nothing: it gives the file and line, and the message
//! only when it is a plain string (most of core's are formatted: then just "panic").

use super::js::console_error;

/// Installs the panic hook once (std builds).
#[cfg(feature = "std")]
pub fn install_hook() {
    // A flag, not `std::sync::Once`: the module is single-threaded, and `Once` costs
    // code of its own.
    static SET: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if SET.swap(true, core::sync::atomic::Ordering::Relaxed) {
        return;
    }
    std::panic::set_hook(alloc::boxed::Box::new(|info| {
        console_error(
            &"durable-outbox bug:".into(),
            &alloc::format!("{info}").into(),
        );
    }));
}

/// Nothing to install without std: the crate's panic handler reports.
#[cfg(not(feature = "std"))]
pub fn install_hook() {}

/// Reports a panic from the crate's panic handler (no-std builds): `<message> at
/// <file>:<line>`, the message only if it is a plain string.
#[cfg(not(feature = "std"))]
pub fn report_panic(info: &core::panic::PanicInfo) {
    use crate::core::text::{concat, decimal};
    let message = info.message().as_str().unwrap_or("panic");
    let text = match info.location() {
        Some(at) => concat(&[message, " at ", at.file(), ":", &decimal(at.line().into())]),
        None => message.into(),
    };
    console_error(&"durable-outbox bug:".into(), &text.as_str().into());
}
