; Every way the boot can fail, each one line on the serial port (failure.s: fatal).
; ERR_ARGS holds the numbers a message prints, in order.

fatal_no_fwcfg:                         ; these three leave fw_cfg unusable (failure.s)
    mov esi, msg_no_fwcfg
    jmp fatal_without_fwcfg
fatal_dma:
    mov esi, msg_dma
    jmp fatal_without_fwcfg
fatal_dir_too_big:
    mov dword ptr [ERR_ARGS + 4], FILE_DIR_MAX
    mov esi, msg_dir_too_big
    jmp fatal_without_fwcfg
fatal_e820_too_big:
    mov dword ptr [ERR_ARGS + 4], E820_MAX * SIZEOF_E820
    mov esi, msg_e820_too_big
    jmp fatal
fatal_memmap_full:
    mov dword ptr [ERR_ARGS], MEMMAP_MAX
    mov esi, msg_memmap_full
    jmp fatal
fatal_unpatched:
    mov esi, msg_unpatched
    jmp fatal
fatal_no_kernel:
    mov esi, msg_no_kernel
    cmp dword ptr [patch_boot_path], BOOT_PATH_ANY
    jne fatal
    mov esi, msg_no_kernel_any          ; an any-kernel image was built for no kernel
    jmp fatal
fatal_not_bootable:
    mov esi, msg_not_bootable
    jmp fatal
fatal_built_for_pvh:
    mov esi, msg_built_for_pvh
    jmp fatal
fatal_built_for_bzimage:
    mov esi, msg_built_for_bzimage
    jmp fatal
fatal_wrong_entry:
    mov esi, msg_wrong_entry
    jmp fatal
fatal_wrong_range:
    mov esi, msg_wrong_range
    jmp fatal
fatal_bad_entry:
    mov esi, msg_bad_entry
    jmp fatal
fatal_kernel_place:
    mov esi, msg_kernel_place
    jmp fatal
fatal_bz_boot_flag:
    mov esi, msg_bz_boot_flag
    jmp fatal
fatal_bz_protocol:
    mov esi, msg_bz_protocol
    jmp fatal
fatal_bz_zimage:
    mov esi, msg_bz_zimage
    jmp fatal
fatal_bz_syssize:
    mov esi, msg_bz_syssize
    jmp fatal
fatal_bz_payload:
    mov esi, msg_bz_payload
    jmp fatal
fatal_bz_pref_high:
    mov esi, msg_bz_pref_high
    jmp fatal
fatal_bz_decompress:
    mov esi, msg_bz_decompress
    jmp fatal
fatal_cmdline_long:
    mov dword ptr [ERR_ARGS + 4], CMDLINE_MAX
    mov esi, msg_cmdline_long
    jmp fatal
fatal_initrd_place:
    mov esi, msg_initrd_place
    jmp fatal
fatal_loader_too_big:
    mov dword ptr [ERR_ARGS + 4], LOADER_MAX
    mov esi, msg_loader_too_big
    jmp fatal
fatal_loader_bad:
    mov esi, msg_loader_bad
    jmp fatal
fatal_loader_no_file:
    mov esi, msg_loader_no_file
    jmp fatal
fatal_loader_no_alloc:
    mov esi, msg_loader_no_alloc
    jmp fatal
fatal_acpi_space:
    mov esi, msg_acpi_space
    jmp fatal
fatal_memmap_carve:
    mov esi, msg_memmap_carve
    jmp fatal
fatal_smbios_anchor:
    mov esi, msg_smbios_anchor
    jmp fatal
fatal_smbios_no_tables:
    mov esi, msg_smbios_no_tables
    jmp fatal
fatal_smbios_length:
    mov esi, msg_smbios_length
    jmp fatal
fatal_smbios_short:
    mov esi, msg_smbios_short
    jmp fatal
fatal_smbios_space:
    mov esi, msg_smbios_space
    jmp fatal
fatal_mptable_cpus:
    mov esi, msg_mptable_cpus
    jmp fatal
fatal_mptable_space:
    mov esi, msg_mptable_space
    jmp fatal
fatal_write_pointer:
    mov esi, msg_write_pointer
    jmp fatal

msg_prefix:
    .asciz "pvhfw: "
msg_crlf:
    .asciz "\r\n"
msg_no_fwcfg:
    .asciz "no fw_cfg device: its signature is not QEMU"
msg_dma:
    .asciz "fw_cfg DMA transfer failed"
msg_dir_too_big:
    .asciz "fw_cfg file directory has % entries, more than %"
