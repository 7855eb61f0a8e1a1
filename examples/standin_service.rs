//! A stand-in Windows service for testing keyturn's Service Control Manager
//! edge under Wine (scripts/windows-test.sh): it reports Running until it is
//! told to stop. Not part of keyturn; on other systems it only says so.
//!
//! Register it with `sc create NAME binPath= PATH\standin_service.exe`.

#[cfg(windows)]
mod service {
    use std::ffi::OsString;
    use std::sync::mpsc;
    use std::time::Duration;

    use windows_service::service::{
        ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::{define_windows_service, service_dispatcher};

    define_windows_service!(ffi_service_main, service_main);

    fn status(state: ServiceState) -> ServiceStatus {
        ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: if state == ServiceState::Running {
                ServiceControlAccept::STOP
            } else {
                ServiceControlAccept::empty()
            },
            exit_code: ServiceExitCode::Win32(0),
            checkpoint: 0,
            wait_hint: Duration::default(),
            process_id: None,
        }
    }

    fn service_main(arguments: Vec<OsString>) {
        if let Err(e) = run(arguments) {
            eprintln!("standin_service: {e}");
        }
    }

    fn run(arguments: Vec<OsString>) -> windows_service::Result<()> {
        let name = arguments.first().cloned().unwrap_or_else(|| OsString::from("standin"));
        let (stop_tx, stop_rx) = mpsc::channel();
        let handler = move |control| match control {
            ServiceControl::Stop => {
                let _ = stop_tx.send(());
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        };
        let handle = service_control_handler::register(name, handler)?;
        handle.set_service_status(status(ServiceState::Running))?;
        let _ = stop_rx.recv();
        handle.set_service_status(status(ServiceState::Stopped))
    }

    pub fn main() -> windows_service::Result<()> {
        service_dispatcher::start("standin", ffi_service_main)
    }
}

#[cfg(windows)]
fn main() {
    if let Err(e) = service::main() {
        eprintln!("standin_service: not started by the service manager: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(windows))]
fn main() {
    eprintln!("standin_service is a Windows service; it does nothing here");
    std::process::exit(1);
}
