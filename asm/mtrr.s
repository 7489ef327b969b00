; MTRRs on the boot CPU, as SeaBIOS sets them (src/fw/mtrr.c): without them Linux 6.1 runs
; without PAT ("x86/PAT: MTRRs disabled, skipping PAT initialization too", no write-combining).
; Linux copies the boot CPU's MTRRs to the others as it brings them up. A CPU without MTRRs,
; or without fixed ranges or variable ones (MTRRcap), gets nothing. QEMU's CPU reset zeroes
; every MTRR (x86_cpu_reset: MTRRdefType, the fixed and the variable ranges; under KVM it puts
; them back with the reset state), so the MTRRs are off while they are set, and what is to be
; 0 (uncached) is not written: MTRRdefType first, MTRRfix16K_A0000, the variable pairs but
; the first. SeaBIOS writes them all. wrmsr: ECX = the MSR, EDX:EAX = the value.

mtrr_init:
    mov eax, 1
    cpuid
    and edx, MTRR_CPUID_NEEDS
    cmp edx, MTRR_CPUID_NEEDS           ; CPUID.1:EDX: MTRR and MSR
    jne mtrr_done
    mov ecx, MSR_MTRRCAP
    rdmsr
    test eax, MTRRCAP_FIX
    jz mtrr_done
    test al, al                         ; MTRRcap.VCNT: variable ranges (their pairs are
    jz mtrr_done                        ;   0 after a reset: pair 0 is the only one set)
    mov eax, MTRR_FIX_WB
    mov edx, eax
    mov ecx, MSR_MTRR_FIX_64K_00000
    wrmsr                               ; 0-0x7FFFF: write-back
    mov ecx, MSR_MTRR_FIX_16K_80000
    wrmsr                               ; 0x80000-0x9FFFF: write-back
                                        ; (MSR_MTRR_FIX_16K_A0000, the VGA window: uncached, 0)
    mov eax, MTRR_FIX_WP
    mov edx, eax
    mov ecx, MSR_MTRR_FIX_4K_C0000      ; 0xC0000-0xFFFFF, the BIOS areas: write-protected
    wrmsr
    inc ecx
    wrmsr
    inc ecx
    wrmsr
    inc ecx
    wrmsr
    inc ecx
    wrmsr
    inc ecx
    wrmsr
    inc ecx
    wrmsr
    inc ecx
    wrmsr                               ; MSR_MTRR_FIX_4K_C0000 + MTRR_FIX_4K_MSRS - 1
    mov eax, CPUID_EXT_MAX
    cpuid
    mov esi, PHYS_BITS_DEFAULT
    cmp eax, CPUID_ADDRESS_SIZES
    jb mtrr_hole
    mov eax, CPUID_ADDRESS_SIZES
    cpuid
    movzx esi, al                       ; the physical address width
mtrr_hole:
    mov ebx, PCI_HOLE_Q35
    cmp dword ptr [VAR_HOST_BRIDGE], Q35_MCH_ID
    je mtrr_hole_found
    mov ebx, dword ptr [VAR_LOWMEM_TOP] ; the end of the RAM below 4 GiB (memmap.s)
    mov eax, PCI_HOLE_LOW
    cmp ebx, eax
    jbe mtrr_hole_round
    mov eax, PCI_HOLE_HIGH
    cmp ebx, eax
    ja mtrr_hole_found                  ; above both: the hole starts where the RAM ends
mtrr_hole_round:
    mov ebx, eax
mtrr_hole_found:                        ; EBX = the hole's start, ESI = the address width
    mov eax, ebx                        ; PhysBase0: the hole's start, uncached (type 0)
    xor edx, edx
    mov ecx, MSR_MTRR_PHYSBASE0
    wrmsr
    lea ecx, [esi - 32]
    mov edx, 1
    shl edx, cl
    dec edx                             ; the address mask's bits above 4 GiB
    or eax, MTRR_PHYSMASK_VALID         ; -(4 GiB - start) & mask: its low half is the start
    mov ecx, MSR_MTRR_PHYSBASE0 + 1
    wrmsr                               ; PhysMask0
    mov eax, MTRR_DEFAULT
    xor edx, edx
    mov ecx, MSR_MTRR_DEF_TYPE
    wrmsr                               ; on: fixed ranges, write-back elsewhere
mtrr_done:
    ret
