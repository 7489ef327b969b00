; The PVH hand-off: struct hvm_start_info (Xen's arch-x86/hvm/start_info.h, version 1) and
; the jump to XEN_ELFNOTE_PHYS32_ENTRY.

; start_info_build: struct hvm_start_info at START_INFO and its module list at MODLIST.
; Every field is written: RAM keeps its contents across a guest reboot.
start_info_build:
    mov edi, START_INFO
    mov dword ptr [edi], HVM_START_MAGIC        ; .magic
    mov dword ptr [edi + 4], HVM_START_VERSION  ; .version
    xor eax, eax
    mov dword ptr [edi + 8], eax        ; .flags
    mov dword ptr [edi + 12], eax       ; .nr_modules
    mov dword ptr [edi + 16], eax       ; .modlist_paddr
    mov dword ptr [edi + 20], eax
    mov dword ptr [edi + 24], eax       ; .cmdline_paddr
    mov dword ptr [edi + 28], eax
    mov ecx, dword ptr [VAR_RSDP]
    mov dword ptr [edi + 32], ecx       ; .rsdp_paddr (0: no ACPI)
    mov dword ptr [edi + 36], eax
    mov dword ptr [edi + 40], MEMMAP    ; .memmap_paddr
    mov dword ptr [edi + 44], eax
    mov ecx, dword ptr [VAR_MEMMAP_N]
    mov dword ptr [edi + 48], ecx       ; .memmap_entries
    mov dword ptr [edi + 52], eax       ; .reserved
    cmp dword ptr [VAR_CMDLINE_SIZE], eax
    je start_info_modules
    mov dword ptr [edi + 24], CMDLINE
start_info_modules:
    mov ecx, dword ptr [VAR_INITRD_SIZE]
    test ecx, ecx
    jz start_info_done
    mov dword ptr [edi + 12], 1         ; one module: Linux takes module 0 as its initrd
    mov dword ptr [edi + 16], MODLIST
    mov edi, MODLIST
    mov edx, dword ptr [VAR_INITRD_ADDR]
    mov dword ptr [edi], edx            ; hvm_modlist_entry.paddr
    mov dword ptr [edi + 4], eax
    mov dword ptr [edi + 8], ecx        ; .size
    mov dword ptr [edi + 12], eax
    mov dword ptr [edi + 16], eax       ; .cmdline_paddr: none
    mov dword ptr [edi + 20], eax
    mov dword ptr [edi + 24], eax       ; .reserved
    mov dword ptr [edi + 28], eax
start_info_done:
    ret

; pvh_handoff: the CPU state of the PVH ABI: 32-bit protected mode, paging off, CR0 = PE|ET,
; CR4 = 0, flat CS/DS/ES/SS, IF clear (never set since reset), EBX = &hvm_start_info.
pvh_handoff:
    mov al, BOOT_EVENT_FW_DO_BOOT       ; qemu-boot-time: fw_do_boot
    out PORT_BOOT_EVENT, al
    mov ebx, START_INFO
    jmp dword ptr [patch_entry]
