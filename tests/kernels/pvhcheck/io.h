/* Port I/O and physical memory access (paging is off: linear == physical). */
#ifndef PVHCHECK_IO_H
#define PVHCHECK_IO_H

#include <stddef.h>
#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/*
 * A pointer to [addr, addr + len) if that range is addressable with paging
 * off (below 4 GiB), else NULL.  Address 0 is allowed: it is real RAM here.
 */
static inline const void *phys_ptr(uint64_t addr, uint64_t len)
{
    if (addr > 0xffffffffull || len > 0x100000000ull - addr)
        return NULL;
    return (const void *)(uintptr_t)addr;
}

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif
