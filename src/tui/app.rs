//! The wizard's state and how actions change it (the model and `update` of
//! the Elm architecture). Drawing is in `view`; keys become actions in
//! `keymap`; everything the wizard does to the machine goes through the
//! domain (store, rotation) and the system edge passed in.

use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::field::LineEdit;
use super::keymap::{self, Action, Hint};
use crate::fleet::{self, FleetStatus};
use crate::keys::{Key, KeyKind};
use crate::rotation::persist;
use crate::rotation::run as runner;
use crate::rotation::{Action as StepAction, Change, Event, Rotation, Setup, StepKind};
use crate::store::credentials::CredentialName;
use crate::store::home::Home;
use crate::store::{KeyStatus, Store};
use crate::system::Edge;
use crate::system::clipboard::{Clipboard, Copied};
use ratatui::crossterm::event::KeyEvent;

/// How long a copied key stays on the clipboard.
pub const CLIPBOARD_SECONDS: u64 = 30;
/// How long a shown key stays on screen.
pub const SHOW_SECONDS: u64 = 60;

/// The tabs, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Encryption,
    Communication,
    Rotation,
    Machines,
}

impl Tab {
    /// All tabs, in order.
    pub const ALL: [Tab; 4] = [Tab::Encryption, Tab::Communication, Tab::Rotation, Tab::Machines];

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Encryption => "Encryption",
            Tab::Communication => "Communication",
            Tab::Rotation => "Rotation",
            Tab::Machines => "Machines",
        }
    }

    fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    /// The next tab.
    pub fn next(self) -> Tab {
        Tab::ALL[(self.index() + 1) % Tab::ALL.len()]
    }

    /// The previous tab.
    pub fn prev(self) -> Tab {
        Tab::ALL[(self.index() + Tab::ALL.len() - 1) % Tab::ALL.len()]
    }

    /// The key tab's kind.
    pub fn kind(self) -> Option<KeyKind> {
        match self {
            Tab::Encryption => Some(KeyKind::Encryption),
            Tab::Communication => Some(KeyKind::Communication),
            _ => None,
        }
    }
}

/// The controls of a key tab, in focus order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyControl {
    Copy,
    Show,
    Reset,
    Generate,
    Field,
    Import,
}

impl KeyControl {
    const ORDER: [KeyControl; 6] = [
        KeyControl::Copy,
        KeyControl::Show,
        KeyControl::Reset,
        KeyControl::Generate,
        KeyControl::Field,
        KeyControl::Import,
    ];

    /// Its label.
    pub fn label(self) -> &'static str {
        match self {
            KeyControl::Copy => "Copy to Clipboard",
            KeyControl::Show => "Show",
            KeyControl::Reset => "Reset to Default",
            KeyControl::Generate => "Generate",
            KeyControl::Field => "",
            KeyControl::Import => "Import",
        }
    }
}

/// One key tab's state.
#[derive(Debug)]
pub struct KeyPane {
    /// Which key.
    pub kind: KeyKind,
    /// The focused control.
    pub focus: KeyControl,
    /// The Replace Key field: generated or pasted key text.
    pub field: LineEdit,
    /// The key's state in the store.
    pub status: Option<KeyStatus>,
}

/// The controls of the Rotation tab, in focus order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationControl {
    Steps,
    Run,
    Confirm,
    Skip,
    Enter,
    Abort,
    /// After a finished or aborted rotation: back to the previous key.
    Rollback,
}

impl RotationControl {
    /// All, in focus order.
    pub const ORDER: [RotationControl; 7] = [
        RotationControl::Steps,
        RotationControl::Run,
        RotationControl::Confirm,
        RotationControl::Skip,
        RotationControl::Enter,
        RotationControl::Abort,
        RotationControl::Rollback,
    ];
}

/// What a one-line input dialog is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputPurpose {
    /// The reason for skipping a step.
    SkipReason { step: String },
    /// The fingerprint another machine shows.
    Fingerprint { step: String },
    /// The reason for aborting.
    AbortReason,
}

/// The most bytes the key field holds, typed or pasted.
pub const KEY_FIELD_MAX: usize = 4096;
/// The most bytes a one-line field of a dialog holds (a reason, a
/// fingerprint, a credential's user or secret), typed or pasted.
pub const LINE_MAX: usize = 500;

/// A dialog over the tabs.
#[derive(Debug)]
pub enum Dialog {
    /// Every key.
    Help,
    /// Import (or reset) confirmation with the setup choice.
    Confirm { kind: KeyKind, key: Option<Key>, multi: bool, lines: Vec<String> },
    /// The key, alone on its line, until `until` or any key.
    Show { kind: KeyKind, text: Zeroizing<String>, until: Instant },
    /// One line of text, and what was wrong with the last Enter (the
    /// dialog stays open until its text is right or Esc).
    Input { purpose: InputPurpose, value: LineEdit, error: Option<String> },
    /// A credential: user name and masked secret.
    Credential { name: CredentialName, user: LineEdit, secret: LineEdit, on_secret: bool, error: Option<String> },
}

/// A message from background work.
#[derive(Debug)]
pub enum WorkMessage {
    /// What is going on.
    Progress(String),
    /// Finished.
    Done(Box<WorkResult>),
}

/// What background work ended with.
#[derive(Debug)]
pub enum WorkResult {
    /// The rotation as it stands, or an error.
    Rotation(Result<Rotation, String>),
    /// The fleet's status.
    Fleet(FleetStatus),
}

