; The PVH hand-off: struct hvm_start_info (Xen's arch-x86/hvm/start_info.h, version 1) and
; the jump to XEN_ELFNOTE_PHYS32_ENTRY.

; start_info_build: struct hvm_start_info at START_INFO and its module list at MODLIST.
; Every field is written: RAM keeps its contents across a guest reboot.
start_info_build:
    mov edi, START_INFO
    mov dword ptr [edi + HVM_SI_MAGIC], HVM_START_MAGIC
    mov dword ptr [edi + HVM_SI_VERSION], HVM_START_VERSION
    xor eax, eax
    mov dword ptr [edi + HVM_SI_FLAGS], eax
    mov dword ptr [edi + HVM_SI_NR_MODULES], eax
    mov dword ptr [edi + HVM_SI_MODLIST_PADDR], eax
    mov dword ptr [edi + HVM_SI_MODLIST_PADDR + 4], eax
    mov dword ptr [edi + HVM_SI_CMDLINE_PADDR], eax
    mov dword ptr [edi + HVM_SI_CMDLINE_PADDR + 4], eax
    mov ecx, dword ptr [VAR_RSDP]
    mov dword ptr [edi + HVM_SI_RSDP_PADDR], ecx    ; 0: no ACPI
    mov dword ptr [edi + HVM_SI_RSDP_PADDR + 4], eax
    mov dword ptr [edi + HVM_SI_MEMMAP_PADDR], MEMMAP
    mov dword ptr [edi + HVM_SI_MEMMAP_PADDR + 4], eax
    mov ecx, dword ptr [VAR_MEMMAP_N]
    mov dword ptr [edi + HVM_SI_MEMMAP_ENTRIES], ecx
    mov dword ptr [edi + HVM_SI_RESERVED], eax
    cmp dword ptr [VAR_CMDLINE_SIZE], eax
    je start_info_modules
    mov dword ptr [edi + HVM_SI_CMDLINE_PADDR], CMDLINE
start_info_modules:
    mov ecx, dword ptr [VAR_INITRD_SIZE]
    test ecx, ecx
    jz start_info_done
    mov dword ptr [edi + HVM_SI_NR_MODULES], 1  ; Linux takes module 0 as its initrd
    mov dword ptr [edi + HVM_SI_MODLIST_PADDR], MODLIST
    mov edi, MODLIST
    mov edx, dword ptr [VAR_INITRD_ADDR]
    mov dword ptr [edi + HVM_MOD_PADDR], edx
    mov dword ptr [edi + HVM_MOD_PADDR + 4], eax
    mov dword ptr [edi + HVM_MOD_SIZE], ecx
    mov dword ptr [edi + HVM_MOD_SIZE + 4], eax
    mov dword ptr [edi + HVM_MOD_CMDLINE_PADDR], eax    ; none
    mov dword ptr [edi + HVM_MOD_CMDLINE_PADDR + 4], eax
    mov dword ptr [edi + HVM_MOD_RESERVED], eax
    mov dword ptr [edi + HVM_MOD_RESERVED + 4], eax
start_info_done:
    ret

; pvh_handoff: the CPU state of the PVH ABI: 32-bit protected mode, paging off, CR0 = PE|ET,
; CR4 = 0, flat CS/DS/ES/SS, IF clear (never set since reset), EBX = &hvm_start_info.
pvh_handoff:
    mov al, BOOT_EVENT_FW_DO_BOOT       ; qemu-boot-time: fw_do_boot
    out PORT_BOOT_EVENT, al
    mov ebx, START_INFO
    jmp dword ptr [VAR_ENTRY]           ; = the PVH entry (kernel_check)
