// Token shard files (llm.c's format plus a versioned extension).
//
// Header: 256 x int32.
//   header[0] = 20240520 (magic)
//   header[1] = version
//   header[2] = ntok, the number of tokens in the file
// Version 1 (llm.c): ntok uint16 tokens follow the header.
// Version 2 (ours):  header[3] = bytes per token (2 or 4, so vocabularies over 65535 fit),
//                    header[4] = 1 if a loss mask follows the tokens (ntok uint8, 1 = the
//                    target at this position counts in the loss; 0 = e.g. a prompt token in SFT).
// The writer emits version 1 whenever it can, so llm.c keeps reading what we write.
#ifndef LLMC_SHARD_H
#define LLMC_SHARD_H

#include "utils.h"

#define SHARD_MAGIC 20240520
#define SHARD_HEADER_INTS 256
#define SHARD_HEADER_BYTES (SHARD_HEADER_INTS * (long)sizeof(int32_t))

typedef struct {
    int version;
    int token_bytes;   // 2 or 4
    int has_mask;      // 0 or 1
    long ntok;
    long tokens_offset; // byte offset of the first token
    long mask_offset;   // byte offset of the mask, if any
} ShardInfo;

// Reads and validates the header of an open shard file against its size. 0 or -1 (err set).
static int shard_read_header(FILE* f, const char* path, ShardInfo* info, char* err) {
    int32_t header[SHARD_HEADER_INTS];
    long fsize = file_size_of(f);
    if (fsize < 0) { return set_err(err, "%s: cannot determine file size", path); }
    if (fsize < SHARD_HEADER_BYTES) {
        return set_err(err, "%s: file is truncated: %ld bytes, shorter than the %ld-byte header", path, fsize, SHARD_HEADER_BYTES);
    }
    if (fseek(f, 0, SEEK_SET) != 0) { return set_err(err, "%s: seek failed", path); }
    if (fread_exact(header, sizeof(int32_t), SHARD_HEADER_INTS, f, path, err) != 0) { return -1; }
    if (header[0] != SHARD_MAGIC) {
        return set_err(err, "%s: bad magic %d in token shard header (expected %d): not a token shard", path, header[0], SHARD_MAGIC);
    }
    info->version = header[1];
    if (info->version == 1) {
        info->token_bytes = 2;
        info->has_mask = 0;
    } else if (info->version == 2) {
        info->token_bytes = header[3];
        info->has_mask = header[4];
        if (info->token_bytes != 2 && info->token_bytes != 4) {
            return set_err(err, "%s: bad bytes-per-token %d in version-2 shard header (expected 2 or 4)", path, info->token_bytes);
        }
        if (info->has_mask != 0 && info->has_mask != 1) {
            return set_err(err, "%s: bad mask flag %d in version-2 shard header (expected 0 or 1)", path, info->has_mask);
        }
    } else {
        return set_err(err, "%s: unsupported token shard version %d (supported: 1, 2)", path, info->version);
    }
    if (header[2] < 0) { return set_err(err, "%s: negative token count %d in header", path, header[2]); }
    info->ntok = header[2];
    info->tokens_offset = SHARD_HEADER_BYTES;
    info->mask_offset = info->tokens_offset + info->ntok * info->token_bytes;
    long expected = info->mask_offset + (info->has_mask ? info->ntok : 0);
    if (fsize < expected) {
        return set_err(err, "%s: file is truncated: header says %ld tokens (%ld bytes), file has %ld bytes",
                       path, info->ntok, expected, fsize);
    }
    if (fsize > expected) {
        return set_err(err, "%s: file has %ld trailing bytes after the %ld tokens the header announces",
                       path, fsize - expected, info->ntok);
    }
    return 0;
}

