/*
 * The IDT used while MSRs are read: every gate absent except #GP (vector 13),
 * whose handler (trap.S) resumes after a faulting rdmsr_safe and ends QEMU
 * through isa-debug-exit for any other #GP.
 */
#include "cpu.h"
#include "entry_state.h"

#define IDT_VECTORS 32
#define VEC_GP 13
#define GATE_INT32 0x8e   /* present, DPL 0, 32-bit interrupt gate */

extern char gp_handler[];
int rdmsr_raw(uint32_t msr, uint64_t *value);   /* trap.S: 1 when it faulted */

static uint64_t idt[IDT_VECTORS] __attribute__((aligned(8)));

static struct {
    uint16_t limit;
    uint32_t base;
} __attribute__((packed)) idtr;

void msr_begin(void)
{
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    uint32_t off = (uint32_t)(uintptr_t)gp_handler;
    idt[VEC_GP] = (uint64_t)(off & 0xffff) | (uint64_t)cs << 16 |
                  (uint64_t)GATE_INT32 << 40 | (uint64_t)(off >> 16) << 48;
    idtr.limit = sizeof(idt) - 1;
    idtr.base = (uint32_t)(uintptr_t)idt;
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

void msr_end(void)
{
    /* The loader's IDTR, as entry.S saved it (limit u16, base u32). */
    __asm__ volatile("lidt %0" : : "m"(*(const uint8_t(*)[6])entry_state.idtr));
}

bool rdmsr_safe(uint32_t msr, uint64_t *value)
{
    if (rdmsr_raw(msr, value)) {
        *value = 0;
        return false;
    }
    return true;
}
