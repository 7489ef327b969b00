#include "crc32.h"

static uint32_t table[256];
static int table_ready;

static void crc32_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    table_ready = 1;
}

uint32_t crc32_update(uint32_t c, const uint8_t *p, size_t n)
{
    if (!table_ready)
        crc32_init();
    while (n--)
        c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

uint32_t crc32_final(uint32_t c)
{
    return c ^ 0xffffffffu;
}

uint32_t crc32(const uint8_t *p, size_t n)
{
    return crc32_final(crc32_update(CRC32_INIT, p, n));
}
