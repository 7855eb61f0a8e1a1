//! Command-line parsing and dispatch. Each command group lives in its own
//! file and only calls the domain.

mod copy;
mod credentials;
mod fleet;
mod help;
mod input;
mod keys;
mod projects;
mod rotation;
mod tokens;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use color_eyre::eyre::{self, WrapErr};
use keyturn::keys::KeyKind;
use keyturn::rotation::Setup;
use keyturn::rotation::persist::PersistError;
use keyturn::rotation::run::RunError;
use keyturn::store::config::{Encoding, Role};
use keyturn::store::credentials::CredentialName;
use keyturn::store::home::{Home, HomeInputs};
use keyturn::store::{Store, StoreError};

/// Exit codes (README, "Exit codes").
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FINISHED: u8 = 3;
    pub const BUSY: u8 = 4;
    pub const INTERRUPTED: u8 = 130;
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
    /// The wizard on a throwaway home with a sample project, credentials, services and machines.
    Demo,
    /// A demo's stand-in service: runs until the demo process PID ends.
    #[command(hide = true)]
    DemoStandin {
        #[arg(long, value_name = "PID")]
        watch: u32,
    },
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
    /// Put the current custom key on the clipboard; wait with a countdown, then clear it.
    Copy { kind: Kind },
    /// Print the current key's fingerprint (or that of the key in a file).
    Fingerprint {
        kind: Kind,
        /// A key file to fingerprint instead, e.g. a published one.
        #[arg(long, value_name = "F")]
        file: Option<PathBuf>,
        /// How the file holds the key.
        #[arg(long, value_enum, default_value_t = EncodingArg::Text, requires = "file")]
        encoding: EncodingArg,
    },
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
    /// Re-encrypt the tokens in projects under the active key (registered projects if no PATH).
    Upgrade {
        paths: Vec<PathBuf>,
        /// Report what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the documented JSON report.
        #[arg(long)]
        json: bool,
    },
    /// The machine's projects.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// The keyring.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The machine's Git, bug-tracker and SMTP credentials.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Rotation checklists: plan, start, run, confirm, skip, abort.
    #[command(subcommand)]
    Rotation(RotationCommand),
    /// keyturn.toml.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The roster of other machines and the fleet's status.
    #[command(subcommand)]
    Machines(MachinesCommand),
    /// Print the shell completion script for bash, zsh, fish or powershell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), made from the same definitions as --help.
    Man,
}

