; fw_cfg, QEMU's firmware configuration device (QEMU docs/specs/fw_cfg.rst).
; I/O ports: selector PORT_FW_CFG_SEL (16-bit write), data PORT_FW_CFG_DATA (8-bit reads).
; DMA: the guest-physical address of a struct FWCfgDmaAccess {control, length, address}, all
; big-endian, written big-endian to PORT_FW_CFG_DMA_LO starts one transfer (one exit).

; fwcfg_init: check the signature, pick DMA when FW_CFG_ID offers it, read the file directory.
fwcfg_init:
    mov dx, PORT_FW_CFG_SEL
    mov ax, FW_CFG_SIGNATURE
    out dx, ax                          ; select FW_CFG_SIGNATURE
    mov dx, PORT_FW_CFG_DATA
    mov edi, SCRATCH
    mov ecx, 4
    rep insb                            ; "QEMU"
    cmp dword ptr [SCRATCH], FW_CFG_SIGNATURE_QEMU
    jne fatal_no_fwcfg
    mov dx, PORT_FW_CFG_SEL
    mov ax, FW_CFG_ID
    out dx, ax                          ; select FW_CFG_ID
    mov dx, PORT_FW_CFG_DATA
    in al, dx                           ; low byte of the u32 feature bitmap
    and eax, FW_CFG_ID_DMA
    mov dword ptr [VAR_DMA], eax
    jz fwcfg_dir_load
    xor eax, eax                        ; DMA address high half = 0 once; QEMU resets the
    mov dx, PORT_FW_CFG_DMA_HI          ;   register after every transfer, so each transfer
    out dx, eax                         ;   needs only the low half (all our buffers < 4 GiB)
    mov dword ptr [DMA_CTL + FW_CFG_DMA_ADDRESS], eax   ; .address, high half: always 0

; fwcfg_dir_load: the file directory (FW_CFG_FILE_DIR) into FILE_DIR; its count is
; big-endian in fw_cfg and stored in host order here.
fwcfg_dir_load:
    mov ax, FW_CFG_FILE_DIR
    mov edi, FILE_DIR
    mov ecx, SIZEOF_FW_CFG_FILES
    cmp dword ptr [VAR_DMA], 0
    je fwcfg_dir_count
    mov ecx, SIZEOF_FW_CFG_FILES + FILE_DIR_MAX * SIZEOF_FW_CFG_FILE    ; DMA: the whole buffer
fwcfg_dir_count:                        ;   in one transfer (fw_cfg gives zeros past the end)
    call fwcfg_read                     ; FWCfgFiles.count
    mov eax, dword ptr [FILE_DIR + FW_CFG_FILES_COUNT]
    bswap eax
    cmp eax, FILE_DIR_MAX
    ja fwcfg_dir_too_big
    mov dword ptr [FILE_DIR + FW_CFG_FILES_COUNT], eax
    shl eax, FW_CFG_FILE_SHIFT           ; entries -> bytes
    lea edi, [eax + FILE_DIR + SIZEOF_FW_CFG_FILES]     ; the slot after the last entry
    lea eax, [edi + FW_CFG_FILE_NAME]
    mov dword ptr [VAR_DIR_END], eax    ; ... and its name: fwcfg_find's sentinel
    cmp dword ptr [VAR_DMA], 0
    jne fwcfg_done
    lea ecx, [edi - FILE_DIR - SIZEOF_FW_CFG_FILES]
    mov edi, FILE_DIR + SIZEOF_FW_CFG_FILES
    jmp fwcfg_read_next                 ; FWCfgFiles.f[count], from the current offset
fwcfg_dir_too_big:
    mov dword ptr [ERR_ARGS], eax       ; FWCfgFiles.count
    jmp fatal_dir_too_big

