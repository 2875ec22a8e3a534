// The output memory of outputs.h: a small cache of freed blocks in front of
// aligned_alloc.
#include "outputs.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace nnc {
namespace {

constexpr size_t kHuge = size_t(2) << 20;        // transparent huge page
constexpr size_t kMmapSize = size_t(32) << 20;   // glibc maps blocks this large anew
constexpr size_t kCachedMin = size_t(1) << 20;   // smaller blocks go straight back to glibc

size_t rounded_size(size_t bytes) {
    const size_t align = bytes >= kMmapSize ? kHuge : 64;
    return std::max(align, (bytes + align - 1) / align * align);
}

// Freed blocks of kCachedMin bytes and more, oldest first, holding at most
// `limit` bytes. Arrays die under the GIL, but a free-threaded Python has
// none: a mutex guards the list.
struct Cache {
    std::mutex mutex;
    struct Block {
        void* p;
        size_t size;  // rounded_size of the request
    };
    std::vector<Block> blocks;
    size_t held = 0;
    size_t limit = kOutputCacheDefault;

    // Frees the oldest blocks until at most `limit` bytes are held.
    void trim() {
        size_t evicted = 0;
        for (; held > limit; evicted++) {
            held -= blocks[evicted].size;
            std::free(blocks[evicted].p);
        }
        blocks.erase(blocks.begin(), blocks.begin() + evicted);
    }
};

// Never destroyed: arrays may outlive static destruction at exit.
Cache& cache() {
    static Cache* c = new Cache;
    return *c;
}

}  // namespace

void* alloc_output(size_t bytes) {
    const size_t size = rounded_size(bytes);
    if (size >= kCachedMin) {
        Cache& c = cache();
        std::lock_guard<std::mutex> lock(c.mutex);
        for (size_t i = c.blocks.size(); i-- > 0;)  // the most recently freed first
            if (c.blocks[i].size == size) {
                void* p = c.blocks[i].p;
                c.blocks.erase(c.blocks.begin() + i);
                c.held -= size;
                return p;
            }
    }
    const size_t align = size >= kMmapSize ? kHuge : 64;
    void* p = std::aligned_alloc(align, size);
    if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    if (align == kHuge) madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
}

void release_output(void* p, size_t bytes) noexcept {
    const size_t size = rounded_size(bytes);
    if (size < kCachedMin) {
        std::free(p);
        return;
    }
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (size > c.limit) {
        std::free(p);
        return;
    }
    try {
        c.blocks.push_back({p, size});
    } catch (...) {  // no memory for the list entry: free the block instead
        std::free(p);
        return;
    }
    c.held += size;
    c.trim();
}

void set_output_cache_limit(size_t bytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    c.limit = bytes;
    c.trim();
}

size_t output_cache_limit() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    return c.limit;
}

size_t output_cache_held() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    return c.held;
}

}  // namespace nnc
