; The Linux boot protocol's 32-bit entry, for bzImages (Documentation/arch/x86/boot.rst,
; "32-bit BOOT PROTOCOL"): struct boot_params, the "zero page", at ZERO_PAGE, then a jump to
; setup_header.code32_start with ESI = the zero page.

; zero_page_build: kernel_check left FW_CFG_SETUP_DATA up to BP_EDD_MBR_SIG_BUFFER at
; ZERO_PAGE. Keep the setup header, [BP_HDR, BP_HEADER + the jump's rel8 at BP_JUMP + 1), as
; QEMU filled it (type_of_loader, loadflags, heap_end_ptr, setup_data); zero the rest of the
; page; fill the fields a loader owns.
zero_page_build:
    xor eax, eax
    mov edi, ZERO_PAGE
    mov ecx, BP_HDR / 4
    rep stosd                           ; [0, BP_HDR & ~3): screen_info ... sentinel, all zero
    stosb                               ; BP_HDR - 1: the last byte before the header
    movzx edi, byte ptr [ZERO_PAGE + BP_JUMP + 1]
    add edi, ZERO_PAGE + BP_HEADER      ; EDI = the header's end
    mov ecx, ZERO_PAGE + BP_EDD_MBR_SIG_BUFFER
    sub ecx, edi
    jae zero_page_pad
    mov edi, ZERO_PAGE + BP_EDD_MBR_SIG_BUFFER  ; a jump past _pad7: keep no more than fits
    xor ecx, ecx
zero_page_pad:
    rep stosb                           ; the header's end -> _pad7's end
    mov ecx, SIZEOF_BP / 4 - BP_EDD_MBR_SIG_BUFFER / 4
    rep stosd                           ; edd_mbr_sig_buffer, e820_table, ... the page's end
    mov edi, ZERO_PAGE + BP_E820_TABLE
    call memmap_copy_e820               ; e820_table[] = the memory map memmap.s built
    mov byte ptr [ZERO_PAGE + BP_E820_ENTRIES], cl
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
    jmp dword ptr [VAR_ENTRY]           ; = setup_header.code32_start (kernel_check)
