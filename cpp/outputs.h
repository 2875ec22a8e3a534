// Memory for the arrays the bindings return (outputs.cpp): aligned blocks,
// with a small cache of freed ones in front of aligned_alloc.
//
// Outputs of 1 MB and more are kept in the cache when they die and handed to
// the next output of the same size: glibc returns freed memory at the top of
// its heap to the OS once it exceeds a threshold (twice the largest block
// freed so far), so a forward and a backward pass that each allocate 16 MB
// otherwise fault in 8,000 fresh 4 KB pages on every call, which costs more
// than their kernels. Fresh blocks of 32 MB and more (which glibc always
// maps anew) are 2 MB aligned and advised as transparent huge pages.
#pragma once
#include <cstddef>

namespace nnc {

// A block of at least `bytes` bytes, 64-byte aligned; throws std::bad_alloc.
void* alloc_output(size_t bytes);
// Gives back a block from alloc_output(bytes): into the cache, or freed.
void release_output(void* p, size_t bytes) noexcept;

// The most bytes the cache holds: 256 MB unless set (nnc.set_buffer_cache).
// 0 turns it off; lowering the limit frees the oldest blocks until the
// cache fits.
constexpr size_t kOutputCacheDefault = size_t(256) << 20;
void set_output_cache_limit(size_t bytes);
size_t output_cache_limit();
// Bytes held by freed blocks waiting for reuse.
size_t output_cache_held();

}  // namespace nnc
