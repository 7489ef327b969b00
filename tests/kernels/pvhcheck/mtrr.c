/*
 *   PVHCHECK cpuid max_basic=0x.. edx1=0x.. apic_id=N max_ext=0x.. phys_bits=N mtrr=0|1 msr=0|1
 *   PVHCHECK mtrr msr=0x<index> value=0x<hex>|none        (one per MSR read, in this order:
 *       MTRRcap 0xfe, MTRRdefType 0x2ff, with MTRRcap.FIX the fixed ranges 0x250 0x258
 *       0x259 0x268..0x26f, then PhysBase/PhysMask 0x200+2n, 0x201+2n for n < VCNT)
 *
 * phys_bits is CPUID 0x80000008 EAX[7:0], or "none" when the highest extended
 * leaf is below 0x80000008 (SeaBIOS then assumes 36).
 */
#include "mtrr.h"
#include "check.h"
#include "cpu.h"
#include "serial.h"

#define MSR_MTRRCAP     0xfe
#define MSR_MTRRDEFTYPE 0x2ff
#define MSR_PHYSBASE0   0x200
#define MTRRCAP_VCNT    0xffu
#define MTRRCAP_FIX     (1u << 8)
#define MAX_VCNT        32       /* more pairs than this are not read */
#define MAX_MTRR_MSRS   (2 + 11 + 2 * MAX_VCNT)

static const uint32_t fixed_msrs[] = {
    0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
};

static struct {
    bool have;                 /* CPUID.1:EDX has both MTRR and MSR */
    uint32_t count;            /* MSRs read */
    uint32_t index[MAX_MTRR_MSRS];
    uint64_t value[MAX_MTRR_MSRS];
    bool ok[MAX_MTRR_MSRS];
} mtrr;

static uint64_t read_one(uint32_t msr)
{
    uint32_t i = mtrr.count++;
    mtrr.index[i] = msr;
    mtrr.ok[i] = rdmsr_safe(msr, &mtrr.value[i]);
    return mtrr.value[i];
}

void mtrr_report(void)
{
    struct cpuid_regs basic = cpuid(0), leaf1 = cpuid(1), ext = cpuid(0x80000000u);
    kprintf("PVHCHECK cpuid max_basic=0x%x edx1=0x%x apic_id=%u max_ext=0x%x",
            basic.eax, leaf1.edx, leaf1.ebx >> 24, ext.eax);
    if (ext.eax >= 0x80000008u)
        kprintf(" phys_bits=%u", cpuid(0x80000008u).eax & 0xffu);
    else
        kprintf(" phys_bits=none");
    mtrr.have = (leaf1.edx & CPUID1_EDX_MTRR) && (leaf1.edx & CPUID1_EDX_MSR);
    kprintf(" mtrr=%u msr=%u\n", (leaf1.edx & CPUID1_EDX_MTRR) ? 1u : 0u,
            (leaf1.edx & CPUID1_EDX_MSR) ? 1u : 0u);
    if (!mtrr.have)
        return;

    msr_begin();
    uint64_t cap = read_one(MSR_MTRRCAP);
    read_one(MSR_MTRRDEFTYPE);
    if (cap & MTRRCAP_FIX) {
        for (uint32_t i = 0; i < sizeof(fixed_msrs) / sizeof(fixed_msrs[0]); i++)
            read_one(fixed_msrs[i]);
    }
    uint32_t vcnt = (uint32_t)(cap & MTRRCAP_VCNT);
    for (uint32_t n = 0; n < vcnt && n < MAX_VCNT; n++) {
        read_one(MSR_PHYSBASE0 + 2 * n);
        read_one(MSR_PHYSBASE0 + 2 * n + 1);
    }
    msr_end();

    for (uint32_t i = 0; i < mtrr.count; i++) {
        if (mtrr.ok[i])
            kprintf("PVHCHECK mtrr msr=0x%x value=0x%llx\n", mtrr.index[i], mtrr.value[i]);
        else
            kprintf("PVHCHECK mtrr msr=0x%x value=none\n", mtrr.index[i]);
    }
}

void mtrr_checks(void)
{
    struct detail d = {0};
    for (uint32_t i = 0; i < mtrr.count; i++) {
        if (!mtrr.ok[i]) {
            d_str(&d, "rdmsr ");
            d_hex(&d, mtrr.index[i]);
            d_more(&d, " raised #GP");
        }
    }
    check_report("mtrr_msrs_readable", &d);
}
