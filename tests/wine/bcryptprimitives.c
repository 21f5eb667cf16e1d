/*
 * TEST ONLY: never ship this file's DLL with ois.
 *
 * Rust's standard library for x86_64-pc-windows-gnu imports ProcessPrng from
 * bcryptprimitives.dll (Windows 10 and later have it). Debian 12's Wine 8.0 lacks that
 * export, so every Rust .exe dies at load (c0000135). The Wine smoke test builds this DLL with
 * mingw and places it beside ois.exe in its temporary folder only: ProcessPrng on top of
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
	while (length > 0) {
		ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
		if (!SystemFunction036(data, chunk))
			return FALSE;
		data += chunk;
		length -= chunk;
	}
	return TRUE;
}
