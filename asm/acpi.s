; ACPI from QEMU: run fw_cfg's "etc/table-loader" (QEMU hw/acpi/bios-linker-loader.c), whose
; 128-byte commands (BiosLinkerLoaderEntry, little-endian) place QEMU's ACPI files in guest
; memory, link them and checksum them; then tell the kernel where the RSDP is.
;   ALLOCATE       copy a fw_cfg file into memory: zone "high" from the top of the highest RAM
;                  below 4 GiB downwards (QEMU keeps the initrd below that), zone "fseg" into
;                  the EBDA's first KiB (where a legacy RSDP scan looks; no PAM needed)
;   ADD_POINTER    add a file's address to a 1/2/4/8-byte pointer inside another file
;   ADD_CHECKSUM   byte at offset -= sum of bytes [start, start + length)
;   WRITE_POINTER  write a file's address into a writable fw_cfg file (DMA write)
; Command 0 (padding) and unknown commands are skipped, as SeaBIOS does. The high zone then
; becomes an ACPI entry of the memory map, the EBDA a reserved one; no table-loader (ACPI off),
; no change: the kernel boots without ACPI.

acpi_load:
    mov dword ptr [VAR_RSDP], 0         ; hvm_start_info.rsdp_paddr stays 0 without ACPI
    mov esi, name_table_loader
    mov ecx, name_table_loader_end - name_table_loader
    call fwcfg_find
    test eax, eax
    jz acpi_done
    mov dword ptr [ERR_ARGS], edx
    cmp edx, LOADER_MAX
    ja fatal_loader_too_big
    mov ecx, edx
    shr edx, 7                          ; LOADER_CMD_SIZE = 128 bytes a command
    mov dword ptr [VAR_LOADER_LEFT], edx
    mov edi, LOADER_BUF
    call fwcfg_read                     ; AX = etc/table-loader's key
    call acpi_zones
    mov esi, LOADER_BUF
acpi_next:
    cmp dword ptr [VAR_LOADER_LEFT], 0
    je acpi_finish
    mov eax, dword ptr [esi]            ; BiosLinkerLoaderEntry.command
    test eax, eax
    jz acpi_step                        ; padding
    mov edx, esi
    sub edx, LOADER_BUF
    mov dword ptr [ERR_ARGS], edx       ; the command's offset, for any error below
    cmp eax, LOADER_ALLOCATE
    je acpi_allocate
    cmp eax, LOADER_ADD_POINTER
    je acpi_add_pointer
    cmp eax, LOADER_ADD_CHECKSUM
    je acpi_add_checksum
    cmp eax, LOADER_WRITE_POINTER
    je acpi_write_pointer
acpi_step:
    add esi, LOADER_CMD_SIZE
    dec dword ptr [VAR_LOADER_LEFT]
    jmp acpi_next

; acpi_zones: the high zone ends at the end of the highest RAM entry in [1 MiB, 4 GiB) and
; may not go below that entry's start, the kernel's end or the initrd's end; the fseg zone
; starts at the EBDA.
acpi_zones:
    xor ebx, ebx                        ; best end so far
    xor ebp, ebp                        ; its entry
    mov edi, MEMMAP
    mov ecx, dword ptr [VAR_MEMMAP_N]
acpi_zones_next:
    test ecx, ecx
    jz acpi_zones_found
    cmp dword ptr [edi + 16], E820_RAM  ; hvm_memmap_table_entry.type
    jne acpi_zones_skip
    cmp dword ptr [edi + 4], 0          ; .addr, high half
    jne acpi_zones_skip
    cmp dword ptr [edi + 12], 0         ; .size, high half
    jne acpi_zones_skip
    mov eax, dword ptr [edi]
    cmp eax, HIGHMEM_START
    jb acpi_zones_skip
    add eax, dword ptr [edi + 8]        ; end
    jc acpi_zones_skip                  ; reaches 4 GiB
    cmp eax, ebx
    jbe acpi_zones_skip
    mov ebx, eax
    mov ebp, edi
acpi_zones_skip:
    add edi, HVM_MEMMAP_ENTRY_SIZE
    dec ecx
    jmp acpi_zones_next
acpi_zones_found:
    test ebp, ebp
    jz fatal_acpi_no_ram
    mov dword ptr [VAR_ACPI_TOP], ebx
    mov dword ptr [VAR_ACPI_TOP0], ebx
    mov dword ptr [VAR_ACPI_ENTRY], ebp
    mov eax, dword ptr [ebp]            ; floor: the entry's start ...
    mov edx, dword ptr [VAR_KERNEL_END]
    cmp edx, eax
    jbe acpi_zones_initrd
    mov eax, edx                        ; ... or the kernel's end ...
