; The PVH boot: the kernel QEMU loaded, its command line and initrd, struct hvm_start_info
; (Xen's arch-x86/hvm/start_info.h, version 1) and the jump to XEN_ELFNOTE_PHYS32_ENTRY.

; kernel_check: QEMU loaded an ELF with a PVH note (FW_CFG_KERNEL_ENTRY != 0), and it is the
; kernel build-fw patched this image for: same entry, same load range.
kernel_check:
    mov eax, dword ptr [patch_entry]
    test eax, eax
    jz fatal_unpatched
    mov ax, FW_CFG_KERNEL_SIZE
    call fwcfg_read_u32
    mov dword ptr [VAR_KERNEL_SIZE], eax
    test eax, eax
    jz fatal_no_kernel                  ; no -kernel: QEMU sets no kernel items
    mov ax, FW_CFG_KERNEL_ENTRY
    call fwcfg_read_u32
    test eax, eax
    jz fatal_not_pvh                    ; a kernel, but not loaded through the PVH branch
    mov dword ptr [ERR_ARGS], eax
    mov ecx, dword ptr [patch_entry]
    mov dword ptr [ERR_ARGS + 4], ecx
    cmp eax, ecx
    jne fatal_wrong_entry
    mov ax, FW_CFG_KERNEL_ADDR
    call fwcfg_read_u32
    mov dword ptr [VAR_KERNEL_ADDR], eax
    mov dword ptr [ERR_ARGS], eax
    mov ecx, dword ptr [VAR_KERNEL_SIZE]
    mov dword ptr [ERR_ARGS + 4], ecx
    mov edx, dword ptr [patch_kernel_addr]
    mov dword ptr [ERR_ARGS + 8], edx
    mov edi, dword ptr [patch_kernel_size]
    mov dword ptr [ERR_ARGS + 12], edi
    cmp eax, edx
    jne fatal_wrong_range
    cmp ecx, edi
    jne fatal_wrong_range
    ret

; cmdline_load: FW_CFG_CMDLINE_DATA (CMDLINE_SIZE bytes, NUL included) to CMDLINE. In the
; PVH branch QEMU sets no FW_CFG_CMDLINE_ADDR: the place is ours.
cmdline_load:
    mov ax, FW_CFG_CMDLINE_SIZE
    call fwcfg_read_u32
    mov dword ptr [VAR_CMDLINE_SIZE], eax
    test eax, eax
    jz cmdline_done
    mov dword ptr [ERR_ARGS], eax
    cmp eax, CMDLINE_MAX
    ja fatal_cmdline_long
    mov ecx, eax
    mov ax, FW_CFG_CMDLINE_DATA
    mov edi, CMDLINE
    call fwcfg_read
    mov eax, dword ptr [VAR_CMDLINE_SIZE]
    mov byte ptr [eax + CMDLINE - 1], 0 ; NUL-terminated whatever QEMU sent
cmdline_done:
    ret

; initrd_load: QEMU tells where (FW_CFG_INITRD_ADDR) but in the PVH branch puts the bytes
; only in FW_CFG_INITRD_DATA: copy them there, in one transfer.
initrd_load:
    mov ax, FW_CFG_INITRD_SIZE
    call fwcfg_read_u32
    mov dword ptr [VAR_INITRD_SIZE], eax
    test eax, eax
    jz initrd_done
    mov ax, FW_CFG_INITRD_ADDR
    call fwcfg_read_u32
    mov dword ptr [VAR_INITRD_ADDR], eax
    mov ecx, dword ptr [VAR_INITRD_SIZE]
    mov dword ptr [ERR_ARGS], eax
    mov dword ptr [ERR_ARGS + 4], ecx
    cmp eax, HIGHMEM_START              ; below 1 MiB: the firmware's own areas
    jb fatal_initrd_place
    mov edx, eax
    add edx, ecx                        ; EDX = end
    jc fatal_initrd_place               ; past 4 GiB
    cmp edx, dword ptr [VAR_KERNEL_ADDR]
    jbe initrd_copy                     ; ends before the kernel
    mov ebx, dword ptr [VAR_KERNEL_ADDR]
    add ebx, dword ptr [VAR_KERNEL_SIZE]
    cmp eax, ebx
    jb fatal_initrd_place               ; starts before the kernel ends: overlap
initrd_copy:
    mov edi, eax
    mov ax, FW_CFG_INITRD_DATA
    call fwcfg_read
initrd_done:
    ret

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
