/*
 * SMBIOS (smbios.h).  The scan is Linux 6.1's dmi_scan_machine: 16-byte
 * steps over 0xf0000-0xfffff, a first pass for a 3.0 "_SM3_" entry point
 * (length byte in 24..32, its bytes summing to 0), then a second for a 2.1
 * one, "_DMI_" (15 bytes summing to 0) 16 bytes after "_SM_".  Linux accepts
 * the second from its "_DMI_" part alone; the check then says so.
 *
 * Entry point layouts (SMBIOS 3.x spec, QEMU's struct smbios_21/30_entry_point):
 *   2.1: 0 "_SM_", 4 checksum, 5 length, 6 major, 7 minor, 8 u16 max structure
 *        size, 0xa revision, 0xb formatted area[5], 0x10 "_DMI_", 0x15
 *        intermediate checksum, 0x16 u16 table length, 0x18 u32 table address,
 *        0x1c u16 structure count, 0x1e BCD revision.
 *   3.0: 0 "_SM3_", 5 checksum, 6 length, 7 major, 8 minor, 9 docrev,
 *        0xa revision, 0xb reserved, 0xc u32 table maximum size, 0x10 u64 address.
 */
#include "smbios.h"
#include "check.h"
#include "crc32.h"
#include "io.h"
#include "regions.h"
#include "serial.h"

#define SCAN_START 0xf0000u
#define SCAN_END   0x100000u
#define EP21_LEN   0x1f
#define EP30_LEN   0x18
#define EP_MAX     32           /* Linux copies at most 32 bytes of an entry point */
#define TYPE_BIOS  0
#define TYPE_END   127
#define MAX_STRUCTS 512         /* structures recorded (the walk goes on counting) */

enum ep_kind { EP_NONE, EP_21, EP_30 };

struct smbios_struct {
    uint32_t off, size;         /* in the table; size: formatted area + strings + NUL */
    uint16_t handle;
    uint8_t type, length;
};

static struct {
    enum ep_kind kind;
    uint32_t ep;                /* "_SM3_" / "_SM_" (or "_DMI_" when legacy) */
    uint32_t dmi;               /* 2.1: the "_DMI_" part */
    bool legacy;                /* 2.1 accepted from its "_DMI_" part only */
    uint32_t ep_len;            /* bytes of the entry point checked and compared */
    uint32_t major, minor, docrev;
    uint64_t table;
    uint32_t length, count, max_size;

    bool near;                  /* nothing accepted, but something anchor-like found */
    uint32_t near_addr;
    const char *near_why;

    const uint8_t *t;           /* the table, NULL if not addressable */
    uint32_t walked, recorded, end, largest;
    bool walk_failed, saw_end;  /* saw_end: 3.0 walk stopped at a type 127 */
    char walk_why[96];
    struct smbios_struct s[MAX_STRUCTS];

    /* against fw_cfg */
    bool files;
    uint8_t anchor[EP_MAX];
    uint32_t anchor_size, q;    /* q: the size of fw_cfg's smbios-tables */
    uint32_t table_crc, tables_crc;
    const char *layout;         /* "whole", "added", "differs", "none" */
    uint32_t whole_at, added_at;  /* first differing offsets (or the length when equal) */
} sm;

static const uint8_t *at(uint32_t addr)
{
    return (const uint8_t *)(uintptr_t)addr;
}

/* Linux's dmi_smbios3_present(buf) test. */
static bool sm3_valid(const uint8_t *p)
{
    return memcmp(p, "_SM3_", 5) == 0 && p[6] >= 24 && p[6] <= 32 && sum8(p, p[6]) == 0;
}

/* The "_SM_" half of Linux's dmi_present(buf) (buf = q - 16). */
static bool sm21_valid(const uint8_t *p)
{
    return memcmp(p, "_SM_", 4) == 0 && p[5] >= 30 && p[5] <= 32 && sum8(p, p[5]) == 0;
}

/* The "_DMI_" half, which Linux requires. */
static bool dmi_valid(const uint8_t *p)
{
    return memcmp(p, "_DMI_", 5) == 0 && sum8(p, 15) == 0;
}

