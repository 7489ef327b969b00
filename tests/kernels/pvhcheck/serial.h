/* Output on COM1, and a printf subset for the report lines. */
#ifndef PVHCHECK_SERIAL_H
#define PVHCHECK_SERIAL_H

#include <stddef.h>
#include <stdint.h>

void serial_init(void);
void serial_putc(char c);
void serial_puts(const char *s);

/*
 * kprintf understands %s %c %u (uint32_t) %x (uint32_t, hex) %llx (uint64_t,
 * hex) and %%.  "\n" is sent as "\r\n".
 */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Lower-case hex of each byte, no separators. */
void serial_put_hexbytes(const uint8_t *p, size_t n);

#endif