msg_e820_too_big:
    .asciz "fw_cfg etc/e820 is % bytes, more than %"
msg_memmap_full:
    .asciz "memory map needs more than % entries"
msg_unpatched:
    .asciz "this image has no kernel entry: build it with build-fw --kernel KERNEL or --any-kernel"
msg_no_kernel:
    .asciz "no kernel: start QEMU with -kernel (the vmlinux this image was built for)"
msg_no_kernel_any:
    .asciz "no kernel: start QEMU with -kernel (a vmlinux with a PVH note, or a bzImage)"
msg_not_bootable:
    .asciz "QEMU's -kernel is neither an ELF with a PVH note nor a bzImage"
msg_built_for_pvh:
    .asciz "QEMU loaded a bzImage, but this image was built for a PVH vmlinux: run build-fw --kernel with the bzImage"
msg_built_for_bzimage:
    .asciz "QEMU loaded a PVH ELF, but this image was built for a bzImage: run build-fw --kernel with the vmlinux"
msg_wrong_entry:
    .asciz "kernel entry % from QEMU is not % of the kernel this image was built for"
msg_wrong_range:
    .asciz "kernel loaded at %+% by QEMU, not %+% as the kernel this image was built for"
msg_bad_entry:
    .asciz "kernel entry % from QEMU is outside the kernel it loaded at %+%"
msg_kernel_place:
    .asciz "kernel loaded at %+% by QEMU is below 1 MiB or runs into the firmware's ROM below 4 GiB"
msg_bz_boot_flag:
    .asciz "QEMU's bzImage is corrupt: boot_flag is %, not 0xaa55"
msg_bz_protocol:
    .asciz "QEMU's bzImage has Linux boot protocol %, older than 2.10 (Linux 2.6.31), the oldest whose 32-bit entry this firmware uses"
msg_bz_zimage:
    .asciz "QEMU's -kernel is a zImage (loadflags % without LOADED_HIGH: its code loads below 1 MiB), not a bzImage"
msg_bz_syssize:
    .asciz "QEMU's bzImage is truncated: its syssize says % 16-byte units of protected-mode code, QEMU loaded % bytes"
msg_bz_payload:
    .asciz "QEMU's bzImage is corrupt: the payload at %+% runs past its protected-mode code (% bytes)"
msg_bz_pref_high:
    .asciz "QEMU's bzImage has pref_address above 4 GiB (high dword %), out of the 32-bit entry's reach"
msg_bz_decompress:
    .asciz "QEMU's bzImage has pref_address % + init_size %, not between 1 MiB and the firmware's ROM below 4 GiB"
msg_cmdline_long:
    .asciz "command line is % bytes, more than %"
msg_initrd_place:
    .asciz "initrd at %+% is below 1 MiB, past 4 GiB or over the kernel's memory"
msg_loader_too_big:
    .asciz "fw_cfg etc/table-loader is % bytes, more than %"
msg_loader_bad:
    .asciz "fw_cfg etc/table-loader: command at offset % is malformed"
msg_loader_no_file:
    .asciz "fw_cfg etc/table-loader: command at offset % names a file fw_cfg does not have"
msg_loader_no_alloc:
    .asciz "fw_cfg etc/table-loader: command at offset % names a file not allocated before"
msg_acpi_space:
    .asciz "fw_cfg etc/table-loader: command at offset % allocates % bytes, with no room left"
msg_memmap_carve:
    .asciz "memory map: no RAM entry below 4 GiB holds %+%, which the firmware's tables need"
msg_smbios_anchor:
    .asciz "fw_cfg etc/smbios/smbios-anchor (% bytes) is not an SMBIOS 2.1 or 3.0 entry point"
msg_smbios_no_tables:
    .asciz "fw_cfg has etc/smbios/smbios-anchor but no etc/smbios/smbios-tables"
msg_smbios_length:
    .asciz "fw_cfg etc/smbios/smbios-tables is % bytes, its entry point says %"
msg_smbios_short:
    .asciz "fw_cfg etc/smbios/smbios-tables is % bytes, less than one structure's header"
msg_smbios_space:
    .asciz "no room for the SMBIOS tables in the F segment (not RAM on this machine, or full)"
msg_mptable_cpus:
    .asciz "fw_cfg counts % CPUs: an MP table (no ACPI) describes 255 at most"
msg_mptable_space:
    .asciz "no room for an MP table of % CPUs (the F segment is not RAM here, the EBDA holds 40)"
msg_write_pointer:
    .asciz "fw_cfg etc/table-loader: command at offset % writes to fw_cfg, which needs DMA"
