; Byte sums, for the checksums of ACPI, SMBIOS and MP tables (each: the bytes of a range add
; up to 0, mod 256).

; checksum8: subtract the sum of the EDX bytes at ESI from the byte at EBP (which may lie in
; the range), so that the range sums to 0. Clobbers EAX, EBX, ECX, ESI.
checksum8:
    call sum8
    sub byte ptr [ebp], bl
    ret

; sum8: BL = the sum, mod 256, of the EDX bytes at ESI; ESI ends past them. Clobbers EAX, ECX.
; 32 bytes a pass of an unrolled loop: checksumming QEMU's ACPI tables is most of the
; firmware's work (MMX would sum 8 bytes an instruction, but this project's PVM-based KVM
; cannot emulate it). A range that is not whole passes starts with a partial one: a jump into
; the loop's body, at the add of its first byte, with ESI moved back so the adds before it
; would read the bytes before the range (each add is 3 bytes long but the first, 2).
sum8:
    xor ebx, ebx
    mov ecx, edx
    shr ecx, 5                          ; whole passes
    mov eax, edx
    and eax, 31                         ; T: the partial pass's bytes
    jz sum8_whole
    inc ecx
    sub esi, 32
    add esi, eax                        ; [ESI + 32 - T] is the range's first byte
    imul eax, eax, -3
    add eax, sum8_32 + 95               ; the add of [ESI + 32 - T]: 2 + 3 * (31 - T)
    jmp eax
sum8_whole:
    jecxz sum8_done
sum8_32:
    add bl, byte ptr [esi]
    add bl, byte ptr [esi + 1]
    add bl, byte ptr [esi + 2]
    add bl, byte ptr [esi + 3]
    add bl, byte ptr [esi + 4]
    add bl, byte ptr [esi + 5]
    add bl, byte ptr [esi + 6]
    add bl, byte ptr [esi + 7]
    add bl, byte ptr [esi + 8]
    add bl, byte ptr [esi + 9]
    add bl, byte ptr [esi + 10]
    add bl, byte ptr [esi + 11]
    add bl, byte ptr [esi + 12]
    add bl, byte ptr [esi + 13]
    add bl, byte ptr [esi + 14]
    add bl, byte ptr [esi + 15]
    add bl, byte ptr [esi + 16]
    add bl, byte ptr [esi + 17]
    add bl, byte ptr [esi + 18]
    add bl, byte ptr [esi + 19]
    add bl, byte ptr [esi + 20]
    add bl, byte ptr [esi + 21]
    add bl, byte ptr [esi + 22]
    add bl, byte ptr [esi + 23]
    add bl, byte ptr [esi + 24]
    add bl, byte ptr [esi + 25]
    add bl, byte ptr [esi + 26]
    add bl, byte ptr [esi + 27]
    add bl, byte ptr [esi + 28]
    add bl, byte ptr [esi + 29]
    add bl, byte ptr [esi + 30]
    add bl, byte ptr [esi + 31]
    add esi, 32
    loop sum8_32
sum8_done:
    ret
