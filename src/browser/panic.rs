//! A panic is a bug in this library: say so, and where, on the console instead of a bare
//! `unreachable` trap.
//!
//! With std (tests), a panic hook reports std's formatted message. Without it (the
//! published build), the crate's `#[panic_handler]` (in `lib.rs`) calls
//! [`report_panic`], which formats nothing: the message only when it is a plain string,
//! and the file and line as JS values.

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
    let mut text = alloc::string::String::from(info.message().as_str().unwrap_or("panic"));
    if let Some(at) = info.location() {
        text.push_str(" at ");
        text.push_str(at.file());
        text.push(':');
        // The line in decimal, without the formatting machinery.
        let (mut line, mut digits) = (at.line(), [0u8; 10]);
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (line % 10) as u8;
            line /= 10;
            if line == 0 {
                break;
            }
        }
        text.extend(digits[start..].iter().map(|&d| char::from(d)));
    }
    console_error(&"durable-outbox bug:".into(), &text.as_str().into());
}