static void smbios_scan(void)
{
    for (uint32_t a = SCAN_START; a + 32 <= SCAN_END; a += 16) {
        const uint8_t *p = at(a);
        if (!sm3_valid(p))
            continue;
        sm.kind = EP_30;
        sm.ep = a;
        sm.ep_len = EP30_LEN;
        sm.major = p[7];
        sm.minor = p[8];
        sm.docrev = p[9];
        sm.length = u32at(p + 12);
        sm.table = (uint64_t)u32at(p + 16) | (uint64_t)u32at(p + 20) << 32;
        return;
    }
    for (uint32_t q = SCAN_START; q + 16 <= SCAN_END; q += 16) {
        const uint8_t *d = at(q);
        if (!dmi_valid(d))
            continue;
        const uint8_t *s = q > SCAN_START ? at(q - 16) : NULL;  /* Linux: zeros below 0xf0000 */
        sm.kind = EP_21;
        sm.dmi = q;
        if (s && sm21_valid(s)) {
            sm.ep = q - 16;
            sm.major = s[6];
            sm.minor = s[7];
            sm.max_size = u16at(s + 8);
        } else {
            sm.legacy = true;
            sm.ep = s && memcmp(s, "_SM_", 4) == 0 ? q - 16 : q;
            sm.major = d[14] >> 4;
            sm.minor = d[14] & 0xf;
            if (sm.ep != q)
                sm.max_size = u16at(s + 8);
        }
        sm.ep_len = EP21_LEN;
        sm.length = u16at(d + 6);
        sm.table = u32at(d + 8);
        sm.count = u16at(d + 12);
        return;
    }
    /* Nothing Linux takes: remember something that looks like an entry point. */
    for (uint32_t a = SCAN_START; a + 32 <= SCAN_END; a += 16) {
        const uint8_t *p = at(a);
        if (memcmp(p, "_SM3_", 5) == 0 && p[6] >= 24 && p[6] <= 32) {
            sm.near = true;
            sm.near_addr = a;
            sm.near_why = "_SM3_ entry point whose bytes do not sum to 0";
            return;
        }
        if (memcmp(p, "_SM_", 4) == 0 && memcmp(p + 16, "_DMI_", 5) == 0) {
            sm.near = true;
            sm.near_addr = a;
            sm.near_why = "_SM_ entry point whose _DMI_ part does not sum to 0";
            return;
        }
    }
}

static void walk_fail(const char *why, uint32_t index, uint32_t off)
{
    struct detail d = {0};
    d_str(&d, "structure ");
    d_dec(&d, index);
    d_more(&d, " at offset ");
    d_hex(&d, off);
    d_more(&d, ": ");
    d_more(&d, why);
    uint32_t k = 0;
    for (; k < d.len && k < sizeof(sm.walk_why) - 1; k++)
        sm.walk_why[k] = d.buf[k];
    sm.walk_why[k] = 0;
    sm.walk_failed = true;
}

/* Linux's dmi_decode_table: by count (2.1) or up to a type 127 (3.0), never past length. */
static void smbios_walk(void)
{
    sm.t = phys_ptr(sm.table, sm.length);
    if (!sm.t)
        return;
    uint32_t len = sm.length, off = 0;
    bool by_count = sm.kind == EP_21;
    while ((!by_count || sm.walked < sm.count) && off + 4 <= len) {
        const uint8_t *h = sm.t + off;
        if (h[1] < 4) {
            walk_fail("header length below 4", sm.walked, off);
            return;
        }
        uint32_t p = off + h[1];
        while (p + 1 < len && (sm.t[p] || sm.t[p + 1]))
            p++;
        if (p + 1 >= len) {
            walk_fail("formatted area or strings run past the table length", sm.walked, off);
            return;
        }
        uint32_t size = p + 2 - off;
        if (sm.recorded < MAX_STRUCTS) {
            struct smbios_struct *s = &sm.s[sm.recorded++];
            s->off = off;
            s->size = size;
            s->type = h[0];
            s->length = h[1];
            s->handle = u16at(h + 2);
        }
        if (size > sm.largest)
            sm.largest = size;
        sm.walked++;
        off += size;
        if (!by_count && h[0] == TYPE_END) {
            sm.saw_end = true;
            break;
        }
    }
    sm.end = off;
}

