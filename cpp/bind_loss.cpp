#include "bind.h"

namespace nnc {

void bind_loss(nb::module_& m) { (void)m; }

}  // namespace nnc
