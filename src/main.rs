//! keyturn: generate, import, show, copy and rotate the encryption and
//! communication keys of a test-automation fleet.

mod cli;

fn main() -> std::process::ExitCode {
    // color-eyre's panic hook prints a readable report; nothing secret can
    // reach it because secret types have no Display and a redacted Debug.
    let _ = color_eyre::install();
    cli::quiet_output_panics();
    cli::main()
}
