/* A narrow C face over ISA-L's streaming inflate, so Rust never depends on the layout of
 * `struct inflate_state` (large, and version-specific): the state stays opaque on the Rust
 * side. Gzip mode: isa-l parses each member's header and checks its trailer (crc32, size). */
#include <stdint.h>
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

struct inflate_state *dy_gunzip_new(void)
{
	struct inflate_state *s = malloc(sizeof *s);
	if (s) {
		isal_inflate_init(s);
		s->crc_flag = ISAL_GZIP;
	}
	return s;
}

/* Ready for the next member of a multi-member stream. */
void dy_gunzip_reset(struct inflate_state *s)
{
	isal_inflate_reset(s);
	s->crc_flag = ISAL_GZIP;
}

/* One step over `in` into `out`. Returns isa-l's status (negative: damaged data); `*used` and
 * `*made` are the bytes consumed and produced; `*done` is set once the member has ended and
 * its trailer has been checked. */
int dy_gunzip_step(struct inflate_state *s, const uint8_t *in, uint32_t in_len, uint32_t *used,
		   uint8_t *out, uint32_t out_len, uint32_t *made, int *done)
{
	s->next_in = (uint8_t *)in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_len;
	int r = isal_inflate(s);
	*used = in_len - s->avail_in;
	*made = out_len - s->avail_out;
	*done = s->block_state == ISAL_BLOCK_FINISH;
	return r;
}

void dy_gunzip_free(struct inflate_state *s)
{
	free(s);
}
