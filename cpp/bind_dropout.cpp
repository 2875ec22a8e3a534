#include "bind.h"

namespace nnc {

void bind_dropout(nb::module_& m) { (void)m; }

}  // namespace nnc
