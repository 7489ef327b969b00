; The patch table: build-fw fills it from the kernel's ELF (builder/patch.py); an unpatched
; image refuses to boot. Each field is a little-endian u32.

patch_table:
    .ascii "PVHFWPT2"                   ; magic and version of this table
patch_entry:
    .long 0                             ; XEN_ELFNOTE_PHYS32_ENTRY; QEMU: FW_CFG_KERNEL_ENTRY
patch_kernel_addr:
    .long 0                             ; lowest PT_LOAD p_paddr; QEMU: FW_CFG_KERNEL_ADDR
patch_kernel_size:
    .long 0                             ; PT_LOAD span; QEMU: FW_CFG_KERNEL_SIZE
patch_boot_path:
    .long 0                             ; BOOT_PATH_PVH (an ELF) or BOOT_PATH_LINUX32 (a bzImage)
patch_table_end:
