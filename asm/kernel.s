; The kernel QEMU loaded (-kernel), its command line (-append) and initrd (-initrd), for both
; boot paths. QEMU's x86_load_linux takes one of two branches:
;   an ELF with a PVH note: FW_CFG_KERNEL_ENTRY = the PVH entry, the segments already in RAM;
;   a bzImage: no entry; FW_CFG_SETUP_DATA = the setup sectors with the setup header (QEMU has
;     filled cmd_line_ptr, type_of_loader, ramdisk_image/size), FW_CFG_KERNEL_DATA = the
;     protected-mode code, to be copied to FW_CFG_KERNEL_ADDR (1 MiB) by the firmware.

; kernel_check: which branch QEMU took, and that the kernel is the one build-fw patched this
; image for: same boot path, same entry, same load range. An image built with --any-kernel
; (patch table: boot_path BOOT_PATH_ANY, no entry) takes either branch and checks instead, off
; the pre-patched image's path, what build-fw would check of the kernel (kernel_check_any).
; For a bzImage the setup sectors up to boot_params.edd_mbr_sig_buffer are left at ZERO_PAGE
; (linux32.s keeps the header). VAR_ENTRY: where the hand-off jumps.
kernel_check:
    mov eax, dword ptr [patch_entry]
    test eax, eax
    jz kernel_check_unpatched           ; no entry: an any-kernel image, or never patched
kernel_check_qemu:
    mov ax, FW_CFG_KERNEL_SIZE
    call fwcfg_read_u32
    mov dword ptr [VAR_KERNEL_SIZE], eax
    test eax, eax
    jz fatal_no_kernel                  ; no -kernel: QEMU sets no kernel items
    mov dword ptr [VAR_LINUX32], 0
    mov ax, FW_CFG_KERNEL_ENTRY
    call fwcfg_read_u32
    test eax, eax
    jnz kernel_check_pvh
    mov ax, FW_CFG_SETUP_DATA           ; no PVH entry: a bzImage has a setup header
    mov edi, ZERO_PAGE
    mov ecx, BP_EDD_MBR_SIG_BUFFER      ; past a short item fw_cfg reads zeros
    call fwcfg_read
    cmp dword ptr [ZERO_PAGE + BP_HEADER], HDRS_MAGIC   ; setup_header.header
    jne fatal_not_bootable
    cmp dword ptr [patch_boot_path], BOOT_PATH_LINUX32
    jne kernel_check_any_bzimage
    mov dword ptr [VAR_LINUX32], 1
    mov eax, dword ptr [ZERO_PAGE + BP_CODE32_START]    ; setup_header.code32_start
    jmp kernel_check_entry
kernel_check_pvh:
    cmp dword ptr [patch_boot_path], BOOT_PATH_PVH
    jne kernel_check_any_pvh
kernel_check_entry:                     ; EAX = the entry of the kernel QEMU loaded
    mov dword ptr [VAR_ENTRY], eax
    cmp eax, dword ptr [patch_entry]
    jne kernel_wrong_entry
    mov ax, FW_CFG_KERNEL_ADDR
    call fwcfg_read_u32
    mov dword ptr [VAR_KERNEL_ADDR], eax
    mov ecx, dword ptr [VAR_KERNEL_SIZE]
    mov edx, dword ptr [patch_kernel_addr]
    mov edi, dword ptr [patch_kernel_size]
    cmp eax, edx
    jne kernel_wrong_range
    cmp ecx, edi
    jne kernel_wrong_range
kernel_check_end:                       ; EAX, ECX = FW_CFG_KERNEL_ADDR, FW_CFG_KERNEL_SIZE
    add eax, ecx
    mov dword ptr [VAR_KERNEL_END], eax ; the kernel's bytes end here ...
    cmp dword ptr [VAR_LINUX32], 0
    je kernel_check_done
    mov eax, dword ptr [ZERO_PAGE + BP_PREF_ADDRESS]    ; ... but a bzImage decompresses
    add eax, dword ptr [ZERO_PAGE + BP_INIT_SIZE]       ;   into [pref_address, + init_size)
    jc kernel_check_done                ;   (checked by build-fw or kernel_check_any_bzimage)
    cmp eax, dword ptr [VAR_KERNEL_END]
    jbe kernel_check_done
    mov dword ptr [VAR_KERNEL_END], eax
kernel_check_done:
    ret
; The failures' numbers go to ERR_ARGS here, off the boot's path (as in the other files).
kernel_wrong_entry:
    mov dword ptr [ERR_ARGS], eax       ; QEMU's entry
    mov ecx, dword ptr [patch_entry]
    mov dword ptr [ERR_ARGS + 4], ecx   ; the patched one
    jmp fatal_wrong_entry
