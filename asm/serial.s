; Serial diagnostics: one line on COM1 (a 16550, polled) for every error. The success path
; never touches the serial port.

; serial_line: print "pvhfw: " + the message at ESI + CR LF (failure.s: then what follows a
; failed boot). In the message, each '%' prints the next u32 of ERR_ARGS as 0x%08x.
serial_line:
    mov ebx, ERR_ARGS
    push esi
    mov esi, msg_prefix
    call serial_puts
    pop esi
    call serial_puts
    mov esi, msg_crlf
    jmp serial_puts

; serial_puts: ESI = NUL-terminated string; '%' prints [EBX] in hex and advances EBX.
serial_puts:
    lodsb
    test al, al
    jz serial_puts_done
    cmp al, 0x25                        ; '%'
    je serial_puts_hex
    call serial_putc
    jmp serial_puts
serial_puts_hex:
    mov al, 0x30                        ; '0'
    call serial_putc
    mov al, 0x78                        ; 'x'
    call serial_putc
    mov eax, dword ptr [ebx]
    add ebx, 4
    mov ecx, 8
serial_hex_digit:
    rol eax, 4
    push eax
    and al, 0x0f
    add al, 0x30
    cmp al, 0x39
    jbe serial_hex_put
    add al, 0x27                        ; 'a' - '0' - 10
serial_hex_put:
    call serial_putc
    pop eax
    loop serial_hex_digit
    jmp serial_puts
serial_puts_done:
    ret

; serial_putc: AL to the transmit holding register once the line status says it is empty.
serial_putc:
    push eax
    mov dx, PORT_COM1_LSR
serial_putc_wait:
    in al, dx
    test al, LSR_THRE
    jz serial_putc_wait
    pop eax
    mov dx, PORT_COM1
    out dx, al
    ret
