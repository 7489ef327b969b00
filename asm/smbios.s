; SMBIOS from QEMU (hw/smbios/smbios.c): fw_cfg's "etc/smbios/smbios-anchor", an entry point
; (2.1: "_SM_" with "_DMI_" at +16, 31 bytes; 3.0: "_SM3_", 24 bytes) with its checksums and
; the tables' address left 0, and "etc/smbios/smbios-tables", the structures. As SeaBIOS and
; qboot do: both go into the F segment (the allocator's fseg zone: RAM once chipset.s has set
; PAM0), where Linux's dmi_scan looks for the entry point (16-byte aligned), with a BIOS
; information structure (type 0, layout.SMBIOS_TYPE0) in front of QEMU's when they start with
; none; then the entry point gets the tables' address, length and count, and its checksums.
; QEMU builds its type 0, when -smbios type=0 asks for one, before every structure of its own:
; only the first structure is looked at (a type 0 later in a user's -smbios file= blob would
; make two). No SMBIOS files (microvm): nothing.

smbios_load:
    mov esi, name_smbios_anchor
    mov ecx, name_smbios_anchor_end - name_smbios_anchor
    call fwcfg_find
    test eax, eax
    jz smbios_done
    push eax                            ; the entry point's key
    push edx                            ; ... and size
    mov esi, name_smbios_tables
    mov ecx, name_smbios_tables_end - name_smbios_tables
    call fwcfg_find_on                  ; QEMU sorts its directory: "-tables" after "-anchor"
    test eax, eax
    jnz smbios_found
    mov ecx, name_smbios_tables_end - name_smbios_tables
    call fwcfg_find                     ; a directory in another order: all of it
smbios_found:
    mov dword ptr [VAR_SMBIOS_TABLES], eax  ; the tables' key (0: none) until they are read
    mov dword ptr [VAR_SMBIOS_LEN], edx     ; ... and size
    pop edx
    pop eax
    mov dword ptr [ERR_ARGS], edx
    cmp edx, SIZEOF_SMBIOS21
    je smbios_anchor_size
    cmp edx, SIZEOF_SMBIOS30
    jne fatal_smbios_anchor
smbios_anchor_size:
    push eax
    mov ecx, 16
    call alloc_fseg                     ; EAX = the entry point's place, 16-byte aligned
    jc fatal_smbios_space
    mov dword ptr [VAR_SMBIOS_EP], eax
    mov edi, eax
    mov ecx, dword ptr [ERR_ARGS]
    pop eax
    call fwcfg_read                     ; the entry point, as QEMU made it
    mov esi, dword ptr [VAR_SMBIOS_EP]
    cmp dword ptr [ERR_ARGS], SIZEOF_SMBIOS30
    je smbios_30_anchor
    cmp dword ptr [esi + SMBIOS21_ANCHOR_STRING], SMBIOS21_ANCHOR
    jne fatal_smbios_anchor
    cmp dword ptr [esi + SMBIOS21_INTERMEDIATE_ANCHOR_STRING], SMBIOS21_INTERMEDIATE
    jne fatal_smbios_anchor
    cmp byte ptr [esi + SMBIOS21_INTERMEDIATE_ANCHOR_STRING + 4], SMBIOS_ANCHOR_END
    jne fatal_smbios_anchor
    movzx eax, word ptr [esi + SMBIOS21_STRUCTURE_TABLE_LENGTH]
    jmp smbios_tables
smbios_30_anchor:
    cmp dword ptr [esi + SMBIOS30_ANCHOR_STRING], SMBIOS30_ANCHOR
    jne fatal_smbios_anchor
    cmp byte ptr [esi + SMBIOS30_ANCHOR_STRING + 4], SMBIOS_ANCHOR_END
    jne fatal_smbios_anchor
    mov eax, dword ptr [esi + SMBIOS30_STRUCTURE_TABLE_MAX_SIZE]
smbios_tables:                          ; EAX = the tables' length the entry point gives
    mov edx, dword ptr [VAR_SMBIOS_LEN]     ; the tables file's size
    mov dword ptr [VAR_SMBIOS_LEN], eax
    cmp dword ptr [VAR_SMBIOS_TABLES], 0
    je fatal_smbios_no_tables
    cmp edx, eax
    jne smbios_bad_length
    cmp edx, SIZEOF_SMBIOS_HDR
    jb smbios_too_short                 ; not even one structure's header
    push dword ptr [VAR_SMBIOS_TABLES]  ; the key
    add edx, SMBIOS_TYPE0_SIZE          ; room for a type 0 in front
    mov ecx, 16
    call alloc_fseg
    jc fatal_smbios_space
    lea edi, [eax + SMBIOS_TYPE0_SIZE]
    mov dword ptr [VAR_SMBIOS_TABLES], edi
    mov ecx, dword ptr [VAR_SMBIOS_LEN]
    pop eax
    call fwcfg_read                     ; QEMU's structures, after the room
    mov edi, dword ptr [VAR_SMBIOS_TABLES]
    cmp byte ptr [edi + SMBIOS_HDR_TYPE], SMBIOS_TYPE_BIOS
    je smbios_entry_point               ; QEMU's own type 0 comes first
    sub edi, SMBIOS_TYPE0_SIZE
    mov dword ptr [VAR_SMBIOS_TABLES], edi
    mov esi, smbios_type0
    mov ecx, SMBIOS_TYPE0_SIZE / 4
    rep movsd dword ptr [edi], dword ptr [esi]  ; ours, in front
    mov ecx, SMBIOS_TYPE0_SIZE % 4
    rep movsb byte ptr [edi], byte ptr [esi]
    add dword ptr [VAR_SMBIOS_LEN], SMBIOS_TYPE0_SIZE
    mov esi, dword ptr [VAR_SMBIOS_EP]
    cmp dword ptr [esi + SMBIOS30_ANCHOR_STRING], SMBIOS30_ANCHOR
    je smbios_entry_point               ; 3.0 has neither a count nor a largest size
    inc word ptr [esi + SMBIOS21_NUMBER_OF_STRUCTURES]
    cmp word ptr [esi + SMBIOS21_MAX_STRUCTURE_SIZE], SMBIOS_TYPE0_SIZE
    jae smbios_entry_point
    mov word ptr [esi + SMBIOS21_MAX_STRUCTURE_SIZE], SMBIOS_TYPE0_SIZE

; smbios_entry_point: the tables' address and length, then the checksums.
smbios_entry_point:
    mov esi, dword ptr [VAR_SMBIOS_EP]
    mov eax, dword ptr [VAR_SMBIOS_TABLES]
    mov edx, dword ptr [VAR_SMBIOS_LEN]
    cmp dword ptr [esi + SMBIOS30_ANCHOR_STRING], SMBIOS30_ANCHOR
    je smbios_30_entry_point
    mov dword ptr [esi + SMBIOS21_STRUCTURE_TABLE_ADDRESS], eax
    mov word ptr [esi + SMBIOS21_STRUCTURE_TABLE_LENGTH], dx
    mov byte ptr [esi + SMBIOS21_CHECKSUM], 0
    mov byte ptr [esi + SMBIOS21_INTERMEDIATE_CHECKSUM], 0
    lea ebp, [esi + SMBIOS21_CHECKSUM]
    mov edx, SMBIOS21_INTERMEDIATE_ANCHOR_STRING
    call checksum8                      ; bytes [0, 16) sum to 0 ...
    lea ebp, [esi + SMBIOS21_INTERMEDIATE_CHECKSUM - SMBIOS21_INTERMEDIATE_ANCHOR_STRING]
    mov edx, SIZEOF_SMBIOS21 - SMBIOS21_INTERMEDIATE_ANCHOR_STRING
    jmp checksum8                       ; ... and so do [16, 31), the "_DMI_" part (ESI there)
smbios_30_entry_point:
    mov dword ptr [esi + SMBIOS30_STRUCTURE_TABLE_ADDRESS], eax
    mov dword ptr [esi + SMBIOS30_STRUCTURE_TABLE_ADDRESS + 4], 0
    mov dword ptr [esi + SMBIOS30_STRUCTURE_TABLE_MAX_SIZE], edx
    mov byte ptr [esi + SMBIOS30_CHECKSUM], 0
    lea ebp, [esi + SMBIOS30_CHECKSUM]
    mov edx, SIZEOF_SMBIOS30
    jmp checksum8
smbios_done:
    ret
smbios_bad_length:
    mov dword ptr [ERR_ARGS], edx       ; the file's size
    mov dword ptr [ERR_ARGS + 4], eax   ; the entry point's
    jmp fatal_smbios_length
smbios_too_short:
    mov dword ptr [ERR_ARGS], edx       ; the file's size
    jmp fatal_smbios_short

    .balign 4, 0                        ; fwcfg_find compares names a dword at a time
name_smbios_anchor:
    .asciz "etc/smbios/smbios-anchor"
name_smbios_anchor_end:
    .balign 4, 0                        ; NUL-padded to a dword (fwcfg_find)
name_smbios_tables:
    .asciz "etc/smbios/smbios-tables"
name_smbios_tables_end:
    .balign 4, 0                        ; NUL-padded to a dword (fwcfg_find)