acpi_zones_initrd:
    mov ecx, dword ptr [VAR_INITRD_SIZE]
    test ecx, ecx
    jz acpi_zones_floor
    add ecx, dword ptr [VAR_INITRD_ADDR]
    cmp ecx, eax
    jbe acpi_zones_floor
    mov eax, ecx                        ; ... or the initrd's end
acpi_zones_floor:
    mov dword ptr [VAR_ACPI_FLOOR], eax
    mov dword ptr [VAR_FSEG_NEXT], EBDA_BASE
    mov dword ptr [VAR_ALLOC_N], 0
    ret

; ALLOCATE: {file[56] @4, align u32 @60, zone u8 @64}
acpi_allocate:
    push esi
    add esi, 4                          ; .alloc.file
    call acpi_name_len
    call fwcfg_find                     ; EAX = key, EDX = size
    test eax, eax
    jz fatal_loader_no_file
    push eax
    mov dword ptr [ERR_ARGS + 4], edx
    mov ecx, dword ptr [esi + 56]       ; .alloc.align
    test ecx, ecx
    jnz acpi_allocate_align
    inc ecx                             ; 0: no alignment
acpi_allocate_align:
    lea ebx, [ecx - 1]
    test ebx, ecx
    jnz fatal_loader_bad                ; not a power of two
    neg ecx                             ; ECX = ~(align - 1)
    movzx ebx, byte ptr [esi + 60]      ; .alloc.zone
    cmp ebx, LOADER_ZONE_HIGH
    je acpi_allocate_high
    cmp ebx, LOADER_ZONE_FSEG
    jne fatal_loader_bad
    mov eax, dword ptr [VAR_FSEG_NEXT]  ; fseg: up from the EBDA's start
    sub eax, ecx                        ;   + align
    dec eax                             ;   - 1
    and eax, ecx
    mov ebx, eax
    add ebx, edx
    jc fatal_acpi_space
    cmp ebx, LOWMEM_END
    ja fatal_acpi_space
    mov dword ptr [VAR_FSEG_NEXT], ebx
    jmp acpi_allocate_record
acpi_allocate_high:
    mov eax, dword ptr [VAR_ACPI_TOP]   ; high: down from the zone's top
    sub eax, edx
    jc fatal_acpi_space
    and eax, ecx
    cmp eax, dword ptr [VAR_ACPI_FLOOR]
    jb fatal_acpi_space
    mov dword ptr [VAR_ACPI_TOP], eax
acpi_allocate_record:                   ; EAX = address, EDX = size, ESI = name
    mov ebx, dword ptr [VAR_ALLOC_N]
    cmp ebx, ALLOC_MAX
    jae fatal_loader_bad
    imul ebx, ebx, ALLOC_ENTRY_SIZE
    mov dword ptr [ALLOC_TABLE + ebx], esi      ; name, inside LOADER_BUF
    mov dword ptr [ALLOC_TABLE + ebx + 4], eax  ; address
    mov dword ptr [ALLOC_TABLE + ebx + 8], edx  ; size
    inc dword ptr [VAR_ALLOC_N]
    mov edi, eax
    mov ecx, edx
    pop eax
    call fwcfg_read                     ; the file, in one transfer
    pop esi
    jmp acpi_step

; ADD_POINTER: {dest[56] @4, src[56] @60, offset u32 @116, size u8 @120}
acpi_add_pointer:
    push esi
    add esi, 60                         ; .pointer.src_file
    call acpi_lookup
    mov ebp, eax                        ; the source file's address
    mov esi, dword ptr [esp]
    add esi, 4                          ; .pointer.dest_file
    call acpi_lookup                    ; EAX = address, EDX = size
    mov esi, dword ptr [esp]
    mov ecx, dword ptr [esi + 116]      ; .pointer.offset
    movzx ebx, byte ptr [esi + 120]     ; .pointer.size
    call acpi_in_file
    add eax, ecx
    cmp ebx, 4
    je acpi_add_pointer_4
    cmp ebx, 8
    je acpi_add_pointer_8
    cmp ebx, 2
    je acpi_add_pointer_2
    cmp ebx, 1
    jne fatal_loader_bad
    mov ecx, ebp
    add byte ptr [eax], cl
    jmp acpi_add_pointer_done
acpi_add_pointer_2:
    add word ptr [eax], bp
    jmp acpi_add_pointer_done
acpi_add_pointer_8:
    add dword ptr [eax], ebp            ; a 64-bit pointer: low half, then the carry
    adc dword ptr [eax + 4], 0
    jmp acpi_add_pointer_done
