; The MP table (Intel MultiProcessor Specification 1.4) when QEMU offers no ACPI (no
; table-loader: -machine acpi=off, or a microvm without it): a kernel without ACPI finds its
; CPUs, the IOAPIC and the ISA interrupts there, as qboot and SeaBIOS give them. With ACPI,
; none: Linux takes QEMU's MADT and ignores an MP table. The floating pointer and the table go
; where Linux's scan looks: the F segment, as SeaBIOS places them, where it is RAM (pc, q35),
; else the EBDA (microvm; 40 CPUs at most there, as qboot's). layout.py builds everything but
; the processor entries (mp_floating, mp_header, mp_tail); a processor entry for each CPU
; fw_cfg counts, with APIC IDs 0..N-1 (QEMU's, for its default topology; qboot assumes the
; same).

mptable_build:
    cmp dword ptr [VAR_ACPI], 0
    jne mptable_done
    mov ax, FW_CFG_NB_CPUS
    call fwcfg_read_u32                 ; u16: the CPUs QEMU starts
    movzx ebp, ax                       ; EBP = N
    cmp ebp, MP_MAX_CPUS
    ja mptable_too_many
    test ebp, ebp
    jnz mptable_size
    inc ebp                             ; (QEMU always counts the boot CPU)
mptable_size:
    imul edx, ebp, SIZEOF_MPC_CPU
    add edx, SIZEOF_MPF + SIZEOF_MPC + MP_TAIL_SIZE
    mov ecx, 16
    call alloc_fseg                     ; EAX = the floating pointer's place, the table after it
    jnc mptable_place
    mov ecx, 16
    call alloc_ebda
    jc mptable_no_room
mptable_place:
    mov dword ptr [VAR_MP_FLOATING], eax
    mov edi, eax
    mov esi, mp_floating                ; the floating pointer and the table's header
    mov ecx, SIZEOF_MPF / 4 + SIZEOF_MPC / 4
    rep movsd dword ptr [edi], dword ptr [esi]
    mov eax, CPUID_1
    cpuid                               ; EAX = the CPUs' signature, EDX = their features
    xor ecx, ecx                        ; the APIC ID
    mov ebx, MP_CPU_WORD0 + MP_CPU_BSP_WORD0    ; type, ID 0, version, enabled, bootstrap
mptable_cpu:
    mov dword ptr [edi + MPC_CPU_TYPE], ebx
    mov dword ptr [edi + MPC_CPU_CPUFEATURE], eax
    mov dword ptr [edi + MPC_CPU_FEATUREFLAG], edx
    mov dword ptr [edi + MPC_CPU_RESERVED], 0
    mov dword ptr [edi + MPC_CPU_RESERVED + 4], 0
    add edi, SIZEOF_MPC_CPU
    inc ecx
    mov ebx, ecx
    shl ebx, 8                          ; MPC_CPU_APICID
    add ebx, MP_CPU_WORD0
    cmp ecx, ebp
    jb mptable_cpu
    mov esi, mp_tail                    ; the bus, the IOAPIC, the ISA IRQs, LINT0 and LINT1
    mov ecx, MP_TAIL_SIZE / 4
    rep movsd dword ptr [edi], dword ptr [esi]
    mov bl, LAPIC_VERSION + MP_CPU_ENABLED  ; a processor entry's bytes but its APIC ID:
    call mptable_sum_eax                ;   + the signature's
    mov eax, edx
    call mptable_sum_eax                ;   + the features'
    movzx eax, bl
    imul eax, ebp                       ; N of them
    lea ecx, [ebp - 1]
    imul ecx, ebp
    shr ecx, 1
    add eax, ecx                        ; + the APIC IDs, 0 + 1 + ... + N-1
    add eax, MP_CPU_BSP                 ; + the boot CPU's flag
    mov ebx, eax                        ; BL = the processor entries' sum
    mov edi, dword ptr [VAR_MP_FLOATING]
    lea esi, [edi + SIZEOF_MPF]         ; the table
    imul eax, ebp, SIZEOF_MPC_CPU
    add eax, SIZEOF_MPC + MP_TAIL_SIZE
    mov word ptr [esi + MPC_LENGTH], ax ; the base table's length ...
    add bl, al
    add bl, ah
    lea eax, [ebp + MP_TAIL_ENTRIES]
    mov word ptr [esi + MPC_OEMCOUNT], ax   ; ... and its entries
    add bl, al
    add bl, ah
    add bl, MP_TABLE_SUM                ; the header's and the tail's bytes (layout.py)
    neg bl
    mov byte ptr [esi + MPC_CHECKSUM], bl
    mov dword ptr [edi + MPF_PHYSPTR], esi
    mov eax, esi
    mov bl, MP_FLOATING_SUM
    call mptable_sum_eax                ; the table's address: the pointer's only variable
    neg bl
    mov byte ptr [edi + MPF_CHECKSUM], bl
mptable_done:
    ret
mptable_too_many:
    mov dword ptr [ERR_ARGS], ebp       ; FW_CFG_NB_CPUS
    jmp fatal_mptable_cpus
mptable_no_room:
    mov dword ptr [ERR_ARGS], ebp
    jmp fatal_mptable_space

; mptable_sum_eax: BL += the four bytes of EAX. Clobbers EAX.
mptable_sum_eax:
    add bl, al
    add bl, ah
    shr eax, 16
    add bl, al
    add bl, ah
    ret
