; After a failed boot's line (serial.s): what the host asked for, as SeaBIOS does after a
; boot fails. QEMU's pvpanic device, when there is one, is told the guest panicked (with
; `-action panic=exit-failure` QEMU exits with status 1; libvirt's <on_crash>); then, if
; fw_cfg's "etc/boot-fail-wait" (`-boot reboot-timeout=MS`; libvirt's <bios rebootTimeout>)
; is not -1, the firmware waits that many milliseconds on the PIT, which pc, q35 and microvm
; all have and which needs no interrupt, and resets the machine with a triple fault, the one
; reset every machine type has (`-no-reboot`: QEMU ends). Else it halts, the line on the
; console. Nothing here runs on a good boot.

; fatal: ESI = the message (ERR_ARGS its numbers): the line, then the above.
fatal:
    call serial_line
    call pvpanic_panicked
    call boot_fail_wait                 ; returns when there is nothing to wait for
halt:
    cli
    hlt
    jmp halt

; fatal_without_fwcfg: the same for the failures that leave fw_cfg's file directory unread
; or its DMA broken: no etc/boot-fail-wait to read, so no reset.
fatal_without_fwcfg:
    call serial_line
    call pvpanic_panicked
    jmp halt

; pvpanic_panicked: an ISA pvpanic at PORT_PVPANIC reads the events it supports; absent, the
; port reads all ones.
pvpanic_panicked:
    mov dx, PORT_PVPANIC
    in al, dx
    cmp al, 0xff
    je pvpanic_done                     ; no device
    test al, PVPANIC_PANICKED
    jz pvpanic_done                     ; a device without the event
    mov al, PVPANIC_PANICKED
    out dx, al                          ; the guest panicked
pvpanic_done:
    ret

; boot_fail_wait: etc/boot-fail-wait (u32, little-endian: milliseconds, or -1 for never).
boot_fail_wait:
    mov esi, name_boot_fail_wait
    mov ecx, name_boot_fail_wait_end - name_boot_fail_wait
    call fwcfg_find
    test eax, eax
    jz boot_fail_wait_done              ; no such file (QEMU before 2.1): halt
    cmp edx, 4
    jne boot_fail_wait_done
    call fwcfg_read_u32
    cmp eax, BOOT_FAIL_WAIT_NEVER
    je boot_fail_wait_done
    call pit_wait_ms
    lidt [null_idt]                     ; no vector can be delivered: #UD -> #GP -> #DF ->
    ud2                                 ;   triple fault, which resets the machine
boot_fail_wait_done:
    ret

; pit_wait_ms: wait EAX milliseconds on counter 0 of the PIT, in rate mode from 65536 down,
; its count read back by latch: the ticks between two reads are their difference, mod 2^16.
; After PIT_STALL_POLLS reads without a tick there is no PIT (all ones): no wait.
pit_wait_ms:
    mov ecx, PIT_HZ
    mul ecx                             ; EDX:EAX = ms * PIT_HZ
    mov ecx, 1000
    div ecx
    mov ebx, eax                        ; EBX = ticks to wait
    mov al, PIT_CMD_CH0_RATE
    out PORT_PIT_CMD, al
    xor eax, eax
    out PORT_PIT_CH0, al                ; reload value 0: 65536
    out PORT_PIT_CH0, al
    call pit_count
    mov esi, eax                        ; ESI = the count last read
pit_wait_stalled:
    mov edi, PIT_STALL_POLLS
pit_wait_poll:
    call pit_count
    mov ecx, esi
    sub ecx, eax
    and ecx, 0xffff                     ; ticks since the last read
    mov esi, eax
    jnz pit_wait_tick
    dec edi
    jnz pit_wait_poll
    ret                                 ; the count never moves: no PIT
pit_wait_tick:
    sub ebx, ecx
    ja pit_wait_stalled
    ret

; pit_count: EAX = counter 0's count (latched: low byte, then high byte).
pit_count:
    mov al, PIT_CMD_LATCH_CH0
    out PORT_PIT_CMD, al
    in al, PORT_PIT_CH0
    movzx ecx, al
    in al, PORT_PIT_CH0
    movzx eax, al
    shl eax, 8
    or eax, ecx
    ret

    .balign 4, 0
null_idt:                               ; IDTR: limit 0, base 0
    .word 0
    .long 0
    .balign 4, 0                        ; fwcfg_find compares names a dword at a time
name_boot_fail_wait:
    .asciz "etc/boot-fail-wait"
name_boot_fail_wait_end:
    .balign 4, 0                        ; NUL-padded to a dword (fwcfg_find)
