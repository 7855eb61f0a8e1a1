//! Windows access control for the store: the owner-only descriptor keyturn
//! sets on its home, every secret file and every temporary before its
//! rename (a protected DACL: the owner, SYSTEM and Administrators, nothing
//! inherited), and the check that refuses a file whose DACL grants others.
//!
//! Descriptors are handled in SDDL, Windows' own text form, so what keyturn
//! builds and what it accepts are plain functions tested on every platform;
//! only the few Win32 calls that apply and read them are Windows-only.

/// SIDs that may hold rights on a store file besides its owner: SYSTEM,
/// Administrators, and "Owner Rights" (which stands for the owner).
const TRUSTED: [&str; 6] = ["SY", "S-1-5-18", "BA", "S-1-5-32-544", "OW", "S-1-3-4"];

/// The owner-only descriptor for an object owned by `owner_sid`: a
/// protected DACL (`P`: nothing inherited from the folder above) granting
/// full control to the owner, SYSTEM and Administrators. A directory's
/// entries are inherited by what is created in it (`OICI`).
pub fn owner_only_sddl(owner_sid: &str, directory: bool) -> String {
    let inherit = if directory { "OICI" } else { "" };
    format!("D:P(A;{inherit};FA;;;{owner_sid})(A;{inherit};FA;;;SY)(A;{inherit};FA;;;BA)")
}

/// What a DACL grants others: in an SDDL text (as Windows writes it, with
/// `O:` for the owner when asked), the SIDs besides the owner, `me`, SYSTEM
/// and Administrators granted any access (`write_only`: any write access),
/// and whether there is no DACL at all (which grants everyone everything).
pub fn granted_to_others(sddl: &str, me: &str, write_only: bool) -> Vec<String> {
    let owner = section(sddl, 'O');
    let Some(dacl) = section(sddl, 'D') else { return vec!["everyone (the file has no access list)".into()] };
    if dacl.starts_with("NO_ACCESS_CONTROL") {
        return vec!["everyone (the file's access list is empty of control)".into()];
    }
    let mut others = Vec::new();
    for ace in dacl.split('(').skip(1).filter_map(|a| a.split(')').next()) {
        let fields: Vec<&str> = ace.split(';').collect();
        let [kind, flags, rights, _, _, sid, ..] = fields[..] else { continue };
        // Only allow entries grant; an inherit-only one applies to children.
        if !matches!(kind, "A" | "OA") || flags.contains("IO") {
            continue;
        }
        if TRUSTED.contains(&sid) || sid == me || Some(sid) == owner {
            continue;
        }
        if write_only && !writes(rights) {
            continue;
        }
        if !others.iter().any(|o| o == sid) {
            others.push(sid.to_string());
        }
    }
    others
}

/// The `X:` section of an SDDL text (`O`, `G`, `D` or `S`): from after its
/// `X:` to the next section's `Y:` outside an entry's parentheses.
fn section(sddl: &str, which: char) -> Option<&str> {
    let bytes = sddl.as_bytes();
    let mut starts = Vec::new();
    let mut depth = 0i32;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'O' | b'G' | b'D' | b'S' if depth == 0 && bytes.get(i + 1) == Some(&b':') => starts.push(i),
            _ => {}
        }
    }
    let at = starts.iter().position(|&i| bytes[i] == which as u8)?;
    let end = starts.get(at + 1).copied().unwrap_or(sddl.len());
    sddl.get(starts[at] + 2..end)
}

/// Whether an SDDL rights field includes any write access.
fn writes(rights: &str) -> bool {
    if let Some(hex) = rights.strip_prefix("0x").or_else(|| rights.strip_prefix("0X")) {
        // Write data, append, write EA/attributes, delete, write DAC/owner,
        // generic write and generic all.
        const WRITE_BITS: u32 = 0x2 | 0x4 | 0x10 | 0x100 | 0x10000 | 0x40000 | 0x80000 | 0x4000_0000 | 0x1000_0000;
        return u32::from_str_radix(hex, 16).map_or(true, |bits| bits & WRITE_BITS != 0);
    }
    let codes: Vec<&str> = rights.as_bytes().chunks(2).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    codes
        .iter()
        .any(|c| matches!(*c, "FA" | "FW" | "GA" | "GW" | "SD" | "WD" | "WO" | "WP" | "CC" | "DC" | "DT" | "KA" | "KW"))
}

#[cfg(windows)]
pub use win::{granted_to_others_of, restrict_to_owner};

/// The Win32 calls. `unsafe` is denied in the crate and allowed only here:
/// each call is a documented Win32 function given valid, NUL-terminated
/// buffers, and every buffer Windows allocates is freed with `LocalFree`.
#[cfg(windows)]
#[allow(unsafe_code)]
mod win {
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr;

