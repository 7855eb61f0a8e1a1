//! Crash points for the fault-injection tests.
//!
//! In debug builds, `KEYTURN_CRASH_AT=N` aborts the process (as `kill -9`
//! would) when the N-th crash point of the run is reached, so a test can stop
//! a change at every write and check that a rerun loses nothing. Release
//! builds compile this to nothing.

#[cfg(debug_assertions)]
static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Marks a point between two writes where a crash must lose nothing.
pub fn point(_label: &str) {
    #[cfg(debug_assertions)]
    {
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if std::env::var("KEYTURN_CRASH_AT").ok().and_then(|v| v.parse::<u32>().ok()) == Some(n) {
            eprintln!("keyturn: crash injected at point {n} ({_label})");
            std::process::abort();
        }
    }
}

/// Debug builds only: `KEYTURN_TEST_HOLD_AT=LABEL:MS` (several separated by
/// `,`) pauses the process for MS milliseconds each time it reaches the hold
/// point LABEL, so a race test can run another keyturn in a chosen window
/// (an upgrade between its scan and its writes). Not a crash point: it does
/// not count in `KEYTURN_CRASH_AT`.
pub fn hold(_label: &str) {
    #[cfg(debug_assertions)]
    if let Ok(spec) = std::env::var("KEYTURN_TEST_HOLD_AT") {
        for item in spec.split(',') {
            if let Some((label, ms)) = item.rsplit_once(':')
                && label == _label
                && let Ok(ms) = ms.parse()
            {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
        }
    }
}
