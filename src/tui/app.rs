//! The wizard's state and how actions change it (the model and `update` of
//! the Elm architecture). Drawing is in `view`; keys become actions in
//! `keymap`; everything the wizard does to the machine goes through the
//! domain (store, rotation) and the system edge passed in.

use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

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
use ratatui::crossterm::event::{KeyEvent, KeyEventKind};

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
    pub field: Zeroizing<String>,
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

/// Appends `chars` to `field` while it stays within `max` bytes.
fn push_capped(field: &mut String, chars: impl Iterator<Item = char>, max: usize) {
    for c in chars {
        if field.len() + c.len_utf8() > max {
            break;
        }
        field.push(c);
    }
}

/// A dialog over the tabs.
#[derive(Debug)]
pub enum Dialog {
    /// Every key.
    Help,
    /// Import (or reset) confirmation with the setup choice.
    Confirm { kind: KeyKind, key: Option<Key>, multi: bool, lines: Vec<String> },
    /// The key, alone on its line, until `until` or any key.
    Show { kind: KeyKind, text: Zeroizing<String>, until: Instant },
    /// One line of text.
    Input { purpose: InputPurpose, value: String },
    /// A credential: user name and masked secret.
    Credential { name: CredentialName, user: String, secret: Zeroizing<String>, on_secret: bool },
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
    persist::commit(&home.dir, None, Event::step(&format!("machine-{name}"), change)).map_err(|e| e.to_string())
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
            |kind| KeyPane { kind, focus: KeyControl::Generate, field: Zeroizing::new(String::new()), status: None };
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
        match &self.dialog {
            Some(Dialog::Input { .. } | Dialog::Credential { .. }) => true,
            Some(_) => false,
            None => self.pane().is_some_and(|p| p.focus == KeyControl::Field),
        }
    }

    /// What the key-hint line speaks of now.
    pub fn hint(&self) -> Hint {
        match &self.dialog {
            Some(Dialog::Help | Dialog::Show { .. }) => Hint::Closes,
            Some(Dialog::Confirm { .. }) => Hint::Choice,
            Some(Dialog::Input { .. }) => Hint::Text,
            Some(Dialog::Credential { .. }) => Hint::Form,
            None if self.typing() => Hint::Field,
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
            KeyControl::Import => !pane.field.trim().is_empty() && !busy,
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
            self.clipboard.clear_if_holds(&text);
            self.status = "The clipboard was cleared.".into();
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

    /// Clears what keyturn copied, on the way out.
    pub fn shutdown(&mut self) {
        if let Some((_, text)) = self.clipboard_clear.take() {
            self.clipboard.clear_if_holds(&text);
        }
    }

    /// A key from the terminal, as the event loop hands it on: mapped to an
    /// action, and any key at all closes the Show and Help dialogs. Returns
    /// whether anything happened.
    pub fn key(&mut self, key: KeyEvent) -> bool {
        let pressed = key.kind == KeyEventKind::Press;
        let action =
            keymap::map(key, self.typing()).or_else(|| (pressed && self.closes_on_any_key()).then_some(Action::Back));
        match action {
            Some(action) => {
                self.update(action);
                true
            }
            None => false,
        }
    }

    /// Applies an action.
    pub fn update(&mut self, action: Action) {
        if action == Action::Quit {
            self.quit = true;
            return;
        }
        self.apply(action);
        self.fix_focus();
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
        match action {
            Action::FocusNext | Action::Down => self.move_focus(true),
            Action::FocusPrev | Action::Up => self.move_focus(false),
            Action::Char(c) => {
                if let Some(pane) = self.pane_mut()
                    && pane.field.len() + c.len_utf8() <= KEY_FIELD_MAX
                {
                    pane.field.push(c);
                }
            }
            Action::Backspace => {
                if let Some(pane) = self.pane_mut() {
                    pane.field.pop();
                }
            }
            Action::Paste(text) => {
                let text = Zeroizing::new(text);
                if let Some(pane) = self.pane_mut() {
                    // A console wraps long lines: keep the paste's text,
                    // drop its line breaks; the parser checks the rest.
                    pane.field.clear();
                    // Control characters (escape sequences) are never kept:
                    // the field is drawn on the terminal.
                    let text = crate::keys::unwrapped(&text);
                    push_capped(&mut pane.field, text.chars().filter(|c| !c.is_control()), KEY_FIELD_MAX);
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
                            pane.field.push(' ');
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
            Ok(Copied::Terminal) => format!(
                "Key sent to your terminal (OSC 52, unconfirmed); cleared in {CLIPBOARD_SECONDS} s. Nothing came? Use Show."
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
                    pane.field = key.to_text();
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
        match Key::parse(kind, &pane.field) {
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
                Action::Toggle | Action::Up | Action::Down | Action::FocusNext | Action::FocusPrev => {
                    Some(Dialog::Confirm { kind, key, multi: !multi, lines })
                }
                Action::Activate => {
                    self.start_rotation(kind, key, if multi { Setup::Multi } else { Setup::Single });
                    self.dialog.take()
                }
                _ => Some(Dialog::Confirm { kind, key, multi, lines }),
            },
            Dialog::Input { purpose, mut value } => match action {
                Action::Back => None,
                Action::Char(c) if value.len() + c.len_utf8() <= LINE_MAX => {
                    value.push(c);
                    Some(Dialog::Input { purpose, value })
                }
                Action::Backspace => {
                    value.pop();
                    Some(Dialog::Input { purpose, value })
                }
                Action::Paste(text) => {
                    push_capped(
                        &mut value,
                        text.lines().next().unwrap_or_default().chars().filter(|c| !c.is_control()),
                        LINE_MAX,
                    );
                    Some(Dialog::Input { purpose, value })
                }
                Action::Activate => {
                    self.submit_input(purpose, value);
                    self.dialog.take()
                }
                _ => Some(Dialog::Input { purpose, value }),
            },
            Dialog::Credential { name, mut user, mut secret, on_secret } => match action {
                Action::Back => None,
                Action::FocusNext | Action::FocusPrev | Action::Up | Action::Down => {
                    Some(Dialog::Credential { name, user, secret, on_secret: !on_secret })
                }
                Action::Char(c) => {
                    if on_secret {
                        push_capped(&mut secret, [c].into_iter(), LINE_MAX)
                    } else {
                        push_capped(&mut user, [c].into_iter(), LINE_MAX)
                    }
                    Some(Dialog::Credential { name, user, secret, on_secret })
                }
                Action::Paste(text) => {
                    let line: String =
                        text.lines().next().unwrap_or_default().chars().filter(|c| !c.is_control()).collect();
                    if on_secret {
                        push_capped(&mut secret, Zeroizing::new(line).chars(), LINE_MAX)
                    } else {
                        push_capped(&mut user, line.chars(), LINE_MAX)
                    }
                    Some(Dialog::Credential { name, user, secret, on_secret })
                }
                Action::Backspace => {
                    if on_secret {
                        secret.pop()
                    } else {
                        user.pop()
                    };
                    Some(Dialog::Credential { name, user, secret, on_secret })
                }
                Action::Activate if !on_secret => Some(Dialog::Credential { name, user, secret, on_secret: true }),
                Action::Activate => {
                    self.store_credential(name, &user, &secret);
                    self.dialog.take()
                }
                _ => Some(Dialog::Credential { name, user, secret, on_secret }),
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
                    pane.field = Zeroizing::new(String::new());
                    pane.focus = KeyControl::Generate;
                }
                self.reload();
                self.tab = Tab::Rotation;
                self.rotation_focus = RotationControl::Run;
                self.status =
                    if kind == KeyKind::Communication && self.panes[1].status.as_ref().is_some_and(|s| !s.custom) {
                        "Key reset to the default. The rotation continues: Run checks the next steps.".into()
                    } else {
                        "Key imported successfully. The rotation continues: Run checks the next steps.".into()
                    };
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
        // The import's own message stays in front of what the run found.
        let lead = ["Key imported successfully.", "Key reset to the default."]
            .into_iter()
            .find(|m| self.status.starts_with(m))
            .map(|m| format!("{m} "))
            .unwrap_or_default();
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
            Action::Up if self.selected > 0 => self.selected -= 1,
            Action::Down if self.selected + 1 < steps => self.selected += 1,
            Action::Activate | Action::Toggle if self.rotation_enabled(self.rotation_focus) => {
                match self.rotation_focus {
                    RotationControl::Steps => {}
                    RotationControl::Run => self.run_rotation(),
                    RotationControl::Confirm => self.commit_current(Change::Confirm),
                    RotationControl::Skip => {
                        if let Some(step) = self.current_step_id() {
                            self.dialog = Some(Dialog::Input {
                                purpose: InputPurpose::SkipReason { step },
                                value: String::new(),
                            });
                        }
                    }
                    RotationControl::Enter => self.enter_for_current(),
                    RotationControl::Abort => {
                        self.dialog = Some(Dialog::Input { purpose: InputPurpose::AbortReason, value: String::new() });
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
                user: String::new(),
                secret: Zeroizing::new(String::new()),
                on_secret: false,
            }),
            StepAction::Machine(_) => {
                Some(Dialog::Input { purpose: InputPurpose::Fingerprint { step: step.id }, value: String::new() })
            }
            _ => None,
        };
    }

    fn commit_current(&mut self, change: Change) {
        let Some(step) = self.current_step_id() else { return };
        self.commit(Event::step(&step, change));
    }

    fn commit(&mut self, event: Event) {
        let expected = self.rotation.as_ref().map(|r| r.revision);
        match persist::commit(&self.home.dir, expected, event) {
            Ok(rotation) => {
                self.status = match rotation.current() {
                    None if rotation.is_open() => String::new(),
                    None => "The rotation is finished: every step is done or skipped.".into(),
                    Some(step) => format!("Next: {}. Run checks it.", step.title),
                };
                self.rotation = Some(rotation);
                self.reload();
            }
            Err(e) => {
                self.status = e.to_string();
                self.reload();
            }
        }
    }

    fn submit_input(&mut self, purpose: InputPurpose, value: String) {
        match purpose {
            InputPurpose::SkipReason { step } => self.commit(Event::step(&step, Change::Skip(value))),
            InputPurpose::Fingerprint { step } => match value.parse() {
                Ok(fp) => self.commit(Event::step(&step, Change::VerifyMachine(fp))),
                Err(e) => self.status = e,
            },
            InputPurpose::AbortReason => {
                self.commit(Event::Abort { reason: value });
                if self.rotation.as_ref().is_some_and(|r| !r.is_open()) {
                    self.status = "The rotation is aborted and recorded; the key was not rolled back.".into();
                }
            }
        }
    }

    fn store_credential(&mut self, name: CredentialName, user: &str, secret: &str) {
        if user.trim().is_empty() || secret.is_empty() {
            self.status = "Not stored: the user name and the secret are both needed.".into();
            return;
        }
        let result = self.store().and_then(|mut store| {
            store.set_credential(name, user.trim(), secret.as_bytes()).map_err(|e| e.to_string())
        });
        match result {
            Ok(()) => {
                self.status = format!("The {name} credential is stored under the new key; Run checks it.");
                self.reload();
            }
            Err(e) => self.status = format!("Not stored: {e}"),
        }
    }
}
