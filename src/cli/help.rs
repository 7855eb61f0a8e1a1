//! `--help` for every command: an example from the table below, then the
//! exit codes and the environment, as `vault` and `consul` print them. Kept
//! apart from the argument definitions so the two are read (and merged)
//! separately; a test checks that every command has its example. The
//! completions and the man page are generated from the same definitions.

use clap::{Command, CommandFactory};

use super::Cli;

/// Exit codes and environment variables: the end of every command's help.
const FOOTER: &str = "\
Exit codes:
  0  done
  1  failed (the cause on stderr in one line; nothing half-written)
  2  wrong usage
  3  not finished: work remains for a person (a manual step, tokens that cannot be decrypted,
     machines not converged)
  4  busy: another keyturn holds the store's lock (it is named)
  130  the wizard was ended with Ctrl-C

Environment:
  KEYTURN_HOME          the store's directory, when --home is not given
  NO_COLOR              any value: the wizard draws without colour
  KEYTURN_LOCK_WAIT_MS  how long a writer waits for the store's lock (default 3000)";

/// Each command (by its words after `keyturn`) and its examples.
const EXAMPLES: &[(&str, &str)] = &[
    ("", "keyturn                        # the wizard on this machine's store\n  keyturn --home /srv/kt status"),
    ("demo", "keyturn demo                   # walk a whole rotation on a throwaway home"),
    ("status", "keyturn status --json | jq .encryption.fingerprint"),
    ("generate", "keyturn generate encryption > new.key"),
    ("import", "keyturn import encryption --file new.key && shred -u new.key"),
    ("show", "keyturn show communication"),
    ("copy", "keyturn copy encryption        # cleared after 30 s, or on any key"),
    (
        "fingerprint",
        "keyturn fingerprint encryption\n  keyturn fingerprint communication --file /etc/app/comm.key --encoding base64",
    ),
    ("reset", "keyturn reset communication"),
    ("encrypt", "echo 'db-password' | keyturn encrypt"),
    ("decrypt", "keyturn decrypt < token.txt"),
    ("upgrade", "keyturn upgrade --dry-run ~/Projects/Checkout\n  keyturn upgrade --json"),
    ("projects", "keyturn projects add ~/Projects/Checkout"),
    ("projects add", "keyturn projects add ~/Projects/Checkout"),
    ("projects remove", "keyturn projects remove ~/Projects/Checkout"),
    ("projects list", "keyturn projects list"),
    ("projects secrets", "keyturn projects secrets ~/Projects/Checkout\n  keyturn projects secrets --json"),
    ("keys", "keyturn keys purge"),
    ("keys purge", "keyturn keys purge            # refuses while a project still uses a retired key"),
    ("credentials", "keyturn credentials list"),
    ("credentials set", "keyturn credentials set git --user qa-bot    # the secret is asked for, hidden"),
    ("credentials list", "keyturn credentials list --json"),
    ("rotation", "keyturn rotation start encryption --setup single --generate && keyturn rotation run"),
    ("rotation plan", "keyturn rotation plan communication --setup multi"),
    (
        "rotation start",
        "keyturn rotation start encryption --setup multi --file new.key\n  keyturn rotation start communication --setup single --reset",
    ),
    ("rotation status", "keyturn rotation status --json | jq -r .current"),
    ("rotation run", "keyturn rotation run --wait 120"),
    (
        "rotation confirm",
        "keyturn rotation confirm continue\n  keyturn rotation confirm machine-exec-01 --fingerprint 7F3A-91C0-55D2-0B8E",
    ),
    ("rotation skip", "keyturn rotation skip credential-smtp --reason 'no SMTP in this lab'"),
    ("rotation join", "keyturn show encryption | ssh exec-01 keyturn rotation join encryption --json"),
    ("rotation abort", "keyturn rotation abort --reason 'wrong key file'"),
    ("config", "keyturn config check"),
    ("config check", "keyturn config check"),
    ("machines", "keyturn machines status"),
    ("machines list", "keyturn machines list"),
    (
        "machines add",
        "keyturn machines add exec-01 --role execution\n  keyturn machines add win-02 --role execution --command ssh win-02 keyturn.exe",
    ),
    ("machines remove", "keyturn machines remove exec-01"),
    ("machines status", "keyturn machines status --json --parallel 16"),
    (
        "completions",
        "keyturn completions bash > /etc/bash_completion.d/keyturn\n  keyturn completions zsh > \"${fpath[1]}/_keyturn\"\n  keyturn completions fish > ~/.config/fish/completions/keyturn.fish\n  keyturn completions powershell >> $PROFILE",
    ),
    ("man", "keyturn man > keyturn.1 && man ./keyturn.1"),
];

/// The examples for the command at `path` (words after `keyturn`).
fn examples(path: &str) -> Option<&'static str> {
    EXAMPLES.iter().find(|(p, _)| *p == path).map(|(_, e)| *e)
}

/// keyturn's command line, every command with its examples and the footer.
pub fn command() -> Command {
    decorate(Cli::command(), "")
}

fn decorate(command: Command, path: &str) -> Command {
    let after = match examples(path) {
        Some(e) => format!("Examples:\n  {e}\n\n{FOOTER}"),
        None => FOOTER.to_string(),
    };
    let names: Vec<String> = command.get_subcommands().map(|c| c.get_name().to_string()).collect();
    let mut command = command.after_help(after);
    for name in names {
        let sub_path = if path.is_empty() { name.clone() } else { format!("{path} {name}") };
        command = command.mut_subcommand(&name, |sub| decorate(sub, &sub_path));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command, by its path, hidden ones aside.
    fn paths(command: &Command, path: &str, out: &mut Vec<String>) {
        for sub in command.get_subcommands().filter(|c| !c.is_hide_set() && c.get_name() != "help") {
            let sub_path =
                if path.is_empty() { sub.get_name().to_string() } else { format!("{path} {}", sub.get_name()) };
            paths(sub, &sub_path, out);
            out.push(sub_path);
        }
    }

    #[test]
    fn every_command_has_an_example_exit_codes_and_the_environment() {
        let command = command();
        let mut all = vec![String::new()];
        paths(&command, "", &mut all);
        for path in &all {
            let mut sub = command.clone();
            for word in path.split_whitespace() {
                sub = sub.find_subcommand(word).expect("the path exists").clone();
            }
            let help = sub.render_long_help().to_string();
            assert!(examples(path).is_some(), "`keyturn {path}` has no example in cli/help.rs");
            for needed in ["Examples:", "Exit codes:", "KEYTURN_HOME", "NO_COLOR", "KEYTURN_LOCK_WAIT_MS"] {
                assert!(help.contains(needed), "`keyturn {path} --help` lacks {needed}:\n{help}");
            }
        }
        // And every example is of a command that exists.
        for (path, _) in EXAMPLES {
            assert!(
                path.is_empty() || all.contains(&path.to_string()),
                "an example for `keyturn {path}`, which is gone"
            );
        }
    }
}