; fwcfg_find: look a file up by name in FILE_DIR.
;   in:  ESI = name, NUL-terminated, 8 bytes or more with the NUL, then NUL-padded to a whole
;        number of dwords (as fw_cfg's names are, to 56 bytes); ECX = its length with the NUL
;   out: EAX = select key (0: not found), EDX = size in bytes; EDI: the entry found, for
;        fwcfg_find_on. Clobbers ECX.
; The scan looks at bytes 4-7 of each name only (the names all start "etc/" or so), three
; instructions an entry, and the name's own bytes 4-7 in the sentinel slot after the last
; entry stop it; an entry that shows them is compared whole, a dword at a time.
fwcfg_find:
    mov edi, FILE_DIR + SIZEOF_FW_CFG_FILES + FW_CFG_FILE_NAME - SIZEOF_FW_CFG_FILE

; fwcfg_find_on: the same, from the entry after the one fwcfg_find last found (EDI as it left
; it after a hit): QEMU sorts its directory by name, so the next file by name is found at
; once. Only what lies after is searched: EAX = 0 when the file is not there.
fwcfg_find_on:
    add ecx, 3
    shr ecx, 2                          ; the name's dwords
    mov edx, dword ptr [esi + 4]
    mov eax, dword ptr [VAR_DIR_END]
    mov dword ptr [eax + 4], edx        ; the sentinel's bytes 4-7: the scan ends there
fwcfg_find_next:
    add edi, SIZEOF_FW_CFG_FILE         ; the next FWCfgFile.name
    cmp dword ptr [edi + 4], edx
    jne fwcfg_find_next
    cmp edi, dword ptr [VAR_DIR_END]
    je fwcfg_find_none                  ; the sentinel: not in the directory
    push esi
    push edi
    push ecx
    repe cmpsd dword ptr [esi], dword ptr es:[edi]  ; the name, NUL included
    pop ecx
    pop edi
    pop esi
    jne fwcfg_find_next
fwcfg_find_hit:
    movzx eax, word ptr [edi + FW_CFG_FILE_SELECT - FW_CFG_FILE_NAME]  ; FWCfgFile.select (BE)
    xchg al, ah
    mov edx, dword ptr [edi + FW_CFG_FILE_SIZE - FW_CFG_FILE_NAME]  ; FWCfgFile.size (BE)
    bswap edx
    ret
fwcfg_find_none:
    xor eax, eax                        ; not found
    ret

; fwcfg_read_u32: EAX = the first 4 bytes of item AX, little-endian. Clobbers ECX, EDX, EDI.
fwcfg_read_u32:
    mov edi, SCRATCH
    mov ecx, 4
    call fwcfg_read
    mov eax, dword ptr [SCRATCH]
    ret

; fwcfg_read: select item AX and read ECX bytes of it to EDI.
; fwcfg_read_next: read ECX more bytes of the selected item to EDI.
; Both clobber EAX, ECX, EDX, EDI. EAX is a FWCfgDmaAccess.control either way (the key in the
; upper half); the I/O-port path takes the key from it.
fwcfg_read:
    shl eax, FW_CFG_DMA_CTL_SELECT_SHIFT ; the key (AX) in the upper half, the rest shifted out
    or eax, FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ
    cmp dword ptr [VAR_DMA], 0
    jne fwcfg_dma
    jmp fwcfg_pio_select
fwcfg_read_next:
    mov eax, FW_CFG_DMA_CTL_READ        ; no select: continue at the current offset
    cmp dword ptr [VAR_DMA], 0
    je fwcfg_pio_data

; fwcfg_dma: one DMA transfer with control EAX (host order: key << 16 | flags), length ECX,
; guest address EDI. Clobbers EAX, ECX, EDX, EDI.
fwcfg_dma:
    bswap eax
    mov dword ptr [DMA_CTL + FW_CFG_DMA_CONTROL], eax   ; big-endian, as every field
    bswap ecx
    mov dword ptr [DMA_CTL + FW_CFG_DMA_LENGTH], ecx
    bswap edi
    mov dword ptr [DMA_CTL + FW_CFG_DMA_ADDRESS + 4], edi   ; .address, low half
    mov eax, DMA_CTL_BE                 ; the structure's address, big-endian
    mov dx, PORT_FW_CFG_DMA_LO
    out dx, eax                         ; start the transfer
fwcfg_dma_wait:
    mov eax, dword ptr [DMA_CTL + FW_CFG_DMA_CONTROL]   ; QEMU clears it when done
    test eax, eax
    jz fwcfg_done
    test eax, FW_CFG_DMA_CTL_ERROR << 24    ; the error bit, big-endian in memory
    jz fwcfg_dma_wait
    jmp fatal_dma
fwcfg_pio_select:
    shr eax, FW_CFG_DMA_CTL_SELECT_SHIFT
    mov dx, PORT_FW_CFG_SEL
    out dx, ax                          ; select the item
fwcfg_pio_data:
    mov dx, PORT_FW_CFG_DATA
    rep insb                            ; one port read a byte
fwcfg_done:
    ret
