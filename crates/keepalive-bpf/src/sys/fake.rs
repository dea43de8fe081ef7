//! A stand-in for the kernel in unit tests: while [`with_fake`] runs, every
//! [`bpf`](super::bpf()) call of the thread is answered by a closure.

use std::cell::RefCell;
use std::io;

use super::bpf::Syscall;

type Fake = Box<dyn FnMut(&mut Syscall<'_>) -> io::Result<i64>>;

thread_local! {
    static FAKE: RefCell<Option<Fake>> = const { RefCell::new(None) };
}

/// Runs `f` with every [`bpf`](super::bpf()) call of this thread answered
/// by `fake` instead of the kernel. A fake answering a command that returns
/// a file descriptor must return one it owns (it is closed when dropped).
pub(crate) fn with_fake<T>(
    fake: impl FnMut(&mut Syscall<'_>) -> io::Result<i64> + 'static,
    f: impl FnOnce() -> T,
) -> T {
    FAKE.with(|cell| *cell.borrow_mut() = Some(Box::new(fake)));
    let out = f();
    FAKE.with(|cell| *cell.borrow_mut() = None);
    out
}

/// The fake's answer to `call`, or `None` when no fake is set.
pub(super) fn answer(call: &mut Syscall<'_>) -> Option<io::Result<i64>> {
    FAKE.with(|cell| cell.borrow_mut().as_mut().map(|fake| fake(call)))
}
