; The floor: the least a firmware can do before a PVH entry, as the benchmark's baseline.
; It switches to 32-bit mode (reset16.s), loads flat data segments and jumps to the patched
; entry: no fw_cfg, no memory map, no start_info (EBX is not set: only a kernel that never
; reads it, like the benchmark's exit-at-entry kernel, can run under it).

start32:
    mov eax, SEL_DATA32
    mov ds, eax
    mov es, eax
    mov ss, eax
    jmp dword ptr [patch_entry]
