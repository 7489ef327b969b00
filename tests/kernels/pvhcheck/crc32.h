#ifndef PVHCHECK_CRC32_H
#define PVHCHECK_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32/IEEE (reflected, poly 0xedb88320), the same value as Python's zlib.crc32. */
uint32_t crc32(const uint8_t *p, size_t n);

/* The same, in pieces: crc32_final(crc32_update(CRC32_INIT, p, n)) == crc32(p, n). */
#define CRC32_INIT 0xffffffffu
uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n);
uint32_t crc32_final(uint32_t crc);

#endif
