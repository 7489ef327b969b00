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
    call fwcfg_read                     ; FWCfgFiles.count
    mov eax, dword ptr [FILE_DIR + FW_CFG_FILES_COUNT]
    bswap eax
    mov dword ptr [ERR_ARGS], eax
    cmp eax, FILE_DIR_MAX
    ja fatal_dir_too_big
    mov dword ptr [FILE_DIR + FW_CFG_FILES_COUNT], eax
    imul ecx, eax, SIZEOF_FW_CFG_FILE
    mov edi, FILE_DIR + SIZEOF_FW_CFG_FILES
    jmp fwcfg_read_next                 ; FWCfgFiles.f[count], from the current offset

; fwcfg_find: look a file up by name in FILE_DIR.
;   in:  ESI = name, NUL-terminated, 8 bytes or more with the NUL; ECX = its length with the NUL
;   out: EAX = select key (0: not found), EDX = size in bytes. Clobbers EBX, EDI.
; An entry whose name bytes 4-7 differ from the name's is passed over at once: the names all
; start "etc/" or so, and a file missing from the directory costs five instructions an entry.
fwcfg_find:
    mov ebx, dword ptr [FILE_DIR + FW_CFG_FILES_COUNT]  ; entries
    mov edi, FILE_DIR + SIZEOF_FW_CFG_FILES + FW_CFG_FILE_NAME - SIZEOF_FW_CFG_FILE
    mov edx, dword ptr [esi + 4]
fwcfg_find_next:
    add edi, SIZEOF_FW_CFG_FILE         ; the next FWCfgFile.name
    dec ebx
    js fwcfg_find_none
    cmp dword ptr [edi + 4], edx
    jne fwcfg_find_next
    push esi
    push edi
    push ecx
    repe cmpsb                          ; the name, NUL included
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
; Both clobber EAX, ECX, EDX, EDI.
fwcfg_read:
    movzx eax, ax
    shl eax, FW_CFG_DMA_CTL_SELECT_SHIFT ; FWCfgDmaAccess.control: the key in the upper bits
    or eax, FW_CFG_DMA_CTL_SELECT
    jmp fwcfg_transfer
fwcfg_read_next:
    xor eax, eax                        ; no select: continue at the current offset
fwcfg_transfer:
    cmp dword ptr [VAR_DMA], 0
    je fwcfg_pio
    or eax, FW_CFG_DMA_CTL_READ

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
fwcfg_pio:
    test eax, eax
    jz fwcfg_pio_data
    shr eax, FW_CFG_DMA_CTL_SELECT_SHIFT
    mov dx, PORT_FW_CFG_SEL
    out dx, ax                          ; select the item
fwcfg_pio_data:
    mov dx, PORT_FW_CFG_DATA
    rep insb                            ; one port read a byte
fwcfg_done:
    ret