// Reads count tokens starting at token index start into out (as ints), and their mask bytes
// into mask (if mask != NULL; all ones when the shard has no mask). Every id must be < V.
static int shard_read_tokens(FILE* f, const char* path, const ShardInfo* info, long start, long count,
                             int* out, uint8_t* mask, int V, char* err) {
    if (start < 0 || count < 0 || start + count > info->ntok) {
        return set_err(err, "%s: read of tokens [%ld, %ld) is outside the shard's %ld tokens", path, start, start + count, info->ntok);
    }
    if (fseek(f, info->tokens_offset + start * info->token_bytes, SEEK_SET) != 0) {
        return set_err(err, "%s: seek failed", path);
    }
    if (info->token_bytes == 2) {
        // read into the tail of the int buffer, then widen front to back without overlap trouble
        uint16_t* tmp = (uint16_t*)out + count;  // second half of the int array, as uint16
        if (fread_exact(tmp, 2, count, f, path, err) != 0) { return -1; }
        for (long i = 0; i < count; i++) { out[i] = tmp[i]; }
    } else {
        if (fread_exact(out, 4, count, f, path, err) != 0) { return -1; }
    }
    for (long i = 0; i < count; i++) {
        if (out[i] < 0 || out[i] >= V) {
            return set_err(err, "%s: token id %d at position %ld is out of range for a vocabulary of %d tokens",
                           path, out[i], start + i, V);
        }
    }
    if (mask != NULL) {
        if (info->has_mask) {
            if (fseek(f, info->mask_offset + start, SEEK_SET) != 0) { return set_err(err, "%s: seek failed", path); }
            if (fread_exact(mask, 1, count, f, path, err) != 0) { return -1; }
        } else {
            memset(mask, 1, count);
        }
    }
    return 0;
}

// Checks every token id of the shard is < V, in one pass over the file (about 0.1 s per 100M
// tokens from the page cache), so a bad id deep in a shard stops a run before its first step
// rather than at the step that reaches it (and again at every resume). 0, or -1 with err.
static int shard_validate_tokens(FILE* f, const char* path, const ShardInfo* info, int V, char* err) {
    if (fseek(f, info->tokens_offset, SEEK_SET) != 0) { return set_err(err, "%s: seek failed", path); }
    enum { CHUNK = 1 << 16 };
    uint32_t* buf32 = (uint32_t*)malloc_check(CHUNK * sizeof(uint32_t), "shard validation buffer");
    uint16_t* buf16 = (uint16_t*)buf32;
    int rc = 0;
    for (long done = 0; done < info->ntok; ) {
        long k = info->ntok - done < CHUNK ? info->ntok - done : CHUNK;
        if (fread_exact(buf32, info->token_bytes, k, f, path, err) != 0) { rc = -1; break; }
        long bad = -1;
        if (info->token_bytes == 2) {
            for (long i = 0; i < k; i++) { if (buf16[i] >= (uint32_t)V) { bad = i; break; } }
        } else {
            for (long i = 0; i < k; i++) { if (buf32[i] >= (uint32_t)V) { bad = i; break; } }
        }
        if (bad >= 0) {
            long v = info->token_bytes == 2 ? (long)buf16[bad] : (long)buf32[bad];
            rc = set_err(err, "%s: token id %ld at position %ld is out of range for a vocabulary of %d tokens "
                         "(wrong tokenizer, or a corrupt shard?)", path, v, done + bad, V);
            break;
        }
        done += k;
    }
    free(buf32);
    return rc;
}

// Writes a shard atomically. tokens holds ntok ids of token_bytes bytes each (2: uint16_t,
// 4: uint32_t); mask may be NULL. Version 1 when possible, else version 2.
static void shard_write(const char* path, const void* tokens, long ntok, int token_bytes, const uint8_t* mask) {
    if (token_bytes != 2 && token_bytes != 4) { die("shard_write %s: token_bytes must be 2 or 4", path); }
    if (ntok < 0 || ntok > INT32_MAX) { die("shard_write %s: token count %ld does not fit the header", path, ntok); }
    int32_t header[SHARD_HEADER_INTS];
    memset(header, 0, sizeof(header));
    header[0] = SHARD_MAGIC;
    header[1] = (token_bytes == 2 && mask == NULL) ? 1 : 2;
    header[2] = (int32_t)ntok;
    if (header[1] == 2) {
        header[3] = token_bytes;
        header[4] = mask != NULL;
    }
    AtomicFile af;
    atomic_open(&af, path);
    atomic_write(&af, header, sizeof(int32_t), SHARD_HEADER_INTS);
    atomic_write(&af, tokens, token_bytes, ntok);
    if (mask != NULL) { atomic_write(&af, mask, 1, ntok); }
    atomic_commit(&af);
}

#endif // LLMC_SHARD_H
