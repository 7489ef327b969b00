; The chipset, before QEMU builds its ACPI tables (QEMU builds them when firmware first reads
; them, from the registers programmed then, so this runs before acpi_load). The host bridge
; (PCI 00:00.0) says which: the i440FX (-M pc), the Q35 MCH (-M q35), or nothing (microvm: no
; PCI, its reads give all ones, and nothing is done). Then, as SeaBIOS and qboot do:
; - the F segment (0xF0000-0xFFFFF, the ROM's shadow until now) becomes read/write RAM through
;   PAM0, so the allocator can place the SMBIOS entry point where Linux looks for it. The code
;   runs from the ROM below 4 GiB, which PAM does not touch; nothing of the shadow is needed.
; - q35: PCIe MMCONFIG (PCIEXBAR) at PCIE_MMCONFIG_BASE, 256 MiB, and that range reserved in
;   the memory map: QEMU's MCFG table and the DSDT's PNP0C01 resource then describe it.
; - the ACPI power-management I/O block QEMU's FADT sends the kernel to (PM1a_EVT/CNT, PM_TMR):
;   PIIX4's PM function (00:01.3 on pc, only present with ACPI: PMBA at 0x40, PMIOSE in
;   PMREGMISC at 0x80) or ICH9's LPC bridge (00:1f.0 on q35: PMBASE at 0x40, ACPI_EN in
;   ACPI_CNTL at 0x44). Without it Linux waits 3 s for ACPI mode ("Hardware did not enter
;   ACPI mode") and has no PM timer.
; PCI configuration mechanism #1: the address (enable bit 31, bus, device, function, register)
; to port PCI_CONFIG_ADDR, the data at PCI_CONFIG_DATA (+ the byte's offset for a byte).

chipset_init:
    mov eax, PCI_HOST_BRIDGE
    call pci_read32                     ; vendor and device ID
    mov dword ptr [VAR_HOST_BRIDGE], eax
    cmp eax, I440FX_ID
    je chipset_i440fx
    cmp eax, Q35_MCH_ID
    jne chipset_done
    mov eax, PCI_HOST_BRIDGE + Q35_PAM0
    call chipset_fseg_ram
    mov eax, PCI_HOST_BRIDGE + Q35_PCIEXBAR
    mov ecx, PCIE_MMCONFIG_BASE + PCIEXBAR_EN   ; length 256 MiB; the high dword is 0 after reset
    call pci_write32
    mov eax, PCIE_MMCONFIG_BASE
    xor edx, edx
    mov ebp, PCIE_MMCONFIG_SIZE
    xor ebx, ebx
    mov ecx, E820_RESERVED
    call memmap_append                  ; the ECAM window: reserved, as Linux checks
    mov eax, PCI_ICH9_LPC + ICH9_PMBASE ; q35 always has the ICH9 LPC bridge at 00:1f.0
    mov ecx, PM_IO_BASE + PCI_IO_SPACE  ; bit 0: I/O space indicator (hardwired to 1)
    call pci_write32
    mov eax, PCI_ICH9_LPC + ICH9_ACPI_CNTL
    mov ecx, ICH9_ACPI_EN
    jmp pci_write32                     ; the register is one byte: the others read as 0
chipset_i440fx:
    mov eax, PCI_HOST_BRIDGE + I440FX_PAM0
    call chipset_fseg_ram
    mov eax, PCI_PIIX4_PM
    call pci_read32
    cmp eax, PIIX4_PM_ID
    jne chipset_done                    ; -machine acpi=off: QEMU creates no PM function
    mov eax, PCI_PIIX4_PM + PIIX4_PMBA
    mov ecx, PM_IO_BASE + PCI_IO_SPACE
    call pci_write32
    mov eax, PCI_PIIX4_PM + PIIX4_PMREGMISC
    mov ecx, PIIX4_PMIOSE
    jmp pci_write32                     ; PMREGMISC is one byte: the others read as 0
chipset_done:
    ret

; chipset_fseg_ram: PAM0 at configuration address EAX: the F segment read/write RAM (its high
; nibble RE | WE; the low nibble is reserved), and the allocator's fseg zone opens.
chipset_fseg_ram:
    mov ecx, PAM0_FSEG_RAM
    call pci_write8
    jmp alloc_fseg_init

; pci_read32: EAX = the dword at configuration address EAX. Clobbers EDX.
pci_read32:
    mov dx, PCI_CONFIG_ADDR
    out dx, eax
    mov dx, PCI_CONFIG_DATA
    in eax, dx
    ret

; pci_write8: write CL to the configuration byte at address EAX. Clobbers EAX, EDX.
pci_write8:
    mov edx, eax
    and eax, 0xfffffffc                 ; the dword's address ...
    and edx, 3
    push edx
    mov dx, PCI_CONFIG_ADDR
    out dx, eax
    pop edx
    add edx, PCI_CONFIG_DATA            ; ... and the byte's port
    mov eax, ecx
    out dx, al
    ret

; pci_write32: write ECX at configuration address EAX. Clobbers EAX, EDX.
pci_write32:
    mov dx, PCI_CONFIG_ADDR
    out dx, eax
    mov dx, PCI_CONFIG_DATA
    mov eax, ecx
    out dx, eax
    ret
