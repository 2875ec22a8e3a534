#include "bind.h"

namespace nnc {

void bind_pool(nb::module_& m) { (void)m; }

}  // namespace nnc
