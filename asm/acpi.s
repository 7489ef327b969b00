; ACPI from QEMU: run fw_cfg's "etc/table-loader" (QEMU hw/acpi/bios-linker-loader.c), whose
; commands (BiosLinkerLoaderEntry, SIZEOF_LOADER bytes, little-endian) place QEMU's ACPI files
; in guest memory, link them and checksum them; then tell the kernel where the RSDP is.
;   ALLOCATE       copy a fw_cfg file into memory the allocator (alloc.s) gives: its "high"
;                  zone for LOADER_ZONE_HIGH, its "fseg" zone (the EBDA, where a legacy RSDP
;                  scan looks; no PAM needed) for LOADER_ZONE_FSEG
;   ADD_POINTER    add a file's address to a 1/2/4/8-byte pointer inside another file
;   ADD_CHECKSUM   byte at offset -= sum of bytes [start, start + length)
;   WRITE_POINTER  write a file's address into a writable fw_cfg file (DMA write)
; Command 0 (padding) and unknown commands are skipped, as SeaBIOS does. No table-loader (ACPI
; off): nothing is allocated, and the kernel boots without ACPI.

acpi_load:
    mov dword ptr [VAR_RSDP], 0         ; hvm_start_info.rsdp_paddr stays 0 without ACPI
    mov dword ptr [VAR_ACPI], 0
    mov esi, name_table_loader
    mov ecx, name_table_loader_end - name_table_loader
    call fwcfg_find
    test eax, eax
    jz acpi_done
    mov dword ptr [ERR_ARGS], edx
    cmp edx, LOADER_MAX
    ja fatal_loader_too_big
    mov ecx, edx
    shr edx, LOADER_SHIFT               ; SIZEOF_LOADER = 1 << LOADER_SHIFT bytes a command
    mov dword ptr [VAR_LOADER_LEFT], edx
    mov edi, LOADER_BUF
    call fwcfg_read                     ; AX = etc/table-loader's key
    mov dword ptr [VAR_ACPI], 1         ; QEMU has ACPI tables: no MP table (mptable.s)
    mov dword ptr [VAR_ALLOC_N], 0
    mov esi, LOADER_BUF
acpi_next:
    cmp dword ptr [VAR_LOADER_LEFT], 0
    je acpi_finish
    mov eax, dword ptr [esi + LOADER_COMMAND]
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
    add esi, SIZEOF_LOADER
    dec dword ptr [VAR_LOADER_LEFT]
    jmp acpi_next

; ALLOCATE: the file alloc_file, aligned to alloc_align, in alloc_zone. ESI points at the
; name from here on: the other fields are addressed from it.
acpi_allocate:
    push esi
    add esi, LOADER_ALLOC_FILE
    call acpi_name_len
    call fwcfg_find                     ; EAX = key, EDX = size
    test eax, eax
    jz fatal_loader_no_file
    push eax
    mov dword ptr [ERR_ARGS + 4], edx
    mov ecx, dword ptr [esi + LOADER_ALLOC_ALIGN - LOADER_ALLOC_FILE]
    test ecx, ecx
    jnz acpi_allocate_align
    inc ecx                             ; 0: no alignment
acpi_allocate_align:
    lea ebx, [ecx - 1]
    test ebx, ecx
    jnz fatal_loader_bad                ; not a power of two
    movzx ebx, byte ptr [esi + LOADER_ALLOC_ZONE - LOADER_ALLOC_FILE]
    cmp ebx, LOADER_ZONE_HIGH
    je acpi_allocate_high
    cmp ebx, LOADER_ZONE_FSEG
    jne fatal_loader_bad
    call alloc_ebda                     ; EAX = the file's place
    jmp acpi_allocate_placed
acpi_allocate_high:
    call alloc_high
acpi_allocate_placed:
    jc fatal_acpi_space
    mov ebx, dword ptr [VAR_ALLOC_N]    ; record {name, address, size}
    cmp ebx, ALLOC_MAX
    jae fatal_loader_bad
    imul ebx, ebx, SIZEOF_ALLOC
    mov dword ptr [ALLOC_TABLE + ALLOC_NAME + ebx], esi     ; inside LOADER_BUF
    mov dword ptr [ALLOC_TABLE + ALLOC_ADDR + ebx], eax
    mov dword ptr [ALLOC_TABLE + ALLOC_SIZE + ebx], edx
    inc dword ptr [VAR_ALLOC_N]
    mov edi, eax
    mov ecx, edx
    pop eax
    call fwcfg_read                     ; the file, in one transfer
    pop esi
    jmp acpi_step

