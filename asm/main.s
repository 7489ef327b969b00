; The 32-bit part, from the far jump of reset16.s to the kernel's entry. One pass, no loops
; back: set up segments and a stack, then each step of the boot in order; the last step is
; the PVH hand-off or, for a bzImage, the Linux boot protocol's.

start32:
    mov eax, SEL_DATA32                 ; PVH ABI: DS, ES, SS flat 32-bit read/write
    mov ds, eax
    mov es, eax
    mov ss, eax
    mov fs, eax
    mov gs, eax
    mov esp, STACK_TOP
    cld                                 ; string instructions count up
    call fwcfg_init                     ; fwcfg.s: signature, DMA or I/O ports, file directory
    call kernel_check                   ; kernel.s: QEMU loaded the kernel this image was built for
    call kernel_load                    ; kernel.s: a bzImage's FW_CFG_KERNEL_DATA -> 1 MiB
    call cmdline_load                   ; kernel.s: FW_CFG_CMDLINE_* -> CMDLINE
    call initrd_load                    ; kernel.s: FW_CFG_INITRD_* -> where QEMU placed it
    call memmap_build                   ; memmap.s: etc/e820 -> hvm_memmap_table_entry[]
    call alloc_init                     ; alloc.s: the zones the tables are placed in
    call chipset_init                   ; chipset.s: F segment RAM, q35 MMCONFIG, the ACPI PM block
    call mtrr_init                      ; mtrr.s: the boot CPU's MTRRs, as SeaBIOS sets them
    call acpi_load                      ; acpi.s: etc/table-loader -> ACPI tables, the RSDP
    call smbios_load                    ; smbios.s: etc/smbios/* -> the F segment
    call mptable_build                  ; mptable.s: without ACPI, the CPUs for the kernel
    call alloc_finish                   ; alloc.s: what the zones hold, out of the memory map
    cmp dword ptr [VAR_LINUX32], 0
    jne zero_page_build                 ; linux32.s: boot_params, the 32-bit entry; no return
    call start_info_build               ; pvh.s: struct hvm_start_info
    jmp pvh_handoff                     ; pvh.s: never returns