acpi_add_pointer_4:
    add dword ptr [eax], ebp
acpi_add_pointer_done:
    pop esi
    jmp acpi_step

; ADD_CHECKSUM: {file[56] @4, offset u32 @60, start u32 @64, length u32 @68}
acpi_add_checksum:
    push esi
    add esi, 4                          ; .cksum.file
    call acpi_lookup                    ; EAX = address, EDX = size
    mov esi, dword ptr [esp]
    mov ecx, dword ptr [esi + 60]       ; .cksum.offset
    cmp ecx, edx
    jae fatal_loader_bad
    lea ebp, [eax + ecx]                ; the checksum byte
    mov ecx, dword ptr [esi + 64]       ; .cksum.start
    mov ebx, dword ptr [esi + 68]       ; .cksum.length
    call acpi_in_file
    lea esi, [eax + ecx]
    mov edx, ebx
    xor ebx, ebx                        ; BL = the sum, mod 256
    mov ecx, edx
    shr ecx, 5
    jz acpi_add_checksum_tail
acpi_add_checksum_32:                   ; 32 bytes an iteration: most of the firmware's work
    add bl, byte ptr [esi]
    add bl, byte ptr [esi + 1]
    add bl, byte ptr [esi + 2]
    add bl, byte ptr [esi + 3]
    add bl, byte ptr [esi + 4]
    add bl, byte ptr [esi + 5]
    add bl, byte ptr [esi + 6]
    add bl, byte ptr [esi + 7]
    add bl, byte ptr [esi + 8]
    add bl, byte ptr [esi + 9]
    add bl, byte ptr [esi + 10]
    add bl, byte ptr [esi + 11]
    add bl, byte ptr [esi + 12]
    add bl, byte ptr [esi + 13]
    add bl, byte ptr [esi + 14]
    add bl, byte ptr [esi + 15]
    add bl, byte ptr [esi + 16]
    add bl, byte ptr [esi + 17]
    add bl, byte ptr [esi + 18]
    add bl, byte ptr [esi + 19]
    add bl, byte ptr [esi + 20]
    add bl, byte ptr [esi + 21]
    add bl, byte ptr [esi + 22]
    add bl, byte ptr [esi + 23]
    add bl, byte ptr [esi + 24]
    add bl, byte ptr [esi + 25]
    add bl, byte ptr [esi + 26]
    add bl, byte ptr [esi + 27]
    add bl, byte ptr [esi + 28]
    add bl, byte ptr [esi + 29]
    add bl, byte ptr [esi + 30]
    add bl, byte ptr [esi + 31]
    add esi, 32
    loop acpi_add_checksum_32
acpi_add_checksum_tail:
    mov ecx, edx
    and ecx, 31
    jz acpi_add_checksum_store
acpi_add_checksum_1:
    lodsb
    add bl, al
    loop acpi_add_checksum_1
acpi_add_checksum_store:
    sub byte ptr [ebp], bl              ; the range now sums to 0 (mod 256)
    pop esi
    jmp acpi_step

; WRITE_POINTER: {dest[56] @4, src[56] @60, dst_offset u32 @116, src_offset u32 @120,
; size u8 @124}: dest is a writable fw_cfg file; writes need the DMA interface.
acpi_write_pointer:
    cmp dword ptr [VAR_DMA], 0
    je fatal_write_pointer
    push esi
    add esi, 60                         ; .wr_pointer.src_file
    call acpi_lookup
    mov esi, dword ptr [esp]
    xor edx, edx
    add eax, dword ptr [esi + 120]      ; + .wr_pointer.src_offset
    adc edx, 0
    mov dword ptr [SCRATCH], eax        ; the value, little-endian u64
    mov dword ptr [SCRATCH + 4], edx
    add esi, 4                          ; .wr_pointer.dest_file: in fw_cfg, not allocated
    call acpi_name_len
    call fwcfg_find                     ; EAX = key, EDX = size
    test eax, eax
    jz fatal_loader_no_file
    mov esi, dword ptr [esp]
    mov ecx, dword ptr [esi + 116]      ; .wr_pointer.offset
    movzx ebx, byte ptr [esi + 124]     ; .wr_pointer.size
    cmp ebx, 8
    ja fatal_loader_bad
    call acpi_in_file
    push ebx
    shl eax, 16                         ; select the file and skip to the offset ...
    or eax, FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_SKIP
    xor edi, edi
    call fwcfg_dma
    pop ecx
    mov eax, FW_CFG_DMA_CTL_WRITE       ; ... then write the value's low `size` bytes
    mov edi, SCRATCH
    call fwcfg_dma
    pop esi
    jmp acpi_step

