/*
 * Dump mode: the fw_cfg files that drive ACPI table loading, the SMBIOS
 * entry point and tables, and the e820 map, byte for byte, plus the whole file directory, over COM1:
 *
 *   PVHCHECK fwdump begin
 *   PVHCHECK fwdump file=<name> size=<n> used=<m>     (m: last nonzero byte + 1)
 *   PVHCHECK fwdump-data file=<name> offset=0x<hex> hex=<up to 64 bytes>
 *   PVHCHECK fwdump file=<name> missing
 *   PVHCHECK fwdump file=<name> size=<n> too_large    (more than the buffer)
 *   PVHCHECK fwdump-dir name=<name> size=<n> select=0x<hex>
 *   PVHCHECK fwdump done files=<n>
 *
 * The data lines cover [0, used); the rest of the file is zeros.
 */
#include "fwdump.h"
#include "fwcfg.h"
#include "io.h"
#include "serial.h"

#define FWDUMP_WORD "pvhcheck.fwdump"
#define FWDUMP_BUF_SIZE (256u * 1024u)
#define FWDUMP_LINE_BYTES 64u

static const char *const fwdump_files[] = {
    "etc/table-loader",
    "etc/acpi/rsdp",
    "etc/acpi/tables",
    "etc/e820",
    "etc/smbios/smbios-anchor",
    "etc/smbios/smbios-tables",
};

/* One file at a time; .bss, so it costs the ELF nothing. */
static uint8_t fwdump_buf[FWDUMP_BUF_SIZE];

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool fwdump_requested(const struct boot_view *bv)
{
    const uint8_t *s = bv->cmdline;
    uint32_t n = bv->cmdline_len, wlen = sizeof(FWDUMP_WORD) - 1;
    if (!s)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        if (is_space(s[i]) || (i > 0 && !is_space(s[i - 1])))
            continue;  /* not the start of a word */
        uint32_t end = i + wlen;
        if (end <= n && memcmp(s + i, FWDUMP_WORD, wlen) == 0 &&
            (end == n || is_space(s[end])))
            return true;
    }
    return false;
}

/* Index of the last nonzero byte + 1 (0 for an all-zero file). */
static uint32_t used_length(const uint8_t *p, uint32_t size)
{
    while (size > 0 && p[size - 1] == 0)
        size--;
    return size;
}

static void dump_file(const char *name)
{
    uint16_t select;
    uint32_t size;
    if (!fwcfg_find_file(name, &select, &size)) {
        kprintf("PVHCHECK fwdump file=%s missing\n", name);
        return;
    }
    if (size > FWDUMP_BUF_SIZE) {
        kprintf("PVHCHECK fwdump file=%s size=%u too_large\n", name, size);
        return;
    }
    fwcfg_read_item(select, fwdump_buf, size);
    uint32_t used = used_length(fwdump_buf, size);
    kprintf("PVHCHECK fwdump file=%s size=%u used=%u\n", name, size, used);
    for (uint32_t off = 0; off < used; off += FWDUMP_LINE_BYTES) {
        uint32_t len = used - off < FWDUMP_LINE_BYTES ? used - off : FWDUMP_LINE_BYTES;
        kprintf("PVHCHECK fwdump-data file=%s offset=0x%x hex=", name, off);
        serial_put_hexbytes(fwdump_buf + off, len);
        kprintf("\n");
    }
}

/* Every directory entry, in the order QEMU lists them. */
static uint32_t dump_directory(void)
{
    uint32_t count = fwcfg_dir_open();
    for (uint32_t i = 0; i < count; i++) {
        struct fwcfg_file f;
        fwcfg_dir_next(&f);
        kprintf("PVHCHECK fwdump-dir name=%s size=%u select=0x%x\n",
                f.name, f.size, (uint32_t)f.select);
    }
    return count;
}

bool fwdump_run(void)
{
    kprintf("PVHCHECK fwdump begin\n");
    if (!fwcfg_signature_ok()) {
        kprintf("PVHCHECK fwdump fwcfg=absent\n");
        return false;
    }
    for (uint32_t i = 0; i < sizeof(fwdump_files) / sizeof(fwdump_files[0]); i++)
        dump_file(fwdump_files[i]);
    uint32_t count = dump_directory();
    kprintf("PVHCHECK fwdump done files=%u\n", count);
    return true;
}
