//! Who and where keyturn runs, for audit lines and lock notes.

/// The operator's user name.
pub fn operator() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .into_iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(fallback_user)
}

#[cfg(unix)]
fn fallback_user() -> String {
    format!("uid {}", rustix::process::geteuid().as_raw())
}

#[cfg(not(unix))]
fn fallback_user() -> String {
    "unknown".to_string()
}

/// This machine's name.
pub fn machine() -> String {
    #[cfg(unix)]
    {
        rustix::system::uname().nodename().to_string_lossy().into_owned()
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown".to_string())
    }
}