/// The controls of the Machines tab, in focus order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachinesControl {
    List,
    Refresh,
    PushOne,
    PushAll,
}

impl MachinesControl {
    /// All, in focus order.
    pub const ORDER: [MachinesControl; 4] =
        [MachinesControl::List, MachinesControl::Refresh, MachinesControl::PushOne, MachinesControl::PushAll];
}

/// Background work the wizard watches (a rotation running its steps).
#[derive(Debug)]
pub struct Work {
    /// What it is.
    pub label: String,
    /// The latest progress.
    pub progress: String,
    receiver: Receiver<WorkMessage>,
}

/// How the wizard was started.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Run rotation work on a thread (false in tests: inline).
    pub background: bool,
    /// How long a restart step waits.
    pub wait: Duration,
}

/// The wizard's whole state.
pub struct App {
    /// The store's home.
    pub home: Home,
    /// The visible tab.
    pub tab: Tab,
    /// The Encryption and Communication tabs.
    pub panes: [KeyPane; 2],
    /// The rotation, open or last.
    pub rotation: Option<Rotation>,
    /// The Rotation tab's focused control.
    pub rotation_focus: RotationControl,
    /// The selected step in the checklist.
    pub selected: usize,
    /// The roster (name, roles), for the Machines tab.
    pub machines: Vec<(String, String)>,
    /// The fleet's status, from the last refresh.
    pub fleet: Option<FleetStatus>,
    /// The Machines tab's focused control and selected machine.
    pub machines_focus: MachinesControl,
    pub machine_selected: usize,
    /// The status line.
    pub status: String,
    /// The store could not be read: why (the wizard shows it, changes nothing).
    pub store_error: Option<String>,
    /// The open dialog.
    pub dialog: Option<Dialog>,
    /// Background work under way.
    pub work: Option<Work>,
    /// The copied key and when to clear it.
    pub clipboard_clear: Option<(Instant, Zeroizing<String>)>,
    /// Set when the wizard should end.
    pub quit: bool,
    /// What the import that started the running rotation said, to stay in
    /// front of what its first run finds.
    pub import_lead: Option<&'static str>,
    /// Ctrl-C ended it (the exit status is then 130).
    pub interrupted: bool,
    /// The next draw repaints the whole screen (Ctrl-L).
    pub repaint: bool,
    /// How far the step detail is scrolled, in lines.
    pub detail_scroll: u16,
    /// How far the step detail can scroll and its page, as last drawn (the
    /// view knows the width the text wraps to).
    pub detail_view: std::cell::Cell<(u16, u16)>,
    /// The system edge: the real system, or fakes in tests.
    pub edge: Edge,
    options: Options,
    clipboard: Box<dyn Clipboard>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("home", &self.home).field("tab", &self.tab).finish_non_exhaustive()
    }
}

/// Pushes the key to one machine and checks its step off from the report.
fn push_machine(home: Home, name: &str, edge: &Edge) -> Result<Rotation, String> {
    let store = Store::open(home.clone()).map_err(|e| e.to_string())?;
    let rotation = persist::open_rotation(&home.dir).map_err(|e| e.to_string())?.ok_or("no rotation is open")?;
    let machine = store.config().machines.iter().find(|m| m.name == name).ok_or("not in the roster")?.clone();
    let key = (rotation.variant != crate::rotation::Variant::Reset).then(|| store.active_key(rotation.kind));
    let change = crate::rotation::machines::checked_push(
        &machine,
        rotation.kind,
        key.as_ref(),
        rotation.new_fingerprint,
        &*edge.remote,
        edge.machine_timeout,
    );
    let step = rotation.machine_step(name).ok_or("no step for this machine in the rotation")?.id.clone();
    persist::commit(&home.dir, None, Event::step(&step, change)).map_err(|e| e.to_string())
}

/// Pasted text as one line of a dialog: its lines joined by spaces.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The control after (or before) `current` among `enabled`, round the end.
fn cycle<T: Copy + PartialEq>(enabled: &[T], current: T, forward: bool) -> T {
    let n = enabled.len();
    let Some(at) = enabled.iter().position(|c| *c == current) else {
        return enabled.first().copied().unwrap_or(current);
    };
    enabled[if forward { (at + 1) % n } else { (at + n - 1) % n }]
}

fn pane_index(kind: KeyKind) -> usize {
    match kind {
        KeyKind::Encryption => 0,
        KeyKind::Communication => 1,
    }
}

impl App {
    /// The wizard on `home`; opens on the rotation if one is open.
    pub fn new(home: Home, clipboard: Box<dyn Clipboard>, options: Options) -> App {
        let pane =
            |kind| KeyPane { kind, focus: KeyControl::Generate, field: LineEdit::new(KEY_FIELD_MAX), status: None };
        let mut app = App {
            home,
            tab: Tab::Encryption,
            panes: [pane(KeyKind::Encryption), pane(KeyKind::Communication)],
            rotation: None,
            rotation_focus: RotationControl::Steps,
            selected: 0,
            machines: Vec::new(),
            fleet: None,
            machines_focus: MachinesControl::List,
            machine_selected: 0,
            status: String::new(),
            store_error: None,
            dialog: None,
            work: None,
            clipboard_clear: None,
            quit: false,
            import_lead: None,
            interrupted: false,
            repaint: false,
            detail_scroll: 0,
            detail_view: std::cell::Cell::new((0, 1)),
            edge: Edge::system(options.wait, fleet::JOIN_TIMEOUT),
            options,
            clipboard,
        };
        app.reload();
        if app.rotation.as_ref().is_some_and(Rotation::is_open) {
            app.tab = Tab::Rotation;
            app.status = "A rotation is open: it continues where it stopped.".into();
        }
        app
    }

