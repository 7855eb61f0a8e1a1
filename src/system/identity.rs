//! Who and where keyturn runs, for audit lines and lock notes.

/// The operator's user name.
pub fn operator() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .into_iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(fallback_user)
}

/// The account's name from the password database (`/etc/passwd`) when no
/// variable names it (a service, `sudo -i`, a cron job); `uid N` only for an
/// account it does not list.
#[cfg(unix)]
fn fallback_user() -> String {
    let uid = rustix::process::geteuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| user_of(&passwd, uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The name of `uid` in a passwd file's text.
#[cfg(unix)]
fn user_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let found: u32 = fields.nth(1)?.parse().ok()?;
        (found == uid && !name.is_empty()).then(|| name.to_string())
    })
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn a_uid_is_named_from_the_password_database() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nqa:x:1000:1000::/home/qa:/bin/sh\n";
        assert_eq!(super::user_of(passwd, 0).as_deref(), Some("root"));
        assert_eq!(super::user_of(passwd, 1000).as_deref(), Some("qa"));
        assert_eq!(super::user_of(passwd, 7), None);
    }
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