; acpi_finish: carve the zones out of the memory map, note the RSDP.
acpi_finish:
    mov edi, dword ptr [VAR_MEMMAP_N]
    imul edi, edi, HVM_MEMMAP_ENTRY_SIZE
    add edi, MEMMAP                     ; memmap_emit appends here
    mov eax, dword ptr [VAR_ACPI_TOP]
    mov ebp, dword ptr [VAR_ACPI_TOP0]
    sub ebp, eax
    jz acpi_finish_fseg
    mov ebx, dword ptr [VAR_ACPI_ENTRY]
    sub dword ptr [ebx + 8], ebp        ; the RAM entry now ends where the tables start
    xor edx, edx
    xor ebx, ebx
    mov ecx, E820_ACPI
    call memmap_emit                    ; [top, top0): ACPI reclaimable
acpi_finish_fseg:
    cmp dword ptr [VAR_FSEG_NEXT], EBDA_BASE
    je acpi_finish_rsdp
    mov ebx, MEMMAP                     ; the RAM entry that ends at 640 KiB
    mov ecx, dword ptr [VAR_MEMMAP_N]
acpi_finish_low:
    test ecx, ecx
    jz fatal_acpi_no_ram
    cmp dword ptr [ebx + 16], E820_RAM
    jne acpi_finish_low_skip
    cmp dword ptr [ebx + 4], 0
    jne acpi_finish_low_skip
    cmp dword ptr [ebx + 12], 0
    jne acpi_finish_low_skip
    mov eax, dword ptr [ebx]
    cmp eax, EBDA_BASE
    jae acpi_finish_low_skip
    add eax, dword ptr [ebx + 8]
    cmp eax, LOWMEM_END
    je acpi_finish_low_found
acpi_finish_low_skip:
    add ebx, HVM_MEMMAP_ENTRY_SIZE
    dec ecx
    jmp acpi_finish_low
acpi_finish_low_found:
    sub dword ptr [ebx + 8], LOWMEM_END - EBDA_BASE
    mov eax, EBDA_BASE
    xor edx, edx
    mov ebp, LOWMEM_END - EBDA_BASE
    xor ebx, ebx
    mov ecx, E820_RESERVED
    call memmap_emit                    ; the EBDA: reserved
    mov word ptr [BDA_EBDA_SEGMENT], EBDA_BASE >> 4
acpi_finish_rsdp:
    mov esi, name_rsdp
    call acpi_find
    mov dword ptr [VAR_RSDP], eax       ; 0 if the loader allocated no RSDP
acpi_done:
    ret

; acpi_in_file: fatal unless [ECX, ECX + EBX) lies inside a file of EDX bytes. Clobbers EDX.
acpi_in_file:
    cmp ecx, edx
    ja fatal_loader_bad
    sub edx, ecx
    cmp ebx, edx
    ja fatal_loader_bad
    ret

; acpi_name_len: ECX = length of the name at ESI, NUL included; fatal without a NUL in
; LOADER_NAME_MAX bytes. Clobbers EAX, EDI.
acpi_name_len:
    mov edi, esi
    mov ecx, LOADER_NAME_MAX
    xor eax, eax
    repne scasb
    jne fatal_loader_bad
    mov ecx, edi
    sub ecx, esi
    ret

; acpi_find: EAX = address, EDX = size of the allocated file whose name field (56 bytes,
; NUL-padded, as in a command) is at ESI; EAX = 0: none. A dword compare of the whole field:
; a quarter of the iterations of a byte compare. acpi_lookup: the same, fatal when the file
; was not allocated. Both clobber EBX, ECX, EDI.
acpi_lookup:
    call acpi_find
    test eax, eax
    jz fatal_loader_no_alloc
    ret
acpi_find:
    mov ebx, dword ptr [VAR_ALLOC_N]
    mov edx, ALLOC_TABLE
acpi_find_next:
    xor eax, eax
    test ebx, ebx
    jz acpi_find_done
    mov edi, dword ptr [edx]            ; the allocation's name field, in LOADER_BUF
    push esi
    mov ecx, LOADER_NAME_DWORDS
    repe cmpsd
    pop esi
    je acpi_find_hit
    add edx, ALLOC_ENTRY_SIZE
    dec ebx
    jmp acpi_find_next
acpi_find_hit:
    mov eax, dword ptr [edx + 4]
    mov edx, dword ptr [edx + 8]
acpi_find_done:
    ret

name_table_loader:
    .asciz "etc/table-loader"
name_table_loader_end:
    .align 4
name_rsdp:                              ; a whole name field: acpi_find compares 56 bytes
    .asciz "etc/acpi/rsdp"
    .byte 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    .byte 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
