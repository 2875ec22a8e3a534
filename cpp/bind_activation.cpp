#include "bind.h"

namespace nnc {

void bind_activation(nb::module_& m) { (void)m; }

}  // namespace nnc