static void put_hex_or_dash(const uint8_t *s)
{
    if (!s) {
        kprintf("-");
        return;
    }
    uint32_t n = 0;
    while (s[n])
        n++;
    serial_put_hexbytes(s, n);
}

/* String number `index` (1-based) of structure s, NULL for 0 or past the last. */
static const uint8_t *struct_string(const struct smbios_struct *s, uint8_t index)
{
    if (index == 0)
        return NULL;
    const uint8_t *p = sm.t + s->off + s->length, *end = sm.t + s->off + s->size - 1;
    for (uint8_t i = 1; p < end && *p; i++) {
        if (i == index)
            return p;
        while (*p)
            p++;
        p++;
    }
    return NULL;
}

static void report_structs(void)
{
    for (uint32_t i = 0; i < sm.recorded; i++) {
        const struct smbios_struct *s = &sm.s[i];
        kprintf("PVHCHECK smbios struct %u type=%u handle=0x%x length=%u size=%u data=", i,
                (uint32_t)s->type, (uint32_t)s->handle, (uint32_t)s->length, s->size);
        serial_put_hexbytes(sm.t + s->off, s->length);
        kprintf(" strings=");
        const uint8_t *p = sm.t + s->off + s->length, *end = sm.t + s->off + s->size - 1;
        for (bool first = true; p < end && *p; first = false) {
            if (!first)
                kprintf(",");
            put_hex_or_dash(p);
            while (*p)
                p++;
            p++;
        }
        kprintf("\n");
    }
    kprintf("PVHCHECK smbios types=");
    for (uint32_t i = 0; i < sm.recorded; i++)
        kprintf("%s%u", i ? "," : "", (uint32_t)sm.s[i].type);
    kprintf("%s\n", sm.recorded ? "" : "-");
    for (uint32_t i = 0; i < sm.recorded; i++) {
        const struct smbios_struct *s = &sm.s[i];
        if (s->type != TYPE_BIOS)
            continue;
        const uint8_t *h = sm.t + s->off;
        kprintf("PVHCHECK smbios bios vendor=");
        put_hex_or_dash(s->length > 4 ? struct_string(s, h[4]) : NULL);
        kprintf(" version=");
        put_hex_or_dash(s->length > 5 ? struct_string(s, h[5]) : NULL);
        kprintf(" date=");
        put_hex_or_dash(s->length > 8 ? struct_string(s, h[8]) : NULL);
        kprintf("\n");
        break;
    }
}

static bool anchor_field_kept(uint32_t off)
{
    /* The fields a firmware fills in: checksums, sizes, count, the table address. */
    if (sm.kind == EP_30)
        return !(off == 5 || (off >= 0x0c && off < 0x18));
    return !(off == 4 || off == 8 || off == 9 || (off >= 0x15 && off < 0x1e));
}

static void smbios_compare(const struct fwcfg_facts *fw)
{
    sm.layout = "none";
    sm.files = fw->present && fw->have_smbios_anchor && fw->have_smbios_tables;
    if (fw->present && fw->have_smbios_anchor) {
        sm.anchor_size = fw->smbios_anchor_size;
        fwcfg_read_item(fw->smbios_anchor_select, sm.anchor,
                        sm.anchor_size < EP_MAX ? sm.anchor_size : EP_MAX);
    }
    if (fw->present && fw->have_smbios_tables)
        sm.tables_crc = fwcfg_item_crc32(fw->smbios_tables_select, fw->smbios_tables_size);
    if (sm.kind == EP_NONE || !sm.t)
        return;
    sm.table_crc = crc32(sm.t, sm.length);
    if (!sm.files)
        return;
    uint32_t q = sm.q = fw->smbios_tables_size;
    sm.whole_at = sm.added_at = 0;
    if (sm.length == q) {
        sm.whole_at = fwcfg_item_compare(fw->smbios_tables_select, sm.t, q);
        if (sm.whole_at == q) {
            sm.layout = "whole";
            return;
        }
    }
    if (sm.recorded > 0 && sm.s[0].type == TYPE_BIOS && sm.length == sm.s[0].size + q) {
        sm.added_at = fwcfg_item_compare(fw->smbios_tables_select, sm.t + sm.s[0].size, q);
        if (sm.added_at == q) {
            sm.layout = "added";
            return;
        }
    }
    sm.layout = "differs";
}

