; The memory map: fw_cfg's "etc/e820" (packed {u64 addr, u64 size, u32 type}, little-endian)
; -> struct hvm_memmap_table_entry[] at MEMMAP (u64 addr, u64 size, u32 type, u32 reserved).
; RAM that starts below 1 MiB is split around the legacy hole: [addr, 640 KiB) stays RAM,
; [640 KiB, 1 MiB) is left out (Linux reserves the ISA range itself), the firmware's ROM
; shadow [ROM_SHADOW_BASE, 1 MiB) is marked reserved, and [1 MiB, end) stays RAM. Every
; other entry is copied as it is, in fw_cfg's order.

memmap_build:
    mov esi, name_e820
    mov ecx, name_e820_end - name_e820
    call fwcfg_find
    test eax, eax
    jz memmap_fallback
    mov dword ptr [ERR_ARGS], edx
    cmp edx, E820_MAX * E820_ENTRY_SIZE
    ja fatal_e820_too_big
    push edx
    mov ecx, edx
    mov edi, E820_BUF
    call fwcfg_read                     ; AX = etc/e820's key
    pop eax
    xor edx, edx
    mov ecx, E820_ENTRY_SIZE
    div ecx                             ; EAX = number of entries
    jmp memmap_convert

memmap_fallback:                        ; no etc/e820: one RAM entry from FW_CFG_RAM_SIZE
    mov ax, FW_CFG_RAM_SIZE
    mov edi, SCRATCH
    mov ecx, 8
    call fwcfg_read                     ; u64, little-endian
    mov eax, dword ptr [SCRATCH]
    cmp dword ptr [SCRATCH + 4], 0
    jne memmap_fallback_cap
    cmp eax, FALLBACK_LOWMEM_MAX
    jbe memmap_fallback_entry
memmap_fallback_cap:
    mov eax, FALLBACK_LOWMEM_MAX        ; below any machine type's PCI hole
memmap_fallback_entry:
    mov dword ptr [E820_BUF], 0         ; addr
    mov dword ptr [E820_BUF + 4], 0
    mov dword ptr [E820_BUF + 8], eax   ; size
    mov dword ptr [E820_BUF + 12], 0
    mov dword ptr [E820_BUF + 16], E820_RAM
    mov eax, 1

memmap_convert:                         ; EAX = number of e820 entries at E820_BUF
    mov dword ptr [VAR_LEFT], eax
    mov dword ptr [VAR_ROM_DONE], 0
    mov dword ptr [VAR_MEMMAP_N], 0
    mov esi, E820_BUF
    mov edi, MEMMAP
memmap_next:
    cmp dword ptr [VAR_LEFT], 0
    je memmap_end
    mov eax, dword ptr [esi]            ; addr, low
    mov edx, dword ptr [esi + 4]        ; addr, high
    mov ebp, dword ptr [esi + 8]        ; size, low
    mov ebx, dword ptr [esi + 12]       ; size, high
    mov ecx, dword ptr [esi + 16]       ; type
    cmp ecx, E820_RAM
    jne memmap_copy
    test edx, edx
    jnz memmap_copy
    cmp eax, HIGHMEM_START
    jae memmap_copy
    add ebp, eax                        ; RAM from below 1 MiB: EBX:EBP = end
    adc ebx, 0
    push ebx
    push ebp
    cmp eax, LOWMEM_END
    jae memmap_low_done
    mov ecx, LOWMEM_END                 ; low part: [addr, min(end, 640 KiB))
    test ebx, ebx
    jnz memmap_low_emit
    cmp ebp, ecx
    jae memmap_low_emit
    mov ecx, ebp
memmap_low_emit:
    mov ebp, ecx
    sub ebp, eax
    xor ebx, ebx
    mov ecx, E820_RAM
    call memmap_emit
memmap_low_done:
    call memmap_emit_rom
    pop ebp
    pop ebx                             ; EBX:EBP = end
    test ebx, ebx
    jnz memmap_high_emit
    cmp ebp, HIGHMEM_START
    jbe memmap_skip
memmap_high_emit:                       ; high part: [1 MiB, end)
    sub ebp, HIGHMEM_START
    sbb ebx, 0
    mov eax, HIGHMEM_START
    xor edx, edx
    mov ecx, E820_RAM
memmap_copy:
    call memmap_emit
memmap_skip:
    add esi, E820_ENTRY_SIZE
    dec dword ptr [VAR_LEFT]
    jmp memmap_next
memmap_end:                             ; no RAM below 1 MiB seen: the ROM entry goes last

; memmap_emit_rom: the ROM shadow's reserved entry, once.
memmap_emit_rom:
    cmp dword ptr [VAR_ROM_DONE], 0
    jne memmap_emit_done
    mov dword ptr [VAR_ROM_DONE], 1
    mov eax, ROM_SHADOW_BASE
    xor edx, edx
    mov ebp, ROM_SHADOW_END - ROM_SHADOW_BASE
    xor ebx, ebx
    mov ecx, E820_RESERVED

; memmap_emit: append {addr EDX:EAX, size EBX:EBP, type ECX} at EDI, EDI += 24.
memmap_emit:
    cmp dword ptr [VAR_MEMMAP_N], MEMMAP_MAX
    jae fatal_memmap_full
    mov dword ptr [edi], eax            ; hvm_memmap_table_entry.addr
    mov dword ptr [edi + 4], edx
    mov dword ptr [edi + 8], ebp        ; .size
    mov dword ptr [edi + 12], ebx
    mov dword ptr [edi + 16], ecx       ; .type
    mov dword ptr [edi + 20], 0         ; .reserved
    add edi, HVM_MEMMAP_ENTRY_SIZE
    inc dword ptr [VAR_MEMMAP_N]
memmap_emit_done:
    ret

name_e820:
    .asciz "etc/e820"
name_e820_end:
