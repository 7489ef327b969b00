; The Linux boot protocol's 32-bit entry, for bzImages (Documentation/arch/x86/boot.rst,
; "32-bit BOOT PROTOCOL"): struct boot_params, the "zero page", at ZERO_PAGE, then a jump to
; setup_header.code32_start with ESI = the zero page.

; zero_page_build: kernel_check left the first BP_HDR_MAX_END bytes of FW_CFG_SETUP_DATA at
; ZERO_PAGE. Keep the setup header, [BP_HDR, 0x202 + the jump's rel8 at 0x201), as QEMU
; filled it (type_of_loader, loadflags, heap_end_ptr, setup_data); zero the rest of the 4 KiB;
; fill the fields a loader owns.
zero_page_build:
    xor eax, eax
    mov edi, ZERO_PAGE
    mov ecx, BP_HDR / 4
    rep stosd                           ; [0, 0x1f0): screen_info ... sentinel, all zero
    stosb                               ; 0x1f0: the last byte before the header
    movzx edi, byte ptr [ZERO_PAGE + BP_JUMP + 1]
    add edi, ZERO_PAGE + BP_HEADER      ; EDI = the header's end
    mov ecx, ZERO_PAGE + BP_HDR_MAX_END
    sub ecx, edi
    jae zero_page_pad
    mov edi, ZERO_PAGE + BP_HDR_MAX_END ; a jump past _pad7: keep no more than fits
    xor ecx, ecx
zero_page_pad:
    rep stosb                           ; the header's end -> _pad7's end
    mov ecx, ZERO_PAGE_SIZE / 4 - BP_HDR_MAX_END / 4
    rep stosd                           ; edd_mbr_sig_buffer, e820_table, ... the page's end
    mov ecx, dword ptr [VAR_MEMMAP_N]   ; e820_table[] from the memory map memmap.s built
    mov byte ptr [ZERO_PAGE + BP_E820_ENTRIES], cl  ; boot_params.e820_entries
    mov esi, MEMMAP
    mov edi, ZERO_PAGE + BP_E820_TABLE
    jecxz zero_page_rsdp
zero_page_e820:
    movsd dword ptr [edi], dword ptr [esi]  ; boot_e820_entry.addr (hvm_memmap_table_entry.addr)
    movsd dword ptr [edi], dword ptr [esi]
    movsd dword ptr [edi], dword ptr [esi]  ; .size
    movsd dword ptr [edi], dword ptr [esi]
    movsd dword ptr [edi], dword ptr [esi]  ; .type
    add esi, HVM_MEMMAP_ENTRY_SIZE - BOOT_E820_ENTRY_SIZE   ; skip .reserved
    loop zero_page_e820
zero_page_rsdp:
    mov eax, dword ptr [VAR_RSDP]
    mov dword ptr [ZERO_PAGE + BP_ACPI_RSDP_ADDR], eax  ; boot_params.acpi_rsdp_addr (0: none)
    xor eax, eax
    cmp dword ptr [VAR_CMDLINE_SIZE], eax
    je zero_page_cmdline
    mov eax, CMDLINE
zero_page_cmdline:
    mov dword ptr [ZERO_PAGE + BP_CMD_LINE_PTR], eax    ; setup_header.cmd_line_ptr
    xor eax, eax
    mov ecx, dword ptr [VAR_INITRD_SIZE]
    jecxz zero_page_ramdisk
    mov eax, dword ptr [VAR_INITRD_ADDR]
zero_page_ramdisk:
    mov dword ptr [ZERO_PAGE + BP_RAMDISK_IMAGE], eax   ; setup_header.ramdisk_image
    mov dword ptr [ZERO_PAGE + BP_RAMDISK_SIZE], ecx    ; setup_header.ramdisk_size

; linux32_handoff: the CPU state of the 32-bit boot protocol: protected mode, paging off,
; interrupts off (never on since reset), CS = __BOOT_CS (SEL_CODE32), DS = ES = SS =
; __BOOT_DS (SEL_DATA32), both flat 4 GiB; ESI = boot_params; EBP = EDI = EBX = 0.
linux32_handoff:
    mov al, BOOT_EVENT_FW_DO_BOOT       ; qemu-boot-time: fw_do_boot
    out PORT_BOOT_EVENT, al
    mov esi, ZERO_PAGE
    xor ebp, ebp
    xor edi, edi
    xor ebx, ebx
    jmp dword ptr [patch_entry]         ; = setup_header.code32_start (kernel_check)
