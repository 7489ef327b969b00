/* COM1 (0x3f8), polled: wait for LSR bit 5 (transmit holding register empty). */
#include <stdarg.h>

#include "io.h"
#include "serial.h"

#define COM1 0x3f8
#define UART_THR (COM1 + 0)
#define UART_IER (COM1 + 1)
#define UART_FCR (COM1 + 2)
#define UART_LCR (COM1 + 3)
#define UART_MCR (COM1 + 4)
#define UART_LSR (COM1 + 5)
#define UART_DLL (COM1 + 0)
#define UART_DLM (COM1 + 1)
#define LSR_THRE 0x20

void serial_init(void)
{
    outb(UART_IER, 0x00);         /* no interrupts */
    outb(UART_LCR, 0x80);         /* DLAB on */
    outb(UART_DLL, 0x01);         /* 115200 baud */
    outb(UART_DLM, 0x00);
    outb(UART_LCR, 0x03);         /* 8N1, DLAB off */
    outb(UART_FCR, 0xc7);         /* FIFO on, cleared */
    outb(UART_MCR, 0x03);         /* DTR, RTS */
}

void serial_putc(char c)
{
    /* Bounded wait: a missing UART reads 0xff, a stuck one must not hang us. */
    for (uint32_t spin = 0; spin < 1000000u; spin++) {
        if (inb(UART_LSR) & LSR_THRE)
            break;
    }
    outb(UART_THR, (uint8_t)c);
}

void serial_puts(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n')
            serial_putc('\r');
        serial_putc(*s);
    }
}

static const char hexdigits[] = "0123456789abcdef";

static void put_hex64(uint64_t v)
{
    char buf[16];
    int n = 0;
    do {
        buf[n++] = hexdigits[v & 0xf];
        v >>= 4;
    } while (v);
    while (n)
        serial_putc(buf[--n]);
}

static void put_dec32(uint32_t v)
{
    char buf[10];
    int n = 0;
    do {
        buf[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        serial_putc(buf[--n]);
}

void serial_put_hexbytes(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        serial_putc(hexdigits[p[i] >> 4]);
        serial_putc(hexdigits[p[i] & 0xf]);
    }
}

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            if (*p == '\n')
                serial_putc('\r');
            serial_putc(*p);
            continue;
        }
        p++;
        if (*p == 's') {
            const char *s = va_arg(ap, const char *);
            serial_puts(s ? s : "(null)");
        } else if (*p == 'c') {
            serial_putc((char)va_arg(ap, int));
        } else if (*p == 'u') {
            put_dec32(va_arg(ap, uint32_t));
        } else if (*p == 'x') {
            put_hex64(va_arg(ap, uint32_t));
        } else if (p[0] == 'l' && p[1] == 'l' && p[2] == 'x') {
            put_hex64(va_arg(ap, uint64_t));
            p += 2;
        } else if (*p == '%') {
            serial_putc('%');
        } else {
            /* Unknown conversion: print it verbatim, stop if the string ended. */
            serial_putc('%');
            if (!*p)
                break;
            serial_putc(*p);
        }
    }
    va_end(ap);
}
