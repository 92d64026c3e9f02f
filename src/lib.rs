//! durable-outbox: a durable browser outbox, from Rust via WebAssembly.
//!
//! - [`core`]: the platform-free state machine (no browser, no clock, no randomness),
//!   tested natively with `cargo test`.
//! - `browser` (wasm32 only): thin adapters around the core: IndexedDB storage, the
//!   fetch transport, timers, online/offline events and the JS-facing `Outbox` class.
//!
//! Without the default `std` feature (the published wasm build) the crate is `no_std`:
//! it needs only `core` and `alloc`, and a panic traps after saying where it happened
//! (`browser::panic`).

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod core;

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
pub use browser::Outbox;

/// Talc instead of std's dlmalloc: less code in the wasm module. The module is single-threaded (no `atomics`), which this allocator requires.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// Without std there is no panic machinery to format messages; say where the bug is, in
/// the console, then trap.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[panic_handler]
fn panic(info: &::core::panic::PanicInfo) -> ! {
    browser::report_panic(info);
    ::core::arch::wasm32::unreachable()
}
