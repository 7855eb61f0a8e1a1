/* Test scaffolding for the Windows smoke test: holds the OS lock on a
 * store's keyturn.lock (the same whole-file LockFileEx the standard library's
 * File::try_lock takes) for the given milliseconds, as a writer in the
 * middle of a change would, so a second writer can be seen to get exit 4. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>

int wmain(int argc, wchar_t **argv) {
    if (argc != 3) {
        fwprintf(stderr, L"usage: holdlock PATH MILLISECONDS\n");
        return 2;
    }
    HANDLE file = CreateFileW(argv[1], GENERIC_READ | GENERIC_WRITE,
                              FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_ALWAYS,
                              FILE_ATTRIBUTE_NORMAL, NULL);
    if (file == INVALID_HANDLE_VALUE) {
        fwprintf(stderr, L"holdlock: cannot open the lock file (error %lu)\n", GetLastError());
        return 1;
    }
    OVERLAPPED at = {0};
    if (!LockFileEx(file, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, MAXDWORD, MAXDWORD, &at)) {
        fwprintf(stderr, L"holdlock: the lock is taken already (error %lu)\n", GetLastError());
        return 1;
    }
    wprintf(L"locked\n");
    fflush(stdout);
    Sleep((DWORD)_wtoi(argv[2]));
    return 0;
}
