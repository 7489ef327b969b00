; The chipset's ACPI power-management I/O block, on the machine types that have one. QEMU's
; FADT sends the kernel to PM1a_EVT/PM1a_CNT/PM_TMR in an I/O range that firmware must first
; place and enable: PIIX4's power-management function (PCI 00:01.3, `-M pc`: PMBA at 0x40,
; PMIOSE in PMREGMISC at 0x80) or ICH9's LPC bridge (PCI 00:1f.0, `-M q35`: PMBASE at 0x40,
; ACPI_EN in ACPI_CNTL at 0x44). QEMU builds the tables when firmware first reads them, from
; the base programmed then, so this runs before acpi_load. Without it Linux spends 3 s waiting
; for ACPI mode ("Hardware did not enter ACPI mode") and has no PM timer. microvm's ACPI is
; hardware-reduced (no PM block, no PCI): the ID reads find nothing there, and nothing is done.
; PCI configuration mechanism #1: the address (enable bit 31, bus, device, function, register)
; to port PCI_CONFIG_ADDR, the data at PCI_CONFIG_DATA.

pm_init:
    mov eax, PCI_PIIX4_PM
    call pci_read32                     ; vendor and device ID
    cmp eax, PIIX4_PM_ID
    je pm_init_piix4
    mov eax, PCI_ICH9_LPC
    call pci_read32
    cmp eax, ICH9_LPC_ID
    jne pm_init_done
    mov eax, PCI_ICH9_LPC + ICH9_PMBASE
    mov ecx, PM_IO_BASE + PCI_IO_SPACE  ; bit 0: I/O space indicator (hardwired to 1)
    call pci_write32
    mov eax, PCI_ICH9_LPC + ICH9_ACPI_CNTL
    mov ecx, ICH9_ACPI_EN
    jmp pci_write32                     ; the register is one byte: the others read as 0
pm_init_piix4:
    mov eax, PCI_PIIX4_PM + PIIX4_PMBA
    mov ecx, PM_IO_BASE + PCI_IO_SPACE
    call pci_write32
    mov eax, PCI_PIIX4_PM + PIIX4_PMREGMISC
    mov ecx, PIIX4_PMIOSE
    jmp pci_write32                     ; PMREGMISC is one byte: the others read as 0
pm_init_done:
    ret

; pci_read32: EAX = the dword at configuration address EAX. Clobbers EDX.
pci_read32:
    mov dx, PCI_CONFIG_ADDR
    out dx, eax
    mov dx, PCI_CONFIG_DATA
    in eax, dx
    ret

; pci_write32: write ECX at configuration address EAX. Clobbers EAX, EDX.
pci_write32:
    mov dx, PCI_CONFIG_ADDR
    out dx, eax
    mov dx, PCI_CONFIG_DATA
    mov eax, ecx
    out dx, eax
    ret
