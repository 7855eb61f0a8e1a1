//! Command-line parsing and dispatch. Each command group lives in its own
//! file and only calls the domain.

mod input;
mod keys;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use color_eyre::eyre::{self, WrapErr};
use keyturn::keys::KeyKind;
use keyturn::store::home::{Home, HomeInputs};
use keyturn::store::{Store, StoreError};

/// Exit codes (README, "Exit codes").
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FINISHED: u8 = 3;
    pub const BUSY: u8 = 4;
}

#[derive(Debug, Parser)]
#[command(
    name = "keyturn",
    version,
    about = "Generate, import, show and rotate the encryption and communication keys of a test-automation fleet."
)]
struct Cli {
    /// The store's directory (else KEYTURN_HOME, else the machine's default).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Draw the wizard without box characters or symbols outside ASCII.
    #[arg(long, global = true)]
    ascii: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Both keys: default or custom, fingerprint, age.
    Status {
        /// Print the documented JSON shape instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a new key's text form (imports nothing).
    Generate { kind: Kind },
    /// Import a key from standard input (or --file), never from an argument.
    Import {
        kind: Kind,
        /// Read the key from this file (UTF-8, or UTF-16 with a byte-order mark).
        #[arg(long, value_name = "F")]
        file: Option<PathBuf>,
    },
    /// Print the current custom key (refused for the default key).
    Show { kind: Kind },
    /// Print the current key's fingerprint.
    Fingerprint { kind: Kind },
    /// Put the communication key back to the built-in default.
    Reset { kind: Kind },
    /// Turn the value on standard input into a token.
    Encrypt {
        /// Keep every byte (by default one trailing line ending is dropped).
        #[arg(long)]
        raw: bool,
    },
    /// Turn the token on standard input back into the exact value.
    Decrypt,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    #[value(alias = "enc")]
    Encryption,
    #[value(alias = "comm", alias = "com")]
    Communication,
}

impl From<Kind> for KeyKind {
    fn from(kind: Kind) -> KeyKind {
        match kind {
            Kind::Encryption => KeyKind::Encryption,
            Kind::Communication => KeyKind::Communication,
        }
    }
}

/// Wrong usage that clap cannot see: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Work remains for a person: exit 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFinished(pub String);

pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.iter().skip(1).any(|a| a.to_string_lossy().contains(keyturn::keys::TEXT_PREFIX)) {
        // Never echo it: clap would repeat the argument in its error.
        eprintln!(
            "keyturn: error: a key was given on the command line, where other users see it in the process list; \
             pass it on standard input or with --file, and generate a new key: this one may have leaked"
        );
        return ExitCode::from(exit::USAGE);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(report) => {
            let message: Vec<String> = report.chain().map(ToString::to_string).collect();
            eprintln!("keyturn: error: {}", message.join(": "));
            ExitCode::from(exit_code(&report))
        }
    }
}

fn exit_code(report: &eyre::Report) -> u8 {
    for cause in report.chain() {
        if cause.downcast_ref::<Usage>().is_some() {
            return exit::USAGE;
        }
        if cause.downcast_ref::<NotFinished>().is_some() {
            return exit::NOT_FINISHED;
        }
        if let Some(StoreError::Busy { .. }) = cause.downcast_ref::<StoreError>() {
            return exit::BUSY;
        }
    }
    exit::FAILED
}

fn run(cli: Cli) -> eyre::Result<()> {
    let Some(command) = cli.command else {
        return Err(Usage(
            "the terminal wizard is not in this build yet; run `keyturn --help` for the commands".into(),
        )
        .into());
    };
    let open = || -> eyre::Result<Store> {
        let home = Home::resolve(&HomeInputs::from_process(cli.home.clone()))?;
        let store = Store::open(home).wrap_err("cannot open the store")?;
        forced_panic_for_tests(&store);
        Ok(store)
    };
    match command {
        Command::Generate { kind } => keys::generate(kind.into()),
        Command::Status { json } => keys::status(&open()?, json),
        Command::Import { kind, file } => keys::import(&mut open()?, kind.into(), file.as_deref()),
        Command::Show { kind } => keys::show(&open()?, kind.into()),
        Command::Fingerprint { kind } => keys::fingerprint(&open()?, kind.into()),
        Command::Reset { kind } => keys::reset(&mut open()?, kind.into()),
        Command::Encrypt { raw } => tokens::encrypt(&open()?, raw),
        Command::Decrypt => tokens::decrypt(&open()?),
    }
}

/// Debug builds only: `KEYTURN_TEST_PANIC=1` panics with the loaded store in
/// the message, so the leak tests can check that a panic shows no key.
fn forced_panic_for_tests(store: &Store) {
    #[cfg(debug_assertions)]
    if std::env::var_os("KEYTURN_TEST_PANIC").is_some() {
        panic!("forced test panic; store: {store:?}; ring: {:?}", store.keyring());
    }
    let _ = store;
}