    /// Reads the store and the rotation again.
    pub fn reload(&mut self) {
        match Store::open(self.home.clone()) {
            Ok(store) => {
                self.store_error = None;
                for pane in &mut self.panes {
                    pane.status = Some(store.status(pane.kind));
                }
                self.machines = store
                    .config()
                    .machines
                    .iter()
                    .map(|m| {
                        (
                            m.name.clone(),
                            m.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect::<Vec<_>>().join(", "),
                        )
                    })
                    .collect();
                match persist::load(&self.home.dir) {
                    Ok(rotation) => self.rotation = rotation,
                    Err(e) => self.store_error = Some(e.to_string()),
                }
            }
            Err(e) => self.store_error = Some(e.to_string()),
        }
        if let Some(current) = self.rotation.as_ref().and_then(|r| r.steps.iter().position(|s| !s.state.is_closed())) {
            if self.selected != current {
                self.detail_scroll = 0;
            }
            self.selected = current;
        }
    }

    fn store(&self) -> Result<Store, String> {
        Store::open(self.home.clone()).map_err(|e| e.to_string())
    }

    /// The key tab on screen, if it is one.
    pub fn pane(&self) -> Option<&KeyPane> {
        self.tab.kind().map(|k| &self.panes[pane_index(k)])
    }

    fn pane_mut(&mut self) -> Option<&mut KeyPane> {
        self.tab.kind().map(|k| &mut self.panes[pane_index(k)])
    }

    /// Whether a text field has the keyboard (so letters are text).
    pub fn typing(&self) -> bool {
        self.hint().typing()
    }

    /// Which keys apply now, and what the key-hint line speaks of.
    pub fn hint(&self) -> Hint {
        match &self.dialog {
            Some(Dialog::Help | Dialog::Show { .. }) => Hint::Closes,
            Some(Dialog::Confirm { .. }) => Hint::Choice,
            Some(Dialog::Input { .. }) => Hint::Text,
            Some(Dialog::Credential { .. }) => Hint::Form,
            None if self.pane().is_some_and(|p| p.focus == KeyControl::Field) => Hint::Field,
            None if self.tab == Tab::Rotation && self.store_error.is_none() && self.rotation.is_some() => {
                Hint::Rotation
            }
            None => Hint::Tabs,
        }
    }

    /// Whether a dialog that any key closes is open.
    pub fn closes_on_any_key(&self) -> bool {
        matches!(self.dialog, Some(Dialog::Help | Dialog::Show { .. }))
    }

    /// Moves the focus off controls that cannot be used any more.
    fn fix_focus(&mut self) {
        for i in 0..self.panes.len() {
            let pane = &self.panes[i];
            if !self.enabled(pane, pane.focus) {
                let next =
                    if self.enabled(pane, KeyControl::Import) { KeyControl::Import } else { KeyControl::Generate };
                self.panes[i].focus = next;
            }
        }
        if !self.rotation_enabled(self.rotation_focus) {
            self.rotation_focus =
                if self.rotation_enabled(RotationControl::Run) { RotationControl::Run } else { RotationControl::Steps };
        }
        if !self.machines_enabled(self.machines_focus) {
            self.machines_focus = if self.machines_enabled(MachinesControl::Refresh) {
                MachinesControl::Refresh
            } else {
                MachinesControl::List
            };
        }
    }

    /// Whether a key tab's control can be used now.
    pub fn enabled(&self, pane: &KeyPane, control: KeyControl) -> bool {
        let custom = pane.status.as_ref().is_some_and(|s| s.custom);
        let busy = self.work.is_some() || self.rotation.as_ref().is_some_and(Rotation::is_open);
        match control {
            KeyControl::Copy | KeyControl::Show => custom,
            KeyControl::Reset => pane.kind == KeyKind::Communication && custom && !busy,
            KeyControl::Generate | KeyControl::Field => true,
            KeyControl::Import => !pane.field.text().trim().is_empty() && !busy,
        }
    }

    fn controls(&self, pane: &KeyPane) -> Vec<KeyControl> {
        KeyControl::ORDER
            .into_iter()
            .filter(|c| *c != KeyControl::Reset || pane.kind == KeyKind::Communication)
            .filter(|c| self.enabled(pane, *c))
            .collect()
    }

    /// Whether a Rotation tab control can be used now.
    pub fn rotation_enabled(&self, control: RotationControl) -> bool {
        let Some(rotation) = self.rotation.as_ref().filter(|r| r.is_open()) else {
            let closed = self.rotation.is_some();
            return match control {
                RotationControl::Steps => closed,
                RotationControl::Rollback => closed && self.work.is_none(),
                _ => false,
            };
        };
        let current = rotation.current();
        let idle = self.work.is_none();
        match control {
            RotationControl::Steps => true,
            RotationControl::Run => idle,
            RotationControl::Confirm => idle && current.is_some_and(|s| s.confirmable),
            RotationControl::Skip => idle && current.is_some_and(|s| s.action != StepAction::Import),
            RotationControl::Enter => {
                idle && current.is_some_and(|s| matches!(s.kind, StepKind::Credential | StepKind::PerMachine))
            }
            RotationControl::Abort => idle,
            RotationControl::Rollback => false,
        }
    }

