/* Test scaffolding only, never shipped: Wine 8.0 has no bcryptprimitives.dll,
 * whose ProcessPrng Rust's standard library and getrandom import (Windows 8,
 * Server 2012 and later have it). This DLL exports ProcessPrng over
 * advapi32's RtlGenRandom (SystemFunction036), so binaries start under Wine. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