void smbios_report(const struct fwcfg_facts *fw)
{
    memset(&sm, 0, sizeof(sm));
    smbios_scan();
    if (sm.kind == EP_NONE) {
        kprintf("PVHCHECK smbios ep=none\n");
    } else {
        const char *anchor = sm.kind == EP_30 ? "_SM3_" : sm.legacy ? "_DMI_" : "_SM_";
        kprintf("PVHCHECK smbios ep=0x%x anchor=%s version=%u.%u table=0x%llx length=%u",
                sm.ep, anchor, sm.major, sm.minor, sm.table, sm.length);
        if (sm.kind == EP_21)
            kprintf(" count=%u max_size=%u\n", sm.count, sm.max_size);
        else
            kprintf(" count=- max_size=- docrev=%u\n", sm.docrev);
        smbios_walk();
        if (sm.t)
            report_structs();
    }
    smbios_compare(fw);
    kprintf("PVHCHECK smbios fwcfg");
    if (fw->present && fw->have_smbios_anchor)
        kprintf(" anchor_size=%u", sm.anchor_size);
    else
        kprintf(" anchor_size=none");
    if (fw->present && fw->have_smbios_tables)
        kprintf(" tables_size=%u tables_crc32=0x%x", fw->smbios_tables_size, sm.tables_crc);
    else
        kprintf(" tables_size=none tables_crc32=none");
    if (sm.kind != EP_NONE && sm.t)
        kprintf(" table_crc32=0x%x", sm.table_crc);
    else
        kprintf(" table_crc32=none");
    kprintf(" layout=%s\n", sm.layout);
}

/* ---- checks --------------------------------------------------------------- */

static void check_entry_point(void)
{
    struct detail d = {0};
    if (sm.kind == EP_NONE && sm.near) {
        d_str(&d, sm.near_why);
        d_more(&d, " at ");
        d_hex(&d, sm.near_addr);
        d_more(&d, ": Linux finds no SMBIOS");
    } else if (sm.kind == EP_21 && sm.legacy) {
        const uint8_t *s = sm.ep != sm.dmi ? at(sm.ep) : NULL;
        d_str(&d, "Linux takes only the legacy _DMI_ part at ");
        d_hex(&d, sm.dmi);
        if (!s) {
            d_more(&d, ": no _SM_ 16 bytes before it");
        } else if (s[5] < 30 || s[5] > 32) {
            d_more(&d, ": _SM_ length ");
            d_dec(&d, s[5]);
        } else {
            d_more(&d, ": the _SM_ entry point's bytes do not sum to 0");
        }
    }
    check_report("smbios_entry_point", &d);
}

static void check_structures(void)
{
    struct detail d = {0};
    if (sm.kind != EP_NONE) {
        if (!sm.t) {
            d_str(&d, "table ");
            d_hex(&d, sm.table);
            d_more(&d, "+");
            d_hex(&d, sm.length);
            d_more(&d, " not addressable with paging off");
        } else if (sm.walk_failed) {
            d_str(&d, sm.walk_why);
        } else if (sm.kind == EP_21) {
            if (sm.walked != sm.count) {
                d_str(&d, "only ");
                d_dec(&d, sm.walked);
                d_more(&d, " structures fit in length ");
                d_dec(&d, sm.length);
                d_more(&d, ", count is ");
                d_dec(&d, sm.count);
            } else if (sm.end != sm.length) {
                d_str(&d, "the structures end at ");
                d_dec(&d, sm.end);
                d_more(&d, ", length is ");
                d_dec(&d, sm.length);
            }
            if (sm.walked == sm.count && (sm.recorded < sm.walked || sm.walked == 0 ||
                                          sm.s[sm.walked - 1].type != TYPE_END))
                d_str(&d, "the last structure is not type 127");
            if (sm.max_size != sm.largest) {
                d_str(&d, "max structure size ");
                d_dec(&d, sm.max_size);
                d_more(&d, ", largest structure ");
                d_dec(&d, sm.largest);
            }
        } else if (!sm.saw_end) {
            d_str(&d, "no type 127 within the maximum size ");
            d_dec(&d, sm.length);
        }
    }
    check_report("smbios_structures", &d);
}

