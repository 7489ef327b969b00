/* Check results: the detail string and the "PVHCHECK check" lines (check.h). */
#include "check.h"
#include "serial.h"

static uint32_t failures;

void d_more(struct detail *d, const char *s)
{
    while (*s && d->len < sizeof(d->buf) - 1)
        d->buf[d->len++] = *s++;
    d->buf[d->len] = 0;
}

void d_str(struct detail *d, const char *s)
{
    if (d->len)
        d_more(d, "; ");
    d_more(d, s);
}

void d_hex(struct detail *d, uint64_t v)
{
    char tmp[19];
    int n = 0;
    char rev[16];
    do {
        rev[n++] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v);
    tmp[0] = '0';
    tmp[1] = 'x';
    for (int i = 0; i < n; i++)
        tmp[2 + i] = rev[n - 1 - i];
    tmp[2 + n] = 0;
    d_more(d, tmp);
}

void d_dec(struct detail *d, uint32_t v)
{
    char rev[10], tmp[11];
    int n = 0;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        tmp[i] = rev[n - 1 - i];
    tmp[n] = 0;
    d_more(d, tmp);
}

void check_report(const char *name, const struct detail *d)
{
    if (d->len == 0) {
        kprintf("PVHCHECK check %s ok\n", name);
    } else {
        kprintf("PVHCHECK check %s FAIL %s\n", name, d->buf);
        failures++;
    }
}

void check_reset(void)
{
    failures = 0;
}

uint32_t check_failures(void)
{
    return failures;
}