; ADD_POINTER: pointer_size bytes at pointer_offset in pointer_dest_file += the address of
; pointer_src_file.
acpi_add_pointer:
    push esi
    add esi, LOADER_POINTER_SRC_FILE
    call acpi_lookup
    mov ebp, eax                        ; the source file's address
    mov esi, dword ptr [esp]
    add esi, LOADER_POINTER_DEST_FILE
    call acpi_lookup                    ; EAX = address, EDX = size
    mov esi, dword ptr [esp]
    mov ecx, dword ptr [esi + LOADER_POINTER_OFFSET]
    movzx ebx, byte ptr [esi + LOADER_POINTER_SIZE]
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

; ADD_CHECKSUM: the byte at cksum_offset in cksum_file -= the sum of its bytes
; [cksum_start, cksum_start + cksum_length).
acpi_add_checksum:
    push esi
    add esi, LOADER_CKSUM_FILE
    call acpi_lookup                    ; EAX = address, EDX = size
    mov esi, dword ptr [esp]
    mov ecx, dword ptr [esi + LOADER_CKSUM_OFFSET]
    cmp ecx, edx
    jae fatal_loader_bad
    lea ebp, [eax + ecx]                ; the checksum byte
    mov ecx, dword ptr [esi + LOADER_CKSUM_START]
    mov ebx, dword ptr [esi + LOADER_CKSUM_LENGTH]
    call acpi_in_file
    lea esi, [eax + ecx]
    mov edx, ebx
    call checksum8                      ; sum.s: [EBP] -= the range's sum
    pop esi
    jmp acpi_step

; WRITE_POINTER: the address of wr_pointer_src_file + wr_pointer_src_offset, its low
; wr_pointer_size bytes, into the fw_cfg file wr_pointer_dest_file at wr_pointer_dst_offset
; (a writable file, not allocated); writes need the DMA interface.
acpi_write_pointer:
    cmp dword ptr [VAR_DMA], 0
    je fatal_write_pointer
    push esi
    add esi, LOADER_WR_POINTER_SRC_FILE
    call acpi_lookup
    mov esi, dword ptr [esp]
    xor edx, edx
    add eax, dword ptr [esi + LOADER_WR_POINTER_SRC_OFFSET]
    adc edx, 0
    mov dword ptr [SCRATCH], eax        ; the value, little-endian u64
    mov dword ptr [SCRATCH + 4], edx
    add esi, LOADER_WR_POINTER_DEST_FILE
    call acpi_name_len
    call fwcfg_find                     ; EAX = key, EDX = size
    test eax, eax
    jz fatal_loader_no_file
    mov esi, dword ptr [esp]
    mov ecx, dword ptr [esi + LOADER_WR_POINTER_DST_OFFSET]
    movzx ebx, byte ptr [esi + LOADER_WR_POINTER_SIZE]
    cmp ebx, 8
    ja fatal_loader_bad
    call acpi_in_file
    push ebx
    shl eax, FW_CFG_DMA_CTL_SELECT_SHIFT    ; select the file and skip to the offset ...
    or eax, FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_SKIP
    xor edi, edi
    call fwcfg_dma
    pop ecx
    mov eax, FW_CFG_DMA_CTL_WRITE       ; ... then write the value's low `size` bytes
    mov edi, SCRATCH
    call fwcfg_dma
    pop esi
    jmp acpi_step

; acpi_finish: the RSDP, for start_info and the zero page (alloc_finish takes the tables'
; memory out of the map).
acpi_finish:
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
; LOADER_FILESZ bytes. Clobbers EAX, EDI. QEMU zeroes a command before it writes a name in
; (bios_linker_loader), so the field is NUL-padded as fwcfg_find needs: a name with junk
; after its NUL is not found, and the boot stops on msg_loader_no_file.
acpi_name_len:
    mov edi, esi
    mov ecx, LOADER_FILESZ
    xor eax, eax
    repne scasb
    jne fatal_loader_bad
    mov ecx, edi
    sub ecx, esi
    ret

; acpi_find: EAX = address, EDX = size of the allocated file whose name field (LOADER_FILESZ
; bytes, NUL-padded, as in a command) is at ESI; EAX = 0: none. A dword compare of the whole field:
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
    mov edi, dword ptr [edx + ALLOC_NAME]   ; the allocation's name field, in LOADER_BUF
    push esi
    mov ecx, LOADER_NAME_DWORDS
    repe cmpsd
    pop esi
    je acpi_find_hit
    add edx, SIZEOF_ALLOC
    dec ebx
    jmp acpi_find_next
acpi_find_hit:
    mov eax, dword ptr [edx + ALLOC_ADDR]
    mov edx, dword ptr [edx + ALLOC_SIZE]
acpi_find_done:
    ret

    .balign 4, 0                        ; fwcfg_find compares names a dword at a time
name_table_loader:
    .asciz "etc/table-loader"
name_table_loader_end:
    .balign 4, 0                        ; NUL-padded to a dword (fwcfg_find)
name_rsdp:                              ; a whole name field: acpi_find compares 56 bytes
    .asciz "etc/acpi/rsdp"
    .byte 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    .byte 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
