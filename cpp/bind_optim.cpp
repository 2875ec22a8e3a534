#include "bind.h"

namespace nnc {

void bind_optim(nb::module_& m) { (void)m; }

}  // namespace nnc
