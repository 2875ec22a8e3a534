#include "bind.h"

namespace nnc {

void bind_conv(nb::module_& m) { (void)m; }

}  // namespace nnc
