; The allocator: guest memory for the tables the firmware places for the kernel (ACPI, SMBIOS,
; the MP table), in three zones:
;   high  downwards from the end of the highest RAM below 4 GiB (memmap_top_ram), never below
;         that RAM's start, the kernel's memory or the initrd; taken out of the memory map at
;         the end as one HIGH_ZONE_TYPE entry (placed at its first allocation, so a boot that
;         allocates nothing pays nothing)
;   ebda  upwards through the EBDA's KiB [EBDA_BASE, LOWMEM_END), below 1 MiB where the legacy
;         scans for the RSDP and the MP table look; taken out of the map at the end as one
;         EBDA_ZONE_TYPE entry, its segment in the BIOS data area
;   fseg  upwards through the F segment [ROM_SHADOW_BASE, ROM_SHADOW_END), where Linux looks
;         for the SMBIOS entry point: only once chipset.s has made it RAM (alloc_fseg_init);
;         the map reserves it already (the ROM shadow's entry)
; An allocation that does not fit returns CF set: the caller says what it was for.

; alloc_init: both zones empty; the high zone is placed at its first allocation (a boot that
; allocates nothing does not search the memory map).
alloc_init:
    xor eax, eax
    mov dword ptr [VAR_HIGH_TOP], eax
    mov dword ptr [VAR_HIGH_END], eax   ; 0: not placed yet
    mov dword ptr [VAR_FSEG_NEXT], eax  ; 0: the F segment is not RAM (alloc_fseg_init)
    mov dword ptr [VAR_EBDA_NEXT], EBDA_BASE
    ret

; alloc_fseg_init: the F segment is RAM now (chipset.s), the fseg zone opens.
alloc_fseg_init:
    mov dword ptr [VAR_FSEG_NEXT], ROM_SHADOW_BASE
    ret

; alloc_high: EAX = EDX bytes aligned to ECX (a power of two) in the high zone; CF set when
; they do not fit. Clobbers EBX, ECX, EDI.
alloc_high:
    cmp dword ptr [VAR_HIGH_END], 0
    jne alloc_high_placed
    push ecx
    push edx
    call alloc_high_place
    pop edx
    pop ecx
alloc_high_placed:
    mov eax, dword ptr [VAR_HIGH_TOP]
    sub eax, edx
    jc alloc_high_done                  ; below 0
    neg ecx                             ; ~(align - 1)
    and eax, ecx
    cmp eax, dword ptr [VAR_HIGH_FLOOR]
    jb alloc_high_done                  ; CF: below the floor
    mov dword ptr [VAR_HIGH_TOP], eax
alloc_high_done:
    ret

; alloc_high_place: the high zone ends at the end of the highest RAM below 4 GiB, once the
; memory map, the kernel and the initrd are known; its floor is that RAM's start, the kernel's
; end or the initrd's end, whichever is highest. No such RAM: the zone stays empty.
; Clobbers EAX, EBX, ECX, EDX, EDI.
alloc_high_place:
    call memmap_top_ram                 ; EAX = start, EBX = end (0: none)
    mov dword ptr [VAR_HIGH_TOP], ebx
    mov dword ptr [VAR_HIGH_END], ebx
    mov edx, dword ptr [VAR_KERNEL_END]
    cmp edx, eax
    jbe alloc_high_place_initrd
    mov eax, edx
alloc_high_place_initrd:
    mov ecx, dword ptr [VAR_INITRD_SIZE]
    test ecx, ecx
    jz alloc_high_place_floor
    add ecx, dword ptr [VAR_INITRD_ADDR]
    cmp ecx, eax
    jbe alloc_high_place_floor
    mov eax, ecx
alloc_high_place_floor:
    mov dword ptr [VAR_HIGH_FLOOR], eax
    ret

; alloc_ebda: EAX = EDX bytes aligned to ECX (a power of two) in the ebda zone; CF set when
; they do not fit. Clobbers EBX, ECX, EDI.
alloc_ebda:
    mov ebx, VAR_EBDA_NEXT
    mov edi, LOWMEM_END
    jmp alloc_up

; alloc_fseg: the same in the fseg zone; CF set also while it is closed.
alloc_fseg:
    mov ebx, VAR_FSEG_NEXT
    mov edi, ROM_SHADOW_END
    cmp dword ptr [ebx], 0
    je alloc_up_full                    ; not RAM (no PAM: microvm)

; alloc_up: EDX bytes aligned to ECX, upwards from the next free byte at [EBX] to the zone's
; end EDI: EAX = their address, CF set when they do not fit. Clobbers ECX.
alloc_up:
    mov eax, dword ptr [ebx]
    add eax, ecx
    dec eax
    neg ecx
    and eax, ecx                        ; the next free byte, aligned up
    mov ecx, eax
    add ecx, edx
    jc alloc_up_done                    ; past 4 GiB
    cmp edi, ecx
    jb alloc_up_done                    ; CF: past the zone's end
    mov dword ptr [ebx], ecx
alloc_up_done:
    ret
alloc_up_full:
    stc
    ret

; alloc_finish: the used part of the high and ebda zones out of the memory map, each as its
; type; the EBDA's segment in the BIOS data area once that zone holds something. (The fseg
; zone is reserved already.)
alloc_finish:
    mov eax, dword ptr [VAR_HIGH_TOP]
    mov ebp, dword ptr [VAR_HIGH_END]
    sub ebp, eax
    jz alloc_finish_ebda
    mov ecx, HIGH_ZONE_TYPE
    call memmap_carve                   ; [top, end): the tables
alloc_finish_ebda:
    cmp dword ptr [VAR_EBDA_NEXT], EBDA_BASE
    je alloc_finish_done
    mov eax, EBDA_BASE
    mov ebp, LOWMEM_END - EBDA_BASE
    mov ecx, EBDA_ZONE_TYPE
    call memmap_carve                   ; the whole EBDA
    mov word ptr [BDA_EBDA_SEGMENT], EBDA_BASE >> 4
alloc_finish_done:
    ret
