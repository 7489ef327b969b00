/*
 * fw_cfg, read by the kernel itself so the checks have facts that do not come
 * from the firmware under test.  Selecting an item rewinds it; each byte read
 * from the data port advances.  Numeric items are little-endian, the file
 * directory is big-endian.
 */
#include "fwcfg.h"
#include "crc32.h"
#include "io.h"

#define FW_CFG_PORT_SEL  0x510
#define FW_CFG_PORT_DATA 0x511

static void fwcfg_select(uint16_t key)
{
    outw(FW_CFG_PORT_SEL, key);
}

static void fwcfg_read(void *buf, uint32_t len)
{
    uint8_t *p = buf;
    while (len--)
        *p++ = inb(FW_CFG_PORT_DATA);
}

static void fwcfg_skip(uint32_t len)
{
    while (len--)
        (void)inb(FW_CFG_PORT_DATA);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint32_t fwcfg_item_u32(uint16_t key)
{
    uint8_t b[4];
    fwcfg_select(key);
    fwcfg_read(b, sizeof(b));
    return le32(b);
}

bool fwcfg_signature_ok(void)
{
    uint8_t sig[4];
    fwcfg_select(FW_CFG_SIGNATURE);
    fwcfg_read(sig, sizeof(sig));
    return sig[0] == 'Q' && sig[1] == 'E' && sig[2] == 'M' && sig[3] == 'U';
}

void fwcfg_read_item(uint16_t key, void *buf, uint32_t len)
{
    fwcfg_select(key);
    fwcfg_read(buf, len);
}

uint32_t fwcfg_item_compare(uint16_t key, const uint8_t *mem, uint32_t len)
{
    fwcfg_select(key);
    for (uint32_t i = 0; i < len; i++) {
        if (inb(FW_CFG_PORT_DATA) != mem[i])
            return i;
    }
    return len;
}

uint32_t fwcfg_item_crc32(uint16_t key, uint32_t len)
{
    uint32_t crc = CRC32_INIT;
    fwcfg_select(key);
    for (uint32_t i = 0; i < len; i++) {
        uint8_t b = inb(FW_CFG_PORT_DATA);
        crc = crc32_update(crc, &b, 1);
    }
    return crc32_final(crc);
}

uint32_t fwcfg_dir_open(void)
{
    uint8_t b[4];
    fwcfg_select(FW_CFG_FILE_DIR);
    fwcfg_read(b, sizeof(b));
    uint32_t count = be32(b);
    return count < FWCFG_MAX_FILES ? count : FWCFG_MAX_FILES;
}

void fwcfg_dir_next(struct fwcfg_file *f)
{
    uint8_t entry[64];  /* size u32 BE, select u16 BE, reserved u16, name[56] */
    fwcfg_read(entry, sizeof(entry));
    f->size = be32(entry);
    f->select = (uint16_t)(entry[4] << 8 | entry[5]);
    for (uint32_t k = 0; k < FWCFG_NAME_LEN; k++)
        f->name[k] = (char)entry[8 + k];
    f->name[FWCFG_NAME_LEN] = 0;  /* QEMU terminates it; do not rely on that */
}

bool fwcfg_find_file(const char *name, uint16_t *select, uint32_t *size)
{
    uint32_t count = fwcfg_dir_open();
    for (uint32_t i = 0; i < count; i++) {
        struct fwcfg_file f;
        fwcfg_dir_next(&f);
        uint32_t k = 0;
        while (k < FWCFG_NAME_LEN && name[k] && f.name[k] == name[k])
            k++;
        if (k < FWCFG_NAME_LEN && name[k] == 0 && f.name[k] == 0) {
            *size = f.size;
            *select = f.select;
            return true;
        }
    }
    return false;
}

void fwcfg_read_facts(struct fwcfg_facts *f)
{
    memset(f, 0, sizeof(*f));
    f->present = fwcfg_signature_ok();
    if (!f->present)
        return;

    f->id = fwcfg_item_u32(FW_CFG_ID);
    f->kernel_entry = fwcfg_item_u32(FW_CFG_KERNEL_ENTRY);
    f->kernel_addr = fwcfg_item_u32(FW_CFG_KERNEL_ADDR);
    f->kernel_size = fwcfg_item_u32(FW_CFG_KERNEL_SIZE);
    f->initrd_addr = fwcfg_item_u32(FW_CFG_INITRD_ADDR);
    f->initrd_size = fwcfg_item_u32(FW_CFG_INITRD_SIZE);
    f->cmdline_size = fwcfg_item_u32(FW_CFG_CMDLINE_SIZE);
    f->setup_addr = fwcfg_item_u32(FW_CFG_SETUP_ADDR);
    f->setup_size = fwcfg_item_u32(FW_CFG_SETUP_SIZE);
    f->nb_cpus = fwcfg_item_u32(FW_CFG_NB_CPUS) & 0xffff;
    f->max_cpus = fwcfg_item_u32(FW_CFG_MAX_CPUS) & 0xffff;
    f->irq0_override = fwcfg_item_u32(FW_CFG_IRQ0_OVERRIDE);

    uint16_t select;
    uint32_t size;
    f->have_acpi_rsdp = fwcfg_find_file("etc/acpi/rsdp", &select, &size);
    f->have_smbios_anchor = fwcfg_find_file("etc/smbios/smbios-anchor",
                                            &f->smbios_anchor_select, &f->smbios_anchor_size);
    f->have_smbios_tables = fwcfg_find_file("etc/smbios/smbios-tables",
                                            &f->smbios_tables_select, &f->smbios_tables_size);
    if (fwcfg_find_file("etc/e820", &select, &size)) {
        f->have_e820 = true;
        f->e820_count = size / 20;
        fwcfg_select(select);
        for (uint32_t i = 0; i < f->e820_count; i++) {
            uint8_t e[20];  /* u64 addr, u64 len, u32 type */
            if (i >= FWCFG_MAX_E820) {
                fwcfg_skip(sizeof(e));
                continue;
            }
            fwcfg_read(e, sizeof(e));
            f->e820[i].addr = le64(e);
            f->e820[i].size = le64(e + 8);
            f->e820[i].type = le32(e + 16);
        }
    }
}