    use windows_sys::Win32::Foundation::{CloseHandle, ERROR_SUCCESS, HANDLE, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSecurityDescriptorToStringSecurityDescriptorW, ConvertSidToStringSidW,
        ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT,
        SetNamedSecurityInfoW,
    };
    use windows_sys::Win32::Security::{
        ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl, GetTokenInformation, OWNER_SECURITY_INFORMATION,
        PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, TOKEN_QUERY, TOKEN_USER, TokenUser,
    };
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    fn wide(text: &std::ffi::OsStr) -> Vec<u16> {
        text.encode_wide().chain([0]).collect()
    }

    /// A wide string Windows allocated, as text; frees it.
    ///
    /// SAFETY: `p` is null or a NUL-terminated string from LocalAlloc.
    unsafe fn take_wide(p: *mut u16) -> String {
        if p.is_null() {
            return String::new();
        }
        let mut len = 0;
        // SAFETY: the string is NUL-terminated.
        while unsafe { *p.add(len) } != 0 {
            len += 1;
        }
        // SAFETY: `len` u16s were just read from it.
        let text = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) });
        // SAFETY: allocated by LocalAlloc, freed once.
        unsafe { LocalFree(p.cast()) };
        text
    }

    /// Whether this is Wine (its ntdll exports `wine_get_version`). Wine
    /// keeps no real DACL: it maps one to Unix mode bits, widening an
    /// owner-only file to rwxrwxr-x, and reads back an entry for Everyone
    /// whatever was set. There the file keeps the owner-only mode it was
    /// created with, and no DACL is set or checked.
    fn under_wine() -> bool {
        let name = wide(std::ffi::OsStr::new("ntdll.dll"));
        // SAFETY: `name` is NUL-terminated; the module handle is not freed (none is owed).
        let ntdll = unsafe { GetModuleHandleW(name.as_ptr()) };
        // SAFETY: a NUL-terminated name; a null module gives null.
        !ntdll.is_null() && unsafe { GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()) }.is_some()
    }

    /// The SID of the user keyturn runs as, in its text form.
    pub fn current_user_sid() -> io::Result<String> {
        let mut token: HANDLE = ptr::null_mut();
        // SAFETY: the pseudo-handle of this process; `token` receives a handle closed below.
        if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut needed = 0u32;
        // SAFETY: asks the size only (null buffer, length 0).
        unsafe { GetTokenInformation(token, TokenUser, ptr::null_mut(), 0, &mut needed) };
        let mut buffer = vec![0u64; (needed as usize).div_ceil(8).max(1)];
        // SAFETY: `buffer` holds `needed` bytes, aligned for TOKEN_USER.
        let ok = unsafe { GetTokenInformation(token, TokenUser, buffer.as_mut_ptr().cast(), needed, &mut needed) };
        let error = io::Error::last_os_error();
        // SAFETY: the token handle opened above, closed once.
        unsafe { CloseHandle(token) };
        if ok == 0 {
            return Err(error);
        }
        // SAFETY: GetTokenInformation filled the buffer with a TOKEN_USER.
        let user = unsafe { &*(buffer.as_ptr() as *const TOKEN_USER) };
        let mut text: *mut u16 = ptr::null_mut();
        // SAFETY: the SID inside the TOKEN_USER; `text` receives a LocalAlloc'd string.
        if unsafe { ConvertSidToStringSidW(user.User.Sid, &mut text) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: from ConvertSidToStringSidW.
        Ok(unsafe { take_wide(text) })
    }

    /// Gives `path` the owner-only descriptor: the protected DACL of
    /// [`super::owner_only_sddl`] for the user keyturn runs as.
    pub fn restrict_to_owner(path: &Path) -> io::Result<()> {
        if under_wine() {
            return Ok(());
        }
        let sddl = super::owner_only_sddl(&current_user_sid()?, path.is_dir());
        let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
        let text = wide(std::ffi::OsStr::new(&sddl));
        // SAFETY: `text` is NUL-terminated; `descriptor` receives a LocalAlloc'd descriptor freed below.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                text.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl: *mut ACL = ptr::null_mut();
        // SAFETY: `descriptor` is the valid descriptor made above; `dacl` points into it.
        let ok = unsafe { GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted) };
        let result = if ok == 0 || present == 0 {
            Err(io::Error::other("the owner-only descriptor has no access list"))
        } else {
            let name = wide(path.as_os_str());
            // SAFETY: `name` is NUL-terminated; `dacl` lives in `descriptor`, still allocated.
            let status = unsafe {
                SetNamedSecurityInfoW(
                    name.as_ptr(),
                    SE_FILE_OBJECT,
                    DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    dacl,
                    ptr::null(),
                )
            };
            if status == ERROR_SUCCESS { Ok(()) } else { Err(io::Error::from_raw_os_error(status as i32)) }
        };
        // SAFETY: allocated by the conversion above, freed once.
        unsafe { LocalFree(descriptor) };
        result
    }

    /// The SIDs `path`'s DACL grants (any access; `write_only`: write
    /// access) besides its owner, keyturn's user, SYSTEM and Administrators.
    pub fn granted_to_others_of(path: &Path, write_only: bool) -> io::Result<Vec<String>> {
        if under_wine() {
            return Ok(Vec::new());
        }
        let name = wide(path.as_os_str());
        let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
        let info = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
        // SAFETY: `name` is NUL-terminated; `descriptor` receives a LocalAlloc'd descriptor freed below.
        let status = unsafe {
            GetNamedSecurityInfoW(
                name.as_ptr(),
                SE_FILE_OBJECT,
                info,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                &mut descriptor,
            )
        };
        if status != ERROR_SUCCESS {
            return Err(io::Error::from_raw_os_error(status as i32));
        }
        let mut text: *mut u16 = ptr::null_mut();
        // SAFETY: `descriptor` from GetNamedSecurityInfoW; `text` receives a LocalAlloc'd string.
        let ok = unsafe {
            ConvertSecurityDescriptorToStringSecurityDescriptorW(
                descriptor,
                SDDL_REVISION_1,
                info,
                &mut text,
                ptr::null_mut(),
            )
        };
        let error = io::Error::last_os_error();
        // SAFETY: allocated by GetNamedSecurityInfoW, freed once.
        unsafe { LocalFree(descriptor) };
        if ok == 0 {
            return Err(error);
        }
        // SAFETY: from the conversion above.
        let sddl = unsafe { take_wide(text) };
        Ok(super::granted_to_others(&sddl, &current_user_sid()?, write_only))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_descriptor_windows_builds_from_ours() {
            let me = super::current_user_sid().expect("the current user's SID");
            assert!(me.starts_with("S-1-"), "{me}");
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("secret");
            std::fs::write(&file, b"x").expect("write");
            super::restrict_to_owner(&file).expect("the owner-only DACL is set");
            super::restrict_to_owner(dir.path()).expect("and on a directory");
            let others = super::granted_to_others_of(&file, false).expect("the DACL can be read");
            // Wine keeps no real DACL (nothing is set or checked there).
            assert!(others.is_empty(), "{others:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

    #[test]
    fn the_owner_only_descriptor() {
        assert_eq!(owner_only_sddl(ME, false), format!("D:P(A;;FA;;;{ME})(A;;FA;;;SY)(A;;FA;;;BA)"));
        assert_eq!(
            owner_only_sddl(ME, true),
            format!("D:P(A;OICI;FA;;;{ME})(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"),
            "a directory's entries pass to what is created in it"
        );
        // What keyturn builds is what it accepts, for itself and when
        // Administrators own the file.
        assert!(granted_to_others(&format!("O:{ME}{}", owner_only_sddl(ME, false)), ME, false).is_empty());
        assert!(granted_to_others(&format!("O:BA{}", owner_only_sddl(ME, true)), ME, false).is_empty());
    }

    #[test]
    fn a_dacl_that_grants_others_is_named() {
        // Users may read: refused for a secret, not for a trusted file.
        let users_read = format!("O:{ME}D:PAI(A;;FA;;;{ME})(A;;FA;;;SY)(A;;0x1200a9;;;BU)");
        assert_eq!(granted_to_others(&users_read, ME, false), vec!["BU".to_string()]);
        assert!(granted_to_others(&users_read, ME, true).is_empty());
        // Everyone may change it: refused for both.
        let everyone_writes = format!("O:{ME}D:AI(A;ID;FA;;;{ME})(A;ID;FRFW;;;WD)(A;ID;FA;;;BA)");
        assert_eq!(granted_to_others(&everyone_writes, ME, true), vec!["WD".to_string()]);
        // Another user's SID, a deny entry (no grant), an inherit-only entry
        // (for children only).
        let other = "S-1-5-21-1-2-3-1002";
        let mixed = format!("O:{ME}D:(D;;FA;;;WD)(A;OICIIO;FA;;;CO)(A;;FA;;;{other})");
        assert_eq!(granted_to_others(&mixed, ME, false), vec![other.to_string()]);
        // No DACL at all grants everyone everything.
        assert_eq!(granted_to_others(&format!("O:{ME}"), ME, false).len(), 1);
        assert_eq!(granted_to_others(&format!("O:{ME}D:NO_ACCESS_CONTROL"), ME, false).len(), 1);
    }

    #[test]
    fn rights_that_write() {
        assert!(writes("FA") && writes("FW") && writes("GA") && writes("FRWD") && writes("0x1301bf"));
        assert!(!writes("FR") && !writes("FRFX") && !writes("0x1200a9") && !writes("GR"));
    }
}