kernel_wrong_range:
    mov dword ptr [ERR_ARGS], eax       ; QEMU's load address and size
    mov dword ptr [ERR_ARGS + 4], ecx
    mov dword ptr [ERR_ARGS + 8], edx   ; the patched ones
    mov dword ptr [ERR_ARGS + 12], edi
    jmp fatal_wrong_range

; The any-kernel image (build-fw --any-kernel): what build-fw checks of a kernel at build time,
; checked here at run time as far as fw_cfg shows it (docs/design.md, "One image for any
; kernel"). The pre-patched image comes here only to fail.
kernel_check_unpatched:
    cmp dword ptr [patch_boot_path], BOOT_PATH_ANY
    je kernel_check_qemu
    jmp fatal_unpatched
; A bzImage: its setup header as builder/bzimage.py reads it (what fw_cfg has of the file).
kernel_check_any_bzimage:
    cmp dword ptr [patch_boot_path], BOOT_PATH_ANY
    jne fatal_built_for_pvh
    cmp word ptr [ZERO_PAGE + BP_BOOT_FLAG], BOOT_FLAG_MAGIC
    jne kernel_bz_boot_flag
    cmp word ptr [ZERO_PAGE + BP_VERSION], LINUX32_MIN_VERSION
    jb kernel_bz_protocol               ; init_size and pref_address: 2.10
    test byte ptr [ZERO_PAGE + BP_LOADFLAGS], LOADED_HIGH
    jz kernel_bz_zimage
    mov eax, dword ptr [VAR_KERNEL_SIZE]
    add eax, 15
    rcr eax, 1                          ; the carry too: the size in 16-byte units, rounded up
    shr eax, 3
    cmp dword ptr [ZERO_PAGE + BP_SYSSIZE], eax
    ja kernel_bz_syssize                ; the header says more code than QEMU loaded
    mov eax, dword ptr [ZERO_PAGE + BP_PAYLOAD_OFFSET]
    add eax, dword ptr [ZERO_PAGE + BP_PAYLOAD_LENGTH]
    jc kernel_bz_payload
    cmp eax, dword ptr [VAR_KERNEL_SIZE]
    ja kernel_bz_payload                ; the payload runs past the protected-mode code
    cmp dword ptr [ZERO_PAGE + BP_PREF_ADDRESS + 4], 0
    jne kernel_bz_pref_high
    mov eax, dword ptr [ZERO_PAGE + BP_PREF_ADDRESS]
    cmp eax, BZIMAGE_LOAD_ADDR
    jb kernel_bz_decompress
    mov ecx, dword ptr [ZERO_PAGE + BP_INIT_SIZE]
    test ecx, ecx
    jz kernel_bz_decompress
    add eax, ecx
    jc kernel_bz_decompress
    cmp eax, ROM_BASE
    ja kernel_bz_decompress             ; [pref_address, + init_size) into the ROM or past 4 GiB
    mov dword ptr [VAR_LINUX32], 1
    mov eax, dword ptr [ZERO_PAGE + BP_CODE32_START]
    jmp kernel_check_any
kernel_check_any_pvh:
    cmp dword ptr [patch_boot_path], BOOT_PATH_ANY
    jne fatal_built_for_bzimage
; EAX = the entry (PVH or code32_start): inside what QEMU loaded, which is clear of the
; firmware (at or above 1 MiB, ending at or below its ROM).
kernel_check_any:
    mov dword ptr [VAR_ENTRY], eax
    mov ax, FW_CFG_KERNEL_ADDR
    call fwcfg_read_u32
    mov dword ptr [VAR_KERNEL_ADDR], eax
    mov ecx, dword ptr [VAR_KERNEL_SIZE]
    lea edi, [eax - HIGHMEM_START]      ; the address above 1 MiB (huge below it)
    mov edx, ROM_BASE - HIGHMEM_START
    sub edx, edi                        ; room from the address to the ROM ...
    jb kernel_bad_place                 ; ... none: below 1 MiB (the firmware's RAM, the
    cmp ecx, edx                        ;     EBDA, its ROM's shadow) or above the ROM's start
    ja kernel_bad_place                 ; into the ROM, or past 4 GiB
    mov edx, dword ptr [VAR_ENTRY]
    sub edx, eax
    cmp edx, ecx
    jb kernel_check_end                 ; FW_CFG_KERNEL_ADDR <= entry < ... + SIZE
kernel_bad_entry:
    mov edx, dword ptr [VAR_ENTRY]
    mov dword ptr [ERR_ARGS], edx
    mov dword ptr [ERR_ARGS + 4], eax
    mov dword ptr [ERR_ARGS + 8], ecx
    jmp fatal_bad_entry
kernel_bad_place:
    mov dword ptr [ERR_ARGS], eax
    mov dword ptr [ERR_ARGS + 4], ecx
    jmp fatal_kernel_place
kernel_bz_boot_flag:
    movzx eax, word ptr [ZERO_PAGE + BP_BOOT_FLAG]
    mov dword ptr [ERR_ARGS], eax
    jmp fatal_bz_boot_flag
kernel_bz_protocol:
    movzx eax, word ptr [ZERO_PAGE + BP_VERSION]
    mov dword ptr [ERR_ARGS], eax
    jmp fatal_bz_protocol
kernel_bz_zimage:
    movzx eax, byte ptr [ZERO_PAGE + BP_LOADFLAGS]
    mov dword ptr [ERR_ARGS], eax
    jmp fatal_bz_zimage
kernel_bz_syssize:
    mov eax, dword ptr [ZERO_PAGE + BP_SYSSIZE]
    mov dword ptr [ERR_ARGS], eax
    mov eax, dword ptr [VAR_KERNEL_SIZE]
    mov dword ptr [ERR_ARGS + 4], eax
    jmp fatal_bz_syssize
kernel_bz_payload:
    mov eax, dword ptr [ZERO_PAGE + BP_PAYLOAD_OFFSET]
    mov dword ptr [ERR_ARGS], eax
    mov eax, dword ptr [ZERO_PAGE + BP_PAYLOAD_LENGTH]
    mov dword ptr [ERR_ARGS + 4], eax
    mov eax, dword ptr [VAR_KERNEL_SIZE]
    mov dword ptr [ERR_ARGS + 8], eax
    jmp fatal_bz_payload
kernel_bz_pref_high:
    mov eax, dword ptr [ZERO_PAGE + BP_PREF_ADDRESS + 4]
    mov dword ptr [ERR_ARGS], eax
    jmp fatal_bz_pref_high
kernel_bz_decompress:
    mov eax, dword ptr [ZERO_PAGE + BP_PREF_ADDRESS]
    mov dword ptr [ERR_ARGS], eax
    mov eax, dword ptr [ZERO_PAGE + BP_INIT_SIZE]
    mov dword ptr [ERR_ARGS + 4], eax
    jmp fatal_bz_decompress

; kernel_load: a bzImage's protected-mode code, FW_CFG_KERNEL_DATA -> FW_CFG_KERNEL_ADDR in
; one transfer. (QEMU's PVH branch has already put the ELF's segments in RAM.)
kernel_load:
    cmp dword ptr [VAR_LINUX32], 0
    je kernel_load_done
    mov ax, FW_CFG_KERNEL_DATA
    mov ecx, dword ptr [VAR_KERNEL_SIZE]
    mov edi, dword ptr [VAR_KERNEL_ADDR]
    call fwcfg_read
kernel_load_done:
    ret

; cmdline_load: FW_CFG_CMDLINE_DATA (CMDLINE_SIZE bytes, NUL included) to CMDLINE. In the
; PVH branch QEMU sets no FW_CFG_CMDLINE_ADDR: the place is ours; for a bzImage linux32.s
; points cmd_line_ptr here too, so the firmware writes nothing outside its own RAM.
cmdline_load:
    mov ax, FW_CFG_CMDLINE_SIZE
    call fwcfg_read_u32
    mov dword ptr [VAR_CMDLINE_SIZE], eax
    test eax, eax
    jz cmdline_done
    cmp eax, CMDLINE_MAX
    ja cmdline_long
    mov ecx, eax
    mov ax, FW_CFG_CMDLINE_DATA
    mov edi, CMDLINE
    call fwcfg_read
    mov eax, dword ptr [VAR_CMDLINE_SIZE]
    mov byte ptr [eax + CMDLINE - 1], 0 ; NUL-terminated whatever QEMU sent
cmdline_done:
    ret
cmdline_long:
    mov dword ptr [ERR_ARGS], eax
    jmp fatal_cmdline_long

; initrd_load: QEMU tells where (FW_CFG_INITRD_ADDR) but puts the bytes only in
; FW_CFG_INITRD_DATA: copy them there, in one transfer.
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
    cmp eax, HIGHMEM_START              ; below 1 MiB: the firmware's own areas
    jb initrd_bad_place
    mov edx, eax
    add edx, ecx                        ; EDX = end
    jc initrd_bad_place                 ; past 4 GiB
    cmp edx, dword ptr [VAR_KERNEL_ADDR]
    jbe initrd_copy                     ; ends before the kernel
    cmp eax, dword ptr [VAR_KERNEL_END]
    jb initrd_bad_place                 ; starts before the kernel's memory ends: overlap
initrd_copy:
    mov edi, eax
    mov ax, FW_CFG_INITRD_DATA
    call fwcfg_read
initrd_done:
    ret
initrd_bad_place:
    mov dword ptr [ERR_ARGS], eax       ; FW_CFG_INITRD_ADDR
    mov dword ptr [ERR_ARGS + 4], ecx   ; FW_CFG_INITRD_SIZE
    jmp fatal_initrd_place