static void check_is_fwcfg(void)
{
    struct detail d = {0};
    if (sm.kind != EP_NONE && sm.t && sm.files) {
        uint32_t want = sm.kind == EP_30 ? EP30_LEN : EP21_LEN;
        if (sm.anchor_size != want) {
            d_str(&d, "fw_cfg's anchor is ");
            d_dec(&d, sm.anchor_size);
            d_more(&d, sm.kind == EP_30 ? " bytes, the entry point is _SM3_"
                                        : " bytes, the entry point is _SM_");
        } else {
            const uint8_t *ep = at(sm.ep);
            for (uint32_t off = 0; off < want; off++) {
                if (anchor_field_kept(off) && ep[off] != sm.anchor[off]) {
                    d_str(&d, "entry point byte ");
                    d_hex(&d, off);
                    d_more(&d, "=");
                    d_hex(&d, ep[off]);
                    d_more(&d, ", fw_cfg anchor ");
                    d_hex(&d, sm.anchor[off]);
                }
            }
        }
        bool other_t0 = false;
        for (uint32_t i = 1; i < sm.recorded; i++)
            other_t0 |= sm.s[i].type == TYPE_BIOS;
        if (sm.layout[0] == 'd') {
            if (sm.length == sm.q) {
                d_str(&d, "table differs from fw_cfg's smbios-tables at offset ");
                d_dec(&d, sm.whole_at);
            } else if (sm.recorded && sm.s[0].type == TYPE_BIOS &&
                       sm.length == sm.s[0].size + sm.q) {
                d_str(&d, "after its first structure (type 0) the table differs from "
                          "fw_cfg's smbios-tables at offset ");
                d_dec(&d, sm.added_at);
            } else {
                d_str(&d, "table length ");
                d_dec(&d, sm.length);
                d_more(&d, " is neither fw_cfg's smbios-tables size ");
                d_dec(&d, sm.q);
                d_more(&d, " nor that plus a first type 0 structure");
            }
        } else if (sm.layout[0] == 'a' && other_t0) {
            d_str(&d, "a type 0 added although fw_cfg's tables have one");
        } else if (sm.layout[0] == 'w') {
            bool t0 = false;
            for (uint32_t i = 0; i < sm.recorded; i++)
                t0 |= sm.s[i].type == TYPE_BIOS;
            if (!t0)
                d_str(&d, "fw_cfg's tables have no type 0 and none was added");
        }
        if (sm.kind == EP_21 && sm.anchor_size == EP21_LEN && sm.layout[0] != 'd') {
            uint32_t qcount = u16at(sm.anchor + 0x1c) + (sm.layout[0] == 'a' ? 1u : 0u);
            if (sm.count != qcount) {
                d_str(&d, "structure count ");
                d_dec(&d, sm.count);
                d_more(&d, ", fw_cfg's anchor count + added ");
                d_dec(&d, qcount);
            }
        }
    }
    check_report("smbios_is_fwcfg", &d);
}

static void check_none_without_fwcfg(const struct fwcfg_facts *fw)
{
    struct detail d = {0};
    if (fw->present && !sm.files && sm.kind != EP_NONE) {
        d_str(&d, "entry point at ");
        d_hex(&d, sm.ep);
        d_more(&d, " although fw_cfg has no ");
        d_more(&d, fw->have_smbios_anchor ? "etc/smbios/smbios-tables"
                                          : "etc/smbios/smbios-anchor");
    }
    check_report("smbios_none_without_fwcfg", &d);
}

static void check_not_in_ram(void)
{
    struct detail d = {0};
    if (sm.kind != EP_NONE) {
        if (touches_ram(sm.ep, sm.ep_len)) {
            d_str(&d, "entry point ");
            d_hex(&d, sm.ep);
            d_more(&d, " in a RAM entry");
        }
        if (touches_ram(sm.table, sm.length)) {
            d_str(&d, "table ");
            d_hex(&d, sm.table);
            d_more(&d, "+");
            d_hex(&d, sm.length);
            d_more(&d, " in a RAM entry (Linux reads it again at run time)");
        }
    }
    check_report("smbios_not_in_ram", &d);
}

void smbios_checks(const struct fwcfg_facts *fw)
{
    check_entry_point();
    check_structures();
    check_is_fwcfg();
    check_none_without_fwcfg(fw);
    check_not_in_ram();
}