#[derive(Debug, Subcommand)]
enum MachinesCommand {
    /// The roster.
    List,
    /// Add a machine to the roster.
    Add {
        name: String,
        /// Its roles (repeat for several).
        #[arg(long = "role", value_enum)]
        roles: Vec<RoleArg>,
        /// The command that runs keyturn there (default: ssh -o BatchMode=yes NAME keyturn).
        #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "ARG")]
        command: Vec<String>,
    },
    /// Remove a machine from the roster.
    Remove { name: String },
    /// Every machine's fingerprints against this one; exit 3 while any differs.
    Status {
        #[arg(long)]
        json: bool,
        /// How many machines to ask at once [default: [fleet] parallel in keyturn.toml, else 32].
        #[arg(long, value_name = "N", value_parser = parallel_range())]
        parallel: Option<usize>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    Scheduling,
    Storage,
    Execution,
    Project,
}

impl From<RoleArg> for Role {
    fn from(arg: RoleArg) -> Role {
        match arg {
            RoleArg::Scheduling => Role::Scheduling,
            RoleArg::Storage => Role::Storage,
            RoleArg::Execution => Role::Execution,
            RoleArg::Project => Role::Project,
        }
    }
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate keyturn.toml and say what each part will do.
    Check,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EncodingArg {
    Text,
    Base64,
    Hex,
    Raw,
}

impl From<EncodingArg> for Encoding {
    fn from(arg: EncodingArg) -> Encoding {
        match arg {
            EncodingArg::Text => Encoding::Text,
            EncodingArg::Base64 => Encoding::Base64,
            EncodingArg::Hex => Encoding::Hex,
            EncodingArg::Raw => Encoding::Raw,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SetupArg {
    Single,
    Multi,
}

impl From<SetupArg> for Setup {
    fn from(arg: SetupArg) -> Setup {
        match arg {
            SetupArg::Single => Setup::Single,
            SetupArg::Multi => Setup::Multi,
        }
    }
}

#[derive(Debug, Subcommand)]
enum RotationCommand {
    /// Print the checklist that would run here; change nothing.
    Plan {
        kind: Kind,
        #[arg(long)]
        setup: SetupArg,
        /// Communication only: back to the default key.
        #[arg(long)]
        reset: bool,
    },
    /// Start a rotation; its first step imports the key (from stdin, --file, --generate, or --reset).
    Start {
        kind: Kind,
        #[arg(long)]
        setup: SetupArg,
        /// Generate a new key.
        #[arg(long, conflicts_with_all = ["file", "reset"])]
        generate: bool,
        /// Read the key from this file.
        #[arg(long, value_name = "F", conflicts_with = "reset")]
        file: Option<PathBuf>,
        /// Communication only: back to the default key.
        #[arg(long)]
        reset: bool,
        /// Back to the previous key, from the keyring (after a finished or aborted rotation).
        #[arg(long, conflicts_with_all = ["generate", "file", "reset"])]
        rollback: bool,
    },
    /// Where the rotation stands.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Do the automatic steps and check the evidence; stop at the first step that needs a person (exit 3).
    Run {
        /// Seconds a restart step waits for its component.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        wait: u64,
        /// The key, when an import was cut short (else standard input).
        #[arg(long, value_name = "F")]
        file: Option<PathBuf>,
        /// Seconds another machine's join may take before it counts as hanging.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        machine_timeout: u64,
        /// How many machines to push to at once [default: [fleet] parallel in keyturn.toml, else 32].
        #[arg(long, value_name = "N", value_parser = parallel_range())]
        parallel: Option<usize>,
    },
    /// Check off the current step: a manual step, or a machine by the fingerprint it shows.
    Confirm {
        step: String,
        /// The fingerprint the other machine shows.
        #[arg(long, value_name = "FP")]
        fingerprint: Option<String>,
    },
    /// Skip the current step, with a reason.
    Skip {
        step: String,
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// This machine's part of a rotation run elsewhere (key on standard input).
    Join {
        kind: Kind,
        /// Communication only: back to the default key.
        #[arg(long)]
        reset: bool,
        /// Print the JSON report (what the first machine reads).
        #[arg(long)]
        json: bool,
        /// Seconds a restart waits for its component.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        wait: u64,
    },
    /// End the rotation and record it; the key is not rolled back.
    Abort {
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectsCommand {
    /// Register a project directory.
    Add { path: PathBuf },
    /// Unregister a project (its files are untouched).
    Remove { path: PathBuf },
    /// The registered projects.
    List,
    /// The secrets in projects (registered ones if no PATH), by file and line; never a value.
    Secrets {
        paths: Vec<PathBuf>,
        /// Print the documented JSON shape.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Remove retired encryption keys that nothing registered still uses.
    Purge {
        /// Remove them even while projects or credentials still use them.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialsCommand {
    /// Store a user name and a secret (the secret from standard input, hidden on a terminal).
    Set {
        name: CredentialArg,
        /// The user name (asked for on a terminal when missing).
        #[arg(long)]
        user: Option<String>,
    },
    /// Each credential and whether it can be read.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CredentialArg {
    Git,
    BugTracker,
    Smtp,
}

impl From<CredentialArg> for CredentialName {
    fn from(arg: CredentialArg) -> CredentialName {
        match arg {
            CredentialArg::Git => CredentialName::Git,
            CredentialArg::BugTracker => CredentialName::BugTracker,
            CredentialArg::Smtp => CredentialName::Smtp,
        }
    }
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

/// Ctrl-C ended the wizard: exit 130, as a shell reports SIGINT.
#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C)")]
pub struct Interrupted;

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
    let cli = match help::command().try_get_matches_from(&args).and_then(|m| {
        use clap::FromArgMatches as _;
        Cli::from_arg_matches(&m)
    }) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprint!("{}", withhold_secret_looking(&e.render().to_string(), &args));
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head -c1`): it has what it wanted.
        Err(report) if broken_pipe(&report) => ExitCode::SUCCESS,
        Err(report) => {
            // A cause whose text its parent already ends with (an I/O error
            // the message quotes) is said once.
            let mut message: Vec<String> = Vec::new();
            for cause in report.chain().map(ToString::to_string) {
                if !message.last().is_some_and(|parent| parent.ends_with(&cause)) {
                    message.push(cause);
                }
            }
            // Standard error may fail too (2>/dev/full, a terminal that went
            // away): never a panic; then exit 1 says it.
            let _ = writeln!(std::io::stderr(), "keyturn: error: {}", message.join(": "));
            ExitCode::from(exit_code(&report))
        }
    }
}

/// Whether a command-line word could be key material: a key body pasted
/// without its prefix, hex, base64 (padded or not).
pub fn looks_secret(word: &str) -> bool {
    word.len() >= 16 && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=_-:.".contains(&b))
}

/// clap repeats a wrong argument in its message. An argument that could be
/// key material is replaced there, so it never reaches a terminal log.
fn withhold_secret_looking(message: &str, args: &[std::ffi::OsString]) -> String {
    let mut message = message.to_string();
    for arg in args.iter().skip(1).map(|a| a.to_string_lossy()) {
        let value = arg.split_once('=').map(|(_, v)| v).unwrap_or_default();
        for word in [arg.as_ref(), value] {
            if looks_secret(word) {
                message = message.replace(word, "[withheld: it may be a secret]");
            }
        }
    }
    message
}

fn persist_store(e: &PersistError) -> Option<&StoreError> {
    match e {
        PersistError::Store(e) => Some(e),
        _ => None,
    }
}

fn broken_pipe(report: &eyre::Report) -> bool {
    report
        .chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

/// A message on standard error that cannot be written (`2>/dev/full`, a
/// closed terminal) ends the command with exit 1, never a panic report:
/// `eprintln!` panics on such an error, so its panic is told apart here.
pub fn quiet_output_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") {
            let broken = message.contains("Broken pipe") || message.contains("os error 32");
            std::process::exit(if broken { 0 } else { i32::from(exit::FAILED) });
        }
        previous(info);
    }));
}

fn exit_code(report: &eyre::Report) -> u8 {
    for cause in report.chain() {
        if cause.downcast_ref::<Usage>().is_some() {
            return exit::USAGE;
        }
        if cause.downcast_ref::<NotFinished>().is_some() {
            return exit::NOT_FINISHED;
        }
        if cause.downcast_ref::<Interrupted>().is_some() {
            return exit::INTERRUPTED;
        }
        let store_error = cause
            .downcast_ref::<StoreError>()
            .or_else(|| cause.downcast_ref::<keyturn::store::UpgradeError>().and_then(|e| e.store()))
            .or_else(|| cause.downcast_ref::<keyturn::store::PurgeError>().and_then(|e| e.store()))
            .or_else(|| cause.downcast_ref::<PersistError>().and_then(persist_store))
            .or_else(|| match cause.downcast_ref::<RunError>() {
                Some(RunError::Store(e)) => Some(e),
                Some(RunError::Persist(e)) => persist_store(e),
                _ => None,
            });
        if let Some(StoreError::Busy { .. }) = store_error {
            return exit::BUSY;
        }
    }
    exit::FAILED
}

fn run(cli: Cli) -> eyre::Result<()> {
    let Some(command) = cli.command else {
        // The wizard; it opens on a rotation left open.
        let home = Home::resolve(&HomeInputs::from_process(cli.home.clone()))?;
        return wizard(home, cli.ascii, std::time::Duration::from_secs(60), Box::new(|| {}));
    };
    let open = || -> eyre::Result<Store> {
        let home = Home::resolve(&HomeInputs::from_process(cli.home.clone()))?;
        let store = Store::open(home).wrap_err("cannot open the store")?;
        forced_panic_for_tests(&store);
        Ok(store)
    };
    match command {
        Command::Demo => demo(cli.ascii),
        // Made in memory, then written: clap_complete panics on a write
        // error (a closed pipe), keyturn says it.
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut help::command(), "keyturn", &mut script);
            Ok(std::io::stdout().write_all(&script).wrap_err("the completion script could not be written")?)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(help::command()).render(&mut page)?;
            Ok(std::io::stdout().write_all(&page).wrap_err("the man page could not be written")?)
        }
        Command::DemoStandin { watch } => {
            #[cfg(unix)]
            keyturn::demo::standin(watch);
            #[cfg(not(unix))]
            let _ = watch;
            Ok(())
        }
        Command::Generate { kind } => keys::generate(kind.into()),
        Command::Status { json } => keys::status(&open()?, json),
        Command::Import { kind, file } => keys::import(&mut open()?, kind.into(), file.as_deref()),
        Command::Show { kind } => keys::show(&open()?, kind.into()),
        Command::Copy { kind } => copy::copy(&open()?, kind.into()),
        Command::Fingerprint { kind, file: Some(file), encoding } => {
            keys::fingerprint_of_file(kind.into(), &file, encoding.into())
        }
        Command::Fingerprint { kind, file: None, .. } => keys::fingerprint(&open()?, kind.into()),
        Command::Reset { kind } => keys::reset(&mut open()?, kind.into()),
        Command::Encrypt { raw } => tokens::encrypt(&open()?, raw),
        Command::Decrypt => tokens::decrypt(&open()?),
        Command::Upgrade { paths, dry_run, json } => projects::upgrade(&mut open()?, &paths, dry_run, json),
        Command::Projects(ProjectsCommand::Add { path }) => projects::add(&open()?, &path),
        Command::Projects(ProjectsCommand::Remove { path }) => projects::remove(&open()?, &path),
        Command::Projects(ProjectsCommand::List) => projects::list(&open()?),
        Command::Projects(ProjectsCommand::Secrets { paths, json }) => projects::secrets(&open()?, &paths, json),
        Command::Keys(KeysCommand::Purge { force }) => projects::purge(&mut open()?, force),
        Command::Credentials(CredentialsCommand::Set { name, user }) => {
            credentials::set(&mut open()?, name.into(), user)
        }
        Command::Credentials(CredentialsCommand::List { json }) => credentials::list(&open()?, json),
        Command::Rotation(RotationCommand::Join { kind, reset, json: true, wait }) => {
            // The first machine reads this output: a failure is a report too.
            let result = open().and_then(|mut store| {
                rotation_command(&mut store, RotationCommand::Join { kind, reset, json: true, wait })
            });
            if let Err(report) = &result {
                let home = Home::resolve(&HomeInputs::from_process(cli.home.clone())).ok();
                fleet::print_join_failure(home.as_ref(), kind.into(), report);
            }
            result
        }
        Command::Rotation(command) => rotation_command(&mut open()?, command),
        Command::Config(ConfigCommand::Check) => rotation::config_check(&open()?),
        Command::Machines(MachinesCommand::List) => fleet::list(&open()?),
        Command::Machines(MachinesCommand::Add { name, roles, command }) => {
            let roles: Vec<Role> = roles.into_iter().map(Into::into).collect();
            fleet::add(&open()?, &name, &roles, &command)
        }
        Command::Machines(MachinesCommand::Remove { name }) => fleet::remove(&open()?, &name),
        Command::Machines(MachinesCommand::Status { json, parallel }) => {
            let store = open()?;
            let parallel = store.config().parallel(parallel);
            fleet::status(&store, json, parallel)
        }
    }
}

/// The wizard, when there is a terminal to draw it on. `on_hangup` runs if
/// the terminal goes away (SIGHUP, SIGTERM: a closed window, a dropped SSH
/// session), before the process ends.
fn wizard(home: Home, ascii: bool, wait: std::time::Duration, on_hangup: Box<dyn Fn() + Send>) -> eyre::Result<()> {
    use std::io::IsTerminal;
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(Usage(
            "the wizard needs a terminal (standard input and output); for scripts use the commands: keyturn --help"
                .into(),
        )
        .into());
    }
    if let Some(refusal) = keyturn::tui::terminal_refusal(std::env::var("TERM").ok().as_deref()) {
        return Err(Usage(refusal).into());
    }
    watch_hangup(on_hangup);
    match keyturn::tui::run(home, ascii, wait)? {
        keyturn::tui::Ended::Quit => Ok(()),
        keyturn::tui::Ended::Interrupted => Err(Interrupted.into()),
    }
}

#[cfg(unix)]
fn watch_hangup(on_hangup: Box<dyn Fn() + Send>) {
    use signal_hook::consts::{SIGHUP, SIGTERM};
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM]) {
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                on_hangup();
                // The terminal is gone or going: leave raw mode if it can be.
                let _ = ratatui::crossterm::terminal::disable_raw_mode();
                std::process::exit(128 + signal);
            }
        });
    }
}

#[cfg(not(unix))]
fn watch_hangup(_on_hangup: Box<dyn Fn() + Send>) {}

fn demo(ascii: bool) -> eyre::Result<()> {
    let me = std::env::current_exe().wrap_err("cannot find the keyturn binary for the demo's services")?;
    let demo = keyturn::demo::create(&me).wrap_err("cannot build the demo")?;
    let dir = demo.path().to_path_buf();
    let dir_shown = dir.display().to_string();
    let result = wizard(
        demo.home(),
        ascii,
        std::time::Duration::from_secs(15),
        Box::new(move || keyturn::demo::cleanup(&dir, true)),
    );
    keyturn::demo::cleanup(demo.path(), true);
    drop(demo);
    let _ = writeln!(std::io::stderr(), "The demo home {dir_shown} and its stand-in services are gone.");
    result
}

/// `--parallel`: from 1 to the most machines reached at once.
fn parallel_range() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=keyturn::system::remote::MAX_PARALLEL as u64)
}

fn rotation_command(store: &mut Store, command: RotationCommand) -> eyre::Result<()> {
    match command {
        RotationCommand::Plan { kind, setup, reset } => rotation::plan(store, kind.into(), setup.into(), reset),
        RotationCommand::Start { kind, setup, generate, file, reset, rollback } => {
            let source = if rollback {
                rotation::KeySource::Rollback
            } else if reset {
                rotation::KeySource::Reset
            } else if generate {
                rotation::KeySource::Generate
            } else {
                rotation::KeySource::Input(file.as_deref())
            };
            rotation::start(store, kind.into(), setup.into(), source, std::time::Duration::from_secs(60))
        }
        RotationCommand::Status { json } => rotation::status(store, json),
        RotationCommand::Run { wait, file, machine_timeout, parallel } => {
            let parallel = store.config().parallel(parallel);
            rotation::run(
                store,
                file.as_deref(),
                std::time::Duration::from_secs(wait),
                std::time::Duration::from_secs(machine_timeout),
                parallel,
            )
        }
        RotationCommand::Confirm { step, fingerprint } => rotation::confirm(store, &step, fingerprint.as_deref()),
        RotationCommand::Skip { step, reason } => rotation::skip(store, &step, &reason),
        RotationCommand::Abort { reason } => rotation::abort(store, reason.as_deref()),
        RotationCommand::Join { kind, reset, json, wait } => {
            fleet::join(store, kind.into(), reset, json, std::time::Duration::from_secs(wait))
        }
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