    /// The label of the Rotation tab's contextual control.
    pub fn enter_label(&self) -> &'static str {
        match self.rotation.as_ref().and_then(Rotation::current).map(|s| s.kind) {
            Some(StepKind::PerMachine) => "Type fingerprint",
            _ => "Enter credential",
        }
    }

    /// When the wizard must wake without input: a shown key to hide, a
    /// clipboard to clear, work to watch. `None`: wait for input only.
    pub fn next_wake(&self, now: Instant) -> Option<Duration> {
        let mut wake: Vec<Duration> = Vec::new();
        if let Some(Dialog::Show { until, .. }) = &self.dialog {
            wake.push(until.saturating_duration_since(now));
        }
        if let Some((at, _)) = &self.clipboard_clear {
            wake.push(at.saturating_duration_since(now));
        }
        if self.work.is_some() {
            wake.push(Duration::from_millis(100));
        }
        wake.into_iter().min()
    }

    /// Time passed: hide a shown key, clear the clipboard, collect work
    /// messages. Returns whether anything changed on screen.
    pub fn tick(&mut self, now: Instant) -> bool {
        let mut changed = false;
        if let Some(Dialog::Show { until, .. }) = &self.dialog
            && now >= *until
        {
            self.dialog = None;
            self.status = "The key is hidden again.".into();
            changed = true;
        }
        if self.clipboard_clear.as_ref().is_some_and(|(at, _)| now >= *at)
            && let Some((_, text)) = self.clipboard_clear.take()
        {
            if let Some(message) = self.clipboard.clear_if_holds(&text).message() {
                self.status = message;
            }
            changed = true;
        }
        changed | self.collect_work()
    }

    fn collect_work(&mut self) -> bool {
        let Some(work) = &mut self.work else { return false };
        let mut changed = false;
        let mut done = None;
        while let Ok(message) = work.receiver.try_recv() {
            changed = true;
            match message {
                WorkMessage::Progress(p) => work.progress = p,
                WorkMessage::Done(result) => done = Some(*result),
            }
        }
        match done {
            Some(WorkResult::Rotation(result)) => {
                self.work = None;
                self.finish_run(result);
                self.fix_focus();
            }
            Some(WorkResult::Fleet(fleet)) => {
                self.work = None;
                let lines: Vec<String> = fleet
                    .convergence
                    .iter()
                    .map(|(k, c)| format!("{k} {}/{} on {}", c.on, c.of, c.fingerprint))
                    .collect();
                self.status = format!("Fleet refreshed: {}.", lines.join("; "));
                self.fleet = Some(fleet);
            }
            None => {}
        }
        changed
    }

    /// Clears what keyturn copied, on the way out; returns what to tell
    /// the operator about it.
    pub fn shutdown(&mut self) -> Option<String> {
        let (_, text) = self.clipboard_clear.take()?;
        self.clipboard.clear_if_holds(&text).message()
    }

    /// A key from the terminal, as the event loop hands it on: mapped to an
    /// action, and any key at all closes the Show and Help dialogs. Returns
    /// whether anything happened.
    pub fn key(&mut self, key: KeyEvent) -> bool {
        match keymap::map(key, self.hint()) {
            Some(action) => {
                self.update(action);
                true
            }
            None => false,
        }
    }

    /// Applies an action.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::Quit => self.quit = true,
            Action::Interrupt => {
                self.quit = true;
                self.interrupted = true;
            }
            Action::Repaint => self.repaint = true,
            _ => {
                self.apply(action);
                self.fix_focus();
            }
        }
    }

    /// Where an open rotation stands, for the operator leaving the wizard:
    /// the step it waits on and how to go on. `None` when none is open.
    pub fn open_rotation_summary(&self) -> Option<String> {
        let rotation = self.rotation.as_ref().filter(|r| r.is_open())?;
        let closed = rotation.steps.iter().filter(|s| s.state.is_closed()).count();
        let at = match rotation.current() {
            Some(step) => format!("it waits on step {} ({})", step.id, step.title),
            None => "every step is closed".to_string(),
        };
        Some(format!(
            "The {} key rotation is still open: {closed} of {} steps done, {at}. Resume it with `keyturn` (it reopens on the rotation) or `keyturn rotation status` and `keyturn rotation run`.",
            rotation.kind,
            rotation.steps.len()
        ))
    }

    fn apply(&mut self, action: Action) {
        if self.dialog.is_some() {
            self.update_dialog(action);
            return;
        }
        match action {
            Action::Help => self.dialog = Some(Dialog::Help),
            Action::NextTab => self.tab = self.tab.next(),
            Action::PrevTab => self.tab = self.tab.prev(),
            Action::Tab(n) => self.tab = Tab::ALL[(n - 1).min(3)],
            _ if self.tab.kind().is_some() => self.update_key_tab(action),
            _ if self.tab == Tab::Rotation => self.update_rotation_tab(action),
            _ if self.tab == Tab::Machines => self.update_machines_tab(action),
            _ => {}
        }
    }

    fn move_focus(&mut self, forward: bool) {
        let Some(pane) = self.pane() else { return };
        let controls = self.controls(pane);
        let at = controls.iter().position(|c| *c == pane.focus);
        let next = match (at, forward) {
            (Some(i), true) => controls[(i + 1) % controls.len()],
            (Some(i), false) => controls[(i + controls.len() - 1) % controls.len()],
            (None, _) => KeyControl::Generate,
        };
        if let Some(pane) = self.pane_mut() {
            pane.focus = next;
        }
    }

    fn update_key_tab(&mut self, action: Action) {
        let Some(kind) = self.tab.kind() else { return };
        if let Some(pane) = self.pane_mut()
            && pane.focus == KeyControl::Field
            && pane.field.edit(&action)
        {
            return;
        }
        match action {
            Action::FocusNext | Action::Down => self.move_focus(true),
            Action::FocusPrev | Action::Up => self.move_focus(false),
            Action::Paste(text) => {
                let text = Zeroizing::new(text);
                if let Some(pane) = self.pane_mut() {
                    // A console wraps long lines (padding spaces, then the
                    // break): the same normalisation as the CLI's, so the
                    // field holds the key as one line; the parser checks the
                    // rest. Control characters never reach the field.
                    pane.field.set(&crate::keys::unwrapped(&text));
                    pane.focus = KeyControl::Field;
                }
                self.status = "Key pasted. Press Import (Tab, Enter) when ready.".into();
            }
            Action::Back => {
                if let Some(pane) = self.pane_mut()
                    && pane.focus == KeyControl::Field
                {
                    pane.focus = KeyControl::Generate;
                }
            }
            Action::Activate | Action::Toggle => {
                let Some(pane) = self.pane() else { return };
                let focus = pane.focus;
                if !self.enabled(pane, focus) {
                    return;
                }
                match focus {
                    KeyControl::Copy => self.copy(kind),
                    KeyControl::Show => self.show(kind),
                    KeyControl::Reset => self.confirm(kind, None),
                    KeyControl::Generate => self.generate(kind),
                    KeyControl::Field if action == Action::Activate => self.import(kind),
                    KeyControl::Field => {
                        if let Some(pane) = self.pane_mut() {
                            pane.field.insert(" ");
                        }
                    }
                    KeyControl::Import => self.import(kind),
                }
            }
            _ => {}
        }
    }

    fn custom_key(&mut self, kind: KeyKind) -> Option<Key> {
        match self.store() {
            Ok(store) => {
                let key = store.active_key(kind);
                (!key.is_default()).then_some(key)
            }
            Err(e) => {
                self.status = e;
                None
            }
        }
    }

    fn copy(&mut self, kind: KeyKind) {
        let Some(key) = self.custom_key(kind) else { return };
        let text = key.to_text();
        self.status = match self.clipboard.copy(&text) {
            Ok(Copied::System) => {
                format!("Key copied to the clipboard; it is cleared in {CLIPBOARD_SECONDS} s and on exit.")
            }
            Ok(Copied::Terminal) => {
                "Key sent to your terminal (OSC 52, unconfirmed); keyturn cannot clear it there. Nothing came? Use Show."
                    .into()
            }
            Ok(Copied::Tmux) => format!(
                "Key sent to tmux (OSC 52; needs set-clipboard on); deleted from tmux in {CLIPBOARD_SECONDS} s. Nothing came? Use Show."
            ),
            Err(e) => format!("No clipboard here ({e}): use Show and select the line."),
        };
        self.clipboard_clear = Some((Instant::now() + Duration::from_secs(CLIPBOARD_SECONDS), text));
    }

    fn show(&mut self, kind: KeyKind) {
        let Some(key) = self.custom_key(kind) else { return };
        self.dialog =
            Some(Dialog::Show { kind, text: key.to_text(), until: Instant::now() + Duration::from_secs(SHOW_SECONDS) });
        self.status = "Key shown.".into();
    }

    fn generate(&mut self, kind: KeyKind) {
        match Key::generate(kind) {
            Ok(key) => {
                if let Some(pane) = self.pane_mut() {
                    pane.field.set(&key.to_text());
                    pane.focus = KeyControl::Import;
                }
                self.status = if self.rotation.as_ref().is_some_and(Rotation::is_open) {
                    "Key generated successfully. A rotation is open: finish it before importing.".into()
                } else {
                    "Key generated successfully. Ready to import.".into()
                };
            }
            Err(e) => self.status = e.to_string(),
        }
    }

    fn import(&mut self, kind: KeyKind) {
        let Some(pane) = self.pane() else { return };
        match Key::parse(kind, pane.field.text()) {
            Ok(key) => self.confirm(kind, Some(key)),
            Err(e) => self.status = format!("Not imported: {e}."),
        }
    }

    /// Opens the import (or reset) confirmation: what will happen here.
    fn confirm(&mut self, kind: KeyKind, key: Option<Key>) {
        let store = match self.store() {
            Ok(store) => store,
            Err(e) => {
                self.status = e;
                return;
            }
        };
        if let Some(r) = persist::open_rotation(&self.home.dir).ok().flatten() {
            self.status = format!("The {} key rotation is open: finish or abort it on the Rotation tab first.", r.kind);
            return;
        }
        let facts = runner::facts(&store);
        let mut lines = Vec::new();
        match &key {
            Some(key) if store.active_key(kind) == *key => {
                lines.push(format!(
                    "This {kind} key ({}) is already active; importing changes nothing.",
                    key.fingerprint()
                ));
            }
            Some(key) => lines.push(format!(
                "The {kind} key becomes {} (now {}).",
                key.fingerprint(),
                store.active_key(kind).fingerprint()
            )),
            None => lines
                .push("The communication key goes back to the built-in default, which anyone with keyturn has.".into()),
        }
        if kind == KeyKind::Encryption {
            lines.push(format!(
                "Re-encrypted: credentials ({}) and the tokens of the projects ({}); the old key is kept to read older data.",
                facts.credentials.len(),
                facts.projects.len()
            ));
        }
        let restarts: Vec<String> = runner::plan(&store, kind, Setup::Single, key.is_none())
            .map(|(_, steps)| {
                steps
                    .iter()
                    .filter(|s| s.kind == StepKind::Restart && !s.state.is_closed())
                    .map(|s| s.title.trim_start_matches("Restart the ").to_string())
                    .collect()
            })
            .unwrap_or_default();
        lines.push(if restarts.is_empty() {
            "No component is configured to restart here.".into()
        } else {
            format!("Then restarted, and checked to run with the new key: {}.", restarts.join(", "))
        });
        lines.push(if key.is_some() {
            "Every other machine must import the same key.".into()
        } else {
            "Every other machine must reset its communication key too.".into()
        });
        if store.config().machines.is_empty() {
            lines.push("Multiple machines needs [[machines]] in keyturn.toml (keyturn machines add).".into());
        }
        self.dialog = Some(Dialog::Confirm { kind, key, multi: false, lines });
    }

    fn update_dialog(&mut self, action: Action) {
        let Some(dialog) = self.dialog.take() else { return };
        self.dialog = match dialog {
            Dialog::Help => None,
            // Any key hides a shown key.
            Dialog::Show { .. } => {
                self.status = "The key is hidden again.".into();
                None
            }
            Dialog::Confirm { kind, key, multi, lines } => match action {
                Action::Back => {
                    self.status = "Nothing was imported.".into();
                    None
                }
                // Side by side: Left is Single machine, Right Multiple.
                Action::Left => Some(Dialog::Confirm { kind, key, multi: false, lines }),
                Action::Right => Some(Dialog::Confirm { kind, key, multi: true, lines }),
                Action::Toggle | Action::Up | Action::Down | Action::FocusNext | Action::FocusPrev => {
                    Some(Dialog::Confirm { kind, key, multi: !multi, lines })
                }
                Action::Activate => {
                    self.start_rotation(kind, key, if multi { Setup::Multi } else { Setup::Single });
                    self.dialog.take()
                }
                _ => Some(Dialog::Confirm { kind, key, multi, lines }),
            },
            Dialog::Input { purpose, mut value, error } => match action {
                Action::Back => None,
                Action::Paste(text) => {
                    value.insert(&one_line(&text));
                    Some(Dialog::Input { purpose, value, error })
                }
                // Enter: the dialog closes only when its text was taken;
                // what was wrong stays in it, in the wizard's words, with
                // the text as typed.
                Action::Activate => match self.submit_input(&purpose, value.text()) {
                    Ok(()) => self.dialog.take(),
                    Err(e) => Some(Dialog::Input { purpose, value, error: Some(e) }),
                },
                ref other => {
                    let edited = value.edit(other);
                    Some(Dialog::Input { purpose, value, error: if edited { None } else { error } })
                }
            },
            Dialog::Credential { name, mut user, mut secret, on_secret, error } => match action {
                Action::Back => None,
                Action::FocusNext | Action::FocusPrev | Action::Up | Action::Down => {
                    Some(Dialog::Credential { name, user, secret, on_secret: !on_secret, error })
                }
                Action::Paste(text) => {
                    let text = Zeroizing::new(text);
                    let line = Zeroizing::new(text.lines().next().unwrap_or_default().to_string());
                    if on_secret {
                        secret.insert(&line)
                    } else {
                        user.insert(&line)
                    }
                    Some(Dialog::Credential { name, user, secret, on_secret, error })
                }
                Action::Activate if !on_secret => {
                    Some(Dialog::Credential { name, user, secret, on_secret: true, error })
                }
                Action::Activate => match self.store_credential(name, user.text(), secret.text()) {
                    Ok(()) => self.dialog.take(),
                    Err(e) => {
                        let on_secret = !user.text().trim().is_empty();
                        Some(Dialog::Credential { name, user, secret, on_secret, error: Some(e) })
                    }
                },
                ref other => {
                    let edited = if on_secret { secret.edit(other) } else { user.edit(other) };
                    let error = if edited { None } else { error };
                    Some(Dialog::Credential { name, user, secret, on_secret, error })
                }
            },
        };
    }

    fn start_rotation(&mut self, kind: KeyKind, key: Option<Key>, setup: Setup) {
        let result = self
            .store()
            .and_then(|mut store| runner::start(&mut store, kind, setup, key, &self.edge).map_err(|e| e.to_string()));
        match result {
            Ok(rotation) => {
                self.rotation = Some(rotation);
                if let Some(pane) = self.pane_mut() {
                    pane.field.clear();
                    pane.focus = KeyControl::Generate;
                }
                self.reload();
                self.tab = Tab::Rotation;
                self.rotation_focus = RotationControl::Run;
                let lead = if kind == KeyKind::Communication && self.panes[1].status.as_ref().is_some_and(|s| !s.custom)
                {
                    "Key reset to the default."
                } else {
                    "Key imported successfully."
                };
                self.status = format!("{lead} The rotation continues: Run checks the next steps.");
                self.import_lead = Some(lead);
                self.run_rotation();
            }
            Err(e) => self.status = format!("Not imported: {e}"),
        }
    }

    /// Starts a rollback of the closed rotation's key: the previous key
    /// becomes active again through the same checklist, which then runs.
    fn rollback_rotation(&mut self) {
        let Some((kind, setup)) = self.rotation.as_ref().filter(|r| !r.is_open()).map(|r| (r.kind, r.setup)) else {
            return;
        };
        let result = self.store().and_then(|mut store| {
            runner::start_rollback(&mut store, kind, setup, &self.edge).map_err(|e| e.to_string())
        });
        match result {
            Ok(rotation) => {
                self.status = format!(
                    "Rolled back: {} is active again ({} stays kept). The rotation continues: Run checks the next steps.",
                    rotation.new_fingerprint, rotation.old_fingerprint
                );
                self.rotation = Some(rotation);
                self.selected = 0;
                self.reload();
                self.rotation_focus = RotationControl::Run;
                self.run_rotation();
            }
            Err(e) => self.status = format!("Not rolled back: {e}"),
        }
    }

    /// Runs the rotation's steps until one needs a person: on a thread,
    /// watched through the channel, so the wizard stays responsive.
    pub fn run_rotation(&mut self) {
        let home = self.home.clone();
        let edge = self.edge.clone();
        self.spawn_work("Running the rotation", move |report| {
            let result = Store::open(home).map_err(|e| e.to_string()).and_then(|mut store| {
                runner::run(&mut store, None, &edge, &mut |p| report(WorkMessage::Progress(p.to_string())))
                    .map_err(|e| e.to_string())
            });
            WorkResult::Rotation(result)
        });
    }

    /// Asks every roster machine for its status, in the background.
    pub fn refresh_fleet(&mut self) {
        let home = self.home.clone();
        let edge = self.edge.clone();
        self.spawn_work("Asking the machines", move |report| {
            let total = Store::open(home.clone()).map(|s| s.config().machines.len()).unwrap_or(0);
            let done = std::sync::atomic::AtomicUsize::new(0);
            let progress = std::sync::Mutex::new(report);
            match Store::open(home) {
                Ok(store) => WorkResult::Fleet(fleet::fleet_status(
                    &store,
                    &*edge.remote,
                    fleet::DEFAULT_PARALLEL,
                    fleet::STATUS_TIMEOUT,
                    &|m| {
                        let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        if let Ok(mut report) = progress.lock() {
                            report(WorkMessage::Progress(format!("{n}/{total}: {}", m.name)));
                        }
                    },
                )),
                Err(e) => WorkResult::Rotation(Err(e.to_string())),
            }
        });
    }

    /// Pushes the key to the selected machine only (its rotation step).
    fn push_one(&mut self) {
        let Some((name, _)) = self.machines.get(self.machine_selected).cloned() else { return };
        let home = self.home.clone();
        let edge = self.edge.clone();
        self.spawn_work("Pushing the key", move |report| {
            report(WorkMessage::Progress(format!("to {name}")));
            WorkResult::Rotation(push_machine(home, &name, &edge))
        });
    }

    fn spawn_work(
        &mut self,
        label: &str,
        job: impl FnOnce(&mut (dyn FnMut(WorkMessage) + Send)) -> WorkResult + Send + 'static,
    ) {
        if self.work.is_some() {
            return;
        }
        let (sender, receiver) = channel();
        self.work = Some(Work { label: label.into(), progress: String::new(), receiver });
        let run = move || {
            let report_to = sender.clone();
            let result = job(&mut move |m| drop(report_to.send(m)));
            let _ = sender.send(WorkMessage::Done(Box::new(result)));
        };
        if self.options.background {
            std::thread::spawn(run);
        } else {
            run();
            self.collect_work();
        }
    }

    /// Whether a Machines tab control can be used now.
    pub fn machines_enabled(&self, control: MachinesControl) -> bool {
        let idle = self.work.is_none();
        let machine_step_open = self.rotation.as_ref().filter(|r| r.is_open()).is_some_and(|r| {
            r.steps.iter().any(|s| s.kind == StepKind::PerMachine && !s.state.is_closed())
                && r.current().is_some_and(|c| c.kind == StepKind::PerMachine)
        });
        match control {
            MachinesControl::List => !self.machines.is_empty(),
            MachinesControl::Refresh => idle && !self.machines.is_empty(),
            MachinesControl::PushOne | MachinesControl::PushAll => idle && machine_step_open,
        }
    }

    fn update_machines_tab(&mut self, action: Action) {
        match action {
            Action::FocusNext | Action::FocusPrev => {
                let enabled: Vec<MachinesControl> =
                    MachinesControl::ORDER.into_iter().filter(|c| self.machines_enabled(*c)).collect();
                self.machines_focus = cycle(&enabled, self.machines_focus, action == Action::FocusNext);
            }
            Action::Up if self.machine_selected > 0 => self.machine_selected -= 1,
            Action::Down if self.machine_selected + 1 < self.machines.len() => self.machine_selected += 1,
            Action::Activate | Action::Toggle if self.machines_enabled(self.machines_focus) => {
                match self.machines_focus {
                    MachinesControl::List => {}
                    MachinesControl::Refresh => self.refresh_fleet(),
                    MachinesControl::PushOne => self.push_one(),
                    MachinesControl::PushAll => self.run_rotation(),
                }
            }
            _ => {}
        }
    }

    fn finish_run(&mut self, result: Result<Rotation, String>) {
        // The import's own message stays in front of what its run found.
        let lead = self.import_lead.take().map(|m| format!("{m} ")).unwrap_or_default();
        match result {
            Ok(rotation) => {
                self.status = lead
                    + &match rotation.current() {
                        None => "The rotation is finished: every step is done or skipped.".into(),
                        Some(step) => format!("Step {} needs you: {} (see its detail).", step.id, step.title),
                    };
                self.rotation = Some(rotation);
            }
            Err(e) => self.status = format!("The rotation stopped: {e}"),
        }
        self.reload();
    }

    fn update_rotation_tab(&mut self, action: Action) {
        let steps = self.rotation.as_ref().map_or(0, |r| r.steps.len());
        match action {
            Action::FocusNext | Action::FocusPrev => {
                let enabled: Vec<RotationControl> =
                    RotationControl::ORDER.into_iter().filter(|c| self.rotation_enabled(*c)).collect();
                self.rotation_focus = cycle(&enabled, self.rotation_focus, action == Action::FocusNext);
            }
            Action::Up if self.selected > 0 => {
                self.selected -= 1;
                self.detail_scroll = 0;
            }
            Action::Down if self.selected + 1 < steps => {
                self.selected += 1;
                self.detail_scroll = 0;
            }
            Action::ScrollDown | Action::ScrollUp => {
                let (max, page) = self.detail_view.get();
                let step = page.saturating_sub(1).max(1);
                self.detail_scroll = if action == Action::ScrollDown {
                    self.detail_scroll.saturating_add(step).min(max)
                } else {
                    self.detail_scroll.min(max).saturating_sub(step)
                };
            }
            Action::Activate | Action::Toggle if self.rotation_enabled(self.rotation_focus) => {
                match self.rotation_focus {
                    RotationControl::Steps => {}
                    RotationControl::Run => self.run_rotation(),
                    RotationControl::Confirm => self.commit_current(Change::Confirm),
                    RotationControl::Skip => {
                        if let Some(step) = self.current_step_id() {
                            self.dialog = Some(Dialog::Input {
                                purpose: InputPurpose::SkipReason { step },
                                value: LineEdit::new(LINE_MAX),
                                error: None,
                            });
                        }
                    }
                    RotationControl::Enter => self.enter_for_current(),
                    RotationControl::Abort => {
                        self.dialog = Some(Dialog::Input {
                            purpose: InputPurpose::AbortReason,
                            value: LineEdit::new(LINE_MAX),
                            error: None,
                        });
                    }
                    RotationControl::Rollback => self.rollback_rotation(),
                }
            }
            _ => {}
        }
    }

    fn current_step_id(&self) -> Option<String> {
        self.rotation.as_ref().and_then(Rotation::current).map(|s| s.id.clone())
    }

    fn enter_for_current(&mut self) {
        let Some(step) = self.rotation.as_ref().and_then(Rotation::current).cloned() else { return };
        self.dialog = match step.action {
            StepAction::Credential(name) => Some(Dialog::Credential {
                name,
                user: LineEdit::new(LINE_MAX),
                secret: LineEdit::new(LINE_MAX),
                on_secret: false,
                error: None,
            }),
            StepAction::Machine(_) => Some(Dialog::Input {
                purpose: InputPurpose::Fingerprint { step: step.id },
                value: LineEdit::new(LINE_MAX),
                error: None,
            }),
            _ => None,
        };
    }

    fn commit_current(&mut self, change: Change) {
        let Some(step) = self.current_step_id() else { return };
        if let Err(e) = self.commit(Event::step(&step, change)) {
            self.status = e;
        }
    }

    /// Records `event` on the rotation; `Err` is why it was refused (the
    /// screen then shows the rotation as it now stands).
    fn commit(&mut self, event: Event) -> Result<(), String> {
        let expected = self.rotation.as_ref().map(|r| r.revision);
        let result = persist::commit(&self.home.dir, expected, event);
        self.reload();
        let rotation = result.map_err(|e| e.to_string())?;
        self.status = match rotation.current() {
            None if rotation.is_open() => String::new(),
            None => "The rotation is finished: every step is done or skipped.".into(),
            Some(step) => format!("Next: {}. Run checks it.", step.title),
        };
        self.rotation = Some(rotation);
        Ok(())
    }

    /// Takes a dialog's text: `Err` says, in the wizard's words, what is
    /// wrong with it (the dialog then stays open with the text).
    fn submit_input(&mut self, purpose: &InputPurpose, value: &str) -> Result<(), String> {
        let value = value.trim();
        match purpose {
            InputPurpose::SkipReason { step } => {
                if value.is_empty() {
                    return Err("Type why the step is skipped: the reason goes in the audit log.".into());
                }
                self.commit(Event::step(step, Change::Skip(value.to_string())))
            }
            InputPurpose::Fingerprint { step } => {
                if value.is_empty() {
                    return Err("Type the fingerprint that machine shows, like 7F3A-91C0-55D2-0B8E.".into());
                }
                let fp = value.parse().map_err(|e| format!("That is not a fingerprint: {e}"))?;
                self.commit(Event::step(step, Change::VerifyMachine(fp)))
            }
            InputPurpose::AbortReason => {
                if value.is_empty() {
                    return Err("Type why the rotation is aborted: the reason goes in the audit log.".into());
                }
                self.commit(Event::Abort { reason: value.to_string() })?;
                if self.rotation.as_ref().is_some_and(|r| !r.is_open()) {
                    self.status = "The rotation is aborted and recorded; the key was not rolled back.".into();
                }
                Ok(())
            }
        }
    }

    fn store_credential(&mut self, name: CredentialName, user: &str, secret: &str) -> Result<(), String> {
        if user.trim().is_empty() || secret.is_empty() {
            return Err("Type both the user name and the secret; Tab moves between them.".into());
        }
        let result = self.store().and_then(|mut store| {
            store.set_credential(name, user.trim(), secret.as_bytes()).map_err(|e| e.to_string())
        });
        match result {
            Ok(()) => {
                self.status = format!("The {name} credential is stored under the new key; Run checks it.");
                self.reload();
                Ok(())
            }
            Err(e) => Err(format!("Not stored: {e}")),
        }
    }
}
