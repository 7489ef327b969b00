; The memory map, and its one owner: the table at MEMMAP (struct hvm_memmap_table_entry[],
; VAR_MEMMAP_N entries) is built and changed only here. Other files use its operations:
;   memmap_build      fw_cfg's "etc/e820" (struct e820_entry[]) -> the table
;   memmap_top_ram    the highest RAM entry below 4 GiB that starts at or above 1 MiB
;   memmap_carve      take a range out of the RAM entry that holds it, as another type
;   memmap_append     add an entry
;   memmap_copy_e820  the table as struct boot_e820_entry[] (a bzImage's zero page)
; memmap_build also notes where the RAM that starts below 1 MiB ends, VAR_LOWMEM_TOP: QEMU's
; RAM below 4 GiB, one entry from 0 on every x86 machine type.
; The rule memmap_build applies: RAM that starts below 1 MiB is split around the legacy hole:
; [addr, 640 KiB) stays RAM, [640 KiB, 1 MiB) is left out (Linux reserves the ISA range
; itself), the firmware's ROM shadow [ROM_SHADOW_BASE, 1 MiB) is marked reserved, and
; [1 MiB, end) stays RAM. Every other entry is copied as it is, in fw_cfg's order.

memmap_build:
    mov esi, name_e820
    mov ecx, name_e820_end - name_e820
    call fwcfg_find
    test eax, eax
    jz memmap_fallback
    cmp edx, E820_MAX * SIZEOF_E820
    ja memmap_e820_too_big
    push edx
    mov ecx, edx
    mov edi, E820_BUF
    call fwcfg_read                     ; AX = etc/e820's key
    pop eax
    xor edx, edx
    mov ecx, SIZEOF_E820
    div ecx                             ; EAX = number of entries
    jmp memmap_convert
memmap_e820_too_big:
    mov dword ptr [ERR_ARGS], edx       ; its size
    jmp fatal_e820_too_big

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
    mov dword ptr [E820_BUF + E820_ADDR], 0
    mov dword ptr [E820_BUF + E820_ADDR + 4], 0
    mov dword ptr [E820_BUF + E820_SIZE], eax
    mov dword ptr [E820_BUF + E820_SIZE + 4], 0
    mov dword ptr [E820_BUF + E820_TYPE], E820_RAM
    mov eax, 1

memmap_convert:                         ; EAX = number of e820 entries at E820_BUF
    mov dword ptr [VAR_LEFT], eax
    mov dword ptr [VAR_ROM_DONE], 0
    mov dword ptr [VAR_LOWMEM_TOP], 0
    mov dword ptr [VAR_MEMMAP_N], 0
    mov esi, E820_BUF
    mov edi, MEMMAP
    test eax, eax
    jz memmap_end
memmap_next:
    mov eax, dword ptr [esi + E820_ADDR]        ; low half
    mov edx, dword ptr [esi + E820_ADDR + 4]    ; high half
    mov ebp, dword ptr [esi + E820_SIZE]
    mov ebx, dword ptr [esi + E820_SIZE + 4]
    mov ecx, dword ptr [esi + E820_TYPE]
    cmp ecx, E820_RAM
    jne memmap_copy
    test edx, edx
    jnz memmap_copy
    cmp eax, HIGHMEM_START
    jae memmap_copy
    add ebp, eax                        ; RAM from below 1 MiB: EBX:EBP = end
    adc ebx, 0
    mov dword ptr [VAR_LOWMEM_TOP], ebp ; (QEMU's RAM below 4 GiB: its end, for mtrr.s)
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
    add esi, SIZEOF_E820
    dec dword ptr [VAR_LEFT]
    jnz memmap_next
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

; memmap_emit: memmap_append with EDI = the end of the table (memmap_build's loop keeps it);
; EDI += one entry.
memmap_emit:
    cmp dword ptr [VAR_MEMMAP_N], MEMMAP_MAX
    jae fatal_memmap_full
    mov dword ptr [edi + HVM_MEMMAP_ADDR], eax
    mov dword ptr [edi + HVM_MEMMAP_ADDR + 4], edx
    mov dword ptr [edi + HVM_MEMMAP_SIZE], ebp
    mov dword ptr [edi + HVM_MEMMAP_SIZE + 4], ebx
    mov dword ptr [edi + HVM_MEMMAP_TYPE], ecx
    mov dword ptr [edi + HVM_MEMMAP_RESERVED], 0
    add edi, SIZEOF_HVM_MEMMAP
    inc dword ptr [VAR_MEMMAP_N]
memmap_emit_done:
    ret

; memmap_append: add {addr EDX:EAX, size EBX:EBP, type ECX} at the end of the table; fatal
; when it is full. Clobbers EDI.
memmap_append:
    imul edi, dword ptr [VAR_MEMMAP_N], SIZEOF_HVM_MEMMAP
    add edi, MEMMAP
    jmp memmap_emit

; memmap_top_ram: the RAM entry, below 4 GiB and starting at or above 1 MiB, that ends
; highest: EAX = its start, EBX = its end; both 0 when there is none. Clobbers ECX, EDX, EDI.
memmap_top_ram:
    xor eax, eax
    xor ebx, ebx                        ; the best end so far
    mov edi, MEMMAP
    mov ecx, dword ptr [VAR_MEMMAP_N]
memmap_top_ram_next:
    test ecx, ecx
    jz memmap_top_ram_done
    call memmap_ram_below_4g            ; EDX = start, CF: not RAM below 4 GiB
    jc memmap_top_ram_skip
    cmp edx, HIGHMEM_START
    jb memmap_top_ram_skip
    add edx, dword ptr [edi + HVM_MEMMAP_SIZE]  ; its end
    jc memmap_top_ram_skip              ; reaches 4 GiB
    cmp edx, ebx
    jbe memmap_top_ram_skip
    mov ebx, edx
    mov eax, dword ptr [edi + HVM_MEMMAP_ADDR]
memmap_top_ram_skip:
    add edi, SIZEOF_HVM_MEMMAP
    dec ecx
    jmp memmap_top_ram_next
memmap_top_ram_done:
    ret

; memmap_ram_below_4g: for the entry at EDI, EDX = its start; CF set unless it is RAM lying
; below 4 GiB (its start and size fit 32 bits).
memmap_ram_below_4g:
    cmp dword ptr [edi + HVM_MEMMAP_TYPE], E820_RAM
    jne memmap_not_ram
    cmp dword ptr [edi + HVM_MEMMAP_ADDR + 4], 0
    jne memmap_not_ram
    cmp dword ptr [edi + HVM_MEMMAP_SIZE + 4], 0
    jne memmap_not_ram
    mov edx, dword ptr [edi + HVM_MEMMAP_ADDR]
    clc
    ret
memmap_not_ram:
    stc
    ret

; memmap_carve: make [EAX, EAX + EBP), below 4 GiB, an entry of type ECX, appended, taken out
; of the RAM entry that holds it: that entry keeps what lies before the range (or, if nothing
; does, what lies after it); when something lies on both sides, the part after it becomes a
; RAM entry of its own. Fatal when no RAM entry holds the range.
; Clobbers EAX, EBX, ECX, EDX, ESI, EDI, EBP.
memmap_carve:
    mov dword ptr [ERR_ARGS], eax
    mov dword ptr [ERR_ARGS + 4], ebp
    push ecx                            ; the type
    lea esi, [eax + ebp]                ; ESI = the range's end
    mov edi, MEMMAP
    mov ecx, dword ptr [VAR_MEMMAP_N]
memmap_carve_next:
    test ecx, ecx
    jz fatal_memmap_carve
    call memmap_ram_below_4g            ; EDX = start
    jc memmap_carve_skip
    cmp eax, edx
    jb memmap_carve_skip                ; the range starts before the entry
    add edx, dword ptr [edi + HVM_MEMMAP_SIZE]  ; EDX = the entry's end
    jc memmap_carve_skip
    cmp esi, edx
    jbe memmap_carve_found
memmap_carve_skip:
    add edi, SIZEOF_HVM_MEMMAP
    dec ecx
    jmp memmap_carve_next
memmap_carve_found:                     ; EDI = the entry [start, EDX) holding [EAX, ESI)
    sub edx, esi                        ; EDX = what lies after the range
    mov ecx, eax
    sub ecx, dword ptr [edi + HVM_MEMMAP_ADDR]  ; ECX = what lies before it
    mov dword ptr [edi + HVM_MEMMAP_SIZE], ecx  ; the entry keeps the head
    test edx, edx
    jz memmap_carve_range
    test ecx, ecx
    jnz memmap_carve_tail
    mov dword ptr [edi + HVM_MEMMAP_ADDR], esi  ; no head: the entry becomes the tail
    mov dword ptr [edi + HVM_MEMMAP_SIZE], edx
    jmp memmap_carve_range
memmap_carve_tail:
    push eax                            ; head and tail: the tail becomes an entry of its own
    push ebp
    mov eax, esi
    mov ebp, edx
    xor edx, edx
    xor ebx, ebx
    mov ecx, E820_RAM
    call memmap_append
    pop ebp
    pop eax
memmap_carve_range:
    pop ecx
    xor edx, edx
    xor ebx, ebx
    jmp memmap_append                   ; [EAX, EAX + EBP): type ECX

; memmap_copy_e820: the table as struct boot_e820_entry[] (each entry without .reserved) at
; EDI; ECX = the number of entries. Clobbers ESI, EDI.
memmap_copy_e820:
    mov ecx, dword ptr [VAR_MEMMAP_N]
    push ecx
    mov esi, MEMMAP
    jecxz memmap_copy_e820_done
memmap_copy_e820_next:
    movsd dword ptr [edi], dword ptr [esi]  ; .addr
    movsd dword ptr [edi], dword ptr [esi]
    movsd dword ptr [edi], dword ptr [esi]  ; .size
    movsd dword ptr [edi], dword ptr [esi]
    movsd dword ptr [edi], dword ptr [esi]  ; .type
    add esi, SIZEOF_HVM_MEMMAP - SIZEOF_E820    ; skip .reserved
    loop memmap_copy_e820_next
memmap_copy_e820_done:
    pop ecx
    ret

    .balign 4, 0                        ; fwcfg_find compares names a dword at a time
name_e820:
    .asciz "etc/e820"
name_e820_end:
    .balign 4, 0                        ; NUL-padded to a dword (fwcfg_find)
